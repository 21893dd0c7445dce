"""How a scheduler run ends: the kernel's exit kinds, the worker's and the supervisor's
exit statuses, and the exit info the worker hands to the supervisor."""

from __future__ import annotations

import enum
import json

from scx_pyland.files import write_json_atomic


class ExitKind(enum.IntEnum):
    """The kernel's ``enum scx_exit_kind``; newer kernels add values, see :func:`describe`."""

    NONE = 0
    DONE = 1
    UNREG = 0x40
    UNREG_BPF = 0x41
    UNREG_KERN = 0x42
    SYSRQ = 0x43
    ERROR = 0x400
    ERROR_BPF = 0x401
    ERROR_STALL = 0x402


# exit_code bit 48: the kernel asks the scheduler to restart (e.g. after CPU hotplug).
ECODE_ACT_RESTART = 1 << 48


def kind_name(kind: int) -> str:
    """A name for any exit kind, known or not (classified by range)."""
    try:
        return ExitKind(kind).name
    except ValueError:
        return f"ERROR_0x{kind:x}" if kind >= ExitKind.ERROR else f"UNREG_0x{kind:x}"


def is_error(kind: int) -> bool:
    """Kinds from 0x400 up are errors; below are unregistrations."""
    return kind >= ExitKind.ERROR


class WorkerStatus(enum.IntEnum):
    """The worker's process exit status, which the supervisor acts on."""

    STOPPED = 0        # stop requested (SIGINT/SIGTERM): do not restart
    USAGE = 2          # bad command line
    CANNOT_START = 69  # no sched_ext, no privilege, busy, verifier: retrying will not help
    POLICY_FAILED = 70  # the policy raised an exception
    TRANSPORT_FAILED = 74  # reading or writing the rings to the BPF side failed (EX_IOERR)
    KERNEL_EXIT = 75   # the kernel unregistered the scheduler (UEI exit): restartable


class SupervisorStatus(enum.IntEnum):
    """The supervisor's process exit status (what ``scx_pyland`` returns by default)."""

    STOPPED = 0         # stopped on request (SIGINT/SIGTERM)
    USAGE = 2           # bad command line
    CANNOT_START = 69   # the worker cannot start at all: not retried
    GAVE_UP = 71        # too many restarts within the window: the restart budget is spent
    SYSRQ_FINAL = 72    # sysrq-S with --sysrq-final: the operator's reset is final


def write_exit_info(path: str, **fields: object) -> None:
    """Write the worker's exit info as JSON for the supervisor, atomically: the
    supervisor never reads half of it."""
    write_json_atomic(path, fields)


def read_exit_info(path: str) -> dict:
    """What the worker wrote with :func:`write_exit_info`; empty if it wrote nothing
    (it was killed or crashed) or something unreadable."""
    try:
        with open(path) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
