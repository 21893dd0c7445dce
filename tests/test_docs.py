"""docs/design.md is the design's one home: every shared BPF global is in it, it
has the sections the code points to, and nothing points to the old brief."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"
GLOBAL = re.compile(r"^(?:const volatile )?(?:u64|u32|s32|bool|char|struct \w+) (\w+(?:, \w+)*)\s*[;\[=]", re.M)


def bpf_globals() -> set[str]:
    names = set()
    for match in GLOBAL.finditer((ROOT / "bpf" / "pyland.bpf.c").read_text()):
        names.update(name.strip() for name in match.group(1).split(","))
    return names - {"_license", "pyland_ops"}


def test_every_shared_bpf_global_is_described():
    text = DESIGN.read_text()
    missing = sorted(name for name in bpf_globals() if f"`{name}`" not in text)
    assert bpf_globals() and not missing, f"not in docs/design.md: {missing}"


def test_the_sections_the_code_and_the_issue_name_are_there():
    headings = {line.lstrip("# ").strip() for line in DESIGN.read_text().splitlines() if line.startswith("#")}
    for heading in ("Processes", "The path of one task", "Shared BPF globals and what may race on them",
                    "Real-time tasks and the ext_server", "Kernel differences, 6.16 to 7.3",
                    "The traps, and the rule each one made"):
        assert heading in headings


def test_nothing_points_to_the_old_design_file():
    old = "DESIGN" + ".md"
    hits = [f"{path.relative_to(ROOT)}" for top in ("src", "ext", "bpf", "scripts", "tests", "vm-tests")
            for path in (ROOT / top).rglob("*") if path.is_file() and path.suffix not in (".pyc", ".o")
            and old in path.read_text(errors="replace")]
    assert not hits
