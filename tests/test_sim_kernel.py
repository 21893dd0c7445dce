"""The kernel-half model does what bpf/pyland.bpf.c does (docs/design.md, "The path of
one task"): direct dispatch to an idle CPU when nobody waits in user space, kernel
threads kept from the policy, RL_PREEMPT, cancels, custody service of a worker that
is too slow, and the worker's own rescue; the policy sees the very QueuedTask objects
it sees live."""

from __future__ import annotations

from scx_pyland import _bpf
from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.policy import Policy
from scx_pyland.sim import CostModel, SimOptions, Task, Workload, simulate
from scx_pyland.sim.kernel import SOURCES
from scx_pyland.sim.workload import Run, Sleep, SleepUntil
from scx_pyland.sim.workloads import cyclictest_hogs, hog

MS = 1_000_000


def napper(run_ns: int = 200_000, sleep_ns: int = 10 * MS):
    while True:
        yield Run(run_ns)
        yield Sleep(sleep_ns)


class Seen(FifoPolicy):
    """fifo that keeps every task it was given."""

    given: list = []

    def enqueue(self, tasks):
        Seen.given.extend(tasks)
        super().enqueue(tasks)


def test_the_policy_gets_the_extensions_own_queued_task_objects():
    Seen.given = []
    simulate(Workload("hogs", [Task(f"hog-{i}", hog) for i in range(3)], nr_cpus=1, duration_ns=200 * MS), Seen)
    assert Seen.given and all(type(t) is _bpf.QueuedTask for t in Seen.given)
    first = Seen.given[0]
    assert (first.comm, first.weight, first.nr_cpus_allowed) == ("hog-0", 100, 1)
    assert [t.enq_cnt for t in Seen.given if t.pid == first.pid][:3] == [1, 2, 3]


def test_a_wake_up_with_an_idle_cpu_and_nobody_waiting_goes_straight_there():
    """A lone sleeper on an idle machine: select_cpu dispatches it itself, every time
    (the worker runs only for its first enqueue and the heartbeat)."""
    result = simulate(Workload("nap", [Task("nap", napper)], nr_cpus=2, duration_ns=1_000 * MS), "rustland")
    assert result.dispatches["direct"] >= 95
    assert result.dispatches["user"] <= 2
    assert result.by_source["direct"].max_ns == 0
    assert result.worker["cycles"] <= 5


def test_kernel_threads_never_reach_the_policy():
    Seen.given = []
    workload = Workload("kworker", [Task("hog-0", hog), Task("hog-1", hog),
                                    Task("kworker", napper, kthread=True)], nr_cpus=1, duration_ns=500 * MS)
    result = simulate(workload, Seen)
    assert result.dispatches["kernel"] > 0
    assert result.by_source["kernel"].count > 0
    assert "kworker" not in {t.comm for t in Seen.given}


def test_a_woken_task_beside_cpu_hogs_gets_the_worker_at_once_and_runs_next():
    """rustland sends woken tasks with RL_PREEMPT: the hog is preempted for the worker,
    and the woken task runs on the CPU the worker leaves; fifo's wait for a slice end."""
    rustland = simulate(cyclictest_hogs(), "rustland", SimOptions(duration_ns=2_000 * MS))
    fifo = simulate(cyclictest_hogs(), "fifo", SimOptions(duration_ns=2_000 * MS))
    assert rustland.kernel["worker_preempts"] > 0
    assert rustland.groups["cyclictest"].wait.p50_ns < fifo.groups["cyclictest"].wait.p50_ns / 4
    assert rustland.groups["cyclictest"].wait.p50_ns < 2 * MS


def test_every_source_is_reported_even_when_it_is_empty():
    result = simulate(Workload("nap", [Task("nap", napper)], duration_ns=100 * MS), "fifo")
    assert list(result.by_source) == list(SOURCES)
    assert result.by_source["realtime"].count == 0


