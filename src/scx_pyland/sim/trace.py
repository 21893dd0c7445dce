"""A trace recorded with ``scx_pyland --record`` turned into a workload: each task's
wake-ups and CPU bursts, its weight and its CPUs, replayed on the virtual clock.

It needs trace format version 2, whose queued_task records end with two timestamps
(ns, the BPF side's scx_bpf_now() clock, as start_ts and stop_ts): ``enq_ts``, when
the task was enqueued, and ``decided_ts``, when the policy's decision for the task's
previous enqueue was carried out (0 if none). Version 1 traces are refused in one
line. The header is replay.py's (magic, version, record size), the records
records.py's ``QUEUED_TASK``.

How a task's records become its behaviour (docs/sim.md, "Recorded workloads"):

- each record with ENQ_WAKEUP starts a burst: the task wakes at its ``enq_ts``
  (an absolute time, as a timer would wake it);
- the run a record describes (``start_ts`` .. ``stop_ts``, the last run before that
  enqueue) belongs to the burst before it; a burst's CPU time is the sum of those
  runs up to the next wake-up, or the record's ``exec_runtime`` (CPU since it last
  slept) where that is more (runs no record saw);
- a task that never slept in the trace is a CPU hog to the end; the last burst of
  one that did is its median burst;
- its weight is its last record's, as the nearest nice level; a task that may use
  fewer CPUs than the machine has is pinned to the CPUs its records name.

What no trace shows: tasks that never went to the worker (kernel threads, the worker
itself) and wake-ups the BPF side served without it (select_cpu's direct dispatch to
an idle CPU, stalled, custody, congested): their runs are missing, and the CPU time of
a burst they hide is missed unless a later record's exec_runtime carries it.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from scx_pyland import _bpf
from scx_pyland.records import QUEUED_FIELDS, QUEUED_TASK
from scx_pyland.replay import COUNT, HEADER, MAGIC, TraceError
from scx_pyland.sim.report import Durations
from scx_pyland.sim.workload import Run, SleepUntil, Task, Workload, nice_of_scx_weight

#: The trace format version this module reads.
TRACE_VERSION = 2
MIN_BURST_NS = 1_000
HOG_CHUNK_NS = 1_000_000
FIELD = {name: i for i, name in enumerate(QUEUED_FIELDS)}


def read_records(path: Path) -> list[tuple]:
    """Every queued_task record of a version-2 trace, as QUEUED_TASK tuples, in the
    order read. Raises TraceError, in one line, for a file that is no trace, a trace
    of another version (version 1 has no enq_ts), or a truncated one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TraceError(f"{path}: cannot read: {err.strerror or err}") from None
    if len(data) < HEADER.size:
        raise TraceError(f"{path}: too short to be a trace")
    magic, version, record_size = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise TraceError(f"{path}: not a scx_pyland trace (no {MAGIC.decode()} header)")
    if version == 1:
        raise TraceError(f"{path}: a version 1 trace, without the enqueue timestamps (enq_ts, decided_ts) the "
                         f"simulator needs: record it again with a build that writes version {TRACE_VERSION}")
    if version != TRACE_VERSION:
        raise TraceError(f"{path}: trace format version {version}; this simulator reads version {TRACE_VERSION}")
    if record_size != QUEUED_TASK.size:
        raise TraceError(f"{path}: records of {record_size} bytes; version {TRACE_VERSION} has {QUEUED_TASK.size}")
    records, offset = [], HEADER.size
    while offset < len(data):
        if offset + COUNT.size > len(data):
            raise TraceError(f"{path}: truncated at byte {offset}")
        (count,) = COUNT.unpack_from(data, offset)
        offset += COUNT.size
        end = offset + count * record_size
        if end > len(data):
            raise TraceError(f"{path}: truncated at byte {offset}")
        records += QUEUED_TASK.iter_unpack(data[offset:end])
        offset = end
    return records


def write_trace(path: Path, cycles: list[list[bytes]]) -> None:
    """Write a version-2 trace of the given cycles (each a list of whole records, as
    records.queued_bytes() makes them): for tests and synthetic traces."""
    out = bytearray(HEADER.pack(MAGIC, TRACE_VERSION, QUEUED_TASK.size))
    for cycle in cycles:
        out += COUNT.pack(len(cycle))
        for record in cycle:
            if len(record) != QUEUED_TASK.size:
                raise ValueError(f"a record of {len(record)} bytes; version {TRACE_VERSION} has {QUEUED_TASK.size}")
            out += record
    Path(path).write_bytes(out)


@dataclass(slots=True)
class RecordedTask:
    """One task as its records tell it: bursts of (wake time, CPU time) in ns since the
    trace began, the last one's CPU time None for a CPU hog (runs to the end)."""

    pid: int
    comm: str
    weight: int
    nr_cpus_allowed: int
    cpus: Counter = field(default_factory=Counter)
    first_ns: int = 0
    starts_awake: bool = False          # its first record is no wake-up: runnable from then on
    bursts: list[tuple[int, int | None]] = field(default_factory=list)


