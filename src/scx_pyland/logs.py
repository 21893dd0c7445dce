"""Log lines on stderr, which the supervisor and its workers share.

stderr may be a terminal, a pipe (in a container, the one containerd-shim drains),
a regular file (`scx_pyland --stats 2 > sched.log 2>&1`, systemd's
StandardError=file: or append:) or a socket (systemd's StandardError=journal, the
default of a service). Three rules keep every line whole and each one there
exactly once, whatever it is:

- A regular file is written in append mode. The shell's `>` opens it without
  O_APPEND, so each open file description writing it has an offset of its own and
  writes over what another wrote since. The supervisor sets O_APPEND on the
  description it shares with its workers (`append_if_file`); every descriptor a
  worker writes lines to shares that description.
- A message goes out in one write() (`write_line`): a line of the supervisor and
  one of the worker may follow each other, never cut into each other.
- The worker's lines while it schedules (--stats, reloads, policy errors) never
  wait on another user-space task: the worker schedules every task, so a write
  that waits for a reader it must schedule first never ends. What may make a write
  wait decides how they go out (`open_stats_stderr`, `try_write_line`):
  - a regular file never waits for a reader: a duplicate of stderr, appending like
    every other line;
  - a pipe's reader, a pseudo-terminal's (a terminal emulator, sshd, tmux, `docker
    run -t`: the master side of a pty) and a socket's peer are user-space tasks.
    A pipe or terminal is opened again through /proc/self/fd/2 with O_NONBLOCK, so
    the flag stays off the description the supervisor (and the shell) shares and
    blocks on, and a line is dropped when it is full. A socket (the journal's
    stream) cannot be opened again through /proc: a duplicate of it, each line sent
    with MSG_DONTWAIT, which never waits and leaves the shared description alone;
  - any other character device (a virtual console, a serial line, /dev/console, a
    VM's virtio console port) is drained by its driver: the kernel, or the
    hypervisor behind a virtio port, never a task of this machine. Some of them
    allow one open at a time (a virtio port: EBUSY), so when the non-blocking open
    fails the lines go through a duplicate of stderr, written only when poll() says
    the device takes a write now (its output not stopped by ^S, not full); such a
    write waits at most for the driver. A pty is never written that way: if it
    cannot be opened again, the lines wait in `NonBlockingLog` until the worker has
    detached.
  A pipe takes a write of up to PIPE_BUF bytes whole or not at all; a terminal may
  take part of one when it is full: the rest goes out before any later line, or
  that line is dropped, so no line of the worker's is cut into by its next one.

Nothing here imports scx_pyland._bpf: the supervisor uses it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import stat
import sys

STDERR = 2
# Descriptors of `open_stats_stderr` that are sockets, and their socket objects
# (made once, before the worker attaches): `try_write_line` sends through them.
_SOCKETS: dict[int, socket.socket] = {}
# Descriptors of `open_stats_stderr` that block but are drained by a driver, each
# with a poll object (made once) that says whether a write would wait now.
_POLLED: dict[int, select.poll] = {}
# The majors of pseudo-terminals (Documentation/admin-guide/devices.txt): BSD pty
# masters (2) and slaves (3), Unix98 slaves (136-143); and /dev/tty (5, 0), which
# may be one, and /dev/ptmx (5, 2). Their reader is a user-space task.
_PTY_MAJORS = frozenset({2, 3, *range(136, 144)})
_PTY_DEVICES = frozenset({(5, 0), (5, 2)})
# What a full terminal did not take of the last line written to a descriptor.
_UNFINISHED: dict[int, bytes] = {}


def is_regular_file(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


def is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def is_drained_by_a_driver(fd: int) -> bool:
    """Whether `fd` is a character device whose output only its driver (the kernel,
    or a hypervisor behind a virtio port) drains: a console, a serial line, a
    virtio port; not a pseudo-terminal, whose reader is a user-space task."""
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    if not stat.S_ISCHR(st.st_mode):
        return False
    device = (os.major(st.st_rdev), os.minor(st.st_rdev))
    return device[0] not in _PTY_MAJORS and device not in _PTY_DEVICES


def append_if_file(fd: int = STDERR) -> None:
    """When `fd` writes a regular file, make its open file description append, so
    that every process sharing it (the supervisor, its workers, whoever else the
    shell gave it to) writes at the end instead of over each other. A description
    systemd opened with StandardError=append: already does."""
    if not is_regular_file(fd):
        return
    with contextlib.suppress(OSError):
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        if not flags & os.O_APPEND:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_APPEND)


def write_line(fd: int, message: str) -> None:
    """Write `message` and a newline in one write() (looping only on a short write,
    which a blocking descriptor makes only when interrupted or full), so another
    process's line never lands inside it. A line that cannot be written is lost:
    a log line is never worth an exception in the supervisor or the worker."""
    data = (message + "\n").encode(errors="replace")
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(fd, data):]


def log(message: str) -> None:
    """One message on stderr, after whatever Python's own sys.stderr still holds."""
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
    write_line(STDERR, message)


