"""The worker's loop against a fake BPF side: records arrive as bytes through the real
decoder, and the user ring takes only so many decisions per cycle."""

from __future__ import annotations

import pytest

from scx_pyland import _bpf
from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.policies.rustland import RustlandPolicy
from scx_pyland.policy import Policy, PolicyConfig
from scx_pyland.worker import Worker, WorkerOptions, compaction_off_locked_pages
from records import dispatched_records, queued_bytes

CONFIG = PolicyConfig(nr_cpus=2)


class FakeScheduler:
    """Delivers one batch of records per cycle; the ring takes `room` decisions per cycle."""

    def __init__(self, batches: list[list[int]], room: int, cycles: int) -> None:
        self.batches = [b"".join(queued_bytes(pid) for pid in pids) for pids in batches]
        self.room = room
        self.cycles = cycles
        self.sent: list[dict] = []
        self.pending_reports: list[int] = []

    def dequeue(self, max):
        return _bpf.decode_queued(self.batches.pop(0)) if self.batches else []

    def dispatch(self, tasks):
        taken = tasks[:self.room]
        self.sent += dispatched_records(_bpf.encode_dispatched(taken))
        return len(taken)

    def notify_complete(self, nr_pending):
        self.pending_reports.append(nr_pending)
        self.cycles -= 1
        return self.exited()

    def exited(self):
        return self.cycles <= 0

    def counters(self):
        return None


class NoStats(Worker):
    def publish_stats(self, sched) -> None:
        pass


def run(policy: Policy, sched: FakeScheduler) -> Worker:
    worker = NoStats(policy, WorkerOptions())
    worker.loop(sched)
    return worker


def test_decisions_the_full_ring_refused_are_sent_first_next_cycle_in_order():
    sched = FakeScheduler([[1, 2, 3, 4, 5]], room=2, cycles=5)
    worker = run(FifoPolicy(CONFIG), sched)
    assert [d["pid"] for d in sched.sent] == [1, 2, 3, 4, 5]
    assert worker.nr_dispatched == 5


def test_what_waits_for_the_ring_counts_as_pending():
    sched = FakeScheduler([[1, 2, 3, 4, 5]], room=2, cycles=4)
    run(FifoPolicy(CONFIG), sched)
    assert sched.pending_reports[:3] == [3, 1, 0]


def test_rustland_dispatches_one_task_per_cpu_per_cycle_until_none_is_pending():
    sched = FakeScheduler([[10, 11, 12, 13, 14]], room=100, cycles=4)
    run(RustlandPolicy(CONFIG), sched)     # 2 CPUs
    assert len(sched.sent) == 5
    assert sched.pending_reports[:3] == [3, 1, 0]


def test_an_exception_in_the_policy_leaves_the_loop():
    class Broken(FifoPolicy):
        def dispatch(self):
            raise ZeroDivisionError("policy bug")

    with pytest.raises(ZeroDivisionError):
        run(Broken(CONFIG), FakeScheduler([[1]], room=10, cycles=3))


def test_alone_the_worker_restores_compact_unevictable_allowed(tmp_path):
    sysctl = tmp_path / "compact_unevictable_allowed"
    sysctl.write_text("1\n")
    with compaction_off_locked_pages(sysctl, restore=True):
        assert sysctl.read_text() == "0"
    assert sysctl.read_text() == "1"


def test_under_the_supervisor_the_worker_leaves_the_restore_to_it(tmp_path):
    """Issue 14 item 10: the supervisor outlives a killed worker and restores it."""
    sysctl = tmp_path / "compact_unevictable_allowed"
    sysctl.write_text("1\n")
    with compaction_off_locked_pages(sysctl, restore=False):
        pass
    assert sysctl.read_text() == "0"
