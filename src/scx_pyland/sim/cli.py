"""``scx_pyland sim``: simulate policies against a workload on a virtual clock.

Needs no root, no kernel and no sched_ext: the extension module is imported for its
record decoder and custody table only.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

from scx_pyland.policies import PolicyLoadError, load_policy_class
from scx_pyland.policy import PolicyConfig
from scx_pyland.replay import TraceError
from scx_pyland.sim.report import format_table, ns_text, wait_text
from scx_pyland.sim.simulation import PolicyStartError, SimOptions, simulate
from scx_pyland.sim.trace import TRACE_VERSION, trace_workload
from scx_pyland.sim.worker import TASK_NS_BY_POLICY, CostModel
from scx_pyland.sim.workload import WorkloadError, load_workload
from scx_pyland.sim.workloads import BUILTIN
from scx_pyland.worker import WorkerOptions

# The live scheduler's defaults, from their homes (slotted dataclasses: read from fields()).
LIVE_DEFAULTS = {f.name: f.default for cls in (PolicyConfig, WorkerOptions) for f in fields(cls)}

DESCRIPTION = f"""\
Simulate scheduling policies against a workload on N virtual CPUs with a virtual
clock, without root, a kernel or sched_ext, and compare them with a simple EEVDF-like
model. Each policy runs exactly as live (the same class, the records through the
extension's real decoder, the worker's custody table), driven by a model of the BPF
side (bpf/pyland.bpf.c: select_cpu's direct dispatch, kernel threads kept in the
kernel, the rings, RL_CPU_NEAR / RL_CPU_ANY / RL_PREEMPT, cancels, SHARED_DSQ, the
stall and --max-user-wait-ms custody rules, the worker preempting CPU hogs) and of
the worker, which is itself a task that needs a CPU and costs CPU time per cycle and
per task. Slices end at the next tick.

WORKLOAD is a built-in workload (--list describes them), a workload of your own as
FILE.py:NAME (a scx_pyland.sim.Workload or a function returning one: copy one from
scx_pyland/sim/workloads.py), or a trace recorded with scx_pyland --record (trace
format version {TRACE_VERSION}). Built in: {", ".join(BUILTIN)}.

It prints, per policy: wait times p50 / p99 / max (overall, per task group, and per
source: user, direct, kernel, realtime, stalled, custody, congested, the live
histograms' names), each group's CPU share against what its weights say, work done,
the worker's cycles and decisions, and the BPF side's counters.

Where the model departs from the kernel (docs/sim.md says more): EEVDF is a model
(one run queue, ideal balancing, no RUN_TO_PARITY), not the kernel's code; no
real-time tasks, cache domains, SMT or interrupts; a kick or an IPI takes no time
beyond the context switch it leads to; the worker is never preempted inside a
cycle; the default costs are those measured in an emulated guest (QEMU TCG), many
times a real machine's."""

EPILOG = """\
cost model defaults (docs/sim.md, "The cost model"; the emulated guest's): a worker
cycle 87 us beyond its context switch, a context switch 51 us; per task read
""" + ", ".join(f"{name} {ns // 1000} us" for name, ns in TASK_NS_BY_POLICY.items()) + """,
any other policy fifo's.

exit status: 0 simulated; 1 a policy could not be started; 2 bad arguments (an unknown
policy or workload, a workload file that does not load, a trace of another version)."""


def _positive(kind: type, text: str, noun: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text}")
    return value


def positive_int(text: str) -> int:
    return _positive(int, text, "a whole number")


def positive_float(text: str) -> float:
    return _positive(float, text, "a number")


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def stop_spec(text: str) -> tuple[int, int]:
    """AT:FOR in seconds -> (at_ns, for_ns)."""
    at, sep, length = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"not AT:FOR (seconds): {text!r}")
    return int(non_negative_float(at) * 1e9), int(positive_float(length) * 1e9)


