"""What a simulation found, per policy: wait times (p50 / p99 / max, overall, per task
group and per source, the sources of the live histograms), CPU shares against what
the weights say, work done, the worker's cycles and decisions, the BPF side's
counters; as a table for people or a dict (JSON) for scripts.

Percentiles are exact (nearest rank) over every wait, not log2 buckets as the live
histograms are. The share "by weight" is the weighted max-min fair share of a group of
tasks that never sleep (kernel load weights, one CPU at most each, among the CPUs
they may use), beside the tasks that do sleep, which are counted at the CPU time
they used, of the CPU time the workload got (the worker's is not the workload's):
what a perfectly fair scheduler would have given the busy ones. Groups
that sleep have none: their share is what they asked for.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from scx_pyland.sim.kernel import SOURCES
from scx_pyland.sim.machine import EXITED, Machine

# The sched_ext watchdog's default timeout: a wait this long ends the scheduler live.
WATCHDOG_NS = 5_000_000_000


@dataclass(slots=True)
class Durations:
    """Durations (ns: waits, runs): how many, the median, the 99th percentile, the
    longest, the mean; None when there were none."""

    count: int = 0
    p50_ns: int | None = None
    p99_ns: int | None = None
    max_ns: int | None = None
    mean_ns: int | None = None

    @classmethod
    def of(cls, waits: list[int]) -> Durations:
        if not waits:
            return cls()
        ordered = sorted(waits)
        n = len(ordered)
        return cls(count=n, p50_ns=ordered[math.ceil(0.50 * n) - 1], p99_ns=ordered[math.ceil(0.99 * n) - 1],
                   max_ns=ordered[-1], mean_ns=sum(ordered) // n)


@dataclass(slots=True)
class GroupResult:
    """One task group: its CPU time (ns) and share of the workload's, the share its
    weights say, its work (completed Runs), when its last task ended (None if one
    runs on), its waits, its time on a CPU per run (switched in to out), and how many
    runs ended with the task still runnable (a slice end, a preemption)."""

    tasks: int
    cpu_ns: int
    share: float
    weight_share: float | None      # None for a group whose tasks sleep: they take what they use
    ops: int
    ops_per_s: float
    finished_ns: int | None
    wait: Durations
    run: Durations
    preemptions: int


@dataclass(slots=True)
class Result:
    """One policy (or the baseline) on one workload."""

    policy: str
    model: str                      # "pyland" (the kernel-half model and the worker) or "eevdf"
    workload: str
    nr_cpus: int
    duration_ns: int
    wait: Durations
    by_source: dict[str, Durations]
    user_space: Durations         # of the policy's tasks: the part until the decision was carried out
    groups: dict[str, GroupResult]
    ops: int
    ops_per_s: float
    finished_ns: int | None
    idle_share: float               # of the machine's CPU time
    waits_unfinished: int           # still waiting at the end (counted with their wait so far)
    watchdog_waits: int             # waits of WATCHDOG_NS or more: live, the kernel ejects the scheduler
    worker: dict[str, object] | None = None
    dispatches: dict[str, int] | None = None
    kernel: dict[str, int] | None = None
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def fair_shares(demands: list[tuple[int, frozenset[int], float]], used: list[float] | None = None) -> list[float]:
    """Weighted max-min fair CPU shares (in CPUs) of tasks given as (load weight, the
    CPUs they may use, the most they want in CPUs): within each set of tasks whose CPU
    sets overlap, water-filling by weight, each capped by its want (at most 1), of
    those CPUs, or of the CPU time the set's tasks got (`used`, in CPUs) if less."""
    n = len(demands)
    shares = [0.0] * n
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i):
            if demands[i][1] & demands[j][1]:
                parent[root(i)] = root(j)
    components: dict[int, list[int]] = {}
    for i in range(n):
        components.setdefault(root(i), []).append(i)
    for members in components.values():
        capacity = float(len(frozenset().union(*(demands[i][1] for i in members))))
        if used is not None:
            capacity = min(capacity, sum(used[i] for i in members))
        active = [i for i in members if demands[i][2] > 0]
        while active and capacity > 1e-12:
            total = sum(demands[i][0] for i in active)
            capped = [i for i in active if capacity * demands[i][0] / total >= min(demands[i][2], 1.0)]
            if not capped:
                for i in active:
                    shares[i] = capacity * demands[i][0] / total
                break
            for i in capped:
                shares[i] = min(demands[i][2], 1.0)
                capacity -= shares[i]
            active = [i for i in active if i not in capped]
    return shares


