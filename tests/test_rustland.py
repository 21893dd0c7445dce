"""The rustland policy's four rules, fed records as bytes through the real decoder."""

from __future__ import annotations

import time

import pytest

from scx_pyland import _bpf
from scx_pyland.policies import rustland
from scx_pyland.policies.rustland import RustlandPolicy
from scx_pyland.policy import RL_CPU_NEAR, PolicyConfig
from scx_pyland.records import queued_bytes

SLICE_MAX = 20_000_000
SLICE_MIN = 1_000_000
CONFIG = PolicyConfig(slice_ns=SLICE_MAX, slice_min_ns=SLICE_MIN, nr_cpus=2)


def enqueue(policy, *records: bytes) -> None:
    policy.enqueue(_bpf.decode_queued(b"".join(records)))


def drain(policy) -> list[_bpf.DispatchedTask]:
    out = []
    while policy.nr_pending:
        decisions = policy.dispatch()
        assert decisions, "the policy holds tasks that no cycle dispatches"
        out += decisions
    return out


def test_a_new_task_starts_at_the_global_vruntime():
    policy = RustlandPolicy(CONFIG)
    policy.vruntime_now = 5_000_000
    enqueue(policy, queued_bytes(1, vtime=0, exec_runtime=0))
    [d] = drain(policy)
    assert d.vtime == 5_000_000


def test_a_sleeper_earns_at_most_one_maximum_slice_of_credit():
    policy = RustlandPolicy(CONFIG)
    policy.vruntime_now = 100 * SLICE_MAX
    enqueue(policy, queued_bytes(1, vtime=1, exec_runtime=0))
    [d] = drain(policy)
    assert d.vtime == 100 * SLICE_MAX - SLICE_MAX


def test_a_recent_vtime_is_kept():
    policy = RustlandPolicy(CONFIG)
    policy.vruntime_now = 10 * SLICE_MAX
    enqueue(policy, queued_bytes(1, vtime=10 * SLICE_MAX - 5, exec_runtime=0))
    [d] = drain(policy)
    assert d.vtime == 10 * SLICE_MAX - 5


def test_the_last_run_is_charged_scaled_by_weight_to_task_and_global_vruntime():
    policy = RustlandPolicy(CONFIG)
    policy.vruntime_now = 1_000
    # Ran 3 ms at weight 200 (a higher priority): charged 1.5 ms.
    enqueue(policy, queued_bytes(1, vtime=1_000, start_ts=10_000_000, stop_ts=13_000_000, weight=200))
    [d] = drain(policy)
    assert d.vtime == 1_000 + 1_500_000
    assert policy.vruntime_now == 1_000 + 1_500_000


def test_the_global_vruntime_advances_by_no_more_than_the_cpu_time_used(monkeypatch):
    policy = RustlandPolicy(CONFIG)
    policy.vruntime_now = 1_000
    # Ran 3 ms at weight 1 (nice 19): the task is charged 300 ms, the clock 3 ms.
    enqueue(policy, queued_bytes(1, vtime=1_000, start_ts=10_000_000, stop_ts=13_000_000, weight=1))
    monkeypatch.setattr(rustland, "HOLD_MAX_NS", 0)         # far ahead: let it run now
    [d] = drain(policy)
    assert d.vtime == 1_000 + 300_000_000
    assert policy.vruntime_now == 1_000 + 3_000_000


def simulate_one_cpu(weights: dict[int, int], ticks: int, tick_ns: int = 4_000_000) -> dict[int, int]:
    """CPU hogs (pid -> weight) sharing one CPU. Decisions wait in the CPU's queue and
    run in order; each runs one tick (the kernel rounds a shorter slice up to it)
    and comes back as the kernel would report it. When the queue is empty the
    policy is asked. Returns the ticks each pid got."""
    policy = RustlandPolicy(PolicyConfig(slice_ns=SLICE_MAX, slice_min_ns=SLICE_MIN, nr_cpus=1))
    got = {pid: 0 for pid in weights}
    enqueue(policy, *(queued_bytes(pid, weight=w, vtime=1) for pid, w in weights.items()))
    queue: list = []
    for tick in range(ticks):
        if not queue:
            queue = policy.dispatch()
        assert queue, "the CPU is idle while tasks wait"
        d = queue.pop(0)
        got[d.pid] += 1
        enqueue(policy, queued_bytes(d.pid, weight=weights[d.pid], vtime=d.vtime, start_ts=tick * tick_ns,
                                     stop_ts=(tick + 1) * tick_ns, exec_runtime=10**12))
    return got


