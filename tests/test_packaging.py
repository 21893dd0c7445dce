import importlib.metadata
import re
import tomllib
from pathlib import Path

import scx_pyland
from scx_pyland import _bpf

ROOT = Path(__file__).resolve().parent.parent


def test_build_pins_match_the_toolbox_requirements():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pinned = {line.strip() for line in (ROOT / "requirements-build.txt").read_text().splitlines()
              if re.match(r"^[a-z]", line)}
    assert set(requires) <= pinned


def meson_version() -> str:
    """The project version in meson.build, the one place it is written."""
    return re.search(r"^\s*version: '([^']+)',", (ROOT / "meson.build").read_text(), re.M).group(1)


def test_every_version_is_meson_builds():
    version = meson_version()
    assert scx_pyland.__version__ == version
    assert _bpf.__version__ == version
    assert importlib.metadata.version("scx_pyland") == version
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dynamic"] == ["version"]


def test_the_version_is_written_nowhere_else():
    written = re.compile(r"\b" + re.escape(meson_version()) + r"\b")
    for name in ("pyproject.toml", "Containerfile", "src/scx_pyland/__init__.py", "scripts/build-image",
                 "tests/test_cli.py"):
        assert not written.search((ROOT / name).read_text()), name


def test_the_docs_show_the_ops_name_of_this_version():
    """The README and the docs quote the kernel's ops name, pyland_VERSION, in example
    output: a version bump must bring them along (not a second home of the version,
    a copy checked against the first)."""
    quoted = {(path.name, version) for path in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
              for version in re.findall(r"\bpyland_(\d+(?:\.\d+)+)", path.read_text())}
    assert ("README.md", meson_version()) in quoted
    assert {version for _, version in quoted} == {meson_version()}, sorted(quoted)


def test_runtime_dependencies_are_pinned_for_the_toolbox_and_the_image():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = [line.strip() for line in (ROOT / "requirements-runtime.txt").read_text().splitlines()
              if re.match(r"^[a-z]", line)]
    name = re.compile(r"^[A-Za-z0-9_.-]+")
    assert {name.match(d).group(0) for d in declared} == {name.match(p).group(0) for p in pinned}
    assert all("==" in p for p in pinned)
    assert "requirements-runtime.txt" in (ROOT / "scripts" / "build").read_text()
    assert "-c /src/requirements-runtime.txt" in (ROOT / "Containerfile").read_text()
