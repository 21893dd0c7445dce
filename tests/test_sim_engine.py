"""The simulator's virtual clock, its machine and its workload API: time moves only
from event to event, slices end at ticks, a switch costs what the cost model says,
and a policy reads the virtual clock."""

from __future__ import annotations

import time

import pytest

from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.sim import (CostModel, Recv, Run, Send, SimOptions, Sleep, SleepUntil, Task, Workload, WorkloadError,
                            simulate)
from scx_pyland.sim.engine import Engine
from scx_pyland.sim.workload import Channel, load_weight, load_workload, nice_of_scx_weight, scx_weight
from scx_pyland.sim.workloads import hog

MS = 1_000_000
NO_SWITCH = SimOptions(costs=CostModel(switch_ns=0))


def test_events_run_in_time_order_and_those_due_together_in_the_order_scheduled():
    engine, seen = Engine(), []
    engine.at(30, seen.append, "c")
    engine.at(10, seen.append, "a")
    engine.at(10, seen.append, "b")
    engine.run(100)
    assert seen == ["a", "b", "c"]
    assert engine.now == 100


def test_the_clock_reads_each_events_own_time():
    engine, seen = Engine(), []
    for t in (5, 7, 7, 40):
        engine.at(t, lambda: seen.append(engine.clock()))
    engine.run(20)
    assert seen == [5, 7, 7] and engine.now == 20 and engine.pending == 1


def test_an_event_scheduled_in_the_past_runs_now():
    engine, seen = Engine(), []
    engine.at(50, lambda: engine.at(10, lambda: seen.append(engine.now)))
    engine.run(100)
    assert seen == [50]


def test_stop_ends_the_run_at_the_event_that_called_it():
    engine = Engine()
    engine.at(10, engine.stop)
    engine.at(20, pytest.fail, "ran past stop()")
    engine.run(100)
    assert engine.now == 10


def test_a_second_of_virtual_time_takes_far_less_than_a_second():
    workload = Workload("hogs", [Task(f"hog-{i}", hog) for i in range(4)], nr_cpus=2, duration_ns=1_000 * MS)
    started = time.perf_counter()
    result = simulate(workload, "fifo")
    assert result.duration_ns == 1_000 * MS
    assert time.perf_counter() - started < 1.0


class SliceOf(FifoPolicy):
    """fifo with a fixed slice."""

    slice_ns = MS

    def dispatch(self):
        decisions = super().dispatch()
        for d in decisions:
            d.slice_ns = self.slice_ns
        return decisions


def pinned_hogs(nr: int = 2) -> Workload:
    return Workload("pinned", [Task(f"hog-{i}", hog, cpus={1}) for i in range(nr)], nr_cpus=2, duration_ns=2_000 * MS)


@pytest.mark.parametrize("hz, run_ms", [(250, 4), (1000, 1), (100, 10)])
def test_a_slice_ends_at_the_first_tick_after_it_is_used_up(hz, run_ms):
    """A 1 ms slice is noticed at the tick: 4 ms runs at HZ 250, 1 ms at HZ 1000."""
    result = simulate(pinned_hogs(), SliceOf, SimOptions(hz=hz, costs=CostModel(switch_ns=0)))
    runs = result.groups["hog"].run
    tick = 1_000_000_000 // hz
    assert runs.p50_ns == run_ms * MS
    assert runs.max_ns < max(run_ms * MS, MS + tick)       # a run that began between two ticks
    assert result.groups["hog"].preemptions > 0


def test_a_context_switch_costs_the_cpu_its_switch_time():
    """Two hogs taking turns on one CPU: every run starts with a switch, whose time is
    the CPU's but not the work's."""
    without = simulate(pinned_hogs(), SliceOf, NO_SWITCH)
    with_switches = simulate(pinned_hogs(), SliceOf, SimOptions(costs=CostModel(switch_ns=400_000)))
    turns = with_switches.groups["hog"].preemptions
    lost = without.groups["hog"].ops - with_switches.groups["hog"].ops
    assert turns > 100
    assert lost == pytest.approx(turns * 0.4, rel=0.2)     # 1 op per ms of CPU, 0.4 ms per switch


def test_a_policy_reads_the_virtual_clock():
    class Clocked(FifoPolicy):
        def __init__(self, config):
            super().__init__(config)
            self.readings = []

        def enqueue(self, tasks):
            self.readings.append(self.now_ns())
            super().enqueue(tasks)

    policies = []

    class Recorded(Clocked):
        def __init__(self, config):
            super().__init__(config)
            policies.append(self)

    simulate(Workload("sleeper", [Task("s", periodic)], duration_ns=500 * MS), Recorded)
    readings = policies[0].readings
    assert readings == sorted(readings)
    assert 0 < readings[-1] <= 500 * MS


