"""What a simulated workload is: tasks, each a small Python generator that says what
it does next.

A task's behaviour is a generator function. It yields actions and gets the virtual
time (ns) back from each ``yield`` once the action is done::

    def cyclictest(interval_ns=1_000_000, loop_ns=10_000):
        wake = yield Run(loop_ns)           # the time when the run was done
        while True:
            wake += interval_ns
            yield SleepUntil(wake)          # a periodic timer: absolute wake-ups
            yield Run(loop_ns)

Actions:

- ``Run(ns)``: use ns of CPU time (the task is runnable until it has; it may be
  preempted and resumed any number of times). Each completed Run is one unit of
  work ("ops") in the report.
- ``Sleep(ns)`` / ``SleepUntil(ns)``: block for ns, or until the virtual time ns
  (a time already past does not block at all, as clock_nanosleep does not).
- ``Send(channel, n=1)``: put n messages into a channel and wake a task waiting
  in ``Recv`` on it; takes no time and never blocks (channels are unbounded).
- ``Recv(channel)``: take one message, blocking until there is one.
- returning from the generator ends the task.

A :class:`Workload` is tasks on a number of CPUs for a duration. Behaviours are
built afresh for every policy simulated: a Task holds the generator function and its
arguments, never a running generator. Channels are plain tokens; the simulator keeps
their messages, per run.

A task's weight comes from its nice level (and scheduling class) as the kernel's
does: the load weights of kernel/sched/core.c's sched_prio_to_weight for the EEVDF
model, and sched_ext's weight, 100 for nice 0 (sched_weight_to_cgroup(), 1 for
SCHED_IDLE as the BPF side's task_weight() gives), in the records the policy gets.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# kernel/sched/core.c: sched_prio_to_weight[], nice -20 .. 19.
PRIO_TO_WEIGHT = (
    88761, 71755, 56483, 46273, 36291,
    29154, 23254, 18705, 14949, 11916,
    9548, 7620, 6100, 4904, 3906,
    3121, 2501, 1991, 1586, 1277,
    1024, 820, 655, 526, 423,
    335, 272, 215, 172, 137,
    110, 87, 70, 56, 45,
    36, 29, 23, 18, 15,
)
NICE_0_LOAD = 1024
# The load weight of SCHED_IDLE tasks (kernel/sched/sched.h: WEIGHT_IDLEPRIO).
IDLE_LOAD = 3
SCHED_CLASSES = ("normal", "batch", "idle")


def load_weight(nice: int, sched: str = "normal") -> int:
    """The kernel's load weight of a task (1024 for nice 0; 3 for SCHED_IDLE).
    Raises ValueError for a nice level outside -20..19 or an unknown class."""
    if sched not in SCHED_CLASSES:
        raise ValueError(f"unknown scheduling class {sched!r}: use one of {', '.join(SCHED_CLASSES)}")
    if not -20 <= nice <= 19:
        raise ValueError(f"nice {nice} is outside -20..19")
    return IDLE_LOAD if sched == "idle" else PRIO_TO_WEIGHT[nice + 20]


def scx_weight(nice: int, sched: str = "normal") -> int:
    """sched_ext's weight of a task, as the BPF side puts it in queued_task.weight:
    the load weight scaled to 100 for nice 0 and clamped to 1..10000, and 1 for
    SCHED_IDLE. Raises ValueError as load_weight() does."""
    if sched == "idle":
        load_weight(nice, sched)
        return 1
    weight = (load_weight(nice, sched) * 100 + NICE_0_LOAD // 2) // NICE_0_LOAD
    return min(max(weight, 1), 10_000)


def nice_of_scx_weight(weight: int) -> int:
    """The nice level whose sched_ext weight is nearest `weight` (the higher level on
    a tie: weight 1 is nice 19): how a recorded task's weight becomes a nice level."""
    return min(range(-20, 20), key=lambda nice: (abs(scx_weight(nice) - weight), -nice))


# -- actions -------------------------------------------------------------------------

@dataclass(slots=True, eq=False)
class Channel:
    """A message queue between tasks (a pipe, a socket): a token; the simulator keeps
    its messages."""

    name: str = ""


@dataclass(slots=True, frozen=True)
class Run:
    """Use ns of CPU time."""

    ns: int


@dataclass(slots=True, frozen=True)
class Sleep:
    """Block for ns of virtual time."""

    ns: int


@dataclass(slots=True, frozen=True)
class SleepUntil:
    """Block until the virtual time ns (no block if it is past)."""

    ns: int


@dataclass(slots=True, frozen=True)
class Send:
    """Put n messages into a channel (never blocks)."""

    channel: Channel
    n: int = 1


