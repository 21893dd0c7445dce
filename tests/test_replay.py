"""Recorded traces replay deterministically through the real decoder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scx_pyland import _bpf
from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.policies.rustland import RustlandPolicy
from scx_pyland.policy import PolicyConfig
from scx_pyland.records import queued_bytes
from scx_pyland.replay import TraceError, TraceRecorder, read_trace, replay

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "stress-cpu-7.3.4.trace"
CONFIG = PolicyConfig(slice_ns=20_000_000, slice_min_ns=1_000_000, nr_cpus=2)


def record(tmp_path, *cycles):
    recorder = TraceRecorder(tmp_path / "t.trace")
    for pids in cycles:
        recorder.add(_bpf.decode_queued(b"".join(queued_bytes(pid) for pid in pids)))
    recorder.save()
    return tmp_path / "t.trace"


def test_a_trace_keeps_its_cycles_and_records(tmp_path):
    cycles = read_trace(record(tmp_path, [1, 2], [3]))
    assert [[t.pid for t in _bpf.decode_queued(c)] for c in cycles] == [[1, 2], [3]]


def test_replay_gives_every_task_one_decision(tmp_path):
    decisions = replay(FifoPolicy(CONFIG), read_trace(record(tmp_path, [1, 2], [3])))
    assert [d.pid for d in decisions] == [1, 2, 3]


def test_a_file_that_is_no_trace_is_refused(tmp_path):
    (tmp_path / "x").write_bytes(b"hello world, not a trace")
    with pytest.raises(TraceError, match="not a scx_pyland trace"):
        read_trace(tmp_path / "x")


def test_a_full_recorder_counts_what_it_dropped(tmp_path):
    recorder = TraceRecorder(tmp_path / "t", capacity=100)
    recorder.add(_bpf.decode_queued(queued_bytes(1) * 5))
    assert recorder.dropped == 5


def golden_decisions(policy: type) -> list[str]:
    """The recorded VM trace replayed into `policy`, one line per decision. The
    policy's only other input is the time (rustland's rule 5 holds a task 250 ms at
    most): a clock that moves 100 ms at each reading makes it a function of the trace."""
    readings = iter(range(0, 10**15, 100_000_000))
    cycles = read_trace(FIXTURE)
    assert len(cycles) > 10
    subject = policy(CONFIG)
    subject.use_clock(lambda: next(readings))
    decisions = replay(subject, cycles)
    assert len(decisions) == sum(len(_bpf.decode_queued(c)) for c in cycles)
    return [f"{d.pid} {d.cpu} {d.flags} {d.slice_ns} {d.vtime} {d.enq_cnt}" for d in decisions]


@pytest.mark.parametrize("policy", [RustlandPolicy, FifoPolicy], ids=["rustland", "fifo"])
def test_the_recorded_vm_trace_replays_to_the_committed_decisions(policy):
    """The decisions a policy makes on the recorded trace are the committed ones
    (tests/fixtures/*.decisions): a change of a policy's behaviour shows here. A
    change meant so: SCX_PYLAND_UPDATE_GOLDEN=1 rewrites the file, to commit with
    the change and its reason."""
    golden = FIXTURE.with_name(f"{FIXTURE.stem}.{policy.name}.decisions")
    header = f"# {FIXTURE.name} replayed into {policy.name} ({CONFIG}): pid cpu flags slice_ns vtime enq_cnt"
    got = golden_decisions(policy)
    if os.environ.get("SCX_PYLAND_UPDATE_GOLDEN"):
        golden.write_text("\n".join([header, *got]) + "\n")
    want = [line for line in golden.read_text().splitlines() if not line.startswith("#")]
    assert got == want, f"{policy.name} decides the recorded trace differently from {golden.name}"
