"""A CPU scheduler's basic promises, each measured under EEVDF in the same guest
first and then under scx_pyland (the default rustland policy), started as a user
would: nice and scheduling classes are honoured, a woken task does not wait for
nothing, a pause of the worker does not end in a watchdog ejection, real-time hogs
do not eject it, and an idle machine costs the worker next to nothing.

Every measurement is recorded (scripts/vm-test prints them after the run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from conftest import record_result, sched_ext_state

from scx_pyland import stats

ENABLE_SEQ = Path("/sys/kernel/sched_ext/enable_seq")
EXT_SERVER = Path("/sys/kernel/debug/sched/ext_server")
SHARE_SECONDS = 10
STRESS_SECONDS = 12
LATENCY_SECONDS = 15
RT_SECONDS = 20
IDLE_SECONDS = 15
# Debian's 7.1 and 7.2 builds cannot link scx_bpf_kick_cpu (bpf/compat.bpf.h): there
# the heartbeat moves the worker into an idle CPU's local DSQ, and the kernel charges
# the worker that CPU's idle time (docs/design.md, "The worker's CPU time").
CANNOT_KICK = ("7.1.", "7.2.")


def enable_seq() -> int:
    return int(ENABLE_SEQ.read_text())


def cpu_time_ns(pid: int) -> int:
    """CPU time a task has used, from /proc/PID/schedstat (ns)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def start_hog(*prefix: str) -> subprocess.Popen:
    """A busy loop, started through `prefix` (nice, chrt, taskset ...): every
    prefix execs the next, so the Popen's pid is the looping shell itself."""
    return subprocess.Popen([*prefix, "sh", "-c", "while :; do :; done"])


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        proc.wait(60)


def cpu_shares(hogs: dict[str, list[str]], seconds: float) -> dict[str, float]:
    """Start each hog (name -> command prefix), let them settle 1 s, then measure the
    CPU time each gets over `seconds`: the share of their total, in %."""
    procs = {name: start_hog(*prefix) for name, prefix in hogs.items()}
    try:
        time.sleep(1)
        before = {name: cpu_time_ns(p.pid) for name, p in procs.items()}
        time.sleep(seconds)
        used = {name: cpu_time_ns(p.pid) - before[name] for name, p in procs.items()}
    finally:
        stop_all(list(procs.values()))
    total = sum(used.values()) or 1
    return {name: round(100.0 * ns / total, 2) for name, ns in used.items()}


def expected_shares(weights: dict[str, int]) -> dict[str, float]:
    total = sum(weights.values())
    return {name: 100.0 * w / total for name, w in weights.items()}


# sched_ext weights (nice 0 = 100): nice 19 is the kernel's 15/1024 rounded to 1, and
# SCHED_IDLE (weight 3/1024 under EEVDF) is given 1 by scx_pyland too.
ON_CPU1 = ["taskset", "-c", "1"]
TWO_HOGS = {"nice0": ON_CPU1, "nice19": ["nice", "-n", "19", *ON_CPU1]}
TWO_WEIGHTS = {"nice0": 100, "nice19": 1}
FOUR_HOGS = {**TWO_HOGS, "batch": ["chrt", "-b", "0", *ON_CPU1], "idle": ["chrt", "-i", "0", *ON_CPU1]}
FOUR_WEIGHTS = {**TWO_WEIGHTS, "batch": 100, "idle": 1}


def check_shares(name: str, shares: dict[str, float], eevdf: dict[str, float],
                 weights: dict[str, int]) -> None:
    """Within 5 points of what the weights say and of EEVDF's, and none starved."""
    want = expected_shares(weights)
    for task, share in shares.items():
        assert abs(share - want[task]) <= 5, (name, task, shares, want, eevdf)
        assert abs(share - eevdf[task]) <= 5, (name, task, shares, eevdf)
        assert share > 0, f"{task} got no CPU time at all: {shares}"


