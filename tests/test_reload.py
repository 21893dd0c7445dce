"""`scx_pyland reload`: the request, the signal and the answer, against a stand-in
that answers SIGHUP as the worker does (it takes the request and writes the policy
state with the request's id)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scx_pyland import reload

ANSWERING = """\
import json, os, signal, sys, time
from scx_pyland import files, reload
run = sys.argv[1]

def answer(signum, frame):
    request = reload.take_request(reload.Path(run) / "reload.json")
    policy = request.get("policy") or "rustland"
    ok = "broken" not in policy
    files.write_json_atomic(reload.Path(run) / "policy.json", {
        "worker_pid": os.getpid(), "policy": policy if ok else "rustland", "swaps": 1 if ok else 0,
        "last_swap": {"from": "rustland", "to": policy, "cause": "reload", "ok": ok, "request": request.get("id"),
                      "message": "handed over 3 tasks" if ok else "cannot import policy module 'broken.py': "
                      "SyntaxError: invalid syntax; the rustland policy keeps running"}})

signal.signal(signal.SIGHUP, answer)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def answering(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", ANSWERING, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    (tmp_path / "status.json").write_text(json.dumps({"supervisor_pid": proc.pid, "state": "running"}))
    yield tmp_path
    proc.kill()
    proc.wait()


def reload_in(run: Path, *args: str, capsys) -> tuple[int, str, str]:
    status = reload.reload_command(["--status-file", str(run / "status.json"), "--timeout", "10", *args],
                                   request_file=run / "reload.json", state_file=run / "policy.json",
                                   stats_path=run / "stats")
    out = capsys.readouterr()
    return status, out.out, out.err


def test_a_reload_that_switched_prints_one_line_and_exits_0(answering, capsys):
    status, out, err = reload_in(answering, "--policy", "fifo", capsys=capsys)
    assert status == 0 and err == ""
    assert out == ("scx_pyland: reloaded: rustland -> fifo (reload): ok, handed over 3 tasks; "
                   "policy fifo, swaps 1\n")


def test_a_refused_reload_prints_the_reason_in_one_line_and_exits_1(answering, capsys):
    status, out, err = reload_in(answering, "--policy", "broken.py:P", capsys=capsys)
    assert status == 1 and out == ""
    assert err == (f"scx_pyland: error: reload refused: cannot import policy module 'broken.py': SyntaxError: "
                   f"invalid syntax; the rustland policy keeps running\n")


def test_a_policy_file_is_named_to_the_worker_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert reload.absolute_spec("mine.py:Mine") == f"{tmp_path / 'mine.py'}:Mine"
    assert reload.absolute_spec("pkg.mod:Mine") == "pkg.mod:Mine"
    assert reload.absolute_spec("fifo") == "fifo"


def test_without_a_running_scheduler_it_says_so(tmp_path, capsys):
    status, _, err = reload_in(tmp_path, capsys=capsys)
    assert status == 1 and "no scx_pyland is running" in err


def test_while_the_supervisor_restarts_the_worker_it_asks_to_try_again(tmp_path, capsys):
    (tmp_path / "status.json").write_text(json.dumps({"supervisor_pid": 1, "state": "restarting"}))
    status, _, err = reload_in(tmp_path, capsys=capsys)
    assert status == 1 and "the supervisor is restarting the worker; try again" in err


def test_a_request_is_taken_once(tmp_path):
    path = tmp_path / "reload.json"
    reload.write_request(path, "id1", "fifo", timeout=30)
    assert reload.take_request(path) == {"id": "id1", "policy": "fifo", "until": pytest.approx(time.time() + 30, abs=5)}
    assert reload.take_request(path) == {} and not path.exists()


def test_a_request_nobody_waits_for_any_more_is_dropped(tmp_path):
    path = tmp_path / "reload.json"
    reload.write_request(path, "id1", "fifo", timeout=-1)   # its asker gave up
    assert reload.take_request(path) == {} and not path.exists()


def test_the_request_file_holds_one_request_the_last_written(tmp_path):
    path = tmp_path / "reload.json"
    reload.write_request(path, "first", "fifo")
    reload.write_request(path, "second", "rustland")
    assert reload.take_request(path)["id"] == "second" and reload.take_request(path) == {}


# A worker whose tick comes after two SIGHUPs: both requests were written before it.
TICK_AFTER_TWO = ANSWERING.replace("signal.signal(signal.SIGHUP, answer)", """\
hups = []
signal.signal(signal.SIGHUP, lambda signum, frame: hups.append(signum))""").replace("time.sleep(60)", """\
while len(hups) < 2:
    time.sleep(0.01)
answer(0, None)
time.sleep(60)""")


def test_of_two_reloads_before_one_tick_the_last_is_carried_out_and_the_first_times_out(tmp_path):
    """docs/design.md, "Reload": one request slot. The first asker's request is
    overwritten: it is never carried out, and that command fails after its timeout."""
    proc = subprocess.Popen([sys.executable, "-c", TICK_AFTER_TWO, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        (tmp_path / "status.json").write_text(json.dumps({"supervisor_pid": proc.pid, "state": "running"}))
        command = ("import sys; from pathlib import Path; from scx_pyland import reload; run = Path(sys.argv[1]); "
                   "sys.exit(reload.reload_command(sys.argv[2:], request_file=run / 'reload.json', "
                   "state_file=run / 'policy.json', stats_path=run / 'stats'))")

        def ask(policy: str, timeout: str) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-c", command, str(tmp_path), "--status-file",
                                     str(tmp_path / "status.json"), "--timeout", timeout, "--policy", policy],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        first = ask("fifo", "3")
        while not (tmp_path / "reload.json").exists():
            time.sleep(0.01)
        second = ask("ceiling", "10")
        out_first, err_first = first.communicate(timeout=30)
        out_second, err_second = second.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert second.returncode == 0 and "rustland -> ceiling (reload): ok" in out_second, err_second
    assert first.returncode == 1 and out_first == ""
    assert err_first == "scx_pyland: error: no answer from the worker within 3 s (see its log)\n"
