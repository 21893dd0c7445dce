"""The files scx_pyland shares with the kernel and with its other processes, each
read or written in one place: the kernel's sched_ext state under
/sys/kernel/sched_ext, and JSON files rewritten atomically (the worker's exit info,
the supervisor's status file, the benchmark's results), so a reader never sees half
of one. It imports nothing of scx_pyland: the supervisor (which never loads BPF), the
benchmarks and the VM tests use it too."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

SCHED_EXT = Path("/sys/kernel/sched_ext")


def sched_ext_state(root: Path = SCHED_EXT) -> str | None:
    """`disabled`, `enabling`, `enabled`, `disabling`; None if it cannot be read (no
    sched_ext). `root` is another directory only in tests."""
    try:
        return (root / "state").read_text().strip()
    except OSError:
        return None


def sched_ext_ops(root: Path = SCHED_EXT) -> str:
    """The attached scheduler's ops name with its version suffix; "" if none."""
    try:
        return (root / "root" / "ops").read_text().strip()
    except OSError:
        return ""


def enable_seq(root: Path = SCHED_EXT) -> int | None:
    """How many times a sched_ext scheduler was enabled since boot; None if unknown."""
    try:
        return int((root / "enable_seq").read_text())
    except (OSError, ValueError):
        return None


def write_json_atomic(path: Path | str, data: object, *, indent: int | None = None,
                      durable: bool = False) -> None:
    """Write `data` as JSON to `path` (mode 0600): into a new file beside it first, then
    renamed over it, so a reader sees the old file or the new one, never half of one.
    `durable`: also fsync before the rename, for results that must survive a crash."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=indent)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