@dataclass(slots=True)
class TraceSummary:
    """What a trace holds, and the waits it recorded under the policy that ran: of
    each task's enqueues the policy decided, from enqueue to its next run, and the
    part until the decision was carried out (ns)."""

    records: int
    tasks: int
    span_ns: int
    nr_cpus: int
    user_wait: Durations
    user_part: Durations


def recorded_tasks(records: list[tuple]) -> tuple[list[RecordedTask], TraceSummary]:
    """Group the records by task and turn each into bursts; and summarise the trace."""
    f = FIELD
    if not records:
        raise TraceError("the trace holds no records")
    t0 = min(r[f["enq_ts"]] for r in records)
    by_pid: dict[int, list[tuple]] = {}
    for r in records:
        by_pid.setdefault(r[f["pid"]], []).append(r)
    tasks: list[RecordedTask] = []
    waits: list[int] = []
    parts: list[int] = []
    wakeup = _bpf.ENQ_WAKEUP
    for pid, rs in by_pid.items():
        rs.sort(key=lambda r: (r[f["enq_ts"]], r[f["enq_cnt"]]))
        last = rs[-1]
        task = RecordedTask(pid=pid, comm=last[f["comm"]].split(b"\0", 1)[0].decode(errors="replace") or str(pid),
                            weight=last[f["weight"]], nr_cpus_allowed=last[f["nr_cpus_allowed"]],
                            first_ns=rs[0][f["enq_ts"]] - t0, starts_awake=not rs[0][f["flags"]] & wakeup)
        task.cpus.update(r[f["cpu"]] for r in rs)
        wake = task.first_ns
        cpu_ns = 0
        known: list[int] = []
        for prev, r in zip(rs, rs[1:]):
            start, stop = r[f["start_ts"]], r[f["stop_ts"]]
            ran = stop - start if stop > start >= prev[f["enq_ts"]] else 0
            cpu_ns += ran
            if r[f["decided_ts"]] and start >= r[f["decided_ts"]] >= prev[f["enq_ts"]]:
                waits.append(start - prev[f["enq_ts"]])
                parts.append(r[f["decided_ts"]] - prev[f["enq_ts"]])
            if r[f["flags"]] & wakeup:
                task.bursts.append((wake, max(cpu_ns, MIN_BURST_NS)))
                known.append(cpu_ns)
                wake = r[f["enq_ts"]] - t0
                cpu_ns = 0
            else:
                cpu_ns = max(cpu_ns, r[f["exec_runtime"]])
        if not known:
            task.bursts.append((wake, None))
        else:
            task.bursts.append((wake, max(int(statistics.median(known)), MIN_BURST_NS)))
        tasks.append(task)
    span = max(r[f["enq_ts"]] for r in records) - t0
    nr_cpus = max(max(r[f["cpu"]] for r in records) + 1, max(t.nr_cpus_allowed for t in tasks))
    return tasks, TraceSummary(records=len(records), tasks=len(tasks), span_ns=span, nr_cpus=nr_cpus,
                               user_wait=Durations.of(waits), user_part=Durations.of(parts))


def replayed(bursts: list[tuple[int, int | None]], starts_awake: bool):
    """A recorded task's behaviour: wake at each recorded time, run the burst."""
    for i, (wake_ns, cpu_ns) in enumerate(bursts):
        if i or not starts_awake:
            yield SleepUntil(wake_ns)
        if cpu_ns is None:
            while True:
                yield Run(HOG_CHUNK_NS)
        yield Run(cpu_ns)


def trace_workload(path: Path, nr_cpus: int | None = None) -> tuple[Workload, TraceSummary]:
    """The workload a version-2 trace records, on nr_cpus CPUs (default: as many as
    its records name), for the span of the trace; and the trace's summary. Raises
    TraceError as read_records() does."""
    tasks, summary = recorded_tasks(read_records(path))
    cpus = nr_cpus or summary.nr_cpus
    workload = Workload(Path(path).name, nr_cpus=cpus, duration_ns=max(summary.span_ns, 1),
                        description=f"recorded in {path}: {summary.tasks} tasks, {summary.records} records")
    for t in tasks:
        allowed = None
        if t.nr_cpus_allowed < cpus:
            seen = [cpu for cpu, _ in t.cpus.most_common() if 0 <= cpu < cpus]
            rest = [cpu for cpu in range(cpus) if cpu not in seen]
            allowed = frozenset((seen + rest)[:max(t.nr_cpus_allowed, 1)])
        workload.add(Task(f"{t.comm}-{t.pid}", replayed, (t.bursts, t.starts_awake), group=t.comm,
                          nice=nice_of_scx_weight(t.weight), cpus=allowed,
                          start_ns=t.first_ns if t.starts_awake else 0))
    return workload, summary
