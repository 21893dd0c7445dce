"""The worker's log lines while it schedules (logs.NonBlockingLog): never a blocking
write, each message whole, none lost while the pipe only lags; on every kind of
stderr (a pipe, a file, the journal's socket, a terminal, a console that takes one
open at a time)."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import tty
from pathlib import Path

import pytest

from scx_pyland import logs


def full_pipe() -> tuple[int, int]:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    try:
        while True:
            os.write(write_end, b"x" * 512)
    except BlockingIOError:
        pass
    return read_end, write_end


def test_a_message_the_full_pipe_refuses_waits_and_goes_out_whole_in_order_later():
    read_end, write_end = full_pipe()
    log = logs.NonBlockingLog(write_end)
    log.write("first")
    log.write("second")                     # returns at once: the pipe is full
    assert log.waiting == ["first", "second"]
    assert set(os.read(read_end, 65536)) == {ord("x")}     # the reader catches up (all 4 KiB)
    log.flush()
    assert log.waiting == []
    assert os.read(read_end, 65536) == b"first\nsecond\n"


def test_beyond_what_it_keeps_the_oldest_message_is_dropped_and_counted():
    _, write_end = full_pipe()
    log = logs.NonBlockingLog(write_end, keep=2)
    for n in range(5):
        log.write(f"m{n}")
    assert log.waiting == ["m3", "m4"] and log.dropped == 3


def test_a_long_message_keeps_its_first_line_and_its_end_within_one_pipe_write():
    traceback = "error: the policy raised\n" + "".join(f"  frame {n}\n" for n in range(2000)) + "KeyError: 7"
    cut = logs.fit_pipe_buf(traceback)
    assert len(cut.encode()) + 1 <= logs.PIPE_BUF
    assert cut.startswith("error: the policy raised\n[...]\n") and cut.endswith("KeyError: 7")
    assert logs.fit_pipe_buf("short") == "short"


def test_on_the_journals_socket_lines_never_wait_and_the_shared_descriptor_stays_blocking(monkeypatch):
    """systemd's StandardError=journal (a service's default) makes stderr a stream
    socket, which /proc/self/fd cannot open again: the lines go out with
    MSG_DONTWAIT through a duplicate, and are dropped when the socket is full."""
    reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    monkeypatch.setattr(logs, "STDERR", writer.fileno())
    fd = logs.open_stats_stderr()
    assert fd != writer.fileno() and stat.S_ISSOCK(os.fstat(fd).st_mode)
    assert logs.try_write_line(fd, "one")
    assert reader.recv(100) == b"one\n"
    sent = 0
    while logs.try_write_line(fd, "x" * 99):     # nobody reads: full, without waiting
        sent += 1
    assert sent > 10
    assert os.get_blocking(writer.fileno())      # the supervisor's description: untouched
    assert os.get_blocking(fd)                   # (the same description: MSG_DONTWAIT only)
    data = b""
    reader.setblocking(False)
    try:
        while chunk := reader.recv(1 << 20):
            data += chunk
    except BlockingIOError:
        pass
    assert data.split(b"\n") == [b"x" * 99] * sent + [b""]      # every line whole


def drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 1 << 20):
            data += chunk
    except (BlockingIOError, OSError):     # empty (EAGAIN), or a pty with no writer (EIO)
        pass
    return data


@pytest.fixture
def no_hang():
    """A write that blocks fails the test (SIGALRM) instead of hanging it."""
    def alarm(signum, frame):
        raise TimeoutError("a write blocked")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_on_a_terminal_nobody_reads_lines_never_wait_and_the_shared_descriptor_stays_blocking(
        monkeypatch, no_hang):
    """A pseudo-terminal's reader (a terminal emulator, sshd, tmux) is a user-space
    task the worker schedules: the lines go through a non-blocking open of its own,
    dropped once the terminal stops reading."""
    master, slave = os.openpty()
    tty.setraw(slave)                       # no \n -> \r\n: what was written is what is read
    monkeypatch.setattr(logs, "STDERR", slave)
    fd = logs.open_stats_stderr()
    assert fd != slave and not os.get_blocking(fd) and fd not in logs._POLLED
    assert logs.try_write_line(fd, "one")
    assert drain(master) == b"one\n"
    sent = 0
    while logs.try_write_line(fd, "x" * 99):     # nobody reads: full, without waiting
        sent += 1
    assert sent > 10
    assert os.get_blocking(slave)            # the description the supervisor shares: untouched
    data = drain(master)
    while logs.try_write_line(fd, "last") is False and (more := drain(master)):
        data += more                         # the reader catches up: a line cut short ends first
    data += drain(master)
    assert data.split(b"\n") == [b"x" * 99] * sent + [b"last", b""]     # every line whole


def test_a_console_that_takes_one_open_at_a_time_gets_the_lines_when_it_takes_a_write(monkeypatch):
    """Issue 28 2: in a guest, stderr is a virtio console port, which refuses a
    second open (EBUSY). Its driver (the hypervisor) drains it, no task of the
    machine: the lines go through a duplicate of stderr, written when poll() says
    the device takes them. /dev/null stands in for the port, the EBUSY is made."""
    console = os.open("/dev/null", os.O_WRONLY)
    monkeypatch.setattr(logs, "STDERR", console)
    real_open = os.open

    def exclusive(path, flags, *args):
        if path == f"/proc/self/fd/{console}":
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        return real_open(path, flags, *args)
    monkeypatch.setattr(os, "open", exclusive)
    assert logs.is_drained_by_a_driver(console)
    fd = logs.open_stats_stderr()
    assert fd != console and fd in logs._POLLED
    assert logs.try_write_line(fd, "attached")


def test_a_polled_duplicate_drops_a_line_the_device_cannot_take_now_instead_of_waiting(no_hang):
    """A full pipe stands in for a console whose output is stopped (^S) or full:
    poll() says it takes no write, so the line is dropped; once drained, it goes."""
    read_end, write_end = full_pipe()
    os.set_blocking(write_end, True)         # as a console's shared description is
    fd = logs.polled_duplicate(write_end)
    assert not logs.try_write_line(fd, "dropped")
    assert set(drain(read_end)) == {ord("x")}
    assert logs.try_write_line(fd, "taken")
    assert drain(read_end) == b"taken\n"


def test_a_pty_that_cannot_be_opened_again_is_never_written_with_blocking_writes(tmp_path):
    """A pty set exclusive (TIOCEXCL) refuses a second open by anyone without
    CAP_SYS_ADMIN (EBUSY), as a console port does; but its reader is a user-space
    task, so no blocking duplicate: open_stats_stderr raises, and the worker's
    lines wait until it has detached."""
    master, slave = os.openpty()
    os.fchown(slave, 65534, 65534)
    fcntl.ioctl(slave, __import__("termios").TIOCEXCL)
    code = textwrap.dedent(f"""
        import os, sys
        if os.geteuid() == 0:
            os.setgid(65534); os.setuid(65534)     # no CAP_SYS_ADMIN: TIOCEXCL holds
        from scx_pyland import logs
        assert not logs.is_drained_by_a_driver(2)
        try:
            logs.open_stats_stderr()
        except OSError as err:
            sys.exit(err.errno)
        sys.exit(0)
    """)
    src = str(Path(logs.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code], stderr=slave, timeout=60,
                         env=dict(os.environ, PYTHONPATH=src), cwd=tmp_path)
    assert out.returncode == errno.EBUSY


def test_the_worker_warns_of_no_stats_lines_only_when_they_were_asked_for(monkeypatch, capfd):
    """Issue 28 2: scripts/run-vm warned "no --stats lines" though nobody asked."""
    from scx_pyland import worker

    def busy():
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
    monkeypatch.setattr(logs, "open_stats_stderr", busy)
    assert worker.open_stats_stderr(stats_asked=False) is None
    assert capfd.readouterr().err == ""
    assert worker.open_stats_stderr(stats_asked=True) is None
    assert capfd.readouterr().err == ("scx_pyland: warning: no --stats lines: cannot open stderr again "
                                      "without blocking: Device or resource busy\n")
