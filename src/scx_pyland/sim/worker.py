"""The worker as the simulator runs it: the loop of src/scx_pyland/worker.py on the
virtual clock, with the real policy, the extension's real decoder and custody table,
and a cost model for the CPU time each cycle takes.

A cycle begins when the worker gets a CPU: it reads up to 512 records from the ring
(those there at that moment), and it ends ``cycle_ns + task_ns * records`` later;
then the policy's ``enqueue`` and ``dispatch`` run (reading the virtual clock, which
is the cycle's end), the decisions go onto the user ring, the worker tells the BPF
side how many tasks the policy holds and yields. Housekeeping as the worker's: the
rescue of tasks held longer than --rescue-after-ms (checked every quarter of it, at
most every second) and the policy's tick once a second. A policy that raises is
replaced by fifo, which gets every task it held, as live.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from scx_pyland import _bpf
from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.policy import Policy
from scx_pyland.sim.machine import Cpu

# src/scx_pyland/worker.py
BATCH = 512
TICK_NS = 1_000_000_000
RESCUE_PERIODS = 4

# The worker's CPU time per task read, by policy: the emulated guest's (docs/sim.md,
# "The cost model"); a policy of your own costs fifo's unless --task-us says otherwise.
TASK_NS_BY_POLICY = {"fifo": 94_000, "rustland": 197_000, "ceiling": 0}
DEFAULT_TASK_NS = TASK_NS_BY_POLICY["fifo"]


@dataclass(slots=True, frozen=True)
class CostModel:
    """CPU time of the simulated CPUs (ns). Defaults: the worker's measured costs in
    the emulated guest (QEMU TCG, 2 vCPUs, kernel 7.3.4; docs/hot-path.md and the
    README's benchmark), not a real machine's, which are many times lower.

    cycle_ns: one worker cycle (read the ring, call the policy, write the ring,
    yield), beyond the context switch; task_ns: each task the cycle read (decode,
    the policy's work, encode; None: TASK_NS_BY_POLICY); switch_ns: every context
    switch between two tasks, on any CPU, under every model."""

    cycle_ns: int = 87_000
    task_ns: int | None = None
    switch_ns: int = 51_000

    def task_cost(self, policy_name: str) -> int:
        """ns per task read for the named policy."""
        if self.task_ns is not None:
            return self.task_ns
        return TASK_NS_BY_POLICY.get(policy_name, DEFAULT_TASK_NS)


@dataclass(slots=True)
class WorkerCounters:
    cycles: int = 0
    tasks_read: int = 0
    decisions: int = 0          # sent to the BPF side (the policy's and the rescues)
    rescued: int = 0
    policy_errors: int = 0
    first_error: str = ""
    busy_ns: int = 0            # CPU time of its cycles (switches not included)


class SimWorker:
    """The worker's loop for one policy, on the kernel model's rings."""

    def __init__(self, kernel, policy: Policy, costs: CostModel, *, rescue_after_ns: int) -> None:
        self.kernel = kernel
        kernel.worker = self
        self.engine = kernel.engine
        self.policy = policy
        self.costs = costs
        self.cycle_ns = costs.cycle_ns
        self.task_ns = costs.task_cost(policy.name)
        self.custody = _bpf.Custody()
        self.backlog: list = []
        self.rescue_after_ns = rescue_after_ns
        self.housekeeping_ns = min(TICK_NS, rescue_after_ns // RESCUE_PERIODS)
        self.next_housekeeping = self.housekeeping_ns
        self.next_tick = TICK_NS
        self.custody.stamp_ns = 1           # 0 would make the extension read the real clock
        self.counters = WorkerCounters()
        policy.use_scheduler(kernel.select_cpus, kernel.idle_cpus)
        policy.use_clock(self.engine.clock)

    def begin(self, cpu: Cpu, start_ns: int) -> None:
        """The worker has the CPU: read the ring; the cycle ends after its cost."""
        if self.kernel.worker_stopped:
            self.engine.at(start_ns, self.blocked, cpu, cpu.token)
            return
        records = self.kernel.take_records(BATCH)
        cost = self.cycle_ns + self.task_ns * len(records)
        self.counters.busy_ns += cost
        self.engine.at(start_ns + cost, self.end_cycle, cpu, cpu.token, records)

    def blocked(self, cpu: Cpu, token: int) -> None:
        if token == cpu.token:
            self.kernel.worker_blocks(cpu)

    def end_cycle(self, cpu: Cpu, token: int, records: list) -> None:
        if token != cpu.token:
            return
        counters = self.counters
        counters.cycles += 1
        counters.tasks_read += len(records)
        tasks = self.custody.decode(b"".join(e.record for e in records)) if records else []
        try:
            self.policy.enqueue(tasks)
            decisions = self.policy.dispatch()
            if not isinstance(decisions, list):
                raise TypeError(f"dispatch() returned {type(decisions).__name__}, not a list of DispatchedTask")
            pending = self.policy.nr_pending
        except Exception:
            decisions, pending = self.fall_back()
        now = self.engine.now
        if now >= self.next_housekeeping:
            self.housekeeping(now)
        if self.backlog:
            decisions = self.backlog + (self.custody.release(decisions) if decisions else [])
            self.backlog = []
        elif decisions:
            try:
                decisions = self.custody.release(decisions)
            except TypeError:
                decisions, pending = self.fall_back()
                decisions = self.custody.release(decisions)
        if decisions:
            self.kernel.submit(decisions)
            counters.decisions += len(decisions)
        self.kernel.nr_scheduled = pending
        if self.kernel.worker_stopped:
            self.kernel.worker_blocks(cpu)
        else:
            self.kernel.schedule(cpu, self.kernel.worker_task)

    def housekeeping(self, now: int) -> None:
        """Rescue tasks held longer than the bound; the policy's tick once a second."""
        self.next_housekeeping = now + self.housekeeping_ns
        self.custody.stamp_ns = now
        rescued = self.custody.take_overdue(self.rescue_after_ns, self.policy.config.slice_ns, now)
        if rescued:
            self.counters.rescued += len(rescued)
            self.backlog.extend(rescued)
        if now >= self.next_tick:
            self.next_tick = now + TICK_NS
            try:
                self.policy.tick()
            except Exception:
                self.fall_back()

    def fall_back(self) -> tuple[list, int]:
        """Called in an except block: the policy raised. As the worker does, fifo takes
        every task it held; its first decisions and pending count are returned."""
        self.counters.policy_errors += 1
        if not self.counters.first_error:
            self.counters.first_error = traceback.format_exc().strip()
        failed = self.policy
        fifo = FifoPolicy(failed.config)
        fifo.use_scheduler(self.kernel.select_cpus, self.kernel.idle_cpus)
        fifo.use_clock(self.engine.clock)
        fifo.enqueue(self.custody.held())
        self.policy = fifo
        self.task_ns = self.costs.task_cost(fifo.name)
        return fifo.dispatch(), fifo.nr_pending
