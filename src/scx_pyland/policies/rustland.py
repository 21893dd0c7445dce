"""rustland: scx_rustland's policy, in Python. Tasks run in order of a deadline:

1. A task's vruntime: a new task (queued vtime 0) starts at the global
   vruntime_now; a task that slept earns at most one maximum slice of credit.
2. The last run is charged: its duration, scaled by 100 / weight, is added to the
   task's vruntime (a nice-19 task, weight 1, is charged 100 times its run), and
   to vruntime_now at most its duration.
3. Its deadline is its vruntime plus the CPU time it used since it last slept,
   capped at 100 maximum slices: tasks that run in short bursts (interactive ones)
   come first.
4. Each cycle the tasks with the earliest deadlines (then the earliest arrival,
   then the lowest pid) are dispatched, one per CPU (half the backlog when that is
   more), each on an idle CPU near its last one if there is one, else on any CPU
   (or always on the CPU it last ran on, with --percpu-local). The BPF side picks
   that idle CPU as it carries the decision out (RL_CPU_NEAR). The slice is the
   maximum shared among the tasks the policy holds (at least the minimum), scaled
   by weight and capped at the maximum: a lone CPU hog is not sent back through
   the worker every minimum slice (each trip costs the worker a cycle, and a
   waking task found the worker busy with them).
   A task that woke up is sent with RL_PREEMPT: if no CPU is idle, it runs next
   on the CPU the worker leaves, as the kernel's scheduler lets a waking task with
   an earlier deadline preempt (the BPF side lets one task at a time do so, and
   only ahead of tasks with a later vtime). Its deadline is its vruntime (a
   wake-up starts a new burst, rule 3), so it comes before any task still in its
   burst, such as a CPU hog.
5. Only tasks whose vruntime is at most one maximum slice ahead of vruntime_now
   are eligible, as in EEVDF: a task charged far ahead (a nice-19 task after a
   run) waits for the clock, 250 ms at most (the clock stands still while nothing
   runs), unless a CPU it may use has nothing to do: no task but the worker has
   run there for IDLE_GRACE_NS (1 ms) and no task's slice has ended there for
   two maximum slices (Policy.idle_cpus). As under EEVDF, a task alone on its
   CPUs runs whatever its vruntime. Without the wait, two CPU hogs on one CPU
   take turns: nice 0 and nice 19 got 50% each. Without the exception, a CPU
   stayed idle while a task waited for a clock that does not move when nothing
   else runs (docs/design.md, "Rule 5 and idle CPUs"). The slices are there
   because a CPU whose task's slice just ended looks idle until the decision
   for it comes back: with any idle CPU as the exception, a held nice-19 task
   took that CPU from a nice-0 one. A task held back goes to an idle CPU near
   its last one (RL_CPU_NEAR).

Departures from scx_rustland, each for a fault seen in a guest:

- vruntime_now, the clock of rule 1, advances by at most the CPU time used
  (rule 2). scx_rustland adds the whole weighted charge, so one nice-19 task's
  charge (100 times its run) pushed it so far ahead that rule 1 lifted every other
  task up to it: nice levels and SCHED_IDLE got equal shares. It must advance with
  the CPU time used, not only with the vruntimes dispatched: tasks that sleep
  often stay a slice behind it (rule 1), and a clock that waited for them left
  CPU hogs, whose deadline is up to 100 slices later (rule 3), waiting seconds.
- Rule 5 is ours: scx_rustland dispatches the earliest deadline whatever its
  vruntime, and relies on slices scaled by weight, which the kernel's tick (4 ms
  at HZ=250) rounds up to the same length for every task.
- The vtime sent back with a task is its vruntime, not its deadline. The kernel
  reports that vtime at the task's next enqueue, where rule 1 starts from it; a
  deadline there would add the task's exec_runtime to its vruntime again every
  cycle, so CPU-bound tasks ran away from vruntime_now and starved until the
  watchdog fired (seen under hackbench).
- The slice: scx_rustland gives the maximum divided among the waiting tasks; we
  scale that by weight too (the kernel enforces it only at the tick, so rule 5,
  not the slice, is what makes weights matter).
- Up to one task per CPU per cycle, or half a long backlog, where scx_rustland
  dispatches one: each worker cycle costs a yield and a trip through the
  interpreter (docs/benchmarks.md), and with hundreds of wake-ups queued one task
  per CPU per cycle left a woken task waiting over a second.

The lag of a runnable task is bounded as in scx_rustland: its vruntime is at most
one maximum slice behind vruntime_now (rule 1), its deadline at most 100 slices
ahead of its vruntime (rule 3), and vruntime_now advances with every CPU's use, so
even a CPU hog's turn comes within about 100 slices of CPU time (2 s at the
default 20 ms, shared among the busy CPUs). A task held while the worker does not
run at all (stopped, stalled) is the BPF side's to bound: after a short time it
dispatches new tasks itself (docs/design.md).
"""

from __future__ import annotations

import heapq

from scx_pyland.policy import ENQ_WAKEUP, RL_CPU_NEAR, RL_PREEMPT, DispatchedTask, Policy, PolicyConfig, \
    QueuedTask

