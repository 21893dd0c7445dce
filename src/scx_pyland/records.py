"""The transport's records as plain bytes in the bpf/intf.h layout, for tests,
benchmarks, synthetic replays and the simulator. Written independently of the
extension, on purpose: tests/test_records.py checks this layout against the BPF
object's BTF.

``QUEUED_TASK`` ends with the two timestamps trace format version 2 added
(``enq_ts``, ``decided_ts``); ``QUEUED_TASK_V1`` is the record without them, as
version 1 traces hold it (replay.py pads those).
"""

from __future__ import annotations

import struct

QUEUED_TASK = struct.Struct("<iiQQQQQQQQ16sQQ")
QUEUED_FIELDS = ("pid", "cpu", "nr_cpus_allowed", "flags", "start_ts", "stop_ts",
                 "exec_runtime", "weight", "vtime", "enq_cnt", "comm", "enq_ts", "decided_ts")
# The record before enq_ts and decided_ts: everything up to comm.
QUEUED_TASK_V1 = struct.Struct("<iiQQQQQQQQ16s")
DISPATCHED_TASK = struct.Struct("<iiQQQQ")
DISPATCHED_FIELDS = ("pid", "cpu", "flags", "slice_ns", "vtime", "enq_cnt")


def queued_bytes(pid: int, *, cpu: int = 0, nr_cpus_allowed: int = 2, flags: int = 0,
                 start_ts: int = 0, stop_ts: int = 0, exec_runtime: int = 0, weight: int = 100,
                 vtime: int = 0, enq_cnt: int = 1, comm: str = "task", enq_ts: int = 0,
                 decided_ts: int = 0) -> bytes:
    """One queued_task record (QUEUED_TASK.size bytes), as the BPF side writes it into
    the ring buffer and a version 2 trace holds it. Times are ns of the BPF side's
    clock (scx_bpf_now()). Raises struct.error for a value out of its field's range."""
    return QUEUED_TASK.pack(pid, cpu, nr_cpus_allowed, flags, start_ts, stop_ts, exec_runtime,
                            weight, vtime, enq_cnt, comm.encode()[:16], enq_ts, decided_ts)


def dispatched_records(data: bytes) -> list[dict[str, int]]:
    """Decode dispatched_task records the way the BPF side reads them."""
    return [dict(zip(DISPATCHED_FIELDS, fields))
            for fields in DISPATCHED_TASK.iter_unpack(data)]
