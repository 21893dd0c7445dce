"""The supervisor, with fake workers (tests/fake_worker.py) that exit with given
statuses and exit info, die by signal, hang or ignore SIGTERM, and a fake
/sys/kernel/sched_ext/state. No kernel and no BPF needed."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scx_pyland.exits import ECODE_ACT_RESTART, ExitKind, SupervisorStatus, WorkerStatus
from scx_pyland.supervisor import Backoff, RestartBudget, WorkerExit, classify, reap_orphans

HERE = Path(__file__).parent
STALL = {"kind": int(ExitKind.ERROR_STALL), "exit_code": 0, "reason": "runnable task stall",
         "msg": "kworker/0:1[42] failed to run for 5.2s"}
SYSRQ = {"kind": int(ExitKind.SYSRQ), "exit_code": 0, "reason": "disabled by sysrq-S", "msg": ""}
HOTPLUG = {"kind": int(ExitKind.UNREG_KERN), "exit_code": ECODE_ACT_RESTART | 1,
           "reason": "CPU 1 going offline, restarting", "msg": ""}
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "poll_interval": 0.05,
        "frozen_grace": 0.3, "stop_timeout": 2.0, "disabled_timeout": 5.0}


class Supervised:
    """The supervisor running over a plan of fake workers. Its stderr is a file the
    way a shell's `>` opens it (`stderr="file"`: no O_APPEND), one opened to append
    (`"append"`, as systemd's StandardError=append:), a pipe (`"pipe"`) or a
    stream socket (`"socket"`, as systemd's StandardError=journal:), the last two
    copied to the same log file as they are read. With `pid_namespace` the supervisor is PID 1
    of a PID namespace of its own, as in a container. Its (fake)
    vm.compact_unevictable_allowed reads 1 at first."""

    def __init__(self, plan_dir: Path, plan: list[dict], enable_seq: bool = False, stderr: str = "file",
                 pid_namespace: bool = False, again: bool = False, **options: object) -> None:
        self.dir = plan_dir
        if not again:       # `again`: a new supervisor over what the last one left
            (plan_dir / "sched_ext").mkdir(parents=True)
            (plan_dir / "sched_ext" / "state").write_text("disabled\n")
            if enable_seq:
                (plan_dir / "sched_ext" / "enable_seq").write_text("7\n")
            (plan_dir / "compact_unevictable_allowed").write_text("1\n")
        (plan_dir / "plan.json").write_text(json.dumps(plan))
        self.stderr = open(plan_dir / "stderr.log", "a" if stderr == "append" or again else "w")
        namespace = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"] if pid_namespace else []
        self.reader = None
        target = self.stderr
        if stderr == "pipe":
            target = subprocess.PIPE
        elif stderr == "socket":
            self.reader, target = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [*namespace, sys.executable, str(HERE / "supervised.py"), str(plan_dir),
             json.dumps({**FAST, **options})],
            stderr=target)
        if self.reader:
            target.close()
        self.in_namespace = pid_namespace
        self.copier = None
        if stderr in ("pipe", "socket"):
            self.copier = threading.Thread(target=self.copy_pipe, daemon=True)
            self.copier.start()

    def copy_pipe(self) -> None:
        fd = self.reader.fileno() if self.reader else self.proc.stderr.fileno()
        while data := os.read(fd, 65536):
            self.stderr.write(data.decode(errors="replace"))
            self.stderr.flush()

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    @property
    def log(self) -> str:
        if self.copier and self.proc.poll() is not None:
            self.copier.join(10)
        self.stderr.flush()
        return (self.dir / "stderr.log").read_text()

    def supervisor_pid(self) -> int:
        """The supervisor's pid as we see it: in a PID namespace, unshare's child."""
        if not self.in_namespace:
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        self.wait_until(lambda: children.read_text().split())
        return int(children.read_text().split()[0])

    def zombies(self) -> list[int]:
        """The supervisor's children that exited and were not reaped."""
        supervisor = self.supervisor_pid()
        found = []
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat_file.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == supervisor:
                found.append(int(stat_file.parent.name))
        return found

    def stderr_flags(self) -> int:
        """The open flags of the supervisor's stderr (O_APPEND, O_NONBLOCK, ...)."""
        fdinfo = Path(f"/proc/{self.proc.pid}/fdinfo/2").read_text()
        return int(re.search(r"^flags:\s+([0-7]+)", fdinfo, re.M).group(1), 8)

    def lines(self, name: str) -> list[str]:
        path = self.dir / name
        return path.read_text().splitlines() if path.exists() else []

    def starts(self) -> int:
        return len(self.lines("starts.log"))

    def status(self) -> dict:
        """The status file; empty before the supervisor first wrote it."""
        try:
            return json.loads((self.dir / "run" / "status.json").read_text())
        except FileNotFoundError:
            return {}

    def wait_until(self, condition, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out; supervisor log:\n{self.log}"
            time.sleep(0.02)

    def wait_starts(self, n: int) -> None:
        self.wait_until(lambda: self.starts() >= n and self.status().get("state") == "running")


def process_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, Z, ...), or None if there is no such
    process. It follows the command name, which is in parentheses and may hold spaces."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat_line.rsplit(")", 1)[1].split()[0]


@pytest.fixture
def supervise(tmp_path):
    runs: list[Supervised] = []

    def start(plan: list[dict], enable_seq: bool = False, again: Path | None = None,
              **options: object) -> Supervised:
        """`again`: the directory of an earlier run, for a supervisor that follows it."""
        run = Supervised(again or tmp_path / f"plan{len(runs)}", plan, enable_seq, again=again is not None,
                         **options)
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
        run.stderr.close()


# -- classification ------------------------------------------------------------------

def test_a_requested_stop_is_not_restarted():
    assert not classify(WorkerExit(WorkerStatus.STOPPED)).restart


@pytest.mark.parametrize("info", [STALL, HOTPLUG, SYSRQ,
                                  {"kind": int(ExitKind.ERROR_BPF), "exit_code": 0, "reason": "scx_bpf_error"},
                                  {"kind": 0x404, "exit_code": 0, "reason": "a kind from a newer kernel"}])
def test_every_kernel_exit_is_restarted_by_default(info):
    assert classify(WorkerExit(WorkerStatus.KERNEL_EXIT, info)).restart


@pytest.mark.parametrize("returncode", [-signal.SIGKILL, -signal.SIGSEGV, 1, WorkerStatus.POLICY_FAILED])
def test_a_killed_or_crashed_worker_is_restarted(returncode):
    assert classify(WorkerExit(returncode)).restart


def test_a_kernel_restart_request_is_named_in_the_reason():
    verdict = classify(WorkerExit(WorkerStatus.KERNEL_EXIT, HOTPLUG))
    assert "the kernel asked for a restart: CPU 1 going offline" in verdict.reason


def test_a_stall_reason_names_the_kernel_reason_and_the_kind():
    verdict = classify(WorkerExit(WorkerStatus.KERNEL_EXIT, STALL))
    assert "runnable task stall" in verdict.reason and "ERROR_STALL 0x402" in verdict.reason


def test_sysrq_is_an_operator_reset_that_is_restarted():
    verdict = classify(WorkerExit(WorkerStatus.KERNEL_EXIT, SYSRQ))
    assert verdict.restart and "operator reset (sysrq-S)" in verdict.reason


def test_sysrq_with_sysrq_final_ends_with_its_own_status():
    verdict = classify(WorkerExit(WorkerStatus.KERNEL_EXIT, SYSRQ), sysrq_final=True)
    assert (verdict.restart, verdict.status) == (False, SupervisorStatus.SYSRQ_FINAL)


def test_a_worker_that_cannot_start_is_final():
    verdict = classify(WorkerExit(WorkerStatus.CANNOT_START, {"error": "no sched_ext"}))
    assert (verdict.restart, verdict.status) == (False, SupervisorStatus.CANNOT_START)
    assert "no sched_ext" in verdict.reason


def test_a_transport_failure_is_restarted_and_named():
    verdict = classify(WorkerExit(WorkerStatus.TRANSPORT_FAILED,
                                  {"error": "the transport to the BPF side failed: ring gone"}))
    assert verdict.restart
    assert verdict.reason == "the transport to the BPF side failed: ring gone"


def test_a_start_that_failed_for_a_reason_that_may_pass_is_restarted_and_named():
    verdict = classify(WorkerExit(WorkerStatus.START_FAILED,
                                  {"error": "cannot map the ring buffer of queued tasks: Cannot allocate memory"}))
    assert verdict.restart
    assert verdict.reason == ("the worker could not start: cannot map the ring buffer of queued tasks: "
                              "Cannot allocate memory")


def test_a_kernel_that_refused_the_ext_server_s_bandwidth_is_restarted_with_what_frees_it(monkeypatch):
    from scx_pyland import exits
    monkeypatch.setattr(exits, "kernel_release", lambda release=None: (7, 3))
    verdict = classify(WorkerExit(WorkerStatus.KERNEL_EXIT, {
        "kind": int(ExitKind.ERROR), "exit_code": 0, "reason": "runtime error",
        "msg": "scx_root_enable() failed (-16)"}))
    assert verdict.restart
    assert verdict.reason.startswith("the kernel unregistered the scheduler: runtime error (scx_root_enable() "
                                     "failed (-16)): the kernel could not reserve SCHED_DEADLINE bandwidth")
    assert verdict.reason.endswith("frees it [ERROR 0x400]")


def test_supervisor_statuses_do_not_reuse_the_workers_restartable_ones():
    assert not {int(s) for s in SupervisorStatus} & {WorkerStatus.POLICY_FAILED, WorkerStatus.TRANSPORT_FAILED,
                                                     WorkerStatus.KERNEL_EXIT, WorkerStatus.START_FAILED}


# -- back-off and budget ---------------------------------------------------------------

def test_the_restart_delay_doubles_up_to_the_maximum():
    backoff = Backoff(initial=0.25, maximum=30, stable_after=60)
    assert [backoff.next_delay(ran=1) for _ in range(10)] == [0.25, 0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_a_worker_that_ran_stably_resets_the_delay():
    backoff = Backoff(initial=0.25, maximum=30, stable_after=60)
    for _ in range(5):
        backoff.next_delay(ran=1)
    assert backoff.next_delay(ran=61) == 0.25
    assert backoff.next_delay(ran=1) == 0.5


def test_the_budget_allows_max_restarts_within_the_window():
    budget = RestartBudget(max_restarts=3, window=100)
    assert [budget.spend(t) for t in (0, 1, 2, 3)] == [True, True, True, False]


def test_restarts_older_than_the_window_no_longer_count():
    budget = RestartBudget(max_restarts=2, window=10)
    assert budget.spend(0) and budget.spend(1)
    assert not budget.spend(5)
    assert budget.spend(10.5)


# -- the supervisor with fake workers -------------------------------------------------

def test_a_stall_restarts_the_worker_and_logs_the_reason(supervise):
    run = supervise([{"exit": 75, "info": STALL}, {"exit": 0}])
    assert run.wait() == 0
    assert run.starts() == 2
    assert "restart 1: the kernel unregistered the scheduler: runnable task stall" in run.log


def test_a_killed_worker_is_restarted(supervise):
    run = supervise([{"kill": int(signal.SIGKILL)}, {"exit": 0}])
    assert run.wait() == 0
    assert run.starts() == 2
    assert "killed by SIGKILL" in run.log


def test_a_worker_that_cannot_start_is_reported_once_and_not_retried(supervise):
    run = supervise([{"exit": 69, "info": {"error": "another sched_ext scheduler is attached"}}])
    assert run.wait() == SupervisorStatus.CANNOT_START
    assert run.starts() == 1
    # The worker's own error line is all the user sees; the supervisor adds nothing.
    assert "supervisor:" not in run.log and "another sched_ext scheduler" not in run.log
    assert "another sched_ext scheduler is attached" in run.status()["last_exit"]["reason"]


def test_too_many_failures_end_with_status_71_naming_the_last_exit(supervise):
    run = supervise([{"exit": 75, "info": STALL}], max_restarts=3)
    assert run.wait() == SupervisorStatus.GAVE_UP
    assert run.starts() == 4
    errors = [line for line in run.log.splitlines() if "error" in line]
    assert len(errors) == 1, run.log
    assert "giving up" in errors[0] and "runnable task stall" in errors[0]


def test_restarts_back_off_with_growing_delays(supervise):
    run = supervise([{"kill": int(signal.SIGKILL)}], backoff_initial=0.05, backoff_max=0.2, max_restarts=4)
    assert run.wait() == SupervisorStatus.GAVE_UP
    delays = [line.split(" in ")[1].split(" s:")[0] for line in run.log.splitlines()
              if "restarting the worker in" in line]
    assert delays == ["0.05", "0.10", "0.20", "0.20"]


def test_sysrq_restarts_as_an_operator_reset(supervise):
    run = supervise([{"exit": 75, "info": SYSRQ}, {"exit": 0}])
    assert run.wait() == 0
    assert run.starts() == 2
    assert "restart 1: operator reset (sysrq-S)" in run.log


def test_sysrq_final_is_logged_and_not_reattached(supervise):
    run = supervise([{"exit": 75, "info": SYSRQ}, {"exit": 0}], sysrq_final=True)
    assert run.wait() == SupervisorStatus.SYSRQ_FINAL
    assert run.starts() == 1
    assert "operator reset (sysrq-S), final" in run.log and "not re-attaching" in run.log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_is_forwarded_and_the_supervisor_exits_0(supervise, signum):
    run = supervise([{"run": True}])
    run.wait_starts(1)
    run.proc.send_signal(signum)
    assert run.wait() == 0
    assert run.lines("signals.log") == [signum.name]
    assert run.starts() == 1
    assert run.status()["state"] == "stopped"


def test_a_worker_that_ignores_the_stop_signal_is_killed_after_the_stop_timeout(supervise):
    run = supervise([{"hang": True}], stop_timeout=0.5)
    run.wait_starts(1)
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 0
    assert "did not stop within 0.5 s; killing it" in run.log
    assert run.starts() == 1


def test_sighup_makes_the_worker_reload_its_policy_without_a_restart(supervise):
    run = supervise([{"run": True, "reload": "fifo"}], max_restarts=1, policy="rustland")
    run.wait_starts(1)
    for n in (1, 2):
        run.proc.send_signal(signal.SIGHUP)
        run.wait_until(lambda: run.status().get("policy_swaps") == n)
    status = run.status()
    assert status["policy"] == "fifo" and status["last_swap"]["ok"]
    assert run.lines("signals.log") == ["SIGHUP", "SIGHUP"]
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 0
    assert run.starts() == 1 and run.status()["restarts"] == 0
    assert "SIGHUP: the worker reloads its policy" in run.log


def test_a_sighup_before_the_worker_attached_reaches_it_once_it_has(supervise):
    run = supervise([{"run": True, "reload": "fifo", "attach_after": 1.0}], policy="rustland")
    run.wait_until(lambda: run.starts() == 1)
    run.proc.send_signal(signal.SIGHUP)      # the worker still ignores SIGHUP
    run.wait_until(lambda: run.status().get("policy_swaps") == 1)
    assert run.lines("signals.log") == ["SIGHUP"]
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 0 and run.starts() == 1


def test_a_new_worker_starts_with_the_policy_in_use_not_the_first_one(supervise):
    run = supervise([{"run": True, "reload": "examples/x.py:X"}, {"run": True}], policy="rustland")
    run.wait_starts(1)
    run.proc.send_signal(signal.SIGHUP)
    run.wait_until(lambda: run.status().get("policy") == "examples/x.py:X")
    os.kill(int(run.lines("starts.log")[0]), signal.SIGKILL)
    run.wait_starts(2)
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 0
    first, second = (json.loads(line) for line in run.lines("argv.log"))
    assert "--policy" not in first
    assert second[second.index("--policy") + 1] == "examples/x.py:X"
    assert run.status()["policy"] == "examples/x.py:X" and run.status()["policy_swaps"] == 1


def test_a_frozen_worker_is_killed_once_the_kernel_dropped_the_scheduler(supervise):
    run = supervise([{"hang": True, "drop": True, "after": 0.2}, {"exit": 0}])
    assert run.wait() == 0
    assert run.starts() == 2
    assert "the worker is still alive: killing it" in run.log
    assert "restart 1: the kernel dropped the scheduler and the worker did not exit" in run.log


def test_a_worker_dropped_before_the_supervisor_saw_it_attached_is_killed_too(supervise):
    run = supervise([{"hang": True, "flash": True}, {"exit": 0}], enable_seq=True, disabled_timeout=0.5)
    assert run.wait() == 0
    assert run.starts() == 2
    assert "sched_ext has read 'disabling'" in run.log


def test_the_worker_s_children_are_killed_before_a_restart(supervise):
    run = supervise([{"child": True, "exit": 75, "info": STALL}, {"run": True}])
    run.wait_starts(2)
    child = int(run.lines("children.log")[0])
    assert process_state(child) in (None, "Z")     # gone, or dead and not yet reaped
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 0


def test_a_new_worker_starts_only_once_the_state_reads_disabled(supervise):
    run = supervise([{"exit": 75, "info": STALL, "keep_enabled": True}, {"exit": 0}])
    run.wait_until(lambda: "restart 1" in run.log)
    time.sleep(0.5)
    assert run.starts() == 1
    (run.dir / "sched_ext" / "state").write_text("disabled\n")
    assert run.wait() == 0
    assert run.starts() == 2


def test_the_status_file_is_root_only_and_has_the_restarts_and_the_last_exit(supervise):
    run = supervise([{"exit": 75, "info": STALL}, {"exit": 75, "info": HOTPLUG}, {"run": True}])
    run.wait_starts(3)
    status_file = run.dir / "run" / "status.json"
    assert stat.S_IMODE(status_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(status_file.parent.stat().st_mode) == 0o700
    status = run.status()
    assert status["restarts"] == 2 and status["state"] == "running"
    assert status["last_exit"]["kind"] == "UNREG_KERN"
    assert status["last_exit"]["exit_code"] == ECODE_ACT_RESTART | 1
    assert status["worker_pid"] == int(run.lines("starts.log")[-1])
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 0


STATS_LINE = re.compile(r"scx_pyland: user 0(?: \(0/s\))? kernel 0 direct 0 realtime 0 stalled 0 custody 0 congested 0 cancel 0 bounce 0 fail 0 \| "
                        r"policy 0(?: \(0/s\))? pending (?P<n>\d+) queued (?P<pid>\d+) running 0/0 \| "
                        r"page faults \+0 \| policy errors \+0 rescued \+0 invalid \+0 swaps \+0")


@pytest.mark.parametrize("stderr", ["file", "append", "pipe", "socket"])
def test_every_line_of_the_supervisor_and_its_workers_is_logged_whole_and_once(supervise, stderr):
    """Issue 18: a worker's --stats lines wrote over the supervisor's lines in a
    file the shell opened without O_APPEND. Here two workers write --stats lines and
    log lines with the worker's own code, around a restart and a stop."""
    run = supervise([{"stats": 50, "kill": signal.SIGKILL}, {"stats": 50, "run": True}], stderr=stderr)
    run.wait_starts(2)
    time.sleep(0.5)      # the second worker writes a line every 10 ms meanwhile
    flags = run.stderr_flags()
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 0, run.log
    first, second = (int(pid) for pid in run.lines("starts.log"))
    log = run.log
    assert log.endswith("\n"), log

    stats: dict[int, list[int]] = {first: [], second: []}
    others = []
    for line in log.splitlines():
        if match := STATS_LINE.fullmatch(line):
            stats[int(match["pid"])].append(int(match["n"]))
        else:
            others.append(line)
    killed = "the worker was killed by SIGKILL"
    assert len(others) == 7 and re.fullmatch(
        rf"scx_pyland: supervisor: restarting the worker in [\d.]+ s: {killed}", others[1]), log
    assert others[:1] + others[2:] == [
        f"scx_pyland: fake worker {first} attached",
        f"scx_pyland: supervisor: restart 1: {killed}",
        f"scx_pyland: fake worker {second} attached",
        "scx_pyland: supervisor: SIGTERM: stopping the worker",
        f"scx_pyland: fake worker {second} exit",
        "scx_pyland: supervisor: stopped (SIGTERM)"], log
    assert stats[first] == list(range(50)), log
    assert len(stats[second]) > 50 and stats[second] == list(range(len(stats[second]))), log
    if stderr in ("pipe", "socket"):
        assert not flags & os.O_NONBLOCK     # the worker's non-blocking writes stay its own
    else:
        assert flags & os.O_APPEND


def test_a_supervisor_killed_by_sigkill_leaves_the_system_s_value_for_the_next_one(supervise):
    """Issue 28 3.6: systemd's stop timeout SIGKILLs the supervisor and its workers;
    vm.compact_unevictable_allowed stays 0, and the next supervisor took 0 for the
    system's value. It finds the value the killed one kept in the run directory."""
    run = supervise([{"compaction": True, "run": True}])
    sysctl = run.dir / "compact_unevictable_allowed"
    original = run.dir / "run" / "compact_unevictable_allowed.original"
    run.wait_starts(1)
    run.wait_until(lambda: sysctl.read_text().strip() == "0")      # the worker set it
    assert original.read_text() == "1\n"
    worker = int(run.lines("starts.log")[0])
    run.proc.send_signal(signal.SIGKILL)            # as systemd's KillMode=mixed does,
    os.killpg(worker, signal.SIGKILL)               # to everything of the unit
    assert run.wait() == -signal.SIGKILL
    run.wait_until(lambda: process_state(worker) is None)
    assert sysctl.read_text().strip() == "0" and original.read_text() == "1\n"

    again = supervise([{"compaction": True, "run": True}], again=run.dir)
    again.wait_starts(2)
    again.wait_until(lambda: len(again.lines("starts.log")) == 2 and sysctl.read_text().strip() == "0")
    again.proc.send_signal(signal.SIGTERM)
    assert again.wait() == 0, again.log
    assert sysctl.read_text().strip() == "1"
    assert not original.exists()                    # back: nothing left to keep
    assert (f"{sysctl} is 0, but a scx_pyland that ended without restoring it kept 1 as the system's value "
            f"({original}): 1 comes back at the end") in again.log


def test_a_second_supervisor_while_the_first_lives_restores_nothing(supervise):
    """Only the one that keeps the system's value (it holds the run directory's
    file locked) restores it: a second one, started by mistake beside it, leaves
    the value as the first one's worker set it."""
    first = supervise([{"compaction": True, "run": True}])
    first.wait_starts(1)
    sysctl = first.dir / "compact_unevictable_allowed"
    first.wait_until(lambda: sysctl.read_text().strip() == "0")
    second = supervise([{"exit": 69, "keep_enabled": True,
                         "info": {"error": "another sched_ext scheduler is attached (pyland)"}}], again=first.dir)
    assert second.wait() == SupervisorStatus.CANNOT_START, second.log
    assert sysctl.read_text().strip() == "0"        # the first one's worker is attached
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait() == 0, first.log
    assert sysctl.read_text().strip() == "1"


def test_the_supervisor_restores_compact_unevictable_allowed_after_a_killed_worker(supervise):
    """Issue 14 item 10: a worker killed by SIGKILL restores nothing, and the next
    one found 0; the supervisor, which outlives them, restores the first value."""
    run = supervise([{"compaction": True, "kill": signal.SIGKILL}, {"compaction": True, "run": True}])
    sysctl = run.dir / "compact_unevictable_allowed"
    run.wait_starts(2)
    assert sysctl.read_text().strip() == "0"
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 0, run.log
    assert sysctl.read_text().strip() == "1"


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace of its own needs root")


@needs_root
def test_as_pid_1_the_supervisor_reaps_orphans_while_the_worker_runs(supervise):
    """Issue 14 item 11: in a container the supervisor is PID 1, and what
    `docker exec ... &` leaves behind becomes its child when it exits."""
    run = supervise([{"orphan": 0.2, "run": True}], pid_namespace=True)
    run.wait_starts(1)
    run.wait_until(lambda: run.lines("orphans.log"))
    run.wait_until(lambda: not run.zombies(), timeout=5)
    os.kill(run.supervisor_pid(), signal.SIGTERM)
    assert run.wait() == 0, run.log


def exited_child(status: int) -> int:
    """A child that exits with `status` at once; returns once it is a zombie."""
    pid = os.fork()
    if pid == 0:
        os._exit(status)
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    return pid


@pytest.mark.parametrize("worker_first", [True, False])
def test_reaping_orphans_never_takes_the_worker_s_exit_status(worker_first):
    """The worker and an orphan both exited: the orphan is reaped (now, or once the
    worker is), the worker's status is left to the supervisor's own wait."""
    if worker_first:
        worker, orphan = exited_child(7), exited_child(0)
    else:
        orphan, worker = exited_child(0), exited_child(7)
    reap_orphans(worker)
    assert os.waitpid(worker, 0) == (worker, 7 << 8)
    reap_orphans()
    assert not Path(f"/proc/{orphan}").exists()


def test_the_supervisor_never_imports_the_bpf_extension():
    code = ("import sys; from scx_pyland import cli, supervisor; cli.build_parser(); "
            "sys.exit('scx_pyland._bpf' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


no_sched_ext = pytest.mark.skipif(Path("/sys/kernel/sched_ext").exists(), reason="this kernel has sched_ext")


@no_sched_ext
def test_the_command_line_runs_the_worker_under_the_supervisor_by_default(tmp_path):
    """On this host (no sched_ext) the worker cannot start: one error line, status 69,
    and nothing more from the supervisor."""
    out = subprocess.run([sys.executable, "-m", "scx_pyland", "--status-file", str(tmp_path / "s.json")],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, SCX_PYLAND_RUN_DIR=str(tmp_path / "run")))
    assert out.returncode == 69
    assert [line for line in out.stderr.splitlines() if line] == \
        [line for line in out.stderr.splitlines() if line.startswith("scx_pyland: error: ")]
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert json.loads((tmp_path / "s.json").read_text())["exit_status"] == 69


@no_sched_ext
def test_no_supervisor_runs_the_worker_alone():
    out = subprocess.run([sys.executable, "-m", "scx_pyland", "--no-supervisor"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 69
    assert "supervisor" not in out.stderr
