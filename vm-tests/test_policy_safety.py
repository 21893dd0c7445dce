"""Issue 16: a policy can never take the machine down. Through the real command line,
under load: the policy is swapped while attached (scx_pyland reload, --watch), a
broken one is refused, a policy that raises is replaced by fifo, and a task a policy
forgets is rescued. Every check reads enable_seq: the scheduler never detached.

Short on purpose (the CI runs the VM suite on two kernels): 78 s (7.3.4) and 86 s (7.2.12)
of pytest time in a guest, 30 s of it the load the issue asks for a forgetful, raising policy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import record_result, sched_ext_state
from scx_pyland import files, reload, stats

EXAMPLE = Path(os.environ.get("SCX_PYLAND_SRC", "/src/scx_pyland")) / "examples" / "lowest_pid_first.py"

WATCHED = """\
from scx_pyland.policies.fifo import FifoPolicy

class Watched(FifoPolicy):
    name = "watched-{version}"
"""

# Forgets every record of one pid (read from a file when it is built, before it
# schedules), sends decisions for a task it was never given and for one twice (two
# cycles), and raises after RAISE_AFTER seconds.
FORGETFUL = """\
import time
from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.policy import RL_CPU_ANY, DispatchedTask

RAISE_AFTER = {raise_after}

class Forgetful(FifoPolicy):
    name = "forgetful"

    def __init__(self, config):
        super().__init__(config)
        with open({pid_file!r}) as f:
            self.victim = int(f.read())
        self.started = time.monotonic()
        self.forgotten = []
        self.strays = 2

    def enqueue(self, tasks):
        for task in tasks:
            (self.forgotten if task.pid == self.victim else self.waiting).append(task)

    def dispatch(self):
        if time.monotonic() - self.started > RAISE_AFTER:
            raise RuntimeError("deliberate policy bug")
        out = super().dispatch()
        if out and self.strays:
            self.strays -= 1
            out.append(DispatchedTask(999999, RL_CPU_ANY, 0, 0, 0, 1))   # never given
            out.append(out[0])                                           # twice
        return out