def demand(task, start_ns: int, end_ns: int) -> float:
    """What a task asked for, in CPUs: a task that never slept asks for a whole CPU;
    one that did, for what it used (the CPU time it had over its life)."""
    if not task.sleeps:
        return 1.0
    alive = (task.exited_at if task.exited_at >= 0 else end_ns) - start_ns
    return min(task.cpu_ns / max(alive, 1), 1.0)


def build_result(policy: str, model: str, machine: Machine, duration_ns: int, kernel, worker,
                 wall_s: float) -> Result:
    """The Result of a finished simulation (kernel and worker None for the baseline)."""
    waits = machine.waits
    everything: list[int] = []
    by_group: dict[str, list[int]] = {}
    by_source: dict[str, list[int]] = {}
    for (group, source), values in waits.by_group_source.items():
        everything += values
        by_group.setdefault(group, []).extend(values)
        by_source.setdefault(source, []).extend(values)
    tasks = [t for t in machine.tasks if not t.is_worker]
    seconds = duration_ns / 1e9
    total_cpu = sum(t.cpu_ns for t in tasks) or 1
    want = fair_shares([(t.load, t.allowed, demand(t, machine.specs[t.pid].start_ns, duration_ns)) for t in tasks],
                       used=[t.cpu_ns / duration_ns for t in tasks])
    total_want = sum(want) or 1.0
    groups: dict[str, GroupResult] = {}
    for name in dict.fromkeys(t.group for t in tasks):
        members = [i for i, t in enumerate(tasks) if t.group == name]
        cpu_ns = sum(tasks[i].cpu_ns for i in members)
        ops = sum(tasks[i].ops for i in members)
        done = all(tasks[i].state == EXITED for i in members)
        groups[name] = GroupResult(
            tasks=len(members), cpu_ns=cpu_ns, share=round(cpu_ns / total_cpu, 4),
            weight_share=(round(sum(want[i] for i in members) / total_want, 4)
                          if not any(tasks[i].sleeps for i in members) else None), ops=ops,
            ops_per_s=round(ops / seconds, 1),
            finished_ns=max(tasks[i].exited_at for i in members) if done else None,
            wait=Durations.of(by_group.get(name, [])), run=Durations.of(machine.runs.get(name, [])),
            preemptions=sum(tasks[i].preemptions for i in members))
    ops = sum(t.ops for t in tasks)
    busy = sum(cpu.busy_ns for cpu in machine.cpus)
    result = Result(
        policy=policy, model=model, workload=machine.workload.name, nr_cpus=machine.nr_cpus,
        duration_ns=duration_ns, wait=Durations.of(everything),
        by_source={s: Durations.of(by_source.get(s, [])) for s in SOURCES} if kernel is not None else {},
        user_space=Durations.of([v for values in waits.user_part.values() for v in values]),
        groups=groups, ops=ops, ops_per_s=round(ops / seconds, 1),
        finished_ns=max(t.exited_at for t in tasks) if all(t.state == EXITED for t in tasks) else None,
        idle_share=round(1 - busy / (machine.nr_cpus * duration_ns), 4),
        waits_unfinished=waits.unfinished, watchdog_waits=sum(1 for v in everything if v >= WATCHDOG_NS),
        wall_s=round(wall_s, 3))
    if kernel is not None:
        c = worker.counters
        worker_task = kernel.worker_task
        result.worker = {"cycles": c.cycles, "tasks_read": c.tasks_read, "decisions": c.decisions,
                         "rescued": c.rescued, "invalid": worker.custody.nr_invalid,
                         "policy_errors": c.policy_errors, "first_error": c.first_error,
                         "policy_at_end": worker.policy.name, "cpu_ns": worker_task.cpu_ns,
                         "cpu_share": round(worker_task.cpu_ns / (machine.nr_cpus * duration_ns), 4)}
        k = kernel.counters
        result.dispatches = dict(k.dispatches)
        result.kernel = {"queued": k.queued, "cancelled": k.cancelled, "bounced": k.bounced, "failed": k.failed,
                         "worker_preempts": k.worker_preempts}
        if c.policy_errors:
            result.notes.append(f"{policy}: the policy raised {c.policy_errors} time(s); fifo took over, as live. "
                                f"First:\n{c.first_error}")
    if result.watchdog_waits:
        result.notes.append(f"{policy}: {result.watchdog_waits} wait(s) of {WATCHDOG_NS // 10**9} s or more: live, "
                            f"the kernel's watchdog would have ended the scheduler")
    return result