# Rule 5: how many tasks ahead of the clock one cycle looks past, beyond one per CPU,
# and how long one waits for the clock at most (ns).
SCAN_AHEAD = 8
HOLD_MAX_NS = 250_000_000
# Rule 5: how long a CPU must have had nothing to run (but the worker), and how many
# maximum slices no task's slice may have ended there, before a task ahead of the
# clock may take it. A CPU whose task's slice ended looks idle until the policy's
# decision brings it back.
IDLE_GRACE_NS = 1_000_000
UNCONTENDED_SLICES = 2


class RustlandPolicy(Policy):
    name = "rustland"

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__(config)
        self.vruntime_now = 0
        # (deadline, arrival ns, pid, enq_cnt, vruntime, task): heapq keeps the
        # earliest first; enq_cnt tells apart two generations of one task.
        self.pending: list[tuple[int, int, int, int, int, QueuedTask]] = []

    def enqueue(self, tasks: list[QueuedTask]) -> None:
        if not tasks:
            return
        slice_max = self.config.slice_ns
        arrival = self.now_ns()
        vruntime_now = self.vruntime_now
        pending = self.pending
        for task in tasks:
            # Each field is read once: a read is a call into the extension (about
            # 1.2 us in the emulated guest, docs/hot-path.md).
            # Rule 1: new tasks start now; sleepers earn at most one slice of credit.
            vruntime = task.vtime
            if vruntime == 0:
                vruntime = vruntime_now
            elif vruntime < vruntime_now - slice_max:
                vruntime = vruntime_now - slice_max

            # Rule 2: charge the last run, scaled by the task's weight; the clock
            # advances by no more than the run itself.
            ran = task.stop_ts - task.start_ts
            if ran < 0:
                ran = 0
            vslice = ran * 100 // task.weight
            vruntime += vslice
            vruntime_now += vslice if vslice < ran else ran

            # Rule 3: the deadline favours tasks that use little CPU between sleeps.
            deadline = vruntime + min(task.exec_runtime, 100 * slice_max)
            heapq.heappush(pending, (deadline, arrival, task.pid, task.enq_cnt, vruntime, task))
        self.vruntime_now = vruntime_now

    def dispatch(self) -> list[DispatchedTask]:
        pending = self.pending
        if not pending:
            return []
        # Rule 4: the earliest deadlines among the eligible tasks run next, one task
        # per CPU at most, each for a slice scaled by its weight.
        # One task per CPU, or half the backlog when it is long: each cycle costs a
        # trip through the worker, and the rest still run in vtime order from the
        # kernel's DSQs.
        nr_cpus = max(self.config.nr_cpus, len(pending) // 2)
        eligible_until = self.vruntime_now + self.config.slice_ns
        chosen: list[tuple[int, int, int, int, int, QueuedTask]] = []
        ahead: list[tuple[int, int, int, int, int, QueuedTask]] = []
        while pending and len(chosen) < nr_cpus and len(ahead) < nr_cpus + SCAN_AHEAD:
            entry = heapq.heappop(pending)
            (chosen if entry[4] <= eligible_until else ahead).append(entry)
        # RL_CPU_NEAR rather than select_cpus(): the same idle CPU, picked by the BPF
        # side when it carries the decision out, without a system call per cycle.
        local = self.config.percpu_local
        slice_max = self.config.slice_ns
        base = max(self.config.slice_min_ns, slice_max // (len(pending) + len(chosen) + len(ahead)))
        out = [DispatchedTask(pid, task.cpu, 0, min(slice_max, base * task.weight // 100), vruntime, enq_cnt)
               if local else
               DispatchedTask(pid, RL_CPU_NEAR, RL_PREEMPT if task.flags & ENQ_WAKEUP else 0,
                              min(slice_max, base * task.weight // 100), vruntime, enq_cnt)
               for (_, _, pid, enq_cnt, vruntime, task) in chosen]
        # Rule 5: a task ahead of the clock waits for it, HOLD_MAX_NS at most, or
        # until a CPU it may use has had nothing to run for IDLE_GRACE_NS.
        if ahead:
            expired = self.now_ns() - HOLD_MAX_NS
            idle: list[int] | None = None
            for entry in ahead:
                task = entry[5]
                if entry[1] > expired:
                    if idle is None:
                        idle = self.idle_cpus(IDLE_GRACE_NS, UNCONTENDED_SLICES * slice_max)[len(chosen):]
                    if not take_idle_cpu(idle, task, self.config.nr_cpus):
                        heapq.heappush(pending, entry)
                        continue
                out.append(DispatchedTask(entry[2], task.cpu if local else RL_CPU_NEAR, 0,
                                          min(slice_max, base * task.weight // 100), entry[4], entry[3]))
        return out

    @property
    def nr_pending(self) -> int:
        return len(self.pending)


def take_idle_cpu(idle: list[int], task: QueuedTask, nr_cpus: int) -> bool:
    """Take from `idle` a CPU `task` may use, if there is one: any, for a task that
    may use every CPU; else the CPU it last ran on (the mask itself is not in the
    record, so a task with some CPUs is judged by its last one)."""
    if not idle:
        return False
    if task.nr_cpus_allowed >= nr_cpus:
        idle.pop()
        return True
    if task.cpu in idle:
        idle.remove(task.cpu)
        return True
    return False
