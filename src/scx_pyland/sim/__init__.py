"""scx_pyland.sim: evaluate a policy offline, on a virtual clock.

A workload (built-in, your own, or a trace recorded with ``scx_pyland --record``)
runs on N virtual CPUs under one or more policies, each driven exactly as live by a
model of the BPF side and of the worker, and under a simple EEVDF-like model for
reference::

    from scx_pyland.sim import SimOptions, format_table, load_workload, simulate

    workload = load_workload("cyclictest-hogs")
    results = [simulate(workload, None), simulate(workload, "rustland"), simulate(workload, "fifo")]
    print(format_table(results))

Modules: ``engine`` (the virtual clock), ``machine`` (CPUs, tasks, accounts),
``kernel`` (bpf/pyland.bpf.c's rules), ``worker`` (the worker's loop and its cost
model), ``eevdf`` (the baseline), ``workload`` (the Task/Workload API),
``workloads`` (the built-in library), ``trace`` (recorded traces), ``report``
(results, the table), ``cli`` (``scx_pyland sim``). docs/sim.md says what is
modelled and where it departs from the kernel.
"""

from scx_pyland.sim.report import Result, Durations, format_table
from scx_pyland.sim.simulation import EEVDF, PolicyStartError, SimOptions, simulate
from scx_pyland.sim.trace import trace_workload
from scx_pyland.sim.worker import CostModel
from scx_pyland.sim.workload import (Channel, Recv, Run, Send, Sleep, SleepUntil, Task, Workload, WorkloadError,
                                     load_workload)

__all__ = ["Channel", "CostModel", "EEVDF", "PolicyStartError", "Recv", "Result", "Run", "Send", "SimOptions",
           "Sleep", "SleepUntil", "Task", "Durations", "Workload", "WorkloadError", "format_table",
           "load_workload", "simulate", "trace_workload"]
