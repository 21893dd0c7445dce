"""What operators see on a real sched_ext kernel: `scx_pyland status` answers 0
only while a worker is attached, and the supervisor's /metrics, scraped over HTTP
under load and across a worker killed by SIGKILL, agrees with the statistics file
and never goes backwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import record_result, sched_ext_state, wait_for_state
from scx_pyland import stats

USER = ("scx_pyland_dispatches_total", (("source", "user"),))


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def status(run) -> subprocess.CompletedProcess:
    return subprocess.run(["scx_pyland", "status", "--status-file", str(run.status_file)],
                          capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_status_and_metrics_under_load_and_across_a_killed_worker(start_scx, tmp_path):
    port = free_port()
    run = start_scx("--policy", "fifo", "--metrics", f"127.0.0.1:{port}")
    answer = status(run)
    assert answer.returncode == 0, answer.stdout + run.diagnosis()
    assert answer.stdout.startswith("scx_pyland: scheduling: attached as pyland_") and "policy fifo" in answer.stdout

    load = subprocess.Popen(["stress-ng", "--cpu", "2", "--sock", "1", "-t", "25s"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    totals = []
    try:
        # Under load: a scrape lies between two readings of the statistics file.
        for _ in range(5):
            before = stats.read_snapshot().values["nr_user_dispatches"]
            value = scrape(port)[USER]
            after = stats.read_snapshot().values["nr_user_dispatches"]
            assert before <= value <= after, (before, value, after)
            totals.append(value)
            time.sleep(0.5)
        assert totals[-1] > totals[0], "no dispatches under load"

        worker = run.worker_pid()
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 120
        not_ready = False
        while not (run.status().get("restarts") == 1 and run.status().get("state") == "running"
                   and sched_ext_state() == "enabled"):
            totals.append(scrape(port)[USER])
            not_ready = not_ready or status(run).returncode == 1
            assert time.monotonic() < deadline, run.diagnosis()
            time.sleep(0.2)
        reattached = time.monotonic() - killed
        assert run.worker_pid() != worker
        # The new worker's counters start from 0; the totals carry the old one's.
        deadline = time.monotonic() + 30
        while (answer := status(run)).returncode != 0:
            assert time.monotonic() < deadline, answer.stdout + run.diagnosis()
            time.sleep(0.5)
        current = stats.read_snapshot().values["nr_user_dispatches"]
        values = scrape(port)
        totals.append(values[USER])
        # total = the killed worker's final count (>= its last scrape) + the new one's
        assert values[USER] - current >= totals[4], (values[USER], current, totals)
        assert values[("scx_pyland_restarts_total", ())] == 1
        assert values[("scx_pyland_attached", ())] == 1
        assert values[("scx_pyland_last_exit", (("kind", "none"), ("signal", "SIGKILL"), ("status", "none")))] == 1
        assert totals == sorted(totals), f"a total went backwards: {totals}"
    finally:
        load.kill()
        load.wait()
    assert run.stop() == 0
    assert status(run).returncode == 1
    record_result("operators_metrics", {"scrapes": len(totals), "reattached_s": round(reattached, 1),
                                        "status_said_not_ready_between": not_ready})
