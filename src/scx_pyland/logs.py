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
- The worker's --stats lines never wait: on a pipe or terminal they go through a
  new open of it with O_NONBLOCK (a line is dropped when it is full), so the flag
  stays off the description the supervisor shares and blocks on. On a regular file
  a write never waits for a reader, so the lines go through a duplicate of stderr
  and append like every other line. A socket (the journal's stream) cannot be
  opened again through /proc: the lines go through a duplicate of it, each sent
  with MSG_DONTWAIT, which never waits and leaves the shared description's flags
  alone (`open_stats_stderr`, `try_write_line`).

Nothing here imports scx_pyland._bpf: the supervisor uses it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
import sys

STDERR = 2
# Descriptors of `open_stats_stderr` that are sockets, and their socket objects
# (made once, before the worker attaches): `try_write_line` sends through them.
_SOCKETS: dict[int, socket.socket] = {}


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
    must never wait on another task: a duplicate of stderr on a regular file (it
    appends with the rest, and a file never waits for a reader) or a socket (each
    line sent with MSG_DONTWAIT), a new non-blocking open of the pipe or terminal
    otherwise. Raises OSError when it cannot."""
    if is_regular_file(STDERR):
        return fcntl.fcntl(STDERR, fcntl.F_DUPFD_CLOEXEC, 3)
    if is_socket(STDERR):
        # socket() from a descriptor leaves its flags as they are (no default
        # timeout is set): O_NONBLOCK never reaches the supervisor's description.
        sock = socket.socket(fileno=fcntl.fcntl(STDERR, fcntl.F_DUPFD_CLOEXEC, 3))
        _SOCKETS[sock.fileno()] = sock
        return sock.fileno()
    return os.open(f"/proc/self/fd/{STDERR}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)


def try_write_line(fd: int, message: str) -> bool:
    """Write one line through a descriptor of `open_stats_stderr` in one write();
    False when it was dropped (nobody drains the pipe right now, or nobody ever will). A line is far
    below PIPE_BUF, so a pipe takes all of it or none, and a local stream socket
    sends it in one buffer or not at all."""
    data = (message + "\n").encode(errors="replace")
    try:
        sock = _SOCKETS.get(fd)
        if sock is None:
            os.write(fd, data)
        else:
            sock.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
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
