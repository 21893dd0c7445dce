"""A stand-in for the worker in the supervisor's tests: it does what the plan says.

usage: python fake_worker.py PLAN_DIR --exit-info FILE

PLAN_DIR/plan.json is a list of behaviours, one per start (the last repeats). Each
start appends its pid to PLAN_DIR/starts.log. PLAN_DIR/sched_ext/state plays the
kernel's file: "enabled" while attached, "disabled" once the (fake) kernel is done.
A behaviour is a dict:
    after: seconds to live first (default 0)
    exit: status to exit with, info: the exit info to write (kind, exit_code, ...)
    kill: a signal to die by
    run: run until SIGINT/SIGTERM, then exit 0 (the signal goes to signals.log)
    hang: live on, ignoring SIGTERM; drop: the kernel drops the scheduler first
    flash: attach and be dropped at once: enable_seq moves on, the state never
           reads "enabled" (as when the kernel is quicker than the supervisor's poll)
    child: fork a child that sleeps (its pid goes to children.log)
    keep_enabled: leave the state "enabled" at exit (the kernel is slow to finish)
    compaction: set the (fake) vm.compact_unevictable_allowed, PLAN_DIR/compact_unevictable_allowed,
           to 0 as a supervised worker does (it restores nothing)
    orphan: SECS: leave a child of its own session (out of the worker's process
           group, as `docker exec ... &` leaves one) that exits SECS later (its pid
           goes to orphans.log just before)
    stats: N: log an "attached" line and N --stats lines with the worker's own code
           (a "run" worker goes on with a line every 10 ms and logs its exit); the
           nr_queued gauge is the pid, nr_pending the line's number
    reload: SPEC: on SIGHUP (logged to signals.log), switch to SPEC as a worker
           does: a new PLAN_DIR/run/policy.json with one more swap
    attach_after: SECS: attach (state "enabled") only after SECS, ignoring SIGHUP
           until then, as a worker does
Every start appends its arguments (after PLAN_DIR) to argv.log, as JSON.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

plan_dir = Path(sys.argv[1])
exit_info = sys.argv[sys.argv.index("--exit-info") + 1]
state = plan_dir / "sched_ext" / "state"


def append(name: str, line: str) -> None:
    with open(plan_dir / name, "a") as f:
        f.write(line + "\n")


plan = json.loads((plan_dir / "plan.json").read_text())
starts = plan_dir / "starts.log"
index = len(starts.read_text().splitlines()) if starts.exists() else 0
step = plan[min(index, len(plan) - 1)]
lines = None    # a StatsLines once the worker "attached"


class StatsLines:
    """--stats lines and log lines through the worker's own functions."""

    def __init__(self) -> None:
        from scx_pyland import stats, worker
        self.worker = worker
        self.fields = stats.FIELD_NAMES
        self.lines = worker.Worker(None, worker.WorkerOptions(stats_interval=1e-9))
        self.lines.stats_fd = worker.open_stats_stderr(stats_asked=True)
        self.n = 0
        worker.log(f"fake worker {os.getpid()} attached")

    def line(self) -> None:
        values = dict.fromkeys(self.fields, 0) | {"nr_queued": os.getpid(), "nr_pending": self.n}
        self.lines.print_stats_line(tuple(values[name] for name in self.fields))
        self.n += 1


def stop(signum, frame):
    append("signals.log", signal.Signals(signum).name)
    if lines:
        lines.worker.log(f"fake worker {os.getpid()} exit")
    state.write_text("disabled\n")
    sys.exit(0)


swaps = 0


def reload(signum, frame):
    global swaps
    append("signals.log", signal.Signals(signum).name)
    swaps += 1
    (plan_dir / "run").mkdir(exist_ok=True)
    with open(plan_dir / "run" / "policy.json.tmp", "w") as f:
        json.dump({"worker_pid": os.getpid(), "policy": step["reload"], "swaps": swaps,
                   "last_swap": {"to": step["reload"], "cause": "reload", "ok": True}}, f)
    os.replace(plan_dir / "run" / "policy.json.tmp", plan_dir / "run" / "policy.json")


if step.get("run"):    # ready for the signal before the start is seen
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
if "reload" in step and "attach_after" not in step:
    signal.signal(signal.SIGHUP, reload)
append("argv.log", json.dumps(sys.argv[2:]))
append("starts.log", str(os.getpid()))
if "attach_after" in step:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    time.sleep(step["attach_after"])
    if "reload" in step:
        signal.signal(signal.SIGHUP, reload)
if step.get("flash"):
    seq = plan_dir / "sched_ext" / "enable_seq"
    seq.write_text(f"{int(seq.read_text()) + 1}\n")
    state.write_text("disabling\n")
else:
    state.write_text("enabled\n")

if step.get("child"):
    pid = os.fork()
    if pid == 0:
        time.sleep(3600)
        os._exit(0)
    append("children.log", str(pid))

if step.get("compaction"):
    from scx_pyland.worker import compaction_off_locked_pages
    compaction_off_locked_pages(plan_dir / "compact_unevictable_allowed", restore=False).__enter__()

if "orphan" in step:
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(step["orphan"])
            append("orphans.log", str(os.getpid()))
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)

lines = StatsLines() if step.get("stats") else None
for _ in range(step.get("stats", 0)):
    lines.line()

if step.get("run"):
    while True:
        if lines:
            lines.line()
        time.sleep(0.01 if lines else 1)

time.sleep(step.get("after", 0))
if step.get("hang"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if step.get("drop"):
        state.write_text("disabled\n")
    while True:
        time.sleep(1)
if not step.get("keep_enabled"):
    state.write_text("disabled\n")
if "kill" in step:
    os.kill(os.getpid(), step["kill"])
if "info" in step:
    with open(exit_info, "w") as f:
        json.dump({"status": step.get("exit", 0), **step["info"]}, f)
sys.exit(step.get("exit", 0))