def periodic(period_ns: int = 10 * MS, run_ns: int = 100_000):
    wake = yield Run(run_ns)
    while True:
        wake += period_ns
        yield SleepUntil(wake)
        yield Run(run_ns)


def ping(inbox: Channel, outbox: Channel, loops: int):
    for _ in range(loops):
        yield Run(10_000)
        yield Send(outbox)
        yield Recv(inbox)


def pong(inbox: Channel, outbox: Channel, loops: int):
    for _ in range(loops):
        yield Recv(inbox)
        yield Run(10_000)
        yield Send(outbox)


def test_tasks_exchange_messages_and_the_simulation_ends_when_every_task_has():
    a, b = Channel("a"), Channel("b")
    workload = Workload("pingpong", [Task("ping", ping, (a, b, 100)), Task("pong", pong, (b, a, 100))],
                        duration_ns=10_000 * MS)
    for policy in (None, "fifo"):
        result = simulate(workload, policy, NO_SWITCH)
        assert result.ops == 200
        assert result.finished_ns is not None and result.duration_ns == result.finished_ns < 10_000 * MS


def test_a_sleep_until_a_past_time_does_not_block():
    def late():
        yield Run(5 * MS)
        yield SleepUntil(1 * MS)       # past: runs on
        yield Run(5 * MS)

    result = simulate(Workload("late", [Task("t", late)], duration_ns=100 * MS), None, NO_SWITCH)
    assert result.finished_ns == 10 * MS


def test_a_behaviour_that_yields_no_action_is_a_workload_error():
    def wrong():
        yield "run please"

    with pytest.raises(WorkloadError, match="no action"):
        simulate(Workload("wrong", [Task("t", wrong)], duration_ns=10 * MS), None)


def test_weights_are_the_kernels():
    assert [load_weight(n) for n in (-20, 0, 19)] == [88761, 1024, 15]
    assert load_weight(0, "idle") == 3
    assert [scx_weight(n) for n in (-20, 0, 5, 19)] == [8668, 100, 33, 1]
    assert scx_weight(0, "idle") == 1
    assert nice_of_scx_weight(1) == 19 and nice_of_scx_weight(100) == 0
    with pytest.raises(ValueError):
        Task("t", hog, nice=20)


def test_a_workload_of_your_own_loads_from_a_file(tmp_path):
    (tmp_path / "mine.py").write_text(
        "from scx_pyland.sim import Run, Sleep, Task, Workload\n"
        "def nap():\n"
        "    while True:\n"
        "        yield Run(1_000_000)\n"
        "        yield Sleep(9_000_000)\n"
        "def naps():\n"
        "    return Workload('naps', [Task(f'nap-{i}', nap) for i in range(3)], nr_cpus=1, duration_ns=10**8)\n")
    workload = load_workload(f"{tmp_path}/mine.py:naps")
    assert (workload.name, workload.nr_cpus, [t.group for t in workload.tasks]) == ("naps", 1, ["nap"] * 3)
    assert simulate(workload, "rustland").groups["nap"].ops >= 25


@pytest.mark.parametrize("spec, message", [
    ("nosuch", "unknown workload 'nosuch'"),
    ("{tmp}/missing.py:W", "no workload file"),
    ("{tmp}/broken.py:W", "SyntaxError"),
    ("{tmp}/ok.py:Missing", "has no 'Missing'"),
    ("{tmp}/ok.py:NOT_ONE", "is not a scx_pyland.sim.Workload"),
])
def test_a_workload_that_cannot_be_loaded_says_why(tmp_path, spec, message):
    (tmp_path / "broken.py").write_text("def W(:\n")
    (tmp_path / "ok.py").write_text("NOT_ONE = 3\n")
    with pytest.raises(WorkloadError, match=message):
        load_workload(spec.format(tmp=tmp_path))


def test_a_workload_naming_a_cpu_it_does_not_have_is_refused():
    with pytest.raises(WorkloadError, match="CPUs"):
        Workload("w", [Task("t", hog, cpus={3})], nr_cpus=2).check()


def test_sleep_takes_virtual_time():
    def sleeper():
        yield Sleep(30 * MS)
        yield Run(MS)

    result = simulate(Workload("s", [Task("t", sleeper)], duration_ns=100 * MS), None, NO_SWITCH)
    assert result.finished_ns == 31 * MS
