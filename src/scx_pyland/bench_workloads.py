"""Workload benchmark, run inside one guest boot by scripts/bench: the same
workloads under EEVDF, the kernel's scx_simple and scx_userland and scx_pyland's
policies, in interleaved rounds (A B C D E, A B C D E, ...), and the hot path's
cost per user-space dispatch for each Python policy, for its C++ ceiling and for
scx_userland, the kernel's own user-space scheduler (in C).

Every finished run is appended to the results file at once (written whole to a
temporary file, then renamed), so a boot that dies loses nothing and the next
`scripts/bench` resumes where it stopped. A scheduler that detaches, or whose
process ends, during a run makes that run a failure, recorded with the reason;
so does a workload that fails or overruns its time limit.

This process runs as SCHED_FIFO (scripts/bench starts it with chrt), which
sched_ext never schedules, so it can always watch the clock and stop what hangs;
every command it starts is put back to SCHED_OTHER first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scx_pyland import stats
from scx_pyland.files import SCHED_EXT, enable_seq, sched_ext_ops, sched_ext_state, write_json_atomic
OUTPUT_KEPT = 800   # the end of each workload's output, kept with its result
FORMAT = 1   # of the results file


@dataclass(frozen=True)
class Metric:
    name: str     # key in the results
    label: str    # for tables and charts
    unit: str
    higher_is_better: bool


@dataclass(frozen=True)
class Workload:
    name: str                                  # key in the results
    short: str                                 # for the chart
    command: Callable[[bool], list[str]]       # smoke -> argv
    parse: Callable[[str], dict[str, float]]   # output -> {metric name: value}
    metrics: tuple[Metric, ...]
    background: Callable[[bool], list[str]] | None = None   # overload to run beside it


def last_float(pattern: str, text: str) -> float:
    found = re.findall(pattern, text)
    if not found:
        raise ValueError(f"no match for {pattern!r} in the output")
    return float(found[-1])


def parse_hackbench(out: str) -> dict[str, float]:
    return {"seconds": last_float(r"Time:\s*([\d.]+)", out)}


def parse_messaging(out: str) -> dict[str, float]:
    return {"seconds": last_float(r"Total time:\s*([\d.]+) \[sec\]", out)}


def parse_pipe(out: str) -> dict[str, float]:
    return {"usecs_per_op": last_float(r"([\d.]+) usecs/op", out)}


def parse_stress_ng(out: str) -> dict[str, float]:
    """--metrics-brief: 'metrc: [pid] STRESSOR bogo-ops real usr sys ops/s(real) ops/s(cpu)'."""
    return {"bogo_ops_per_s": last_float(r"metrc: \[\d+\]\s+\S+\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)", out)}


def parse_cyclictest(out: str) -> dict[str, float]:
    """cyclictest -q: one summary line per measuring thread."""
    threads = re.findall(r"T:\s*\d+ .*?Avg:\s*(\d+)\s+Max:\s*(\d+)", out)
    if not threads:
        raise ValueError("no cyclictest summary lines in the output")
    return {"avg_us": statistics.fmean(int(a) for a, _ in threads),
            "max_us": float(max(int(m) for _, m in threads))}


SECONDS = Metric("seconds", "time", "s", False)
BOGO = Metric("bogo_ops_per_s", "bogo-ops/s", "ops/s", True)


def stress_ng(stressor: str) -> Callable[[bool], list[str]]:
    def argv(smoke: bool) -> list[str]:
        return ["stress-ng", f"--{stressor}", "4", "-t", f"{2 if smoke else 5}s", "--metrics-brief"]
    return argv


# Names give the full run's sizes; --smoke runs smaller sizes of the same commands.
WORKLOADS: tuple[Workload, ...] = (
    Workload("hackbench -g 2 -l 100", "hackbench 2×40", lambda smoke: ["hackbench", "-g", "2", "-l", "20" if smoke else "100"],
             parse_hackbench, (SECONDS,)),
    Workload("hackbench -g 6 -l 100", "hackbench 6×40", lambda smoke: ["hackbench", "-g", "6", "-l", "20" if smoke else "100"],
             parse_hackbench, (SECONDS,)),
    Workload("perf bench sched messaging -g 2 -l 40", "perf messaging",
             lambda smoke: ["perf", "bench", "sched", "messaging", "-g", "2", "-l", "10" if smoke else "40"],
             parse_messaging, (SECONDS,)),
    Workload("perf bench sched pipe -l 20000", "perf pipe",
             lambda smoke: ["perf", "bench", "sched", "pipe", "-l", "5000" if smoke else "20000"],
             parse_pipe, (Metric("usecs_per_op", "round trip", "µs", False),)),
    Workload("stress-ng --cpu 4 -t 5s", "stress-ng cpu", stress_ng("cpu"), parse_stress_ng, (BOGO,)),
    Workload("stress-ng --sock 4 -t 5s", "stress-ng sock", stress_ng("sock"), parse_stress_ng, (BOGO,)),
    Workload("cyclictest --policy=other -t 2 -i 1000 -D 8 beside stress-ng --cpu 4", "cyclictest, overloaded",
             lambda smoke: ["cyclictest", "--policy=other", "-t", "2", "-i", "1000", "-q",
                            "-D", "3" if smoke else "8"],
             parse_cyclictest,
             (Metric("avg_us", "wake-up latency, mean", "µs", False),
              Metric("max_us", "wake-up latency, max", "µs", False)),
             background=lambda smoke: ["stress-ng", "--cpu", "4", "--quiet"]),
)
WORKLOAD_NAMES = tuple(w.name for w in WORKLOADS)


@dataclass(frozen=True)
class Scheduler:
    name: str
    command: list[str] | None    # None: the kernel's default (EEVDF)
    ops_prefix: str = ""         # what /sys/kernel/sched_ext/root/ops starts with


# The peer: the kernel's tools/sched_ext/scx_userland. Its BPF side hands every task
# that may run on any CPU to a user-space C process (over a BPF queue map), which
# orders them by vruntime in a sorted list and sends them back in batches of 8;
# tasks with a narrower affinity are dispatched in BPF. Its ops are named "userland".
PEER = "scx_userland"


def pyland(policy: str) -> Scheduler:
    return Scheduler(f"pyland {policy}", ["scx_pyland", "--no-supervisor", "--policy", policy], "pyland")


def peer(scx_userland: str) -> Scheduler:
    return Scheduler(PEER, [scx_userland], "userland")


def schedulers(scx_simple: str, scx_userland: str) -> tuple[Scheduler, ...]:
    return (
        Scheduler("EEVDF", None),
        Scheduler("scx_simple", [scx_simple], "simple"),
        peer(scx_userland),
        pyland("fifo"),
        pyland("rustland"),
    )


# The hot path: a user-space scheduler under overload: scx_pyland's worker for the
# C++ ceiling and each Python policy, and scx_userland's process. 4 pairs of
# processes that switch to each other as fast as they can (stress-ng --switch, a
# pipe message each way): more runnable tasks than CPUs and a wake-up every few
# microseconds, so the user-space cost per task is what limits them. (CPU hogs would
# not do: their slices, not the scheduler, set the pace.)
HOT_PATH_MODES = ("ceiling", "fifo", "rustland", PEER)


def hot_path_load(smoke: bool) -> list[str]:
    return ["stress-ng", "--switch", "4", "-t", f"{4 if smoke else 10}s", "--quiet"]


# ---------------------------------------------------------------------------
# The results file

class Results:
    """The results file: meta plus a list of runs, rewritten whole after each run."""

    def __init__(self, path: Path, meta: dict) -> None:
        self.path = path
        self.data = {"format": FORMAT, "meta": meta, "runs": [], "hot_path": []}
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("format") == FORMAT and same_setup(old.get("meta", {}), meta):
                self.data = old
                self.data["meta"]["resumed"] = self.data["meta"].get("resumed", 0) + 1
            else:
                raise SystemExit(f"{path} holds results of another setup "
                                 f"({describe(old.get('meta', {}))}); use --fresh to start over")

    def has_run(self, round_: int, scheduler: str, workload: str) -> bool:
        return any(r["round"] == round_ and r["scheduler"] == scheduler and r["workload"] == workload
                   for r in self.data["runs"])

    def has_hot_path(self, round_: int, mode: str) -> bool:
        return any(r["round"] == round_ and r["mode"] == mode for r in self.data["hot_path"])

    def add(self, kind: str, record: dict) -> None:
        self.data[kind].append(record)
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data, indent=1, durable=True)


SETUP_KEYS = ("kernel", "cpus", "mode", "rounds")


def same_setup(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in SETUP_KEYS)


def describe(meta: dict) -> str:
    return ", ".join(f"{k} {meta.get(k)}" for k in SETUP_KEYS)


# ---------------------------------------------------------------------------
# Running things

def as_normal_task() -> None:
    """In a child before exec: back to SCHED_OTHER (this driver is SCHED_FIFO), and
    a process group of its own so a stop reaches all its processes."""
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    os.setpgid(0, 0)


# stress-ng needs a writable working directory.
WORK_DIR = tempfile.gettempdir()


def start(argv: list[str], log: Path | None = None) -> subprocess.Popen:
    """Start `argv` as a normal task in a process group of its own, its stdout and
    stderr to `log` (overwritten) or nowhere. The log's descriptor is the child's
    alone: ours is closed once it has started. Raises OSError (no such program, a
    log that cannot be written)."""
    if log is None:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                preexec_fn=as_normal_task, cwd=WORK_DIR)
    with open(log, "w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=as_normal_task,
                                cwd=WORK_DIR)


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 30) -> int:
    """Stop a process group started by start(): sig, then SIGKILL. Its exit status."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.wait()


