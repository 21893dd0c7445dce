"""Exit kinds and statuses against the sources they copy: the kernel's enum (here as
bpf/vmlinux.h has it; vm-tests/test_harness.py checks the running kernel's BTF) and
docs/design.md's table of exit statuses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scx_pyland.exits import (ExitKind, SupervisorStatus, WorkerStatus, explain, is_error, kernel_release,
                              kind_name)

ROOT = Path(__file__).resolve().parent.parent


def vmlinux_h_exit_kinds() -> dict[str, int]:
    """`enum scx_exit_kind` of bpf/vmlinux.h (Debian 7.3.4's BTF): name without
    SCX_EXIT_ -> value."""
    text = (ROOT / "bpf" / "vmlinux.h").read_text()
    body = re.search(r"^enum scx_exit_kind \{\n(.*?)^\};", text, re.M | re.S).group(1)
    return {name: int(value) for name, value in re.findall(r"^\s*SCX_EXIT_(\w+) = (\d+),", body, re.M)}


def test_every_exit_kind_has_the_value_of_the_kernel_s_enum():
    kernel = vmlinux_h_exit_kinds()
    assert {kind.name: kind.value for kind in ExitKind} == {name: kernel[name] for name in ExitKind.__members__}


def test_kinds_the_enum_lacks_are_named_by_their_range_as_the_kernel_names_them():
    # 7.3 has kinds ExitKind does not (PARENT, ERROR_REENQ, ...): each is classified
    # by the range its kernel name says.
    unknown = {name: value for name, value in vmlinux_h_exit_kinds().items() if name not in ExitKind.__members__}
    assert unknown
    for name, value in unknown.items():
        assert is_error(value) == name.startswith("ERROR"), name
        assert kind_name(value) == (f"ERROR_0x{value:x}" if name.startswith("ERROR") else f"UNREG_0x{value:x}")


def test_worker_statuses_are_distinct():
    # __members__, not iteration: iterating an enum skips aliases (two names, one value).
    members = WorkerStatus.__members__
    assert len({s.value for s in members.values()}) == len(members)


def test_supervisor_statuses_are_distinct():
    members = SupervisorStatus.__members__
    assert len({s.value for s in members.values()}) == len(members)


def design_exit_table() -> dict[str, set[int]]:
    """docs/design.md's "Exit statuses" table: who -> the statuses its rows list (a
    row with an empty first cell continues the one above)."""
    text = (ROOT / "docs" / "design.md").read_text()
    table = text.split("\n## Exit statuses\n", 1)[1].split("\n## ", 1)[0]
    statuses: dict[str, set[int]] = {}
    who = ""
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.match(r"^\d", cells[1]):
            continue
        who = cells[0] or who
        statuses.setdefault(who, set()).update(int(n) for n in re.findall(r"\d+", cells[1]))
    return statuses


def test_the_design_s_exit_table_lists_every_status_of_the_supervisor_and_the_worker():
    table = design_exit_table()
    assert table["supervisor (`scx_pyland`)"] == {s.value for s in SupervisorStatus}
    assert table["worker (`--no-supervisor`)"] == {s.value for s in WorkerStatus}


@pytest.mark.parametrize("release, explained", [
    ("7.3.4+deb13-amd64", True), ("7.2.12+deb13-amd64", True), ("8.0.1", True),
    ("7.1.13+deb13-amd64", False), ("6.18.15+deb13-amd64", False)])
def test_an_enable_refused_with_ebusy_is_the_ext_server_s_bandwidth_from_7_2(release, explained):
    """7.2 and 7.3 reserve the ext_server's deadline bandwidth as a scheduler
    attaches (their images log 'failed to attach ext_server'); 7.0 and 7.1 at boot."""
    meaning = explain("runtime error (scx_root_enable() failed (-16))", release)
    assert (meaning is not None) == explained
    if explained:
        assert "SCHED_DEADLINE bandwidth for its sched_ext server (ext_server)" in meaning
        assert "/proc/sys/kernel/sched_rt_runtime_us" in meaning and "frees it" in meaning


def test_other_kernel_messages_are_left_as_they_are():
    assert explain("runnable task stall (kworker/0:1[42] failed to run for 5.2s)", "7.3.4") is None
    assert explain("scx_root_enable() failed (-12)", "7.3.4") is None


def test_a_kernel_release_reads_as_major_and_minor():
    assert kernel_release("7.3.4+deb13-amd64") == (7, 3) and kernel_release("weird") == (0, 0)
