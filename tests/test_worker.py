"""The worker's loop against a fake BPF side: records arrive as bytes through the real
decoder, and the user ring takes only so many decisions per cycle."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from types import SimpleNamespace

import pytest

from scx_pyland import _bpf, exits, reload, stats, topology, worker as worker_module
from scx_pyland.cli import max_rescue_after_ms
from scx_pyland.exits import WorkerStatus
from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.policies.rustland import RustlandPolicy
from scx_pyland.policy import Policy, PolicyConfig
from scx_pyland.records import dispatched_records, queued_bytes
from scx_pyland.worker import Worker, WorkerOptions, compaction_off_locked_pages

CONFIG = PolicyConfig(nr_cpus=2)
# The BPF side's counters, each with a value of its own, so a statistic published
# under the wrong name shows.
COUNTERS = {"nr_queued": 11, "nr_scheduled": 12, "nr_running": 13, "nr_online_cpus": 14,
            "nr_user_dispatches": 15, "nr_kernel_dispatches": 16, "nr_cancel_dispatches": 17,
            "nr_bounce_dispatches": 18, "nr_failed_dispatches": 19, "nr_sched_congested": 20,
            "nr_direct_dispatches": 21, "nr_rt_dispatches": 22, "nr_stalled_dispatches": 23, "nr_custody_dispatches": 28,
            "nr_sent": 24, "nr_received": 25, "nr_drain_errors": 26, "nr_worker_preempts": 27}


class FakeScheduler:
    """Delivers one batch of records per cycle; the ring takes `room` decisions per cycle.
    Its custody is the extension's own, as the real Scheduler keeps it: dequeue()
    records what it delivers, submit() takes the decisions out of it."""

    def __init__(self, batches: list[list[int]], room: int, cycles: int) -> None:
        self.batches = [b"".join(queued_bytes(pid) for pid in pids) for pids in batches]
        self.room = room
        self.cycles = cycles
        self.sent: list[dict] = []
        self.pending_reports: list[int] = []
        self.ceiling_backlog = 0
        self.custody = _bpf.Custody()
        self.nr_decisions_sent = 0

    def dequeue(self, max):
        return self.custody.decode(self.batches.pop(0)) if self.batches else []

    def dispatch(self, tasks):
        taken = tasks[:self.room]
        self.sent += dispatched_records(_bpf.encode_dispatched(taken))
        self.nr_decisions_sent += len(taken)
        return len(taken)

    def submit(self, decisions):
        decisions = self.custody.release(decisions)
        sent = self.dispatch(decisions)
        return decisions[sent:] or None

    def notify_complete(self, nr_pending):
        self.pending_reports.append(nr_pending)
        self.cycles -= 1
        return self.exited()

    def exited(self):
        return self.cycles <= 0

    def counters(self):
        return SimpleNamespace(**COUNTERS)


def run(policy: Policy, sched: FakeScheduler, worker: Worker | None = None) -> Worker:
    worker = worker or Worker(policy, WorkerOptions())
    worker.loop(sched)
    return worker


def test_decisions_the_full_ring_refused_are_sent_first_next_cycle_in_order():
    sched = FakeScheduler([[1, 2, 3, 4, 5]], room=2, cycles=5)
    worker = run(FifoPolicy(CONFIG), sched)
    assert [d["pid"] for d in sched.sent] == [1, 2, 3, 4, 5]
    assert worker.nr_dispatched == 5


def test_what_waits_for_the_ring_counts_as_pending():
    sched = FakeScheduler([[1, 2, 3, 4, 5]], room=2, cycles=4)
    run(FifoPolicy(CONFIG), sched)
    assert sched.pending_reports[:3] == [3, 1, 0]


def test_rustland_dispatches_one_task_per_cpu_per_cycle_until_none_is_pending():
    sched = FakeScheduler([[10, 11, 12, 13, 14]], room=100, cycles=4)
    run(RustlandPolicy(CONFIG), sched)     # 2 CPUs
    assert len(sched.sent) == 5
    assert sched.pending_reports[:3] == [3, 1, 0]


def test_with_on_policy_error_exit_an_exception_in_the_policy_leaves_the_loop():
    class Broken(FifoPolicy):
        def dispatch(self):
            raise ZeroDivisionError("policy bug")

    with pytest.raises(ZeroDivisionError):
        run(Broken(CONFIG), FakeScheduler([[1]], room=10, cycles=3),
            Worker(Broken(CONFIG), WorkerOptions(on_policy_error="exit")))


def test_alone_the_worker_restores_compact_unevictable_allowed(tmp_path):
    sysctl = tmp_path / "compact_unevictable_allowed"
    sysctl.write_text("1\n")
    with compaction_off_locked_pages(sysctl, restore=True):
        assert sysctl.read_text() == "0"
    assert sysctl.read_text() == "1"


def test_under_the_supervisor_the_worker_leaves_the_restore_to_it(tmp_path):
    """Issue 14 item 10: the supervisor outlives a killed worker and restores it."""
    sysctl = tmp_path / "compact_unevictable_allowed"
    sysctl.write_text("1\n")
    with compaction_off_locked_pages(sysctl, restore=False):
        pass
    assert sysctl.read_text() == "0"


def test_each_statistic_is_published_under_its_own_name(tmp_path):
    policy = FifoPolicy(CONFIG)
    worker = Worker(policy, WorkerOptions())
    worker.stats = stats.StatsWriter(tmp_path / "stats")
    try:
        run(policy, FakeScheduler([[1, 2, 3, 4, 5]], room=2, cycles=2), worker)
        published = stats.read_snapshot(tmp_path / "stats").values
    finally:
        worker.stats.close()
    from_counters = {name: published[name] for name in COUNTERS if name in published}
    assert from_counters == {name: COUNTERS[name] for name in from_counters}
    assert len(from_counters) == 15     # every BPF counter stats.FIELDS shows
    assert published["nr_policy_dispatches"] == worker.nr_dispatched == 4
    assert published["nr_pending"] == 1     # the decision the full ring refused


# -- start-up and the transport, with the BPF side stubbed out ------------------------

class AttachedFake(FakeScheduler):
    """The extension's Scheduler as attach_and_run uses it; the last one made is
    `AttachedFake.last`, and its exit kind is `AttachedFake.exit_kind`."""

    ops_name = "pyland_fake"
    closed = False
    last: AttachedFake | None = None
    exit_kind = 0x40      # SCX_EXIT_UNREG: our own detach

    def __init__(self, **options) -> None:
        super().__init__([[1, 2]], room=10, cycles=3)
        self.options = options
        AttachedFake.last = self

    def select_cpus(self, tasks):
        return [-1] * len(tasks)

    def shutdown_and_report(self):
        return SimpleNamespace(kind=self.exit_kind, exit_code=0, reason="unregistered from user space", msg="",
                               dump="")

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def no_kernel(monkeypatch, tmp_path):
    """Everything run_attached touches outside the loop, stubbed: no BPF, no sysctl,
    no signal handlers left behind; the statistics go to tmp_path."""
    monkeypatch.setattr(worker_module._bpf, "check_environment", lambda: None)
    monkeypatch.setattr(worker_module._bpf, "guard_memory", lambda: [])
    monkeypatch.setattr(worker_module, "compaction_off_locked_pages", lambda *args, **kwargs: contextlib.nullcontext())
    monkeypatch.setattr(worker_module.signal, "signal", lambda *args: None)
    monkeypatch.setattr(worker_module._bpf, "Scheduler", AttachedFake)
    monkeypatch.setattr(worker_module.topology, "read_topology",
                        lambda: topology.Topology(online=[0, 1], core_siblings={0: [0], 1: [1]}))
    yield WorkerOptions(stats_path=tmp_path / "stats")
    gc.enable()
    gc.unfreeze()


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error" in line.lower() or "Traceback" in line]


def test_an_unreadable_topology_is_a_start_up_failure(no_kernel, monkeypatch, capfd):
    def unreadable():
        raise PermissionError(13, "Permission denied", "/sys/devices/system/cpu/online")
    monkeypatch.setattr(worker_module.topology, "read_topology", unreadable)
    status = Worker(FifoPolicy(CONFIG), no_kernel).run_attached()
    assert status == WorkerStatus.CANNOT_START
    assert error_lines(capfd.readouterr().err) == [
        "scx_pyland: error: cannot read the CPU topology: Permission denied (/sys/devices/system/cpu/online)"]


def test_partial_without_sched_ext_for_the_worker_is_a_start_up_failure(no_kernel, monkeypatch, capfd):
    def refused(pid, policy, param):
        raise OSError(22, "Invalid argument")
    monkeypatch.setattr(worker_module.os, "sched_setscheduler", refused)
    no_kernel.partial = True
    status = Worker(FifoPolicy(CONFIG), no_kernel).run_attached()
    assert status == WorkerStatus.CANNOT_START
    assert error_lines(capfd.readouterr().err) == [
        "scx_pyland: error: --partial: cannot make the worker a SCHED_EXT task: Invalid argument"]


def test_a_failed_ring_read_is_a_transport_failure_not_the_policy_s(no_kernel, monkeypatch, capfd):
    def broken_ring(self, max):
        raise _bpf.Error("reading the ring buffer of queued tasks failed: Bad address")
    monkeypatch.setattr(AttachedFake, "dequeue", broken_ring)
    worker = Worker(FifoPolicy(CONFIG), no_kernel)
    status = worker.run_attached()
    assert status == WorkerStatus.TRANSPORT_FAILED
    assert error_lines(capfd.readouterr().err) == [
        "scx_pyland: error: the transport to the BPF side failed: reading the ring buffer of queued "
        "tasks failed: Bad address; the scheduler is detached"]
    assert "policy" not in worker.exit_fields["error"]


@pytest.mark.parametrize("error", [
    _bpf.Error("cannot map the ring buffer of queued tasks: Cannot allocate memory"),
    _bpf.Error("cannot register the worker with the BPF side: Cannot allocate memory"),
    _bpf.Error("the kernel refused to attach the scheduler (Device or resource busy, state disabled)"),
    MemoryError(),
], ids=["ring", "program-run", "attach-busy", "bad-alloc"])
def test_a_start_up_failure_that_may_pass_is_restartable_not_final(no_kernel, monkeypatch, capfd, error):
    """Issue 28 3.4: every extension error at start-up was exit 69, which neither
    the supervisor nor systemd retries; a transient ENOMEM mapping a ring ended the
    service for good."""
    def failing(**options):
        raise error
    monkeypatch.setattr(worker_module._bpf, "Scheduler", failing)
    worker = Worker(FifoPolicy(CONFIG), no_kernel)
    assert worker.run_attached() == WorkerStatus.START_FAILED
    message = str(error) or "out of memory"
    assert error_lines(capfd.readouterr().err) == [f"scx_pyland: error: cannot start now: {message}"]
    assert worker.exit_fields == {"error": message}


@pytest.mark.parametrize("error", [
    _bpf.SchedExtUnavailable("this kernel (6.1.0) has no sched_ext"),
    _bpf.NotPrivileged("scx_pyland lacks CAP_BPF"),
    _bpf.SchedulerBusy("another sched_ext scheduler is attached (simple)"),
    _bpf.VerifierRejected("the kernel's verifier rejected the BPF scheduler"),
    _bpf.CannotStartHere("sched_ext_ops has no member timeout_ms"),
], ids=["no-sched_ext", "privilege", "busy", "verifier", "object"])
def test_a_start_up_failure_that_cannot_pass_is_final(no_kernel, monkeypatch, capfd, error):
    def failing(**options):
        raise error
    monkeypatch.setattr(worker_module._bpf, "Scheduler", failing)
    assert isinstance(error, _bpf.Error)
    assert Worker(FifoPolicy(CONFIG), no_kernel).run_attached() == WorkerStatus.CANNOT_START
    assert error_lines(capfd.readouterr().err) == [f"scx_pyland: error: {error}"]


def test_a_kernel_that_refuses_the_ext_server_s_bandwidth_at_attach_is_explained(no_kernel, monkeypatch, capfd):
    """Issue 28 1b: with SCHED_DEADLINE admission full, 7.2+ accept the attach and
    exit at once, 'runtime error (scx_root_enable() failed (-16))'; the line says
    what the kernel refused and what frees it, and it stays a (restarted) kernel exit."""
    monkeypatch.setattr(AttachedFake, "exit_kind", 0x400)
    monkeypatch.setattr(AttachedFake, "shutdown_and_report", lambda self: SimpleNamespace(
        kind=0x400, exit_code=0, reason="runtime error", msg="scx_root_enable() failed (-16)", dump=""))
    monkeypatch.setattr(exits, "kernel_release", lambda release=None: (7, 3))
    status = Worker(FifoPolicy(CONFIG), no_kernel).run_attached()
    assert status == WorkerStatus.KERNEL_EXIT
    err = capfd.readouterr().err
    assert ("exit: runtime error (scx_root_enable() failed (-16)): the kernel could not reserve SCHED_DEADLINE "
            "bandwidth for its sched_ext server (ext_server)") in err
    assert "raising sched_rt_runtime_us (-1: no limit), frees it; kind ERROR 0x400" in err


def test_a_whole_run_attaches_schedules_what_was_queued_and_reports_how_it_ended(no_kernel, capfd):
    """run_attached end to end with only the BPF side stubbed: the scheduler is built
    from the options and the topology, the queued tasks reach the policy and its
    decisions the ring, and the exit is reported and detached."""
    no_kernel.slice_ns = 5_000_000
    worker = Worker(FifoPolicy(CONFIG), no_kernel)
    status = worker.run_attached()
    sched = AttachedFake.last
    err = capfd.readouterr().err
    assert status == WorkerStatus.STOPPED
    assert sched.options["slice_ns"] == 5_000_000 and sched.options["smt_enabled"] is False
    assert [d["pid"] for d in sched.sent] == [1, 2]
    assert sched.closed and gc.isenabled()
    assert "scx_pyland: attached as pyland_fake (fifo policy, 2 CPUs, slice 5000 us)" in err
    assert "exit: unregistered from user space; kind UNREG 0x40" in err
    assert "policy fifo dispatched 2;" in err
    assert error_lines(err) == []
    assert worker.exit_fields["kind"] == 0x40


def test_an_exit_the_kernel_chose_is_a_kernel_exit_not_a_stop(no_kernel, monkeypatch, capfd):
    monkeypatch.setattr(AttachedFake, "exit_kind", 0x402)     # SCX_EXIT_ERROR_STALL
    status = Worker(FifoPolicy(CONFIG), no_kernel).run_attached()
    assert status == WorkerStatus.KERNEL_EXIT
    assert "kind ERROR_STALL 0x402" in capfd.readouterr().err


# -- one thread, no fork: the rules enforced ------------------------------------------

class Threaded(FifoPolicy):
    """Starts a thread when it is built, as a policy that made a pool would."""

    name = "threaded"

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__(config)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.stop.wait, name="policy-pool")
        self.thread.start()

    def end(self) -> None:
        self.stop.set()
        self.thread.join()


def test_a_policy_that_started_a_thread_cannot_attach(no_kernel, monkeypatch, capfd):
    monkeypatch.setattr(AttachedFake, "last", None)
    policy = Threaded(CONFIG)
    try:
        status = Worker(policy, no_kernel).run_attached()
    finally:
        policy.end()
    assert status == WorkerStatus.CANNOT_START and AttachedFake.last is None     # never attached
    assert error_lines(capfd.readouterr().err) == [
        "scx_pyland: error: the worker must be one thread, but 1 thread (policy-pool) run in it, started by the "
        "threaded policy or a module it imports (docs/design.md, the traps)"]


def test_a_reload_to_a_policy_that_starts_a_thread_ends_the_worker_for_a_restart(no_kernel, monkeypatch, tmp_path,
                                                                                   capfd):
    (tmp_path / "threads.py").write_text(
        "import threading, time\nfrom scx_pyland.policies.fifo import FifoPolicy\n"
        "class P(FifoPolicy):\n    def __init__(self, config):\n        super().__init__(config)\n"
        "        threading.Thread(target=time.sleep, args=(0.3,), name='policy-pool').start()\n")
    monkeypatch.setattr(worker_module, "TICK_NS", 0)       # the first housekeeping is a tick
    no_kernel.state_path = tmp_path / "policy.json"
    worker = Worker(FifoPolicy(CONFIG), no_kernel)
    worker.housekeeping_ns = 0                              # housekeeping every cycle
    worker.spec = f"{tmp_path / 'threads.py'}:P"
    worker.reload_requested = True
    try:
        status = worker.run_attached()
    finally:
        while worker_module.other_threads():
            time.sleep(0.01)
    assert status == WorkerStatus.POLICY_FAILED
    assert AttachedFake.last.closed
    line = (f"scx_pyland: error: the {tmp_path / 'threads.py'}:P policy started 1 thread (policy-pool): the worker "
            f"must stay one thread (docs/design.md, the traps); the scheduler is detached")
    assert error_lines(capfd.readouterr().err) == [line]
    swap = reload.read_state(tmp_path / "policy.json")["last_swap"]
    assert swap["ok"] is False and swap["message"].endswith("; the worker restarts with the fifo policy")
    assert reload.read_state(tmp_path / "policy.json")["policy"] == "fifo"


def test_while_attached_a_fork_s_child_ends_at_once_and_the_worker_says_so():
    lines: list[str] = []
    guard = worker_module.ForkGuard(lines.append)
    with guard.armed():
        pid = os.fork()
        if pid == 0:
            os._exit(0)     # never reached: the guard ends the child first
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == WorkerStatus.POLICY_FAILED
    assert guard.nr_forks == 1 and len(lines) == 1
    assert lines[0].startswith("scx_pyland: error: the worker forked while attached: the child was ended at once")
    pid = os.fork()             # disarmed: as if no guard were there
    if pid == 0:
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and guard.nr_forks == 1


def test_other_threads_names_every_thread_but_the_caller():
    assert worker_module.other_threads() == []
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="seen")
    thread.start()
    try:
        assert worker_module.other_threads() == ["seen"]
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize("rescue_ms", [100, 3500])
def test_a_forgotten_task_is_rescued_within_a_quarter_of_the_bound(monkeypatch, rescue_ms):
    """Issue 28, 3.1: a task the policy never decides is rescued no earlier than 3/4 of
    --rescue-after-ms and no later than 5/4 of it plus one cycle (stamped with the
    housekeeping before it arrived, looked for four times per bound); 3500 ms is the
    largest the CLI accepts with the default 5 s watchdog (cli.max_rescue_after_ms)."""
    cycle_ns = 7_000_000
    clock = [1_000_000_000]
    monkeypatch.setattr(time, "monotonic_ns", lambda: clock[0])

    class Forgetful(FifoPolicy):
        def enqueue(self, tasks):
            super().enqueue([t for t in tasks if t.pid != 7])

    class Clocked(FakeScheduler):
        def notify_complete(self, nr_pending):
            clock[0] += cycle_ns
            return super().notify_complete(nr_pending)

    # pid 7 arrives in the 30th cycle, at an arbitrary point between housekeepings.
    batches = [[100 + i] for i in range(29)] + [[7]]
    sched = Clocked(batches, room=100, cycles=30 + 2 * rescue_ms * 1_000_000 // cycle_ns)
    arrived = 1_000_000_000 + 29 * cycle_ns
    sent_at = {}

    def dispatch(tasks):
        for t in tasks:
            sent_at.setdefault(t.pid, clock[0])
        return FakeScheduler.dispatch(sched, tasks)

    sched.dispatch = dispatch
    worker = run(Forgetful(CONFIG), sched, Worker(Forgetful(CONFIG), WorkerOptions(rescue_after_ms=rescue_ms)))
    assert worker.nr_rescued == 1
    waited = sent_at[7] - arrived
    bound = rescue_ms * 1_000_000
    assert 0.75 * bound <= waited <= 1.25 * bound + cycle_ns, (waited, bound)
    assert max_rescue_after_ms(5000) == 3500
