"""Races on the BPF side (issue 14 items 1-3) and the order of start-up (item 8), each
in a form that fails without its fix (item 1: without the enq_cnt check; where the
check sits is argued below, not tested).

Items 1 and 3 are driven step by step through the extension (scx_pyland._bpf) by a
child process that acts as the worker of a --partial scheduler, so that the race's
outcome is chosen rather than hoped for; item 1 also gets a loop under the default
policy, where the race happens by itself. Item 2 is measured in the same guest with
the worker pinned and free (EEVDF recorded beside), item 8 with a real fault
injected into the ring set-up (an LD_PRELOAD shim that makes mmap of the rings fail).

No test here tells item 1's check *after* the insert from the same check *before*
it (the original code), and none claims to. They differ only when the task is
enqueued again between the check and the insert: a window of a few instructions in
dispatch_task() that a test cannot hold open without a hook in the BPF program. The
step-by-step test decides before the race, so it passes with either; the loop did
not hit that window in one run of 38824 affinity changes (7.3.4, 2026-11-30). Why
after is right is an argument from the kernel's code: the insert records the task's
queue sequence number (qseq) when it is made (scx_dsq_insert_commit()), and the
kernel drops it if the task was enqueued again after that (finish_dispatch()); a
re-enqueue before the insert is not caught there, so the check must come after it
to catch that one. Both tests fail without the check."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import record_result, sched_ext_state, wait_for_state

ENABLE_SEQ = Path("/sys/kernel/sched_ext/enable_seq")
# Whether this kernel lets the BPF side kick CPUs (scx_bpf_kick_cpu links): Debian's
# 7.1.13 and 7.2.12 cannot (bpf/compat.bpf.h), and the kicks of items 2 and 3 are
# then no-ops, replaced by the fall-backs bpf/pyland.bpf.c describes.
NO_KICK_KERNELS = ("7.1.13+deb13", "7.2.12+deb13")


def can_kick_cpus() -> bool:
    return not os.uname().release.startswith(NO_KICK_KERNELS)


def cpu_time_ns(pid: int) -> int:
    """CPU time a task has used, from /proc/PID/schedstat (ns)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def run_worker_script(script: str, timeout: float = 120) -> dict[str, str]:
    """Run `script` in a child (a crash then fails one test, not pytest) and return
    its `key: value` lines."""
    assert wait_for_state("disabled", 60)
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                           capture_output=True, text=True, timeout=timeout)
    assert child.returncode == 0, f"status {child.returncode}\n{child.stdout}{child.stderr}"
    assert wait_for_state("disabled", 30)
    return dict(line.split(": ", 1) for line in child.stdout.splitlines() if ": " in line)


