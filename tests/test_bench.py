"""The workload benchmark's parsers, runner, results file and report, without a
kernel. The outputs below are the tools' own, as captured in a guest run."""

from __future__ import annotations

import json

import pytest

from scx_pyland import bench_report, bench_workloads as bw

HACKBENCH = ("Running in process mode with 2 groups using 40 file descriptors each (== 80 tasks)\n"
             "Each sender will pass 20 messages of 100 bytes\nTime: 0.205\n")
MESSAGING = ("# Running 'sched/messaging' benchmark:\n# 20 sender and receiver processes per group\n"
             "# 2 groups == 80 processes run\n\n     Total time: 0.555 [sec]\n")
PIPE = ("# Running 'sched/pipe' benchmark:\n# Executed 5000 pipe operations between two processes\n\n"
        "     Total time: 0.678 [sec]\n\n     135.731000 usecs/op\n           7367 ops/sec\n")
STRESS_NG = (
    "stress-ng: metrc: [534] stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s\n"
    "stress-ng: metrc: [534]                           (secs)    (secs)    (secs)   (real time) (usr+sys time)\n"
    "stress-ng: metrc: [534] cpu                 388      2.05      3.92      0.19       188.84          94.41\n"
    "stress-ng: info:  [534] skipped: 0\nstress-ng: info:  [534] passed: 4: cpu (4)\n")
CYCLICTEST = ("# /dev/cpu_dma_latency set to 0us\n"
              "T: 0 (  554) P: 0 I:1000 C:   2036 Min:      7 Act: 3919 Avg:  744 Max:   18914\n"
              "T: 1 (  555) P: 0 I:1500 C:   1512 Min:     11 Act: 3681 Avg:  875 Max:   11552\n")


def test_parsers_read_the_tools_outputs():
    assert bw.parse_hackbench(HACKBENCH) == {"seconds": 0.205}
    assert bw.parse_messaging(MESSAGING) == {"seconds": 0.555}
    assert bw.parse_pipe(PIPE) == {"usecs_per_op": 135.731}
    assert bw.parse_stress_ng(STRESS_NG) == {"bogo_ops_per_s": 188.84}
    assert bw.parse_cyclictest(CYCLICTEST) == {"avg_us": 809.5, "max_us": 18914.0}


@pytest.mark.parametrize("parse", [bw.parse_hackbench, bw.parse_messaging, bw.parse_pipe,
                                   bw.parse_stress_ng, bw.parse_cyclictest])
def test_an_output_without_the_numbers_is_an_error(parse):
    with pytest.raises(ValueError):
        parse("stress-ng: error: [1] no stressor ran\n")


def workload(script: str) -> bw.Workload:
    return bw.Workload("test", "test", lambda smoke: ["sh", "-c", script], bw.parse_hackbench, (bw.SECONDS,))


def test_a_workload_runs_as_a_normal_task_and_is_parsed():
    metrics, wall, output = bw.run_workload(workload("chrt -p $$ | grep -q SCHED_OTHER && echo Time: 1.5"),
                                            smoke=False, limit=30)
    assert metrics == {"seconds": 1.5}
    assert wall > 0 and output.endswith("Time: 1.5\n")


def test_a_failing_or_hanging_workload_is_a_failed_run():
    with pytest.raises(RuntimeError, match="exit status 3"):
        bw.run_workload(workload("echo broken; exit 3"), smoke=False, limit=30)
    with pytest.raises(RuntimeError, match="did not finish within 1 s"):
        bw.run_workload(workload("sleep 30"), smoke=False, limit=1)
    with pytest.raises(RuntimeError, match="no match"):
        bw.run_workload(workload("echo no numbers"), smoke=False, limit=30)


META = {"kernel": "7.3.4+deb13-amd64", "cpus": 2, "mode": "full", "rounds": 3, "date": "2026-11-26"}


def test_results_are_saved_after_every_run_and_resumed(tmp_path):
    path = tmp_path / "results.json"
    results = bw.Results(path, META)
    results.add("runs", {"round": 1, "scheduler": "EEVDF", "workload": "w", "ok": True, "metrics": {}})
    assert json.loads(path.read_text())["runs"][0]["scheduler"] == "EEVDF"
    again = bw.Results(path, dict(META, date="2026-11-27"))
    assert again.has_run(1, "EEVDF", "w") and not again.has_run(2, "EEVDF", "w")
    assert again.data["meta"]["resumed"] == 1
    with pytest.raises(SystemExit, match="another setup"):
        bw.Results(path, dict(META, rounds=5))


def run(round_, sched, workload, value=None, error=None):
    ok = error is None
    metrics = {} if not ok else {"seconds": value} if "hackbench" in workload else {"bogo_ops_per_s": value}
    return {"round": round_, "scheduler": sched, "workload": workload, "ok": ok, "error": error, "metrics": metrics}


def test_the_report_orients_ratios_so_above_one_is_better_and_counts_failures():
    hb, cpu = "hackbench -g 2 -l 100", "stress-ng --cpu 4 -t 5s"
    runs = [run(r, "EEVDF", hb, 2.0) for r in (1, 2, 3)] + [run(r, "EEVDF", cpu, 100.0) for r in (1, 2, 3)]
    runs += [run(1, "pyland fifo", hb, 1.0), run(2, "pyland fifo", hb, 1.2), run(3, "pyland fifo", hb, 0.9)]
    runs += [run(1, "pyland fifo", cpu, 50.0), run(2, "pyland fifo", cpu, error="the scheduler was detached"),
             run(3, "pyland fifo", cpu, 70.0)]
    hot = [{"round": 1, "mode": "ceiling", "ok": True, "dispatches_per_s": 1000.0,
            "worker_cpu_ns_per_dispatch": 10_000.0, "worker_cpu_share": 0.1, "user_share": 0.99},
           {"round": 1, "mode": "fifo", "ok": True, "dispatches_per_s": 500.0,
            "worker_cpu_ns_per_dispatch": 30_000.0, "worker_cpu_share": 0.2, "user_share": 0.98}]
    text = bench_report.report({"meta": dict(META, command="scripts/bench"), "runs": runs, "hot_path": hot},
                               "", "benchmarks")
    # hackbench: time halved is twice as good; stress-ng: 60 ops/s of 100 is 0.6.
    assert "| 1 [0.9–1.2] ×2.00 |" in text
    assert "60.0 [50.0–70.0] ×0.60 (**1 failed**)" in text
    assert "round 2, pyland fifo, stress-ng --cpu 4 -t 5s: the scheduler was detached" in text
    assert "**Python fifo / C++ ceiling**: the worker spends ×3.0 the CPU time" in text
    assert "| Python fifo | 500.0 [500.0–500.0] | 30.0 [30.0–30.0] | ×3.0 |" in text
