"""The supervisor: starts the worker, waits on it, and restarts it when the kernel
threw the scheduler out. It never touches BPF (it never imports scx_pyland._bpf), so
it keeps running whatever happens to the worker.

    start the worker in a session of its own
      -> wait for: its exit | a signal (SIGINT/SIGTERM and SIGHUP forwarded)
                 | the kernel dropping the scheduler while the worker hangs
      -> kill what is left of its process group
      -> classify the exit: stop, give up, or back off and start a new worker

The worker reports how it ended in a small JSON file (``--exit-info``, written after
it has detached); a worker killed by a signal writes none, and its signal is the
reason. Before a new worker attaches, the old one's whole process group is gone (a
forked child would keep the BPF link, and the scheduler, attached) and
/sys/kernel/sched_ext/state reads ``disabled``.

Where it is PID 1 (a container), it reaps every child that exits under it, as an
init does, without ever taking the worker's exit status from its own wait
(reap_orphans).

The supervisor keeps its restart count and the last exit in a small root-only JSON
file (``--status-file``, default /run/scx_pyland/supervisor.json), rewritten on
every change.

SIGHUP reloads the policy: the supervisor forwards it to the worker, which loads
the policy again without detaching (scx_pyland.reload). The worker's policy state
file (the policy in use, its swaps, the last swap's outcome) is copied into the
status file as it changes, and a new worker starts with the policy in use.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scx_pyland import compaction, files, logs, reload
from scx_pyland.exits import (ECODE_ACT_RESTART, ExitKind, SupervisorStatus, WorkerStatus, kind_name,
                              read_exit_info, with_explanation)
STATUS_FILE = Path(os.environ.get("SCX_PYLAND_RUN_DIR", "/run/scx_pyland")) / "supervisor.json"
# How long a worker's process group may take to vanish after SIGKILL.
GROUP_KILL_TIMEOUT_S = 10.0


@dataclass(slots=True)
class SupervisorOptions:
    backoff_initial: float = 0.25    # delay before the first restart of a series
    backoff_max: float = 30.0        # the delay doubles up to this
    stable_after: float = 60.0       # a worker that ran this long starts a new series
    max_restarts: int = 10           # restarts allowed within restart_window ...
    restart_window: float = 300.0    # ... seconds; one more and the supervisor gives up
    sysrq_final: bool = False        # sysrq-S ends the supervisor instead of a restart
    frozen_grace: float = 10.0       # the kernel dropped the scheduler, the worker lives on
    stop_timeout: float = 60.0       # a signalled worker that has not exited is killed
    disabled_timeout: float = 60.0   # wait this long for state `disabled` before a start
    poll_interval: float = 0.5       # how often the sched_ext state is read
    status_file: Path | None = STATUS_FILE
    policy: str | None = None        # the worker's --policy, for the status file
    policy_state: Path | None = reload.STATE_FILE   # the worker's policy in use, its swaps
    sched_ext_dir: Path = files.SCHED_EXT
    # Workers set it to 0; its value before the first is restored after the last,
    # and kept in compaction_original meanwhile (for the next supervisor, should
    # this one be killed before it restores it).
    compaction_sysctl: Path | None = compaction.SYSCTL
    compaction_original: Path | None = compaction.ORIGINAL


@dataclass(slots=True)
class WorkerExit:
    """How one worker ended."""

    returncode: int                  # as subprocess reports it: -N means killed by signal N
    info: dict = field(default_factory=dict)   # its exit info; empty if it wrote none
    ran: float = 0.0                 # seconds it lived
    frozen: bool = False             # we killed it: the kernel had dropped the scheduler


@dataclass(slots=True)
class Verdict:
    """What to do about an exit."""

    restart: bool
    reason: str                      # for the log and the status file
    status: int = SupervisorStatus.STOPPED   # the supervisor's exit status if not restarting


def describe_kernel_exit(info: dict) -> str:
    """The kernel's words for an exit, with its kind: 'runnable task stall (...) [ERROR_STALL]'."""
    reason = info.get("reason") or "no reason given"
    if info.get("msg"):
        reason += f" ({info['msg']})"
    kind = info.get("kind", 0)
    return f"{with_explanation(reason)} [{kind_name(kind)} 0x{kind:x}]"


