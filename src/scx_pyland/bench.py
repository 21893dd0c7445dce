"""Policy benchmark without a kernel: how many tasks per second a policy moves
through the worker's per-task path, decode -> enqueue -> dispatch -> encode, with
1, 16 and 256 records handed to it per cycle. Run by scripts/bench-policy.

Each cell is measured twice, in alternating rounds within the same run (so a busy
host slows both alike): the policy alone, and with the worker's bookkeeping of the
tasks the policy holds (``_bpf.Custody``), folded into the calls that decode and
encode the records as the worker's ``Scheduler.dequeue`` and ``Scheduler.submit``
fold it into reading and writing the rings. The last column is what the
bookkeeping costs."""

from __future__ import annotations

import argparse
import platform
import time
import timeit

from scx_pyland import _bpf
from scx_pyland.policies import BUILTIN
from scx_pyland.policy import RL_CPU_ANY, DispatchedTask, PolicyConfig
from scx_pyland.records import queued_bytes

ROUNDS = 20     # alternating rounds per cell: alone, with custody, alone, ...


def synthetic_records(n: int, start_pid: int) -> bytes:
    """n queued_task records of varied tasks, as the ring buffer carries them."""
    out = bytearray()
    for i in range(n):
        pid = start_pid + i
        out += queued_bytes(pid, cpu=i % 2, nr_cpus_allowed=2, flags=0, start_ts=1_000_000 * i,
                            stop_ts=1_000_000 * i + 250_000 * (i % 7), exec_runtime=100_000 * (i % 13),
                            weight=100 if i % 5 else 200, vtime=0 if i % 3 == 0 else 5_000_000 + i,
                            enq_cnt=1, comm="bench")
    return bytes(out)


def run(policy_name: str, batch: int, seconds: float, custody: bool = False) -> tuple[float, float]:
    """Returns (tasks per second of CPU time, CPU microseconds per task). With `custody`, each cycle
    also goes through the worker's bookkeeping of what the policy holds."""
    policy = BUILTIN[policy_name](PolicyConfig(nr_cpus=2))
    batches = [synthetic_records(batch, 1000 + k * batch) for k in range(16)]
    held = _bpf.Custody()
    held.stamp_ns = time.monotonic_ns()     # as the worker sets it at each housekeeping
    decode, encode = (held.decode, held.encode) if custody else (_bpf.decode_queued, _bpf.encode_dispatched)
    enqueue, dispatch = policy.enqueue, policy.dispatch
    tasks = 0
    deadline = time.perf_counter() + seconds
    # CPU time, not wall time: what other processes take from a busy host is left out.
    started = time.thread_time()
    k = 0
    while time.perf_counter() < deadline:
        for _ in range(50):
            enqueue(decode(batches[k % 16]))
            k += 1
            # As many worker cycles as it takes to dispatch the batch (rustland
            # dispatches one task per CPU per cycle).
            while True:
                decisions = dispatch()
                if not decisions:
                    break
                encode(decisions)
                tasks += len(decisions)
    elapsed = time.thread_time() - started
    return tasks / elapsed, elapsed / tasks * 1e6


def compare(policy_name: str, batch: int, seconds: float) -> tuple[float, float, float]:
    """(tasks/s alone, µs per task alone, µs per task with custody): the best of
    ROUNDS alternating rounds of seconds / ROUNDS each (the least disturbed by
    whatever else runs on the host)."""
    alone, held = [], []
    for _ in range(ROUNDS):
        alone.append(run(policy_name, batch, seconds / ROUNDS)[1])
        held.append(run(policy_name, batch, seconds / ROUNDS, custody=True)[1])
    cost = min(alone)
    return 1e6 / cost, cost, min(held)


def custody_ns_per_task(batch: int = 256, repeat: int = 15) -> float:
    """The custody's own work, alone: nanoseconds per task to receive a batch and
    release it again (one call each, as the worker's dequeue and submit do), best of
    `repeat` runs; less noisy than the difference of two whole-cycle timings."""
    tasks = _bpf.decode_queued(synthetic_records(batch, 1000))
    decisions = [DispatchedTask(t.pid, RL_CPU_ANY, 0, 1, 0, t.enq_cnt) for t in tasks]
    held = _bpf.Custody()
    held.stamp_ns = time.monotonic_ns()
    number = 2000
    best = min(timeit.repeat(lambda: (held.receive(tasks), held.release(decisions)), number=number, repeat=repeat))
    return best / number / batch * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement (default 2)")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, {args.seconds:g} s per cell "
          f"and variant, best of {ROUNDS} alternating rounds\n")
    print("| policy | records per cycle | tasks/s | µs per task | µs per task with custody | custody costs |")
    print("|---|---|---|---|---|---|")
    for name, policy_class in BUILTIN.items():
        if getattr(policy_class, "runs_in_cxx", False):
            continue    # the C++ ceiling: it is fifo without a kernel
        for batch in (1, 16, 256):
            rate, cost, with_custody = compare(name, batch, args.seconds)
            print(f"| {name} | {batch} | {rate:,.0f} | {cost:.2f} | {with_custody:.2f} | "
                  f"{100 * (with_custody / cost - 1):+.1f}% |", flush=True)
    print(f"\nThe custody's own work: {custody_ns_per_task():.0f} ns per task (receive and release "
          f"256 tasks, best of 15).")


if __name__ == "__main__":
    main()
