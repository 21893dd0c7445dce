"""The kernel half of scx_pyland as the simulator models it: bpf/pyland.bpf.c's
callbacks, rule by rule, on the machine's virtual CPUs (docs/design.md, "The path of
one task"; docs/sim.md says where the model departs from the kernel).

- ``select_cpu``: an idle CPU near the task's last one (its last CPU, else the
  lowest-numbered idle one: no cache domains) and, if nobody waits in user space
  (or the worker does not run, or is behind), straight into its local DSQ
  (``direct``);
- ``enqueue``: the worker into WORKER_DSQ; kernel threads into KTHREAD_DSQ (or their
  CPU's local DSQ when pinned: ``kernel``); while the worker has not run for 250 ms
  with work waiting, or a record waited unread longer than --max-user-wait-ms, to an
  idle CPU or SHARED_DSQ (``stalled``); else a record on the ring to the worker, which
  is woken: an idle CPU is kicked, or, for a wake-up with none idle, the CPU the task
  woke on is preempted if a CPU hog (2 ms since it last slept) runs there, once per
  worker run; a full ring keeps the task in the kernel (``congested``);
- ``dispatch`` (a CPU out of work): the worker's decisions (32 per call at most), each
  carried out as dispatch_task() does: a CPU it may use into that CPU's vtime DSQ and a
  kick (a preempting one with RL_PREEMPT), RL_CPU_NEAR an idle CPU near its last one,
  RL_CPU_ANY any idle CPU, else SHARED_DSQ, or with RL_PREEMPT next on this CPU (nothing
  waits in its local DSQ, SHARED_DSQ's first task waited less than a slice); a decision
  for a generation already dispatched (by custody) or older than the task's newest is
  cancelled; then custody: tasks held while the worker does not run, and records unread
  longer than --max-user-wait-ms, are served here (``custody``); then KTHREAD_DSQ, this
  CPU's DSQ, the worker if it has work, SHARED_DSQ; else the task whose slice ended goes
  on (the worker if it has work, any other if nobody waits in user space);
- the 1 s heartbeat and the custody watch (every 125 ms while the worker has work).

Not modelled: KERNEL_DSQ (tasks the BPF side serves itself go to an idle CPU or
SHARED_DSQ by their vtime, not to KERNEL_DSQ by a weighted deadline), real-time and deadline tasks (``realtime`` stays 0), cache domains and
SMT (an idle CPU is the task's last one, else the lowest-numbered), CPU hotplug,
kernels that cannot kick CPUs (7.1, 7.2), a full user ring, -EBUSY between two
CPUs draining at once; a kick takes effect at once, a CPU does not preempt itself
from its own ops.dispatch, and the worker is not preempted inside a cycle.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from dataclasses import dataclass, field

from scx_pyland import _bpf
from scx_pyland.records import queued_bytes
from scx_pyland.sim.machine import BLOCKED, EXITED, RUNNABLE, Cpu, Machine, SimTask

# bpf/pyland.bpf.c
WORKER_STALL_NS = 250_000_000
CUSTODY_WATCH_NS = WORKER_STALL_NS // 2
CUSTODY_SCAN = 16
PREEMPT_BURST_NS = 2_000_000
HEARTBEAT_NS = 1_000_000_000
# The kernel's SCX_DSP_DFL_MAX_BATCH: inserts one ops.dispatch call may make.
DISPATCH_MAX_BATCH = 32
# SCX_ENQ_* flags as the kernel passes them to ops.enqueue (queued_task.flags).
ENQ_WAKEUP = _bpf.ENQ_WAKEUP
ENQ_LAST = 1 << 41
# The ring `queued` (4 MiB) holds this many records (each with its 8-byte header).
RING_RECORDS = (4096 * 1024) // (_bpf.layout()["queued_task"]["__size__"] + 8)

SOURCES = ("user", "direct", "kernel", "realtime", "stalled", "custody", "congested")


@dataclass(slots=True, eq=False)
class RingEntry:
    """A record on the ring `queued`, and its custody entry (one object for both)."""

    record: bytes
    task: SimTask
    enq_cnt: int
    queued_at: int
    read: bool = False


@dataclass(slots=True)
class KernelCounters:
    """The BPF side's counters (bpf/pyland.bpf.c's nr_*_dispatches and friends)."""

    dispatches: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    cancelled: int = 0
    bounced: int = 0
    failed: int = 0
    worker_preempts: int = 0
    queued: int = 0


class PylandKernel:
    """The BPF side, driving a simulated worker (``scx_pyland.sim.worker.SimWorker``)."""

    def __init__(self, machine: Machine, worker_task: SimTask, *, slice_ns: int, max_user_wait_ns: int,
                 direct_dispatch: bool = True, worker_stops: tuple[tuple[int, int], ...] = ()) -> None:
        self.m = machine
        self.engine = machine.engine
        self.cpus = machine.cpus
        self.slice_ns = slice_ns
        self.max_user_wait_ns = max_user_wait_ns
        self.direct_dispatch = direct_dispatch
        self.worker_task = worker_task
        self.worker = None              # the SimWorker, set by it
        self.ring: deque[RingEntry] = deque()
        self.custody: deque[RingEntry] = deque()
        self.user_ring: deque = deque()
        self.shared: list = []          # (vtime, seq, task), kept sorted: DSQs iterate in vtime order
        self.kthread_dsq: deque[SimTask] = deque()
        self.worker_dsq: SimTask | None = None
        self.nr_scheduled = 0
        self.nr_sent = 0
        self.nr_received = 0
        self.worker_needed = False
        self.worker_running = False
        self.worker_last_run = 0
        self.worker_kicked = False
        self.worker_behind = False
        self.custody_watch_armed = False
        self.dispatching: Cpu | None = None
        self.seq = 0
        self.counters = KernelCounters()
        self.worker_stops = worker_stops
        self.worker_stopped = False     # kill -STOP: the worker is not runnable
        # cpu_idle_since / cpu_contended_at (Policy.idle_cpus, rustland's rule 5)
        self.idle_since = [0] * len(self.cpus)
        self.contended_at = [0] * len(self.cpus)

    # -- the machine's calls -----------------------------------------------------------

    def start(self) -> None:
        """Attach: the worker waits in WORKER_DSQ, needed; the heartbeat starts."""
        worker = self.worker_task
        worker.state = RUNNABLE
        self.worker_dsq = worker
        self.worker_needed = True
        self.wake_worker(-1)
        self.engine.at(HEARTBEAT_NS, self.heartbeat)
        for at_ns, for_ns in self.worker_stops:
            self.engine.at(at_ns, self.stop_worker)
            self.engine.at(at_ns + for_ns, self.continue_worker)

    def stop_worker(self) -> None:
        """kill -STOP: the worker is no longer runnable (out of WORKER_DSQ; a running
        worker stops at the end of its cycle)."""
        self.worker_stopped = True
        worker = self.worker_task
        if self.worker_dsq is worker:
            self.worker_dsq = None
            worker.state = BLOCKED

    def continue_worker(self) -> None:
        """kill -CONT: the worker wakes up (ops.enqueue with SCX_ENQ_WAKEUP)."""
        self.worker_stopped = False
        worker = self.worker_task
        if worker.state == BLOCKED:
            worker.state = RUNNABLE
            self.worker_dsq = worker
            self.worker_needed = True
            self.wake_worker(-1)

    def worker_blocks(self, cpu: Cpu) -> None:
        """The worker, stopped, leaves its CPU instead of yielding."""
        self.m.stop(cpu)
        self.worker_task.state = BLOCKED
        self.schedule(cpu, None)

    def wake(self, p: SimTask, wakeup: bool) -> None:
        """A task became runnable (woken, or new): ops.runnable, ops.select_cpu, then
        ops.enqueue unless select_cpu dispatched it; an idle CPU it was enqueued on
        reschedules (the kernel's wake-up preemption of the idle task)."""
        if wakeup:
            p.exec_runtime = 0
        cpu, direct = self.select_cpu(p, p.cpu)
        p.cpu = cpu
        if not direct:
            self.enqueue(p, ENQ_WAKEUP if wakeup else 0)
        target = self.cpus[cpu]
        if target.curr is None:
            self.m.request_resched(target)

    def slice_expired(self, cpu: Cpu) -> None:
        self.schedule(cpu, cpu.curr)

    def on_running(self, cpu: Cpu, p: SimTask, now: int) -> None:
        p.start_ts = now
        cpu.burst_start = now - p.exec_runtime
        if not p.is_worker:
            self.idle_since[cpu.id] = 0
        if p.is_worker:
            self.worker_last_run = now
            self.worker_running = True
            self.worker_kicked = False

    def on_stopping(self, cpu: Cpu, p: SimTask, now: int) -> None:
        p.stop_ts = now
        p.exec_runtime += now - p.start_ts
        if p.is_worker:
            self.worker_last_run = now
            self.worker_running = False
        else:
            self.idle_since[cpu.id] = now

    def worker_begin(self, cpu: Cpu, start_ns: int) -> None:
        self.worker.begin(cpu, start_ns)

    # -- a CPU's scheduler ---------------------------------------------------------------

    def schedule(self, cpu: Cpu, prev: SimTask | None) -> None:
        """The kernel's balance and pick on `cpu`: prev (runnable, its slice over, or
        preempted, or the yielding worker) or None. Its local DSQ first, then
        ops.dispatch, which may let prev go on; then prev is stopped and enqueued
        (SCX_ENQ_LAST if nothing else is to run here) and the next task switched in."""
        nxt = None
        if cpu.local:
            nxt = cpu.local.popleft()
        else:
            if self.dispatch(cpu, prev):
                if prev.is_worker:
                    self.worker.begin(cpu, self.engine.now)
                else:
                    self.m.arm_slice(cpu, self.slice_ns)
                return
            if cpu.local:
                nxt = cpu.local.popleft()
        if prev is not None:
            self.m.stop(cpu)
            prev.state = RUNNABLE
            if not prev.is_worker:      # the worker's own waits are not the workload's
                prev.runnable_since = self.engine.now
            self.enqueue(prev, ENQ_LAST if nxt is None else 0)
            if nxt is None and cpu.local:
                nxt = cpu.local.popleft()
        if nxt is not None:
            self.m.run_on(cpu, nxt)
            if not nxt.is_worker:
                self.m.arm_slice(cpu, nxt.slice_ns or self.slice_ns)
        else:
            self.m.go_idle(cpu)

    def kick(self, cpu: Cpu, preempt: bool = False) -> None:
        """scx_bpf_kick_cpu: an idle CPU reschedules; with preempt, a busy one too (its
        task's slice ends now). The CPU in ops.dispatch right now, and the worker in
        its cycle, are not preempted (docs/sim.md)."""
        if cpu is self.dispatching:
            return
        if cpu.curr is None:
            self.m.request_resched(cpu)
        elif preempt and not cpu.curr.is_worker:
            cpu.need_resched = True
            self.m.request_resched(cpu)

    # -- ops.select_cpu and idle CPUs ------------------------------------------------------

    def pick_idle_cpu(self, p: SimTask, prev: int) -> int:
        """An idle CPU p may use, prev first, claimed (its idle bit cleared); -1 if none."""
        allowed = p.allowed
        cpus = self.cpus
        if prev in allowed and cpus[prev].idle_bit:
            cpus[prev].idle_bit = False
            return prev
        for cpu in cpus:
            if cpu.idle_bit and cpu.id in allowed:
                cpu.idle_bit = False
                return cpu.id
        return -1

    def pick_idle_online(self, p: SimTask) -> int:
        """Any idle CPU p may use (the lowest), claimed; -1 if none."""
        allowed = p.allowed
        for cpu in self.cpus:
            if cpu.idle_bit and cpu.id in allowed:
                cpu.idle_bit = False
                return cpu.id
        return -1

    def select_cpus(self, tasks: list) -> list[int]:
        """Policy.select_cpus in the simulator: pick_idle_cpu() for each task (by pid),
        so a batch gets distinct CPUs; -1 where none is idle or the task is gone."""
        out = []
        for t in tasks:
            p = self.m.by_pid.get(t.pid)
            out.append(self.pick_idle_cpu(p, t.cpu) if p is not None else -1)
        return out

    def idle_cpus(self, min_idle_ns: int, min_uncontended_ns: int = 0) -> list[int]:
        """Policy.idle_cpus in the simulator: Scheduler.idle_cpus's rule on
        cpu_idle_since and cpu_contended_at, stamped as bpf/pyland.bpf.c stamps them."""
        now = self.engine.now
        return [c for c, since in enumerate(self.idle_since)
                if since and now - since >= min_idle_ns and now - self.contended_at[c] >= min_uncontended_ns]

    def select_cpu(self, p: SimTask, prev: int) -> tuple[int, bool]:
        """ops.select_cpu: (the task's CPU, whether it was dispatched there directly)."""
        cpu = self.pick_idle_cpu(p, prev)
        if cpu < 0:
            return (prev if prev in p.allowed else min(p.allowed)), False
        if (self.direct_dispatch and not p.is_worker and
                (not self.worker_has_work() or self.worker_unresponsive() or self.worker_behind)):
            self.cpus[cpu].local.append(p)
            p.slice_ns = self.slice_ns
            p.source = "direct"
            self.counters.dispatches["direct"] += 1
            return cpu, True
        return cpu, False

    # -- the worker's state --------------------------------------------------------------

    def worker_has_work(self) -> bool:
        return bool(self.worker_needed or self.nr_scheduled or self.nr_sent != self.nr_received or self.ring)

    def worker_unresponsive(self) -> bool:
        return (not self.worker_running and self.worker_has_work() and
                self.engine.now - self.worker_last_run > WORKER_STALL_NS)

    def worker_is_behind(self) -> bool:
        if not self.max_user_wait_ns or not self.ring:
            self.worker_behind = False
            return False
        self.custody_look(False, None, 0)
        return self.worker_behind

    def wake_worker(self, preempt_cpu: int) -> None:
        """Get the worker a CPU soon: an idle one, or for a wake-up with none idle the
        CPU the task woke on, if a CPU hog runs there (once per worker run)."""
        if self.worker_running:
            return
        worker = self.worker_task
        cpu = self.pick_idle_online(worker)
        if cpu >= 0:
            self.kick(self.cpus[cpu])
        elif (preempt_cpu >= 0 and preempt_cpu in worker.allowed and not self.worker_kicked and
              self.engine.now - self.cpus[preempt_cpu].burst_start >= PREEMPT_BURST_NS):
            self.worker_kicked = True
            self.kick(self.cpus[preempt_cpu], preempt=True)
            self.counters.worker_preempts += 1

    def heartbeat(self) -> None:
        if not self.worker_running:
            self.worker_needed = True
            self.wake_worker(-1)
        self.engine.at(self.engine.now + HEARTBEAT_NS, self.heartbeat)

    # -- ops.enqueue ---------------------------------------------------------------------

    def enqueue(self, p: SimTask, flags: int) -> None:
        counts = self.counters.dispatches
        if p.is_worker:
            self.worker_dsq = p
            if flags & ENQ_LAST and self.worker_has_work():
                self.kick(self.cpus[p.cpu])
            return
        if p.kthread:
            if len(p.allowed) > 1:
                self.kthread_dsq.append(p)
            else:
                self.cpus[p.cpu].local.append(p)
            p.slice_ns = self.slice_ns
            p.source = "kernel"
            counts["kernel"] += 1
            return
        if self.worker_unresponsive() or self.worker_is_behind():
            p.source = "stalled"
            counts["stalled"] += 1
            self.insert_anywhere(p, self.slice_ns, p.dsq_vtime, False, None)
            return
        if self.queue_to_user(p, flags):
            if not flags & ENQ_WAKEUP:
                self.contended_at[p.cpu] = self.engine.now
            self.wake_worker(p.cpu if flags & ENQ_WAKEUP else -1)
            if flags & ENQ_LAST:
                self.kick(self.cpus[p.cpu])
            return
        p.source = "congested"
        counts["congested"] += 1
        self.insert_anywhere(p, self.slice_ns, p.dsq_vtime, False, None)

    def queue_to_user(self, p: SimTask, flags: int) -> bool:
        """A record on the ring to the worker, and into custody. False if the ring is full."""
        if len(self.ring) >= RING_RECORDS:
            return False
        now = self.engine.now
        p.enq_cnt += 1
        record = queued_bytes(p.pid, cpu=p.cpu, nr_cpus_allowed=len(p.allowed), flags=flags, start_ts=p.start_ts,
                              stop_ts=p.stop_ts, exec_runtime=p.exec_runtime, weight=p.weight, vtime=p.dsq_vtime,
                              enq_cnt=p.enq_cnt, comm=p.name, enq_ts=now, decided_ts=p.decided_ts)
        p.decided_ts = 0
        entry = RingEntry(record, p, p.enq_cnt, now)
        self.ring.append(entry)
        self.custody.append(entry)
        p.queued_at = now
        self.counters.queued += 1
        if not self.custody_watch_armed:
            self.custody_watch_armed = True
            self.engine.at(now + CUSTODY_WATCH_NS, self.custody_watch)
        return True

    # -- inserts ---------------------------------------------------------------------

    def insert_on_cpu(self, p: SimTask, cpu: Cpu, slice_ns: int, vtime: int, preempt: bool) -> None:
        p.dsq_vtime = vtime
        p.slice_ns = slice_ns
        self.seq += 1
        heapq.heappush(cpu.dsq, (vtime, self.seq, p))
        self.kick(cpu, preempt)

    def insert_shared(self, p: SimTask, slice_ns: int, vtime: int) -> None:
        p.shared_ts = self.engine.now
        p.dsq_vtime = vtime
        p.slice_ns = slice_ns
        self.seq += 1
        bisect.insort(self.shared, (vtime, self.seq, p))

    def may_run_here_next(self, p: SimTask, cpu: Cpu) -> bool:
        if cpu.id not in p.allowed or cpu.nr_local_next or cpu.local:
            return False
        return not self.shared or self.engine.now - self.shared[0][2].shared_ts < self.slice_ns

    def insert_busy(self, p: SimTask, slice_ns: int, vtime: int, preempt: bool, here: Cpu | None) -> None:
        if preempt and here is not None and self.may_run_here_next(p, here):
            p.slice_ns = slice_ns
            here.local.append(p)
            here.nr_local_next += 1
        else:
            self.insert_shared(p, slice_ns, vtime)

    def insert_anywhere(self, p: SimTask, slice_ns: int, vtime: int, preempt: bool, here: Cpu | None) -> None:
        cpu = self.pick_idle_online(p)
        if cpu >= 0:
            self.insert_on_cpu(p, self.cpus[cpu], slice_ns, vtime, preempt)
        else:
            self.insert_busy(p, slice_ns, vtime, preempt, here)

    def insert_near(self, p: SimTask, slice_ns: int, vtime: int, preempt: bool, here: Cpu) -> None:
        cpu = self.pick_idle_cpu(p, p.cpu)
        if cpu >= 0:
            self.insert_on_cpu(p, self.cpus[cpu], slice_ns, vtime, preempt)
        else:
            self.insert_busy(p, slice_ns, vtime, preempt, here)

    def release_claimed_cpu(self, cpu: int) -> None:
        if 0 <= cpu < len(self.cpus):
            self.kick(self.cpus[cpu])

    # -- ops.dispatch ----------------------------------------------------------------

    def dispatch(self, cpu: Cpu, prev: SimTask | None) -> bool:
        """ops.dispatch(cpu, prev). True if prev goes on (its slice refilled)."""
        self.dispatching = cpu
        cpu.nr_local_next = 0
        slots = DISPATCH_MAX_BATCH
        user_ring = self.user_ring
        while user_ring and slots > 0:
            decision = user_ring.popleft()
            self.nr_received += 1
            slots -= self.dispatch_task(decision, cpu)
        if self.custody:
            self.custody_look(True, cpu, slots)
        keep = False
        if self.kthread_dsq and self.move_first_allowed(self.kthread_dsq, cpu):
            pass
        elif cpu.dsq:
            cpu.local.append(heapq.heappop(cpu.dsq)[2])
        elif self.worker_dsq is not None and self.worker_has_work():
            cpu.local.append(self.worker_dsq)
            self.worker_dsq = None
            self.worker_needed = False
        elif self.shared and self.move_first_allowed(self.shared, cpu):
            pass
        elif prev is not None:
            if not prev.is_worker:
                keep = not self.worker_has_work()
            elif self.worker_has_work():
                self.worker_needed = False
                keep = True
        self.dispatching = None
        return keep

    @staticmethod
    def move_first_allowed(dsq, cpu: Cpu) -> bool:
        """scx_bpf_dsq_move_to_local(): the first task of `dsq` (SHARED_DSQ's sorted
        (vtime, seq, task) entries, or KTHREAD_DSQ's tasks) that may run on `cpu`, into
        its local DSQ (the kernel skips the others); False if none may."""
        cid = cpu.id
        for i, entry in enumerate(dsq):
            task = entry[2] if isinstance(entry, tuple) else entry
            if cid in task.allowed:
                del dsq[i]
                cpu.local.append(task)
                return True
        return False

    def dispatch_task(self, d: _bpf.DispatchedTask, here: Cpu) -> int:
        """Carry out one decision of the worker; the dispatch slots it used (0 or 1)."""
        counters = self.counters
        p = self.m.by_pid.get(d.pid)
        if p is None or p.state == EXITED:
            counters.failed += 1
            self.release_claimed_cpu(d.cpu)
            return 0
        enq_cnt = d.enq_cnt
        if p.dispatched_cnt >= enq_cnt or enq_cnt < p.enq_cnt:
            # Served from custody already, or queued again since: cancelled.
            p.dispatched_cnt = max(p.dispatched_cnt, enq_cnt)
            counters.cancelled += 1
            self.release_claimed_cpu(d.cpu)
            return 0
        p.dispatched_cnt = enq_cnt
        slice_ns = d.slice_ns or self.slice_ns
        preempt = bool(d.flags & _bpf.RL_PREEMPT)
        target = d.cpu
        if 0 <= target < len(self.cpus) and target in p.allowed:
            self.insert_on_cpu(p, self.cpus[target], slice_ns, d.vtime, preempt)
        elif target == _bpf.RL_CPU_NEAR:
            self.insert_near(p, slice_ns, d.vtime, preempt, here)
        else:
            if target != _bpf.RL_CPU_ANY:
                counters.bounced += 1
                self.release_claimed_cpu(target)
            self.insert_anywhere(p, slice_ns, d.vtime, preempt, here)
        now = self.engine.now
        p.source = "user"
        p.decided_at = now
        p.decided_ts = now
        counters.dispatches["user"] += 1
        return 1

    # -- custody -----------------------------------------------------------------------

    def custody_look(self, serve: bool, cpu: Cpu | None, slots: int) -> None:
        """custody_look(): drop entries no longer held, serve (with `serve`, from
        ops.dispatch) the tasks held while the worker does not run and the records
        unread too long, move the ones the policy holds to the tail; set worker_behind."""
        custody = self.custody
        stalled = self.worker_unresponsive()
        now = self.engine.now
        max_wait = self.max_user_wait_ns
        behind = False
        for _ in range(CUSTODY_SCAN):
            if not custody:
                break
            e = custody[0]
            p = e.task
            if p.state == EXITED or p.enq_cnt != e.enq_cnt or p.dispatched_cnt >= e.enq_cnt:
                custody.popleft()
                continue
            overdue = not e.read and max_wait and now - e.queued_at > max_wait
            behind = behind or bool(overdue)
            if serve and (stalled or overdue):
                if slots < 2:
                    break
                custody.popleft()
                slots -= self.serve_entry(e, cpu)
            elif e.read:
                custody.rotate(-1)
            else:
                break
        self.worker_behind = behind

    def serve_entry(self, e: RingEntry, cpu: Cpu | None) -> int:
        p = e.task
        if p.enq_cnt != e.enq_cnt or p.dispatched_cnt >= e.enq_cnt:
            return 0
        p.dispatched_cnt = e.enq_cnt
        p.source = "custody"
        self.counters.dispatches["custody"] += 1
        self.insert_anywhere(p, self.slice_ns, p.dsq_vtime, False, cpu)
        return 1

    def custody_watch(self) -> None:
        if self.worker_unresponsive() or self.worker_behind:
            for cpu in self.cpus:
                if cpu.idle_bit:
                    cpu.idle_bit = False
                    self.kick(cpu)
                    break
        if self.worker_has_work():
            self.engine.at(self.engine.now + CUSTODY_WATCH_NS, self.custody_watch)
        else:
            self.custody_watch_armed = False

    # -- the worker's side of the rings ---------------------------------------------------

    def take_records(self, limit: int) -> list[RingEntry]:
        """Scheduler.dequeue's read: up to `limit` records, oldest first."""
        ring = self.ring
        n = min(limit, len(ring))
        out = [ring.popleft() for _ in range(n)]
        for e in out:
            e.read = True
        return out

    def submit(self, decisions: list) -> None:
        """Decisions onto the user ring `dispatched` (nr_sent += n)."""
        self.user_ring.extend(decisions)
        self.nr_sent += len(decisions)
