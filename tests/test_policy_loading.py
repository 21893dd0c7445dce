"""--policy: built-in names, a user's MODULE:CLASS or FILE.py:CLASS, and clear errors."""

from __future__ import annotations

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


def test_the_cli_exits_2_on_a_bad_policy_without_a_traceback():
    out = subprocess.run([sys.executable, "-m", "scx_pyland", "--policy", "no_such_module_xyz:P"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "cannot import policy module" in out.stderr
    assert "Traceback" not in out.stderr
