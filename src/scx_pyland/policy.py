"""The policy API: what a scheduling policy written in Python implements.

A policy sees every task that needs a CPU, as a :class:`QueuedTask`, and answers
with :class:`DispatchedTask` decisions: which task runs next, on which CPU
(``RL_CPU_ANY`` for the first free one), for how long, and in which order (vtime).
The worker calls :meth:`Policy.schedule` once per cycle with the tasks that arrived
since the last call (possibly none) and sends back what it returns, in order.
Decisions the kernel's ring cannot take right now are kept by the worker and sent
first in the next cycle. Tasks a policy holds back count as pending
(:attr:`Policy.nr_pending`); the BPF side keeps running the worker while any are.

Policies are plain Python, testable without a kernel: feed them records decoded by
``scx_pyland._bpf.decode_queued``.
"""

from __future__ import annotations

from dataclasses import dataclass

from scx_pyland._bpf import RL_CPU_ANY, DispatchedTask, QueuedTask

__all__ = ["Policy", "PolicyConfig", "QueuedTask", "DispatchedTask", "RL_CPU_ANY"]


@dataclass(slots=True, frozen=True)
class PolicyConfig:
    """Settings every policy receives."""

    slice_ns: int = 20_000_000      # the longest slice to give (-s)
    slice_min_ns: int = 1_000_000   # the shortest slice to give (-S)
    nr_cpus: int = 1                # online CPUs


class Policy:
    """Base class of a scheduling policy. Subclasses implement :meth:`schedule`."""

    #: Name shown in reports; defaults to the class name.
    name: str = ""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config

    def schedule(self, queued: list[QueuedTask]) -> list[DispatchedTask]:
        """Take the newly queued tasks; return the decisions to send now, in order."""
        raise NotImplementedError

    @property
    def nr_pending(self) -> int:
        """How many queued tasks the policy holds without a decision yet."""
        return 0

    def on_exit(self) -> None:
        """Called once when the scheduler stops, for any clean-up."""
