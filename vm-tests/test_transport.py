"""scx_pyland with the FIFO policy on a real sched_ext kernel: attach, hold a machine
under load, count what the Python policy decided, and leave cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import record_result, run_under_eevdf, sched_ext_state, wait_for_state
from scx_pyland.bench_workloads import parse_stress_ng

STRESS_RUNS = int(os.environ.get("SCX_PYLAND_STRESS_RUNS", "3"))
STRESS_SECONDS = int(os.environ.get("SCX_PYLAND_STRESS_SECONDS", "30"))
# Under the fifo policy the hogs do at least this share of the work EEVDF lets them
# do in the same boot: the worker's CPU time and sched_ext's path are the rest
# (docs/benchmarks.md: stress-ng --cpu 4 at x1.01-1.15 of EEVDF).
MIN_STRESS_WORK_VS_EEVDF = 0.6


def stress_argv(nr_cpus: int) -> list[str]:
    return ["stress-ng", "--cpu", str(2 * nr_cpus), "--aggressive", "-t", f"{STRESS_SECONDS}s", "--metrics-brief"]


@pytest.fixture(scope="module")
def eevdf_stress_ops(tmp_path_factory) -> float:
    """stress_argv()'s bogo-ops/s under EEVDF, once per boot, before any attach."""
    out = run_under_eevdf(stress_argv(os.cpu_count()), tmp_path_factory.mktemp("eevdf"), STRESS_SECONDS + 300)
    return parse_stress_ng(out)["bogo_ops_per_s"]


def test_attach_enables_sched_ext_with_the_pyland_ops(start_scx):
    run = start_scx("--policy", "fifo")
    assert sched_ext_state() == "enabled"
    assert Path("/sys/kernel/sched_ext/root/ops").read_text().startswith("pyland")
    assert run.stop() == 0
    assert wait_for_state("disabled", 30)


@pytest.mark.parametrize("round_", range(1, STRESS_RUNS + 1))
def test_stress_cpu_stays_attached_and_python_decides_the_dispatches(eevdf_stress_ops, start_scx, round_,
                                                                     tmp_path):
    nr_cpus = os.cpu_count()
    run = start_scx("--policy", "fifo")
    stress = subprocess.run(stress_argv(nr_cpus), capture_output=True, text=True, timeout=STRESS_SECONDS + 300,
                            cwd=tmp_path)
    assert stress.returncode == 0, stress.stderr
    run.assert_attached()
    ops = parse_stress_ng(stress.stdout + stress.stderr)["bogo_ops_per_s"]

    assert run.stop(signal.SIGTERM) == 0, run.diagnosis()
    assert wait_for_state("disabled", 30)
    report = run.report()
    assert report["kind"] == "UNREG" and "unregistered from user space" in report["reason"]

    user, kernel, congested = (int(report[k]) for k in ("user", "kernel", "congested"))
    cancelled, bounced, failed = (int(report[k]) for k in ("cancelled", "bounced", "failed"))
    policy_dispatched = int(report["policy_dispatched"])
    total = user + kernel + congested
    record_result("stress_cpu", {
        "round": round_, "seconds": STRESS_SECONDS, "policy_dispatched": policy_dispatched,
        "user": user, "kernel_dispatches": kernel, "congested": congested, "cancelled": cancelled,
        "bounced": bounced, "failed": failed, "user_share": round(user / total, 4),
        "kernel_share": round(kernel / total, 4), "congested_share": round(congested / total, 4),
        "bogo_ops_per_s": ops, "eevdf_bogo_ops_per_s": eevdf_stress_ops})
    assert ops >= MIN_STRESS_WORK_VS_EEVDF * eevdf_stress_ops, (ops, eevdf_stress_ops)

    # Every decision the Python policy sent was taken by the BPF side: carried out
    # (user), dropped as stale (cancelled: --aggressive changes affinities, which
    # dequeues and re-enqueues queued tasks) or for a task gone (failed).
    assert policy_dispatched == user + cancelled + failed, report
    assert failed <= max(5, policy_dispatched // 100), report
    # The Python policy, not a fallback, scheduled the user tasks.
    assert user > 0.5 * total, report
    assert congested <= 0.01 * total, report


def test_sysrq_s_makes_the_worker_exit_with_the_sysrq_reason(start_scx):
    run = start_scx("--policy", "fifo", "--no-supervisor")
    Path("/proc/sysrq-trigger").write_text("S")
    assert run.wait_exit() == 75, run.diagnosis()
    assert wait_for_state("disabled", 30)
    report = run.report()
    assert report["kind"] == "SYSRQ", report
    assert "sysrq-S" in report["reason"], report


def test_a_second_instance_fails_clearly_while_one_is_attached(start_scx):
    first = start_scx("--policy", "fifo")
    second = subprocess.run(["scx_pyland", "--policy", "fifo"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 69
    errors = [line for line in second.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, second.stderr
    assert "another sched_ext scheduler is attached (pyland" in errors[0]
    assert "Traceback" not in second.stderr
    first.assert_attached()
    assert first.stop() == 0
