"""Parity with scx_rustland_core, in a guest with 2 cores of 2 threads (SMT): the
cache-domain masks, idle-CPU selection for the policy, affinity changes of queued
tasks, and --partial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import record_result, wait_for_state
from scx_pyland import _bpf, stats
from scx_pyland.topology import read_topology
from scx_pyland.worker import cache_domains

SCHED_EXT = 7
AS_SCHED_EXT = [sys.executable, "-c",
                "import os, sys; os.sched_setscheduler(0, 7, os.sched_param(0)); "
                "os.execvp(sys.argv[1], sys.argv[1:])"]


@pytest.fixture
def partial_scheduler():
    """A Scheduler attached in partial mode by this very process: no task is ours
    unless switched to SCHED_EXT, so the test can call into it at leisure."""
    assert wait_for_state("disabled", 60)
    topo = read_topology()
    sched = _bpf.Scheduler(partial=True, smt_enabled=topo.smt_enabled, domains=cache_domains(topo))
    yield sched, topo
    sched.close()
    assert wait_for_state("disabled", 60)


def test_the_guest_has_smt():
    topo = read_topology()
    assert topo.smt_enabled and len(topo.online) == 4, topo


def test_the_bpf_cache_domain_masks_match_sysfs(partial_scheduler):
    sched, topo = partial_scheduler
    for cpu in topo.online:
        assert sched.read_domain(_bpf.DOMAIN_SMT, cpu) == topo.core_siblings[cpu]
        assert sched.read_domain(_bpf.DOMAIN_L2, cpu) == topo.l2_siblings[cpu]
        assert sched.read_domain(_bpf.DOMAIN_L3, cpu) == topo.l3_siblings[cpu]
    assert sched.read_domain(_bpf.DOMAIN_ONLINE, 0) == topo.online


class Task:
    def __init__(self, pid: int, cpu: int) -> None:
        self.pid, self.cpu = pid, cpu


def test_select_cpu_picks_only_cpus_the_task_may_use(partial_scheduler):
    sched, topo = partial_scheduler
    pinned = subprocess.Popen(["taskset", "-c", "3", "sleep", "60"])
    # Ask from another CPU: a CPU running the caller is not idle, and EEVDF may keep
    # this process on CPU 3 for the whole loop (then every answer was -1).
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(topo.online) - {3})
    try:
        time.sleep(0.5)
        # Its previous CPU is not even allowed: the answer is CPU 3 or none. The
        # guest is idle, so CPU 3 must come up (a pick claims the CPU until it goes
        # idle again: ask a few times).
        answers = []
        deadline = time.monotonic() + 5
        while 3 not in answers and time.monotonic() < deadline:
            answers += [sched.select_cpu(pinned.pid, 0), sched.select_cpu(pinned.pid, 3)]
            time.sleep(0.05)
        assert 3 in answers and set(answers) <= {3, -1}, answers
    finally:
        os.sched_setaffinity(0, own)
        pinned.kill()
        pinned.wait()


def test_select_cpu_answers_minus_one_for_a_task_that_is_gone(partial_scheduler):
    sched, topo = partial_scheduler
    gone = subprocess.Popen(["true"])
    gone.wait()
    # The BPF program answers -ESRCH; the policy API promises -1.
    assert sched.select_cpu(gone.pid, 0) == -1
    assert sched.select_cpus([Task(gone.pid, 0), Task(gone.pid, 1)]) == [-1, -1]


def test_batched_select_cpu_gives_distinct_idle_cpus(partial_scheduler):
    sched, topo = partial_scheduler
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    try:
        time.sleep(0.5)
        tasks = [Task(p.pid, 0) for p in sleepers]
        cpus = sched.select_cpus(tasks)
        picked = [c for c in cpus if c >= 0]
        assert picked, cpus                      # the guest is mostly idle
        assert len(set(picked)) == len(picked)   # each pick claims its CPU
        assert set(picked) <= set(topo.online)
        started = time.perf_counter()
        for _ in range(100):
            sched.select_cpu(sleepers[0].pid, 0)
        single_us = (time.perf_counter() - started) / 100 * 1e6
        batch = tasks * 64
        started = time.perf_counter()
        for _ in range(20):
            sched.select_cpus(batch)
        per_task_us = (time.perf_counter() - started) / (20 * len(batch)) * 1e6
        record_result("select_cpu", {"single_call_us": round(single_us, 1),
                                     "batched_per_task_us": round(per_task_us, 2), "batch": len(batch)})
    finally:
        for p in sleepers:
            p.kill()
            p.wait()


def test_affinity_changes_of_queued_tasks_are_bounced_or_cancelled(start_scx, tmp_path):
    run = start_scx("--policy", "rustland")
    stress = subprocess.Popen(["stress-ng", "--cpu", "8", "-t", "15s"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(stress.pid)], capture_output=True,
                                              text=True).stdout.split()]
    assert workers
    masks = [{0}, {1, 2, 3}, {2}, {0, 1}]
    flips = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        for pid in workers:
            try:
                os.sched_setaffinity(pid, masks[flips % len(masks)])
            except ProcessLookupError:
                pass
        flips += 1
        time.sleep(0.02)
    assert stress.wait(120) == 0
    run.assert_attached()
    assert run.stop(signal.SIGTERM) == 0, run.diagnosis()
    report = run.report()
    cancelled, bounced = int(report["cancelled"]), int(report["bounced"])
    record_result("affinity_changes", {"flips": flips, "workers": len(workers), "cancelled": cancelled,
                                       "bounced": bounced, "user": int(report["user"])})
    assert cancelled + bounced > 0, report


def snapshot_user() -> int:
    return stats.read_snapshot().values["nr_user_dispatches"]


def test_partial_leaves_ordinary_tasks_alone_and_schedules_sched_ext_ones(start_scx, tmp_path):
    run = start_scx("--policy", "fifo", "--partial")
    time.sleep(2)
    before = snapshot_user()
    # Twice as many hogs as CPUs: with one per CPU nothing waits, and the BPF side
    # lets each go on at the end of its slice without the worker.
    subprocess.run(["stress-ng", "--cpu", "8", "-t", "5s"], cwd=tmp_path, capture_output=True, timeout=120)
    time.sleep(1.5)
    ordinary = snapshot_user() - before
    before = snapshot_user()
    subprocess.run([*AS_SCHED_EXT, "stress-ng", "--cpu", "8", "-t", "5s"], cwd=tmp_path,
                   capture_output=True, timeout=120)
    time.sleep(1.5)
    ext = snapshot_user() - before
    record_result("partial", {"ordinary_stress_user_dispatches": ordinary, "sched_ext_stress_user_dispatches": ext})
    run.assert_attached()
    assert run.stop() == 0, run.diagnosis()
    assert ext > 100, (ordinary, ext)
    assert ordinary < ext / 10, (ordinary, ext)
