"""The simulated machine: virtual CPUs, the tasks' runtime state, and what happens on
a CPU while a task runs there. Which task runs where is a scheduling model's choice
(``scx_pyland.sim.kernel`` for scx_pyland, ``scx_pyland.sim.eevdf`` for the
baseline); this module carries the choices out and keeps the accounts:

- ``run_on(cpu, task)`` switches a task in: a context switch costs ``switch_ns`` of
  that CPU (unless the task is the one that ran there last, with no idle time in
  between), then the task's current ``Run`` goes on; ``stop(cpu)`` switches it out
  and charges what it ran.
- slices end at the first tick (every 1/HZ s, the same instants on every CPU) at or
  after the slice is used up: ``arm_slice(cpu, slice_ns)``;
- a task's wait is the time from becoming runnable (woken, new, or put back after a
  slice end or a preemption) to being switched in, charged to its group and to the
  way it got its CPU (``SimTask.source``, the sources of the live histograms).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from scx_pyland.sim.engine import Engine
from scx_pyland.sim.workload import (Channel, Recv, Run, Send, Sleep, SleepUntil, Task, Workload, WorkloadError,
                                     load_weight, scx_weight)

# SimTask.state
NEW, RUNNABLE, RUNNING, BLOCKED, EXITED = range(5)
# What stepping a task's behaviour came to.
STEP_RUN, STEP_BLOCK, STEP_EXIT = range(3)
FIRST_PID = 1000


@dataclass(slots=True, eq=False)
class SimTask:
    """A task's state in one simulation: the kernel's view of it, the BPF side's
    per-task context (start_ts ... decided_ts, as bpf/pyland.bpf.c keeps them), the
    EEVDF model's, and its accounts. Times in ns of the virtual clock."""

    pid: int
    name: str
    group: str
    allowed: frozenset[int]
    weight: int                 # sched_ext weight (100 = nice 0), as queued_task.weight
    load: int                   # the kernel's load weight (1024 = nice 0), for EEVDF
    kthread: bool = False
    is_worker: bool = False
    gen: Iterator | None = None
    state: int = NEW
    cpu: int = 0                # task_cpu(): where it runs or last ran or was placed
    remaining_ns: int = 0       # of its current Run
    in_run: bool = False        # it has a Run to do (else its behaviour is stepped first)
    phase_start: int = 0
    # The BPF side's task context.
    start_ts: int = 0
    stop_ts: int = 0
    exec_runtime: int = 0
    enq_cnt: int = 0
    dispatched_cnt: int = 0
    dsq_vtime: int = 0
    shared_ts: int = 0
    slice_ns: int = 0
    decided_ts: int = 0         # when the decision for its last enqueue was carried out; 0: none
    # The wait in progress.
    runnable_since: int = -1
    source: str = ""
    queued_at: int = -1         # when its record went to the worker
    decided_at: int = -1        # when the policy's decision for it was carried out
    # EEVDF.
    vruntime: float = 0.0
    deadline: float = 0.0
    vlag: float = 0.0
    vr_since: int = 0
    target: int = -1            # the idle CPU it was woken onto, until it runs
    # Accounts.
    cpu_ns: int = 0
    wait_ns: int = 0            # runnable but not running, summed
    preemptions: int = 0        # runs that ended with it still runnable
    sleeps: int = 0             # times it blocked after it had run
    ops: int = 0
    exited_at: int = -1


@dataclass(slots=True, eq=False)
class Cpu:
    """One virtual CPU: what runs there, its local DSQ, its own vtime-ordered DSQ (a
    heap of (vtime, seq, task)) and its idle bit, as sched_ext keeps them."""

    id: int
    curr: SimTask | None = None
    last: SimTask | None = None
    local: deque = field(default_factory=deque)
    dsq: list = field(default_factory=list)
    idle_bit: bool = True           # idle and not claimed (scx_bpf_test_and_clear_cpu_idle)
    resched_pending: bool = False
    need_resched: bool = False
    token: int = 0                  # bumped whenever curr changes: stale events check it
    slice_token: int = 0
    run_start: int = 0
    work_start: int = 0
    busy_ns: int = 0
    nr_local_next: int = 0
    burst_start: int = 0            # bpf: cpu_burst_start[cpu]


