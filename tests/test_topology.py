"""Topology parsing on fake sysfs trees."""

from __future__ import annotations

import subprocess
from pathlib import Path

from scx_pyland.topology import parse_cpu_list, read_topology


def fake_sysfs(root: Path, online: str, cores: dict[int, str], l2: dict[int, str], l3: dict[int, str]) -> Path:
    (root / "online").parent.mkdir(parents=True, exist_ok=True)
    (root / "online").write_text(online + "\n")
    for cpu in parse_cpu_list(online):
        d = root / f"cpu{cpu}"
        (d / "topology").mkdir(parents=True)
        (d / "topology" / "thread_siblings_list").write_text(cores[cpu] + "\n")
        for i, (level, kind, shared) in enumerate([(1, "Data", str(cpu)), (1, "Instruction", str(cpu)),
                                                   (2, "Unified", l2[cpu]), (3, "Unified", l3[cpu])]):
            idx = d / "cache" / f"index{i}"
            idx.mkdir(parents=True)
            (idx / "level").write_text(f"{level}\n")
            (idx / "type").write_text(f"{kind}\n")
            (idx / "shared_cpu_list").write_text(shared + "\n")
    return root


def test_cpu_lists():
    assert parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpu_list("5") == [5]
    assert parse_cpu_list("") == []


def test_smt_pairs_share_a_core_and_an_l2(tmp_path):
    root = fake_sysfs(tmp_path, "0-3", cores={0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"},
                      l2={0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}, l3={c: "0-3" for c in range(4)})
    topo = read_topology(root)
    assert topo.smt_enabled
    assert topo.core_siblings[2] == [0, 2]
    assert topo.l2_siblings[1] == [1, 3]
    assert topo.l3_siblings[0] == [0, 1, 2, 3]


def test_no_smt(tmp_path):
    root = fake_sysfs(tmp_path, "0-1", cores={0: "0", 1: "1"}, l2={0: "0", 1: "1"}, l3={0: "0-1", 1: "0-1"})
    topo = read_topology(root)
    assert not topo.smt_enabled
    assert topo.domains(0) == {0: [0], 1: [1]}


def test_several_l3_domains(tmp_path):
    cpus = range(8)
    root = fake_sysfs(tmp_path, "0-7", cores={c: str(c) for c in cpus}, l2={c: str(c) for c in cpus},
                      l3={c: "0-3" if c < 4 else "4-7" for c in cpus})
    topo = read_topology(root)
    assert topo.l3_siblings[1] == [0, 1, 2, 3]
    assert topo.l3_siblings[6] == [4, 5, 6, 7]


def test_offline_cpus_are_left_out(tmp_path):
    root = fake_sysfs(tmp_path, "0,2-3", cores={0: "0,1", 2: "2,3", 3: "2,3"},
                      l2={0: "0,1", 2: "2,3", 3: "2,3"}, l3={c: "0-3" for c in (0, 2, 3)})
    topo = read_topology(root)
    assert topo.online == [0, 2, 3]
    assert topo.core_siblings[0] == [0]
    assert topo.l3_siblings[2] == [0, 2, 3]


def lscpu_groups() -> dict[str, dict[int, list[int]]]:
    """lscpu's view of this machine, for each of core, L2 and L3: cpu -> the online
    CPUs with the same id (levels lscpu has no id for are left out)."""
    out = subprocess.run(["lscpu", "-p=CPU,CORE,CACHE"], capture_output=True, text=True, check=True).stdout
    header = next(line for line in out.splitlines() if line.startswith("# CPU,"))
    rows = []
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        row = {}
        # The caches are columns of their own ("L1d,L1i,L2,L3") or one ("L1d:L1i:L2:L3").
        for column, value in zip(header[2:].split(","), line.split(",")):
            row.update(zip(column.split(":"), value.split(":")))
        rows.append(row)
    groups = {}
    for name, column in (("core", "Core"), ("l2", "L2"), ("l3", "L3")):
        if any(not row.get(column) for row in rows):
            continue
        groups[name] = {int(row["CPU"]): [int(other["CPU"]) for other in rows if other[column] == row[column]]
                        for row in rows}
    return groups


def test_the_real_machine_reads_as_lscpu_sees_it():
    topo = read_topology()
    groups = lscpu_groups()
    assert "core" in groups
    assert topo.online == sorted(groups["core"])
    assert topo.core_siblings == groups["core"]
    for name, siblings in (("l2", topo.l2_siblings), ("l3", topo.l3_siblings)):
        if name in groups:
            assert siblings == groups[name], name