def test_a_task_far_ahead_of_the_clock_waits_for_it_250_ms_at_most():
    policy = RustlandPolicy(CONFIG)
    policy.vruntime_now = 100 * SLICE_MAX
    enqueue(policy, queued_bytes(1, vtime=100 * SLICE_MAX + 2 * SLICE_MAX))
    assert policy.dispatch() == [] and policy.nr_pending == 1
    later = time.monotonic_ns() + rustland.HOLD_MAX_NS
    policy.use_clock(lambda: later)
    [d] = policy.dispatch()
    assert (d.pid, d.cpu) == (1, RL_CPU_NEAR) and policy.nr_pending == 0


def held_ahead(idle_cpus, *tasks) -> RustlandPolicy:
    """A rustland policy whose BPF side reports `idle_cpus(min_idle_ns)`, holding
    `tasks` far ahead of its clock."""
    policy = RustlandPolicy(PolicyConfig(slice_ns=SLICE_MAX, slice_min_ns=SLICE_MIN, nr_cpus=2))
    policy.use_scheduler(lambda tasks: [-1] * len(tasks), idle_cpus)
    policy.vruntime_now = 100 * SLICE_MAX
    enqueue(policy, *tasks)
    return policy


def test_a_task_ahead_of_the_clock_runs_at_once_on_a_cpu_that_has_nothing_to_run():
    """Issue 28 item 1: EEVDF runs a task alone on its CPU whatever its vruntime; a
    held nice-19 task waited up to 250 ms a wake-up beside an idle CPU."""
    asked = []

    def idle_cpus(min_idle_ns, min_uncontended_ns):
        asked.append((min_idle_ns, min_uncontended_ns))
        return [1]
    far = 100 * SLICE_MAX + 2 * SLICE_MAX
    policy = held_ahead(idle_cpus, queued_bytes(1, cpu=1, nr_cpus_allowed=1, vtime=far),
                        queued_bytes(2, cpu=0, nr_cpus_allowed=1, vtime=far))
    assert [(d.pid, d.cpu) for d in policy.dispatch()] == [(1, RL_CPU_NEAR)]
    assert asked == [(rustland.IDLE_GRACE_NS, rustland.UNCONTENDED_SLICES * SLICE_MAX)]
    assert policy.nr_pending == 1


def test_an_idle_cpu_goes_to_one_held_task_and_not_to_a_chosen_one_s_share():
    far = 100 * SLICE_MAX + 2 * SLICE_MAX
    # Two tasks that may use any CPU, one CPU idle: one of them runs.
    policy = held_ahead(lambda ns, wait: [1], queued_bytes(1, vtime=far), queued_bytes(2, vtime=far + 1))
    assert [d.pid for d in policy.dispatch()] == [1] and policy.nr_pending == 1
    # An eligible task chosen in the same cycle takes the idle CPU first.
    policy = held_ahead(lambda ns, wait: [1], queued_bytes(1, vtime=far), queued_bytes(3, vtime=100 * SLICE_MAX))
    assert [d.pid for d in policy.dispatch()] == [3] and policy.nr_pending == 1


def test_a_task_ahead_of_the_clock_waits_while_its_cpus_are_busy():
    far = 100 * SLICE_MAX + 2 * SLICE_MAX
    policy = held_ahead(lambda ns, wait: [], queued_bytes(1, vtime=far))
    assert policy.dispatch() == [] and policy.nr_pending == 1
    policy = held_ahead(lambda ns, wait: [0], queued_bytes(1, cpu=1, nr_cpus_allowed=1, vtime=far))
    assert policy.dispatch() == [] and policy.nr_pending == 1


