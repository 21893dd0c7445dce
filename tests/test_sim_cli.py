"""`scx_pyland sim`: works without root or sched_ext, prints one column per policy
(the EEVDF model first), --json for scripts in a shape scripts can rely on, and
refuses bad input in one line with status 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scx_pyland import cli
from scx_pyland.records import queued_bytes
from scx_pyland.sim.kernel import SOURCES
from scx_pyland.sim.trace import write_trace

ROOT = Path(__file__).resolve().parent.parent
WAIT_KEYS = {"count", "p50_ns", "p99_ns", "max_ns", "mean_ns"}


def sim(capsys, *args: str) -> tuple[int, str, str]:
    try:
        status = cli.main(["sim", *args])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def test_the_table_has_a_column_per_policy_after_the_eevdf_model(capsys):
    status, out, _ = sim(capsys, "nice-hogs", "--duration-s", "1", "--policy", "rustland", "--policy", "fifo")
    assert status == 0
    header = out.splitlines()[1].split()
    assert header == ["eevdf", "(model)", "rustland", "fifo"]
    for row in ("wait p50 / p99 / max", "CPU share (by weight)", "worker cycles", "  nice19"):
        assert row in out


def test_the_json_output_has_every_result_in_a_fixed_shape(capsys):
    status, out, _ = sim(capsys, "cyclictest-hogs", "--duration-s", "0.5", "--policy", "fifo", "--json")
    assert status == 0
    doc = json.loads(out)
    assert set(doc) == {"workload", "options", "cost_model", "trace", "results"}
    assert doc["workload"]["groups"] == ["cyclictest", "hogs"] and doc["workload"]["nr_cpus"] == 2
    assert doc["options"]["hz"] == 250 and doc["options"]["duration_ns"] == 500_000_000
    assert doc["cost_model"]["task_ns_by_policy"] == {"fifo": 94_000}
    eevdf, fifo = doc["results"]
    assert (eevdf["policy"], eevdf["model"], fifo["policy"], fifo["model"]) == ("eevdf", "eevdf", "fifo", "pyland")
    for result in (eevdf, fifo):
        assert set(result["wait"]) == WAIT_KEYS
        assert set(result["groups"]) == {"cyclictest", "hogs"}
        group = result["groups"]["cyclictest"]
        assert {"share", "weight_share", "ops", "ops_per_s", "wait", "run", "preemptions"} <= set(group)
        assert set(group["wait"]) == WAIT_KEYS
    assert eevdf["by_source"] == {} and eevdf["worker"] is None
    assert list(fifo["by_source"]) == list(SOURCES) and list(fifo["dispatches"]) == list(SOURCES)
    assert {"cycles", "tasks_read", "decisions", "rescued", "invalid", "cpu_share"} <= set(fifo["worker"])
    assert fifo["worker"]["cycles"] > 0 and fifo["dispatches"]["user"] > 0


def test_list_names_every_built_in_workload(capsys):
    status, out, _ = sim(capsys, "--list")
    assert status == 0
    assert [line.split(":")[0] for line in out.splitlines()] == [
        "nice-hogs", "nice-classes", "cyclictest-hogs", "hackbench", "pipe", "switch"]


@pytest.mark.parametrize("args, message", [
    (["nosuch"], "unknown workload 'nosuch'"),
    (["nice-hogs", "--policy", "nosuch"], "--policy: unknown policy 'nosuch'"),
    (["nice-hogs", "--policy", "missing.py:Mine"], "--policy: no policy file"),
    (["{tmp}/broken.py:W"], "cannot load workload file"),
    (["{tmp}/v1.trace"], "a version 1 trace"),
    (["nice-hogs", "--duration-s", "0"], "must be greater than 0"),
    ([], "name a WORKLOAD"),
])
def test_bad_input_is_refused_in_one_line_with_status_2(capsys, tmp_path, args, message):
    (tmp_path / "broken.py").write_text("def W(:\n")
    (tmp_path / "v1.trace").write_bytes(b"PYLANDTR" + (1).to_bytes(4, "little") + (88).to_bytes(4, "little"))
    status, out, err = sim(capsys, *(a.format(tmp=tmp_path) for a in args))
    assert status == 2 and not out
    assert err.count("\n") == 1 and err.startswith("scx_pyland sim: error: ") and message in err


def test_a_policy_whose_constructor_raises_is_status_1(capsys, tmp_path):
    (tmp_path / "p.py").write_text(
        "from scx_pyland.policies.fifo import FifoPolicy\n"
        "class Bad(FifoPolicy):\n"
        "    def __init__(self, config):\n"
        "        raise ValueError('no config for me')\n")
    status, _, err = sim(capsys, "nice-hogs", "--duration-s", "0.1", "--policy", f"{tmp_path}/p.py:Bad")
    assert status == 1 and "no config for me" in err and err.count("\n") == 1


def test_a_recorded_trace_is_simulated_and_its_recorded_waits_shown(capsys, tmp_path):
    records = [queued_bytes(9, flags=1, enq_ts=10**9 + k * 10**6, start_ts=10**9 + (k - 1) * 10**6 + 20_000,
                             stop_ts=10**9 + (k - 1) * 10**6 + 120_000, decided_ts=10**9 + (k - 1) * 10**6 + 10_000,
                             enq_cnt=k + 1, comm="timer") for k in range(1, 40)]
    write_trace(tmp_path / "t.trace", [records])
    status, out, _ = sim(capsys, str(tmp_path / "t.trace"), "--policy", "fifo")
    assert status == 0
    assert "  timer" in out
    assert re.search(r"recorded in the trace .* 1 tasks, 39 records", out)


def test_it_runs_as_an_unprivileged_user_without_sched_ext(tmp_path):
    """The command is dispatched before anything that needs root or a kernel."""
    env = dict(os.environ, HOME=str(tmp_path))
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                          "scx_pyland", "sim", "pipe", "--duration-s", "0.05", "--json"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][1]["policy"] == "rustland"


def test_the_sim_package_is_installed_whole():
    """meson.build installs Python files by name: every module of scx_pyland.sim is listed."""
    listed = set(re.findall(r"'src/scx_pyland/sim/([a-z_]+\.py)'", (ROOT / "meson.build").read_text()))
    assert listed == {p.name for p in (ROOT / "src" / "scx_pyland" / "sim").glob("*.py")}


def test_the_main_help_names_the_sim_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "scx_pyland sim WORKLOAD" in capsys.readouterr().out
