"""Live statistics: the worker publishes them, anyone (root) reads them.

The worker may never block, so it does not serve clients: it rewrites a small
memory-mapped file in place (default /run/scx_pyland/stats, root-only), about once
a second, under a sequence counter (odd while writing). ``scx_pyland --monitor N``
and ``--stats N`` read it and print one line per interval; counters are shown as
per-interval deltas, gauges as they are.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = Path(os.environ.get("SCX_PYLAND_RUN_DIR", "/run/scx_pyland")) / "stats"

MAGIC = b"PYLANDST"
VERSION = 5


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str        # "counter" (shown as a delta per interval) or "gauge"
    help: str


FIELDS: tuple[Field, ...] = (
    Field("nr_user_dispatches", "counter", "tasks dispatched as the Python policy decided"),
    Field("nr_kernel_dispatches", "counter", "kernel threads, dispatched by the BPF side"),
    Field("nr_direct_dispatches", "counter", "woken tasks the BPF side sent straight to an idle CPU, nobody waiting"),
    Field("nr_rt_dispatches", "counter", "tasks the BPF side kept because a real-time task held their CPU"),
    Field("nr_stalled_dispatches", "counter", "new tasks the BPF side dispatched while the worker did not run "
          "(250 ms+) or was behind (--max-user-wait-ms)"),
    Field("nr_custody_dispatches", "counter", "tasks queued to the worker that the BPF side dispatched itself: "
          "the worker did not run, or their record waited unread longer than --max-user-wait-ms"),
    Field("nr_sched_congested", "counter", "tasks dispatched by the BPF side because the ring to the worker was full"),
    Field("nr_cancel_dispatches", "counter", "policy decisions dropped: the task was re-enqueued meanwhile"),
    Field("nr_bounce_dispatches", "counter", "policy decisions for a CPU the task may not use (sent to any CPU)"),
    Field("nr_failed_dispatches", "counter", "policy decisions for a task that had exited"),
    Field("nr_drain_errors", "counter", "failed reads of the ring of decisions, other than another CPU reading it"),
    Field("nr_worker_preempts", "counter", "CPUs preempted so that the worker places a woken task at once (none was idle)"),
    Field("nr_policy_dispatches", "counter", "decisions sent to the kernel: the policy's and the worker's rescues"),
    Field("nr_page_faults", "counter", "the worker's page faults (should stay flat while attached)"),
    Field("nr_policy_errors", "counter", "exceptions from the policy; the fifo policy took over its tasks each time"),
    Field("nr_rescued", "counter", "tasks the policy held too long (--rescue-after-ms), dispatched by the worker"),
    Field("nr_invalid_dispatches", "counter", "policy decisions for tasks it did not hold (never given, "
          "decided already, rescued): dropped by the worker"),
    Field("nr_policy_swaps", "counter", "policies switched to while attached (reloads and fallbacks)"),
    Field("nr_queued", "gauge", "tasks queued for the worker, not yet read"),
    Field("nr_pending", "gauge", "tasks the policy holds without a decision (the worker's count), "
          "and decisions waiting for room on the ring"),
    Field("nr_running", "gauge", "tasks running on a CPU"),
    Field("nr_online_cpus", "gauge", "online CPUs"),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
# magic, version, writer pid, sequence, time (ns, CLOCK_MONOTONIC), then the fields.
LAYOUT = struct.Struct(f"<8sIIQQ{len(FIELDS)}Q")
VALUES = struct.Struct(f"<{len(FIELDS)}Q")
VALUES_OFFSET = struct.calcsize("<8sIIQQ")
SEQ_OFFSET = struct.calcsize("<8sII")


def help_text() -> str:
    width = max(len(f.name) for f in FIELDS)
    lines = ["Statistics (--stats N, --monitor N): counters are per-interval deltas, gauges as they are."]
    lines += [f"  {f.name:<{width}}  {f.kind:<7}  {f.help}" for f in FIELDS]
    return "\n".join(lines)


class StatsWriter:
    """The worker's side: one mmap, rewritten in place; no allocation per publish."""

    def __init__(self, path: Path = DEFAULT_PATH) -> None:
        try:
            path.parent.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass    # someone else's directory (SCX_PYLAND_RUN_DIR may name any): leave its mode
        else:
            os.chmod(path.parent, 0o700)    # mkdir's mode is subject to the umask
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, LAYOUT.size)
            self.map = mmap.mmap(fd, LAYOUT.size)
        finally:
            os.close(fd)
        self.path = path
        self.seq = 0
        LAYOUT.pack_into(self.map, 0, MAGIC, VERSION, os.getpid(), 0, time.monotonic_ns(), *([0] * len(FIELDS)))

    def publish(self, values: tuple[int, ...]) -> None:
        """values: one per FIELDS entry, in order."""
        self.seq += 1
        struct.pack_into("<Q", self.map, SEQ_OFFSET, self.seq * 2 - 1)    # odd: writing
        struct.pack_into("<Q", self.map, SEQ_OFFSET + 8, time.monotonic_ns())
        VALUES.pack_into(self.map, VALUES_OFFSET, *values)
        struct.pack_into("<Q", self.map, SEQ_OFFSET, self.seq * 2)         # even: done

    def close(self) -> None:
        self.map.close()
        try:
            self.path.unlink()
        except OSError:
            pass


