"""Issue 16 in the worker's loop, without a kernel: records arrive as bytes through
the real decoder (tests/test_worker.py's FakeScheduler), and the custody is the
extension's own. A policy's exception hands its tasks to fifo, a task it forgets is
rescued, a decision for a task it does not hold is dropped, and a policy is swapped
(or refused) between two cycles with every task it held handed over."""

from __future__ import annotations

import json

import pytest

from scx_pyland import reload, worker as worker_module
from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.policies.rustland import RustlandPolicy
from scx_pyland.policy import RL_CPU_ANY, DispatchedTask, PolicyConfig
from scx_pyland.worker import Worker, WorkerOptions
from test_worker import FakeScheduler

CONFIG = PolicyConfig(nr_cpus=2)


class Holding(FifoPolicy):
    """Takes tasks and decides nothing: every task stays held."""

    name = "holding"

    def dispatch(self):
        return []


def options(tmp_path, **changes) -> WorkerOptions:
    return WorkerOptions(state_path=tmp_path / "policy.json", request_path=tmp_path / "reload.json",
                         **changes)


def sent_pids(sched: FakeScheduler) -> list[int]:
    return [d["pid"] for d in sched.sent]


def run(worker: Worker, sched: FakeScheduler) -> Worker:
    worker.loop(sched)
    return worker


@pytest.mark.parametrize("where", ["enqueue", "dispatch", "nr_pending", "tick"])
def test_a_policy_that_raises_hands_every_task_it_held_to_fifo(tmp_path, monkeypatch, where):
    monkeypatch.setattr(worker_module, "TICK_NS", 1)     # every cycle is a tick
    class Broken(FifoPolicy):
        """Holds the first batch, then raises in `where` on the second cycle."""

        name = "broken"
        cycle = 0

        def enqueue(self, tasks):
            self.cycle += 1
            if where == "enqueue" and self.cycle == 2:
                raise ZeroDivisionError("bug in enqueue")
            super().enqueue(tasks)

        def dispatch(self):
            if self.cycle == 2 and where == "dispatch":
                raise ZeroDivisionError("bug in dispatch")
            return []

        @property
        def nr_pending(self):
            if self.cycle == 2 and where == "nr_pending":
                raise ZeroDivisionError("bug in nr_pending")
            return len(self.waiting)

        def tick(self):
            if self.cycle == 2 and where == "tick":
                raise ZeroDivisionError("bug in tick")

    sched = FakeScheduler([[1, 2, 3], [4, 5]], room=100, cycles=5)
    worker = run(Worker(Broken(CONFIG), options(tmp_path)), sched)
    assert sorted(sent_pids(sched)) == [1, 2, 3, 4, 5]      # fifo got all of them, once each
    assert isinstance(worker.policy, FifoPolicy) and worker.fallback_from == "broken"
    assert worker.nr_policy_errors == 1 and len(sched.custody) == 0
    [message] = worker.events.waiting       # logged once (no descriptor here: it waits)
    assert f"ZeroDivisionError: bug in {where}" in message and "Traceback (most recent call last)" in message
    state = json.loads((tmp_path / "policy.json").read_text())
    assert state["policy"] == "fifo" and state["fallback_from"] == "broken" and state["policy_errors"] == 1


@pytest.mark.parametrize("empty", [None, (), 0, ""], ids=["None", "tuple", "zero", "str"])
@pytest.mark.parametrize("room", [100, 1], ids=["ring-free", "ring-full"])
def test_a_dispatch_that_returns_an_empty_non_list_is_an_error_and_fifo_takes_over(tmp_path, empty, room):
    """Issue 28 3.3: `return None` (or ()) from dispatch() was taken for "nothing to
    run"; the API says anything but a list is an error. With the ring full, the
    decisions waiting for it go first: the check is the same there."""
    class Sloppy(FifoPolicy):
        name = "sloppy"

        def dispatch(self):
            out = super().dispatch()
            return out or empty

    sched = FakeScheduler([[1, 2, 3]], room=room, cycles=8)
    worker = run(Worker(Sloppy(CONFIG), options(tmp_path)), sched)
    assert sorted(sent_pids(sched)) == [1, 2, 3] and len(sched.custody) == 0
    assert isinstance(worker.policy, FifoPolicy) and worker.fallback_from == "sloppy"
    assert worker.nr_policy_errors == 1
    [message] = worker.events.waiting
    assert (f"TypeError: the policy's dispatch() must return a list of DispatchedTask, "
            f"not {type(empty).__name__}") in message


