"""A recorded trace (format version 2: queued_task records ending with enq_ts and
decided_ts) becomes a workload: wake-ups at the recorded enq_ts of ENQ_WAKEUP
records, bursts from the runs the records describe, weights and CPUs from the
records. Until bpf/intf.h carries the two fields, the traces here are synthetic,
built with scx_pyland.records; version 1 traces are refused in one line."""

from __future__ import annotations

import pytest

from scx_pyland import _bpf
from scx_pyland.records import queued_bytes
from scx_pyland.replay import COUNT, HEADER, MAGIC, TraceError
from scx_pyland.sim import simulate
from scx_pyland.sim.trace import read_records, recorded_tasks, trace_workload, write_trace

MS = 1_000_000
US = 1_000
T0 = 5_000 * MS      # the BPF side's clock at the trace's start
WAKE = _bpf.ENQ_WAKEUP


def periodic_records(pid: int = 100, period: int = MS, burst: int = 100 * US, n: int = 50,
                     comm: str = "cyclictest") -> list[bytes]:
    """A task woken every `period` that runs `burst` each time (and waits 30 us for it,
    the last 20 us of them for the policy's decision)."""
    out = []
    for k in range(n):
        enq = T0 + k * period
        start = enq - period + 30 * US if k else 0
        out.append(queued_bytes(pid, flags=WAKE, enq_ts=enq, start_ts=start, stop_ts=start + burst if k else 0,
                                 decided_ts=start - 10 * US if k else 0, enq_cnt=k + 1, comm=comm, cpu=0))
    return out


def hog_records(pid: int = 200, slice_ns: int = 4 * MS, n: int = 25, weight: int = 1, cpu: int = 1) -> list[bytes]:
    """A CPU hog pinned to `cpu`, put back at every slice end."""
    out = []
    for k in range(n):
        enq = T0 + k * slice_ns
        out.append(queued_bytes(pid, flags=0, enq_ts=enq, start_ts=enq - slice_ns if k else 0,
                                 stop_ts=enq if k else 0, exec_runtime=k * slice_ns, weight=weight, enq_cnt=k + 1,
                                 comm="stress-ng-cpu", nr_cpus_allowed=1, cpu=cpu))
    return out


def test_a_periodic_task_wakes_at_the_recorded_times_and_runs_its_bursts(tmp_path):
    write_trace(tmp_path / "t.trace", [periodic_records()[:25], periodic_records()[25:]])
    [task], summary = recorded_tasks(read_records(tmp_path / "t.trace"))
    assert task.comm == "cyclictest" and not task.starts_awake
    assert [wake for wake, _ in task.bursts[:4]] == [0, MS, 2 * MS, 3 * MS]
    assert {cpu for _, cpu in task.bursts} == {100 * US}
    assert summary.tasks == 1 and summary.records == 50 and summary.span_ns == 49 * MS


def test_the_waits_the_trace_recorded_are_read_from_its_timestamps(tmp_path):
    write_trace(tmp_path / "t.trace", [periodic_records()])
    _, summary = recorded_tasks(read_records(tmp_path / "t.trace"))
    assert summary.user_wait.count == 49
    assert summary.user_wait.p50_ns == 30 * US and summary.user_part.p50_ns == 20 * US


def test_a_task_that_never_slept_is_a_cpu_hog_with_its_weight_and_cpu(tmp_path):
    write_trace(tmp_path / "t.trace", [hog_records(), periodic_records()])
    workload, summary = trace_workload(tmp_path / "t.trace")
    assert workload.nr_cpus == 2 and summary.nr_cpus == 2
    hog = next(t for t in workload.tasks if t.group == "stress-ng-cpu")
    assert hog.nice == 19 and hog.cpus == frozenset({1})
    result = simulate(workload, "rustland")
    assert result.groups["stress-ng-cpu"].share > 0.5
    assert result.groups["cyclictest"].ops >= 45


def test_the_replayed_workload_runs_for_the_span_of_the_trace(tmp_path):
    write_trace(tmp_path / "t.trace", [periodic_records()])
    result = simulate(trace_workload(tmp_path / "t.trace")[0], None)
    assert result.duration_ns <= 49 * MS
    assert result.groups["cyclictest"].ops >= 48


def test_a_burst_longer_than_its_records_saw_takes_exec_runtime(tmp_path):
    """A slice-end record whose exec_runtime is more than the runs recorded (runs the
    worker never saw) makes the burst that long."""
    records = [queued_bytes(7, flags=WAKE, enq_ts=T0, enq_cnt=1),
               queued_bytes(7, flags=0, enq_ts=T0 + 10 * MS, start_ts=T0 + 8 * MS, stop_ts=T0 + 10 * MS,
                             exec_runtime=9 * MS, enq_cnt=2),
               queued_bytes(7, flags=WAKE, enq_ts=T0 + 30 * MS, start_ts=T0 + 11 * MS, stop_ts=T0 + 12 * MS,
                             enq_cnt=3)]
    write_trace(tmp_path / "t.trace", [records])
    [task], _ = recorded_tasks(read_records(tmp_path / "t.trace"))
    assert task.bursts[0] == (0, 10 * MS)      # 9 ms by exec_runtime, then the 1 ms run


def test_a_version_1_trace_is_refused_in_one_line(tmp_path):
    path = tmp_path / "old.trace"
    path.write_bytes(HEADER.pack(MAGIC, 1, 88) + COUNT.pack(0))
    with pytest.raises(TraceError, match="version 1 trace") as err:
        read_records(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("data, message", [
    (b"short", "too short"),
    (b"NOTATRACE" + bytes(20), "not a scx_pyland trace"),
    (HEADER.pack(MAGIC, 3, 104), "version 3"),
    (HEADER.pack(MAGIC, 2, 88), "records of 88 bytes"),
    (HEADER.pack(MAGIC, 2, 104) + COUNT.pack(2) + bytes(104), "truncated"),
])
def test_a_file_that_is_no_version_2_trace_is_refused(tmp_path, data, message):
    (tmp_path / "x").write_bytes(data)
    with pytest.raises(TraceError, match=message):
        read_records(tmp_path / "x")