# The child that plays the worker of a --partial scheduler (only SCHED_EXT tasks are
# ours, so the rest of the guest is untouched). It holds one busy task's record,
# changes the task's affinity (the kernel dequeues and enqueues it again: a newer
# record), then sends the decision for the old record, aimed at a CPU it claimed
# with select_cpu, and watches what happens before it sends the current one.
STALE_DECISION = """
import os, subprocess, time
from scx_pyland import _bpf, topology
from scx_pyland.worker import cache_domains

SCHED_EXT = 7
os.sched_setaffinity(0, {0})                    # CPU 1 stays idle but for the task
task = subprocess.Popen(["sh", "-c", "while :; do :; done"])
# Asleep and allowed only on CPU 1: select_cpu for it answers CPU 1 or -1.
probe = subprocess.Popen(["taskset", "-c", "1", "sleep", "600"])
time.sleep(0.5)

def records_of(sched, pid, until):
    got = []
    while time.monotonic() < until:
        got += [t for t in sched.dequeue(64) if t.pid == pid]
        if got:
            return got
        sched.notify_complete(len(got))
    return got

def cpu_time(pid):
    return int(open(f"/proc/{pid}/schedstat").read().split()[0])

def hold(sched, seconds, held):
    # Go on being the worker (yield with `held` tasks pending), so ops.dispatch
    # runs and drains what was sent, without deciding anything new.
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        sched.notify_complete(held)

try:
    # The CPUs idle selection may pick from come with the domains, as the worker's.
    with _bpf.Scheduler(partial=True, domains=cache_domains(topology.read_topology())) as sched:
        os.sched_setscheduler(0, SCHED_EXT, os.sched_param(0))
        os.sched_setscheduler(task.pid, SCHED_EXT, os.sched_param(0))
        old = records_of(sched, task.pid, time.monotonic() + 5)
        assert old, "the task was never queued"
        old = old[-1]
        # A new enqueue of a task we hold: its affinity changes.
        os.sched_setaffinity(task.pid, {1})
        new = records_of(sched, task.pid, time.monotonic() + 5)
        assert new and new[-1].enq_cnt > old.enq_cnt, (old, new)
        # Claim CPU 1 for the decision (it may be busy for a moment: a kernel thread).
        until = time.monotonic() + 1
        while (claimed := sched.select_cpu(probe.pid, 1)) != 1 and time.monotonic() < until:
            sched.notify_complete(1)
        before = sched.counters()
        ran_before = cpu_time(task.pid)
        sched.dispatch([_bpf.DispatchedTask(pid=task.pid, cpu=1, enq_cnt=old.enq_cnt)])
        hold(sched, 0.1, 1)
        after = sched.counters()
        ran_after = cpu_time(task.pid)
        # The cancel path gave the claimed CPU back: it is seen idle again.
        seen_idle = None
        start = time.monotonic()
        while time.monotonic() - start < 1.0:
            if sched.select_cpu(probe.pid, 1) == 1:
                seen_idle = time.monotonic() - start
                break
            sched.notify_complete(1)
        # The current decision runs it.
        sched.dispatch([_bpf.DispatchedTask(pid=task.pid, cpu=_bpf.RL_CPU_ANY, enq_cnt=new[-1].enq_cnt)])
        hold(sched, 0.2, 0)
        final = sched.counters()
        ran_final = cpu_time(task.pid)
        print(f"old_enq_cnt: {old.enq_cnt}")
        print(f"new_enq_cnt: {new[-1].enq_cnt}")
        print(f"claimed: {claimed}")
        print(f"cancelled: {after.nr_cancel_dispatches - before.nr_cancel_dispatches}")
        print(f"user_stale: {after.nr_user_dispatches - before.nr_user_dispatches}")
        print(f"ran_on_stale_ns: {ran_after - ran_before}")
        print(f"seen_idle_after_s: {seen_idle}")
        print(f"user_current: {final.nr_user_dispatches - after.nr_user_dispatches}")
        print(f"ran_on_current_ns: {ran_final - ran_after}")
        print(f"exited: {sched.exited()}")
finally:
    task.kill()
    probe.kill()
"""


def test_a_decision_for_an_older_enqueue_is_cancelled_and_its_claimed_cpu_freed():
    """Items 1 and 3, the cancel path, step by step: a decision made for an enqueue of
    the task older than its current one (its affinity changed while the worker held
    it) must not run it (the BPF side cancels the insert), and the CPU select_cpu
    claimed for that decision must be seen idle again at once. (The cancel path's
    own kick of that CPU comes after the one the insert made, or the bounce's: the
    CPU is freed without it too, so that kick alone cannot be shown to matter.)"""
    out = run_worker_script(STALE_DECISION)
    record_result("stale_decision", out)
    assert out["exited"] == "False", out
    assert out["claimed"] == "1", f"CPU 1 was not idle to claim: {out}"
    assert out["cancelled"] == "1" and out["user_stale"] == "0", f"the stale decision was not cancelled: {out}"
    assert int(out["ran_on_stale_ns"]) == 0, f"the task ran on a stale decision: {out}"
    assert out["user_current"] == "1" and int(out["ran_on_current_ns"]) > 0, \
        f"the current decision did not run the task: {out}"
    if can_kick_cpus():
        assert out["seen_idle_after_s"] != "None" and float(out["seen_idle_after_s"]) < 0.05, \
            f"the CPU claimed for the cancelled decision was not freed: {out}"