def test_an_empty_list_subclass_is_a_list(tmp_path):
    class Decisions(list):
        pass

    class Own(FifoPolicy):
        def dispatch(self):
            return Decisions(super().dispatch())

    sched = FakeScheduler([[1, 2]], room=100, cycles=4)
    worker = run(Worker(Own(CONFIG), options(tmp_path)), sched)
    assert sent_pids(sched) == [1, 2] and worker.nr_policy_errors == 0


def test_an_exception_in_the_fallback_itself_leaves_the_loop(tmp_path, monkeypatch):
    def broken_fifo_dispatch(self):
        raise ZeroDivisionError("fifo bug")

    class Broken(Holding):
        def dispatch(self):
            raise KeyError("first")

    monkeypatch.setattr(worker_module.FifoPolicy, "dispatch", broken_fifo_dispatch)
    with pytest.raises(ZeroDivisionError):
        run(Worker(Broken(CONFIG), options(tmp_path)), FakeScheduler([[1]], room=10, cycles=5))


def test_decisions_for_tasks_the_policy_does_not_hold_are_dropped_and_counted(tmp_path):
    class Stray(FifoPolicy):
        def dispatch(self):
            out = super().dispatch()
            if out:
                out += [DispatchedTask(999, RL_CPU_ANY, 0, 0, 0, 1), out[0]]   # never given; twice
            return out

    sched = FakeScheduler([[1, 2]], room=100, cycles=3)
    worker = run(Worker(Stray(CONFIG), options(tmp_path)), sched)
    assert sent_pids(sched) == [1, 2]
    assert sched.custody.nr_invalid == 2 and worker.nr_policy_errors == 0


def test_a_task_the_policy_forgets_is_dispatched_by_the_worker_and_counted(tmp_path):
    class ForgetsSeven(FifoPolicy):
        def enqueue(self, tasks):
            super().enqueue([task for task in tasks if task.pid != 7])

    sched = FakeScheduler([[6, 7, 8]], room=100, cycles=10 ** 9)
    worker = Worker(ForgetsSeven(CONFIG), options(tmp_path, rescue_after_ms=2))
    real_notify = sched.notify_complete

    def notify_complete(nr_pending):
        if 7 in sent_pids(sched):
            sched.cycles = 0        # the end, once 7 went
        return real_notify(nr_pending)

    sched.notify_complete = notify_complete
    run(worker, sched)
    assert sent_pids(sched) == [6, 8, 7]
    assert sched.sent[-1]["cpu"] == RL_CPU_ANY and sched.sent[-1]["enq_cnt"] == 1
    assert worker.nr_rescued == 1 and len(sched.custody) == 0
    assert "held 1 task(s) longer than 2 ms (pid 7)" in worker.events.waiting[0]


# -- swaps -------------------------------------------------------------------------------

def held_sched(pids: list[int]) -> FakeScheduler:
    """A FakeScheduler whose custody holds `pids` (as its dequeue would have recorded them)."""
    sched = FakeScheduler([pids], room=100, cycles=1)
    sched.dequeue(512)
    return sched


def test_a_swap_hands_every_task_held_to_the_new_policy_oldest_first(tmp_path):
    sched = held_sched([3, 1, 2])
    worker = Worker(Holding(CONFIG), options(tmp_path, policy_spec="holding"))
    assert worker.swap(sched, "fifo", "reload", request="r1")
    assert isinstance(worker.policy, FifoPolicy) and worker.spec == "fifo"
    assert [d.pid for d in worker.policy.dispatch()] == [3, 1, 2]
    state = reload.read_state(tmp_path / "policy.json")
    assert state["policy"] == "fifo" and state["swaps"] == 1
    assert state["last_swap"] | {"time": 0} == {"time": 0, "from": "holding", "to": "fifo", "cause": "reload",
                                                "ok": True, "message": "handed over 3 tasks", "request": "r1"}


