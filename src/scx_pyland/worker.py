"""The worker: one process, one thread, that runs a policy against the attached BPF side.

It schedules every other task on the machine, so it must never wait on one: no
threads, no lazy imports, no blocking I/O and no garbage collection while attached
(docs/design.md, the traps). The loop, once attached:

    queued tasks (a batch) -> policy.enqueue -> policy.dispatch -> dispatch (a batch)
        -> notify_complete (yield)

and about once a second: policy.tick(), and the statistics are published. When it
ends, for whatever reason, the scheduler is detached before anything is printed.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scx_pyland import _bpf, compaction, logs, stats, topology
from scx_pyland.exits import ExitKind, WorkerStatus, is_error, kind_name, write_exit_info
from scx_pyland.policy import Policy
from scx_pyland.replay import TraceRecorder

# Records taken from the ring per cycle: enough for a burst of wake-ups, small
# enough that one cycle stays short.
BATCH = 512
# How long a stopping worker waits for the BPF side to take the decisions it sent.
DRAIN_TIMEOUT_S = 1.0
TICK_NS = 1_000_000_000
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
    # Debug only (fault tests): after this many seconds, stop dispatching so the
    # watchdog fires, or make the BPF side call scx_bpf_error().
    debug_stall_after: float | None = None
    debug_bpf_error_after: float | None = None


class Worker:
    """Attach, run the policy until told to stop or the kernel ends it, detach."""

    def __init__(self, policy: Policy, options: WorkerOptions) -> None:
        self.policy = policy
        self.options = options
        self.stop_requested = False
        self.nr_dispatched = 0          # decisions the policy made that reached the ring
        self.backlog: list[_bpf.DispatchedTask] = []   # decisions the ring had no room for
        self.started = 0.0
        self.recorder = TraceRecorder(options.record) if options.record else None
        self.stats: stats.StatsWriter | None = None
        self.last_line: stats.Snapshot | None = None
        self.next_line_ns = 0
        self.stats_fd: int | None = None     # stderr for --stats lines, never blocking
        self.exit_fields: dict[str, object] = {}    # how it ended, for the supervisor

    def request_stop(self, signum: int = 0, frame: object = None) -> None:
        self.stop_requested = True

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
        try:
            _bpf.check_environment()
            try:
                self.stats = stats.StatsWriter(self.options.stats_path)
            except OSError as err:
                log(f"warning: no statistics: cannot write {self.options.stats_path}: {err.strerror}")
            for warning in _bpf.guard_memory():
                log(f"warning: {warning}")
            with compaction_off_locked_pages(restore=self.options.restore_compaction):
                return self.attach_and_run()
        except (_bpf.Error, CannotStart) as err:
            log(f"error: {err}")
            self.exit_fields = {"error": str(err)}
            return WorkerStatus.CANNOT_START
        finally:
            if self.stats:
                self.stats.close()

    def attach_and_run(self) -> int:
        try:
            topo = topology.read_topology()
        except OSError as err:
            raise CannotStart(f"cannot read the CPU topology: {os_error_text(err)}") from None
        if self.options.stats_interval:
            self.stats_fd = open_stats_stderr()
        sched = _bpf.Scheduler(
            slice_ns=self.options.slice_ns,
            timeout_ms=self.options.timeout_ms,
            exit_dump_len=self.options.exit_dump_len,
            partial=self.options.partial,
            verbose=self.options.verbose,
            smt_enabled=topo.smt_enabled,
            domains=cache_domains(topo),
        )
        with sched:
            self.policy.use_scheduler(sched.select_cpus)
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
            self.started = time.monotonic()
            # Everything allocated so far lives as long as the worker: keep the
            # cyclic collector off it, and off the hot path altogether.
            gc.collect()
            gc.freeze()
            gc.disable()
            try:
                self.loop(sched)
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
                log(f"error: the {self.policy.name} policy raised an exception; "
                    f"the scheduler is detached\n{traceback.format_exc()}")
                self.exit_fields = {"error": traceback.format_exc(limit=0).strip()}
                return WorkerStatus.POLICY_FAILED
            if self.stop_requested:
                self.drain(sched)
            counters = sched.counters()
            info = sched.shutdown_and_report()
        gc.enable()
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
        """The hot path. Everything it touches is bound to locals first."""
        if getattr(self.policy, "runs_in_cxx", False):
            return self.loop_in_cxx(sched)
        policy = self.policy
        enqueue = policy.enqueue
        pick = self.with_debug_faults(policy.dispatch, sched)
        dequeue = sched.dequeue
        dispatch = sched.dispatch
        notify_complete = sched.notify_complete
        monotonic_ns = time.monotonic_ns
        record = self.recorder.add if self.recorder else None
        backlog = self.backlog
        next_tick = monotonic_ns() + TICK_NS
        try:
            exited = sched.exited()
            while not (exited or self.stop_requested):
                queued = dequeue(BATCH)
                if record:
                    record(queued)
                enqueue(queued)
                decisions = pick()
                if backlog:
                    decisions = backlog + decisions
                    backlog.clear()
                if decisions:
                    sent = dispatch(decisions)
                    self.nr_dispatched += sent
                    if sent < len(decisions):
                        backlog.extend(decisions[sent:])
                if monotonic_ns() >= next_tick:
                    next_tick += TICK_NS
                    policy.tick()
                    self.publish_stats(sched)
                exited = notify_complete(policy.nr_pending + len(backlog))
        finally:
            self.publish_stats(sched)

    def loop_in_cxx(self, sched: _bpf.Scheduler) -> None:
        """Benchmark only (--policy ceiling): the fifo cycle in C++; Python comes back
        every CEILING_CHUNK_NS for signals, the tick and the statistics."""
        config = self.policy.config
        next_tick = time.monotonic_ns() + TICK_NS
        try:
            while not self.stop_requested and not sched.exited():
                self.nr_dispatched += sched.run_fifo_ceiling(CEILING_CHUNK_NS, config.slice_ns,
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
                return []   # dropped: those tasks never run, and the watchdog fires
            return decisions
        return faulty

    def publish_stats(self, sched: _bpf.Scheduler) -> None:
        c = sched.counters()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        values = (
            c.nr_user_dispatches, c.nr_kernel_dispatches, c.nr_direct_dispatches, c.nr_rt_dispatches,
            c.nr_stalled_dispatches, c.nr_sched_congested,
            c.nr_cancel_dispatches, c.nr_bounce_dispatches, c.nr_failed_dispatches, c.nr_drain_errors,
            self.nr_dispatched, usage.ru_minflt + usage.ru_majflt,
            c.nr_queued, self.policy.nr_pending + len(self.backlog) + sched.ceiling_backlog,
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
        total = (c.nr_user_dispatches + c.nr_kernel_dispatches + c.nr_direct_dispatches + c.nr_rt_dispatches
                 + c.nr_stalled_dispatches + c.nr_sched_congested)

        def share(n: int) -> str:
            return f"{n} ({100.0 * n / total:.1f}%)" if total else f"{n}"

        return (f"exit: {reason}; kind {kind_name(info.kind)} 0x{info.kind:x}, code {info.exit_code}; "
                f"ran {seconds:.1f} s; policy {self.policy.name} dispatched {self.nr_dispatched}; "
                f"dispatches: user {share(c.nr_user_dispatches)}, kernel {share(c.nr_kernel_dispatches)}, "
                f"direct {share(c.nr_direct_dispatches)}, realtime {share(c.nr_rt_dispatches)}, "
                f"stalled {share(c.nr_stalled_dispatches)}, "
                f"congested {share(c.nr_sched_congested)}; cancelled {c.nr_cancel_dispatches}, "
                f"bounced {c.nr_bounce_dispatches}, failed {c.nr_failed_dispatches}"
                + (f", failed drains {c.nr_drain_errors}" if c.nr_drain_errors else ""))


class CannotStart(Exception):
    """The worker cannot start for a reason retrying will not fix; the message says why."""


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
def compaction_off_locked_pages(path: Path = compaction.SYSCTL, restore: bool = True) -> Iterator[None]:
    """Keep memory compaction off locked pages while attached, so it never takes the
    worker's mmap lock. The system's setting is restored afterwards by whoever
    outlives the worker: the supervisor, or with `restore` (--no-supervisor) the
    worker itself (scx_pyland.compaction says why)."""
    with compaction.restored(path if restore else None, warn=log):
        try:
            compaction.write(path, "0")
        except OSError as err:
            log(f"warning: cannot set {path} to 0: {err.strerror}")
        yield


def open_stats_stderr() -> int | None:
    """stderr may be a pipe that only another task drains (in a container, the
    shim): the --stats lines go through a descriptor that never blocks, and are
    dropped rather than ever waited for (scx_pyland.logs has the rules)."""
    try:
        return logs.open_stats_stderr()
    except OSError as err:
        log(f"warning: no --stats lines: cannot reopen stderr without blocking: {err.strerror}")
        return None


def log(message: str) -> None:
    """Messages outside the hot path only, to stderr, each in one write."""
    logs.log(f"scx_pyland: {message}")