# -- the table -----------------------------------------------------------------------

def ns_text(ns: int | None) -> str:
    """A time for people, three significant digits: 850ns, 12.3us, 4.56ms, 1.20s;
    '-' for None."""
    if ns is None:
        return "-"
    for unit, scale in (("ns", 1), ("us", 1e3), ("ms", 1e6)):
        value = ns / scale
        if value < 999.5:
            return f"{value:.3g}{unit}" if value >= 1 or unit == "ns" else f"{value:.2f}{unit}"
    return f"{ns / 1e9:.3g}s"


def wait_text(w: Durations) -> str:
    if not w.count:
        return "-"
    return f"{ns_text(w.p50_ns)} / {ns_text(w.p99_ns)} / {ns_text(w.max_ns)}"


def format_table(results: list[Result]) -> str:
    """The results side by side, one column per policy (the baseline first)."""
    first = results[0]
    header = ["", *(f"{r.policy} (model)" if r.model == "eevdf" else r.policy for r in results)]
    rows: list[list[str]] = [header]

    def row(label: str, cells: list[str]) -> None:
        rows.append([label, *cells])

    row("wait p50 / p99 / max", [wait_text(r.wait) for r in results])
    for group in first.groups:
        row(f"  {group}", [wait_text(r.groups[group].wait) if group in r.groups else "-" for r in results])
    row("wait by source", ["" for _ in results])
    for source in SOURCES:
        if any(r.by_source.get(source) and r.by_source[source].count for r in results):
            row(f"  {source}", [f"{wait_text(r.by_source[source])} ({r.by_source[source].count})"
                                if r.by_source.get(source) and r.by_source[source].count else "-" for r in results])
    row("  user: until decided", [wait_text(r.user_space) if r.model == "pyland" else "-" for r in results])
    row("CPU share (by weight)", ["" for _ in results])
    for group in first.groups:
        row(f"  {group}", [f"{100 * g.share:.1f}%" + (f" ({100 * g.weight_share:.1f}%)" if g.weight_share is not None
                                                       else "")
                           for g in (r.groups[group] for r in results)])
    row("work (completed runs/s)", [f"{r.ops_per_s:,.0f}" for r in results])
    for group in first.groups:
        row(f"  {group}", [f"{r.groups[group].ops_per_s:,.0f}" for r in results])
    if any(r.finished_ns is not None for r in results):
        row("  all done at", [ns_text(r.finished_ns) if r.finished_ns is not None else "not done" for r in results])
    row("idle CPU", [f"{100 * r.idle_share:.1f}%" for r in results])
    row("worker cycles", [f"{r.worker['cycles']:,}" if r.worker else "-" for r in results])
    row("  tasks read / decisions", [f"{r.worker['tasks_read']:,} / {r.worker['decisions']:,}" if r.worker else "-"
                                     for r in results])
    row("  worker CPU", [f"{100 * r.worker['cpu_share']:.1f}%" if r.worker else "-" for r in results])
    row("  rescued / invalid / errors", [f"{r.worker['rescued']} / {r.worker['invalid']} / {r.worker['policy_errors']}"
                                         if r.worker else "-" for r in results])
    row("dispatches", ["" for _ in results])
    for source in SOURCES:
        if any(r.dispatches and r.dispatches[source] for r in results):
            row(f"  {source}", [f"{r.dispatches[source]:,}" if r.dispatches else "-" for r in results])
    row("  cancelled / bounced", [f"{r.kernel['cancelled']} / {r.kernel['bounced']}" if r.kernel else "-"
                                  for r in results])
    row("  CPUs preempted for the worker", [f"{r.kernel['worker_preempts']:,}" if r.kernel else "-" for r in results])
    row("simulated in", [f"{r.wall_s:.2f}s" for r in results])
    widths = [max(len(line[i]) for line in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line))
             .rstrip() for line in rows]
    title = (f"{first.workload}: {sum(g.tasks for g in first.groups.values())} tasks on {first.nr_cpus} CPUs, "
             f"{first.duration_ns / 1e9:g} s of virtual time")
    notes = [note for r in results for note in r.notes]
    return "\n".join([title, *lines, *notes])
