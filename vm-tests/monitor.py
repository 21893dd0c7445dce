"""A watcher for VM tests, run in the real-time class (chrt -f) so it still runs when
sched_ext stalls. It never touches the worker while the scheduler is attached (reading
a process's /proc files can wait on its mmap lock); once the scheduler leaves on its
own (not stopped by the test), it records the worker's state, wait channel and kernel
stack, and the kernel log tail, as JSON.

usage: chrt -f 50 python monitor.py PID OUT_JSON STOP_FLAG   (the worker's or the supervisor's)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from scx_pyland.files import sched_ext_state



def read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as err:
        return f"<{err.strerror}>"


def snapshot(pid: int) -> dict[str, str]:
    status = read(f"/proc/{pid}/status")
    return {
        "sched_ext_state": sched_ext_state(),
        "worker_state": next((l for l in status.splitlines() if l.startswith("State:")), status),
        "worker_wchan": read(f"/proc/{pid}/wchan"),
        "worker_stack": read(f"/proc/{pid}/stack"),
        "dmesg_tail": subprocess.run(["dmesg"], capture_output=True, text=True).stdout[-3000:],
    }


def worker_of(pid: int) -> int:
    """The worker: `pid` itself, or its child if `pid` is the supervisor."""
    children = read(f"/proc/{pid}/task/{pid}/children").split()
    return int(children[0]) if children and children[0].isdigit() else pid


def main() -> None:
    started, out, stop_flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    pid = started
    seen_enabled = False
    while True:
        state = sched_ext_state()
        if state == "enabled":
            pid = worker_of(started)
        seen_enabled |= state == "enabled"
        if os.path.exists(stop_flag) or not os.path.exists(f"/proc/{started}"):
            if seen_enabled and state != "enabled" and not os.path.exists(stop_flag):
                # The worker is gone too: what the kernel said is all there is.
                with open(out, "w") as f:
                    json.dump({"sched_ext_state": state, "worker_state": "exited",
                               "dmesg_tail": snapshot(pid)["dmesg_tail"]}, f, indent=1)
            return
        if seen_enabled and state != "enabled":
            with open(out, "w") as f:
                json.dump(snapshot(pid), f, indent=1)
            return
        time.sleep(0.25)


if __name__ == "__main__":
    main()
