"""The FIFO policy, fed records as bytes through the extension's decoder."""

from __future__ import annotations

from scx_pyland import _bpf
from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.policy import PolicyConfig
from scx_pyland.records import dispatched_records, queued_bytes

CONFIG = PolicyConfig(slice_ns=20_000_000, slice_min_ns=1_000_000, nr_cpus=2)


def schedule(policy, *pids, **fields):
    """Queue pids as the ring would deliver them; return the decisions as the BPF side reads them."""
    policy.enqueue(_bpf.decode_queued(b"".join(queued_bytes(pid, **fields) for pid in pids)))
    return dispatched_records(_bpf.encode_dispatched(policy.dispatch()))


def test_tasks_are_dispatched_in_arrival_order():
    assert [d["pid"] for d in schedule(FifoPolicy(CONFIG), 30, 10, 20)] == [30, 10, 20]


def test_every_task_goes_to_any_cpu():
    assert {d["cpu"] for d in schedule(FifoPolicy(CONFIG), 1, 2, 3)} == {_bpf.RL_CPU_ANY}


def test_a_lone_task_gets_the_full_slice():
    assert [d["slice_ns"] for d in schedule(FifoPolicy(CONFIG), 1)] == [20_000_000]


def test_the_slice_shrinks_with_the_number_of_waiting_tasks():
    assert {d["slice_ns"] for d in schedule(FifoPolicy(CONFIG), *range(4))} == {5_000_000}


def test_the_slice_never_drops_below_the_minimum():
    assert {d["slice_ns"] for d in schedule(FifoPolicy(CONFIG), *range(100))} == {1_000_000}


def test_the_enqueue_generation_is_copied_unchanged():
    assert [d["enq_cnt"] for d in schedule(FifoPolicy(CONFIG), 5, enq_cnt=41)] == [41]


def test_no_tasks_no_decisions_and_nothing_pending():
    policy = FifoPolicy(CONFIG)
    policy.enqueue([])
    assert policy.dispatch() == []
    assert policy.nr_pending == 0


def test_queued_tasks_are_pending_until_dispatched():
    policy = FifoPolicy(CONFIG)
    policy.enqueue(_bpf.decode_queued(queued_bytes(1) + queued_bytes(2)))
    assert policy.nr_pending == 2
    policy.dispatch()
    assert policy.nr_pending == 0
