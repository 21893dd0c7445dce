"""`scx_pyland status`: the answer of every liveness and readiness probe. A fake
/sys/kernel/sched_ext, supervisor status file and statistics file; the live
processes are this test's own (so their pids exist)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scx_pyland import stats
from scx_pyland.status import Exit, read_status

RUNNING = {"supervisor_pid": os.getppid(), "state": "running", "worker_pid": os.getpid(),
           "policy": "fifo", "restarts": 2,
           "last_exit": {"signal": "SIGKILL", "reason": "the worker was killed by SIGKILL"}}


@pytest.fixture
def box(tmp_path):
    """A fake machine: box.kernel("enabled", "pyland_0.1.0"), box.supervisor({...}),
    box.publish() (statistics written by this process), box.read()."""

    class Box:
        sched_ext = tmp_path / "sched_ext"
        status_file = tmp_path / "run" / "supervisor.json"
        stats_path = tmp_path / "run" / "stats"
        writer = None

        def kernel(self, state: str, ops: str = "") -> None:
            (self.sched_ext / "root").mkdir(parents=True, exist_ok=True)
            (self.sched_ext / "state").write_text(state + "\n")
            (self.sched_ext / "root" / "ops").write_text(ops + "\n")

        def supervisor(self, status: dict) -> None:
            self.status_file.parent.mkdir(parents=True, exist_ok=True)
            self.status_file.write_text(json.dumps(status))

        def publish(self, **values: int) -> None:
            self.writer = self.writer or stats.StatsWriter(self.stats_path)
            self.writer.publish(tuple(values.get(name, 0) for name in stats.FIELD_NAMES))

        def read(self, **kwargs):
            return read_status(self.status_file, self.sched_ext, self.stats_path, **kwargs)

    box = Box()
    yield box
    if box.writer:
        box.writer.close()


def test_a_running_worker_of_ours_is_scheduling(box):
    box.kernel("enabled", "pyland_0.1.0")
    box.supervisor(RUNNING)
    box.publish(nr_user_dispatches=5)
    status = box.read()
    assert (status.scheduling, status.exit_status) == (True, Exit.SCHEDULING)
    assert status.line() == ("scx_pyland: scheduling: attached as pyland_0.1.0, policy fifo, "
                             f"worker pid {os.getpid()}, restarts 2, "
                             "last exit: the worker was killed by SIGKILL")


def test_the_json_has_every_field_and_the_exit_status(box):
    box.kernel("enabled", "pyland_0.1.0")
    box.supervisor(RUNNING)
    out = json.loads(box.read().to_json())
    assert out["attached"] and out["exit_status"] == 0
    for key in ("ops", "policy", "worker_pid", "restarts", "last_exit", "sched_ext_state"):
        assert key in out
    assert out["last_exit"]["signal"] == "SIGKILL"


@pytest.mark.parametrize("state, ops, reason", [
    ("disabled", "", "sched_ext is disabled"),
    ("enabled", "simple", "another scheduler is attached (simple)"),
    ("disabling", "pyland_0.1.0", "sched_ext is disabling"),
])
def test_not_attached_or_not_ours_is_not_scheduling(box, state, ops, reason):
    box.kernel(state, ops)
    box.supervisor(RUNNING)
    status = box.read()
    assert status.exit_status == Exit.NOT_SCHEDULING
    assert status.reason == reason
    assert status.line().startswith(f"scx_pyland: not scheduling: {reason}, policy fifo")


@pytest.mark.parametrize("state", ["starting", "restarting"])
def test_a_supervisor_between_workers_is_not_ready(box, state):
    box.kernel("enabled", "pyland_0.1.0")
    box.supervisor({**RUNNING, "state": state, "worker_pid": None})
    status = box.read()
    assert not status.scheduling
    assert status.reason == f"the supervisor is {state} the worker"


def test_an_ended_supervisor_says_how(box):
    box.kernel("disabled")
    box.supervisor({**RUNNING, "state": "ended", "exit_status": 71, "worker_pid": None})
    assert box.read().reason == "the supervisor has ended with status 71"


def test_a_supervisor_that_died_with_a_running_status_is_not_believed(box):
    dead = subprocess.Popen(["true"])
    dead.wait()
    box.kernel("enabled", "pyland_0.1.0")
    box.supervisor({**RUNNING, "supervisor_pid": dead.pid})
    assert box.read().reason == f"the supervisor (pid {dead.pid}) is gone"


def test_a_dead_worker_is_not_scheduling(box):
    dead = subprocess.Popen(["true"])
    dead.wait()
    box.kernel("enabled", "pyland_0.1.0")
    box.supervisor({**RUNNING, "worker_pid": dead.pid})
    assert box.read().reason == "no worker is running"


def test_stale_statistics_mean_the_worker_is_not_scheduling(box):
    box.kernel("enabled", "pyland_0.1.0")
    box.supervisor(RUNNING)
    box.publish()
    time.sleep(0.3)
    status = box.read(max_age=0.1)
    assert not status.scheduling and "has not published statistics for" in status.reason
    assert box.read(max_age=30).scheduling


def test_a_worker_without_supervisor_is_found_by_its_statistics(box):
    box.kernel("enabled", "pyland_0.1.0")
    box.publish()
    status = box.read()
    assert status.scheduling and status.worker_pid == os.getpid()
    assert status.policy is None


def test_nothing_running(box):
    box.kernel("disabled")
    status = box.read()
    assert status.reason.startswith("no scx_pyland is running")


def test_attached_by_a_scx_pyland_whose_files_are_not_here(box):
    """A container's scheduler seen from the host: the kernel says ours, no files here."""
    box.kernel("enabled", "pyland_0.1.0")
    status = box.read()
    assert not status.scheduling and status.attached
    assert status.reason.startswith("pyland_0.1.0 is attached, but not by a scx_pyland seen from here")