def test_rustland_never_asks_for_idle_cpus_itself():
    """The idle CPU near a task's last one is the BPF side's to pick (RL_CPU_NEAR), so
    a cycle costs no select_cpus system call, and rule 5 holds a task ahead of the
    clock while no CPU has been idle for its grace (rustland's docstring)."""
    def asked(tasks):
        raise AssertionError("rustland called select_cpus")
    policy = RustlandPolicy(CONFIG)
    policy.use_scheduler(asked)
    policy.vruntime_now = 100 * SLICE_MAX
    enqueue(policy, queued_bytes(1, cpu=1), queued_bytes(2, flags=_bpf.ENQ_WAKEUP),
            queued_bytes(3, vtime=100 * SLICE_MAX + 2 * SLICE_MAX))
    assert sorted((d.pid, d.cpu) for d in policy.dispatch()) == [(1, RL_CPU_NEAR), (2, RL_CPU_NEAR)]
    later = time.monotonic_ns() + rustland.HOLD_MAX_NS
    policy.use_clock(lambda: later)
    assert [(d.pid, d.cpu) for d in policy.dispatch()] == [(3, RL_CPU_NEAR)]


def test_the_clock_catching_up_makes_a_held_task_eligible():
    policy = RustlandPolicy(CONFIG)
    policy.vruntime_now = 100 * SLICE_MAX
    enqueue(policy, queued_bytes(1, vtime=100 * SLICE_MAX + 2 * SLICE_MAX))
    assert policy.dispatch() == []
    # Another task ran 30 ms: the clock moves 30 ms, the held task is 10 ms ahead.
    enqueue(policy, queued_bytes(2, vtime=100 * SLICE_MAX, start_ts=0, stop_ts=30_000_000))
    assert sorted(d.pid for d in policy.dispatch()) == [1, 2]


def test_cpu_hogs_on_one_cpu_share_it_by_weight():
    # nice 0, nice 19 (weight 1), SCHED_BATCH (nice 0), SCHED_IDLE (weight 1).
    got = simulate_one_cpu({1: 100, 2: 1, 3: 100, 4: 1}, ticks=4000)
    share = {pid: 100 * n / 4000 for pid, n in got.items()}
    assert 47 <= share[1] <= 51 and 47 <= share[3] <= 51, share
    assert 0 < share[2] <= 2 and 0 < share[4] <= 2, share


def test_nice_19_beside_nice_0_gets_about_1_percent():
    got = simulate_one_cpu({1: 100, 2: 1}, ticks=3000)
    assert 0 < got[2] <= 3000 * 0.02, got


def test_the_deadline_adds_the_cpu_time_since_the_last_sleep():
    policy = RustlandPolicy(CONFIG)
    # Same vruntime; 2 used 7 ms since it slept, 1 used 6 ms: 1 runs first.
    enqueue(policy, queued_bytes(2, vtime=0, exec_runtime=7_000_000),
            queued_bytes(1, vtime=0, exec_runtime=6_000_000))
    assert [d.pid for d in drain(policy)] == [1, 2]


