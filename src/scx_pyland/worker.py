"""The worker: one process, one thread, that runs a policy against the attached BPF side.

It schedules every other task on the machine, so it must never wait on one: no
threads, no forks, no lazy imports, no blocking I/O and no garbage collection while
attached (docs/design.md, the traps; a thread or a fork is refused, and a policy
swap is the one import and collection). The loop, once attached:

    queued tasks (a batch) -> policy.enqueue -> policy.dispatch -> dispatch (a batch)
        -> notify_complete (yield)

and about once a second: policy.tick(), and the statistics are published. When it
ends, for whatever reason, the scheduler is detached before anything is printed.

A policy can never take the machine down (docs/design.md, "Reload, fallback and
rescue"):

- the worker keeps custody of every task it hands to the policy until the policy
  decides it (``Scheduler.custody``, kept by the extension as it reads and writes
  the rings); a decision for a task the policy does not hold is dropped and counted;
- a task held longer than ``rescue_after_ms`` is dispatched by the worker itself
  (any CPU) and counted as rescued;
- an exception from the policy is logged once and the fifo policy takes over every
  task the failed one held (``on_policy_error="exit"``: exit 70 as before);
- SIGHUP (``scx_pyland reload``) and, with ``watch``, a change of the policy's file
  load the policy again between two cycles: the new one gets every task the old
  one held; one that cannot be loaded is refused and the old one keeps running.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scx_pyland import _bpf, compaction, files, logs, reload, stats, topology
from scx_pyland.exits import ExitKind, WorkerStatus, is_error, kind_name, with_explanation, write_exit_info
from scx_pyland.policies import FifoPolicy, PolicyLoadError, load_policy_class, policy_file
from scx_pyland.policy import Policy
from scx_pyland.replay import TraceRecorder

# Records taken from the ring per cycle: enough for a burst of wake-ups, small
# enough that one cycle stays short.
BATCH = 512
# How long a stopping worker waits for the BPF side to take the decisions it sent.
DRAIN_TIMEOUT_S = 1.0
TICK_NS = 1_000_000_000
# Housekeeping looks for tasks to rescue this many times per rescue bound.
RESCUE_PERIODS = 4
# --policy ceiling: how long the C++ loop runs before Python looks at signals,
# the tick and the statistics again.
CEILING_CHUNK_NS = 50_000_000
SCHED_EXT = 7   # the scheduling policy of sched_ext tasks (uapi)


@dataclass(slots=True)
class WorkerOptions:
    slice_ns: int = 20_000_000
    timeout_ms: int = 5000
    exit_dump_len: int = 0
    partial: bool = False
    verbose: bool = False
    stats_interval: float = 0.0          # print a stats line this often (0: never)
    stats_path: Path = stats.DEFAULT_PATH
    record: Path | None = None           # write a trace of the queued records here
    exit_info: str | None = None         # where to write how it ended, for the supervisor
    restore_compaction: bool = True      # False under the supervisor, which restores it
    # With restore_compaction: where the system's value is kept while attached, for
    # the next one should this worker be killed (compaction.ORIGINAL; None: nowhere).
    compaction_original: Path | None = None
    # Debug only (fault tests): after this many seconds, stop dispatching so the
    # watchdog fires, or make the BPF side call scx_bpf_error().
    debug_stall_after: float | None = None
    debug_bpf_error_after: float | None = None
    policy_spec: str = ""                # --policy as given: what a reload re-imports
    watch: bool = False                  # reload when the policy's file changes
    on_policy_error: str = "fallback"    # "fallback" to fifo, or "exit" (status 70)
    rescue_after_ms: int | None = None   # dispatch a task held longer (None: timeout_ms / 2)
    max_user_wait_ms: int = 50           # the BPF side serves a record unread longer (0: never)
    state_path: Path = reload.STATE_FILE      # the policy in use and the last swap (JSON)
    request_path: Path = reload.REQUEST_FILE  # a pending `scx_pyland reload` request


class Worker:
    """Attach, run the policy until told to stop or the kernel ends it, detach."""

    def __init__(self, policy: Policy, options: WorkerOptions) -> None:
        self.policy = policy
        self.options = options
        self.stop_requested = False
        self.reload_requested = False   # SIGHUP: load the policy again at the next tick
        self.sched: _bpf.Scheduler | None = None
        self.nr_ceiling_sent = 0        # decisions run_fifo_ceiling sent (--policy ceiling)
        self.backlog: list[_bpf.DispatchedTask] = []   # decisions the ring had no room for
        # What a reload re-imports and --watch watches: the policy last asked for
        # (the fifo fallback replaces the policy in use, not this).
        self.spec = options.policy_spec or (policy.name if policy else "")
        self.spec_in_use = self.spec
        self.fallback_from: str | None = None   # the spec that failed, while fifo stands in
        self.nr_policy_errors = 0
        self.nr_rescued = 0
        self.nr_swaps = 0
        self.last_swap: dict | None = None
        self.watched: tuple[Path, tuple[int, int, int] | None] | None = None
        rescue_ms = options.rescue_after_ms or max(options.timeout_ms // 2, 1)
        self.rescue_after_ns = rescue_ms * 1_000_000
        # Housekeeping (rescues) runs this often; the policy's tick, reloads and the
        # statistics once a second within it. Tasks are stamped with the time of the
        # housekeeping before they arrived (never taken for younger than they are),
        # so a task is rescued between rescue - period and rescue + period (plus one
        # cycle) after it arrived: at most 1.25 x rescue_after_ms.
        self.housekeeping_ns = min(TICK_NS, self.rescue_after_ns // RESCUE_PERIODS)
        self.next_housekeeping = 0
        self.next_tick = 0
        self.events = logs.NonBlockingLog(None)  # log lines while attached, never blocking
        self.debug_stalled = False
        self.started = 0.0
        self.recorder = TraceRecorder(options.record) if options.record else None
        self.stats: stats.StatsWriter | None = None
        self.last_line: stats.Snapshot | None = None
        self.next_line_ns = 0
        self.stats_fd: int | None = None     # stderr for --stats lines, never blocking
        self.exit_fields: dict[str, object] = {}    # how it ended, for the supervisor
        self.fork_guard = ForkGuard(self.events_write)

    def events_write(self, line: str) -> None:
        """A line logged while attached (never blocking): self.events at the time."""
        self.events.write(line)

    def request_stop(self, signum: int = 0, frame: object = None) -> None:
        self.stop_requested = True

    def request_reload(self, signum: int = 0, frame: object = None) -> None:
        self.reload_requested = True

    @property
    def nr_dispatched(self) -> int:
        """Decisions sent to the BPF side: the policy's and the rescues."""
        return (self.sched.nr_decisions_sent if self.sched else 0) + self.nr_ceiling_sent

    def run(self) -> int:
        """Run to the end; returns a :class:`WorkerStatus`. With ``exit_info`` set,
        how it ended is also written there as JSON (after detaching)."""
        # Under the supervisor it is done already; alone (--no-supervisor), ours to do.
        logs.append_if_file()
        status = self.run_attached()
        if self.options.exit_info:
            try:
                write_exit_info(self.options.exit_info, status=int(status), **self.exit_fields)
            except OSError as err:
                log(f"warning: cannot write the exit info to {self.options.exit_info}: {err.strerror}")
        return status

    def run_attached(self) -> int:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        try:
            _bpf.check_environment()
            try:
                self.stats = stats.StatsWriter(self.options.stats_path)
            except OSError as err:
                log(f"warning: no statistics: cannot write {self.options.stats_path}: {err.strerror}")
            for warning in _bpf.guard_memory():
                log(f"warning: {warning}")
            with compaction_off_locked_pages(restore=self.options.restore_compaction,
                                             original=self.options.compaction_original):
                return self.attach_and_run()
        except (_bpf.CannotStartHere, CannotStart) as err:
            # No sched_ext, no privilege, another scheduler, a verifier rejection:
            # this system cannot take the scheduler as it is.
            log(f"error: {err}")
            self.exit_fields = {"error": str(err)}
            return WorkerStatus.CANNOT_START
        except (_bpf.Error, MemoryError) as err:
            # Out of memory, a ring that could not be mapped, a program run that
            # failed, an attach refused for now: another start may succeed.
            message = with_explanation(str(err) or "out of memory")
            log(f"error: cannot start now: {message}")
            self.exit_fields = {"error": message}
            return WorkerStatus.START_FAILED
        finally:
            if self.stats:
                self.stats.close()

    def attach_and_run(self) -> int:
        try:
            topo = topology.read_topology()
        except OSError as err:
            raise CannotStart(f"cannot read the CPU topology: {os_error_text(err)}") from None
        # Lines written while attached (--stats, errors, reloads) never block.
        self.stats_fd = open_stats_stderr(stats_asked=bool(self.options.stats_interval))
        self.events = logs.NonBlockingLog(self.stats_fd)
        self.watched = self.watch_target()
        if threads := other_threads():
            raise CannotStart(f"the worker must be one thread, but {describe_threads(threads)} run in it, "
                              f"started by the {self.policy.name} policy or a module it imports "
                              f"(docs/design.md, the traps)")
        sched = _bpf.Scheduler(
            slice_ns=self.options.slice_ns,
            timeout_ms=self.options.timeout_ms,
            exit_dump_len=self.options.exit_dump_len,
            partial=self.options.partial,
            verbose=self.options.verbose,
            smt_enabled=topo.smt_enabled,
            domains=cache_domains(topo),
            max_user_wait_ns=self.options.max_user_wait_ms * 1_000_000,
        )
        with sched, self.fork_guard.armed():
            self.policy.use_scheduler(sched.select_cpus, getattr(sched, "idle_cpus", None))
            if self.options.partial:
                # Only SCHED_EXT tasks are ours now: the worker must be one of them,
                # or the BPF side would never see (and favour) it.
                try:
                    os.sched_setscheduler(0, SCHED_EXT, os.sched_param(0))
                except OSError as err:
                    raise CannotStart(f"--partial: cannot make the worker a SCHED_EXT task: "
                                      f"{os_error_text(err)}") from None
            log(f"attached as {sched.ops_name} ({self.policy.name} policy, "
                f"{self.policy.config.nr_cpus} CPUs, slice {self.options.slice_ns // 1000} us)")
            self.write_state()
            self.started = time.monotonic()
            # Everything allocated so far lives as long as the worker: keep the
            # cyclic collector off it, and off the hot path altogether.
            gc.collect()
            gc.freeze()
            gc.disable()
            try:
                self.loop(sched)
            except ThreadStarted as err:
                sched.close()
                gc.enable()
                self.events.drain()
                log(f"error: {err}; the scheduler is detached")
                self.exit_fields = {"error": str(err)}
                return WorkerStatus.POLICY_FAILED
            except _bpf.Error as err:
                # The extension failed, not the policy: a ring could not be read or
                # written, or the BPF side refused a program run.
                sched.close()
                gc.enable()
                log(f"error: the transport to the BPF side failed: {err}; the scheduler is detached")
                self.exit_fields = {"error": f"the transport to the BPF side failed: {err}"}
                return WorkerStatus.TRANSPORT_FAILED
            except Exception:
                sched.close()
                gc.enable()
                self.events.drain()
                log(f"error: the {self.policy.name} policy raised an exception; "
                    f"the scheduler is detached\n{traceback.format_exc()}")
                self.exit_fields = {"error": traceback.format_exc(limit=0).strip()}
                return WorkerStatus.POLICY_FAILED
            if self.stop_requested:
                self.drain(sched)
            counters = sched.counters()
            info = sched.shutdown_and_report()
        gc.enable()
        self.events.drain()
        with contextlib.suppress(Exception):    # detached already: nothing left to protect
            self.policy.on_exit()
        log(self.exit_report(info, counters))
        self.exit_fields = {"kind": info.kind, "exit_code": info.exit_code,
                            "reason": info.reason, "msg": info.msg}
        if info.dump and (is_error(info.kind) or self.options.verbose):
            log(info.dump)
        if self.recorder:
            self.recorder.save()
            log(f"recorded the queued records of {self.recorder.used} bytes to {self.recorder.path}"
                + (f" ({self.recorder.dropped} dropped: the buffer was full)" if self.recorder.dropped else ""))
        # Our own detach is the only way to an UNREG exit; anything else came from
        # the kernel (stall, error, sysrq-S, a restart request).
        return WorkerStatus.STOPPED if info.kind == ExitKind.UNREG else WorkerStatus.KERNEL_EXIT

    def loop(self, sched: _bpf.Scheduler) -> None:
        """Run cycles until the kernel ends the scheduler or a stop is requested. An
        exception from the policy hands its tasks to the fifo policy and the loop goes
        on (with on_policy_error="exit", or from the fallback itself, it propagates);
        a transport error (_bpf.Error) always propagates."""
        self.sched = sched
        if getattr(self.policy, "runs_in_cxx", False):
            return self.loop_in_cxx(sched)
        now = time.monotonic_ns()
        self.next_housekeeping = now + self.housekeeping_ns
        self.next_tick = now + TICK_NS
        # Tasks received until the next housekeeping are recorded as received now:
        # never taken for younger than they are, and no clock read per cycle.
        sched.custody.stamp_ns = now
        try:
            while not (sched.exited() or self.stop_requested):
                try:
                    self.run_cycles(sched)
                except (_bpf.Error, ThreadStarted):
                    raise
                except Exception:
                    if self.options.on_policy_error == "exit" or self.fallback_from is not None:
                        raise
                    self.fall_back(sched)
        finally:
            self.publish_stats(sched)

    def run_cycles(self, sched: _bpf.Scheduler) -> None:
        """The hot path, for one policy: returns when the policy changed (a reload),
        the kernel ended the scheduler or a stop was requested. Everything it touches
        is bound to locals first."""
        policy = self.policy
        enqueue = policy.enqueue
        pick = self.with_debug_faults(policy.dispatch, sched)
        dequeue = sched.dequeue     # records what it reads in sched.custody
        submit = sched.submit       # takes the decisions out of sched.custody, and sends them
        dispatch = sched.dispatch
        release = sched.custody.release
        notify_complete = sched.notify_complete
        monotonic_ns = time.monotonic_ns
        record = self.recorder.add if self.recorder else None
        backlog = self.backlog
        next_housekeeping = self.next_housekeeping
        exited = sched.exited()
        while not (exited or self.stop_requested):
            queued = dequeue(BATCH)
            if record:
                record(queued)
            enqueue(queued)
            decisions = pick()
            if backlog:
                # The ring was full (or tasks were rescued): what waits goes first.
                decisions = backlog + (release(decisions) if decisions else no_decisions(decisions))
                backlog.clear()
                sent = dispatch(decisions)
                if sent < len(decisions):
                    backlog.extend(decisions[sent:])
            elif decisions:
                refused = submit(decisions)     # raises TypeError unless a list of DispatchedTask
                if refused:
                    backlog.extend(refused)
            elif decisions.__class__ is not list:
                no_decisions(decisions)         # None, (), ...: an error, as any non-list
            if monotonic_ns() >= next_housekeeping:
                if self.housekeeping(sched):
                    return      # a new policy: bind it
                next_housekeeping = self.next_housekeeping
            exited = notify_complete(policy.nr_pending + len(backlog))

    def housekeeping(self, sched: _bpf.Scheduler) -> bool:
        """Between two cycles, every housekeeping_ns: rescue the tasks held too long;
        once a second also the policy's tick, a requested reload or a changed file
        (--watch), and the statistics. True when the policy changed."""
        now = time.monotonic_ns()
        self.next_housekeeping = now + self.housekeeping_ns
        sched.custody.stamp_ns = now
        self.rescue(sched, now)
        if now < self.next_tick:
            return False
        self.next_tick = now + TICK_NS
        self.policy.tick()
        changed = False
        if self.reload_requested:
            self.reload_requested = False
            request = reload.take_request(self.options.request_path)
            changed = self.swap(sched, request.get("policy") or self.spec, "reload", request.get("id"))
        elif self.watched and self.watched_file_changed():
            changed = self.swap(sched, self.spec, "file changed")
        self.publish_stats(sched)
        self.events.flush()
        return changed

    def rescue(self, sched: _bpf.Scheduler, now_ns: int) -> None:
        """Dispatch, to any CPU, every task the policy has held longer than
        rescue_after_ns: it may have forgotten it, and the watchdog would end the
        scheduler. They go out first, with the next cycle's decisions."""
        if self.debug_stalled:
            return      # --debug-stall-after: the watchdog is meant to fire
        rescued = sched.custody.take_overdue(self.rescue_after_ns, self.policy.config.slice_ns, now_ns)
        if not rescued:
            return
        if not self.nr_rescued:
            pids = ", ".join(str(d.pid) for d in rescued[:8]) + (", ..." if len(rescued) > 8 else "")
            self.events.write(f"scx_pyland: warning: the {self.policy.name} policy held {len(rescued)} "
                              f"task(s) longer than {self.rescue_after_ns // 1_000_000} ms (pid {pids}): "
                              f"dispatched them itself; further rescues are counted (rescued)")
        self.nr_rescued += len(rescued)
        self.backlog.extend(rescued)

    # -- policies: swap and fallback -----------------------------------------------------

    def swap(self, sched: _bpf.Scheduler, spec: str, cause: str, request: str | None = None) -> bool:
        """Load `spec` afresh and switch to it, handing it every task the policy in use
        holds (as queued, oldest first). If it cannot be loaded, built or take those
        tasks, it is refused in one line and the policy in use goes on. True if it
        switched."""
        old = self.policy
        held = sched.custody.held()
        try:
            try:
                cls = load_policy_class(spec, fresh=True)
            except PolicyLoadError as err:
                raise SwapRefused(str(err)) from None
            if getattr(cls, "runs_in_cxx", False):
                raise SwapRefused(f"{spec!r} runs only from the start (--policy {spec})")
            try:
                new = cls(old.config)
            except Exception as err:
                raise SwapRefused(f"the {spec} policy failed to start: {type(err).__name__}: {err}") from None
            select_cpus = getattr(sched, "select_cpus", None)
            if select_cpus:
                new.use_scheduler(select_cpus, getattr(sched, "idle_cpus", None))
            try:
                new.enqueue(held)
            except Exception as err:
                raise SwapRefused(f"the {spec} policy raised on taking over {len(held)} tasks: "
                                  f"{type(err).__name__}: {err}") from None
            if threads := other_threads():
                raise ThreadStarted(f"the {spec} policy started {describe_threads(threads)}: the worker "
                                    f"must stay one thread (docs/design.md, the traps)")
        except ThreadStarted as started:
            # Refused, but the thread runs on and cannot be stopped from here: the
            # worker ends (70), and the supervisor starts a new one with the policy
            # in use, the old one.
            self.note_swap(spec, cause, request, ok=False, message=f"{started}; the worker restarts with "
                                                                    f"the {old.name} policy")
            raise
        except SwapRefused as refused:
            message = f"{refused}; the {old.name} policy keeps running"
            self.note_swap(spec, cause, request, ok=False, message=message)
            self.events.write(f"scx_pyland: error: reload refused: {message}")
            self.retire(None)     # what the refused module left
            return False
        old_spec = self.spec_in_use
        self.policy = new
        self.spec = self.spec_in_use = spec
        self.fallback_from = None
        self.nr_swaps += 1
        if self.options.watch:
            self.watched = self.watch_target(quiet=True)
        message = f"handed over {len(held)} tasks"
        self.note_swap(spec, cause, request, ok=True, message=message, old=old_spec)
        self.events.write(f"scx_pyland: policy {old.name} -> {new.name} ({cause}): {message}")
        self.retire(old)
        return True

    def fall_back(self, sched: _bpf.Scheduler) -> None:
        """Called in an `except` block: the policy raised. Log it once, with its
        traceback, and let the fifo policy take every task it held."""
        failed, failed_spec = self.policy, self.spec_in_use
        self.nr_policy_errors += 1
        held = sched.custody.held()
        fifo = FifoPolicy(failed.config)
        fifo.enqueue(held)
        self.policy = fifo
        self.spec_in_use = "fifo"
        self.fallback_from = failed_spec
        self.nr_swaps += 1
        error = traceback.format_exc(limit=0).strip()
        message = f"the {failed.name} policy raised {error}; fifo took over its {len(held)} tasks"
        self.note_swap("fifo", "policy error", None, ok=True, message=message, old=failed_spec)
        self.events.write(f"scx_pyland: error: {message} (the scheduler stays attached; "
                          f"scx_pyland reload or --watch loads {self.spec} again)\n{traceback.format_exc()}")
        self.retire(failed)

    def retire(self, old: Policy | None) -> None:
        """A policy swapped out gets its on_exit(); whatever it raises is only logged.
        Then the garbage a policy's module and class leave (they refer to each other)
        is collected, once: the collector is otherwise off while attached, and
        reloads would pile it up (objects frozen at start-up are not walked)."""
        if old is not None:
            try:
                old.on_exit()
            except Exception as err:
                self.events.write(f"scx_pyland: warning: the {old.name} policy's on_exit() raised "
                                  f"{type(err).__name__}: {err}")
        gc.collect()

    def note_swap(self, spec: str, cause: str, request: str | None, ok: bool, message: str,
                  old: str | None = None) -> None:
        self.last_swap = {"time": time.time(), "from": old or self.spec_in_use, "to": spec,
                          "cause": cause, "ok": ok, "message": message, "request": request}
        self.write_state()

    def write_state(self) -> None:
        """The policy in use, the swaps and the last one's outcome, for the supervisor,
        --monitor and `scx_pyland reload` (a small file on the run directory's tmpfs,
        written atomically; rarely: at start and on each swap)."""
        state = {"worker_pid": os.getpid(), "policy": self.spec_in_use, "name": self.policy.name,
                 "fallback_from": self.fallback_from, "swaps": self.nr_swaps,
                 "policy_errors": self.nr_policy_errors, "last_swap": self.last_swap}
        try:
            files.write_json_atomic(self.options.state_path, state)
        except OSError as err:
            self.events.write(f"scx_pyland: warning: cannot write {self.options.state_path}: {err.strerror}")

    # -- --watch ---------------------------------------------------------------------

    def watch_target(self, quiet: bool = False) -> tuple[Path, tuple[int, int, int] | None] | None:
        """(the policy's file, its signature now) with --watch, else None."""
        if not self.options.watch:
            return None
        path = policy_file(self.spec)
        if path is None:
            if not quiet:
                log(f"warning: --watch: the {self.spec} policy has no file of its own to watch")
            return None
        return path, file_signature(path)

    def watched_file_changed(self) -> bool:
        path, seen = self.watched
        now = file_signature(path)
        if now == seen or now is None:
            return False        # unchanged, or gone for now (an editor's save): wait
        # Taken before the file is read: a write that ends after it shows next tick.
        self.watched = (path, now)
        return True

    def loop_in_cxx(self, sched: _bpf.Scheduler) -> None:
        """Benchmark only (--policy ceiling): the fifo cycle in C++; Python comes back
        every CEILING_CHUNK_NS for signals, the tick and the statistics."""
        config = self.policy.config
        next_tick = time.monotonic_ns() + TICK_NS
        try:
            while not self.stop_requested and not sched.exited():
                self.nr_ceiling_sent += sched.run_fifo_ceiling(CEILING_CHUNK_NS, config.slice_ns,
                                                               config.slice_min_ns)
                if time.monotonic_ns() >= next_tick:
                    next_tick += TICK_NS
                    self.publish_stats(sched)
        finally:
            self.publish_stats(sched)

    def with_debug_faults(self, pick: Callable[[], list], sched: _bpf.Scheduler) -> Callable[[], list]:
        """Debug only (--debug-*): the policy's dispatch, wrapped to inject a fault after
        a delay. Without those options the loop calls the policy directly."""
        stall_after = self.options.debug_stall_after
        error_after = self.options.debug_bpf_error_after
        if not (stall_after or error_after):
            return pick
        start = time.monotonic()

        def faulty() -> list:
            elapsed = time.monotonic() - start
            if error_after and elapsed >= error_after:
                sched.debug_request_error()      # scx_bpf_error() on the next dispatch
            decisions = pick()
            if stall_after and elapsed >= stall_after:
                if not self.debug_stalled:
                    sched.debug_disable_custody()    # nor custody: the watchdog must fire
                self.debug_stalled = True    # and no rescue
                return []   # dropped: those tasks never run, and the watchdog fires
            return decisions
        return faulty

    def publish_stats(self, sched: _bpf.Scheduler) -> None:
        c = sched.counters()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        values = (
            c.nr_user_dispatches, c.nr_kernel_dispatches, c.nr_direct_dispatches, c.nr_rt_dispatches,
            c.nr_stalled_dispatches, c.nr_custody_dispatches, c.nr_sched_congested,
            c.nr_cancel_dispatches, c.nr_bounce_dispatches, c.nr_failed_dispatches, c.nr_drain_errors,
            c.nr_worker_preempts,
            self.nr_dispatched, usage.ru_minflt + usage.ru_majflt,
            self.nr_policy_errors, self.nr_rescued, sched.custody.nr_invalid, self.nr_swaps,
            c.nr_queued, len(sched.custody) + len(self.backlog) + sched.ceiling_backlog,
            c.nr_running, c.nr_online_cpus,
        )
        if self.stats:
            self.stats.publish(values)
        if self.options.stats_interval:
            self.print_stats_line(values)

    def print_stats_line(self, values: tuple[int, ...]) -> None:
        now = time.monotonic_ns()
        if now < self.next_line_ns:
            return
        self.next_line_ns = now + int(self.options.stats_interval * 1e9)
        snapshot = stats.Snapshot(os.getpid(), now, dict(zip(stats.FIELD_NAMES, values)))
        line = stats.format_line(self.last_line, snapshot)
        self.last_line = snapshot
        if self.stats_fd is not None:
            logs.try_write_line(self.stats_fd, f"scx_pyland: {line}")   # or dropped

    def drain(self, sched: _bpf.Scheduler) -> None:
        """Before detaching on a stop: let the BPF side take what was sent."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and not sched.exited():
            if received(sched.counters()) >= self.nr_dispatched:
                return
            sched.notify_complete(0)

    def exit_report(self, info: _bpf.ExitInfo, c: _bpf.Counters) -> str:
        """One line: how it ended and who made the dispatch decisions."""
        seconds = time.monotonic() - self.started
        reason = info.reason or "no reason given"
        if info.msg:
            reason += f" ({info.msg})"
        reason = with_explanation(reason)
        total = (c.nr_user_dispatches + c.nr_kernel_dispatches + c.nr_direct_dispatches + c.nr_rt_dispatches
                 + c.nr_stalled_dispatches + c.nr_custody_dispatches + c.nr_sched_congested)

        def share(n: int) -> str:
            return f"{n} ({100.0 * n / total:.1f}%)" if total else f"{n}"

        safety = ""
        if self.nr_policy_errors:
            safety += (f"; policy errors {self.nr_policy_errors} (fifo took over from {self.fallback_from})"
                       if self.fallback_from else f"; policy errors {self.nr_policy_errors}")
        invalid = self.sched.custody.nr_invalid if self.sched else 0
        if self.nr_rescued or invalid:
            safety += f"; rescued {self.nr_rescued}, invalid decisions {invalid}"
        if self.nr_swaps:
            safety += f"; policy swaps {self.nr_swaps}"
        return (f"exit: {reason}; kind {kind_name(info.kind)} 0x{info.kind:x}, code {info.exit_code}; "
                f"ran {seconds:.1f} s; policy {self.policy.name} dispatched {self.nr_dispatched}; "
                f"dispatches: user {share(c.nr_user_dispatches)}, kernel {share(c.nr_kernel_dispatches)}, "
                f"direct {share(c.nr_direct_dispatches)}, realtime {share(c.nr_rt_dispatches)}, "
                f"stalled {share(c.nr_stalled_dispatches)}, custody {share(c.nr_custody_dispatches)}, "
                f"congested {share(c.nr_sched_congested)}; cancelled {c.nr_cancel_dispatches}, "
                f"bounced {c.nr_bounce_dispatches}, failed {c.nr_failed_dispatches}"
                + (f", failed drains {c.nr_drain_errors}" if c.nr_drain_errors else "") + safety)


class CannotStart(Exception):
    """The worker cannot start for a reason retrying will not fix (exit 69, final);
    the message says why. A _bpf.Error that is not a _bpf.CannotStartHere is one
    that may pass (exit 73, restarted)."""


class SwapRefused(Exception):
    """A policy that cannot replace the one in use; the message says why."""


class ThreadStarted(Exception):
    """A policy swapped in started a thread: refused, and the worker must end, since
    the thread cannot be stopped (docs/design.md, the traps); the message says which."""


def other_threads(task_dir: Path = Path("/proc/self/task")) -> list[str]:
    """The names of this process's threads but the calling one, from the kernel's
    list: those a C library started (OpenBLAS, a pool), which `threading` does not
    see, by their comm; Python's by their name."""
    me = str(threading.get_native_id())
    python_names = {str(t.native_id): t.name for t in threading.enumerate()}
    names = []
    for tid in sorted(os.listdir(task_dir), key=int):
        if tid != me:
            try:
                names.append(python_names.get(tid) or (task_dir / tid / "comm").read_text().strip())
            except OSError:
                continue    # it ended while we looked
    return names


