"""`scx_pyland status`: is a worker of ours attached and scheduling?

It reads three things, none of which can block on the worker (no /proc file of the
worker's is opened: reading some of them takes its mmap lock, see docs/design.md):

    the supervisor's status file   state, worker pid, restarts, last exit, policy
    /sys/kernel/sched_ext          the kernel's state and the attached ops' name
    the worker's statistics file   its writer's pid and when it last published

and prints one line (or JSON). It is the liveness and readiness check of every
deployment (systemd, a container's health check, Kubernetes' exec probes), so its
exit status is the answer: 0 when all of these hold, 1 otherwise (the line says
which one failed), 2 for bad arguments:

- the kernel's sched_ext state reads ``enabled`` and the attached ops are ours
  (their name starts with ``pyland_``);
- the supervisor is alive and says ``running`` with a live worker (without a
  supervisor, ``--no-supervisor``: the statistics' writer is alive);
- the worker's statistics, when it publishes them, moved within ``max_age`` seconds
  (it publishes about once a second while scheduling, idle or not).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scx_pyland import files, stats
from scx_pyland.files import SCHED_EXT
OPS_PREFIX = "pyland_"      # the ops name is "pyland_<version>" (ext/scheduler.cpp)
RUNNING_STATES = ("starting", "running", "restarting")
# The worker publishes about once a second; under load in a guest it can lag a few.
DEFAULT_MAX_AGE_S = 30.0


class Exit:
    """`scx_pyland status`'s exit statuses."""

    SCHEDULING = 0      # a worker of ours is attached and scheduling
    NOT_SCHEDULING = 1  # anything else: not attached, not ours, starting, stale
    USAGE = 2           # bad arguments


@dataclass(slots=True)
class SchedExt:
    """What /sys/kernel/sched_ext says."""

    state: str | None           # None: no sched_ext in this kernel
    ops: str | None             # the attached scheduler's name, if any

    @property
    def ours(self) -> bool:
        return self.state == "enabled" and (self.ops or "").startswith(OPS_PREFIX)


def read_sched_ext(directory: Path = SCHED_EXT) -> SchedExt:
    return SchedExt(files.sched_ext_state(directory) or None, files.sched_ext_ops(directory) or None)


def read_supervisor_status(path: Path) -> dict:
    """The supervisor's status file, or {} when there is none (or it cannot be read)."""
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def unreadable(path: Path) -> bool:
    """Whether `path` is there but not for us: a root-only file, or any file in the
    supervisor's root-only directory (0700), where it cannot even be looked at."""
    try:
        path.stat()
    except PermissionError:
        return True
    except OSError:
        return False
    return not os.access(path, os.R_OK)


def alive(pid: object) -> bool:
    """Whether a process exists (a stat of /proc/PID, which never waits on it)."""
    return isinstance(pid, int) and pid > 0 and os.path.exists(f"/proc/{pid}")


@dataclass(slots=True)
class Status:
    scheduling: bool
    reason: str                 # why not scheduling ("" when scheduling)
    attached: bool              # the kernel runs a scheduler of ours
    sched_ext_state: str | None
    ops: str | None
    supervisor_state: str | None
    supervisor_pid: int | None
    worker_pid: int | None
    policy: str | None
    restarts: int
    last_exit: dict | None
    stats_age_s: float | None   # how long ago the worker published (None: no statistics)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def exit_status(self) -> int:
        return Exit.SCHEDULING if self.scheduling else Exit.NOT_SCHEDULING

    def line(self) -> str:
        head = (f"scheduling: attached as {self.ops}" if self.scheduling
                else f"not scheduling: {self.reason}")
        parts = [head, f"policy {self.policy or 'unknown'}",
                 f"worker pid {self.worker_pid if self.worker_pid else 'none'}",
                 f"restarts {self.restarts}",
                 f"last exit: {(self.last_exit or {}).get('reason') or 'none'}"]
        return "scx_pyland: " + ", ".join(parts)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "exit_status": self.exit_status}, indent=1)


def describe_ended(sup: dict) -> str:
    """Why a status file's supervisor is not supervising."""
    state = sup.get("state")
    if state in RUNNING_STATES:
        return f"the supervisor (pid {sup.get('supervisor_pid')}) is gone"
    status = f" with status {sup['exit_status']}" if "exit_status" in sup else ""
    return f"the supervisor has {state or 'stopped'}{status}"


def read_status(status_file: Path, sched_ext_dir: Path = SCHED_EXT,
                stats_path: Path = stats.DEFAULT_PATH, max_age: float = DEFAULT_MAX_AGE_S) -> Status:
    kernel = read_sched_ext(sched_ext_dir)
    sup = read_supervisor_status(status_file)
    snapshot = None
    try:
        snapshot = stats.read_snapshot(stats_path)
    except stats.NoScheduler:
        pass
    supervisor_pid = sup.get("supervisor_pid")
    supervised = bool(sup) and alive(supervisor_pid) and sup.get("state") in RUNNING_STATES
    worker_pid = sup.get("worker_pid") if supervised else (snapshot.pid if snapshot else None)
    age = (time.monotonic_ns() - snapshot.time_ns) / 1e9 if snapshot else None

    if kernel.state is None:
        reason = f"this kernel has no sched_ext ({sched_ext_dir} is missing)"
    elif not supervised and not snapshot:
        if sup:
            reason = describe_ended(sup)
        elif unreadable(status_file):
            reason = f"cannot read {status_file}: it is readable by root only"
        elif kernel.ours:
            # Attached by a scx_pyland whose files are elsewhere: another --status-file,
            # or a container's (its /run is its own: ask there, `docker exec ... status`).
            reason = (f"{kernel.ops} is attached, but not by a scx_pyland seen from here "
                      f"(no {status_file}; in a container, run scx_pyland status inside it)")
        else:
            reason = f"no scx_pyland is running (no {status_file})"
    elif supervised and sup.get("state") != "running":
        reason = f"the supervisor is {sup.get('state')} the worker"
    elif not alive(worker_pid):
        reason = "no worker is running"
    elif kernel.state != "enabled":
        reason = f"sched_ext is {kernel.state}"
    elif not kernel.ours:
        reason = f"another scheduler is attached ({kernel.ops})"
    elif snapshot and snapshot.pid == worker_pid and age is not None and age > max_age:
        reason = f"the worker has not published statistics for {age:.0f} s"
    else:
        reason = ""
    return Status(
        scheduling=not reason, reason=reason, attached=kernel.ours,
        sched_ext_state=kernel.state, ops=kernel.ops,
        supervisor_state=sup.get("state"), supervisor_pid=supervisor_pid if supervised else None,
        worker_pid=worker_pid if alive(worker_pid) else None,
        policy=sup.get("policy"), restarts=int(sup.get("restarts") or 0),
        last_exit=sup.get("last_exit"),
        stats_age_s=round(age, 3) if age is not None else None,
        stats=dict(snapshot.values) if snapshot else {})