class AttachedScheduler:
    """One scheduler, started and watched: a run is valid only if the same
    attachment (same process, same enable_seq) lasted through it."""

    def __init__(self, sched: Scheduler, log: Path, attach_timeout: float) -> None:
        self.sched = sched
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.seq = 0
        if sched.command is None:
            if sched_ext_state() != "disabled":
                raise RuntimeError(f"a sched_ext scheduler is attached ({sched_ext_ops()}) where EEVDF should run")
            return
        started = time.monotonic()
        seq_before = enable_seq()
        try:
            self.proc = start(sched.command, log)
        except OSError as err:
            raise RuntimeError(f"cannot start {sched.name} ({sched.command[0]}): {err.strerror}") from None
        # enable_seq may count this attachment a moment after the state reads "enabled":
        # read before that, it made a later check report a detach that never happened.
        while not (sched_ext_state() == "enabled" and sched_ext_ops().startswith(sched.ops_prefix)
                   and enable_seq() != seq_before):
            if self.proc.poll() is not None or time.monotonic() - started > attach_timeout:
                self.close()
                raise RuntimeError(f"{sched.name} did not attach: {tail(log)}")
            time.sleep(0.05)
        self.seq = enable_seq()

    def lost(self) -> str | None:
        """None if it is still the same attachment, else what happened."""
        if self.proc is None:
            return None if sched_ext_state() == "disabled" else f"{sched_ext_ops()} attached during the run"
        if self.proc.poll() is not None:
            return f"the scheduler's process exited ({self.proc.returncode})"
        if sched_ext_state() != "enabled" or enable_seq() != self.seq:
            return "the scheduler was detached by the kernel"
        return None

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            deadline = time.monotonic() + 30
            while sched_ext_state() != "disabled" and time.monotonic() < deadline:
                time.sleep(0.05)


def tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_workload(w: Workload, smoke: bool, limit: float) -> tuple[dict[str, float], float, str]:
    """Run it once; (metrics, wall seconds, the end of its output). Raises
    RuntimeError on failure."""
    hog = start(w.background(smoke)) if w.background else None
    try:
        if hog:
            time.sleep(1)   # let the overload take the CPUs first
        started = time.monotonic()
        proc = subprocess.Popen(w.command(smoke), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                preexec_fn=as_normal_task, text=True, cwd=WORK_DIR)
        try:
            out, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"did not finish within {limit:.0f} s") from None
        wall = time.monotonic() - started
    finally:
        if hog:
            stop(hog, signal.SIGTERM)
    if proc.returncode != 0:
        raise RuntimeError(f"exit status {proc.returncode}: {out.strip()[-300:]}")
    try:
        return w.parse(out), wall, out[-OUTPUT_KEPT:]
    except ValueError as err:
        raise RuntimeError(f"{err}: {out.strip()[-300:]}") from None


def process_cpu_ns(pid: int) -> tuple[int, int]:
    """CPU time a process has used, in ns: (all its threads, its main thread), from
    /proc/PID/task/*/schedstat (/proc/PID/schedstat is the main thread's alone).
    All threads count: scx_userland's second thread prints the statistics we read,
    as scx_pyland's worker publishes its own from its one thread, and the sum is the
    whole cost of the scheduler, which cannot flatter either. stat's ticks (all
    threads, both numbers) if schedstat is missing."""
    total, main = 0, None
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                ns = int((task / "schedstat").read_text().split()[0])
            except FileNotFoundError:
                continue   # a thread that just exited
            total += ns
            if task.name == str(pid):
                main = ns
        if main is not None:
            return total, main
    except (OSError, ValueError, IndexError):
        pass
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return ticks, ticks