class OneLineParser(argparse.ArgumentParser):
    """Bad input is one line (and status 2), without the usage text: --help has it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="scx_pyland sim", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", nargs="?", metavar="WORKLOAD",
                        help="a built-in workload, FILE.py:NAME, or a trace file")
    parser.add_argument("--policy", action="append", metavar="POLICY",
                        help="a policy to simulate, as scx_pyland --policy takes it (rustland, fifo, ceiling, "
                             "MODULE:CLASS, FILE.py:CLASS); repeat for several (default: rustland)")
    parser.add_argument("--no-baseline", action="store_true", help="leave out the EEVDF model's column")
    parser.add_argument("--list", action="store_true", help="list the built-in workloads and exit")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--duration-s", type=positive_float, metavar="SECS",
                        help="virtual time to simulate (default: the workload's, or the trace's span)")
    parser.add_argument("--cpus", type=positive_int, metavar="N",
                        help="virtual CPUs (default: the workload's, or as many as the trace names)")
    parser.add_argument("--hz", type=positive_int, default=250,
                        help="timer ticks per second: slices end at the next tick (default: %(default)s, "
                             "as Debian's kernels)")
    parser.add_argument("-s", "--slice-us", type=positive_int, default=LIVE_DEFAULTS["slice_ns"] // 1000,
                        metavar="US",
                        help="maximum time slice, as scx_pyland's (default: %(default)s)")
    parser.add_argument("-S", "--slice-us-min", type=positive_int, default=LIVE_DEFAULTS["slice_min_ns"] // 1000,
                        metavar="US",
                        help="minimum time slice, as scx_pyland's (default: %(default)s)")
    parser.add_argument("-l", "--percpu-local", action="store_true",
                        help="keep tasks on the CPU they last ran on, as scx_pyland's")
    parser.add_argument("--max-user-wait-ms", type=non_negative_float, default=LIVE_DEFAULTS["max_user_wait_ms"],
                        metavar="MS",
                        help="the BPF side serves a record unread this long itself, as scx_pyland's "
                             "(default: %(default)s; 0: never)")
    parser.add_argument("--rescue-after-ms", type=positive_float, default=LIVE_DEFAULTS["timeout_ms"] // 2,
                        metavar="MS",
                        help="the worker dispatches a task its policy held this long (default: %(default)s, "
                             "half the watchdog's timeout, as scx_pyland's)")
    parser.add_argument("--stop-worker", type=stop_spec, action="append", metavar="AT:FOR",
                        help="stop the worker (kill -STOP) AT seconds into the run for FOR seconds, as the VM "
                             "tests do; repeat for several")
    costs = parser.add_argument_group("cost model (CPU time on the simulated CPUs)")
    costs.add_argument("--cycle-us", type=non_negative_float, default=87.0, metavar="US",
                       help="each worker cycle, beyond its context switch (default: %(default)s)")
    costs.add_argument("--task-us", type=non_negative_float, metavar="US",
                       help="each task a worker cycle reads (default: by policy, see below)")
    costs.add_argument("--switch-us", type=non_negative_float, default=51.0, metavar="US",
                       help="each context switch, any task, under every model (default: %(default)s)")
    return parser


def list_workloads() -> str:
    lines = []
    for name, build in BUILTIN.items():
        w = build()
        doc = " ".join((w.description or "").split())
        lines.append(f"{name}: {len(w.tasks)} tasks on {w.nr_cpus} CPUs, {w.duration_ns / 1e9:g} s. {doc}")
    return "\n".join(lines)


def resolve_workload(spec: str, nr_cpus: int | None):
    """(the workload, the trace's summary or None). Raises WorkloadError or TraceError."""
    if spec in BUILTIN or (":" in spec and spec.rpartition(":")[0].endswith(".py")):
        workload = load_workload(spec)
        if nr_cpus:
            workload.nr_cpus = nr_cpus
            workload.check()
        return workload, None
    if Path(spec).is_file():
        return trace_workload(Path(spec), nr_cpus)
    raise WorkloadError(f"unknown workload {spec!r}: use one of {', '.join(BUILTIN)}, FILE.py:NAME, "
                        f"or a trace file recorded with scx_pyland --record")


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(list_workloads())
        return 0
    if not args.workload:
        parser.error("name a WORKLOAD (--list shows the built-in ones)")
    if args.slice_us_min > args.slice_us:
        parser.error(f"--slice-us-min ({args.slice_us_min}) is larger than --slice-us ({args.slice_us})")
    specs = args.policy or ["rustland"]
    classes = []
    for spec in specs:
        try:
            classes.append(load_policy_class(spec))
        except PolicyLoadError as err:
            parser.error(f"--policy: {err}")
    try:
        workload, trace = resolve_workload(args.workload, args.cpus)
    except (WorkloadError, TraceError) as err:
        parser.error(str(err))
    options = SimOptions(
        hz=args.hz, slice_ns=args.slice_us * 1000, slice_min_ns=args.slice_us_min * 1000,
        max_user_wait_ns=int(args.max_user_wait_ms * 1e6), rescue_after_ns=int(args.rescue_after_ms * 1e6),
        percpu_local=args.percpu_local,
        costs=CostModel(cycle_ns=int(args.cycle_us * 1000),
                        task_ns=None if args.task_us is None else int(args.task_us * 1000),
                        switch_ns=int(args.switch_us * 1000)),
        duration_ns=int(args.duration_s * 1e9) if args.duration_s else None,
        worker_stops=tuple(args.stop_worker or ()))
    results = []
    try:
        if not args.no_baseline:
            results.append(simulate(workload, None, options))
        for spec, cls in zip(specs, classes):
            result = simulate(workload, cls, options)
            result.policy = spec
            results.append(result)
    except PolicyStartError as err:
        print(f"scx_pyland sim: error: {err}", file=sys.stderr)
        return 1
    except WorkloadError as err:
        print(f"scx_pyland sim: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({
            "workload": {"name": workload.name, "description": " ".join((workload.description or "").split()),
                         "nr_cpus": workload.nr_cpus, "tasks": len(workload.tasks),
                         "groups": sorted({t.group for t in workload.tasks})},
            "options": {"hz": options.hz, "slice_ns": options.slice_ns, "slice_min_ns": options.slice_min_ns,
                        "max_user_wait_ns": options.max_user_wait_ns, "rescue_after_ns": options.rescue_after_ns,
                        "percpu_local": options.percpu_local, "duration_ns": results[0].duration_ns},
            "cost_model": {**asdict(options.costs),
                           "task_ns_by_policy": {spec: options.costs.task_cost(cls.name)
                                                 for spec, cls in zip(specs, classes)}},
            "trace": None if trace is None else asdict(trace),
            "results": [r.to_dict() for r in results],
        }, indent=2))
        return 0
    print(format_table(results))
    if trace is not None:
        print(f"recorded in the trace (the policy that ran then): {trace.tasks} tasks, {trace.records} records over "
              f"{ns_text(trace.span_ns)}; waits for the policy's decisions {wait_text(trace.user_wait)}, "
              f"until decided {wait_text(trace.user_part)}")
    return 0

