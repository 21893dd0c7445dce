"""CPU shares of busy loops follow their weights as the kernel's weights say, under
the EEVDF model and under rustland, as vm-tests/test_promises.py measures them in a
guest (nice 0 vs nice 19 on one CPU: 98.5 / 1.5 under EEVDF, 98.7 / 1.3 under
rustland); fifo knows no weights."""

from __future__ import annotations

import pytest

from scx_pyland.sim import Task, Workload, simulate
from scx_pyland.sim.report import fair_shares
from scx_pyland.sim.workloads import hog, nice_classes, nice_hogs

NICE_0_VS_19 = 1024 / (1024 + 15)


@pytest.mark.parametrize("policy", [None, "rustland"], ids=["eevdf", "rustland"])
def test_nice_0_against_nice_19_on_one_cpu_gets_what_the_weights_say(policy):
    result = simulate(nice_hogs(), policy)
    assert result.groups["nice0"].weight_share == pytest.approx(NICE_0_VS_19, abs=0.001)
    assert result.groups["nice0"].share == pytest.approx(NICE_0_VS_19, abs=0.01)
    assert result.groups["nice19"].share > 0.005


@pytest.mark.parametrize("policy", [None, "rustland"], ids=["eevdf", "rustland"])
def test_nice_batch_and_idle_share_one_cpu_by_their_weights(policy):
    """The guest's: EEVDF 49.6 / 0.7 / 49.6 / 0.1 %, rustland 49.0 / 1.1 / 49.0 / 1.0 %."""
    shares = {name: g.share for name, g in simulate(nice_classes(), policy).groups.items()}
    assert shares["nice0"] == pytest.approx(0.495, abs=0.02)
    assert shares["batch"] == pytest.approx(0.495, abs=0.02)
    assert shares["nice19"] < 0.02 and shares["idle"] < 0.02
    assert min(shares.values()) > 0


def test_fifo_gives_equal_turns_whatever_the_weights():
    result = simulate(nice_hogs(), "fifo")
    assert result.groups["nice0"].share == pytest.approx(0.5, abs=0.02)


def test_equal_hogs_on_all_cpus_share_them_equally():
    workload = Workload("hogs", [Task(f"hog-{i}", hog, group=f"g{i}") for i in range(4)], nr_cpus=2,
                        duration_ns=2_000_000_000)
    for policy in (None, "rustland", "fifo"):
        result = simulate(workload, policy)
        assert all(g.share == pytest.approx(0.25, abs=0.03) for g in result.groups.values()), policy


def test_the_fair_share_gives_a_task_no_more_than_it_asks_for_and_the_rest_by_weight():
    both = frozenset({0, 1})
    shares = fair_shares([(1024, both, 1.0), (1024, both, 1.0), (1024, both, 0.1)])
    assert shares == pytest.approx([0.95, 0.95, 0.1])
    assert fair_shares([(1024, frozenset({0}), 1.0), (15, frozenset({0}), 1.0)]) == pytest.approx(
        [1024 / 1039, 15 / 1039])
    # No task gets more than one CPU; CPU sets that do not overlap are apart.
    assert fair_shares([(88761, both, 1.0), (15, both, 1.0), (1024, frozenset({2}), 1.0)]) == pytest.approx(
        [1.0, 1.0, 1.0])
