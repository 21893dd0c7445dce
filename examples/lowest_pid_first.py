"""An example policy: the task with the lowest pid runs first (older processes win).

Run it as root, in the checkout:  scx_pyland --policy examples/lowest_pid_first.py:LowestPidFirst
"""

import heapq

from scx_pyland.policy import RL_CPU_ANY, DispatchedTask, Policy


class LowestPidFirst(Policy):
    name = "lowest-pid-first"

    def __init__(self, config):
        super().__init__(config)
        self.waiting = []  # a heap of (pid, enqueue generation, task)

    def enqueue(self, tasks):
        for task in tasks:
            heapq.heappush(self.waiting, (task.pid, task.enq_cnt, task))

    def dispatch(self):
        # Everything waiting, lowest pid first, each for the maximum slice.
        out = []
        while self.waiting:
            pid, _, task = heapq.heappop(self.waiting)
            out.append(DispatchedTask(pid=pid, cpu=RL_CPU_ANY, slice_ns=self.config.slice_ns,
                                      enq_cnt=task.enq_cnt))
        return out

    @property
    def nr_pending(self):
        return len(self.waiting)
