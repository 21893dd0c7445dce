"""One simulation: a workload under one policy (the kernel-half model and the
simulated worker) or under the EEVDF baseline model, for a duration of virtual time
(or until every task of the workload has ended).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from scx_pyland.policies import load_policy_class
from scx_pyland.policy import Policy, PolicyConfig
from scx_pyland.sim.eevdf import EevdfModel
from scx_pyland.sim.kernel import PylandKernel
from scx_pyland.sim.machine import Machine, SimTask
from scx_pyland.sim.report import Result, build_result
from scx_pyland.sim.worker import CostModel, SimWorker
from scx_pyland.sim.workload import Workload

#: What the report calls the baseline.
EEVDF = "eevdf"
WORKER_PID = 1


class PolicyStartError(Exception):
    """A policy whose constructor raised; the message says which and what."""


@dataclass(slots=True, frozen=True)
class SimOptions:
    """The simulated machine and scheduler's settings, as scx_pyland's own options
    (times in ns). duration_ns None: the workload's own."""

    hz: int = 250
    slice_ns: int = 20_000_000
    slice_min_ns: int = 1_000_000
    max_user_wait_ns: int = 50_000_000
    rescue_after_ns: int = 2_500_000_000
    percpu_local: bool = False
    costs: CostModel = field(default_factory=CostModel)
    duration_ns: int | None = None
    #: (at_ns, for_ns): the worker is stopped (kill -STOP) at at_ns for for_ns.
    worker_stops: tuple[tuple[int, int], ...] = ()


def simulate(workload: Workload, policy: str | type[Policy] | None, options: SimOptions = SimOptions()) -> Result:
    """Simulate `workload` under `policy` (a --policy spec, a Policy subclass) or, with
    None, the EEVDF baseline model. Raises PolicyLoadError for a spec that names no
    policy, PolicyStartError when its constructor raises, WorkloadError for a
    workload that cannot run (or a behaviour that yields no action). What the policy
    raises while it schedules is handled as live: fifo takes over (Result.notes)."""
    workload.check()
    duration = options.duration_ns or workload.duration_ns
    machine = Machine(workload, options.hz, options.costs.switch_ns)
    started = time.perf_counter()
    if policy is None:
        machine.run(EevdfModel(machine), duration)
        return build_result(EEVDF, "eevdf", machine, machine.engine.now, None, None, time.perf_counter() - started)
    cls = load_policy_class(policy) if isinstance(policy, str) else policy
    config = PolicyConfig(slice_ns=options.slice_ns, slice_min_ns=options.slice_min_ns,
                          nr_cpus=workload.nr_cpus, percpu_local=options.percpu_local)
    try:
        instance = cls(config)
    except Exception as err:
        raise PolicyStartError(f"the {getattr(cls, 'name', '') or cls.__name__} policy failed to start: "
                               f"{type(err).__name__}: {err}") from err
    worker_task = machine.add(SimTask(pid=WORKER_PID, name="scx_pyland", group="(worker)",
                                      allowed=frozenset(range(workload.nr_cpus)), weight=100, load=1024,
                                      is_worker=True))
    kernel = PylandKernel(machine, worker_task, slice_ns=options.slice_ns,
                          max_user_wait_ns=options.max_user_wait_ns, worker_stops=options.worker_stops)
    worker = SimWorker(kernel, instance, options.costs, rescue_after_ns=options.rescue_after_ns)
    machine.run(kernel, duration)
    name = policy if isinstance(policy, str) else instance.name
    return build_result(name, "pyland", machine, machine.engine.now, kernel, worker, time.perf_counter() - started)