@dataclass(frozen=True)
class Counts:
    """A user-space scheduler's dispatch counters at one moment."""
    pid: int         # the process that does the scheduling
    user: int        # tasks dispatched as user space decided
    kernel: int      # tasks the BPF side dispatched itself, by rule
    congested: int   # tasks the BPF side dispatched because the way to user space was full


def pyland_counts(attached: AttachedScheduler) -> Counts:
    """From the running worker's stats file (rewritten once a second): the BPF side's
    counts of user-space, kernel-side (kernel threads, direct, real-time, stalled)
    and congestion dispatches."""
    snap = stats.read_snapshot()
    v = snap.values
    kernel = (v["nr_kernel_dispatches"] + v["nr_direct_dispatches"] + v["nr_rt_dispatches"]
              + v["nr_stalled_dispatches"] + v["nr_custody_dispatches"])
    return Counts(snap.pid, v["nr_user_dispatches"], kernel, v["nr_sched_congested"])


# scx_userland's statistics, printed to stdout once a second by a thread of its own
# (run_stats_printer() in scx_userland.c), one block at a time with fflush:
#   | BPF ENQUEUES | kern, user, failed, total   (the BPF side's counters)
#   | VRUNTIME / USER | enq, disp, failed        (its user-space loop's counters)
USERLAND_STATS = re.compile(
    r"\| BPF ENQUEUES.*?kern:\s+(\d+).*?user:\s+(\d+).*?failed:\s+(\d+).*?total:\s+(\d+)"
    r".*?VRUNTIME / USER.*?enq:\s+(\d+).*?disp:\s+(\d+).*?failed:\s+(\d+)", re.DOTALL)
USERLAND_FIELDS = ("kern", "user", "failed", "total", "enq", "disp", "disp_failed")


def parse_userland_stats(text: str) -> dict[str, int]:
    """The last complete statistics block in scx_userland's output. disp is its
    user-space dispatches: tasks its loop took off its vruntime list and pushed to
    the BPF side's queue of dispatches (nr_vruntime_dispatches); kern is what the
    BPF side dispatched itself (tasks that may not run on every CPU); failed is what
    it dispatched because the queue to user space was full."""
    found = USERLAND_STATS.findall(text)
    if not found:
        raise ValueError("no statistics block in scx_userland's output")
    return dict(zip(USERLAND_FIELDS, map(int, found[-1])))


def userland_counts(attached: AttachedScheduler) -> Counts:
    """From scx_userland's output (its log): its process is the one started, and its
    main thread (the pid) is the scheduling loop."""
    with open(attached.log, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))   # a block is ~500 bytes
        v = parse_userland_stats(f.read().decode(errors="replace"))
    return Counts(attached.proc.pid, v["disp"], v["kern"], v["failed"])


