"""The scx_pyland command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from scx_pyland import __version__, compaction
from scx_pyland.exits import SupervisorStatus, WorkerStatus, write_exit_info
from scx_pyland.supervisor import STATUS_FILE

DESCRIPTION = """\
A Linux CPU scheduler whose policy is written in Python. It attaches a small
sched_ext BPF program that sends every task needing a CPU to this process, where a
Python policy decides order, time slice and CPU. It runs until SIGINT or SIGTERM,
then detaches and prints a one-line exit report. If it stalls, the kernel's
watchdog detaches it and every task returns to the default scheduler.

By default a small supervisor process runs the scheduler (the worker) and starts a
new one when the kernel unregistered it (stall, BPF error, CPU hotplug, sysrq-S) or
it died, after a growing delay, within a restart budget. SIGHUP (scx_pyland reload)
loads the policy again in the running worker, without detaching. Its restart
count, last exit and the policy in use are in --status-file.

A policy cannot take the machine down: an exception from it is logged and the fifo
policy takes over its tasks (--on-policy-error), and a task it holds too long is
dispatched by the worker itself (--rescue-after-ms).

Needs Linux 6.14 or later with sched_ext (CONFIG_SCHED_CLASS_EXT=y), and root with
CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)."""

EPILOG = """\
commands:
  scx_pyland status [--json]   is a worker of ours attached and scheduling? one line
                               (or JSON), exit 0 if so, 1 if not (see status --help)
  scx_pyland reload [--policy SPEC]
                               load the policy again (or SPEC) in the running worker,
                               without detaching; one line, exit 0 if it switched,
                               1 if it was refused (see reload --help)
  scx_pyland sim WORKLOAD [--policy SPEC ...]
                               simulate policies on a virtual clock against a workload
                               or a recorded trace; no root, no sched_ext (see sim --help)

