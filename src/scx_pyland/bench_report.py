"""The benchmark report: results.json of scx_pyland.bench_workloads -> a markdown
page with the tables, a PNG chart, and the raw results beside them. Run by
scripts/bench; matplotlib is needed for the chart only.

Per workload metric and scheduler: the median over the rounds that succeeded, the
spread (min-max), and the ratio to EEVDF's median, oriented so that above 1 is
better than EEVDF whatever the metric's direction; and for each pyland policy the
same ratio to scx_userland's median, the kernel's user-space scheduler in C. Failed
runs are counted and listed, never averaged in.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

from scx_pyland.bench_workloads import PEER, WORKLOADS, Metric, hot_path_load, pyland

BASELINE = "EEVDF"
CEILING = "ceiling"


def is_pyland(scheduler: str) -> bool:
    return scheduler.startswith("pyland ")


@dataclass
class Cell:
    values: list[float]
    failed: int

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def cells(runs: list[dict]) -> dict[tuple[str, str, str], Cell]:
    """(workload, metric, scheduler) -> the values of the runs that succeeded."""
    out: dict[tuple[str, str, str], Cell] = {}
    for w in WORKLOADS:
        for m in w.metrics:
            for r in runs:
                if r["workload"] != w.name:
                    continue
                cell = out.setdefault((w.name, m.name, r["scheduler"]), Cell([], 0))
                if r["ok"]:
                    cell.values.append(r["metrics"][m.name])
                else:
                    cell.failed += 1
    return out


def schedulers_in(runs: list[dict]) -> list[str]:
    seen: list[str] = []
    for r in runs:
        if r["scheduler"] not in seen:
            seen.append(r["scheduler"])
    return seen


def goodness(metric: Metric, value: float, baseline: float) -> float:
    """value against the baseline, above 1 when better, whatever the metric's direction."""
    if value <= 0 or baseline <= 0:
        return math.nan
    return value / baseline if metric.higher_is_better else baseline / value


def fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def workload_table(runs: list[dict]) -> tuple[list[str], dict[str, list[float]]]:
    """Markdown lines, and per scheduler the ratios to EEVDF (for the headline)."""
    table = cells(runs)
    scheds = schedulers_in(runs)
    ratios: dict[str, list[float]] = {s: [] for s in scheds}
    lines = ["| workload | metric | " + " | ".join(scheds) + " |",
             "|---|---|" + "---|" * len(scheds)]
    for w in WORKLOADS:
        for m in w.metrics:
            base = table.get((w.name, m.name, BASELINE))
            row = [f"`{w.name}`", f"{m.label} ({m.unit}, {'higher' if m.higher_is_better else 'lower'} is better)"]
            for s in scheds:
                cell = table.get((w.name, m.name, s))
                if cell is None:
                    row.append("not run")
                    continue
                if not cell.values:
                    row.append(f"**failed** ({cell.failed} of {cell.failed})")
                    continue
                text = f"{fmt(cell.median)} [{fmt(min(cell.values))}–{fmt(max(cell.values))}]"
                if base and base.values and s != BASELINE:
                    ratio = goodness(m, cell.median, base.median)
                    ratios[s].append(ratio)
                    text += f" ×{ratio:.2f}"
                if cell.failed:
                    text += f" (**{cell.failed} failed**)"
                row.append(text)
            lines.append("| " + " | ".join(row) + " |")
    return lines, ratios


