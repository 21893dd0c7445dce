"""The record layouts agree three ways: the BPF object's BTF, the extension as
compiled, and the byte layout scx_pyland.records writes; and bytes decode through the
extension's own decoder."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess

import pytest

from scx_pyland import _bpf
from scx_pyland.records import (DISPATCHED_FIELDS, DISPATCHED_TASK, QUEUED_FIELDS, QUEUED_TASK, QUEUED_TASK_V1,
                                dispatched_records, queued_bytes)


def btf_structs(tmp_path) -> dict[str, dict[str, tuple[int, int]]]:
    """{struct: {member: (offset, size)}} from the BTF of the embedded BPF object."""
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    obj = tmp_path / "pyland.bpf.o"
    obj.write_bytes(_bpf.bpf_object())
    out = subprocess.run([bpftool, "-j", "btf", "dump", "file", str(obj)],
                         check=True, capture_output=True, text=True).stdout
    types = {t["id"]: t for t in json.loads(out)["types"]}

    def size_of(type_id: int) -> int:
        t = types[type_id]
        if t["kind"] in ("TYPEDEF", "CONST", "VOLATILE"):
            return size_of(t["type_id"])
        if t["kind"] == "ARRAY":
            return t["nr_elems"] * size_of(t["type_id"])
        return t["size"]

    structs = {}
    for t in types.values():
        if t["kind"] == "STRUCT" and t["name"] in ("queued_task", "dispatched_task"):
            members = {m["name"]: (m["bits_offset"] // 8, size_of(m["type_id"])) for m in t["members"]}
            members["__size__"] = t["size"]
            structs[t["name"]] = members
    return structs


def struct_layout(fmt: struct.Struct, fields: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    layout, offset = {}, 0
    for name, code in zip(fields, fmt.format[1:].replace("16s", "s")):
        size = 16 if code == "s" else struct.calcsize(code)
        layout[name] = (offset, size)
        offset += size
    layout["__size__"] = fmt.size
    return layout


def test_extension_layout_matches_the_bpf_objects_btf(tmp_path):
    btf = btf_structs(tmp_path)
    compiled = _bpf.layout()
    for name in ("queued_task", "dispatched_task"):
        assert {k: tuple(v) if isinstance(v, tuple) else v for k, v in compiled[name].items()} == btf[name]


def test_test_byte_layout_matches_the_bpf_objects_btf(tmp_path):
    btf = btf_structs(tmp_path)
    assert struct_layout(QUEUED_TASK, QUEUED_FIELDS) == btf["queued_task"]
    assert struct_layout(DISPATCHED_TASK, DISPATCHED_FIELDS) == btf["dispatched_task"]


def test_a_version_1_record_is_the_record_without_its_two_timestamps():
    assert QUEUED_TASK.size == QUEUED_TASK_V1.size + 16
    assert QUEUED_TASK.format.startswith(QUEUED_TASK_V1.format) and QUEUED_TASK.format.endswith("QQ")


def test_queued_records_decode_field_by_field():
    data = queued_bytes(4242, cpu=1, nr_cpus_allowed=2, flags=0x8, start_ts=10, stop_ts=25,
                        exec_runtime=15, weight=100, vtime=777, enq_cnt=3, comm="stress-ng-cpu",
                        enq_ts=40, decided_ts=30)
    [task] = _bpf.decode_queued(data)
    assert (task.pid, task.cpu, task.nr_cpus_allowed, task.flags) == (4242, 1, 2, 0x8)
    assert (task.start_ts, task.stop_ts, task.exec_runtime) == (10, 25, 15)
    assert (task.weight, task.vtime, task.enq_cnt, task.comm) == (100, 777, 3, "stress-ng-cpu")
    assert (task.enq_ts, task.decided_ts) == (40, 30)


def test_a_full_length_comm_has_no_terminator_and_still_decodes():
    [task] = _bpf.decode_queued(queued_bytes(1, comm="x" * 16))
    assert task.comm == "x" * 16


def test_many_records_decode_in_order():
    data = b"".join(queued_bytes(pid) for pid in range(100, 110))
    assert [t.pid for t in _bpf.decode_queued(data)] == list(range(100, 110))


def test_a_truncated_buffer_is_refused():
    with pytest.raises(ValueError, match="not a multiple of the record size"):
        _bpf.decode_queued(queued_bytes(1)[:-1])


def test_dispatched_records_encode_in_the_intf_layout():
    tasks = [_bpf.DispatchedTask(pid=7, cpu=1, flags=_bpf.RL_PREEMPT, slice_ns=5000, vtime=9, enq_cnt=2),
             _bpf.DispatchedTask(pid=8)]
    assert dispatched_records(_bpf.encode_dispatched(tasks)) == [
        {"pid": 7, "cpu": 1, "flags": _bpf.RL_PREEMPT, "slice_ns": 5000, "vtime": 9, "enq_cnt": 2},
        {"pid": 8, "cpu": _bpf.RL_CPU_ANY, "flags": 0, "slice_ns": 0, "vtime": 0, "enq_cnt": 0},
    ]
