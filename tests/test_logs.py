"""The worker's log lines while it schedules (logs.NonBlockingLog): never a blocking
write, each message whole, none lost while the pipe only lags."""

from __future__ import annotations

import fcntl
import os

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