@dataclass(slots=True, frozen=True)
class Recv:
    """Take one message from a channel, blocking until there is one."""

    channel: Channel


Action = Run | Sleep | SleepUntil | Send | Recv
Behaviour = Callable[..., Iterator[Action]]


# -- tasks and workloads -------------------------------------------------------------

@dataclass(slots=True)
class Task:
    """One simulated task: a behaviour (a generator function, called with `args`
    afresh for every policy simulated) and how the kernel sees it.

    group: the report's task group (default: the name without a trailing "-N");
    nice and sched ("normal", "batch" or "idle") set its weights; cpus the CPUs it
    may run on (None: all); kthread makes it a kernel thread, which the BPF side never
    sends to the policy; start_ns is when it is created (forked)."""

    name: str
    behaviour: Behaviour
    args: tuple = ()
    group: str = ""
    nice: int = 0
    sched: str = "normal"
    cpus: frozenset[int] | None = None
    kthread: bool = False
    start_ns: int = 0

    def __post_init__(self) -> None:
        if not self.group:
            self.group = re.sub(r"[-_.]\d+$", "", self.name) or self.name
        if self.cpus is not None:
            self.cpus = frozenset(self.cpus)
        load_weight(self.nice, self.sched)    # refuse a bad nice level or class now


@dataclass(slots=True)
class Workload:
    """Tasks on nr_cpus virtual CPUs, simulated for duration_ns (ns)."""

    name: str
    tasks: list[Task] = field(default_factory=list)
    nr_cpus: int = 2
    duration_ns: int = 10_000_000_000
    description: str = ""

    def add(self, task: Task) -> Task:
        """Add a task; returns it."""
        self.tasks.append(task)
        return task

    def check(self) -> None:
        """Raise WorkloadError if the workload cannot be simulated: no tasks, no CPUs,
        duplicate names, CPUs a task may use that do not exist."""
        if self.nr_cpus < 1:
            raise WorkloadError(f"workload {self.name!r}: needs at least one CPU, not {self.nr_cpus}")
        if not self.tasks:
            raise WorkloadError(f"workload {self.name!r} has no tasks")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise WorkloadError(f"workload {self.name!r}: two tasks have the same name")
        for t in self.tasks:
            if t.cpus is not None and (not t.cpus or not t.cpus <= set(range(self.nr_cpus))):
                raise WorkloadError(f"workload {self.name!r}: task {t.name!r} may run on CPUs "
                                    f"{sorted(t.cpus)}, but there are CPUs 0..{self.nr_cpus - 1}")
            if not callable(t.behaviour):
                raise WorkloadError(f"workload {self.name!r}: task {t.name!r} has no behaviour function")


class WorkloadError(Exception):
    """A workload that cannot be loaded or simulated; the message says why."""


def load_workload(spec: str) -> Workload:
    """A built-in workload's name (scx_pyland.sim.workloads.BUILTIN) or FILE.py:NAME,
    where NAME is a Workload or a function of no arguments that returns one (the
    file is compiled afresh). Raises WorkloadError, with a message a user can act on,
    whatever went wrong."""
    from scx_pyland.sim.workloads import BUILTIN
    if spec in BUILTIN:
        workload = BUILTIN[spec]()
    else:
        path_text, sep, name = spec.rpartition(":")
        if not sep or not path_text.endswith(".py") or not name:
            raise WorkloadError(f"unknown workload {spec!r}: use one of {', '.join(BUILTIN)}, "
                                f"FILE.py:NAME, or a trace recorded with --record")
        path = Path(path_text)
        if not path.is_file():
            raise WorkloadError(f"no workload file {path_text!r}")
        module = types.ModuleType(path.stem)
        module.__file__ = str(path)
        previous = sys.modules.get(path.stem)
        sys.modules[path.stem] = module     # dataclasses look their module up there
        try:
            exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)
        except Exception as err:
            raise WorkloadError(f"cannot load workload file {path_text!r}: {type(err).__name__}: {err}") from None
        finally:
            if previous is None:
                sys.modules.pop(path.stem, None)
            else:
                sys.modules[path.stem] = previous
        obj = getattr(module, name, None)
        if obj is None:
            raise WorkloadError(f"workload file {path_text!r} has no {name!r}")
        try:
            workload = obj() if callable(obj) and not isinstance(obj, Workload) else obj
        except Exception as err:
            raise WorkloadError(f"{spec}: {type(err).__name__}: {err}") from None
        if not isinstance(workload, Workload):
            raise WorkloadError(f"{spec} is not a scx_pyland.sim.Workload (nor a function returning one)")
    workload.check()
    return workload
