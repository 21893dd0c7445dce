"""docs/design.md is the design's one home: every shared BPF global is in it, it
has the sections the code points to, and nothing points to the old brief."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"
GLOBAL = re.compile(r"^(?:const volatile )?(?:u64|u32|s32|bool|char|struct \w+) (\w+(?:, \w+)*)\s*[;\[=]", re.M)
# Maps (`} name SEC(".maps");`) and the kernel's variables the BPF side reads (ksyms).
MAP = re.compile(r'^\} (\w+) SEC\("\.maps"\);', re.M)
KSYM = re.compile(r"^extern (?:const )?(?:struct )?\w+ (\w+) __ksym;", re.M)


def bpf_globals() -> set[str]:
    names = set()
    source = (ROOT / "bpf" / "pyland.bpf.c").read_text()
    for match in GLOBAL.finditer(source):
        names.update(name.strip() for name in match.group(1).split(","))
    names.update(MAP.findall(source))
    names.update(KSYM.findall((ROOT / "bpf" / "compat.bpf.h").read_text()))
    return names - {"_license", "pyland_ops"}


def test_the_globals_found_include_the_maps_and_the_ksyms():
    assert {"queued", "dispatched", "task_ctx_stor", "heartbeat_timer", "runqueues", "nr_queued"} <= bpf_globals()


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


def tracked_text_files() -> list[Path]:
    """Every file of the repository but caches, builds and binaries."""
    skip = {".git", "__pycache__", "build", ".mesonpy"}
    return [path for path in ROOT.rglob("*") if path.is_file() and not skip & set(path.relative_to(ROOT).parts)
            and path.suffix not in (".pyc", ".o", ".so", ".png", ".svg", ".zst", ".gz", ".bin")]


def test_nothing_points_to_the_old_design_file():
    """Not the code, the README, the docs, the deploy files or the scripts: the
    design is docs/design.md (its old name, and the brief it came from, are outside
    the repository)."""
    old = re.compile("DESIGN" + r"(?:\.md| brief)")       # split: this file does not match
    files = tracked_text_files()
    assert ROOT / "README.md" in files and ROOT / "docs" / "hot-path.md" in files
    hits = [f"{path.relative_to(ROOT)}" for path in files if old.search(path.read_text(errors="replace"))]
    assert not hits


# A command as the docs show it: an indented or fenced code line, or an inline code span.
CODE_LINE = re.compile(r"^(?: {4,}|\t)(.*)$", re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
SUDO = re.compile(r"^(?:[$#] )?" + "su" + r"do\s")       # split: this file does not match


def shown_commands(text: str) -> list[str]:
    return [line.strip() for line in CODE_LINE.findall(text)] + CODE_SPAN.findall(text)


def test_no_command_in_the_docs_or_the_scripts_needs_sudo():
    """Issue 28 2: a fresh Debian 12 root shell has no sudo, so every command is
    written as a root shell runs it, and the README says which ones need root."""
    files = [path for path in tracked_text_files()
             if path.suffix in (".md", ".py", ".txt", ".yaml", ".service", ".env", "")
             or path.parent.name == "scripts"]
    assert ROOT / "README.md" in files and ROOT / "scripts" / "run-vm" in files
    hits = [f"{path.relative_to(ROOT)}: {command}" for path in files
            for command in shown_commands(path.read_text(errors="replace")) if SUDO.match(command)]
    assert not hits
    readme = (ROOT / "README.md").read_text()
    for command in ("scripts/run-vm", "scripts/test"):
        assert f"as root, in the checkout:\n\n    {command}\n" in readme
