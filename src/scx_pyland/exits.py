"""How a scheduler run ends: the kernel's exit kinds, the worker's and the supervisor's
exit statuses, the exit info the worker hands to the supervisor, and what a kernel
message means where it does not say it (`explain`)."""

from __future__ import annotations

import enum
import json
import os
import re

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
    CANNOT_START = 69  # no sched_ext, no privilege, busy, verifier, the policy cannot be built: final
    POLICY_FAILED = 70  # the policy raised an exception
    START_FAILED = 73  # could not start this time (no memory, a ring, a program run): restartable
    TRANSPORT_FAILED = 74  # reading or writing the rings to the BPF side failed (EX_IOERR)
    KERNEL_EXIT = 75   # the kernel unregistered the scheduler (UEI exit): restartable


class SupervisorStatus(enum.IntEnum):
    """The supervisor's process exit status (what ``scx_pyland`` returns by default)."""

    STOPPED = 0         # stopped on request (SIGINT/SIGTERM)
    USAGE = 2           # bad command line
    CANNOT_START = 69   # the worker cannot start at all: not retried
    GAVE_UP = 71        # too many restarts within the window: the restart budget is spent
    SYSRQ_FINAL = 72    # sysrq-S with --sysrq-final: the operator's reset is final


# The kernel's message when enabling a scheduler failed with -EBUSY (-16). From 7.2
# the kernel reserves SCHED_DEADLINE bandwidth for each CPU's sched_ext server
# (ext_server) as a scheduler attaches (dl_server_attach_bw() in scx_root_enable:
# the admission test of deadline tasks, against kernel.sched_rt_runtime_us of
# sched_rt_period_us of each root domain's CPUs); that is where it fails so.
ENABLE_BUSY = re.compile(r"scx_root_enable\(\) failed \(-16\)")
EXT_SERVER_ADMISSION = (
    "the kernel could not reserve SCHED_DEADLINE bandwidth for its sched_ext server (ext_server) "
    "on a CPU (the kernel log names it): the deadline tasks running leave no room under "
    "/proc/sys/kernel/sched_rt_runtime_us; ending some of them, or raising sched_rt_runtime_us "
    "(-1: no limit), frees it")


def kernel_release(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of a Linux release string ('7.3.4+deb13-amd64'); of the running
    kernel by default; (0, 0) if it cannot be read."""
    match = re.match(r"(\d+)\.(\d+)", release if release is not None else os.uname().release)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def explain(message: str, release: str | None = None) -> str | None:
    """What the kernel refused, in words, where its message does not say it (and
    what frees it); None for any other message. `release`: the kernel's (default:
    the running one)."""
    if ENABLE_BUSY.search(message) and kernel_release(release) >= (7, 2):
        return EXT_SERVER_ADMISSION
    return None


def with_explanation(message: str) -> str:
    """`message`, followed by what it means where `explain` knows."""
    meaning = explain(message)
    return f"{message}: {meaning}" if meaning else message


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