def tree_cpu_ns(pid: int) -> int:
    """CPU time (ns) of a process and every live descendant of it (from schedstat)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_time_ns(p)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue    # it exited while we looked
    return total


def stress_shares(hogs: dict[str, list[str]], seconds: float, tmp_path: Path) -> dict[str, float]:
    """Start `stress-ng --cpu 1` through each prefix at once (no settling: the parent's
    own start, before it forks its worker, is part of what is measured) and return the
    share of their total CPU time each process tree got over `seconds`, in %."""
    procs = {name: subprocess.Popen([*prefix, "stress-ng", "--cpu", "1", "-t", f"{seconds + 30}s", "-q"],
                                    cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, prefix in hogs.items()}
    try:
        time.sleep(seconds)
        used = {name: tree_cpu_ns(p.pid) for name, p in procs.items()}
    finally:
        for proc in procs.values():
            proc.terminate()    # stress-ng ends its workers on SIGTERM
        stop_all(list(procs.values()))
    total = sum(used.values()) or 1
    return {name: round(100.0 * ns / total, 2) for name, ns in used.items()}


def test_nice_and_scheduling_classes_set_cpu_shares(start_scx, tmp_path):
    """Hogs pinned to one CPU, started right after attaching: two stress-ng at nice 0
    and 19 (whose parents' start is part of the measure), then shell loops at nice 0
    and 19, and with SCHED_BATCH and SCHED_IDLE ones; each against EEVDF in the same
    boot and the weights."""
    eevdf_stress = stress_shares(TWO_HOGS, STRESS_SECONDS, tmp_path)
    eevdf2 = cpu_shares(TWO_HOGS, SHARE_SECONDS)
    eevdf4 = cpu_shares(FOUR_HOGS, SHARE_SECONDS)
    run = start_scx()
    pyland_stress = stress_shares(TWO_HOGS, STRESS_SECONDS, tmp_path)
    pyland2 = cpu_shares(TWO_HOGS, SHARE_SECONDS)
    pyland4 = cpu_shares(FOUR_HOGS, SHARE_SECONDS)
    run.assert_attached()
    record_result("cpu_shares_on_one_cpu", {"eevdf_stress": eevdf_stress, "pyland_stress": pyland_stress,
                                            "eevdf_two": eevdf2, "pyland_two": pyland2,
                                            "eevdf_four": eevdf4, "pyland_four": pyland4})
    # A stress-ng started at nice 19 spends its first seconds in its parent, before its
    # worker exists; EEVDF runs that parent in every gap the nice-0 one's own start
    # leaves (I/O), down to a fraction of a millisecond, which a decision taken in
    # user space cannot fill (docs/design.md, "Rule 5 and idle CPUs"): held to
    # "not starved" and to the nice-0 tree's share.
    assert pyland_stress["nice19"] > 0, f"stress-ng at nice 19 got no CPU: {pyland_stress}"
    assert abs(pyland_stress["nice0"] - eevdf_stress["nice0"]) <= 5, (pyland_stress, eevdf_stress)
    check_shares("nice 0 vs nice 19", pyland2, eevdf2, TWO_WEIGHTS)
    check_shares("nice 0, nice 19, batch, idle", pyland4, eevdf4, FOUR_WEIGHTS)


# A task that works BURST_MS and sleeps SLEEP_MS, over and over (the loop counts).
BURSTY = """\
import sys, time
burst, sleep, seconds = float(sys.argv[1]) / 1e3, float(sys.argv[2]) / 1e3, float(sys.argv[3])
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    t = time.monotonic() + burst
    while time.monotonic() < t:
        pass
    time.sleep(sleep)
    n += 1
print(n)
"""
BURST_MS, SLEEP_MS, BURSTY_SECONDS = 2, 8, 8


def bursty_rounds(tmp_path: Path) -> int:
    """Rounds of BURSTY at nice 19 alone on CPU 1 over BURSTY_SECONDS."""
    script = tmp_path / "bursty.py"
    script.write_text(BURSTY)
    out = subprocess.run(["nice", "-n", "19", "taskset", "-c", "1", sys.executable, str(script),
                          str(BURST_MS), str(SLEEP_MS), str(BURSTY_SECONDS)],
                         capture_output=True, text=True, timeout=BURSTY_SECONDS + 60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_a_nice_19_task_alone_on_its_cpu_runs_whenever_it_wakes(start_scx, tmp_path):
    """Issue 28 item 1: a task charged far ahead of rustland's clock (nice 19, working
    in bursts) waited for the clock up to 250 ms at every wake-up, although nothing
    else wanted its CPU: rule 5 held it in user space with the CPU idle, where EEVDF
    runs a task alone on its CPU at once. Now a CPU with nothing to do takes it
    (Policy.idle_cpus). At least half of EEVDF's rounds in the same boot."""
    eevdf = bursty_rounds(tmp_path)
    run = start_scx()
    pyland = bursty_rounds(tmp_path)
    run.assert_attached()
    record_result("nice19_bursty_task_alone_rounds", {"eevdf": eevdf, "pyland": pyland,
                                                      "burst_ms": BURST_MS, "sleep_ms": SLEEP_MS})
    assert pyland >= 0.5 * eevdf, f"{pyland} rounds under scx_pyland, {eevdf} under EEVDF"


