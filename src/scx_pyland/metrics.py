"""Prometheus metrics (``--metrics ADDR:PORT``), served by the supervisor.

The worker serves nothing (one thread, no sockets: docs/design.md). The supervisor
runs prometheus-client's HTTP server in a thread of its own and a collector that is
evaluated at scrape time. It reads, without ever waiting on the worker:

    the worker's statistics file    its counters and gauges (stats.py)
    the supervisor's own status     worker pid, restarts, last exit
    /sys/kernel/sched_ext           attached or not

Counters never go backwards across worker restarts: a new worker's counters start
from 0, so the collector adds up the final counts of every worker that ended. It
keeps the current worker's statistics file open (adopted once its writer is the
worker the supervisor started), so even a worker killed by SIGKILL, or one that
removed its file on the way out, leaves its last counts readable; the supervisor
calls :meth:`Collector.refresh` after each worker ends and while it polls, so the
fold never waits for a scrape.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from scx_pyland import stats
from scx_pyland.status import SCHED_EXT, alive, read_sched_ext

# Statistics fields with a name of their own; any other field is exported as
# scx_pyland_<field without nr_>[_total].
DISPATCH_SOURCES = {"nr_user_dispatches": "user", "nr_kernel_dispatches": "kernel",
                    "nr_direct_dispatches": "direct", "nr_rt_dispatches": "realtime",
                    "nr_stalled_dispatches": "stalled", "nr_custody_dispatches": "custody",
                    "nr_sched_congested": "congested"}
NAMES = {
    "nr_cancel_dispatches": "scx_pyland_dispatches_cancelled",
    "nr_bounce_dispatches": "scx_pyland_dispatches_bounced",
    "nr_failed_dispatches": "scx_pyland_dispatches_failed",
    "nr_policy_dispatches": "scx_pyland_policy_decisions",
    "nr_page_faults": "scx_pyland_worker_page_faults",
    "nr_queued": "scx_pyland_queued_tasks",
    "nr_pending": "scx_pyland_pending_tasks",
    "nr_running": "scx_pyland_running_tasks",
    "nr_online_cpus": "scx_pyland_online_cpus",
}


class AddressError(ValueError):
    """A --metrics value that is not ADDR:PORT."""


def parse_address(text: str) -> tuple[str, int]:
    """ADDR:PORT, [IPv6]:PORT or :PORT (every address) -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text:
        raise AddressError(f"not ADDR:PORT: {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise AddressError(f"not a port number: {port_text!r} in {text!r}") from None
    if not 1 <= port <= 65535:
        raise AddressError(f"the port must be 1 to 65535: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise AddressError(f"not an IPv6 address: {host!r} in {text!r}") from None
    elif ":" in host:
        raise AddressError(f"write an IPv6 address in brackets: [{host}]:{port}")
    if any(c.isspace() for c in host):
        raise AddressError(f"not an address: {host!r}")
    return host or "0.0.0.0", port


def metric_name(field: stats.Field) -> str:
    return NAMES.get(field.name, "scx_pyland_" + field.name.removeprefix("nr_"))


class Collector:
    """A prometheus-client custom collector (it has ``collect()``) over the worker's
    statistics and the supervisor's status. Thread-safe: the supervisor's loop
    calls refresh(), the HTTP server's threads collect()."""

    def __init__(self, supervisor_status: Callable[[], dict], stats_path: Path = stats.DEFAULT_PATH,
                 sched_ext_dir: Path = SCHED_EXT) -> None:
        self.supervisor_status = supervisor_status
        self.stats_path = stats_path
        self.sched_ext_dir = sched_ext_dir
        self.lock = threading.Lock()
        self.carried = {f.name: 0 for f in stats.FIELDS if f.kind == "counter"}
        self.fd: int | None = None          # the current worker's statistics file
        self.pid: int | None = None         # ... and its writer, the current worker
        self.last: stats.Snapshot | None = None

    # -- following workers ---------------------------------------------------------

    def refresh(self) -> None:
        with self.lock:
            self._follow(self.supervisor_status().get("worker_pid"))

    def _follow(self, worker_pid: int | None) -> None:
        if self.pid is not None and self.pid != worker_pid:
            self._fold()
        if self.fd is None and worker_pid:
            self._adopt(worker_pid)
        if self.fd is not None:
            snapshot = stats.read_fd(self.fd)
            if snapshot and snapshot.pid == self.pid:
                self.last = snapshot

    def _adopt(self, worker_pid: int) -> None:
        """Open the statistics file if the current worker wrote it (not a dead
        worker's file that its successor has not yet taken over)."""
        try:
            fd = os.open(self.stats_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        snapshot = stats.read_fd(fd)
        if snapshot and snapshot.pid == worker_pid:
            self.fd, self.pid, self.last = fd, worker_pid, snapshot
        else:
            os.close(fd)

    def _fold(self) -> None:
        """The worker ended: its final counts join the carried totals."""
        final = (stats.read_fd(self.fd) if self.fd is not None else None)
        if not (final and final.pid == self.pid):
            final = self.last
        if final:
            for name in self.carried:
                self.carried[name] += final.values.get(name, 0)
        if self.fd is not None:
            os.close(self.fd)
        self.fd, self.pid, self.last = None, None, None

    # -- what a scrape sees --------------------------------------------------------

    def totals(self) -> tuple[dict[str, int], dict[str, int] | None, dict]:
        """(counter totals, the live worker's gauges or None, the supervisor status)."""
        status = dict(self.supervisor_status())
        with self.lock:
            self._follow(status.get("worker_pid"))
            current = self.last.values if self.last and alive(self.pid) else {}
            counters = {name: carried + (self.last.values.get(name, 0) if self.last else 0)
                        for name, carried in self.carried.items()}
        gauges = ({f.name: current.get(f.name, 0) for f in stats.FIELDS if f.kind == "gauge"}
                  if current else None)
        return counters, gauges, status

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counters, gauges, status = self.totals()
        dispatches = CounterMetricFamily(
            "scx_pyland_dispatches", "tasks dispatched, by who decided: the Python policy (user), "
            "the BPF side for kernel threads (kernel), straight to an idle CPU (direct), for a "
            "CPU a real-time task holds (realtime), while the worker did not run (stalled), "
            "because the ring to the worker was full (congested)", labels=["source"])
        for name, source in DISPATCH_SOURCES.items():
            dispatches.add_metric([source], counters.get(name, 0))
        yield dispatches
        for field in stats.FIELDS:
            if field.name in DISPATCH_SOURCES:
                continue
            if field.kind == "counter":
                yield CounterMetricFamily(metric_name(field), field.help, value=counters[field.name])
            elif gauges is not None:
                yield GaugeMetricFamily(metric_name(field), field.help, value=gauges[field.name])
        yield CounterMetricFamily("scx_pyland_restarts", "workers the supervisor restarted",
                                  value=int(status.get("restarts") or 0))
        kernel = read_sched_ext(self.sched_ext_dir)
        attached = (kernel.ours and status.get("state") == "running"
                    and alive(status.get("worker_pid")))
        yield GaugeMetricFamily("scx_pyland_attached", "1 while a worker of ours is attached",
                                value=1 if attached else 0)
        last = status.get("last_exit")
        if last:
            exit_kind = GaugeMetricFamily(
                "scx_pyland_last_exit", "how the last worker ended (1 for the labels that say "
                "so): the kernel's exit kind, the signal that killed it, its exit status",
                labels=["kind", "signal", "status"])
            exit_kind.add_metric([last.get("kind") or "none", last.get("signal") or "none",
                                  str(last["status"]) if last.get("status") is not None else "none"], 1)
            yield exit_kind
            yield GaugeMetricFamily("scx_pyland_last_exit_timestamp_seconds",
                                    "when the last worker ended (Unix time)", value=last.get("time", 0))


def serve(host: str, port: int, collector: Collector) -> None:
    """Start the HTTP server's thread; OSError if the address cannot be bound."""
    from prometheus_client import CollectorRegistry, start_http_server

    # A registry of our own: the default one would add the supervisor's process and
    # GC metrics, which say nothing about scheduling.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    start_http_server(port, host, registry=registry)