@dataclass(frozen=True, slots=True)
class Snapshot:
    pid: int
    time_ns: int
    values: dict[str, int]


class NoScheduler(Exception):
    """No running scheduler publishes statistics at the path."""


def read_snapshot(path: Path = DEFAULT_PATH) -> Snapshot:
    """The statistics as of the writer's last complete publish. The read is a seqlock's:
    the sequence number must be even (no publish under way) before the data is read
    and unchanged after, or the data may mix two publishes; then it is read again."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NoScheduler(f"no scx_pyland is running (no statistics at {path})") from None
    except PermissionError:
        raise NoScheduler(f"cannot read {path}: statistics are readable by root only") from None
    try:
        for _ in range(100):
            seq = _read_seq(fd)
            data = os.pread(fd, LAYOUT.size, 0)
            if len(data) != LAYOUT.size:
                break
            magic, version, pid, _, time_ns, *values = LAYOUT.unpack(data)
            if magic != MAGIC or version != VERSION:
                break
            if not os.path.exists(f"/proc/{pid}"):
                raise NoScheduler(f"no scx_pyland is running (the writer of {path}, pid {pid}, is gone)")
            if seq % 2 == 0 and _read_seq(fd) == seq:
                return Snapshot(pid, time_ns, dict(zip(FIELD_NAMES, values)))
            time.sleep(0.001)
    finally:
        os.close(fd)
    raise NoScheduler(f"{path} does not hold scx_pyland statistics")


def _read_seq(fd: int) -> int:
    """The writer's sequence number: odd while it writes (-1 if the file is too short)."""
    data = os.pread(fd, 8, SEQ_OFFSET)
    return struct.unpack("<Q", data)[0] if len(data) == 8 else -1


def read_fd(fd: int) -> Snapshot | None:
    """A snapshot from an open statistics file, whoever wrote it and whether or not
    the writer lives (or removed the file): None if it holds no finished snapshot.
    The same seqlock read as read_snapshot's."""
    for _ in range(100):
        seq = _read_seq(fd)
        data = os.pread(fd, LAYOUT.size, 0)
        if len(data) != LAYOUT.size:
            return None
        magic, version, pid, _, time_ns, *values = LAYOUT.unpack(data)
        if magic != MAGIC or version != VERSION:
            return None
        if seq % 2 == 0 and _read_seq(fd) == seq:
            return Snapshot(pid, time_ns, dict(zip(FIELD_NAMES, values)))
        time.sleep(0.001)
    return None


def format_line(prev: Snapshot | None, cur: Snapshot) -> str:
    """One line: counters as deltas (and per second), gauges as they are."""
    seconds = (cur.time_ns - prev.time_ns) / 1e9 if prev and cur.time_ns > prev.time_ns else 0.0
    v = cur.values

    def delta(name: str) -> int:
        return v[name] - (prev.values[name] if prev else 0)

    def rate(name: str) -> str:
        d = delta(name)
        return f"{d}" + (f" ({d / seconds:.0f}/s)" if seconds else "")

    return (f"user {rate('nr_user_dispatches')} kernel {delta('nr_kernel_dispatches')} "
            f"direct {delta('nr_direct_dispatches')} realtime {delta('nr_rt_dispatches')} "
            f"stalled {delta('nr_stalled_dispatches')} custody {delta('nr_custody_dispatches')} "
            f"congested {delta('nr_sched_congested')} cancel {delta('nr_cancel_dispatches')} "
            f"bounce {delta('nr_bounce_dispatches')} fail {delta('nr_failed_dispatches')} | "
            f"policy {rate('nr_policy_dispatches')} pending {v['nr_pending']} queued {v['nr_queued']} "
            f"running {v['nr_running']}/{v['nr_online_cpus']} | page faults +{delta('nr_page_faults')} | "
            f"policy errors +{delta('nr_policy_errors')} rescued +{delta('nr_rescued')} "
            f"invalid +{delta('nr_invalid_dispatches')} swaps +{delta('nr_policy_swaps')}")