def classify(ended: WorkerExit, sysrq_final: bool = False) -> Verdict:
    """Stop on a requested stop and where retrying cannot help; restart on everything
    the kernel or a crash did to the worker."""
    rc, info = ended.returncode, ended.info
    if ended.frozen:
        return Verdict(True, "the kernel dropped the scheduler and the worker did not exit; killed it")
    if rc < 0:
        return Verdict(True, f"the worker was killed by {signal_name(-rc)}")
    if rc == WorkerStatus.STOPPED:
        return Verdict(False, "the worker stopped on request")
    if rc == WorkerStatus.CANNOT_START:
        error = info.get("error", "see its message above")
        return Verdict(False, f"the worker cannot start: {error}", SupervisorStatus.CANNOT_START)
    if rc == WorkerStatus.USAGE:
        error = f": {info['error']}" if info.get("error") else ""
        return Verdict(False, f"the worker rejected its command line{error}", SupervisorStatus.USAGE)
    if rc == WorkerStatus.KERNEL_EXIT:
        reason = describe_kernel_exit(info)
        if info.get("kind") == ExitKind.SYSRQ:
            if sysrq_final:
                return Verdict(False, f"operator reset (sysrq-S), final: {reason}",
                               SupervisorStatus.SYSRQ_FINAL)
            return Verdict(True, f"operator reset (sysrq-S): {reason}")
        if info.get("exit_code", 0) & ECODE_ACT_RESTART:
            return Verdict(True, f"the kernel asked for a restart: {reason}")
        return Verdict(True, f"the kernel unregistered the scheduler: {reason}")
    if rc == WorkerStatus.POLICY_FAILED:
        return Verdict(True, f"the policy failed: {info.get('error', 'see the traceback above')}")
    if rc == WorkerStatus.TRANSPORT_FAILED:
        return Verdict(True, info.get("error", "the transport to the BPF side failed"))
    if rc == WorkerStatus.START_FAILED:
        return Verdict(True, f"the worker could not start: {info.get('error', 'see its message above')}")
    return Verdict(True, f"the worker exited with status {rc}")


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Backoff:
    """The delay before each restart: `initial`, doubling up to `maximum`. A worker that
    ran at least `stable_after` seconds before it failed starts the series over."""

    def __init__(self, initial: float, maximum: float, stable_after: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.stable_after = stable_after
        self.failures = 0            # consecutive failures of short-lived workers

    def next_delay(self, ran: float) -> float:
        if ran >= self.stable_after:
            self.failures = 0
        delay = min(self.initial * 2 ** self.failures, self.maximum)
        self.failures += 1
        return delay


class RestartBudget:
    """At most `max_restarts` restarts within any `window` seconds."""

    def __init__(self, max_restarts: int, window: float) -> None:
        self.max_restarts = max_restarts
        self.window = window
        self.times: collections.deque[float] = collections.deque()

    def spend(self, now: float) -> bool:
        """Take one restart; False when the budget is spent."""
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()
        if len(self.times) >= self.max_restarts:
            return False
        self.times.append(now)
        return True


class Supervisor:
    """Run `command` (the worker) until a stop is requested or a restart cannot help."""

    def __init__(self, command: list[str], options: SupervisorOptions,
                 env: dict[str, str] | None = None, metrics: object | None = None) -> None:
        self.command = command
        # --metrics: a metrics.Collector, served by a thread of the HTTP server; we
        # only tell it when workers come and go (refresh()).
        self.metrics = metrics
        self.options = options
        self.env = env
        self.backoff = Backoff(options.backoff_initial, options.backoff_max, options.stable_after)
        self.budget = RestartBudget(options.max_restarts, options.restart_window)
        self.stop_signal = 0         # SIGINT/SIGTERM received: forward it and end
        self.status = {"supervisor_pid": os.getpid(), "state": "starting", "worker_pid": None,
                       "policy": options.policy, "policy_swaps": 0, "last_swap": None,
                       "restarts": 0, "last_exit": None}
        self.policy_seen: tuple[int, int, int] | None = None    # the state file as read last
        self.swaps_counted: tuple[int | None, int] = (None, 0)   # (worker pid, its swaps in the total)
        self._wakeup = -1            # the read end of the signal wake-up pipe
        self._status_warned = False

    # -- the main loop ---------------------------------------------------------------

    def run(self) -> int:
        """Supervise until the end; returns a :class:`SupervisorStatus`."""
        # Our stderr is our workers' too: on a regular file, everyone appends.
        logs.append_if_file()
        with (self.signals_caught(), tempfile.TemporaryDirectory(prefix="scx_pyland.") as tmp,
              compaction.restored(self.options.compaction_sysctl, warn=log,
                                  original=self.options.compaction_original)):
            exit_info = os.path.join(tmp, "worker-exit.json")
            status = self.supervise(exit_info)
        self.update_status(state="stopped" if status == SupervisorStatus.STOPPED else "ended",
                           worker_pid=None, exit_status=int(status))
        return status

    def supervise(self, exit_info: str) -> int:
        first = True
        while True:
            if not first and not self.wait_for_disabled():
                return self.stopped()
            first = False
            ended = self.run_worker(exit_info)
            if self.stop_signal:
                return self.stopped()
            verdict = classify(ended, self.options.sysrq_final)
            self.update_status(last_exit=self.exit_record(ended, verdict))
            if not verdict.restart:
                if verdict.status == SupervisorStatus.SYSRQ_FINAL:
                    log(f"{verdict.reason}; --sysrq-final: not re-attaching")
                # A worker that cannot start has said why in one line; the
                # supervisor adds none (the status file has it too).
                return verdict.status
            if not self.budget.spend(time.monotonic()):
                log(f"error: giving up: the worker failed {self.budget.max_restarts + 1} times "
                    f"within {self.options.restart_window:g} s; last exit: {verdict.reason}",
                    prefix="scx_pyland")
                return SupervisorStatus.GAVE_UP
            delay = self.backoff.next_delay(ended.ran)
            self.update_status(state="restarting")
            log(f"restarting the worker in {delay:.2f} s: {verdict.reason}")
            if not self.sleep(delay):
                return self.stopped()
            self.restarted(verdict.reason)

    def stopped(self) -> int:
        log(f"stopped ({signal_name(self.stop_signal)})" if self.stop_signal else "stopped")
        return SupervisorStatus.STOPPED

    def restarted(self, reason: str) -> None:
        restarts = self.status["restarts"] + 1
        self.update_status(restarts=restarts)
        log(f"restart {restarts}: {reason}")

    # -- one worker --------------------------------------------------------------------

    def run_worker(self, exit_info: str) -> WorkerExit:
        """Start a worker, wait for its end, and make sure nothing of it is left."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(exit_info)
        started = time.monotonic()
        # A session of its own: a terminal's ^C reaches only us (we forward it), and
        # its whole process group can be killed at the end.
        # The policy in use (after reloads, or the fifo fallback), not the first one.
        policy = self.status["policy"]
        again = ["--policy", policy] if policy and policy != self.options.policy else []
        proc = subprocess.Popen([*self.command, *again, "--exit-info", exit_info], env=self.env,
                                start_new_session=True)
        self.update_status(state="running", worker_pid=proc.pid)
        try:
            returncode, frozen = self.wait_worker(proc)
        finally:
            self.kill_group(proc.pid)
            reap_orphans()           # those that exited while the worker's zombie hid them
        self.follow_policy(proc.pid)     # a swap it made just before it ended
        self.update_status(worker_pid=None)
        if self.metrics:
            self.metrics.refresh()   # the ended worker's last counts join the totals
        return WorkerExit(returncode, read_exit_info(exit_info), time.monotonic() - started, frozen)

    def wait_worker(self, proc: subprocess.Popen) -> tuple[int, bool]:
        """Wait for the worker to exit; returns its status and whether we killed it
        because it hung after the kernel had dropped the scheduler."""
        pidfd = os.pidfd_open(proc.pid)
        # Whether this worker attached: a scheduler was enabled since it started (the
        # kernel's enable_seq moved on), or we saw the state read `enabled`. The
        # kernel may throw it out before we ever see `enabled`.
        enable_seq = self.enable_seq()
        seen_enabled = False
        dropped_since = None         # when the state stopped reading `enabled`
        kill_at = None               # a signalled worker that is not gone by then is killed
        reload_pending = False       # SIGHUP before the worker attached: forwarded once it has
        frozen = False
        try:
            while True:
                exited, signals = self.wait_event(self.options.poll_interval, pidfd, proc.pid)
                now = time.monotonic()
                if self.metrics:
                    self.metrics.refresh()   # follows the worker's statistics file
                self.follow_policy(proc.pid)
                for signum in signals:
                    if signum in (signal.SIGINT, signal.SIGTERM):
                        self.stop_signal = signum
                        log(f"{signal_name(signum)}: stopping the worker")
                        proc.send_signal(signum)
                    elif signum == signal.SIGHUP and not self.stop_signal:
                        # Until it has attached, the worker may not handle SIGHUP yet.
                        reload_pending = True
                        continue
                    kill_at = kill_at or now + self.options.stop_timeout
                if exited:
                    return proc.wait(), frozen
                if kill_at and now >= kill_at:
                    log(f"the worker did not stop within {self.options.stop_timeout:g} s; killing it")
                    self.signal_group(proc.pid, signal.SIGKILL)
                    kill_at = float("inf")
                state = self.sched_ext_state()
                if state == "enabled":
                    seen_enabled, dropped_since = True, None
                elif not seen_enabled and enable_seq is not None:
                    seen_enabled = (self.enable_seq() or 0) > enable_seq
                if reload_pending and seen_enabled and not self.stop_signal:
                    reload_pending = False
                    log("SIGHUP: the worker reloads its policy")
                    proc.send_signal(signal.SIGHUP)
                if state != "enabled" and seen_enabled and not frozen:
                    dropped_since = dropped_since or now
                    if now - dropped_since >= self.options.frozen_grace:
                        log(f"sched_ext has read {state!r} for {now - dropped_since:.1f} s and the "
                            f"worker is still alive: killing it")
                        self.signal_group(proc.pid, signal.SIGKILL)
                        frozen = True
        finally:
            os.close(pidfd)

    def kill_group(self, pgid: int) -> None:
        """SIGKILL whatever is left of the worker's process group and wait until
        nothing is: a child of the worker would keep the BPF link attached."""
        deadline = time.monotonic() + GROUP_KILL_TIMEOUT_S
        while self.signal_group(pgid, signal.SIGKILL):
            reap_orphans()
            if time.monotonic() >= deadline:
                log(f"warning: process group {pgid} still exists {GROUP_KILL_TIMEOUT_S:g} s after SIGKILL")
                return
            time.sleep(0.02)

    @staticmethod
    def signal_group(pgid: int, signum: int) -> bool:
        """Send `signum` to a process group; False if the group is gone."""
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            return False
        return True

    # -- waiting ---------------------------------------------------------------------

    def wait_for_disabled(self) -> bool:
        """Before a new worker attaches: wait until the kernel has finished with the
        old scheduler. False if a stop was requested meanwhile."""
        deadline = time.monotonic() + self.options.disabled_timeout
        while (state := self.sched_ext_state()) not in (None, "disabled"):
            if time.monotonic() >= deadline:
                log(f"warning: sched_ext still reads {state!r} after "
                    f"{self.options.disabled_timeout:g} s; starting the worker anyway")
                return True
            if not self.sleep(0.1):
                return False
        return True

    def sleep(self, seconds: float) -> bool:
        """Sleep, but wake for a stop request (False). SIGHUP here (no worker to
        reload) only cuts the sleep short: a new worker loads the policy afresh."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            _, signals = self.wait_event(left)
            for signum in signals:
                if signum in (signal.SIGINT, signal.SIGTERM):
                    self.stop_signal = signum
                    return False
                if signum == signal.SIGHUP:
                    return True
        return True

    def wait_event(self, timeout: float, pidfd: int = -1, worker_pid: int = 0) -> tuple[bool, list[int]]:
        """Wait up to `timeout` s for the worker's exit (its pidfd readable) or a
        signal; returns (exited, signals received). A SIGCHLD is handled here: any
        child but the worker that exited is reaped (see reap_orphans)."""
        fds = [self._wakeup] + ([pidfd] if pidfd >= 0 else [])
        ready, _, _ = select.select(fds, [], [], max(timeout, 0))
        signals = list(os.read(self._wakeup, 64)) if self._wakeup in ready else []
        if signal.SIGCHLD in signals:
            reap_orphans(worker_pid)
        return pidfd in ready, [signum for signum in signals if signum != signal.SIGCHLD]

    @contextlib.contextmanager
    def signals_caught(self) -> Iterator[None]:
        """SIGINT, SIGTERM and SIGHUP arrive as bytes on a pipe (as in asyncio), so
        the loop sees them between waits, never in the middle of a step; SIGCHLD
        too, so that every child that exits is reaped (we may be PID 1)."""
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        caught = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)
        previous = {signum: signal.signal(signum, lambda *_: None) for signum in caught}
        self._wakeup = read_end
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_fd)
            os.close(read_end)
            os.close(write_end)
            self._wakeup = -1

    # -- the kernel's state and ours -----------------------------------------------------

    def sched_ext_state(self) -> str | None:
        return files.sched_ext_state(self.options.sched_ext_dir)

    def enable_seq(self) -> int | None:
        return files.enable_seq(self.options.sched_ext_dir)

    def follow_policy(self, worker_pid: int) -> None:
        """Copy the worker's policy state (the policy in use, its swaps, the last swap)
        into the status file when it changed; only a state this worker wrote counts."""
        path = self.options.policy_state
        if path is None:
            return
        try:
            st = os.stat(path)
        except OSError:
            return
        seen = (st.st_mtime_ns, st.st_size, st.st_ino)
        if seen == self.policy_seen:
            return
        state = reload.read_state(path)
        if state.get("worker_pid") != worker_pid:
            return
        self.policy_seen = seen
        # policy_swaps counts every worker's swaps: add what this one made since.
        swaps = int(state.get("swaps") or 0)
        counted = self.swaps_counted[1] if self.swaps_counted[0] == worker_pid else 0
        self.swaps_counted = (worker_pid, swaps)
        self.update_status(policy=state.get("policy"),
                           policy_swaps=self.status["policy_swaps"] + max(0, swaps - counted),
                           last_swap=state.get("last_swap"))

    @staticmethod
    def exit_record(ended: WorkerExit, verdict: Verdict) -> dict:
        kind = ended.info.get("kind")
        return {"status": ended.returncode if ended.returncode >= 0 else None,
                "signal": signal_name(-ended.returncode) if ended.returncode < 0 else None,
                "kind": kind_name(kind) if kind is not None else None,
                "kind_value": kind, "exit_code": ended.info.get("exit_code"),
                "reason": verdict.reason, "ran_s": round(ended.ran, 3), "time": time.time()}

    def update_status(self, **changes: object) -> None:
        """Rewrite the status file (root-only) with the changes."""
        self.status.update(changes)
        path = self.options.status_file
        if path is None:
            return
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            files.write_json_atomic(path, self.status, indent=1)
        except OSError as err:
            if not self._status_warned:
                log(f"warning: cannot write the status file {path}: {err.strerror}")
                self._status_warned = True