def open_stats_stderr() -> int:
    """A descriptor on stderr for lines the worker writes while it schedules, which
    must never wait on another user-space task (the module's docstring has the
    rules): a duplicate of stderr on a regular file or a socket (each line sent
    with MSG_DONTWAIT), a new non-blocking open of a pipe or terminal, or, where a
    device drained by its driver cannot be opened again (a virtio console port:
    EBUSY), a duplicate written only when poll() says it takes a write. Raises
    OSError when none of these can be had (a pty or a pipe that cannot be opened
    again)."""
    if is_regular_file(STDERR):
        return fcntl.fcntl(STDERR, fcntl.F_DUPFD_CLOEXEC, 3)
    if is_socket(STDERR):
        # socket() from a descriptor leaves its flags as they are (no default
        # timeout is set): O_NONBLOCK never reaches the supervisor's description.
        sock = socket.socket(fileno=fcntl.fcntl(STDERR, fcntl.F_DUPFD_CLOEXEC, 3))
        _SOCKETS[sock.fileno()] = sock
        return sock.fileno()
    try:
        return os.open(f"/proc/self/fd/{STDERR}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        if not is_drained_by_a_driver(STDERR):
            raise
    return polled_duplicate(STDERR)


def polled_duplicate(fd: int) -> int:
    """A duplicate of `fd` that `try_write_line` writes only when poll() says a
    write goes through now; for a device drained by its driver, where such a write
    waits at most for the driver (a race with another writer, or part of a line on a
    terminal). Raises OSError if `fd` cannot be duplicated."""
    dup = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    poller = select.poll()
    poller.register(dup, select.POLLOUT)
    _POLLED[dup] = poller
    return dup


def try_write_line(fd: int, message: str) -> bool:
    """Write one line through a descriptor of `open_stats_stderr` in one write();
    False when it was dropped (nobody drains the pipe right now, or nobody ever
    will, or the device does not take a write now). A line is far below PIPE_BUF,
    so a pipe takes all of it or none, and a local stream socket sends it in one
    buffer or not at all."""
    data = (message + "\n").encode(errors="replace")
    try:
        sock = _SOCKETS.get(fd)
        if sock is not None:
            sock.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
            return True
        poller = _POLLED.get(fd)
        if poller is not None and not any(events & select.POLLOUT for _, events in poller.poll(0)):
            return False    # output stopped or full: dropped, never waited for
        if rest := _UNFINISHED.get(fd):
            _UNFINISHED[fd] = rest = rest[os.write(fd, rest):]
            if rest:
                return False
        written = os.write(fd, data)
        if written < len(data):     # a terminal took part of it: the rest goes first next time
            _UNFINISHED[fd] = data[written:]
    except OSError:     # full (EAGAIN), or the reader is gone (EPIPE): dropped
        return False
    return True


# A pipe takes a write of up to PIPE_BUF bytes whole or not at all.
PIPE_BUF = 4096


class NonBlockingLog:
    """Messages the worker logs while it schedules (a policy's traceback, a reload's
    outcome, a rescue), through a descriptor of `open_stats_stderr`, so that none
    ever waits on the reader of stderr. Each message goes out in one write of at most
    PIPE_BUF bytes (a longer one keeps its first line and its end); one the pipe has
    no room for waits in a short queue and goes out, in order, at the next flush()
    (the worker flushes once a tick, and for good after detaching, with blocking
    writes). Beyond `keep` waiting messages the oldest is dropped and counted."""

    def __init__(self, fd: int | None, keep: int = 32) -> None:
        self.fd = fd
        self.keep = keep
        self.waiting: list[str] = []
        self.dropped = 0

    def write(self, message: str) -> None:
        self.waiting.append(fit_pipe_buf(message))
        if len(self.waiting) > self.keep:
            del self.waiting[0]
            self.dropped += 1
        self.flush()

    def flush(self) -> None:
        """Write what waits, in order, until the pipe is full."""
        while self.waiting and self.fd is not None and try_write_line(self.fd, self.waiting[0]):
            del self.waiting[0]

    def drain(self) -> None:
        """After detaching: write whatever still waits, blocking if need be."""
        if self.dropped:
            self.waiting.append(f"scx_pyland: {self.dropped} log messages were dropped: stderr was full")
            self.dropped = 0
        for message in self.waiting:
            write_line(STDERR, message)
        self.waiting.clear()


def fit_pipe_buf(message: str, limit: int = PIPE_BUF - 1) -> str:
    """`message`, cut to fit one atomic pipe write with its newline: its first line,
    then as much of its end as fits (a traceback's end names the error)."""
    data = message.encode(errors="replace")
    if len(data) <= limit:
        return message
    first = message.split("\n", 1)[0].encode(errors="replace")[:limit // 2]
    marker = b"\n[...]\n"
    tail = data[-(limit - len(first) - len(marker)):]
    return (first + marker + tail).decode(errors="replace")