@dataclass(slots=True, eq=False)
class ChannelState:
    messages: int = 0
    waiters: deque = field(default_factory=deque)


class Model(Protocol):
    """What a scheduling model provides to the machine."""

    def start(self) -> None: ...
    def wake(self, task: SimTask, wakeup: bool) -> None: ...
    def schedule(self, cpu: Cpu, prev: SimTask | None) -> None: ...
    def slice_expired(self, cpu: Cpu) -> None: ...
    def on_running(self, cpu: Cpu, task: SimTask, now: int) -> None: ...
    def on_stopping(self, cpu: Cpu, task: SimTask, now: int) -> None: ...
    def worker_begin(self, cpu: Cpu, start_ns: int) -> None: ...


@dataclass(slots=True)
class Waits:
    """Every wait of a simulation (ns), by (group, source); and of the tasks the
    policy decided, the part until the decision was carried out, by group."""

    by_group_source: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    user_part: dict[str, list[int]] = field(default_factory=dict)
    unfinished: int = 0            # waits still going on at the end (counted with their length so far)


class Machine:
    """The CPUs and tasks of one simulation, on one engine. Raises WorkloadError from
    run() when a task's behaviour yields something that is not an action."""

    def __init__(self, workload: Workload, hz: int, switch_ns: int) -> None:
        self.engine = Engine()
        self.workload = workload
        self.nr_cpus = workload.nr_cpus
        self.tick_ns = 1_000_000_000 // hz
        self.switch_ns = switch_ns
        self.cpus = [Cpu(i) for i in range(self.nr_cpus)]
        self.model: Model | None = None
        self.tasks: list[SimTask] = []
        self.by_pid: dict[int, SimTask] = {}
        self.specs: dict[int, Task] = {}
        self.channels: dict[Channel, ChannelState] = {}
        self.waits = Waits()
        self.runs: dict[str, list[int]] = {}    # time on a CPU per run (ns), by group
        self.live = 0                   # workload tasks not ended yet
        all_cpus = frozenset(range(self.nr_cpus))
        for i, spec in enumerate(workload.tasks):
            task = SimTask(pid=FIRST_PID + i, name=spec.name, group=spec.group,
                           allowed=spec.cpus if spec.cpus is not None else all_cpus,
                           weight=scx_weight(spec.nice, spec.sched), load=load_weight(spec.nice, spec.sched),
                           kthread=spec.kthread)
            task.cpu = min(task.allowed)
            self.add(task)
            self.specs[task.pid] = spec

    def add(self, task: SimTask) -> SimTask:
        """Add a task the model knows of (the worker) or a workload's."""
        self.tasks.append(task)
        self.by_pid[task.pid] = task
        return task

    # -- running -------------------------------------------------------------------

    def run(self, model: Model, until_ns: int) -> None:
        """Start the workload's tasks and simulate until until_ns (ns)."""
        self.model = model
        self.live = len(self.specs)
        for task in self.tasks:
            spec = self.specs.get(task.pid)
            if spec is not None:
                self.engine.at(spec.start_ns, self.start_task, task, spec)
        model.start()
        self.engine.run(until_ns)
        self.finish()

    def start_task(self, task: SimTask, spec: Task) -> None:
        """A workload task is created (forked): its behaviour starts; it is runnable
        as a new task, or asleep if it begins with a sleep or a receive."""
        task.gen = spec.behaviour(*spec.args)
        outcome = self.step(task, first=True)
        if outcome == STEP_RUN:
            self.make_runnable(task, wakeup=False)
        elif outcome == STEP_EXIT:
            self.exited(task)

    def exited(self, task: SimTask) -> None:
        """A workload task ended; when the last one has, the simulation ends there."""
        self.live -= 1
        if not self.live:
            self.engine.stop()

    def make_runnable(self, task: SimTask, wakeup: bool) -> None:
        task.state = RUNNABLE
        task.runnable_since = self.engine.now
        self.model.wake(task, wakeup)

    def step(self, task: SimTask, first: bool = False) -> int:
        """Advance the task's behaviour to its next Run, block or end (zero-time actions
        in between are carried out). Raises WorkloadError for a non-action."""
        gen = task.gen
        now = self.engine.now
        value = None if first else now
        while True:
            try:
                action = gen.send(value)
            except StopIteration:
                task.state = EXITED
                task.exited_at = now
                return STEP_EXIT
            value = now
            kind = type(action)
            if kind is Run:
                if action.ns > 0:
                    task.remaining_ns = action.ns
                    task.in_run = True
                    return STEP_RUN
            elif kind is SleepUntil or kind is Sleep:
                wake_at = action.ns if kind is SleepUntil else now + action.ns
                if wake_at > now:
                    task.state = BLOCKED
                    self.engine.at(wake_at, self.wake_from_sleep, task)
                    return STEP_BLOCK
            elif kind is Send:
                self.send(action.channel, action.n)
            elif kind is Recv:
                state = self.channels.get(action.channel)
                if state is None:
                    state = self.channels[action.channel] = ChannelState()
                if state.messages:
                    state.messages -= 1
                else:
                    task.state = BLOCKED
                    state.waiters.append(task)
                    return STEP_BLOCK
            else:
                raise WorkloadError(f"task {task.name!r} yielded {action!r}, which is no action "
                                    f"(Run, Sleep, SleepUntil, Send, Recv)")

    def send(self, channel: Channel, n: int) -> None:
        state = self.channels.get(channel)
        if state is None:
            state = self.channels[channel] = ChannelState()
        state.messages += n
        while state.messages and state.waiters:
            state.messages -= 1
            self.make_runnable(state.waiters.popleft(), wakeup=True)

    def wake_from_sleep(self, task: SimTask) -> None:
        if task.state == BLOCKED:
            self.make_runnable(task, wakeup=True)

    def run_on(self, cpu: Cpu, task: SimTask) -> None:
        """Switch `task` in on `cpu` now; the model arms its slice."""
        now = self.engine.now
        cpu.curr = task
        cpu.idle_bit = False
        cpu.need_resched = False
        task.state = RUNNING
        task.cpu = cpu.id
        start = now + (self.switch_ns if cpu.last is not task else 0)
        cpu.last = task
        cpu.run_start = now
        cpu.work_start = start
        cpu.token += 1
        if task.runnable_since >= 0:
            self.record_wait(task, now)
        self.model.on_running(cpu, task, now)
        if task.is_worker:
            self.model.worker_begin(cpu, start)
        else:
            task.phase_start = start
            self.engine.at(start + task.remaining_ns, self.run_done, cpu, cpu.token)

    def stop(self, cpu: Cpu) -> SimTask:
        """Switch the running task out now and charge what it ran; returns it."""
        now = self.engine.now
        task = cpu.curr
        ran = now - cpu.run_start
        task.cpu_ns += ran
        cpu.busy_ns += ran
        if not task.is_worker:
            runs = self.runs.get(task.group)
            if runs is None:
                runs = self.runs[task.group] = []
            runs.append(ran)
            if task.state == RUNNING:
                task.preemptions += 1
            if task.in_run:
                done = now - task.phase_start
                if done > 0:
                    task.remaining_ns = max(task.remaining_ns - done, 0)
        cpu.curr = None
        cpu.token += 1
        cpu.slice_token += 1
        self.model.on_stopping(cpu, task, now)
        return task

    def run_done(self, cpu: Cpu, token: int) -> None:
        """The running task finished its Run (or, switched in with none, needs its next
        action): step its behaviour; it runs on, or blocks or ends and the CPU
        reschedules."""
        if token != cpu.token:
            return
        task = cpu.curr
        if task.in_run:
            task.in_run = False
            task.remaining_ns = 0
            task.ops += 1
        if self.step(task) == STEP_RUN:
            now = self.engine.now
            task.phase_start = now if now > cpu.work_start else cpu.work_start
            self.engine.at(task.phase_start + task.remaining_ns, self.run_done, cpu, token)
            return
        state = task.state
        self.stop(cpu)
        task.state = state
        if state == EXITED:
            self.exited(task)
        else:
            task.sleeps += 1
        self.model.schedule(cpu, None)

    def arm_slice(self, cpu: Cpu, slice_ns: int) -> None:
        """The running task's slice ends at the first tick at or after slice_ns from now."""
        cpu.slice_token += 1
        tick = self.tick_ns
        end = -(-(self.engine.now + slice_ns) // tick) * tick
        self.engine.at(end, self.slice_end, cpu, cpu.slice_token)

    def arm_slice_at(self, cpu: Cpu, used_up_ns: int) -> None:
        """As arm_slice, for a slice used up at the time used_up_ns (ns)."""
        cpu.slice_token += 1
        tick = self.tick_ns
        end = -(-used_up_ns // tick) * tick
        self.engine.at(end, self.slice_end, cpu, cpu.slice_token)

    def slice_end(self, cpu: Cpu, slice_token: int) -> None:
        if slice_token == cpu.slice_token and cpu.curr is not None:
            self.model.slice_expired(cpu)

    def go_idle(self, cpu: Cpu) -> None:
        """Nothing to run: the CPU runs its idle task (its idle bit is set again). The
        next task it runs costs a switch, as the idle task is a task."""
        cpu.idle_bit = True
        cpu.last = None

    def request_resched(self, cpu: Cpu) -> None:
        """Have the CPU go through its scheduler now (a kick, an insert into an idle
        CPU's local DSQ, a wake-up on an idle CPU), once however often asked."""
        if not cpu.resched_pending:
            cpu.resched_pending = True
            self.engine.at(self.engine.now, self._resched, cpu)

    def _resched(self, cpu: Cpu) -> None:
        """An idle CPU picks a task; a busy one asked to preempt (need_resched)
        puts its task back and picks again; any other goes on."""
        cpu.resched_pending = False
        if cpu.curr is None:
            self.model.schedule(cpu, None)
        elif cpu.need_resched:
            cpu.need_resched = False
            self.model.schedule(cpu, cpu.curr)

    # -- accounts ------------------------------------------------------------------

    def record_wait(self, task: SimTask, now: int) -> None:
        key = (task.group, task.source)
        waits = self.waits.by_group_source.get(key)
        if waits is None:
            waits = self.waits.by_group_source[key] = []
        wait = now - task.runnable_since
        waits.append(wait)
        task.wait_ns += wait
        if task.source == "user" and task.queued_at >= 0 and task.decided_at >= task.queued_at:
            part = self.waits.user_part.get(task.group)
            if part is None:
                part = self.waits.user_part[task.group] = []
            part.append(task.decided_at - task.queued_at)
        task.runnable_since = -1
        task.source = ""
        task.queued_at = -1
        task.decided_at = -1

    def finish(self) -> None:
        """At the end: charge what runs now, and count the waits still going on (with
        their length so far: a starved task must show)."""
        now = self.engine.now
        for cpu in self.cpus:
            if cpu.curr is not None:
                ran = now - cpu.run_start
                cpu.curr.cpu_ns += ran
                cpu.busy_ns += ran
                cpu.run_start = now
        for task in self.tasks:
            if not task.is_worker and task.state == RUNNABLE and task.runnable_since >= 0:
                self.waits.unfinished += 1
                self.record_wait(task, now)
