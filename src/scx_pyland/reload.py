"""Swapping the policy of a running worker: the files and the command.

    scx_pyland reload [--policy SPEC]
        -> RUN_DIR/reload.json  {"id": ..., "policy": SPEC or null, "until": ...}
           (written first; it counts until the command stops waiting)
        -> SIGHUP to the supervisor, which forwards it to the worker once the
           worker has attached (or straight to a worker run with --no-supervisor)
    worker, at its next tick (about once a second, between two cycles):
        takes the request (reads and removes the file; a bare SIGHUP has none and
        reloads the policy in use), loads and builds the policy, hands it the tasks
        the old one held, and switches; or refuses and keeps the old one
        -> RUN_DIR/policy.json  the policy in use, the swap count and the last
           swap's outcome (with the request's id), rewritten atomically
    scx_pyland reload waits for its id there and prints the outcome in one line;
    the supervisor copies the file into its status file (and starts any new worker
    with the policy in use); --monitor prints it when it changes.

Only root can write RUN_DIR (0700), so only root can name the code the worker runs.
Nothing here imports scx_pyland._bpf: the supervisor and the command use it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from scx_pyland import files, stats
from scx_pyland.status import RUNNING_STATES, alive, read_supervisor_status

RUN_DIR = stats.DEFAULT_PATH.parent
REQUEST_FILE = RUN_DIR / "reload.json"
STATE_FILE = RUN_DIR / "policy.json"
DEFAULT_TIMEOUT_S = 60.0     # a policy's import in a guest under emulation is slow


def absolute_spec(spec: str) -> str:
    """SPEC with a FILE.py made absolute: the worker's current directory is not ours."""
    module, sep, cls = spec.rpartition(":")
    if sep and module.endswith(".py"):
        return f"{Path(module).resolve()}:{cls}"
    return spec


def write_request(path: Path, request_id: str, policy: str | None,
                  timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """A request for the worker; it counts until its asker stops waiting (`timeout` s)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    files.write_json_atomic(path, {"id": request_id, "policy": policy, "until": time.time() + timeout})


def take_request(path: Path) -> dict:
    """The pending request, removed; {} when there is none (a bare SIGHUP), it cannot
    be read, or nobody waits for it any more (left by a worker that died first)."""
    try:
        with open(path) as f:
            request = json.load(f)
    except (OSError, ValueError):
        request = {}
    with contextlib.suppress(OSError):
        os.unlink(path)
    if not isinstance(request, dict) or request.get("until", 0) < time.time():
        return {}
    return request


def read_state(path: Path = STATE_FILE) -> dict:
    """The worker's policy state, {} if there is none."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def describe_swap(swap: dict | None) -> str:
    """The last swap in words: 'rustland -> fifo (policy error): ok, ...'."""
    if not swap:
        return "none"
    outcome = "ok" if swap.get("ok") else "refused"
    text = f"{swap.get('from')} -> {swap.get('to')} ({swap.get('cause')}): {outcome}"
    return text + (f", {swap['message']}" if swap.get("message") else "")


def build_parser() -> argparse.ArgumentParser:
    from scx_pyland.supervisor import STATUS_FILE
    parser = argparse.ArgumentParser(
        prog="scx_pyland reload",
        description="Make the running worker load its policy again (re-imported from its file or "
                    "module) or, with --policy, another one, and switch to it between two cycles "
                    "without detaching: no task goes back to the default scheduler. Tasks the old "
                    "policy holds are handed to the new one. A policy that cannot be loaded is "
                    "refused and the old one keeps running. The same as SIGHUP to the supervisor "
                    "(or to a worker run with --no-supervisor), but it waits for the outcome and "
                    "prints it in one line.",
        epilog="exit status: 0 the worker switched; 1 it refused (the line says why), no "
               "scx_pyland is running, or no answer within --timeout; 2 bad arguments.")
    parser.add_argument("--policy", metavar="SPEC",
                        help="the policy to switch to: rustland, fifo, MODULE:CLASS or FILE.py:CLASS "
                             "(default: the one last asked for, re-imported; after the fifo fallback "
                             "took over, the one that failed)")
    parser.add_argument("--status-file", type=Path, default=STATUS_FILE, metavar="FILE",
                        help="the supervisor's status file (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECS",
                        help="how long to wait for the worker's answer (default: %(default)s)")
    return parser


def reload_command(argv: list[str], request_file: Path = REQUEST_FILE, state_file: Path = STATE_FILE,
                   stats_path: Path = stats.DEFAULT_PATH) -> int:
    """`scx_pyland reload [--policy SPEC] [--status-file FILE] [--timeout SECS]`: ask the
    running worker for a reload and wait for its answer. Returns the exit status: 0
    it switched (one line on stdout), 1 it refused, nothing runs, or no answer within
    the timeout (one line on stderr); argparse exits 2 on bad arguments. The other
    parameters are the files' paths, for tests."""
    args = build_parser().parse_args(argv)
    sup = read_supervisor_status(args.status_file)
    if sup and alive(sup.get("supervisor_pid")) and sup.get("state") in RUNNING_STATES:
        if sup.get("state") != "running":
            return fail(f"the supervisor is {sup['state']} the worker; try again when it runs")
        target = sup["supervisor_pid"]
    else:
        try:
            target = stats.read_snapshot(stats_path).pid     # a worker run with --no-supervisor
        except stats.NoScheduler as err:
            return fail(str(err))
    request_id = f"{os.getpid()}-{time.time_ns()}"
    try:
        write_request(request_file, request_id, absolute_spec(args.policy) if args.policy else None,
                      args.timeout)
        os.kill(target, signal.SIGHUP)
    except OSError as err:
        return fail(f"cannot ask for a reload: {err.strerror or err}")
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        state = read_state(state_file)
        swap = state.get("last_swap") or {}
        if swap.get("request") == request_id:
            if swap.get("ok"):
                print(f"scx_pyland: reloaded: {describe_swap(swap)}; policy {state.get('policy')}, "
                      f"swaps {state.get('swaps', 0)}", flush=True)
                return 0
            return fail(f"reload refused: {swap.get('message')}")
        time.sleep(0.1)
    return fail(f"no answer from the worker within {args.timeout:g} s (see its log)")


def fail(message: str) -> int:
    print(f"scx_pyland: error: {message}", file=sys.stderr, flush=True)
    return 1