"""


def user_dispatches() -> int:
    return stats.read_snapshot().values["nr_user_dispatches"]


def wait_until(condition, timeout: float, what: str, run) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{run.diagnosis()}"
        time.sleep(0.2)


def reload_policy(run, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["scx_pyland", "reload", "--status-file", str(run.status_file), *args],
                          capture_output=True, text=True, timeout=180)


def assert_still_scheduling(run, seq: int) -> None:
    """Attached all along (enable_seq unchanged) and the policy's decisions still run:
    beside CPU hogs of its own (on an idle machine every wake-up finds an idle CPU and
    is dispatched by ops.select_cpu, never reaching the policy)."""
    assert files.enable_seq() == seq and sched_ext_state() == "enabled", run.diagnosis()
    before = user_dispatches()
    hogs = subprocess.Popen(["stress-ng", "--cpu", str(os.cpu_count()), "--timeout", "60s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/tmp")
    try:
        wait_until(lambda: user_dispatches() > before + 20, 30, "user dispatches", run)
    finally:
        hogs.terminate()
        hogs.wait(60)
    run.assert_attached()


def test_swap_fifo_rustland_and_a_file_policy_under_load(start_scx, tmp_path):
    run = start_scx("--policy", "fifo")
    seq = files.enable_seq()
    load = subprocess.Popen(["stress-ng", "--cpu", str(2 * os.cpu_count()), "--timeout", "60s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        # Each swap costs a command's start in the guest (seconds under emulation).
        swaps = ["rustland", f"{EXAMPLE}:LowestPidFirst"]
        for n, spec in enumerate(swaps, 1):
            out = reload_policy(run, "--policy", spec)
            assert out.returncode == 0 and out.stdout.startswith("scx_pyland: reloaded:"), \
                out.stdout + out.stderr + run.diagnosis()
            # The supervisor copies the worker's policy state within its 0.5 s poll.
            wait_until(lambda: run.status().get("policy_swaps") == n, 10, f"swap {n} in the status", run)
            assert run.status()["policy"] == spec, run.status()
            assert_still_scheduling(run, seq)
    finally:
        load.terminate()
        load.wait(60)
    assert run.status()["restarts"] == 0
    assert run.stop() == 0, run.diagnosis()
    report = run.report()
    assert report["policy"] == "lowest-pid-first" and int(report["user"]) > 0, report
    assert f"policy swaps {len(swaps)}" in run.output


def test_watch_reloads_an_edited_file_and_refuses_a_broken_one(start_scx, tmp_path):
    policy = tmp_path / "watched.py"
    policy.write_text(WATCHED.format(version="v1"))
    run = start_scx("--policy", f"{policy}:Watched", "--watch")
    seq = files.enable_seq()
    load = subprocess.Popen(["stress-ng", "--cpu", str(os.cpu_count()), "--timeout", "60s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        def replace(text: str) -> None:      # as an editor saves: a new file renamed over it
            (tmp_path / "watched.py.new").write_text(text)
            os.replace(tmp_path / "watched.py.new", policy)

        replace(WATCHED.format(version="v2"))
        wait_until(lambda: reload.read_state().get("name") == "watched-v2", 15, "the edited policy", run)
        assert reload.read_state()["last_swap"]["cause"] == "file changed"
        assert_still_scheduling(run, seq)

        # A broken edit is refused, once, and the policy in use goes on.
        replace("class Watched(FifoPolicy:\n")
        wait_until(lambda: (reload.read_state().get("last_swap") or {}).get("ok") is False, 15,
                   "the broken edit's refusal", run)
        assert reload.read_state()["name"] == "watched-v2"
        assert_still_scheduling(run, seq)
        # So is an explicit reload of it: one line, exit 1.
        out = reload_policy(run)
        assert out.returncode == 1, out.stdout + out.stderr
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("scx_pyland: error: reload refused: ") \
            and "SyntaxError" in lines[0] and "the watched-v2 policy keeps running" in lines[0], out.stderr
        assert_still_scheduling(run, seq)
    finally:
        load.terminate()
        load.wait(60)
    assert run.stop() == 0, run.diagnosis()
    refusals = [line for line in run.output.splitlines() if "reload refused" in line]
    assert len(refusals) == 2, run.output   # the watched edit and the explicit reload
    assert run.status()["restarts"] == 0


def test_a_policy_that_forgets_a_task_and_then_raises_stays_attached(start_scx, tmp_path):
    """30 s of load: the policy never dispatches one busy task (rescued every few
    seconds, where the watchdog would otherwise end the scheduler after 5 s), sends
    four decisions for tasks it does not hold, and raises after 12 s (fifo takes
    over, the scheduler stays attached)."""
    victim = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    try:
        (tmp_path / "victim.pid").write_text(str(victim.pid))
        policy = tmp_path / "forgetful.py"
        policy.write_text(FORGETFUL.format(raise_after=12.0, pid_file=str(tmp_path / "victim.pid")))
        run = start_scx("--policy", f"{policy}:Forgetful")
        seq = files.enable_seq()
        load = subprocess.run(["stress-ng", "--cpu", str(os.cpu_count()), "--timeout", "30s"],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert load.returncode == 0, load.stderr
        run.assert_attached()
        assert files.enable_seq() == seq
        values = stats.read_snapshot().values
        status = run.status()
        assert status["restarts"] == 0, status
        assert status["policy"] == "fifo" and status["last_swap"]["cause"] == "policy error", status
    finally:
        victim.kill()
        victim.wait()
    assert run.stop() == 0, run.diagnosis()
    assert values["nr_policy_errors"] == 1, values
    assert values["nr_rescued"] >= 2, values
    assert values["nr_invalid_dispatches"] == 4, values
    out = run.output
    assert out.count("Traceback (most recent call last)") == 1, out
    assert "RuntimeError: deliberate policy bug" in out
    assert "policy errors 1 (fifo took over from" in out and "invalid decisions 4" in out, out
    record_result("policy_safety_forgetful", {k: values[k] for k in (
        "nr_policy_errors", "nr_rescued", "nr_invalid_dispatches", "nr_user_dispatches")})


# Forks once, in its first dispatch while attached; reaps the child later without
# waiting for it (waiting would be waiting on a task the worker must schedule).
FORKING = """\
import os
from scx_pyland.policies.fifo import FifoPolicy

