"""The transport's records as plain bytes in the bpf/intf.h layout, for tests,
benchmarks and synthetic replays. Written independently of the extension, on
purpose: tests/test_records.py checks this layout against the BPF object's BTF."""

from __future__ import annotations

import struct

QUEUED_TASK = struct.Struct("<iiQQQQQQQQ16s")
QUEUED_FIELDS = ("pid", "cpu", "nr_cpus_allowed", "flags", "start_ts", "stop_ts",
                 "exec_runtime", "weight", "vtime", "enq_cnt", "comm")
DISPATCHED_TASK = struct.Struct("<iiQQQQ")
DISPATCHED_FIELDS = ("pid", "cpu", "flags", "slice_ns", "vtime", "enq_cnt")


def queued_bytes(pid: int, *, cpu: int = 0, nr_cpus_allowed: int = 2, flags: int = 0,
                 start_ts: int = 0, stop_ts: int = 0, exec_runtime: int = 0, weight: int = 100,
                 vtime: int = 0, enq_cnt: int = 1, comm: str = "task") -> bytes:
    """One queued_task record, as the BPF side writes it into the ring buffer."""
    return QUEUED_TASK.pack(pid, cpu, nr_cpus_allowed, flags, start_ts, stop_ts, exec_runtime,
                            weight, vtime, enq_cnt, comm.encode()[:16])


def dispatched_records(data: bytes) -> list[dict[str, int]]:
    """Decode dispatched_task records the way the BPF side reads them."""
    return [dict(zip(DISPATCHED_FIELDS, fields))
            for fields in DISPATCHED_TASK.iter_unpack(data)]
