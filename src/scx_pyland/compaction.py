"""vm.compact_unevictable_allowed: the worker sets it to 0 while it is attached, so
memory compaction never takes the worker's mmap lock to move its locked pages
(docs/design.md, the traps), and the system's own value comes back afterwards.

Whoever outlives the workers restores it. A worker's `finally` is not enough: a
worker killed by SIGKILL (the supervisor's own kill of a frozen worker, the OOM
killer, `docker stop`'s timeout) restores nothing, and the next worker would read
"0" as the system's value. So the supervisor reads the value before its first
worker and writes it back after its last; a worker restores it itself only when it
runs alone (--no-supervisor).

The one that restores (the *owner*) may itself be killed by SIGKILL (systemd's stop
timeout), and the next one would then read "0" as the system's value. So the owner
keeps the value it read in a file of the run directory (`ORIGINAL`, root only),
written before any worker sets 0 and removed once the value is back; it holds an
flock on it while it lives. The next owner that finds the file unlocked, with a
value in it, takes that value as the system's (its owner ended without restoring
it). One that finds it locked is not the owner (another supervisor lives): it
restores nothing and leaves the file alone.

Nothing here imports scx_pyland._bpf: the supervisor uses it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

SYSCTL = Path("/proc/sys/vm/compact_unevictable_allowed")
# The value before the first worker set 0, while its owner lives (or after it was
# killed before restoring it).
ORIGINAL = Path(os.environ.get("SCX_PYLAND_RUN_DIR", "/run/scx_pyland")) / "compact_unevictable_allowed.original"


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


class NotTheOwner(Exception):
    """Another live process (a supervisor, a worker alone) keeps the original value."""


def lock_original(original: Path) -> int:
    """An open descriptor on `original` (created 0600 in a 0700 directory if need
    be), locked (flock, exclusive) by us, and still the file at that path (an owner
    removes it when done). Raises NotTheOwner if another process holds the lock,
    OSError if the file cannot be made or opened."""
    original.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    while True:
        fd = os.open(original, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise NotTheOwner from None
        except OSError:
            os.close(fd)
            raise
        try:
            if os.fstat(fd).st_ino == os.stat(original).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)        # its owner removed it between our open and our lock: again


def saved_value(fd: int) -> str | None:
    """The value a previous owner kept in the file, if it holds one (digits, maybe
    signed); None for an empty or unreadable file."""
    text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    return text if text.lstrip("-").isdigit() else None


def keep_value(fd: int, value: str) -> None:
    """Write `value` into the locked file, alone. Raises OSError."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{value}\n".encode(), 0)


@contextlib.contextmanager
def restored(path: Path | None = SYSCTL, warn: Callable[[str], None] = print,
             original: Path | None = None) -> Iterator[None]:
    """Write the system's value of `path` back when the block ends, if it changed
    meanwhile (a read-only /proc/sys never changes, and is never written). The
    system's value is the one `path` holds now; with `original` (the run
    directory's file, see the module's docstring), the one a previous owner killed
    before restoring kept there, and it is kept there while the block runs. If
    another live process keeps that file, nothing is restored here."""
    if path is None:
        yield
        return
    fd = None
    before = read(path)
    if original is not None and before is not None:
        try:
            fd = lock_original(original)
            kept = saved_value(fd)
            if kept is not None:
                if kept != before:
                    warn(f"{path} is {before}, but a scx_pyland that ended without restoring it kept "
                         f"{kept} as the system's value ({original}): {kept} comes back at the end")
                before = kept
            else:
                keep_value(fd, before)
        except NotTheOwner:
            before = None       # another supervisor lives and restores it
        except OSError as err:
            warn(f"warning: cannot keep the value of {path} in {original} ({err.strerror}): if this "
                 f"process is killed by SIGKILL, {path} may stay 0")
            if fd is not None:
                os.close(fd)
                fd = None
    try:
        yield
    finally:
        try:
            if before is not None and read(path) != before:
                try:
                    write(path, before)
                except OSError as err:
                    warn(f"warning: cannot restore {path} to {before}: {err.strerror}")
            if fd is not None and read(path) == before:
                with contextlib.suppress(OSError):
                    os.unlink(original)     # back: nothing left to keep (still locked by us)
        finally:
            if fd is not None:
                os.close(fd)
