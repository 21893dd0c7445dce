"""The extension (scx_pyland._bpf) used directly on a real sched_ext kernel."""

from __future__ import annotations

import subprocess
import sys

from conftest import wait_for_state

# Run in a child process: a call that dereferences freed state would take pytest
# down with it (SIGSEGV) instead of failing one test.
AFTER_CLOSE = """
import os
from scx_pyland import _bpf

class Task:
    pid, cpu = os.getpid(), 0

sched = _bpf.Scheduler(partial=True)
sched.close()
calls = {
    "select_cpus": lambda: sched.select_cpus([Task()]),
    "select_cpu": lambda: sched.select_cpu(os.getpid(), 0),
    "read_domain": lambda: sched.read_domain(_bpf.DOMAIN_L3, 0),
    "dequeue": lambda: sched.dequeue(8),
    "dispatch": lambda: sched.dispatch([_bpf.DispatchedTask(pid=os.getpid())]),
    "counters": sched.counters,
    "shutdown_and_report": sched.shutdown_and_report,
    "debug_request_error": sched.debug_request_error,
}
for name, call in calls.items():
    try:
        call()
    except _bpf.Error as err:
        print(f"{name}: {err}")
    else:
        print(f"{name}: no exception")
print(f"exited {sched.exited()} attached {sched.attached}")
sched.close()
"""


def test_every_call_after_close_raises_instead_of_touching_freed_state():
    assert wait_for_state("disabled", 60)
    child = subprocess.run([sys.executable, "-c", AFTER_CLOSE], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, f"status {child.returncode}\n{child.stdout}{child.stderr}"
    lines = child.stdout.splitlines()
    assert lines[:-1] == [f"{name}: the scheduler is closed" for name in (
        "select_cpus", "select_cpu", "read_domain", "dequeue", "dispatch", "counters",
        "shutdown_and_report", "debug_request_error")], child.stdout
    assert lines[-1] == "exited True attached False"
    assert wait_for_state("disabled", 30)