# RL_CPU_NEAR: a decision that leaves the idle CPU to the BPF side. The child holds a
# busy task's record (the task may run on both CPUs and last ran on CPU 1, where
# nothing else of ours runs; the worker is pinned to CPU 0) and sends the decision
# with cpu=RL_CPU_NEAR. Custody is off (debug_disable_custody): this script is no
# worker loop, and custody serving the task first would cancel the decision (the
# task then runs without it, so only the counts could tell).
NEAR_DECISION = """
import os, subprocess, time
from scx_pyland import _bpf, topology
from scx_pyland.worker import cache_domains

SCHED_EXT = 7
os.sched_setaffinity(0, {0})
task = subprocess.Popen(["sh", "-c", "while :; do :; done"])
os.sched_setaffinity(task.pid, {0, 1})          # it inherited CPU 0 only
time.sleep(0.5)

def cpu_time(pid):
    return int(open(f"/proc/{pid}/schedstat").read().split()[0])

def last_cpu(pid):
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[36])

try:
    with _bpf.Scheduler(partial=True, domains=cache_domains(topology.read_topology())) as sched:
        sched.debug_disable_custody()
        os.sched_setscheduler(0, SCHED_EXT, os.sched_param(0))
        os.sched_setscheduler(task.pid, SCHED_EXT, os.sched_param(0))
        until = time.monotonic() + 5
        held = []
        while not held and time.monotonic() < until:
            held = [t for t in sched.dequeue(64) if t.pid == task.pid]
            sched.notify_complete(len(held))
        assert held, "the task was never queued"
        before = sched.counters()
        ran_before = cpu_time(task.pid)
        sched.dispatch([_bpf.DispatchedTask(pid=task.pid, cpu=_bpf.RL_CPU_NEAR, enq_cnt=held[-1].enq_cnt)])
        until = time.monotonic() + 0.3
        while time.monotonic() < until:
            sched.notify_complete(0)
        after = sched.counters()
        print(f"prev_cpu: {held[-1].cpu}")
        print(f"user: {after.nr_user_dispatches - before.nr_user_dispatches}")
        print(f"bounced: {after.nr_bounce_dispatches - before.nr_bounce_dispatches}")
        print(f"cancelled: {after.nr_cancel_dispatches - before.nr_cancel_dispatches}")
        print(f"ran_ns: {cpu_time(task.pid) - ran_before}")
        print(f"ran_on: {last_cpu(task.pid)}")
        print(f"exited: {sched.exited()}")
finally:
    task.kill()
"""


def test_a_decision_for_rl_cpu_near_is_carried_out_on_a_cpu_the_bpf_side_picks():
    """RL_CPU_NEAR (what rustland sends): the BPF side picks the CPU when it carries
    the decision out, so the decision counts as the worker's, is not bounced as an
    invalid CPU, and runs the task."""
    out = run_worker_script(NEAR_DECISION)
    record_result("near_decision", out)
    assert out["exited"] == "False", out
    assert out["user"] == "1" and out["bounced"] == "0" and out["cancelled"] == "0", out
    assert int(out["ran_ns"]) > 0, f"the task did not run: {out}"


