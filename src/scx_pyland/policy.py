"""The policy API: what a scheduling policy written in Python implements.

A policy sees every task that needs a CPU as a :class:`QueuedTask` (pid, comm,
weight, the CPU it last ran on, when it last ran and for how long, ...) and answers
with :class:`DispatchedTask` decisions: which task runs next, on which CPU
(``RL_CPU_ANY`` for the first free one, ``RL_CPU_NEAR`` for an idle one near the
task's last CPU, else the first free one), for how long, and in which order (vtime).

The worker drives it, one cycle at a time::

    policy.enqueue(tasks)          # the tasks that asked for a CPU since the last cycle
    decisions = policy.dispatch()  # what to run now, in order
    ...                            # sent to the kernel; what does not fit is retried
    policy.nr_pending              # how many it still holds (the worker runs again while > 0)

plus :meth:`Policy.tick` about once a second and :meth:`Policy.on_exit` at the end
(or when the policy is swapped out while scheduling).
A policy that needs the time reads :meth:`Policy.now_ns`, never ``time`` itself: it is
the worker's CLOCK_MONOTONIC live and the virtual clock in ``scx_pyland sim``
(:meth:`Policy.use_clock`).
:meth:`Policy.select_cpus` asks the BPF side's idle tracking for an idle CPU near
each task's last one (in one call for many tasks, a system call); a decision for
``RL_CPU_NEAR`` leaves the same question to the BPF side, which answers it when it
carries the decision out, at no cost to the worker.
A policy must not block, sleep, start threads, fork or do I/O: it runs inside the
scheduler of the whole machine. The worker enforces two of these: a thread in the
worker at attach time is a start-up error, one a swapped-in policy started ends the
worker (the supervisor restarts it with the old policy), and a fork's child is ended
at once (docs/design.md, the traps).

The worker guards the machine against a policy's mistakes (README, "Iterating on a
policy on a live machine"): an exception from ``enqueue``, ``dispatch``,
``nr_pending`` or ``tick`` (or a ``dispatch`` that returns anything but a list of
:class:`DispatchedTask`, ``None`` and ``()`` included) hands every task the policy
held to the fifo policy; a task held longer than ``--rescue-after-ms`` is
dispatched by the worker itself (a later decision for it is dropped); a decision
for a task the policy was not given,
or for one it decided already, is dropped. A policy swapped in while scheduling
(``scx_pyland reload``, ``--watch``) gets the tasks the old one held in its first
``enqueue``.

Policies are plain Python, testable without a kernel: feed them records decoded by
``scx_pyland._bpf.decode_queued`` (see ``scx_pyland.replay``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from scx_pyland._bpf import ENQ_WAKEUP, RL_CPU_ANY, RL_CPU_NEAR, RL_PREEMPT, DispatchedTask, QueuedTask

__all__ = ["Policy", "PolicyConfig", "QueuedTask", "DispatchedTask", "ENQ_WAKEUP", "RL_CPU_ANY", "RL_CPU_NEAR",
           "RL_PREEMPT"]


@dataclass(slots=True, frozen=True)
class PolicyConfig:
    """Settings every policy receives, from the command line."""

    slice_ns: int = 20_000_000      # the longest slice to give (-s)
    slice_min_ns: int = 1_000_000   # the shortest slice to give (-S)
    nr_cpus: int = 1                # online CPUs
    percpu_local: bool = False      # keep tasks on the CPU they last ran on (-l)


class Policy:
    """Base class of a scheduling policy: override :meth:`enqueue` and :meth:`dispatch`."""

    #: Name shown in reports; defaults to the class name.
    name: str = ""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        if not self.name:
            self.name = type(self).__name__
        self._select_cpus: Callable[[list[QueuedTask]], list[int]] | None = None
        self._idle_cpus: Callable[[int, int], list[int]] | None = None
        #: The policy's clock (ns): ``self.now_ns()``. CLOCK_MONOTONIC, the clock of the
        #: worker's housekeeping, unless :meth:`use_clock` gave another. An attribute,
        #: not a method, so a reading costs what ``time.monotonic_ns()`` costs.
        self.now_ns: Callable[[], int] = time.monotonic_ns

    def use_scheduler(self, select_cpus: Callable[[list[QueuedTask]], list[int]],
                      idle_cpus: Callable[[int, int], list[int]] | None = None) -> None:
        """Called by the worker once attached, to connect :meth:`select_cpus` and
        :meth:`idle_cpus`."""
        self._select_cpus = select_cpus
        self._idle_cpus = idle_cpus

    def use_clock(self, now_ns: Callable[[], int]) -> None:
        """Make :attr:`now_ns` read `now_ns` (a function returning ns): the simulator's
        virtual clock (``scx_pyland.sim``), or a test's. Live, the worker leaves the
        default, CLOCK_MONOTONIC."""
        self.now_ns = now_ns

    def select_cpus(self, tasks: list[QueuedTask]) -> list[int]:
        """An idle CPU for each task, nearest to the CPU it last ran on (a whole idle
        core first on SMT machines, then its L2 and L3 caches), or -1 where none it
        may use is idle. Each CPU returned is claimed, so a batch gets distinct CPUs.
        Without a kernel (tests, replays) every answer is -1."""
        if self._select_cpus is None:
            return [-1] * len(tasks)
        return self._select_cpus(tasks)

    def idle_cpus(self, min_idle_ns: int, min_uncontended_ns: int = 0) -> list[int]:
        """The CPUs that have run no task but the worker for at least `min_idle_ns`
        (ns) and had no task queued again without sleeping (its slice ended or it was
        preempted) for at least `min_uncontended_ns`, in id order: a read of the BPF
        side's state, no system call. A CPU whose task's slice just ended looks idle
        until the policy's decision for it comes back (the task is on its way to the
        policy): `min_uncontended_ns` tells the two apart. Without a kernel (tests,
        replays) no CPU is idle.

        Raises nothing; the answer may be a moment old (the BPF side writes while
        this reads)."""
        if self._idle_cpus is None:
            return []
        return self._idle_cpus(min_idle_ns, min_uncontended_ns)

    def enqueue(self, tasks: list[QueuedTask]) -> None:
        """Tasks that need a CPU, oldest first (possibly none)."""
        raise NotImplementedError

    def dispatch(self) -> list[DispatchedTask]:
        """The decisions to send now, in order, as a list (``[]`` for none: ``None`` or
        a tuple is an error); tasks not returned stay pending."""
        raise NotImplementedError

    @property
    def nr_pending(self) -> int:
        """How many queued tasks the policy holds without a decision yet."""
        return 0

    def tick(self) -> None:
        """Called about once a second while scheduling (optional)."""

    def on_exit(self) -> None:
        """Called once when the scheduler stops (optional)."""
