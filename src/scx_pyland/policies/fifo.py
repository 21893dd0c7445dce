"""FIFO: tasks run in the order they asked for a CPU, on whichever CPU is free first.

As scx_rlfifo: every task queued is dispatched in the same cycle, to the shared
queue; the slice shrinks as more tasks wait, so a long queue turns over quickly,
but never below the minimum slice.
"""

from __future__ import annotations

from scx_pyland.policy import RL_CPU_ANY, DispatchedTask, Policy, QueuedTask


class FifoPolicy(Policy):
    name = "fifo"

    def schedule(self, queued: list[QueuedTask]) -> list[DispatchedTask]:
        if not queued:
            return []
        # The slice shrinks with the number of tasks waiting for a CPU.
        slice_ns = max(self.config.slice_ns // len(queued), self.config.slice_min_ns)
        return [
            DispatchedTask(pid=task.pid, cpu=RL_CPU_ANY, slice_ns=slice_ns, enq_cnt=task.enq_cnt)
            for task in queued
        ]
