"""The command line as a user meets it: help, bad arguments, and a kernel without
sched_ext (these tests run on the build host's kernel, which has none)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def scx_pyland(*args: str, run_dir: Path | None = None) -> subprocess.CompletedProcess:
    """`run_dir`: the run directory (SCX_PYLAND_RUN_DIR) of a command that supervises."""
    env = dict(os.environ, SCX_PYLAND_RUN_DIR=str(run_dir)) if run_dir else None
    return subprocess.run([sys.executable, "-m", "scx_pyland", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_help_explains_every_option():
    out = scx_pyland("--help")
    assert out.returncode == 0
    for option in ("--policy", "--slice-us", "--slice-us-min", "--percpu-local", "--partial",
                   "--timeout-ms", "--exit-dump-len", "--stats", "--monitor", "--help-stats",
                   "--record", "--verbose", "--version", "--watch", "--on-policy-error",
                   "--rescue-after-ms", "scx_pyland reload"):
        assert option in out.stdout
    assert "exit status" in out.stdout


def test_version():
    from test_packaging import meson_version
    out = scx_pyland("--version")
    assert (out.returncode, out.stdout.strip()) == (0, f"scx_pyland {meson_version()}")


@pytest.mark.parametrize("args, message", [
    (["--slice-us", "0"], "must be greater than 0"),
    (["--slice-us", "fast"], "not a whole number"),
    (["--timeout-ms", "60000"], "caps the watchdog at 30000 ms"),
    (["--rescue-after-ms", "5000"], "must be at most 3500 with --timeout-ms 5000"),
    (["--rescue-after-ms", "3501"], "must be at most 3500 with --timeout-ms 5000"),
    (["--timeout-ms", "2000", "--rescue-after-ms", "1401"], "must be at most 1400 with --timeout-ms 2000"),
    (["--on-policy-error", "ignore"], "must be fallback or exit"),
    (["reload", "--timeout", "soon"], "invalid float value"),
    (["--policy", "nope"], "unknown policy 'nope'"),
    (["--stats", "0"], "must be greater than 0"),
    (["--record", "/no/such/dir/trace"], "no directory"),
    (["--slice-us", "100", "--slice-us-min", "200"], "larger than --slice-us"),
    (["--exit-dump-len", "-1"], "must not be negative"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_arguments_exit_2_with_a_message_and_no_traceback(args, message):
    out = scx_pyland(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.skipif(Path("/sys/kernel/sched_ext").exists(), reason="this kernel has sched_ext")
def test_a_kernel_without_sched_ext_gets_one_clear_line_and_exit_69(tmp_path):
    out = scx_pyland("--status-file", str(tmp_path / "supervisor.json"), run_dir=tmp_path)
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert out.returncode == 69
    assert len(errors) == 1
    assert "has no sched_ext" in errors[0] and "CONFIG_SCHED_CLASS_EXT" in errors[0]
    assert "(Linux 6.14 or later)" in errors[0]
    assert "Traceback" not in out.stderr


@pytest.mark.skipif(Path("/sys/kernel/sched_ext").exists() or not Path("/sys/kernel/btf/vmlinux").exists(),
                    reason="this kernel has sched_ext, or no BTF to read")
def test_the_kfuncs_a_kernel_without_them_lacks_are_named_with_their_release():
    from scx_pyland import _bpf
    assert dict(_bpf.missing_kfuncs()) == {"scx_bpf_dsq_move": "6.13", "scx_bpf_now": "6.14"}


def test_help_stats_describes_every_field():
    from scx_pyland.stats import FIELDS
    out = scx_pyland("--help-stats")
    assert out.returncode == 0
    for field in FIELDS:
        assert field.name in out.stdout


def test_monitor_says_clearly_when_no_scheduler_runs(tmp_path):
    env = dict(os.environ, SCX_PYLAND_RUN_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "scx_pyland", "--monitor", "1"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1
    assert "no scx_pyland is running" in out.stderr


def run_monitor_briefly(run_dir) -> tuple[str, str]:
    """`scx_pyland --monitor 0.2` on `run_dir` for 3 s: its (stdout, stderr)."""
    env = dict(os.environ, SCX_PYLAND_RUN_DIR=str(run_dir))
    proc = subprocess.Popen([sys.executable, "-m", "scx_pyland", "--monitor", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        return proc.communicate(timeout=3)
    except subprocess.TimeoutExpired:
        proc.terminate()
        return proc.communicate()


def test_monitor_waits_through_a_worker_restart_and_says_so(tmp_path):
    (tmp_path / "supervisor.json").write_text('{"state": "restarting", "restarts": 2}')
    _, err = run_monitor_briefly(tmp_path)
    assert "waiting for the worker (restarting, restarts 2)" in err


def test_monitor_shows_the_policy_in_use_its_swaps_and_the_last_swap(tmp_path):
    from scx_pyland import files, stats
    writer = stats.StatsWriter(tmp_path / "stats")      # this process plays the worker
    writer.publish(tuple(range(len(stats.FIELDS))))
    files.write_json_atomic(tmp_path / "policy.json", {
        "worker_pid": os.getpid(), "policy": "fifo", "swaps": 1, "policy_errors": 1,
        "last_swap": {"from": "mine.py:Mine", "to": "fifo", "cause": "policy error", "ok": True,
                      "message": "the mine policy raised KeyError: 7; fifo took over its 3 tasks"}})
    try:
        out, _ = run_monitor_briefly(tmp_path)
    finally:
        writer.close()
    assert out.splitlines()[0] == (
        "policy: fifo, swaps 1, policy errors 1, last swap: mine.py:Mine -> fifo (policy error): ok, "
        "the mine policy raised KeyError: 7; fifo took over its 3 tasks")
    assert out.count("policy: ") == 1          # printed when it changes, not every interval
