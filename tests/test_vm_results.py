"""scripts/check-vm-results: how a VM run is judged. A guest test that failed, was
skipped or never ran fails the run, and so does a run with no results."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check-vm-results"
loader = importlib.machinery.SourceFileLoader("check_vm_results", str(SCRIPT))
spec = importlib.util.spec_from_loader("check_vm_results", loader)
check = importlib.util.module_from_spec(spec)
loader.exec_module(check)

EXPECTED = ["vm-tests/test_a.py::test_one", "vm-tests/test_a.py::test_two[1]"]


def junit(tmp_path: Path, *cases: str) -> Path:
    path = tmp_path / "junit.xml"
    path.write_text("<testsuites><testsuite>" + "".join(cases) + "</testsuite></testsuites>")
    return path


def case(name: str, inner: str = "") -> str:
    return f'<testcase classname="vm-tests.test_a" name="{name}">{inner}</testcase>'


def test_all_expected_tests_passing_is_a_pass(tmp_path):
    outcomes, problems = check.judge(junit(tmp_path, case("test_one"), case("test_two[1]")), EXPECTED)
    assert problems == []
    assert outcomes["passed"] == EXPECTED


def test_a_failure_fails_the_run(tmp_path):
    _, problems = check.judge(junit(tmp_path, case("test_one", "<failure/>"), case("test_two[1]")), EXPECTED)
    assert problems == ["failed: vm-tests/test_a.py::test_one"]


def test_an_error_fails_the_run(tmp_path):
    _, problems = check.judge(junit(tmp_path, case("test_one", "<error/>"), case("test_two[1]")), EXPECTED)
    assert problems == ["failed: vm-tests/test_a.py::test_one"]


def test_a_skip_fails_the_run(tmp_path):
    _, problems = check.judge(junit(tmp_path, case("test_one"), case("test_two[1]", "<skipped/>")), EXPECTED)
    assert problems == ["skipped: vm-tests/test_a.py::test_two[1]"]


def test_a_test_that_never_ran_fails_the_run(tmp_path):
    _, problems = check.judge(junit(tmp_path, case("test_one")), EXPECTED)
    assert problems == ["missing: vm-tests/test_a.py::test_two[1]"]


def test_no_results_file_fails_the_run(tmp_path):
    outcomes, problems = check.judge(tmp_path / "absent.xml", EXPECTED)
    assert problems == ["no results: the VM tests never ran"]
    assert outcomes["missing"] == EXPECTED


def test_an_empty_run_fails(tmp_path):
    _, problems = check.judge(junit(tmp_path), [])
    assert problems == ["no test ran"]