class Forking(FifoPolicy):
    name = "forking"
    child = 0

    def dispatch(self):
        if not self.child:
            self.child = os.fork()
            if self.child == 0:
                while True:         # never runs: the worker's fork guard ends the child
                    pass
        elif self.child > 0 and os.waitpid(self.child, os.WNOHANG)[0]:
            self.child = -1
        return super().dispatch()
"""

THREADED = """\
import threading, time
from scx_pyland.policies.fifo import FifoPolicy

class Threaded(FifoPolicy):
    name = "threaded"

    def __init__(self, config):
        super().__init__(config)
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
"""


def test_a_fork_while_attached_ends_the_child_at_once_and_the_scheduler_stays(start_scx, tmp_path):
    """docs/design.md, the traps ("Forks"): the child of a fork in the worker would
    keep the BPF link, and the scheduler, attached; it exits at once, in one line."""
    policy = tmp_path / "forking.py"
    policy.write_text(FORKING)
    run = start_scx("--policy", f"{policy}:Forking")
    seq = files.enable_seq()
    wait_until(lambda: "the worker forked while attached" in run.output, 30, "the fork's line", run)
    assert_still_scheduling(run, seq)
    assert run.stop() == 0, run.diagnosis()
    assert run.output.count("scx_pyland: error: the worker forked while attached: the child was ended at once") \
        == 1, run.output
    assert sched_ext_state() == "disabled"      # no child kept the scheduler attached
    assert run.status()["restarts"] == 0


def test_a_reload_to_a_policy_that_starts_a_thread_restarts_the_worker_with_the_old_policy(start_scx, tmp_path):
    """docs/design.md, the traps ("Threads"): refused in one line, and the worker,
    which cannot stop the thread, ends (70); the supervisor starts a new one with the
    policy in use."""
    policy = tmp_path / "threaded.py"
    policy.write_text(THREADED)
    run = start_scx("--policy", "fifo")
    out = reload_policy(run, "--policy", f"{policy}:Threaded")
    assert out.returncode == 1, out.stdout + out.stderr + run.diagnosis()
    assert out.stderr.startswith("scx_pyland: error: reload refused: ") and "started 1 thread" in out.stderr \
        and out.stderr.rstrip().endswith("the worker restarts with the fifo policy"), out.stderr
    wait_until(lambda: run.status().get("restarts") == 1 and run.status().get("state") == "running", 120,
               "the worker's restart", run)
    wait_until(lambda: sched_ext_state() == "enabled", 60, "the new worker to attach", run)
    assert run.status()["policy"] == "fifo", run.status()
    # The monitor may have captured the refused worker's detach (it polls, and can miss
    # a quick restart): expected here, so it is dropped before the check below, once a
    # snapshot it began while detached is written (it polls every 0.25 s).
    time.sleep(2)
    if run.capture.exists():
        capture = json.loads(run.capture.read_text())
        assert capture["sched_ext_state"] != "enabled", capture     # disabling, or disabled
        run.capture.unlink()
    assert_still_scheduling(run, files.enable_seq())
    assert run.stop() == 0, run.diagnosis()
    assert "must stay one thread (docs/design.md, the traps); the scheduler is detached" in run.output, run.output