def wakeup_latency_max_us(tmp_path: Path) -> int:
    """cyclictest's worst wake-up latency (us) over its threads, while stress-ng's
    sleepers keep the CPUs mostly idle but busy with short wake-ups."""
    sleepers = subprocess.Popen(["stress-ng", "--sleep", "8", "--sleep-max", "200",
                                 "-t", f"{LATENCY_SECONDS + 5}s"], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        out = subprocess.run(["cyclictest", "--policy=other", "-m", "-t", "2", "-i", "2000",
                              "-D", str(LATENCY_SECONDS), "-q"],
                             capture_output=True, text=True, timeout=LATENCY_SECONDS + 120)
    finally:
        sleepers.kill()
        sleepers.wait(60)
    maxima = [int(m) for m in re.findall(r"Max:\s*(\d+)", out.stdout)]
    assert out.returncode == 0 and len(maxima) == 2, out.stdout + out.stderr
    return max(maxima)


def test_a_woken_task_on_a_lightly_loaded_machine_runs_promptly(start_scx, tmp_path):
    eevdf = wakeup_latency_max_us(tmp_path)
    run = start_scx()
    pyland = wakeup_latency_max_us(tmp_path)
    run.assert_attached()
    record_result("wakeup_latency_light_load_max_us", {"eevdf": eevdf, "pyland": pyland})
    # Issue 13's target is 3x EEVDF's and never above 50 ms; not met (0.2-1.3 s against
    # EEVDF's 14-63 ms): about 1,500 sleepers queue in SHARED_DSQ behind a worker that
    # gets about 3,000 tasks a second through under emulation (docs/design.md, "Wake-up
    # latency when the worker is the bottleneck"). What is held to here: no wait near
    # the watchdog's timeout (7 s waits ended in an ejection with a policy clock that
    # only followed the dispatched vruntimes), and the number recorded for the report.
    assert pyland <= 2_000_000, f"max wake-up latency {pyland} us under scx_pyland, {eevdf} us under EEVDF"


def wakeup_latency_beside_hogs_us(tmp_path: Path) -> tuple[float, int]:
    """cyclictest's mean and worst wake-up latency (us, over its 2 threads) beside
    twice as many CPU hogs as CPUs (scripts/bench's latency workload)."""
    hogs = subprocess.Popen(["stress-ng", "--cpu", str(2 * os.cpu_count()), "--quiet"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        out = subprocess.run(["cyclictest", "--policy=other", "-t", "2", "-i", "1000", "-D", "8", "-q"],
                             capture_output=True, text=True, timeout=120)
    finally:
        hogs.kill()
        hogs.wait(60)
    means = [int(m) for m in re.findall(r"Avg:\s*(\d+)", out.stdout)]
    maxima = [int(m) for m in re.findall(r"Max:\s*(\d+)", out.stdout)]
    assert out.returncode == 0 and len(means) == len(maxima) == 2, out.stdout + out.stderr
    return sum(means) / 2, max(maxima)


def dispatch_counts() -> dict[str, int]:
    v = stats.read_snapshot().values
    return {k: v[k] for k in ("nr_user_dispatches", "nr_kernel_dispatches", "nr_direct_dispatches",
                              "nr_rt_dispatches", "nr_stalled_dispatches", "nr_custody_dispatches", "nr_sched_congested",
                              "nr_worker_preempts")}


def test_a_woken_task_beside_cpu_hogs_is_placed_by_the_policy_promptly(start_scx, tmp_path):
    """A woken task, no CPU idle: the worker gets a CPU at once (a preemption) and the
    task runs next on the CPU the worker leaves (RL_PREEMPT). Issue 15's target is a
    mean within 1.5x EEVDF's; measured 2.1-2.9 ms against 0.7-1.0 ms (7.3.4), where it
    was 5.7-6.5 ms before the change. Held to 4x here (and the worst case to 4x
    EEVDF's), with at least 90% of the workload's dispatches decided by the policy."""
    eevdf_mean, eevdf_max = wakeup_latency_beside_hogs_us(tmp_path)
    run = start_scx()
    time.sleep(1.5)     # the stats file is written once a second
    before = dispatch_counts()
    mean, worst = wakeup_latency_beside_hogs_us(tmp_path)
    time.sleep(1.2)
    after = dispatch_counts()
    run.assert_attached()
    d = {k: after[k] - before[k] for k in after}
    # Kernel threads are not the workload's: they never wait for the worker (it may
    # wait for them), so they are left out of the share and recorded apart.
    workload = (d["nr_user_dispatches"] + d["nr_direct_dispatches"] + d["nr_rt_dispatches"]
                + d["nr_stalled_dispatches"] + d["nr_custody_dispatches"] + d["nr_sched_congested"])
    share = d["nr_user_dispatches"] / workload if workload else 0.0
    record_result("wakeup_latency_beside_hogs_us", {
        "eevdf_mean": eevdf_mean, "eevdf_max": eevdf_max, "pyland_mean": mean, "pyland_max": worst,
        "user_share": round(share, 3), "dispatches": d})
    assert share >= 0.9, f"only {share:.1%} of the workload's dispatches came from the policy: {d}"
    if not os.uname().release.startswith(CANNOT_KICK):
        assert d["nr_worker_preempts"] > 0, f"no CPU hog was preempted for the worker: {d}"
        assert mean <= 4 * eevdf_mean, f"mean wake-up latency {mean:.0f} us, EEVDF {eevdf_mean:.0f} us"
        assert worst <= 4 * max(eevdf_max, 10_000), f"worst wake-up latency {worst} us, EEVDF {eevdf_max} us"


def test_a_task_in_a_short_burst_is_not_preempted_for_the_worker(start_scx, tmp_path):
    """Wake-ups with no CPU idle, among tasks that each run for moments between
    sleeps (stress-ng --switch: pairs that hand the CPU to each other through a
    pipe): the worker waits for the running task to give its CPU up rather than
    preempting it (wake_worker(), PREEMPT_BURST_NS): only CPU hogs are preempted
    for the worker. Preempting short bursts too made cyclictest's mean latency
    beside CPU hogs a fifth to a third longer (docs/design.md, "A woken task when
    no CPU is idle"). That the hogs still are preempted is the test above's."""
    run = start_scx()
    time.sleep(1.5)     # the stats file is written once a second
    before = dispatch_counts()
    load = subprocess.run(["stress-ng", "--switch", "4", "-t", "8s", "--quiet"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    time.sleep(1.2)
    after = dispatch_counts()
    run.assert_attached()
    assert load.returncode == 0, load.stdout + load.stderr
    d = {k: after[k] - before[k] for k in after}
    record_result("worker_preempts_under_short_bursts", d)
    assert d["nr_user_dispatches"] > 1000, f"the load hardly went through the worker: {d}"
    # Measured on 7.3.4: 4% of the dispatches (a pair's task that ran 2 ms without
    # sleeping, under emulation, counts as a hog) against 25% when every CPU was
    # preempted.
    assert d["nr_worker_preempts"] <= d["nr_user_dispatches"] // 8, \
        f"{d['nr_worker_preempts']} preemptions for {d['nr_user_dispatches']} dispatches: {d}"


def ext_server_exists() -> bool:
    """The kernel's deadline server for sched_ext tasks (7.0 and later)."""
    if not Path("/sys/kernel/debug/sched").exists():
        subprocess.run(["mount", "-t", "debugfs", "none", "/sys/kernel/debug"], check=False)
    return EXT_SERVER.exists()


def pinned_share_under_rt_hog(seconds: float, tmp_path: Path) -> float:
    """A normal hog pinned to CPU 1, another unpinned, and a SCHED_FIFO hog on CPU 1:
    the pinned hog's CPU time over `seconds`, in % of one CPU."""
    pinned = start_hog(*ON_CPU1)
    free = start_hog()
    try:
        before = cpu_time_ns(pinned.pid)
        rt = subprocess.run(["chrt", "-f", "40", "taskset", "-c", "1", "stress-ng", "--cpu", "1",
                             "-t", f"{seconds}s"], cwd=tmp_path, capture_output=True, timeout=seconds + 120)
        assert rt.returncode == 0, rt.stderr
        return 100.0 * (cpu_time_ns(pinned.pid) - before) / (seconds * 1e9)
    finally:
        stop_all([pinned, free])


def hog_every_cpu_with_rt(seconds: float, tmp_path: Path) -> None:
    rt = subprocess.run(["chrt", "-f", "10", "stress-ng", "--cpu", str(os.cpu_count()), "-t", f"{seconds}s"],
                        cwd=tmp_path, capture_output=True, timeout=seconds + 120)
    assert rt.returncode == 0, rt.stderr


def test_rt_hog_on_one_cpu_leaves_scx_pyland_attached(start_scx, tmp_path):
    if not ext_server_exists():
        # 6.16-6.19: no ext_server, so a pinned sched_ext task on a CPU a real-time
        # task holds never runs, with any sched_ext scheduler: the watchdog ejects
        # it, and the supervisor attaches again once the hog is gone.
        run = start_scx()
        pinned_share_under_rt_hog(12, tmp_path)
        wait_reattached_after_rt(run)
        return
    eevdf = pinned_share_under_rt_hog(10, tmp_path)
    run = start_scx()
    seq = enable_seq()
    pyland = pinned_share_under_rt_hog(RT_SECONDS, tmp_path)
    run.assert_attached()
    record_result("rt_hog_one_cpu_pinned_share_pct", {"eevdf": round(eevdf, 2), "pyland": round(pyland, 2)})
    assert enable_seq() == seq, run.diagnosis()
    # The ext_server gives sched_ext tasks about 5% of the CPU, as fair_server gives
    # EEVDF's (7.3.4, 2026-12-07: 8.8% against EEVDF's 6.3%); at least half of EEVDF's
    # share, so that a pinned task starved behind the worker or SHARED_DSQ shows.
    assert pyland >= 0.5 * eevdf, f"the pinned task got {pyland:.2f}% of CPU 1 (EEVDF: {eevdf:.2f}%)"


def test_rt_hogs_on_every_cpu_leave_scx_pyland_attached(start_scx, tmp_path):
    run = start_scx()
    seq = enable_seq()
    if not ext_server_exists():
        hog_every_cpu_with_rt(12, tmp_path)
        wait_reattached_after_rt(run)
        return
    hog_every_cpu_with_rt(RT_SECONDS, tmp_path)
    stayed = enable_seq() == seq and run.status().get("restarts", 0) == 0
    record_result("rt_hogs_every_cpu", {"seconds": RT_SECONDS, "stayed_attached": stayed,
                                        "last_exit": (run.status().get("last_exit") or {}).get("reason")})
    # Every CPU held: sched_ext tasks, the worker among them, run only under the
    # ext_servers, which must never find nothing to run (docs/design.md, real-time).
    run.assert_attached()
    assert stayed, run.diagnosis()


DL_SECONDS = 15
# SCHED_DEADLINE hogs, one per CPU: 6 ms of every 10 ms (issue 28, 1b).
DL_HOG = ["chrt", "-d", "-T", "6000000", "-P", "10000000", "-D", "10000000", "0",
          "sh", "-c", "while :; do :; done"]


def normal_share_beside_deadline_hogs(seconds: float, tmp_path: Path) -> float:
    """`stress-ng --cpu N` beside one SCHED_DEADLINE hog per CPU (60% of each CPU):
    the share of the guest's CPU time the normal hogs get over `seconds` (%)."""
    dl = [subprocess.Popen(DL_HOG) for _ in range(os.cpu_count())]
    stress = subprocess.Popen(["stress-ng", "--cpu", str(os.cpu_count()), "-t", f"{seconds + 30}s"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        for proc in dl:
            assert proc.poll() is None, "a SCHED_DEADLINE hog could not start (admission refused?)"
        before = children_cpu_ns(stress.pid)
        time.sleep(seconds)
        used = children_cpu_ns(stress.pid) - before
    finally:
        stop_all([stress, *dl])
    return 100.0 * used / (seconds * 1e9 * os.cpu_count())


def children_cpu_ns(pid: int) -> int:
    """CPU time (ns) of every process whose parent is `pid`."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += cpu_time_ns(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return total


def test_deadline_hogs_leave_scx_pyland_attached_with_eevdf_s_share(start_scx, tmp_path):
    """Issue 28, 1b: SCHED_DEADLINE hogs at 60% of every CPU beside `stress-ng --cpu
    2`. Every switch to a deadline task re-enqueues the CPU's local DSQ
    (ops.cpu_release); a pinned kernel thread sent straight back there was
    re-enqueued 257 times without running and the kernel ejected the scheduler
    ("reenqueue limit") within 7 s. Now: no ejection, and the normal hogs get at
    least 3/4 of the share EEVDF gives them in the same boot (about 40%)."""
    eevdf = normal_share_beside_deadline_hogs(DL_SECONDS, tmp_path)
    run = start_scx()
    seq = enable_seq()
    pyland = normal_share_beside_deadline_hogs(DL_SECONDS, tmp_path)
    stayed = enable_seq() == seq and run.status().get("restarts", 0) == 0
    record_result("deadline_hogs_normal_share_pct", {"eevdf": round(eevdf, 2), "pyland": round(pyland, 2),
                                                     "stayed_attached": stayed})
    run.assert_attached()
    assert stayed, run.diagnosis()
    assert pyland >= 0.75 * eevdf, f"the normal hogs got {pyland:.1f}% (EEVDF: {eevdf:.1f}%)"


def wait_reattached_after_rt(run, timeout: float = 120) -> None:
    """Without an ext_server: the kernel ejected the scheduler during the hog (a
    stall), and the supervisor attached a new worker after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.status().get("restarts", 0) >= 1 and sched_ext_state() == "enabled" \
                and run.status().get("state") == "running":
            break
        time.sleep(0.5)
    status = run.status()
    assert status.get("restarts", 0) >= 1, f"expected an ejection during the hog: {status}\n{run.diagnosis()}"
    assert sched_ext_state() == "enabled", run.diagnosis()
    record_result("rt_hog_without_ext_server", {"restarts": status.get("restarts"),
                                                 "last_exit": (status.get("last_exit") or {}).get("reason")})


def idle_ns() -> int:
    """Time the guest's CPUs spent idle since boot, from /proc/stat's idle and iowait
    (counted from idle entry and exit, not from ticks, and charged to no task)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def busy_pct(seconds: float) -> float:
    """The guest's non-idle CPU time over `seconds`, in % of one CPU."""
    idle, start = idle_ns(), time.monotonic_ns()
    time.sleep(seconds)
    elapsed = time.monotonic_ns() - start
    return 100.0 * (elapsed * os.cpu_count() - (idle_ns() - idle)) / elapsed


def test_the_worker_costs_next_to_nothing_on_an_idle_machine(start_scx):
    """Issue 13's target, 1% of one vCPU for the worker on an idle machine, from the
    kernel's accounting of the worker (what top shows) where that accounting is true.
    The guest's non-idle time against the same idle guest under EEVDF is the check
    that holds everywhere; /proc/stat is too coarse for 1% there (readings of -1.3
    to +1.2% of a CPU on idle guests), so it is held to a bound that still catches a
    worker that spins."""
    eevdf_busy = busy_pct(IDLE_SECONDS)
    run = start_scx("--no-supervisor")
    time.sleep(5)   # start-up settles
    # schedstat, unlike most of /proc/PID, never waits on the worker's mmap lock.
    before = cpu_time_ns(run.proc.pid)
    pyland_busy = busy_pct(IDLE_SECONDS)
    worker_pct = 100.0 * (cpu_time_ns(run.proc.pid) - before) / (IDLE_SECONDS * 1e9)
    run.assert_attached()
    record_result("worker_cpu_idle_pct", {"pct_of_one_cpu": round(worker_pct, 2),
                                          "guest_busy_pct": round(pyland_busy, 2),
                                          "guest_busy_pct_eevdf": round(eevdf_busy, 2)})
    assert pyland_busy - eevdf_busy <= 5.0, \
        f"an idle guest was busy {pyland_busy:.2f}% of a CPU under scx_pyland, {eevdf_busy:.2f}% under EEVDF"
    if not os.uname().release.startswith(CANNOT_KICK):
        assert worker_pct <= 1.0, f"the worker used {worker_pct:.2f}% of a CPU on an idle machine"
