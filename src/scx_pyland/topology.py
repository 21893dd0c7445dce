"""The CPU topology the BPF side needs for idle-CPU selection, read from sysfs:
online CPUs, which CPUs share a core (SMT siblings), an L2 cache or an L3 cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SYSFS_CPU = Path("/sys/devices/system/cpu")


def parse_cpu_list(text: str) -> list[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


@dataclass(slots=True)
class Topology:
    online: list[int]
    # For each online CPU, the online CPUs of its core, its L2 and its L3 (itself included).
    core_siblings: dict[int, list[int]] = field(default_factory=dict)
    l2_siblings: dict[int, list[int]] = field(default_factory=dict)
    l3_siblings: dict[int, list[int]] = field(default_factory=dict)

    @property
    def smt_enabled(self) -> bool:
        return any(len(s) > 1 for s in self.core_siblings.values())

    def domains(self, level: int) -> dict[int, list[int]]:
        """level 0: SMT core, 2: L2, 3: L3."""
        return {0: self.core_siblings, 2: self.l2_siblings, 3: self.l3_siblings}[level]


def read_topology(root: Path = SYSFS_CPU) -> Topology:
    """Read the topology under root (a sysfs cpu directory, or a fake one in tests)."""
    online_file = root / "online"
    online = parse_cpu_list(online_file.read_text()) if online_file.exists() else [0]
    online_set = set(online)
    topo = Topology(online=online)
    for cpu in online:
        cpu_dir = root / f"cpu{cpu}"
        core = _read_list(cpu_dir / "topology" / "thread_siblings_list") or [cpu]
        topo.core_siblings[cpu] = [c for c in core if c in online_set]
        caches = _cache_levels(cpu_dir / "cache")
        for level, siblings in ((2, topo.l2_siblings), (3, topo.l3_siblings)):
            shared = caches.get(level, [cpu])
            siblings[cpu] = [c for c in shared if c in online_set]
    return topo


def _read_list(path: Path) -> list[int]:
    try:
        return parse_cpu_list(path.read_text())
    except OSError:
        return []


def _cache_levels(cache_dir: Path) -> dict[int, list[int]]:
    """{level: shared CPUs} of the unified or data caches of one CPU."""
    levels: dict[int, list[int]] = {}
    for index in sorted(cache_dir.glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind in ("Unified", "Data") and level not in levels:
            levels[level] = _read_list(index / "shared_cpu_list")
    return levels