def measure_hot_path(mode: str, smoke: bool, log: Path, attach_timeout: float, scx_userland: str = "") -> dict:
    """A user-space scheduler under overload (scx_pyland with `mode`, or scx_userland
    at the path given): user-space dispatches/s and its CPU time per dispatch, from
    its own counters and the kernel's accounting of its process."""
    if mode == PEER:
        if not scx_userland:
            raise RuntimeError("no scx_userland binary given")
        sched, counts = peer(scx_userland), userland_counts
    else:
        sched, counts = pyland(mode), pyland_counts
    attached = AttachedScheduler(sched, log, attach_timeout)
    try:
        time.sleep(1.5)    # both write their counters once a second
        c0 = counts(attached)
        (cpu0, main0), t0 = process_cpu_ns(c0.pid), time.monotonic_ns()
        load = subprocess.run(hot_path_load(smoke), preexec_fn=as_normal_task, cwd=WORK_DIR,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        time.sleep(1.2)    # the counters of the last second
        c1 = counts(attached)
        (cpu1, main1), t1 = process_cpu_ns(c1.pid), time.monotonic_ns()
        problem = attached.lost()
    finally:
        attached.close()
    if problem:
        raise RuntimeError(problem)
    if load.returncode != 0:
        raise RuntimeError(f"the load failed with status {load.returncode}: {load.stdout.strip()[-300:]}")
    user = c1.user - c0.user
    total = user + (c1.kernel - c0.kernel) + (c1.congested - c0.congested)
    if user <= 0:
        raise RuntimeError("no user-space dispatches during the load")
    return {"seconds": (t1 - t0) / 1e9, "user_dispatches": user,
            "dispatches_per_s": user / ((t1 - t0) / 1e9),
            "worker_cpu_ns_per_dispatch": (cpu1 - cpu0) / user,
            "worker_cpu_share": (cpu1 - cpu0) / (t1 - t0),
            "main_thread_cpu_share": (main1 - main0) / (cpu1 - cpu0) if cpu1 > cpu0 else 1.0,
            "user_share": user / total if total else 0.0,
            "congested": c1.congested - c0.congested}


# ---------------------------------------------------------------------------

def progress(message: str) -> None:
    """To stdout: the guest's console, which the host shows as it goes."""
    print(f"[{time.strftime('%H:%M:%S')}] bench: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="the results file (JSON), resumed if it exists")
    parser.add_argument("--scx-simple", required=True, help="path of the scx_simple binary")
    parser.add_argument("--scx-userland", required=True, help="path of the scx_userland binary")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="short workloads, for a check in a few minutes")
    parser.add_argument("--limit", type=float, default=180, help="seconds before a workload counts as hung")
    parser.add_argument("--command", default="", help="the command that started the benchmark (recorded)")
    parser.add_argument("--commit", default="", help="the commit benchmarked (recorded)")
    args = parser.parse_args(argv)

    if not SCHED_EXT.exists():
        raise SystemExit("this kernel has no sched_ext")
    meta = {"kernel": platform.release(), "cpus": os.cpu_count(), "mode": "smoke" if args.smoke else "full",
            "rounds": args.rounds, "date": time.strftime("%Y-%m-%d"), "command": args.command,
            "python": platform.python_version(), "commit": args.commit}
    results = Results(args.results, meta)
    logs = args.results.parent
    scheds = schedulers(args.scx_simple, args.scx_userland)
    attach_timeout = 120.0

    for round_ in range(1, args.rounds + 1):
        for sched in scheds:
            todo = [w for w in WORKLOADS if not results.has_run(round_, sched.name, w.name)]
            if not todo:
                continue
            progress(f"round {round_}/{args.rounds}: {sched.name}")
            try:
                attached = AttachedScheduler(sched, logs / "scheduler.log", attach_timeout)
            except RuntimeError as err:
                for w in todo:
                    results.add("runs", {"round": round_, "scheduler": sched.name, "workload": w.name,
                                         "ok": False, "error": str(err), "metrics": {}})
                progress(f"  failed to attach: {err}")
                continue
            try:
                for w in todo:
                    record = {"round": round_, "scheduler": sched.name, "workload": w.name}
                    try:
                        metrics, wall, output = run_workload(w, args.smoke, args.limit)
                        problem = attached.lost()
                        if problem:
                            raise RuntimeError(problem)
                        record.update(ok=True, error=None, metrics=metrics, wall_s=round(wall, 3),
                                      output=output)
                        progress(f"  {w.name}: " + ", ".join(f"{k} {v:g}" for k, v in metrics.items()))
                    except RuntimeError as err:
                        record.update(ok=False, error=str(err), metrics={})
                        progress(f"  {w.name}: FAILED: {err}")
                    results.add("runs", record)
                    if not record["ok"] and attached.lost():
                        # Gone: start it again for the remaining workloads.
                        attached.close()
                        attached = AttachedScheduler(sched, logs / "scheduler.log", attach_timeout)
            except RuntimeError as err:
                progress(f"  cannot restart {sched.name}: {err}")
            finally:
                attached.close()
        for mode in HOT_PATH_MODES:
            if results.has_hot_path(round_, mode):
                continue
            progress(f"round {round_}/{args.rounds}: hot path, {mode}")
            record = {"round": round_, "mode": mode}
            try:
                record.update(ok=True, error=None, **measure_hot_path(mode, args.smoke, logs / "scheduler.log",
                                                                       attach_timeout, args.scx_userland))
                progress(f"  {record['dispatches_per_s']:,.0f} dispatches/s, "
                         f"{record['worker_cpu_ns_per_dispatch'] / 1000:.1f} µs of scheduler CPU per dispatch")
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                record.update(ok=False, error=str(err))
                progress(f"  FAILED: {err}")
            results.add("hot_path", record)
    failed = sum(not r["ok"] for r in results.data["runs"] + results.data["hot_path"])
    progress(f"done: {len(results.data['runs'])} workload runs, {len(results.data['hot_path'])} hot-path runs, "
             f"{failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