# The failed path: decisions for a task that is gone, each aimed at CPU 1 claimed
# just before. Each round measures how long CPU 1 stays unseen as idle.
FAILED_DECISION = """
import os, statistics, subprocess, time
from scx_pyland import _bpf, topology
from scx_pyland.worker import cache_domains

SCHED_EXT = 7
os.sched_setaffinity(0, {0})
probe = subprocess.Popen(["taskset", "-c", "1", "sleep", "600"])
gone = subprocess.Popen(["true"])
gone.wait()
time.sleep(0.5)
try:
    # The CPUs idle selection may pick from come with the domains, as the worker's.
    with _bpf.Scheduler(partial=True, domains=cache_domains(topology.read_topology())) as sched:
        os.sched_setscheduler(0, SCHED_EXT, os.sched_param(0))
        before = sched.counters()
        start = time.monotonic()
        while sched.select_cpu(probe.pid, 1) != 1:          # claims CPU 1
            assert time.monotonic() - start < 5, "CPU 1 never idle"
            sched.notify_complete(1)
        waits = []
        for _ in range(20):
            # CPU 1 is claimed: a decision aimed at it, for a task that is gone.
            sched.dispatch([_bpf.DispatchedTask(pid=gone.pid, cpu=1)])
            start = time.monotonic()
            seen = None
            while time.monotonic() - start < 1.0:
                # The worker's yield runs ops.dispatch on CPU 0, which drains the
                # decision (holding a task, it keeps its CPU).
                sched.notify_complete(1)
                if sched.select_cpu(probe.pid, 1) == 1:     # seen idle, claimed again
                    seen = time.monotonic() - start
                    break
            waits.append(seen)
            if seen is None:
                break
        after = sched.counters()
        print(f"failed: {after.nr_failed_dispatches - before.nr_failed_dispatches}")
        print(f"waits_ms: {' '.join('never' if w is None else f'{w * 1000:.2f}' for w in waits)}")
        print(f"median_ms: {statistics.median(1000 if w is None else w * 1000 for w in waits):.2f}")
        print(f"exited: {sched.exited()}")
finally:
    probe.kill()
"""


def test_a_cpu_claimed_for_a_decision_whose_task_is_gone_is_seen_idle_again():
    """Item 3, the failed path: select_cpu claims idle CPU 1 (clears its idle bit) for
    a decision whose task then turns out to be gone; CPU 1 must be kicked, so it goes
    through idle again and the next select_cpu sees it, rather than staying
    invisible until something else happens to wake it."""
    out = run_worker_script(FAILED_DECISION)
    record_result("failed_decision_claimed_cpu", out)
    assert out["exited"] == "False", out
    waits = out["waits_ms"].split()
    assert int(out["failed"]) == len(waits), out
    # CPU 1 goes through idle by itself now and then (every 8 ms or so in a quiet
    # 7.3.4 guest, 2026-11-30: a median of 7.8 ms without the kick); with the kick,
    # within a millisecond.
    if can_kick_cpus():
        assert float(out["median_ms"]) < 3, \
            f"CPU 1 stayed claimed after a failed decision (ms per round): {waits}"


def churn_affinities(pids: list[int], seconds: float, masks: list[set[int]]) -> int:
    """Change the affinity of every task in `pids` to a random one of `masks`, as fast
    as possible, for `seconds`; returns how many changes were made."""
    rng = random.Random(14)
    changes = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for pid in pids:
            os.sched_setaffinity(pid, rng.choice(masks))
            changes += 1
    return changes


def test_tasks_whose_affinity_changes_all_the_time_are_never_stranded(start_scx):
    """Item 1, as the race happens: busy tasks (more than CPUs, so they wait in the
    worker's queue) whose affinity changes thousands of times a second under the
    default policy. Each change dequeues and enqueues a waiting task again, so the
    worker keeps deciding for enqueues that are already stale. A stale decision that
    landed could put a task on a CPU it may no longer use: in that CPU's DSQ, which
    only that CPU drains and which it cannot take the task from (a runnable task
    stall, then the watchdog's ejection), or in its local DSQ (the kernel's 'not
    allowed' error, an ejection). So: the scheduler stays attached, every task runs
    again once the churn stops, the cancel path was taken, and every decision the
    policy sent is accounted for (carried out, cancelled or failed)."""
    run = start_scx()
    nr_cpus = os.cpu_count()
    masks = [{cpu} for cpu in range(nr_cpus)] + [set(range(nr_cpus))]
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(2 * nr_cpus)]
    try:
        time.sleep(1)
        changes = churn_affinities([h.pid for h in hogs], 12, masks)
        for hog in hogs:
            os.sched_setaffinity(hog.pid, set(range(nr_cpus)))
        before = {h.pid: cpu_time_ns(h.pid) for h in hogs}
        time.sleep(2)
        progress = {h.pid: cpu_time_ns(h.pid) - before[h.pid] for h in hogs}
        run.assert_attached()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(60)
    assert run.stop() == 0, run.diagnosis()
    report = run.report()
    cancelled, user, failed = int(report["cancelled"]), int(report["user"]), int(report["failed"])
    record_result("affinity_churn", {"changes": changes, "cancelled": cancelled, "user": user,
                                     "bounced": int(report["bounced"]), "failed": failed,
                                     "policy_dispatched": int(report["policy_dispatched"])})
    assert all(ns > 0 for ns in progress.values()), f"tasks that did not run after the churn: {progress}"
    assert cancelled > 0, f"no stale decision was cancelled in {changes} affinity changes: {report}"
    assert int(report["policy_dispatched"]) == user + cancelled + failed, report


