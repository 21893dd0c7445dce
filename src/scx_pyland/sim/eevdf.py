"""The reference column: a simple weighted-fair model in the manner of EEVDF, the
kernel's default scheduler. A model, not the kernel's code:

- one run queue for the whole machine (the kernel keeps one per CPU and balances
  them; here an idle CPU takes any runnable task it may run at once: ideal balancing);
- each task's vruntime advances by its CPU time scaled by 1024 / its load weight;
  a task is eligible when its vruntime is at most the load-weighted average of the
  runnable tasks' (lag >= 0), and its deadline is its vruntime plus the base slice
  (0.75 ms x (1 + log2 CPUs), at most 8) scaled the same way; a CPU runs the eligible
  task with the earliest deadline (the one with the least vruntime if none it may run
  is eligible);
- the running task's slice is used up when its vruntime reaches its deadline, and is
  noticed at the next tick, where it gets a new deadline and the CPU picks again;
- a woken task keeps the lag it had when it went to sleep if that was positive (none
  if negative, as delayed dequeue burns it off), bounded by two slices or a tick; it
  goes to its last CPU if idle, else any idle CPU, else it preempts the task on its
  last CPU if it is eligible with an earlier deadline (no RUN_TO_PARITY, no
  wake-up granularity);
- a new task starts at the average vruntime with half a slice to its deadline.

No real-time class, cgroups, NUMA, SMT or energy-aware placement.
"""

from __future__ import annotations

from scx_pyland.sim.machine import BLOCKED, EXITED, RUNNABLE, Cpu, Machine, SimTask
from scx_pyland.sim.workload import NICE_0_LOAD

BASE_SLICE_NS = 750_000


def base_slice_ns(nr_cpus: int) -> int:
    """sysctl_sched_base_slice scaled as the kernel's default (log) scaling does."""
    return BASE_SLICE_NS * (1 + (min(nr_cpus, 8).bit_length() - 1))


class EevdfModel:
    """The baseline model's scheduler, for a Machine."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.engine = machine.engine
        self.cpus = machine.cpus
        self.queue: list[SimTask] = []
        self.base_slice = base_slice_ns(machine.nr_cpus)
        self.lag_limit_ns = max(2 * self.base_slice, machine.tick_ns)
        self.v_idle = 0.0

    def start(self) -> None:
        pass

    def vslice(self, p: SimTask) -> float:
        return self.base_slice * NICE_0_LOAD / p.load

    def update_curr(self, cpu: Cpu, now: int) -> None:
        p = cpu.curr
        if p is not None and now > p.vr_since:
            p.vruntime += (now - p.vr_since) * NICE_0_LOAD / p.load
            p.vr_since = now

    def avg_vruntime(self, now: int, extra: SimTask | None = None) -> float:
        """The load-weighted average vruntime of the runnable tasks (running ones too)."""
        total = 0
        weighted = 0.0
        for cpu in self.cpus:
            if cpu.curr is not None:
                self.update_curr(cpu, now)
                total += cpu.curr.load
                weighted += cpu.curr.load * cpu.curr.vruntime
        for p in self.queue:
            total += p.load
            weighted += p.load * p.vruntime
        if extra is not None:
            total += extra.load
            weighted += extra.load * extra.vruntime
        if not total:
            return self.v_idle
        self.v_idle = weighted / total
        return self.v_idle

    def wake(self, p: SimTask, wakeup: bool) -> None:
        now = self.engine.now
        v = self.avg_vruntime(now)
        if wakeup:
            limit = self.lag_limit_ns * NICE_0_LOAD / p.load
            p.vruntime = v - min(max(p.vlag, 0.0), limit)
            p.deadline = p.vruntime + self.vslice(p)
        else:
            p.vruntime = v
            p.deadline = v + self.vslice(p) / 2
        self.queue.append(p)
        cpus = self.cpus
        target = None
        if p.cpu in p.allowed and cpus[p.cpu].curr is None and not cpus[p.cpu].resched_pending:
            target = cpus[p.cpu]
        else:
            for cpu in cpus:
                if cpu.curr is None and not cpu.resched_pending and cpu.id in p.allowed:
                    target = cpu
                    break
        if target is not None:
            # On that CPU's run queue: the others leave it (no balancing of a task
            # that is about to run).
            p.cpu = p.target = target.id
            self.m.request_resched(target)
            return
        cpu = cpus[p.cpu] if p.cpu in p.allowed else cpus[min(p.allowed)]
        curr = cpu.curr
        if curr is not None and p.vruntime <= v and p.deadline < curr.deadline:
            cpu.need_resched = True
            self.m.request_resched(cpu)

    def slice_expired(self, cpu: Cpu) -> None:
        p = cpu.curr
        now = self.engine.now
        self.update_curr(cpu, now)
        if p.vruntime >= p.deadline:
            p.deadline = p.vruntime + self.vslice(p)
            if any(cpu.id in q.allowed for q in self.queue):
                self.schedule(cpu, p)
                return
        self.arm(cpu, p, now)

    def schedule(self, cpu: Cpu, prev: SimTask | None) -> None:
        """Pick the next task for `cpu`; prev (its slice over, or preempted) competes,
        and goes on without a switch if it is picked again."""
        now = self.engine.now
        if prev is not None:
            self.update_curr(cpu, now)
            cpu.curr = None             # counted in the queue, not twice, while we pick
            self.queue.append(prev)
            nxt = self.pick(cpu, now)
            cpu.curr = prev
            if nxt is prev:
                self.queue.remove(prev)
                self.arm(cpu, prev, now)
                return
            self.m.stop(cpu)
            prev.state = RUNNABLE
            prev.runnable_since = now
        else:
            nxt = self.pick(cpu, now)
        if nxt is None:
            self.m.go_idle(cpu)
            return
        self.queue.remove(nxt)
        nxt.target = -1
        self.m.run_on(cpu, nxt)
        self.arm(cpu, nxt, now)

    def pick(self, cpu: Cpu, now: int) -> SimTask | None:
        """A task woken onto this CPU while it was idle (alone on its run queue, so
        it runs), else the eligible task with the earliest deadline, else the one with
        the least vruntime, among those that may run here."""
        cid = cpu.id
        for p in self.queue:
            if p.target == cid:
                return p
        v = self.avg_vruntime(now)
        best = fallback = None
        for p in self.queue:
            if cid not in p.allowed or p.target >= 0:
                continue
            if p.vruntime <= v and (best is None or p.deadline < best.deadline):
                best = p
            if fallback is None or p.vruntime < fallback.vruntime:
                fallback = p
        return best or fallback

    def arm(self, cpu: Cpu, p: SimTask, now: int) -> None:
        left = max(p.deadline - p.vruntime, 0.0) * p.load / NICE_0_LOAD
        self.m.arm_slice_at(cpu, now + int(left) + 1)

    def on_running(self, cpu: Cpu, p: SimTask, now: int) -> None:
        p.vr_since = now

    def on_stopping(self, cpu: Cpu, p: SimTask, now: int) -> None:
        if p.state in (BLOCKED, EXITED):
            if now > p.vr_since:
                p.vruntime += (now - p.vr_since) * NICE_0_LOAD / p.load
            p.vr_since = now
            p.vlag = self.avg_vruntime(now, extra=p) - p.vruntime

    def worker_begin(self, cpu: Cpu, start_ns: int) -> None:
        raise AssertionError("the EEVDF model has no worker")