def describe_threads(names: list[str]) -> str:
    """'1 thread (pool-1)' or '3 threads (a, b, ...)'."""
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return f"{len(names)} thread{'s' if len(names) > 1 else ''} ({shown})"


class ForkGuard:
    """While armed (attached), a fork of the worker ends its child at once, before
    it runs any of the policy's code: a child keeps the BPF link, and with it the
    scheduler, attached after the worker exits (docs/design.md, the traps). The
    parent logs one line per fork. os.fork(), multiprocessing and a subprocess with
    a preexec_fn run these hooks; a plain subprocess (fork or vfork, then exec, whose
    close-on-exec descriptors leave the link behind) does not."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.active = False
        self.nr_forks = 0
        self.registered = False

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        if not self.registered:
            # Hooks cannot be removed: they stay, disarmed, for the process's life.
            os.register_at_fork(after_in_parent=self.after_in_parent, after_in_child=self.after_in_child)
            self.registered = True
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def after_in_child(self) -> None:
        if self.active:
            os._exit(WorkerStatus.POLICY_FAILED)

    def after_in_parent(self) -> None:
        if self.active:
            self.nr_forks += 1
            self.write(f"scx_pyland: error: the worker forked while attached: the child was ended at once "
                       f"(it would keep the scheduler attached; docs/design.md, the traps); "
                       f"{self.nr_forks} fork(s) ended so far")


def no_decisions(decisions: object) -> list:
    """A policy's dispatch() returned something empty: [] for an empty list (or list
    subclass); raises TypeError for anything else (None, an empty tuple), as
    Scheduler.submit does for a non-list with decisions in it, so the worker's
    fallback takes over (policy.py: anything but a list is an error)."""
    if not isinstance(decisions, list):
        raise TypeError(f"the policy's dispatch() must return a list of DispatchedTask, "
                        f"not {type(decisions).__name__}")
    return []


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """(mtime ns, size, inode) of a file, None if it cannot be read: what --watch compares."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def os_error_text(err: OSError) -> str:
    """An OSError in words, without the errno number: 'Permission denied (/sys/...)'."""
    return f"{err.strerror or err}" + (f" ({err.filename})" if err.filename else "")