@pytest.mark.parametrize("source, reason", [
    ("class P(Policy:\n", "SyntaxError"),
    ("from scx_pyland.policy import Policy\n", "has no 'P'"),
    ("from scx_pyland.policies.fifo import FifoPolicy\nclass P(FifoPolicy):\n"
     "    def __init__(self, config):\n        raise ValueError('no config')\n",
     "failed to start: ValueError: no config"),
    ("from scx_pyland.policies.fifo import FifoPolicy\nclass P(FifoPolicy):\n"
     "    def enqueue(self, tasks):\n        raise ValueError('cannot take them')\n",
     "raised on taking over 2 tasks: ValueError: cannot take them"),
])
def test_a_policy_that_cannot_be_loaded_is_refused_in_one_line_and_the_old_one_goes_on(tmp_path, source, reason):
    (tmp_path / "p.py").write_text(source)
    sched = held_sched([1, 2])
    old = Holding(CONFIG)
    worker = Worker(old, options(tmp_path, policy_spec="holding"))
    assert not worker.swap(sched, f"{tmp_path / 'p.py'}:P", "reload", request="r2")
    assert worker.policy is old and worker.spec == "holding" and len(sched.custody) == 2
    [line] = worker.events.waiting
    assert "\n" not in line and line.startswith("scx_pyland: error: reload refused: ")
    assert reason in line and line.endswith("; the holding policy keeps running")
    swap = reload.read_state(tmp_path / "policy.json")["last_swap"]
    assert swap["ok"] is False and swap["request"] == "r2" and reason in swap["message"]


def test_a_sighup_reloads_between_two_cycles_without_leaving_the_loop(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_module, "TICK_NS", 1)     # every cycle is a tick
    reload.write_request(tmp_path / "reload.json", "r3", "rustland")
    sched = FakeScheduler([[1, 2, 3, 4, 5]], room=100, cycles=6)
    worker = Worker(Holding(CONFIG), options(tmp_path, policy_spec="holding"))
    worker.request_reload()
    run(worker, sched)
    assert isinstance(worker.policy, RustlandPolicy)
    assert sorted(sent_pids(sched)) == [1, 2, 3, 4, 5]
    assert not (tmp_path / "reload.json").exists()      # the request was taken
    assert reload.read_state(tmp_path / "policy.json")["last_swap"]["request"] == "r3"


def test_watch_reloads_an_edited_file(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_module, "TICK_NS", 1)
    policy = tmp_path / "w.py"
    policy.write_text("from scx_pyland.policies.fifo import FifoPolicy\nclass W(FifoPolicy):\n    name = 'v1'\n")
    spec = f"{policy}:W"
    worker = Worker(worker_module.load_policy_class(spec)(CONFIG), options(tmp_path, policy_spec=spec, watch=True))
    worker.watched = worker.watch_target()
    sched = held_sched([1])
    assert not worker.housekeeping(sched)                 # unchanged
    policy.write_text(policy.read_text().replace("v1", "v2") + "\n")
    assert worker.housekeeping(sched)
    assert worker.policy.name == "v2"
    assert reload.read_state(tmp_path / "policy.json")["last_swap"]["cause"] == "file changed"
    assert not worker.housekeeping(sched)                 # seen once


def test_after_a_fallback_reload_and_watch_load_the_policy_asked_for_again(tmp_path):
    class Broken(Holding):
        def dispatch(self):
            raise KeyError("bug")

    sched = FakeScheduler([[1]], room=10, cycles=2)
    worker = run(Worker(Broken(CONFIG), options(tmp_path, policy_spec="rustland")), sched)
    assert worker.spec_in_use == "fifo" and worker.spec == "rustland"
    assert worker.swap(sched, worker.spec, "reload")
    assert isinstance(worker.policy, RustlandPolicy) and worker.fallback_from is None


def test_reloads_leave_no_garbage_behind_while_the_collector_is_off(tmp_path):
    import gc
    policy = tmp_path / "g.py"
    policy.write_text("from scx_pyland.policies.fifo import FifoPolicy\nclass G(FifoPolicy):\n    pass\n")
    sched = held_sched([1])
    worker = Worker(Holding(CONFIG), options(tmp_path))
    gc.disable()
    try:
        worker.swap(sched, f"{policy}:G", "reload")      # the first import stays in use
        before = len(gc.get_objects())
        for _ in range(20):
            assert worker.swap(sched, f"{policy}:G", "reload")
        assert len(gc.get_objects()) < before + 200       # not 20 modules and classes more
    finally:
        gc.enable()