def peer_table(runs: list[dict]) -> tuple[list[str], dict[str, list[float]]]:
    """Markdown lines comparing each pyland policy with scx_userland (none if it did not
    run), and per pyland policy the ratios (for the headline)."""
    table = cells(runs)
    scheds = [s for s in schedulers_in(runs) if is_pyland(s)]
    if PEER not in schedulers_in(runs) or not scheds:
        return [], {}
    ratios: dict[str, list[float]] = {s: [] for s in scheds}
    lines = [f"| workload | metric | {PEER} | " + " | ".join(scheds) + " |",
             "|---|---|---|" + "---|" * len(scheds)]
    for w in WORKLOADS:
        for m in w.metrics:
            peer = table.get((w.name, m.name, PEER))
            if peer is None or not peer.values:
                peer_text = "not run" if peer is None else "**failed**"
            else:
                peer_text = fmt(peer.median)
            row = [f"`{w.name}`", m.label, peer_text]
            for s in scheds:
                cell = table.get((w.name, m.name, s))
                if cell is not None and not cell.values:
                    row.append("**failed**")
                    continue
                if not (peer and peer.values and cell):
                    row.append("")
                    continue
                ratio = goodness(m, cell.median, peer.median)
                ratios[s].append(ratio)
                row.append(f"{fmt(cell.median)} ×{ratio:.2f}")
            lines.append("| " + " | ".join(row) + " |")
    return lines, ratios


def geomean(values: list[float]) -> float:
    values = [v for v in values if v > 0 and not math.isnan(v)]
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else math.nan


