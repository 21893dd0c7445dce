"""The guest itself: what every other VM test stands on."""

import os
import re
import subprocess
from pathlib import Path

from conftest import sched_ext_state

from scx_pyland.exits import ExitKind, is_error, kind_name


def test_sched_ext_is_present_and_disabled():
    assert Path("/sys/kernel/sched_ext").is_dir()
    assert sched_ext_state() == "disabled"


def test_kernel_btf_has_sched_ext_ops():
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                         capture_output=True, text=True, check=True).stdout
    assert "STRUCT 'sched_ext_ops'" in out


def kernel_exit_kinds() -> dict[str, int]:
    """The running kernel's `enum scx_exit_kind` from its BTF (bpftool's raw dump):
    name without SCX_EXIT_ -> value."""
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                         capture_output=True, text=True, check=True).stdout
    body = re.search(r"^\[\d+\] ENUM 'scx_exit_kind'[^\n]*\n((?:\s+'\w+' val=-?\d+\n)+)", out, re.M)
    assert body, "no enum scx_exit_kind in the kernel's BTF"
    return {name: int(value) for name, value in re.findall(r"'SCX_EXIT_(\w+)' val=(-?\d+)", body.group(1))}


def test_exit_kinds_have_the_values_of_the_running_kernel_s_enum():
    """scx_pyland.exits.ExitKind is a copy of the kernel's enum: every kind it names
    has the kernel's value, and every kind it lacks is classified (unregistration
    or error) by its range as the kernel's name says."""
    kernel = kernel_exit_kinds()
    assert {kind.name: kind.value for kind in ExitKind} == {name: kernel.get(name) for name in ExitKind.__members__}
    for name, value in kernel.items():
        assert is_error(value) == name.startswith("ERROR"), (name, value)
        if name not in ExitKind.__members__:
            assert kind_name(value).startswith("ERROR_" if name.startswith("ERROR") else "UNREG_"), (name, value)


def test_bpf_syscall_works():
    # Listing programs calls bpf(BPF_PROG_GET_NEXT_ID) for real.
    out = subprocess.run(["bpftool", "prog", "list"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_package_imports_and_reads_the_kernels_btf():
    from scx_pyland import _bpf
    assert _bpf.kernel_enum_value("scx_ops_flags", "SCX_OPS_ENQ_LAST") == 2
    assert _bpf.kernel_enum_value("scx_ops_flags", "NO_SUCH_FLAG") is None


def test_the_guest_runs_as_root_in_a_writable_job_directory():
    assert os.geteuid() == 0
    probe = Path(os.environ["VM_JOB"]) / "probe"
    probe.write_text("ok")
    assert probe.read_text() == "ok"