def cache_domains(topo: topology.Topology) -> list[tuple[int, int, list[int]]]:
    """(level, cpu, CPUs sharing it) for the BPF side's idle-CPU selection."""
    levels = ((_bpf.DOMAIN_SMT, topo.core_siblings), (_bpf.DOMAIN_L2, topo.l2_siblings),
              (_bpf.DOMAIN_L3, topo.l3_siblings))
    domains = [(level, cpu, siblings) for level, domains in levels for cpu, siblings in domains.items()]
    # The CPUs idle-CPU selection may pick from: those online now.
    return domains + [(_bpf.DOMAIN_ONLINE, 0, topo.online)]


def received(c: _bpf.Counters) -> int:
    """Decisions the BPF side has taken off the user ring, whatever became of them."""
    return c.nr_received


@contextlib.contextmanager
def compaction_off_locked_pages(path: Path = compaction.SYSCTL, restore: bool = True,
                                original: Path | None = None) -> Iterator[None]:
    """Keep memory compaction off locked pages while attached, so it never takes the
    worker's mmap lock. The system's setting is restored afterwards by whoever
    outlives the worker: the supervisor, or with `restore` (--no-supervisor) the
    worker itself, which keeps it in `original` meanwhile (scx_pyland.compaction
    says why)."""
    with compaction.restored(path if restore else None, warn=log, original=original):
        try:
            compaction.write(path, "0")
        except OSError as err:
            log(f"warning: cannot set {path} to 0: {err.strerror}")
        yield


def open_stats_stderr(stats_asked: bool) -> int | None:
    """stderr may be a pipe or a terminal that only another task drains (in a
    container, the shim; a terminal emulator): the lines written while attached go
    through a descriptor that never waits on one, and are dropped rather than ever
    waited for (scx_pyland.logs has the rules). None when there is no such
    descriptor: the log lines then wait until the worker has detached, and the
    --stats lines are lost, which is worth a warning only if they were asked for."""
    try:
        return logs.open_stats_stderr()
    except OSError as err:
        if stats_asked:
            log(f"warning: no --stats lines: cannot open stderr again without blocking: {err.strerror}")
        return None


def log(message: str) -> None:
    """Messages outside the hot path only, to stderr, each in one write."""
    logs.log(f"scx_pyland: {message}")
