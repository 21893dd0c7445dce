"""Prometheus metrics: the address syntax, the collector over statistics files of
workers that come and go (killed by SIGKILL too), and the supervisor serving them
over HTTP across a worker restart (tests/metrics_supervised.py, fake workers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scx_pyland import metrics, stats
from scx_pyland.metrics import AddressError, Collector, parse_address

HERE = Path(__file__).parent


# -- ADDR:PORT -----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9650", ("127.0.0.1", 9650)),
    (":9650", ("0.0.0.0", 9650)),
    ("localhost:80", ("localhost", 80)),
    ("[::1]:9650", ("::1", 9650)),
    ("[::]:9650", ("::", 9650)),
    ("0.0.0.0:65535", ("0.0.0.0", 65535)),
])
def test_addresses_that_parse(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["9650", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:0",
                                  "127.0.0.1:70000", "::1:9650", "[nope]:9650", "a b:1"])
def test_addresses_that_do_not(text):
    with pytest.raises(AddressError):
        parse_address(text)


# -- the collector -------------------------------------------------------------------

def samples(collector: Collector) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one collection."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in collector.collect() for s in family.samples}


def start_writer(path: Path, **values: int) -> subprocess.Popen:
    """A process that publishes `values` in a statistics file at `path` and lives on."""
    code = ("import sys, time; from pathlib import Path; from scx_pyland import stats; "
            "w = stats.StatsWriter(Path(sys.argv[1])); "
            "w.publish(tuple(int(v) for v in sys.argv[2:])); print('ok', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path),
                             *(str(values.get(name, 0)) for name in stats.FIELD_NAMES)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ok\n"
    return proc


@pytest.fixture
def machine(tmp_path):
    """A supervisor status (a dict the test changes), a fake sched_ext, a collector."""
    (tmp_path / "sched_ext" / "root").mkdir(parents=True)
    (tmp_path / "sched_ext" / "state").write_text("enabled\n")
    (tmp_path / "sched_ext" / "root" / "ops").write_text("pyland_0.1.0\n")
    status = {"state": "running", "worker_pid": None, "restarts": 0, "last_exit": None}
    collector = Collector(lambda: status, tmp_path / "run" / "stats", tmp_path / "sched_ext")
    procs = []
    yield status, collector, tmp_path / "run" / "stats", procs
    for proc in procs:
        proc.kill()
        proc.wait()


def test_counters_carry_over_a_worker_killed_by_sigkill(machine):
    status, collector, path, procs = machine
    first = start_writer(path, nr_user_dispatches=100, nr_kernel_dispatches=7, nr_page_faults=3, nr_pending=5)
    procs.append(first)
    status["worker_pid"] = first.pid
    before = samples(collector)
    assert before[("scx_pyland_dispatches_total", (("source", "user"),))] == 100
    assert before[("scx_pyland_pending_tasks", ())] == 5
    assert before[("scx_pyland_attached", ())] == 1

    first.kill()
    first.wait()
    status.update(worker_pid=None, restarts=1, state="restarting",
                  last_exit={"status": None, "signal": "SIGKILL", "kind": None, "time": 1.0})
    collector.refresh()                      # the supervisor does so when a worker ends
    between = samples(collector)
    assert between[("scx_pyland_dispatches_total", (("source", "user"),))] == 100
    assert ("scx_pyland_pending_tasks", ()) not in between     # no live worker: no gauges
    assert between[("scx_pyland_attached", ())] == 0
    assert between[("scx_pyland_restarts_total", ())] == 1
    assert between[("scx_pyland_last_exit", (("kind", "none"), ("signal", "SIGKILL"), ("status", "none")))] == 1

    second = start_writer(path, nr_user_dispatches=30, nr_kernel_dispatches=1, nr_page_faults=1)
    procs.append(second)
    status.update(worker_pid=second.pid, state="running")
    after = samples(collector)
    assert after[("scx_pyland_dispatches_total", (("source", "user"),))] == 130
    assert after[("scx_pyland_dispatches_total", (("source", "kernel"),))] == 8
    assert after[("scx_pyland_worker_page_faults_total", ())] == 4


def test_a_dead_workers_file_is_not_taken_for_the_new_worker(machine):
    status, collector, path, procs = machine
    first = start_writer(path, nr_user_dispatches=100)
    procs.append(first)
    status["worker_pid"] = first.pid
    samples(collector)
    first.kill()
    first.wait()
    status["worker_pid"] = 999_999_999      # started, has not written its file yet
    # The file still holds the dead worker's 100: counted once, not twice.
    assert samples(collector)[("scx_pyland_dispatches_total", (("source", "user"),))] == 100


def test_a_worker_that_removed_its_file_still_counts(machine):
    status, collector, path, procs = machine
    writer = stats.StatsWriter(path)         # this process plays the worker
    status["worker_pid"] = os.getpid()
    writer.publish(tuple(50 if name == "nr_user_dispatches" else 0 for name in stats.FIELD_NAMES))
    samples(collector)
    writer.publish(tuple(70 if name == "nr_user_dispatches" else 0 for name in stats.FIELD_NAMES))
    writer.close()                           # a clean exit removes the file
    status["worker_pid"] = None
    collector.refresh()
    assert samples(collector)[("scx_pyland_dispatches_total", (("source", "user"),))] == 70


def test_every_statistics_field_is_exported(machine):
    status, collector, path, procs = machine
    proc = start_writer(path)
    procs.append(proc)
    status["worker_pid"] = proc.pid
    names = {name for name, _ in samples(collector)}
    assert {"scx_pyland_dispatches_total", "scx_pyland_dispatches_cancelled_total",
            "scx_pyland_dispatches_bounced_total", "scx_pyland_dispatches_failed_total",
            "scx_pyland_policy_decisions_total", "scx_pyland_worker_page_faults_total",
            "scx_pyland_queued_tasks", "scx_pyland_pending_tasks", "scx_pyland_running_tasks",
            "scx_pyland_online_cpus", "scx_pyland_restarts_total", "scx_pyland_attached"} <= names
    # The dispatch sources share dispatches_total; restarts and attached are the supervisor's.
    assert len(names) >= len(stats.FIELDS) - (len(metrics.DISPATCH_SOURCES) - 1) + 2


# -- the supervisor serves them --------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


USER = ("scx_pyland_dispatches_total", (("source", "user"),))


def test_the_supervisor_serves_totals_that_never_go_backwards_across_a_restart(tmp_path):
    (tmp_path / "sched_ext" / "root").mkdir(parents=True)
    (tmp_path / "sched_ext" / "state").write_text("enabled\n")
    (tmp_path / "sched_ext" / "root" / "ops").write_text("pyland_0.1.0\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "metrics_supervised.py"), str(tmp_path), str(port)],
                            stderr=subprocess.PIPE, text=True)
    status_file = tmp_path / "run" / "supervisor.json"
    seen: list[float] = []

    def scrape_until(condition, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                values = scrape(port)
                seen.append(values.get(USER, 0))
                if condition(values):
                    return values
            except OSError:
                pass                          # not listening yet
            assert time.monotonic() < deadline, f"timed out; last values seen {seen[-3:]}"
            time.sleep(0.02)

    try:
        scrape_until(lambda v: v.get(USER) == 200)          # the first worker's 20 cycles
        first_pid = json.loads(status_file.read_text())["worker_pid"]
        os.kill(first_pid, signal.SIGKILL)
        values = scrape_until(lambda v: v.get(("scx_pyland_restarts_total", ())) == 1 and v.get(USER) == 400)
        assert values[("scx_pyland_dispatches_total", (("source", "kernel"),))] == 40
        assert values[("scx_pyland_last_exit", (("kind", "none"), ("signal", "SIGKILL"), ("status", "none")))] == 1
        assert values[("scx_pyland_attached", ())] == 1
        assert json.loads(status_file.read_text())["worker_pid"] != first_pid
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    assert seen == sorted(seen), "a total went backwards"
    assert proc.returncode == 0, proc.stderr.read()


# -- the command line ------------------------------------------------------------------

def scx_pyland(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, SCX_PYLAND_RUN_DIR=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "scx_pyland", *args, "--status-file", str(tmp_path / "s.json")],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("family, host, shown", [(socket.AF_INET, "127.0.0.1", "127.0.0.1"),
                                                (socket.AF_INET6, "::1", "[::1]")], ids=["ipv4", "ipv6"])
def test_a_port_in_use_is_one_line_and_exit_69(tmp_path, family, host, shown):
    with socket.socket(family) as busy:
        try:
            busy.bind((host, 0))
        except OSError as err:
            pytest.skip(f"no {host} here: {err}")
        busy.listen()
        port = busy.getsockname()[1]
        out = scx_pyland("--metrics", f"{shown}:{port}", tmp_path=tmp_path)
    assert out.returncode == 69
    assert out.stderr.splitlines() == [
        f"scx_pyland: error: --metrics: cannot listen on {shown}:{port}: Address already in use"]


def test_an_address_that_does_not_exist_is_exit_69(tmp_path):
    out = scx_pyland("--metrics", "192.0.2.1:9650", tmp_path=tmp_path)
    assert out.returncode == 69 and "cannot listen on 192.0.2.1:9650" in out.stderr
    assert len(out.stderr.splitlines()) == 1


@pytest.mark.parametrize("value", ["9650", "host:port", "[::1:9650", "127.0.0.1:0"])
def test_bad_metrics_syntax_is_exit_2_without_a_traceback(tmp_path, value):
    out = scx_pyland("--metrics", value, tmp_path=tmp_path)
    assert out.returncode == 2 and "--metrics" in out.stderr and "Traceback" not in out.stderr


def test_metrics_need_the_supervisor(tmp_path):
    out = scx_pyland("--no-supervisor", "--metrics", "127.0.0.1:9650", tmp_path=tmp_path)
    assert out.returncode == 2 and "cannot go with --no-supervisor" in out.stderr


def test_help_names_the_metrics_exit_statuses():
    out = subprocess.run([sys.executable, "-m", "scx_pyland", "--help"], capture_output=True, text=True)
    assert "--metrics ADDR:PORT" in out.stdout and "exits 69" in out.stdout and "exits 2" in out.stdout