def reap_orphans(worker_pid: int = 0) -> None:
    """Reap every child that has exited, except the worker (`worker_pid`), whose
    status its Popen collects: reaped here, it would leave subprocess an ECHILD and
    a made-up status 0. Each exited child is looked at first (WNOWAIT) and reaped by
    its pid only when it is not the worker, so no waitpid(-1) ever takes the
    worker's status. When the worker is the one found, the rest waits for the next
    call, made once the worker is reaped.

    Children we never started become ours where the supervisor is PID 1 (a
    container: the worker's orphans, whatever `docker exec ... &` leaves behind) or
    a subreaper; elsewhere the worker is our only child. The image needs no tini
    (--init) for this: its PID 1 must be the supervisor itself, which catches the
    stop signal from its first instant, forwards it to the worker and restarts
    workers; reaping is the one other thing an init does, and this is it."""
    while True:
        try:
            child = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return                   # no children at all
        if child is None or child.si_pid == worker_pid:
            return
        os.waitpid(child.si_pid, os.WNOHANG)


def worker_command(argv: list[str]) -> list[str]:
    """The worker: this Python, this package, the same arguments."""
    return [sys.executable, "-m", "scx_pyland", "--worker", *argv]


def log(message: str, prefix: str = "scx_pyland: supervisor") -> None:
    logs.log(f"{prefix}: {message}")

