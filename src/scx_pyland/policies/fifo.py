"""FIFO: tasks run in the order they asked for a CPU, on whichever CPU is free first.

As scx_rlfifo: every queued task is dispatched in the same cycle, to the shared
queue; the slice shrinks as more tasks wait, so a long queue turns over quickly,
but never below the minimum slice.
"""

from __future__ import annotations

from scx_pyland.policy import RL_CPU_ANY, DispatchedTask, Policy, QueuedTask


class FifoPolicy(Policy):
    name = "fifo"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.waiting: list[QueuedTask] = []

    def enqueue(self, tasks: list[QueuedTask]) -> None:
        self.waiting += tasks

    def dispatch(self) -> list[DispatchedTask]:
        waiting, self.waiting = self.waiting, []
        if not waiting:
            return []
        # The slice shrinks with the number of tasks waiting for a CPU.
        slice_ns = max(self.config.slice_ns // len(waiting), self.config.slice_min_ns)
        # DispatchedTask(pid, cpu, flags, slice_ns, vtime, enq_cnt): positional
        # arguments are the cheaper call, and this runs once per task.
        return [DispatchedTask(task.pid, RL_CPU_ANY, 0, slice_ns, 0, task.enq_cnt) for task in waiting]

    @property
    def nr_pending(self) -> int:
        return len(self.waiting)