def test_a_worker_too_slow_to_read_its_records_is_served_by_the_bpf_side():
    """A worker cycle of 100 ms: records wait unread longer than --max-user-wait-ms, so
    the BPF side serves them itself (custody); the policy's late decisions for them
    are cancelled. Without the bound, every task waits for the slow worker."""
    def run(max_user_wait_ns: int):
        return simulate(cyclictest_hogs(), "fifo", SimOptions(duration_ns=3_000 * MS, max_user_wait_ns=max_user_wait_ns,
                                                              costs=CostModel(cycle_ns=100 * MS)))
    bounded, unbounded = run(50 * MS), run(0)
    assert bounded.dispatches["custody"] > 0
    assert bounded.kernel["cancelled"] > 0
    assert unbounded.dispatches["custody"] == 0 and unbounded.kernel["cancelled"] == 0
    assert bounded.groups["cyclictest"].wait.max_ns < 150 * MS < unbounded.groups["cyclictest"].wait.max_ns
    assert bounded.groups["cyclictest"].wait.p50_ns < unbounded.groups["cyclictest"].wait.p50_ns / 1.5


def test_while_the_worker_is_stopped_the_bpf_side_serves_the_tasks():
    """kill -STOP of the worker for 2 s: 250 ms after it last ran, new tasks are
    dispatched in the kernel (stalled) and the tasks queued to it are served from
    custody, so the machine goes on without it. (They keep the vtimes the policy gave
    them last, in SHARED_DSQ's order: docs/sim.md, "What the simulator found".)"""
    options = SimOptions(duration_ns=4_000 * MS, worker_stops=((1_000 * MS, 2_000 * MS),))
    result = simulate(cyclictest_hogs(), "rustland", options)
    assert result.dispatches["stalled"] > 100
    assert result.dispatches["custody"] > 0
    assert result.groups["hogs"].cpu_ns > 0.5 * 2 * 4_000 * MS    # as the VM test: half of the CPUs at least
    assert result.worker["cycles"] > 0


class Hoarder(Policy):
    """Holds every task and never decides."""

    def __init__(self, config):
        super().__init__(config)
        self.held = []

    def enqueue(self, tasks):
        self.held += tasks

    def dispatch(self):
        return []

    @property
    def nr_pending(self):
        return len(self.held)


def test_a_task_the_policy_holds_too_long_is_rescued_by_the_worker():
    """--rescue-after-ms: the worker dispatches a task held that long itself; the wait
    is between 3/4 and 5/4 of the bound (plus a cycle), as live."""
    options = SimOptions(duration_ns=3_000 * MS, rescue_after_ns=400 * MS)
    result = simulate(Workload("hogs", [Task(f"hog-{i}", hog) for i in range(2)], nr_cpus=1,
                               duration_ns=3_000 * MS), Hoarder, options)
    assert result.worker["rescued"] > 0
    assert 300 * MS <= result.wait.p50_ns <= 510 * MS


class Raises(FifoPolicy):
    def dispatch(self):
        if self.now_ns() > 100 * MS:
            raise RuntimeError("broken on purpose")
        return super().dispatch()


def test_a_policy_that_raises_is_replaced_by_fifo_as_live():
    result = simulate(Workload("hogs", [Task(f"hog-{i}", hog) for i in range(3)], nr_cpus=1,
                               duration_ns=500 * MS), Raises)
    assert result.worker["policy_errors"] == 1
    assert result.worker["policy_at_end"] == "fifo"
    assert "broken on purpose" in result.worker["first_error"]
    assert result.groups["hog"].ops > 300


def test_the_worker_is_a_task_that_takes_cpu_time():
    """Its CPU time is its cycles' cost; a costlier cycle leaves less to the workload."""
    cheap = simulate(cyclictest_hogs(), "rustland", SimOptions(duration_ns=1_000 * MS,
                                                               costs=CostModel(cycle_ns=10_000, task_ns=10_000)))
    dear = simulate(cyclictest_hogs(), "rustland", SimOptions(duration_ns=1_000 * MS,
                                                              costs=CostModel(cycle_ns=300_000, task_ns=300_000)))
    assert dear.worker["cpu_share"] > 3 * cheap.worker["cpu_share"]
    assert dear.groups["hogs"].ops < cheap.groups["hogs"].ops


def test_a_periodic_sleeper_wakes_on_time_on_an_idle_machine():
    def timer():
        wake = yield Run(10_000)
        for _ in range(50):
            wake += MS
            yield SleepUntil(wake)
            yield Run(10_000)

    result = simulate(Workload("timer", [Task("timer", timer)], duration_ns=1_000 * MS), "rustland")
    assert result.groups["timer"].ops == 51
    assert result.wait.max_ns < MS
