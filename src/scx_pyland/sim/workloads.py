"""The built-in workloads, named after the benchmarks the VM suite and scripts/bench
run. Each is a few lines: copy one into a file of your own, change it, and run it
with ``scx_pyland sim FILE.py:NAME``.

The CPU costs of the synthetic tasks (a cyclictest loop, a hackbench message, a pipe
hand-off) are round numbers of the order of the emulated guest's, not measurements
of any program: what a workload tells is how a policy orders and places tasks that
behave so, not how fast the real program is.
"""

from __future__ import annotations

from collections.abc import Callable

from scx_pyland.sim.workload import Channel, Recv, Run, Send, SleepUntil, Task, Workload

MS = 1_000_000
US = 1_000
SECOND = 1_000_000_000


def hog(chunk_ns: int = MS):
    """A busy loop; one unit of work per chunk_ns of CPU time."""
    while True:
        yield Run(chunk_ns)


def cyclictest(interval_ns: int = MS, loop_ns: int = 20 * US):
    """cyclictest's measuring thread: wake at every interval on an absolute timer and
    run a short loop; its wait is cyclictest's latency."""
    wake = yield Run(loop_ns)
    while True:
        wake += interval_ns
        yield SleepUntil(wake)
        yield Run(loop_ns)


def nice_hogs() -> Workload:
    """vm-tests/test_promises.py: a nice-0 and a nice-19 busy loop pinned to CPU 1 of
    2 (taskset -c 1); their CPU shares should follow their weights (EEVDF: 98.5/1.5)."""
    return Workload("nice-hogs", nr_cpus=2, duration_ns=10 * SECOND, description=nice_hogs.__doc__, tasks=[
        Task("nice0", hog, cpus={1}),
        Task("nice19", hog, nice=19, cpus={1}),
    ])


def nice_classes() -> Workload:
    """vm-tests/test_promises.py: nice 0, nice 19, chrt -b 0 (batch) and chrt -i 0 (idle)
    busy loops pinned to CPU 1 of 2."""
    return Workload("nice-classes", nr_cpus=2, duration_ns=10 * SECOND, description=nice_classes.__doc__, tasks=[
        Task("nice0", hog, cpus={1}),
        Task("nice19", hog, nice=19, cpus={1}),
        Task("batch", hog, sched="batch", cpus={1}),
        Task("idle", hog, sched="idle", cpus={1}),
    ])


def cyclictest_hogs() -> Workload:
    """scripts/bench's latency workload: cyclictest --policy=other -t 2 -i 1000 beside
    stress-ng --cpu 4, on 2 CPUs; cyclictest's waits are its wake-up latency (its
    threads' intervals are 1000 and 1500 us: cyclictest's -d, 500 us by default)."""
    tasks = [Task(f"stress-ng-{i}", hog, group="hogs") for i in range(4)]
    tasks += [Task(f"cyclictest-{i}", cyclictest, (MS + i * 500 * US,), group="cyclictest") for i in range(2)]
    return Workload("cyclictest-hogs", tasks, nr_cpus=2, duration_ns=8 * SECOND,
                    description=cyclictest_hogs.__doc__)


def hackbench_sender(receivers: list[Channel], loops: int, send_ns: int):
    """Send `loops` messages to every receiver of the group, round robin."""
    for _ in range(loops):
        for inbox in receivers:
            yield Run(send_ns)
            yield Send(inbox)


def hackbench_receiver(inbox: Channel, messages: int, recv_ns: int):
    """Read `messages` messages, one at a time."""
    for _ in range(messages):
        yield Recv(inbox)
        yield Run(recv_ns)


def hackbench(groups: int = 2, loops: int = 100, fds: int = 20, send_ns: int = 10 * US,
              recv_ns: int = 10 * US) -> Workload:
    """hackbench -g 2 -l 100 (processes, sockets): in each group 20 senders send `loops`
    messages to each of 20 receivers; done when every message is read."""
    tasks = []
    for g in range(groups):
        inboxes = [Channel(f"g{g}r{r}") for r in range(fds)]
        tasks += [Task(f"sender-g{g}-{s}", hackbench_sender, (inboxes, loops, send_ns), group="senders")
                  for s in range(fds)]
        tasks += [Task(f"receiver-g{g}-{r}", hackbench_receiver, (inbox, loops * fds, recv_ns), group="receivers")
                  for r, inbox in enumerate(inboxes)]
    return Workload(f"hackbench-g{groups}", tasks, nr_cpus=2, duration_ns=30 * SECOND,
                    description=hackbench.__doc__)


def pipe_pingpong(loops: int = 20_000, run_ns: int = 5 * US) -> Workload:
    """perf bench sched pipe -l 20000: two tasks hand a token to each other through two
    pipes; done after `loops` round trips."""
    ping, pong = Channel("ping"), Channel("pong")
    return Workload("pipe", nr_cpus=2, duration_ns=30 * SECOND, description=pipe_pingpong.__doc__, tasks=[
        Task("pipe-a", pipe_a, (ping, pong, loops, run_ns), group="pipe"),
        Task("pipe-b", pipe_b, (ping, pong, loops, run_ns), group="pipe"),
    ])


def pipe_a(ping: Channel, pong: Channel, loops: int, run_ns: int):
    """The end that starts: run, send, wait for the answer."""
    for _ in range(loops):
        yield Run(run_ns)
        yield Send(ping)
        yield Recv(pong)


def pipe_b(ping: Channel, pong: Channel, loops: int, run_ns: int):
    """The end that answers: wait, run, send back."""
    for _ in range(loops):
        yield Recv(ping)
        yield Run(run_ns)
        yield Send(pong)


def switch_pairs(pairs: int = 4, run_ns: int = 2 * US) -> Workload:
    """stress-ng --switch 4 on 2 CPUs (the hot-path load of docs/hot-path.md): pairs of
    tasks that hand the CPU to each other as fast as they can; wake-ups far faster
    than the worker's cycles, so the worker sets the pace."""
    tasks = []
    for i in range(pairs):
        ping, pong = Channel(f"ping{i}"), Channel(f"pong{i}")
        tasks += [Task(f"switch-{i}a", pipe_a, (ping, pong, 10**9, run_ns), group="switch"),
                  Task(f"switch-{i}b", pipe_b, (ping, pong, 10**9, run_ns), group="switch")]
    return Workload("switch", tasks, nr_cpus=2, duration_ns=10 * SECOND, description=switch_pairs.__doc__)


#: name -> a function of no arguments that builds the workload.
BUILTIN: dict[str, Callable[[], Workload]] = {
    "nice-hogs": nice_hogs,
    "nice-classes": nice_classes,
    "cyclictest-hogs": cyclictest_hogs,
    "hackbench": hackbench,
    "pipe": pipe_pingpong,
    "switch": switch_pairs,
}
