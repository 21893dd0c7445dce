"""The worker's custody of the tasks it handed to the policy (_bpf.Custody), with
records decoded by the extension's own decoder from bytes in the bpf/intf.h layout."""

from __future__ import annotations

import random

import pytest

from scx_pyland import _bpf
from scx_pyland.policy import RL_CPU_ANY, DispatchedTask
from scx_pyland.records import dispatched_records, queued_bytes

SECOND = 1_000_000_000


def queued(*pids: int, enq_cnt: int = 1, vtime: int = 0) -> list:
    return _bpf.decode_queued(b"".join(queued_bytes(pid, enq_cnt=enq_cnt, vtime=vtime) for pid in pids))


def decision(pid: int, enq_cnt: int = 1) -> DispatchedTask:
    return DispatchedTask(pid, RL_CPU_ANY, 0, 0, 0, enq_cnt)


def test_a_decision_for_the_generation_held_releases_the_task():
    custody = _bpf.Custody()
    custody.receive(queued(1, 2, 3))
    decisions = [decision(1), decision(3)]
    assert custody.release(decisions) is decisions       # all valid: the same list, no copy
    assert len(custody) == 1 and [t.pid for t in custody.held()] == [2]
    assert (custody.nr_released, custody.nr_stale, custody.nr_invalid) == (2, 0, 0)


def test_decisions_for_tasks_not_held_are_left_out_and_counted():
    custody = _bpf.Custody()
    custody.receive(queued(1, 2))
    kept = custody.release([decision(1), decision(99), decision(2), decision(1)])
    assert [d.pid for d in kept] == [1, 2]               # 99 was never given; 1 came twice
    assert custody.nr_invalid == 2 and len(custody) == 0


def test_a_generation_never_given_is_invalid_and_an_older_one_is_stale():
    custody = _bpf.Custody()
    custody.receive(queued(5, enq_cnt=3))
    assert custody.release([decision(5, enq_cnt=4)]) == []    # newer than given: invalid
    stale = [decision(5, enq_cnt=2)]
    assert custody.release(stale) is stale                    # older: sent, the BPF side cancels it
    assert len(custody) == 1 and custody.nr_stale == 1 and custody.nr_invalid == 1


def test_a_newer_record_of_a_task_held_replaces_it_and_keeps_its_waiting_time():
    custody = _bpf.Custody()
    custody.receive(queued(7, enq_cnt=1, vtime=10), now_ns=1 * SECOND)
    custody.receive(queued(7, enq_cnt=2, vtime=20), now_ns=5 * SECOND)
    assert len(custody) == 1 and custody.held()[0].enq_cnt == 2
    [rescued] = custody.take_overdue(3 * SECOND, 1000, now_ns=5 * SECOND)   # waiting since 1 s
    assert (rescued.pid, rescued.enq_cnt, rescued.vtime) == (7, 2, 20)


def test_take_overdue_removes_what_waited_too_long_oldest_first():
    custody = _bpf.Custody()
    custody.receive(queued(30, 10), now_ns=1 * SECOND)
    custody.receive(queued(20), now_ns=2 * SECOND)
    custody.receive(queued(40), now_ns=9 * SECOND)
    rescued = custody.take_overdue(5 * SECOND, 20_000_000, now_ns=10 * SECOND)
    assert [d.pid for d in rescued] == [30, 10, 20]          # by arrival: time, then order
    assert all(d.cpu == RL_CPU_ANY and d.slice_ns == 20_000_000 and d.enq_cnt == 1 for d in rescued)
    assert [t.pid for t in custody.held()] == [40]
    assert custody.take_overdue(5 * SECOND, 1, now_ns=10 * SECOND) == []


def test_held_lists_every_task_oldest_first_and_keeps_them():
    custody = _bpf.Custody()
    custody.receive(queued(3, 1), now_ns=1)
    custody.receive(queued(2), now_ns=2)
    assert [t.pid for t in custody.held()] == [3, 1, 2]
    assert len(custody) == 3


@pytest.mark.parametrize("bad, message", [
    ((decision(1),), "must return a list of DispatchedTask, not tuple"),
    ([decision(1), 42], "returned a int among its decisions"),
    (None, "not NoneType"),
])
def test_anything_but_a_list_of_decisions_is_a_type_error_that_releases_nothing(bad, message):
    custody = _bpf.Custody()
    custody.receive(queued(1))
    with pytest.raises(TypeError, match=message):
        custody.release(bad)
    assert len(custody) == 1 and custody.nr_released == 0


def test_decode_and_encode_do_the_bookkeeping_of_dequeue_and_submit():
    custody = _bpf.Custody()
    tasks = custody.decode(b"".join(queued_bytes(pid) for pid in (1, 2)))
    assert [t.pid for t in tasks] == [1, 2] and len(custody) == 2
    data = custody.encode([decision(2), decision(9)])
    assert [r["pid"] for r in dispatched_records(data)] == [2]
    assert len(custody) == 1 and custody.nr_invalid == 1


def test_it_matches_a_dict_through_many_random_operations_and_growth():
    """Open addressing with backward-shift deletion, against a plain dict."""
    rng = random.Random(16)
    custody = _bpf.Custody(16)
    model: dict[int, int] = {}          # pid -> enq_cnt held
    for step in range(20_000):
        pid = rng.randrange(1, 3000)
        if rng.random() < 0.55:
            enq = model.get(pid, 0) + 1
            custody.receive(queued(pid, enq_cnt=enq), now_ns=step + 1)
            model[pid] = enq
        else:
            kept = custody.release([decision(pid, model.get(pid, 1))])
            assert bool(kept) == (pid in model)
            model.pop(pid, None)
        assert len(custody) == len(model)
    assert sorted(t.pid for t in custody.held()) == sorted(model)
    assert {t.pid: t.enq_cnt for t in custody.held()} == model


def test_a_stamp_set_is_the_time_recorded_for_every_task_received():
    custody = _bpf.Custody()
    custody.stamp_ns = 7 * SECOND          # the worker's next housekeeping time
    custody.decode(queued_bytes(1))
    custody.receive(queued(2))
    assert custody.take_overdue(2 * SECOND, 1, now_ns=8 * SECOND) == []      # 1 s old only
    assert [d.pid for d in custody.take_overdue(2 * SECOND, 1, now_ns=9 * SECOND)] == [1, 2]


def test_a_new_task_with_the_pid_of_one_that_exited_while_held_replaces_it():
    custody = _bpf.Custody()
    custody.receive(queued(9, enq_cnt=40))
    custody.receive(queued(9, enq_cnt=1))          # pid 9 again, a new task's first record
    kept = custody.release([decision(9, enq_cnt=1)])
    assert [d.pid for d in kept] == [9] and len(custody) == 0