def test_a_kernel_without_sched_ext(box):
    box.supervisor(RUNNING)
    assert "this kernel has no sched_ext" in box.read().reason


# -- the command line ----------------------------------------------------------------

def scx_pyland(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scx_pyland", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_the_status_command_prints_one_line_and_exits_1_when_nothing_runs(tmp_path):
    out = scx_pyland("status", "--status-file", str(tmp_path / "none.json"),
                     env=dict(os.environ, SCX_PYLAND_RUN_DIR=str(tmp_path)))
    assert out.returncode == 1
    assert len(out.stdout.splitlines()) == 1 and out.stdout.startswith("scx_pyland: not scheduling: ")
    assert out.stderr == ""


def test_the_status_command_json(tmp_path):
    out = scx_pyland("status", "--json", "--status-file", str(tmp_path / "none.json"),
                     env=dict(os.environ, SCX_PYLAND_RUN_DIR=str(tmp_path)))
    assert out.returncode == 1
    assert json.loads(out.stdout)["exit_status"] == 1


@pytest.mark.parametrize("args, message", [
    (["status", "--bogus"], "unrecognized arguments"),
    (["status", "--max-age", "0"], "must be greater than 0"),
])
def test_bad_status_arguments_exit_2_without_a_traceback(args, message):
    out = scx_pyland(*args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_status_has_its_own_help_naming_the_exit_statuses():
    out = scx_pyland("status", "--help")
    assert out.returncode == 0 and "--json" in out.stdout and "exit status: 0" in out.stdout


def test_the_main_help_names_the_status_command():
    assert "scx_pyland status" in scx_pyland("--help").stdout


def test_the_supervisor_writes_the_policy_into_its_status_file(tmp_path):
    from scx_pyland.supervisor import Supervisor, SupervisorOptions
    sup = Supervisor(["true"], SupervisorOptions(status_file=tmp_path / "s.json", policy="fifo"))
    sup.update_status(state="running")
    assert json.loads((tmp_path / "s.json").read_text())["policy"] == "fifo"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
@pytest.mark.parametrize("directory_mode", [0o755, 0o700], ids=["file-0600", "directory-0700"])
def test_an_unreadable_status_file_is_named_as_such(directory_mode):
    """Run by a user other than root. The supervisor makes /run/scx_pyland 0700 and
    the file 0600: in such a directory the file looks absent, which is not "nothing
    runs"."""
    import shutil
    import tempfile
    top = Path(tempfile.mkdtemp(prefix="scx_pyland-status-"))
    try:
        os.chmod(top, 0o755)
        (top / "run").mkdir(mode=directory_mode)
        os.chmod(top / "run", directory_mode)
        status_file = top / "run" / "supervisor.json"
        status_file.write_text(json.dumps(RUNNING))
        os.chmod(status_file, 0o600)
        (top / "state").write_text("enabled\n")
        code = ("import sys; from pathlib import Path; from scx_pyland.status import read_status; "
                "print(read_status(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[2]) / 'stats').reason)")
        out = subprocess.run([sys.executable, "-c", code, str(status_file), str(top)], capture_output=True,
                             text=True, user=65534, timeout=60, cwd="/")
        assert out.stdout.strip() == f"cannot read {status_file}: it is readable by root only", out.stderr
    finally:
        shutil.rmtree(top)
