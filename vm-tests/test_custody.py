"""Custody: no task waits on a worker that does not run. The BPF side keeps every
task it queued to the worker and serves the ones the worker holds itself when the
worker is stopped, blocked or gone (docs/design.md, "Custody").

Each pause is made and ended exactly as a user's shell would: `kill -STOP`, `sleep`,
`kill -CONT`, from an ordinary (sched_ext) process, the `sleep` forked right after the
STOP. Before custody, that `sleep` was queued to the stopped worker, the CONT never
came and the watchdog ejected the scheduler."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from conftest import record_result

from scx_pyland import stats

ENABLE_SEQ = Path("/sys/kernel/sched_ext/enable_seq")
PAUSES_S = (2, 10, 60)
# The worker's statistics file is rewritten about once a second.
STATS_SETTLE_S = 2.5


def enable_seq() -> int:
    return int(ENABLE_SEQ.read_text())


def counts() -> dict[str, int]:
    v = stats.read_snapshot().values
    return {k: v[k] for k in ("nr_user_dispatches", "nr_direct_dispatches", "nr_stalled_dispatches",
                              "nr_custody_dispatches", "nr_rt_dispatches", "nr_sched_congested")}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}


def user_share(d: dict[str, int]) -> float:
    """The policy's share of the workload's dispatches (kernel threads left out)."""
    total = sum(d.values())
    return d["nr_user_dispatches"] / total if total else 0.0


def children_cpu_ns(pid: int) -> dict[int, int]:
    """CPU time (ns) of each process whose parent is `pid` (stress-ng's workers)."""
    cpu = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                cpu[int(entry.name)] = int((entry / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return cpu


def test_a_shell_pausing_the_worker_ends_in_no_ejection(start_scx, tmp_path):
    """Under `stress-ng --cpu 4` on 2 vCPUs, a shell stops the worker for 2, 10 and
    60 s and resumes it. Each time: the scheduler stays attached (enable_seq does not
    move), the shell's pause lasts what it asked for (its `sleep` and `kill -CONT`
    were not left waiting for the worker), the hogs keep at least half of the CPUs
    during the pause (EEVDF would give them all of it) and share them evenly (the
    least-served one at least half the most-served one's), the BPF side served tasks
    itself (custody and stalled counts grow) and the policy decides again after the
    CONT (its share of the dispatches back to >= 80%; >= 90% is the normal load's)."""
    run = start_scx()
    seq = enable_seq()
    stress = subprocess.Popen(["stress-ng", "--cpu", str(2 * os.cpu_count()), "-t", "300s"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []
    try:
        time.sleep(3)
        for pause_s in PAUSES_S:
            worker = run.worker_pid()
            assert worker, run.diagnosis()
            before = counts()
            cpu_before = children_cpu_ns(stress.pid)
            started = time.monotonic()
            pause = subprocess.run(["sh", "-c", f"kill -STOP {worker}; sleep {pause_s}; kill -CONT {worker}"],
                                   capture_output=True, text=True, timeout=pause_s + 60)
            lasted = time.monotonic() - started
            per_hog = {pid: ns - cpu_before[pid] for pid, ns in children_cpu_ns(stress.pid).items()
                       if pid in cpu_before}
            hogs_cpu_s = sum(per_hog.values()) / 1e9
            # Each hog's share of what they all got: equal under EEVDF.
            fairness = min(per_hog.values()) / max(per_hog.values()) if per_hog else 0.0
            assert pause.returncode == 0, pause.stderr
            time.sleep(STATS_SETTLE_S)
            during = delta(counts(), before)
            after_cont = counts()
            time.sleep(5)
            recovered = delta(counts(), after_cont)
            run.assert_attached()
            result = {"pause_s": pause_s, "lasted_s": round(lasted, 2), "hogs_cpu_s": round(hogs_cpu_s, 2),
                      "least_over_most_hog": round(fairness, 3), "during": during,
                      "user_share_after": round(user_share(recovered), 3)}
            results.append(result)
            assert enable_seq() == seq and run.status().get("restarts", 0) == 0, \
                f"ejected after a pause of {pause_s} s: {result}\n{run.diagnosis()}"
            assert lasted < pause_s + 5, f"the shell's pause of {pause_s} s lasted {lasted:.1f} s: {result}"
            assert hogs_cpu_s >= 0.5 * os.cpu_count() * pause_s, f"the hogs starved during the pause: {result}"
            # Served by the BPF side, the hogs share the CPUs as EEVDF would: before the
            # BPF side charged their runs (kernel_vtime()), one got a tenth of another's.
            assert fairness >= 0.5, f"the hogs did not share the CPUs during the pause: {result}"
            assert during["nr_custody_dispatches"] + during["nr_stalled_dispatches"] > 0, result
            assert user_share(recovered) >= 0.8, f"the policy did not take over again: {result}"
    finally:
        stress.kill()
        stress.wait(60)
        record_result("shell_pauses_of_the_worker", {"pauses": results})


# A policy that blocks in dispatch() once, for BLOCK_S: a misbehaving policy, as the
# README warns (a sleep, a blocking read, a lock).
BLOCKING = """\
import time
from scx_pyland.policies.fifo import FifoPolicy

class Blocking(FifoPolicy):
    name = "blocking"

    def __init__(self, config):
        super().__init__(config)
        self.started = None     # the first cycle, once attached
        self.blocked = False

    def dispatch(self):
        if self.started is None:
            self.started = time.monotonic()
        if not self.blocked and time.monotonic() - self.started > 5:
            self.blocked = True
            time.sleep({block_s})
        return super().dispatch()
"""
BLOCK_S = 3


def test_a_policy_that_blocks_in_dispatch_ends_in_no_ejection(start_scx, tmp_path):
    """A policy sleeps 3 s in dispatch() once, under `stress-ng --cpu 4`: the tasks it
    holds and the ones queued meanwhile are served by the BPF side, nothing is
    ejected, and the hogs keep running through it."""
    policy = tmp_path / "blocking.py"
    policy.write_text(BLOCKING.format(block_s=BLOCK_S))
    run = start_scx("--policy", f"{policy}:Blocking")
    seq = enable_seq()
    stress = subprocess.Popen(["stress-ng", "--cpu", str(2 * os.cpu_count()), "-t", "60s"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        before = counts()
        time.sleep(5 + BLOCK_S + 8)
        d = delta(counts(), before)
        run.assert_attached()
    finally:
        stress.kill()
        stress.wait(60)
    record_result("policy_blocking_in_dispatch", {"block_s": BLOCK_S, "dispatches": d})
    assert enable_seq() == seq and run.status().get("restarts", 0) == 0, run.diagnosis()
    assert d["nr_custody_dispatches"] > 0, f"the BPF side served nothing while the policy blocked: {d}"