def hot_path_summary(hot: list[dict]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for r in hot:
        entry = out.setdefault(r["mode"], {"rate": [], "cost": [], "cpu": [], "user": [], "failed": []})
        if r["ok"]:
            entry["rate"].append(r["dispatches_per_s"])
            entry["cost"].append(r["worker_cpu_ns_per_dispatch"] / 1000)
            entry["cpu"].append(r["worker_cpu_share"] * 100)
            entry["user"].append(r["user_share"] * 100)
        else:
            entry["failed"].append(r["error"])
    return out


def hot_path_label(mode: str) -> str:
    if mode == CEILING:
        return "C++ ceiling (no Python)"
    if mode == PEER:
        return f"{PEER} (C)"
    return f"Python {mode}"


def hot_path_table(hot: list[dict]) -> tuple[list[str], dict[str, tuple[float, float]]]:
    """Markdown lines, and per mode but the ceiling its cost per dispatch / the ceiling's
    and / scx_userland's (NaN where either is missing)."""
    summary = hot_path_summary(hot)

    def median_cost(mode: str) -> float:
        costs = summary.get(mode, {}).get("cost") or []
        return statistics.median(costs) if costs else math.nan

    ceiling_cost, peer_cost = median_cost(CEILING), median_cost(PEER)
    lines = ["| scheduler | user-space dispatches/s | CPU per dispatch (µs) | cost / C++ ceiling "
             f"| cost / {PEER} | CPU use | user-space share of dispatches | failed |",
             "|---|---|---|---|---|---|---|---|"]
    ratios = {}
    for mode, e in summary.items():
        if not e["cost"]:
            lines.append(f"| {hot_path_label(mode)} | | | | | | | {len(e['failed'])} |")
            continue
        cost = statistics.median(e["cost"])
        to_ceiling, to_peer = cost / ceiling_cost, cost / peer_cost
        if mode != CEILING:
            ratios[mode] = (to_ceiling, to_peer)
        lines.append(f"| {hot_path_label(mode)} "
                     f"| {fmt(statistics.median(e['rate']))} [{fmt(min(e['rate']))}–{fmt(max(e['rate']))}] "
                     f"| {cost:.1f} [{min(e['cost']):.1f}–{max(e['cost']):.1f}] "
                     f"| {times(to_ceiling)} | {times(to_peer)} "
                     f"| {statistics.median(e['cpu']):.0f}% | {statistics.median(e['user']):.0f}% "
                     f"| {len(e['failed'])} |")
    return lines, ratios


def times(ratio: float) -> str:
    return "" if math.isnan(ratio) else f"×{ratio:.1f}"


def chart(runs: list[dict], hot: list[dict], path: Path, title: str) -> None:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("bench_report: no matplotlib for the chart: run scripts/setup "
                         "(the toolbox's python3-matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = cells(runs)
    scheds = [s for s in schedulers_in(runs) if s != BASELINE]
    labels, series = [], {s: ([], [], []) for s in scheds}
    for w in WORKLOADS:
        for m in w.metrics:
            base = table.get((w.name, m.name, BASELINE))
            if not base or not base.values:
                continue
            labels.append(f"{w.short}\n{m.label}" if len(w.metrics) > 1 else w.short)
            for s in scheds:
                cell = table.get((w.name, m.name, s))
                mid, lo, hi = series[s]
                if cell and cell.values:
                    r = [goodness(m, v, base.median) for v in cell.values]
                    mid.append(goodness(m, cell.median, base.median))
                    lo.append(mid[-1] - min(r))
                    hi.append(max(r) - mid[-1])
                else:
                    mid.append(0.0)
                    lo.append(0.0)
                    hi.append(0.0)
    summary = hot_path_summary(hot)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 10), gridspec_kw={"height_ratios": [3, 1.2]})
    width = 0.8 / max(len(scheds), 1)
    for i, s in enumerate(scheds):
        mid, lo, hi = series[s]
        xs = [k + (i - (len(scheds) - 1) / 2) * width for k in range(len(labels))]
        ax.bar(xs, mid, width, yerr=[lo, hi], capsize=2, label=s, color=f"C{i}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"relative to {BASELINE} (above 1 = better)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    modes = [m for m in summary if summary[m]["cost"]]
    costs = [statistics.median(summary[m]["cost"]) for m in modes]
    # Each scheduler in the colour of its bars above; the ceiling, which has none, in grey.
    colors = {s: f"C{i}" for i, s in enumerate(scheds)}
    ax2.barh(modes, costs, color=[colors.get(m if m == PEER else pyland(m).name, "tab:gray") for m in modes])
    for y, c in enumerate(costs):
        ax2.text(c, y, f" {c:.1f} µs", va="center", fontsize=8)
    ax2.set_xlim(0, max(costs, default=1) * 1.2)
    ax2.set_xlabel("scheduler CPU time per user-space dispatch under overload (µs, median; lower is better)")
    ax2.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(data: dict, policy_bench: str, name: str) -> str:
    meta, runs, hot = data["meta"], data["runs"], data["hot_path"]
    lines, ratios = workload_table(runs)
    peer_lines, peer_ratios = peer_table(runs)
    hot_lines, hot_ratios = hot_path_table(hot)
    failed = [r for r in runs + hot if not r["ok"]]
    rounds_done = max((r["round"] for r in runs), default=0)
    out = [
        "# Benchmarks",
        "",
        f"Made by `{meta.get('command') or 'scripts/bench'}` at commit {meta.get('commit') or 'unknown'} "
        f"on {meta['date']}: kernel {meta['kernel']}, "
        f"{meta['cpus']} guest CPUs (QEMU software emulation, no KVM, on a shared "
        f"{platform.machine()} host), {rounds_done} interleaved rounds "
        f"({meta['mode']} mode), Python {meta.get('python', '?')} in the guest. The raw results are in "
        f"[`{name}.json`]({name}.json).",
        "",
        "Each round runs every workload under each scheduler in turn ("
        + ", ".join(schedulers_in(runs)) + "), attaching the scheduler once per round. "
        f"{PEER} is the kernel's own user-space scheduler (`tools/sched_ext/{PEER}`, in C): "
        "its BPF side hands every task that may run on any CPU to a process that orders "
        "them by vruntime, the others it dispatches itself. "
        "A cell is the median over the rounds, [min–max], and ×ratio to EEVDF's median, "
        "oriented so that above 1 is better than EEVDF. A run in which the scheduler "
        "detached, or the workload failed or overran its limit, is counted as failed and "
        "left out of the median.",
        "",
        "Absolute numbers are those of an emulated guest (about 18 times slower than the "
        "host); compare the ratios."
        + (" **Smoke mode**: one round of smaller sizes than the workload names say; "
           "a check that everything runs, not a measurement." if meta["mode"] == "smoke" else ""),
        "",
        "## Headline",
        "",
    ]
    for s, r in ratios.items():
        if s != BASELINE and r:
            out.append(f"- **{s}**: geometric mean of the ratios to EEVDF ×{geomean(r):.2f} "
                       f"(over {len(r)} metrics; best ×{max(r):.2f}, worst ×{min(r):.2f})")
    for s, r in peer_ratios.items():
        if r:
            out.append(f"- **{s} against {PEER}**: geometric mean of the ratios ×{geomean(r):.2f} "
                       f"(over {len(r)} metrics; best ×{max(r):.2f}, worst ×{min(r):.2f})")
    for mode, (to_ceiling, to_peer) in hot_ratios.items():
        against = [f"×{r:.1f} the C++ ceiling's" for r in (to_ceiling,) if not math.isnan(r)]
        if mode != PEER:
            against += [f"×{r:.1f} {PEER}'s" for r in (to_peer,) if not math.isnan(r)]
        if against:
            out.append(f"- **{hot_path_label(mode)}** spends " + " and ".join(against)
                       + " CPU time per user-space dispatch")
    out += ["", f"![chart]({name}.png)", "", "## Workloads", ""] + lines
    if peer_lines:
        out += ["", f"## Against {PEER}", "",
                f"Each pyland policy's median and its ratio to {PEER}'s median, oriented so that "
                f"above 1 is better than {PEER} (the medians and spreads are in the table above).",
                ""] + peer_lines
    out += ["", "## The hot path: Python against its C++ ceiling and scx_userland", "",
            "Each user-space scheduler under overload (`" + " ".join(hot_path_load(meta["mode"] == "smoke"))
            + "`): user-space dispatches per second, and the scheduler process's CPU time "
            "(the sum of its threads' `/proc/PID/task/TID/schedstat`) divided by them. "
            "For scx_pyland the count is the BPF side's, from the worker's stats file. "
            "`ceiling` is the same fifo cycle run by the extension in C++ (`--policy ceiling`), "
            f"same BPF object and rings. For {PEER} the count is the `disp` line its process "
            "prints every second (its loop's dispatches to the BPF side's queue), read from its "
            "output; its CPU time includes the thread that prints them. How the Python "
            "path got here, measured before and after each change: [hot-path.md](hot-path.md).", ""] + hot_lines
    if policy_bench.strip():
        out += ["", "## The policy alone, on the host (no kernel)", "",
                "`scripts/bench-policy`: decode → enqueue → dispatch → encode, per task.", "",
                policy_bench.strip()]
    if failed:
        out += ["", "## Failed runs", ""]
        for r in failed:
            what = r.get("workload") or f"hot path {r.get('mode')}"
            out.append(f"- round {r['round']}, {r.get('scheduler', 'scx_pyland')}, {what}: {r['error']}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--policy-bench", type=Path, help="the host policy benchmark's markdown table")
    parser.add_argument("--out", type=Path, required=True, help="directory for NAME.md, NAME.png, NAME.json")
    parser.add_argument("--name", default="benchmarks")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.results.read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"bench_report: cannot read the results {args.results}: {err}") from None
    policy_bench = args.policy_bench.read_text() if args.policy_bench and args.policy_bench.exists() else ""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(report(data, policy_bench, args.name))
    if args.results.resolve() != (args.out / f"{args.name}.json").resolve():
        shutil.copyfile(args.results, args.out / f"{args.name}.json")
    meta = data["meta"]
    chart(data["runs"], data["hot_path"], args.out / f"{args.name}.png",
          f"scx_pyland vs EEVDF, scx_simple and {PEER} — {meta['kernel']}, {meta['cpus']} vCPUs (TCG), {meta['date']}")
    print((args.out / f"{args.name}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