def cpu1_wakeup_latencies(seconds: float) -> dict[int, int]:
    """cyclictest's wake-up latencies (a histogram: us -> count, 100000 for longer)
    of a thread (and its main thread) allowed only on CPU 1, waking every 10 ms. A
    task allowed on one CPU gets no ops.select_cpu: under scx_pyland every one of
    its wake-ups goes through the worker."""
    out = subprocess.run(["taskset", "-c", "1", "cyclictest", "--policy=other", "-m", "-t", "1", "-a", "1",
                          "-i", "10000", "-D", str(seconds), "-q", "-h", "100000"],
                         capture_output=True, text=True, timeout=120 + seconds)
    assert out.returncode == 0, out.stdout + out.stderr
    counts = {int(us): int(n) for us, n in re.findall(r"^(\d+)\s+(\d+)$", out.stdout, re.M) if int(n)}
    counts[100_000] = int(re.search(r"# Histogram Overflows: (\d+)", out.stdout).group(1))
    return counts


def latency_summary(histograms: list[dict[int, int]]) -> dict[str, int]:
    """Median, 90th percentile and worst (us) of histograms taken together."""
    merged: dict[int, int] = {}
    for histogram in histograms:
        for us, n in histogram.items():
            merged[us] = merged.get(us, 0) + n
    total = sum(merged.values())
    assert total > 0

    def percentile(q: float) -> int:
        seen = 0
        for us in sorted(merged):
            seen += merged[us]
            if seen >= q * total:
                return us
        return 100_000

    return {"median": percentile(0.5), "p90": percentile(0.9),
            "max": max(us for us, n in merged.items() if n), "wakeups": total}


def test_a_worker_pinned_to_cpu_0_is_woken_for_tasks_waking_on_cpu_1(start_scx):
    """Item 2: `taskset -c 0 scx_pyland` (a container's --cpuset-cpus). A task that may
    run only on CPU 1 wakes there and is queued to the worker, which may run only on
    CPU 0, idle: the BPF side must kick an idle CPU the *worker* may use. Kicking one
    the task may use (CPU 1) does not run the worker, which then waits until
    something else schedules on CPU 0: in this guest the RCU kthreads do, about 170
    times a second (so a few ms, not the 1 s heartbeat; 2026-11-30).

    A few milliseconds are within what the host's load does to a guest under
    emulation, so the pinned worker is compared with itself, allowed on every CPU
    (where even the old kick ran it), in alternating windows of the same run. The
    worst case is held well below the heartbeat, and EEVDF's is recorded."""
    eevdf = latency_summary([cpu1_wakeup_latencies(2)])
    os.sched_setaffinity(0, {0})
    try:
        run = start_scx()           # the supervisor, and so the worker, inherit CPU 0 only
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count())))
    # The test's monitor, which wakes 4 times a second, would wake the worker's CPU
    # too: it may use every CPU.
    os.sched_setaffinity(run.monitor.pid, set(range(os.cpu_count())))
    worker = run.worker_pid()
    windows: dict[str, list[dict[int, int]]] = {"pinned": [], "free": []}
    for _ in range(2):
        for name, cpus in (("pinned", {0}), ("free", set(range(os.cpu_count())))):
            os.sched_setaffinity(worker, cpus)
            windows[name].append(cpu1_wakeup_latencies(2))
    run.assert_attached()
    pinned, free = latency_summary(windows["pinned"]), latency_summary(windows["free"])
    record_result("pinned_worker_wakeup_latency_us", {"eevdf": eevdf, "pinned": pinned, "free": free,
                                                      "can_kick": can_kick_cpus()})
    message = f"wake-ups on CPU 1 (us) with the worker on CPU 0: {pinned}; on any CPU: {free}; EEVDF: {eevdf}"
    assert pinned["max"] < 250_000, message
    # Where CPUs cannot be kicked (Debian's 7.1.13, 7.2.12) the fix has nothing to
    # kick with: the pinned worker waits for CPU 0 to schedule anyway.
    if can_kick_cpus():
        # 0.8 times free's median with the fix, 2.6 times without (7.3.4, 2026-11-30).
        assert pinned["median"] <= 1.5 * free["median"] + 500, message


SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Fails every mmap of a BPF map of type FAIL_MAP_TYPE (27 ring buffer, 31 user ring
 * buffer), as the kernel would when out of memory; every other mmap goes through. */
static int fails(int fd)
{
	char path[64], buf[1024];
	const char *want = getenv("FAIL_MAP_TYPE");
	ssize_t n;
	int f;

	if (fd < 0 || !want)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return 0;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *type = strstr(buf, "map_type:\t");
	return type && atoi(type + strlen("map_type:\t")) == atoi(want);
}

static void *fault(void)
{
	errno = ENOMEM;
	return MAP_FAILED;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static void *(*real)(void *, size_t, int, int, int, off_t);

	if (fails(fd))
		return fault();
	if (!real)
		real = dlsym(RTLD_NEXT, "mmap64");
	return real(addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static void *(*real)(void *, size_t, int, int, int, off_t);

	if (fails(fd))
		return fault();
	if (!real)
		real = dlsym(RTLD_NEXT, "mmap");
	return real(addr, len, prot, flags, fd, off);
}
"""


def test_a_ring_that_cannot_be_set_up_leaves_nothing_attached_and_is_retried(tmp_path):
    """Item 8: the rings are created before the struct_ops link, which is owned (RAII).
    With the user ring's mmap failing for real (an LD_PRELOAD shim), scx_pyland
    says why in one line, and the scheduler was never attached, not even for a
    moment (enable_seq unchanged). Issue 28 3.4: an ENOMEM may pass, so it is not
    final (it was 69): the worker exits 73 and the supervisor starts another, here
    once (--max-restarts 1), then gives up (71) naming it."""
    shim = tmp_path / "fail_ring_mmap.so"
    (tmp_path / "shim.c").write_text(SHIM)
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(tmp_path / "shim.c"), "-ldl"],
                   check=True, capture_output=True, text=True)
    assert wait_for_state("disabled", 60)
    seq = int(ENABLE_SEQ.read_text())
    env = {**os.environ, "LD_PRELOAD": str(shim), "FAIL_MAP_TYPE": "31"}
    failed = "cannot map the user ring buffer of dispatched tasks: Cannot allocate memory"
    out = subprocess.run(["scx_pyland", "--policy", "fifo", "--no-supervisor"],
                         env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert out.returncode == 73, f"status {out.returncode}\n{out.stderr}"
    assert errors == [f"scx_pyland: error: cannot start now: {failed}"], out.stderr
    out = subprocess.run(["scx_pyland", "--policy", "fifo", "--status-file", str(tmp_path / "status.json"),
                          "--max-restarts", "1", "--restart-delay", "0.1"],
                         env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert out.returncode == 71, f"status {out.returncode}\n{out.stderr}"
    assert errors == [f"scx_pyland: error: cannot start now: {failed}"] * 2 + [
        f"scx_pyland: error: giving up: the worker failed 2 times within 300 s; last exit: the worker could "
        f"not start: {failed}"], out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert sched_ext_state() == "disabled"
    assert int(ENABLE_SEQ.read_text()) == seq, f"the scheduler was attached ({out.stderr})"
