import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_build_pins_match_the_toolbox_requirements():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pinned = {line.strip() for line in (ROOT / "requirements-build.txt").read_text().splitlines()
              if re.match(r"^[a-z]", line)}
    assert set(requires) <= pinned


def test_runtime_dependencies_are_pinned_for_the_toolbox_and_the_image():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = [line.strip() for line in (ROOT / "requirements-runtime.txt").read_text().splitlines()
              if re.match(r"^[a-z]", line)]
    name = re.compile(r"^[A-Za-z0-9_.-]+")
    assert {name.match(d).group(0) for d in declared} == {name.match(p).group(0) for p in pinned}
    assert all("==" in p for p in pinned)
    assert "requirements-runtime.txt" in (ROOT / "scripts" / "build").read_text()
    assert "-c /src/requirements-runtime.txt" in (ROOT / "Containerfile").read_text()
