"""Recorded traces: what the ring buffer delivered to the worker, replayed into a
policy without a kernel.

A trace (``scx_pyland --record FILE``) is the bytes of every queued_task record the
worker read, in the bpf/intf.h layout, grouped by the cycle that read them::

    b"PYLANDTR"  u32 version  u32 record size  then per cycle: u32 count, count records

Version 2 records end with ``enq_ts`` and ``decided_ts`` (records.py). A version 1
trace (records up to ``comm``) still replays: its records are given zero timestamps,
which no policy reads; the simulator (sim/trace.py) needs version 2.

Replay decodes each cycle's records with the extension's own decoder and drives the
policy as the worker does: enqueue the cycle's tasks, then one dispatch.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

from scx_pyland import _bpf
from scx_pyland.policy import DispatchedTask, Policy
from scx_pyland.records import QUEUED_TASK, QUEUED_TASK_V1

# How long a replay waits at its end for tasks a policy holds back for a while.
HOLD_PAUSE_S = 0.3

MAGIC = b"PYLANDTR"
VERSION = 2
HEADER = struct.Struct("<8sII")
COUNT = struct.Struct("<I")
RECORD_SIZE = _bpf.layout()["queued_task"]["__size__"]


class TraceError(Exception):
    """A file that is not a trace this version can read."""


class TraceRecorder:
    """Collects cycles in a buffer allocated up front; written out once, at the end."""

    def __init__(self, path: Path, capacity: int = 32 << 20) -> None:
        self.path = path
        self.buffer = bytearray(capacity)
        self.view = memoryview(self.buffer)
        HEADER.pack_into(self.buffer, 0, MAGIC, VERSION, RECORD_SIZE)
        self.used = HEADER.size
        self.dropped = 0

    def add(self, tasks: list) -> None:
        if not tasks:
            return
        data = _bpf.encode_queued(tasks)
        end = self.used + COUNT.size + len(data)
        if end > len(self.buffer):
            self.dropped += len(tasks)   # full: keep what fits, count the rest
            return
        COUNT.pack_into(self.buffer, self.used, len(tasks))
        self.view[self.used + COUNT.size:end] = data
        self.used = end

    def save(self) -> None:
        with open(self.path, "wb") as f:
            f.write(self.view[:self.used])


def read_trace(path: Path) -> list[bytes]:
    """The cycles of a trace, each as the bytes of its records."""
    data = Path(path).read_bytes()
    if len(data) < HEADER.size:
        raise TraceError(f"{path}: too short to be a trace")
    magic, version, record_size = HEADER.unpack_from(data)
    if magic != MAGIC or version not in (1, VERSION):
        raise TraceError(f"{path}: not a scx_pyland trace (version 1 or {VERSION})")
    if (version, record_size) not in ((1, QUEUED_TASK_V1.size), (VERSION, RECORD_SIZE)):
        raise TraceError(f"{path}: version {version} with records of {record_size} bytes, this build has "
                         f"{RECORD_SIZE}")
    pad = bytes(RECORD_SIZE - record_size)
    cycles, offset = [], HEADER.size
    while offset < len(data):
        (count,) = COUNT.unpack_from(data, offset)
        offset += COUNT.size
        end = offset + count * record_size
        if end > len(data):
            raise TraceError(f"{path}: truncated at byte {offset}")
        if pad:
            cycles.append(b"".join(data[at:at + record_size] + pad for at in range(offset, end, record_size)))
        else:
            cycles.append(data[offset:end])
        offset = end
    return cycles


def replay(policy: Policy, cycles: list[bytes]) -> list[DispatchedTask]:
    """Drive the policy with recorded cycles; then drain it. Returns every decision, in order."""
    decisions: list[DispatchedTask] = []
    for records in cycles:
        policy.enqueue(_bpf.decode_queued(records))
        decisions += policy.dispatch()
    # The trace is over: a task the policy holds back for a while (rustland's tasks
    # ahead of the clock, 250 ms at most) gets one more chance after a pause.
    waited = False
    while policy.nr_pending:
        more = policy.dispatch()
        if not more:
            if waited:
                break
            waited = True
            time.sleep(HOLD_PAUSE_S)
        decisions += more
    return decisions
