"""The worker's log lines while it schedules (logs.NonBlockingLog): never a blocking
write, each message whole, none lost while the pipe only lags; on every kind of
stderr (a pipe, a file, the journal's socket)."""

from __future__ import annotations

import fcntl
import os
import socket
import stat

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
