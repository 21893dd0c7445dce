"""The guest itself: what every other VM test stands on."""

import os
import subprocess
from pathlib import Path

from conftest import sched_ext_state


def test_sched_ext_is_present_and_disabled():
    assert Path("/sys/kernel/sched_ext").is_dir()
    assert sched_ext_state() == "disabled"


def test_kernel_btf_has_sched_ext_ops():
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                         capture_output=True, text=True, check=True).stdout
    assert "STRUCT 'sched_ext_ops'" in out


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
