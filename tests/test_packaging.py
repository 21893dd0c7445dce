import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_build_pins_match_the_toolbox_requirements():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pinned = {line.strip() for line in (ROOT / "requirements-build.txt").read_text().splitlines()
              if re.match(r"^[a-z]", line)}
    assert set(requires) <= pinned
