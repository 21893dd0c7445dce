"""Runs the supervisor with --metrics over fake workers that publish statistics,
for the metrics tests.

usage: python metrics_supervised.py DIR PORT

Each fake worker (this file with --worker) writes DIR/run/stats: it counts up to
20 cycles in 1 s (nr_user_dispatches 10 a cycle, nr_kernel_dispatches 1, the
page faults 2), then holds its counts and sleeps, until a signal ends it. DIR/sched_ext
plays /sys/kernel/sched_ext for the collector.
"""

import os
import signal
import sys
import time
from pathlib import Path

directory = Path(sys.argv[1])
os.environ["SCX_PYLAND_RUN_DIR"] = str(directory / "run")

from scx_pyland import metrics, stats  # noqa: E402  (after the run directory is set)
from scx_pyland.supervisor import Supervisor, SupervisorOptions  # noqa: E402

CYCLES = 20


def fake_worker() -> None:
    writer = stats.StatsWriter(directory / "run" / "stats")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    try:
        for n in range(1, CYCLES + 1):
            values = {"nr_user_dispatches": 10 * n, "nr_kernel_dispatches": n, "nr_page_faults": 2 * n,
                      "nr_pending": 3, "nr_queued": 4, "nr_running": 1, "nr_online_cpus": 2}
            writer.publish(tuple(values.get(name, 0) for name in stats.FIELD_NAMES))
            time.sleep(0.05)
        while True:
            time.sleep(1)
    finally:
        writer.close()


if "--worker" in sys.argv:
    fake_worker()
    sys.exit(0)

options = SupervisorOptions(backoff_initial=0.05, backoff_max=0.1, poll_interval=0.05,
                            status_file=directory / "run" / "supervisor.json",
                            sched_ext_dir=directory / "no-sched_ext", compaction_sysctl=None,
                            policy="fake")
supervisor = Supervisor([sys.executable, __file__, str(directory), sys.argv[2], "--worker"], options)
supervisor.metrics = metrics.Collector(lambda: supervisor.status, directory / "run" / "stats",
                                       directory / "sched_ext")
metrics.serve("127.0.0.1", int(sys.argv[2]), supervisor.metrics)
sys.exit(supervisor.run())
