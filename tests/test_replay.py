"""Recorded traces replay deterministically through the real decoder."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from scx_pyland import _bpf
from scx_pyland.policies import rustland
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


def test_the_recorded_vm_trace_replays_deterministically(monkeypatch):
    # The policy's only other input is the time (rule 5 holds a task 250 ms at
    # most): a clock that moves 100 ms at each reading makes it a function of the trace.
    readings = iter(range(0, 10**15, 100_000_000))
    monkeypatch.setattr(rustland, "time", SimpleNamespace(monotonic_ns=lambda: next(readings)))
    cycles = read_trace(FIXTURE)
    assert len(cycles) > 10
    first = [(d.pid, d.vtime, d.slice_ns) for d in replay(RustlandPolicy(CONFIG), cycles)]
    second = [(d.pid, d.vtime, d.slice_ns) for d in replay(RustlandPolicy(CONFIG), cycles)]
    assert first == second
    assert len(first) == sum(len(_bpf.decode_queued(c)) for c in cycles)