exit status: 0 stopped on request; 2 bad arguments (a --policy that cannot be
imported too); 69 cannot start (no sched_ext, not privileged, another scheduler
attached, verifier rejection, a kernel too old, a policy whose constructor raises),
not retried; 69 also when --metrics cannot listen on ADDR:PORT (in use, no such
address);
71 the supervisor gave up: more than --max-restarts restarts within --restart-window
(the message names the last exit); 72 sysrq-S with --sysrq-final.
With --no-supervisor also: 70 the policy raised an exception (with
--on-policy-error exit, or the fifo fallback itself raised); 73 it could not start
this time (out of memory, a ring or a BPF program run failed, the kernel refused
the attach for now), which the supervisor retries; 74 reading or writing the rings
to the BPF side failed; 75 the kernel unregistered the scheduler (stall, error,
sysrq-S, CPU hotplug, or refused it as it attached: no deadline bandwidth left for
its ext_server)."""


def _number(text: str, convert: type, noun: str):
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text}")
    return value


def metrics_address(text: str) -> tuple[str, int]:
    from scx_pyland.metrics import AddressError, parse_address
    try:
        return parse_address(text)
    except AddressError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def timeout_ms(text: str) -> int:
    value = positive_int(text)
    if value > 30_000:
        raise argparse.ArgumentTypeError(f"the kernel caps the watchdog at 30000 ms: {text}")
    return value


def on_policy_error(text: str) -> str:
    if text not in ("fallback", "exit"):
        raise argparse.ArgumentTypeError(f"must be fallback or exit: {text!r}")
    return text


def max_rescue_after_ms(timeout_ms: int) -> int:
    """The largest --rescue-after-ms a watchdog of `timeout_ms` allows (ms): a held task
    is rescued at most 1.25 times the bound after it arrived (worker.RESCUE_PERIODS),
    plus a cycle; 70% of the timeout leaves the watchdog an eighth of it."""
    return timeout_ms * 7 // 10


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scx_pyland", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="rustland", metavar="POLICY",
                        help="the scheduling policy: rustland (default: deadline from vruntime and "
                             "CPU use), fifo (arrival order), ceiling (benchmark only: fifo's "
                             "cycle in C++, no Python in the loop), or a policy of your own as "
                             "MODULE:CLASS or FILE.py:CLASS (a subclass of scx_pyland.policy.Policy)")
    parser.add_argument("--watch", action="store_true",
                        help="reload the policy when its file changes (FILE.py:CLASS, or the module "
                             "of MODULE:CLASS), checked once a second, without detaching")
    parser.add_argument("--on-policy-error", type=on_policy_error, default="fallback",
                        metavar="fallback|exit",
                        help="when the policy raises: log it and let the fifo policy take over its "
                             "tasks, staying attached (fallback, the default), or detach and exit 70 "
                             "(exit)")
    parser.add_argument("--rescue-after-ms", type=positive_int, metavar="MS",
                        help="the worker dispatches a task the policy has held this long itself, "
                             "give or take a quarter (default: half of --timeout-ms; at most 70%% of it)")
    parser.add_argument("--max-user-wait-ms", type=non_negative_int, default=50, metavar="MS",
                        help="a task whose record has waited this long for the worker to read it is "
                             "dispatched by the BPF side itself, and new tasks skip the worker until it "
                             "catches up: an overloaded worker degrades into in-kernel scheduling "
                             "(default: %(default)s; 0: never). Tasks the policy holds are not affected")
    parser.add_argument("-s", "--slice-us", type=positive_int, default=20_000, metavar="US",
                        help="maximum time slice in microseconds (default: %(default)s)")
    parser.add_argument("-S", "--slice-us-min", type=positive_int, default=1_000, metavar="US",
                        help="minimum time slice in microseconds (default: %(default)s)")
    parser.add_argument("-l", "--percpu-local", action="store_true",
                        help="keep tasks on the CPU they last ran on instead of any free CPU")
    parser.add_argument("-p", "--partial", action="store_true",
                        help="schedule only tasks whose policy is SCHED_EXT; leave the rest "
                             "to the default scheduler")
    parser.add_argument("--timeout-ms", type=timeout_ms, default=5000, metavar="MS",
                        help="the sched_ext watchdog: a task left waiting this long makes the "
                             "kernel detach the scheduler (default: %(default)s, at most 30000)")
    parser.add_argument("--exit-dump-len", type=non_negative_int, default=0, metavar="BYTES",
                        help="size of the kernel's debug dump on an error exit "
                             "(default: 0, the kernel's default)")
    parser.add_argument("--stats", type=positive_float, default=0.0, metavar="SECS",
                        help="print a statistics line every SECS seconds while scheduling "
                             "(see --help-stats)")
    parser.add_argument("--monitor", type=positive_float, default=0.0, metavar="SECS",
                        help="do not schedule: print the statistics of the running scx_pyland "
                             "every SECS seconds")
    parser.add_argument("--help-stats", action="store_true",
                        help="describe every statistics field and exit")
    parser.add_argument("--record", type=Path, metavar="FILE",
                        help="record every queued task the worker reads into FILE (a trace "
                             "to replay into a policy without a kernel; see scx_pyland.replay)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print libbpf's debug output and the exit dump")
    parser.add_argument("-V", "--version", action="version", version=f"scx_pyland {__version__}")

    sup = parser.add_argument_group("supervisor")
    sup.add_argument("--no-supervisor", action="store_true",
                     help="run the worker alone: no restarts; its exit status is the worker's")
    sup.add_argument("--sysrq-final", action="store_true",
                     help="make sysrq-S final: log it and exit 72 instead of re-attaching "
                          "(default: restart, logged as an operator reset)")
    sup.add_argument("--restart-delay", type=positive_float, default=0.25, metavar="SECS",
                     help="delay before the first restart; it doubles with each failure "
                          "in a row (default: %(default)s)")
    sup.add_argument("--restart-delay-max", type=positive_float, default=30.0, metavar="SECS",
                     help="the longest delay between restarts (default: %(default)s)")
    sup.add_argument("--stable-after", type=positive_float, default=60.0, metavar="SECS",
                     help="a worker that ran this long resets the delay (default: %(default)s)")
    sup.add_argument("--max-restarts", type=positive_int, default=10, metavar="N",
                     help="restarts allowed within --restart-window; one more failure and "
                          "the supervisor gives up with status 71 (default: %(default)s)")
    sup.add_argument("--restart-window", type=positive_float, default=300.0, metavar="SECS",
                     help="the window of --max-restarts (default: %(default)s)")
    sup.add_argument("--frozen-grace", type=positive_float, default=10.0, metavar="SECS",
                     help="kill a worker that is still alive this long after the kernel "
                          "dropped the scheduler (default: %(default)s)")
    sup.add_argument("--metrics", type=metrics_address, metavar="ADDR:PORT",
                     help="serve Prometheus metrics at http://ADDR:PORT/metrics from the "
                          "supervisor (off by default; :PORT means every IPv4 address, [::]:PORT "
                          "every IPv6 one, [::1]:PORT one IPv6 address); a value that is not ADDR:PORT exits 2, an address "
                          "that cannot be bound (port in use) exits 69")
    sup.add_argument("--status-file", type=Path, default=STATUS_FILE, metavar="FILE",
                     help="root-only JSON file with the restart count and the last exit, "
                          "rewritten on every change (default: %(default)s)")
    # Internal: how the supervisor starts the worker.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--exit-info", metavar="FILE", help=argparse.SUPPRESS)

    debug = parser.add_argument_group(
        "debug options", "fault injection for tests: never use these in production")
    debug.add_argument("--debug-stall-after", type=positive_float, metavar="SECS",
                       help="DEBUG: after SECS seconds the worker stops dispatching and the "
                            "BPF side's custody serves nothing, so the kernel's watchdog ejects "
                            "the scheduler (runnable task stall)")
    debug.add_argument("--debug-bpf-error-after", type=positive_float, metavar="SECS",
                       help="DEBUG: after SECS seconds the BPF side calls scx_bpf_error() on "
                            "its next dispatch (exit kind ERROR_BPF)")
    return parser


def supervise(args: argparse.Namespace, argv: list[str]) -> int:
    """Run the worker (this command with --worker) under the supervisor."""
    from scx_pyland.supervisor import Supervisor, SupervisorOptions, worker_command

    options = SupervisorOptions(
        backoff_initial=args.restart_delay, backoff_max=args.restart_delay_max,
        stable_after=args.stable_after, max_restarts=args.max_restarts,
        restart_window=args.restart_window, sysrq_final=args.sysrq_final,
        frozen_grace=args.frozen_grace, status_file=args.status_file, policy=args.policy)
    # The worker's memory all goes through glibc malloc (see below), set from the start.
    env = dict(os.environ, PYTHONMALLOC="malloc")
    supervisor = Supervisor(worker_command(argv), options, env)
    if args.metrics:
        host, port = args.metrics
        try:
            from scx_pyland import metrics
            supervisor.metrics = metrics.Collector(lambda: supervisor.status)
            metrics.serve(host, port, supervisor.metrics)
        except ImportError as err:
            print(f"scx_pyland: error: --metrics needs the prometheus-client package: {err}",
                  file=sys.stderr)
            return SupervisorStatus.CANNOT_START
        except OSError as err:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            print(f"scx_pyland: error: --metrics: cannot listen on {where}: "
                  f"{err.strerror or err}", file=sys.stderr)
            return SupervisorStatus.CANNOT_START
    return supervisor.run()


def worker_refused(args: argparse.Namespace, message: str, status: int) -> int:
    """A worker that cannot go on with its arguments: one line on stderr, the same
    in the exit info for the supervisor (--exit-info); returns `status`."""
    print(f"scx_pyland: error: {message}", file=sys.stderr, flush=True)
    if args.exit_info:
        try:
            write_exit_info(args.exit_info, status=int(status), error=message)
        except OSError:
            pass    # the supervisor then says "see its message above"
    return status


def monitor(interval: float, status_file: Path = STATUS_FILE) -> int:
    """Print the running scheduler's statistics until it stops or we are interrupted.
    Across a worker restart (the supervisor's status file says so) it keeps going and
    shows the restart count and the last exit."""
    from scx_pyland import reload, stats
    from scx_pyland.status import read_supervisor_status

    previous = None
    restarts_seen = None
    policy_seen = None
    try:
        while True:
            supervisor = read_supervisor_status(status_file)
            try:
                snapshot = stats.read_snapshot()
            except stats.NoScheduler as err:
                if supervisor.get("state") in ("starting", "running", "restarting"):
                    print(f"scx_pyland: waiting for the worker ({supervisor['state']}, "
                          f"restarts {supervisor.get('restarts', 0)})", file=sys.stderr, flush=True)
                    previous = None
                    time.sleep(interval)
                    continue
                print(f"scx_pyland: {err}", file=sys.stderr)
                return 1
            if supervisor and supervisor.get("restarts") != restarts_seen:
                restarts_seen = supervisor.get("restarts")
                last = (supervisor.get("last_exit") or {}).get("reason", "none")
                print(f"supervisor: restarts {restarts_seen}, last exit: {last}", flush=True)
            state = reload.read_state()
            if state.get("worker_pid") == snapshot.pid:
                policy = (state.get("policy"), state.get("swaps"), state.get("last_swap"))
                if policy != policy_seen:
                    policy_seen = policy
                    print(f"policy: {state.get('policy')}, swaps {state.get('swaps', 0)}, policy errors "
                          f"{state.get('policy_errors', 0)}, last swap: {reload.describe_swap(state.get('last_swap'))}",
                          flush=True)
            if previous is not None and previous.pid == snapshot.pid:
                print(stats.format_line(previous, snapshot), flush=True)
            previous = snapshot
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def build_status_parser() -> argparse.ArgumentParser:
    from scx_pyland.status import DEFAULT_MAX_AGE_S
    parser = argparse.ArgumentParser(
        prog="scx_pyland status", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Say whether a worker of scx_pyland is attached and scheduling: one line "
                    "with the sched_ext state, the ops name, the policy, the worker's pid, the "
                    "restart count and the last exit. It reads the supervisor's status file, "
                    "/sys/kernel/sched_ext and the worker's statistics, never the worker's /proc "
                    "files; the liveness and readiness check of a deployment.",
        epilog="exit status: 0 a worker of ours is attached and scheduling; 1 it is not (no "
               "sched_ext, no scx_pyland running, the supervisor starting or restarting the "
               "worker or ended, another scheduler attached, statistics older than --max-age); "
               "2 bad arguments.")
    parser.add_argument("--json", action="store_true", help="print the whole status as JSON")
    parser.add_argument("--status-file", type=Path, default=STATUS_FILE, metavar="FILE",
                        help="the supervisor's status file (default: %(default)s)")
    parser.add_argument("--max-age", type=positive_float, default=DEFAULT_MAX_AGE_S, metavar="SECS",
                        help="statistics older than this mean the worker is not scheduling "
                             "(default: %(default)s)")
    return parser


def status_command(argv: list[str]) -> int:
    from scx_pyland.status import read_status
    args = build_status_parser().parse_args(argv)
    status = read_status(args.status_file, max_age=args.max_age)
    print(status.to_json() if args.json else status.line(), flush=True)
    return status.exit_status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # One subcommand; everything else is the scheduler's flags, as always.
    if argv[:1] == ["status"]:
        return status_command(argv[1:])
    if argv[:1] == ["reload"]:
        from scx_pyland.reload import reload_command
        return reload_command(argv[1:])
    if argv[:1] == ["sim"]:
        from scx_pyland.sim.cli import main as sim_main
        return sim_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.help_stats:
        from scx_pyland import stats
        print(stats.help_text())
        return 0
    if args.monitor:
        return monitor(args.monitor, args.status_file)
    if args.slice_us_min > args.slice_us:
        parser.error(f"--slice-us-min ({args.slice_us_min}) is larger than --slice-us ({args.slice_us})")
    if args.metrics and args.no_supervisor:
        parser.error("--metrics is served by the supervisor: it cannot go with --no-supervisor")
    if args.rescue_after_ms and args.rescue_after_ms > max_rescue_after_ms(args.timeout_ms):
        parser.error(f"--rescue-after-ms ({args.rescue_after_ms}) must be at most "
                     f"{max_rescue_after_ms(args.timeout_ms)} with --timeout-ms {args.timeout_ms}: a task "
                     f"is rescued up to a quarter later than it says, and the watchdog must not act first")
    if args.record and not args.record.parent.is_dir():
        parser.error(f"--record: no directory {str(args.record.parent)!r}")
    if not (args.worker or args.no_supervisor):
        return supervise(args, argv)
    # SIGHUP means "reload" to a worker, which it handles once attached; until then
    # it must not end it (the default action).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The worker. The policy is loaded here, not in the supervisor: the supervisor
    # never imports the policies (they import scx_pyland._bpf).
    from scx_pyland.policies import PolicyLoadError, load_policy_class
    try:
        policy_class = load_policy_class(args.policy)
    except PolicyLoadError as err:
        # A bad argument, final under the supervisor too: one line, not the usage.
        return worker_refused(args, f"--policy: {err}", WorkerStatus.USAGE)

    # All Python memory through glibc malloc, which the worker tells never to trim
    # or mmap (pymalloc's arenas come and go with mmap/munmap, which take the mmap
    # lock). It must be set before the interpreter starts: re-execute once.
    if os.environ.get("PYTHONMALLOC") != "malloc":
        env = dict(os.environ, PYTHONMALLOC="malloc")
        os.execve(sys.executable, [sys.executable, "-m", "scx_pyland", *argv], env)

    from scx_pyland.policy import PolicyConfig
    from scx_pyland.worker import Worker, WorkerOptions

    config = PolicyConfig(slice_ns=args.slice_us * 1000, slice_min_ns=args.slice_us_min * 1000,
                          nr_cpus=os.sysconf("SC_NPROCESSORS_ONLN"), percpu_local=args.percpu_local)
    try:
        policy = policy_class(config)
    except Exception as err:
        # A policy that cannot even be built will not be by a restart either: final
        # (a swap to one, later, is refused and the policy in use goes on).
        return worker_refused(args, f"the {args.policy} policy cannot start: its constructor raised "
                                    f"{type(err).__name__}: {err}", WorkerStatus.CANNOT_START)
    options = WorkerOptions(slice_ns=args.slice_us * 1000, timeout_ms=args.timeout_ms,
                            exit_dump_len=args.exit_dump_len, partial=args.partial,
                            verbose=args.verbose, stats_interval=args.stats, record=args.record,
                            exit_info=args.exit_info, restore_compaction=not args.worker,
                            compaction_original=None if args.worker else compaction.ORIGINAL,
                            debug_stall_after=args.debug_stall_after,
                            debug_bpf_error_after=args.debug_bpf_error_after,
                            policy_spec=args.policy, watch=args.watch,
                            on_policy_error=args.on_policy_error, rescue_after_ms=args.rescue_after_ms,
                            max_user_wait_ms=args.max_user_wait_ms)
    return Worker(policy, options).run()
