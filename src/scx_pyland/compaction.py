"""vm.compact_unevictable_allowed: the worker sets it to 0 while it is attached, so
memory compaction never takes the worker's mmap lock to move its locked pages
(docs/design.md, the traps), and the system's own value comes back afterwards.

Whoever outlives the workers restores it. A worker's `finally` is not enough: a
worker killed by SIGKILL (the supervisor's own kill of a frozen worker, the OOM
killer, `docker stop`'s timeout) restores nothing, and the next worker would read
"0" as the system's value. So the supervisor reads the value before its first
worker and writes it back after its last; a worker restores it itself only when it
runs alone (--no-supervisor).

Nothing here imports scx_pyland._bpf: the supervisor uses it too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

SYSCTL = Path("/proc/sys/vm/compact_unevictable_allowed")


def read(path: Path = SYSCTL) -> str | None:
    """The value now; None when it cannot be read (no such sysctl, no /proc)."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def write(path: Path, value: str) -> None:
    """Raises OSError (read-only /proc/sys in a container, no privilege)."""
    with open(path, "w") as f:
        f.write(value)


@contextlib.contextmanager
def restored(path: Path | None = SYSCTL, warn: Callable[[str], None] = print) -> Iterator[None]:
    """Write the value `path` holds now back when the block ends, if it changed
    meanwhile (a read-only /proc/sys never changes, and is never written)."""
    before = read(path) if path else None
    try:
        yield
    finally:
        if before is not None and read(path) != before:
            try:
                write(path, before)
            except OSError as err:
                warn(f"warning: cannot restore {path} to {before}: {err.strerror}")
