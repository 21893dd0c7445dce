"""--policy: built-in names, a user's MODULE:CLASS or FILE.py:CLASS, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scx_pyland.policies import BUILTIN, PolicyLoadError, load_policy_class
from scx_pyland.policies.ceiling import CeilingPolicy
from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.policies.rustland import RustlandPolicy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_builtin_names():
    assert load_policy_class("rustland") is RustlandPolicy
    assert load_policy_class("fifo") is FifoPolicy
    assert load_policy_class("ceiling") is CeilingPolicy
    assert set(BUILTIN) == {"rustland", "fifo", "ceiling"}
    # Without a kernel the C++ ceiling is fifo, decision for decision.
    assert issubclass(CeilingPolicy, FifoPolicy) and CeilingPolicy.runs_in_cxx


def test_module_and_class():
    assert load_policy_class("scx_pyland.policies.fifo:FifoPolicy") is FifoPolicy


def test_the_shipped_example_loads_from_its_file():
    cls = load_policy_class(f"{EXAMPLES / 'lowest_pid_first.py'}:LowestPidFirst")
    assert cls.__name__ == "LowestPidFirst"


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown policy 'nope'"),
    ("no_such_module_xyz:Policy", "cannot import policy module 'no_such_module_xyz'"),
    ("scx_pyland.policies.fifo:Nope", "has no 'Nope'"),
    ("scx_pyland.policy:PolicyConfig", "is not a subclass of scx_pyland.policy.Policy"),
    ("/no/such/file.py:Policy", "no policy file"),
])
def test_errors_name_the_problem(spec, message):
    with pytest.raises(PolicyLoadError, match=message):
        load_policy_class(spec)


def test_a_module_that_raises_on_import_is_reported(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(PolicyLoadError, match="RuntimeError: boom at import"):
        load_policy_class(f"{tmp_path / 'broken.py'}:Anything")


def test_the_cli_exits_2_on_a_bad_policy_without_a_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "scx_pyland", "--policy", "no_such_module_xyz:P",
                          "--status-file", str(tmp_path / "supervisor.json")],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, SCX_PYLAND_RUN_DIR=str(tmp_path)))
    assert out.returncode == 2
    assert "cannot import policy module" in out.stderr
    assert "Traceback" not in out.stderr


RAISES_AT_IMPORT = "raise RuntimeError('no config file')\n"
RAISES_IN_CONSTRUCTOR = """
from scx_pyland.policies.fifo import FifoPolicy

class Broken(FifoPolicy):
    def __init__(self, config):
        raise FileNotFoundError(2, "No such file or directory", "/etc/mine.conf")
"""


@pytest.mark.parametrize("source, status, error", [
    (RAISES_IN_CONSTRUCTOR, 69, "the {spec} policy cannot start: its constructor raised FileNotFoundError: "
                                "[Errno 2] No such file or directory: '/etc/mine.conf'"),
    (RAISES_AT_IMPORT, 2, "--policy: cannot import policy module '{file}': RuntimeError: no config file"),
], ids=["constructor", "import"])
def test_a_policy_that_cannot_be_built_at_start_is_final_in_one_line(tmp_path, source, status, error):
    """Issue 28 3.5: a policy whose constructor always raised was restarted ten
    times by the supervisor (exit 70 each); it cannot start. Now one line and a
    final status, under the supervisor as well (it starts the worker once)."""
    (tmp_path / "mine.py").write_text(source)
    spec = f"{tmp_path / 'mine.py'}:Broken"
    status_file = tmp_path / "run" / "supervisor.json"
    out = subprocess.run([sys.executable, "-m", "scx_pyland", "--policy", spec, "--status-file", str(status_file),
                          "--restart-delay", "0.01", "--max-restarts", "2"],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, SCX_PYLAND_RUN_DIR=str(tmp_path / "run")))
    line = "scx_pyland: error: " + error.format(spec=spec, file=tmp_path / "mine.py")
    assert (out.returncode, out.stderr) == (status, line + "\n")
    last_exit = json.loads(status_file.read_text())["last_exit"]
    assert last_exit["status"] == status and error.format(spec=spec, file=tmp_path / "mine.py") in last_exit["reason"]
