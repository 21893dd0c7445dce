"""deploy/systemd: the unit passes `systemd-analyze verify`, and what it promises
matches what the supervisor does (exit statuses, stop signal, stop timeout, options)."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from scx_pyland.cli import build_parser
from scx_pyland.exits import SupervisorStatus
from scx_pyland.supervisor import SupervisorOptions

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "systemd"
UNIT = DEPLOY / "scx_pyland.service"
ENV_FILE = DEPLOY / "scx_pyland.env"
EXEC = "/usr/local/bin/scx_pyland"    # where the README links the venv's scx_pyland


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str          # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def env_options() -> list[str]:
    values = dict(line.split("=", 1) for line in ENV_FILE.read_text().splitlines()
                  if line.strip() and not line.startswith("#"))
    # systemd takes the quotes off, then splits an unbraced $VAR at whitespace.
    return " ".join(shlex.split(values["SCX_PYLAND_OPTIONS"])).split()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="no systemd-analyze here (Debian package systemd)")
def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path):
    # verify checks that ExecStart's program exists: point it at this installation's
    # scx_pyland, the rest of the unit as shipped.
    installed = shutil.which("scx_pyland")
    assert installed, "scx_pyland is not installed here"
    text = UNIT.read_text()
    assert f"ExecStart={EXEC} " in text
    (tmp_path / UNIT.name).write_text(text.replace(f"ExecStart={EXEC} ", f"ExecStart={installed} "))
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / UNIT.name)],
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout + out.stderr) == (0, "")


def test_the_unit_runs_only_where_the_kernel_has_sched_ext():
    assert unit()["Unit"]["ConditionPathIsDirectory"] == "/sys/kernel/sched_ext"


def test_it_restarts_on_failure_but_not_when_it_cannot_start():
    service = unit()["Service"]
    assert service["Restart"] == "on-failure"
    prevented = {int(s) for s in service["RestartPreventExitStatus"].split()}
    assert SupervisorStatus.CANNOT_START in prevented
    assert SupervisorStatus.SYSRQ_FINAL in prevented
    assert SupervisorStatus.GAVE_UP not in prevented


def test_it_stops_with_sigint_to_the_supervisor_and_waits_longer_than_it_does():
    service = unit()["Service"]
    assert service["KillSignal"] == "SIGINT"
    assert service["KillMode"] == "mixed"     # the supervisor forwards it to the worker
    assert int(service["TimeoutStopSec"]) > SupervisorOptions().stop_timeout


def test_the_options_come_from_the_environment_file_and_parse():
    service = unit()["Service"]
    assert service["EnvironmentFile"].lstrip("-") == "/etc/default/scx_pyland"
    assert service["ExecStart"] == f"{EXEC} $SCX_PYLAND_OPTIONS"
    build_parser().parse_args(env_options())       # exits 2 if they do not