def test_the_deadline_is_capped_at_100_maximum_slices():
    policy = RustlandPolicy(CONFIG)
    policy.vruntime_now = 200 * SLICE_MAX
    # A CPU hog (huge exec_runtime) at vruntime V is capped at V + 100 slices, so it
    # runs before a task whose deadline is V + 100.5 slices.
    enqueue(policy, queued_bytes(1, vtime=200 * SLICE_MAX, exec_runtime=10**15),
            queued_bytes(2, vtime=200 * SLICE_MAX + SLICE_MAX // 2, exec_runtime=100 * SLICE_MAX))
    assert [d.pid for d in drain(policy)] == [1, 2]


def test_the_vtime_sent_back_is_the_vruntime_not_the_deadline():
    policy = RustlandPolicy(CONFIG)
    enqueue(policy, queued_bytes(1, vtime=0, exec_runtime=7_000_000))
    [d] = drain(policy)
    assert d.vtime == 0


def test_the_earliest_deadline_runs_first():
    policy = RustlandPolicy(CONFIG)
    enqueue(policy, queued_bytes(1, exec_runtime=9_000_000), queued_bytes(2, exec_runtime=1_000),
            queued_bytes(3, exec_runtime=5_000_000))
    assert [d.pid for d in drain(policy)] == [2, 3, 1]


def test_equal_deadlines_go_by_arrival_then_pid():
    policy = RustlandPolicy(CONFIG)
    enqueue(policy, queued_bytes(30), queued_bytes(20))
    enqueue(policy, queued_bytes(10))
    assert [d.pid for d in drain(policy)] == [20, 30, 10]


def test_one_task_per_cpu_is_dispatched_per_cycle_and_the_rest_stay_pending():
    policy = RustlandPolicy(CONFIG)     # 2 CPUs
    enqueue(policy, queued_bytes(1), queued_bytes(2), queued_bytes(3))
    assert len(policy.dispatch()) == 2
    assert policy.nr_pending == 1
    assert len(policy.dispatch()) == 1
    assert policy.nr_pending == 0


@pytest.mark.parametrize("weight, slice_ns", [(100, SLICE_MAX), (200, SLICE_MAX), (50, SLICE_MAX // 2),
                                              (1, SLICE_MAX // 100)])
def test_a_lone_task_gets_the_maximum_slice_scaled_by_weight_and_capped(weight, slice_ns):
    policy = RustlandPolicy(CONFIG)
    enqueue(policy, queued_bytes(1, weight=weight))
    [d] = drain(policy)
    assert d.slice_ns == slice_ns


def test_the_slice_is_shared_among_the_tasks_held_down_to_the_minimum():
    policy = RustlandPolicy(CONFIG)
    enqueue(policy, *(queued_bytes(pid) for pid in range(1, 5)))
    assert {d.slice_ns for d in policy.dispatch()} == {SLICE_MAX // 4}
    policy = RustlandPolicy(CONFIG)
    enqueue(policy, *(queued_bytes(pid) for pid in range(1, 101)))
    assert {d.slice_ns for d in policy.dispatch()} == {SLICE_MIN}


def test_a_woken_task_with_no_idle_cpu_runs_next_on_the_cpu_the_worker_leaves():
    policy = RustlandPolicy(CONFIG)
    enqueue(policy, queued_bytes(1, flags=_bpf.ENQ_WAKEUP), queued_bytes(2, flags=0))
    flags = {d.pid: d.flags for d in drain(policy)}
    assert flags == {1: _bpf.RL_PREEMPT, 2: 0}


def test_an_idle_cpu_near_the_last_by_default_and_the_previous_cpu_with_percpu_local():
    default, local = RustlandPolicy(CONFIG), RustlandPolicy(PolicyConfig(percpu_local=True))
    enqueue(default, queued_bytes(1, cpu=1))
    enqueue(local, queued_bytes(1, cpu=1))
    assert drain(default)[0].cpu == _bpf.RL_CPU_NEAR
    assert drain(local)[0].cpu == 1


def test_the_enqueue_generation_is_copied():
    policy = RustlandPolicy(CONFIG)
    enqueue(policy, queued_bytes(1, enq_cnt=77))
    assert drain(policy)[0].enq_cnt == 77


def test_two_generations_of_one_task_can_wait_together():
    policy = RustlandPolicy(CONFIG)
    enqueue(policy, queued_bytes(1, enq_cnt=1), queued_bytes(1, enq_cnt=2))
    assert sorted(d.enq_cnt for d in drain(policy)) == [1, 2]


def test_half_a_long_backlog_is_dispatched_per_cycle():
    policy = RustlandPolicy(CONFIG)     # 2 CPUs
    enqueue(policy, *(queued_bytes(pid) for pid in range(1, 11)))
    assert len(policy.dispatch()) == 5
    assert policy.nr_pending == 5


def test_rustland_reads_the_time_from_its_clock_hook():
    """Rule 5's hold is measured on the policy's own clock (Policy.now_ns): the
    worker's CLOCK_MONOTONIC live, the simulator's virtual clock in scx_pyland sim."""
    now = [5_000_000_000]
    policy = RustlandPolicy(CONFIG)
    policy.use_clock(lambda: now[0])
    policy.vruntime_now = 100 * SLICE_MAX
    enqueue(policy, queued_bytes(1, vtime=100 * SLICE_MAX + 2 * SLICE_MAX))
    now[0] += rustland.HOLD_MAX_NS - 1
    assert policy.dispatch() == []
    now[0] += 1
    assert [d.pid for d in policy.dispatch()] == [1]


def test_a_policys_clock_is_the_monotonic_clock_unless_told_otherwise():
    assert RustlandPolicy(CONFIG).now_ns is time.monotonic_ns
