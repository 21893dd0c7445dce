"""VM tests: they run inside a virtme-ng guest booting a sched_ext kernel, serially
(one sched_ext scheduler at a time), as root. scripts/vm-test runs them and fails the
run if any is skipped or never ran."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scx_pyland.files import sched_ext_ops, sched_ext_state  # noqa: F401 (the tests import them from here)

HERE = Path(__file__).resolve().parent
# The selftest holds a deliberately failing test: run only on purpose.
collect_ignore = ["selftest", "smt"]


def wait_for_state(want: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sched_ext_state() == want:
            return True
        time.sleep(0.1)
    return False


REPORT = re.compile(
    r"exit: (?P<reason>.*?); kind (?P<kind>\S+) 0x(?P<kind_hex>[0-9a-f]+), code (?P<code>-?\d+); "
    r"ran (?P<seconds>[\d.]+) s; policy (?P<policy>\S+) dispatched (?P<policy_dispatched>\d+); "
    r"dispatches: user (?P<user>\d+)(?: \([\d.]+%\))?, kernel (?P<kernel>\d+)(?: \([\d.]+%\))?, "
    r"direct (?P<direct>\d+)(?: \([\d.]+%\))?, realtime (?P<realtime>\d+)(?: \([\d.]+%\))?, "
    r"stalled (?P<stalled>\d+)(?: \([\d.]+%\))?, custody (?P<custody>\d+)(?: \([\d.]+%\))?, "
    r"congested (?P<congested>\d+)(?: \([\d.]+%\))?; cancelled (?P<cancelled>\d+), "
    r"bounced (?P<bounced>\d+), failed (?P<failed>\d+)")


class ScxRun:
    """scx_pyland started as a user would (the supervisor, unless --no-supervisor is
    among the arguments), with a real-time monitor beside it."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.log_path = tmp_path / "scx_pyland.log"
        self.capture = tmp_path / "monitor.json"
        self.stop_flag = tmp_path / "stopping"
        self.status_file = tmp_path / "status.json"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["scx_pyland", "--status-file", str(self.status_file), *args],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.monitor = subprocess.Popen(
            ["chrt", "-f", "50", sys.executable, str(HERE / "monitor.py"),
             str(self.proc.pid), str(self.capture), str(self.stop_flag)])
        self.returncode: int | None = None

    @property
    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def diagnosis(self) -> str:
        """What a failure message needs: the output, and the monitor's capture."""
        text = f"scx_pyland output:\n{self.output}"
        if self.capture.exists():
            text += f"\nthe scheduler left on its own; monitor capture:\n{self.capture.read_text()}"
        return text

    def wait_attached(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"scx_pyland exited ({self.proc.returncode}) before attaching\n{self.diagnosis()}")
            if sched_ext_state() == "enabled":
                return
            time.sleep(0.1)
        pytest.fail(f"scx_pyland did not attach within {timeout} s\n{self.diagnosis()}")

    def assert_attached(self) -> None:
        assert self.proc.poll() is None and sched_ext_state() == "enabled", \
            f"the scheduler is no longer attached\n{self.diagnosis()}"
        assert not self.capture.exists(), self.diagnosis()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        self.stop_flag.touch()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            pytest.fail(f"scx_pyland did not stop within {timeout} s of signal {sig}\n{self.diagnosis()}")
        return self.returncode

    def wait_exit(self, timeout: float = 120) -> int:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"scx_pyland did not exit within {timeout} s\n{self.diagnosis()}")
        return self.returncode

    def worker_pid(self) -> int | None:
        """The supervisor's child, the worker (None with --no-supervisor or between
        workers). Reading the supervisor's children list never touches the worker."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def status(self) -> dict:
        """The supervisor's status file (restart count, last exit)."""
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def report(self) -> dict[str, str]:
        match = REPORT.search(self.output)
        assert match, f"no exit report\n{self.diagnosis()}"
        return match.groupdict()

    def close(self) -> None:
        self.stop_flag.touch()
        if self.proc.poll() is None:
            # Politely first: killing only the supervisor would leave its worker attached.
            self.proc.terminate()
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                worker = self.worker_pid()
                if worker:
                    os.killpg(worker, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()
        self.monitor.wait(30)
        self.log.close()
        # The next test needs the kernel free again.
        wait_for_state("disabled", 60)


@pytest.fixture
def start_scx(tmp_path):
    """start_scx(*args) -> ScxRun, attached; stopped and reaped at teardown."""
    runs: list[ScxRun] = []

    def start(*args: str, attach: bool = True) -> ScxRun:
        run_dir = tmp_path / f"run{len(runs)}"
        run_dir.mkdir()
        run = ScxRun(run_dir, *args)
        runs.append(run)
        if attach:
            run.wait_attached()
        return run

    assert wait_for_state("disabled", 60), f"sched_ext is {sched_ext_state()} before the test"
    yield start
    for run in runs:
        run.close()


def record_result(name: str, values: dict) -> None:
    """Keep a measurement for the host (scripts/vm-test prints them after the run)."""
    job = os.environ.get("VM_JOB")
    if job:
        with open(Path(job) / "measurements.jsonl", "a") as f:
            f.write(json.dumps({"test": name, "kernel_release": os.uname().release, **values}) + "\n")


def run_under_eevdf(argv: list[str], cwd: Path, timeout: float) -> str:
    """Run `argv` to its end with no sched_ext scheduler attached (EEVDF, the
    reference of a ratio in the same boot); returns its stdout and stderr."""
    assert wait_for_state("disabled", 60), f"sched_ext is {sched_ext_state()}, not EEVDF"
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr
