// SPDX-License-Identifier: GPL-2.0-only
// scx_pyland._bpf: the Python binding. It only binds; the logic is in scheduler.cpp
// and records.cpp.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <ctime>

#include <bpf/libbpf.h>

#include "custody.hpp"
#include "records.hpp"
#include "scheduler.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using namespace pyland;

namespace {

std::span<const std::byte> bytes_of(const nb::bytes &data) {
    return {static_cast<const std::byte *>(data.data()), data.size()};
}

// Copy a list of DispatchedTask into contiguous memory, reusing one buffer.
std::span<const DispatchedTask> gather(const nb::list &tasks, std::vector<DispatchedTask> &buf) {
    buf.clear();
    for (nb::handle item : tasks)
        buf.push_back(nb::cast<const DispatchedTask &>(item));
    return buf;
}

// The custody table plus its counters and the buffers its calls reuse.
struct PyCustody {
    Custody custody;
    uint64_t stamp_ns = 0;  // the time receives record; 0: read the clock each time
    uint64_t nr_released = 0, nr_stale = 0, nr_invalid = 0;
    std::vector<QueuedTask> out;
    std::vector<DispatchedTask> valid;   // the decisions to send, in order
    std::vector<size_t> valid_index;     // and where each is in the policy's list
    explicit PyCustody(size_t capacity) : custody(capacity) {}
};

uint64_t monotonic_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The time to record for tasks received now: the stamp when one is set (the worker
// sets its next housekeeping time, so no clock is read per cycle), else the clock.
uint64_t receive_time(const PyCustody &c) { return c.stamp_ns ? c.stamp_ns : monotonic_ns(); }

void receive_all(PyCustody &c, const std::vector<QueuedTask> &tasks) {
    uint64_t now_ns = receive_time(c);
    for (const QueuedTask &t : tasks)
        c.custody.receive(t, now_ns);
}

// Take the policy's decisions out of custody: c.valid gets the ones to send (and
// c.valid_index their places in `decisions`); returns how many were invalid
// (dropped). Every item is checked before anything is released, so a list with a
// bad item changes nothing.
size_t release_decisions(PyCustody &c, nb::handle decisions) {
    if (!PyList_Check(decisions.ptr()))
        throw nb::type_error(("the policy's dispatch() must return a list of DispatchedTask, not " +
                              std::string(nb::type_name(decisions.type()).c_str())).c_str());
    c.valid.clear();
    c.valid_index.clear();
    for (nb::handle item : nb::borrow<nb::list>(decisions)) {
        try {
            c.valid.push_back(nb::cast<const DispatchedTask &>(item));
        } catch (const nb::cast_error &) {
            throw nb::type_error(("the policy's dispatch() returned a " +
                                  std::string(nb::type_name(item.type()).c_str()) +
                                  " among its decisions, not a DispatchedTask").c_str());
        }
    }
    // valid_index stays empty (the identity) until the first invalid decision.
    size_t kept = 0, n = c.valid.size();
    bool any_invalid = false;
    for (size_t i = 0; i < n; i++) {
        Custody::Verdict verdict = c.custody.release(c.valid[i]);
        if (verdict == Custody::Verdict::Invalid) {
            if (!any_invalid)
                for (size_t k = 0; k < i; k++)
                    c.valid_index.push_back(k);
            any_invalid = true;
            c.nr_invalid++;
            continue;
        }
        (verdict == Custody::Verdict::Released ? c.nr_released : c.nr_stale)++;
        if (any_invalid) {
            c.valid[kept] = c.valid[i];
            c.valid_index.push_back(i);
        }
        kept++;
    }
    c.valid.resize(kept);
    return n - kept;
}

// The items of `decisions` sent from position `from` of c.valid on, as a new list.
nb::list valid_items(const PyCustody &c, nb::handle decisions, size_t from) {
    nb::list list = nb::borrow<nb::list>(decisions), out;
    for (size_t k = from; k < c.valid.size(); k++)
        out.append(list[c.valid_index.empty() ? k : c.valid_index[k]]);
    return out;
}

// The scheduler plus the buffers its Python calls reuse, so a cycle allocates no
// C++ memory.
struct PyScheduler {
    Scheduler sched;
    PyCustody custody{1024};   // the tasks handed to the policy, not yet decided
    uint64_t nr_decisions_sent = 0;
    std::vector<QueuedTask> queued;
    std::vector<DispatchedTask> dispatched;
    std::vector<std::pair<int32_t, int32_t>> select_in;
    std::vector<int32_t> select_out;
    explicit PyScheduler(const Options &o) : sched(o) {}
};

uint64_t run_fifo_ceiling_py(PyScheduler &s, uint64_t duration_ns, uint64_t slice_ns, uint64_t slice_min_ns) {
    return s.sched.run_fifo_ceiling(duration_ns, slice_ns, slice_min_ns);
}

template <typename T>
nb::dict layout_of(std::initializer_list<std::tuple<const char *, size_t, size_t>> fields) {
    nb::dict d;
    for (auto [name, offset, size] : fields)
        d[name] = nb::make_tuple(offset, size);
    d["__size__"] = sizeof(T);
    return d;
}
#define FIELD(T, f) std::tuple<const char *, size_t, size_t>{#f, offsetof(T, f), sizeof(T::f)}

}  // namespace

NB_MODULE(_bpf, m) {
    // No leak report at interpreter exit: a worker may end with its Scheduler still
    // referenced (by a policy's thread it refused, a closure the policy kept from
    // use_scheduler(), an exception's frames), and nanobind would print some hundred
    // lines of "leaked instance/type/function" into the log. The process exits: the
    // kernel frees the memory and closes the fds, which detaches the scheduler.
    nb::set_leak_warnings(false);
    m.doc() = "The BPF half of scx_pyland: load, attach, and move tasks in batches.";
    m.attr("__version__") = SCX_PYLAND_VERSION;
    m.attr("RL_CPU_ANY") = static_cast<int>(RL_CPU_ANY);
    m.attr("RL_CPU_NEAR") = static_cast<int>(RL_CPU_NEAR);
    m.attr("RL_PREEMPT") = static_cast<int>(RL_PREEMPT);
    m.attr("ENQ_WAKEUP") = static_cast<int>(ENQ_WAKEUP);
    m.attr("DOMAIN_SMT") = static_cast<int>(DOMAIN_SMT);
    m.attr("DOMAIN_L2") = static_cast<int>(DOMAIN_L2);
    m.attr("DOMAIN_L3") = static_cast<int>(DOMAIN_L3);
    m.attr("DOMAIN_ONLINE") = static_cast<int>(DOMAIN_ONLINE);

    // Error: the BPF side failed (at start-up: for a reason that may pass); its
    // subclass CannotStartHere: this system cannot take the scheduler as it is.
    auto error = nb::exception<Error>(m, "Error", PyExc_RuntimeError);
    auto cannot_start_here = nb::exception<CannotStartHere>(m, "CannotStartHere", error);
    nb::exception<SchedExtUnavailable>(m, "SchedExtUnavailable", cannot_start_here);
    nb::exception<NotPrivileged>(m, "NotPrivileged", cannot_start_here);
    nb::exception<SchedulerBusy>(m, "SchedulerBusy", cannot_start_here);
    nb::exception<VerifierRejected>(m, "VerifierRejected", cannot_start_here);

    nb::class_<QueuedTask>(m, "QueuedTask", "A task that needs a CPU, as the BPF side queued it.")
        .def_ro("pid", &QueuedTask::pid, "Global pid.")
        .def_ro("cpu", &QueuedTask::cpu, "CPU the task last ran on.")
        .def_ro("nr_cpus_allowed", &QueuedTask::nr_cpus_allowed)
        .def_ro("flags", &QueuedTask::flags, "SCX_ENQ_* flags of this enqueue.")
        .def_ro("start_ts", &QueuedTask::start_ts, "When it last started running (ns).")
        .def_ro("stop_ts", &QueuedTask::stop_ts, "When it last stopped running (ns).")
        .def_ro("exec_runtime", &QueuedTask::exec_runtime, "CPU time since it last slept (ns).")
        .def_ro("weight", &QueuedTask::weight, "Scheduling weight, 100 for nice 0.")
        .def_ro("vtime", &QueuedTask::vtime, "The vtime it was last dispatched with; 0 for a new task.")
        .def_ro("enq_cnt", &QueuedTask::enq_cnt, "Enqueue generation; copy it into the dispatch.")
        .def_prop_ro("comm", [](const QueuedTask &t) { return comm_of(t); }, "Command name.")
        .def_ro("enq_ts", &QueuedTask::enq_ts, "When this enqueue queued it to user space (ns, scx_bpf_now()).")
        .def_ro("decided_ts", &QueuedTask::decided_ts,
                "When the worker's decision for its previous record was carried out (ns); 0 if none since.")
        .def("__repr__", [](const QueuedTask &t) {
            return "QueuedTask(pid=" + std::to_string(t.pid) + ", comm='" + comm_of(t) +
                   "', cpu=" + std::to_string(t.cpu) + ", weight=" + std::to_string(t.weight) + ")";
        });

    nb::class_<DispatchedTask>(m, "DispatchedTask", "Where and how to run a queued task.")
        .def("__init__",
             [](DispatchedTask *t, int32_t pid, int32_t cpu, uint64_t flags, uint64_t slice_ns, uint64_t vtime,
                uint64_t enq_cnt) { new (t) DispatchedTask{pid, cpu, flags, slice_ns, vtime, enq_cnt}; },
             "pid"_a, "cpu"_a = static_cast<int>(RL_CPU_ANY), "flags"_a = 0, "slice_ns"_a = 0, "vtime"_a = 0,
             "enq_cnt"_a = 0)
        .def_rw("pid", &DispatchedTask::pid)
        .def_rw("cpu", &DispatchedTask::cpu,
                "Target CPU; RL_CPU_ANY for the first free one; RL_CPU_NEAR for an idle CPU near the one "
                "the task last ran on, picked when the BPF side carries the decision out, else the first "
                "free one.")
        .def_rw("flags", &DispatchedTask::flags, "RL_* flags (RL_PREEMPT).")
        .def_rw("slice_ns", &DispatchedTask::slice_ns, "Time slice; 0 for the default.")
        .def_rw("vtime", &DispatchedTask::vtime, "Order within the target DSQ.")
        .def_rw("enq_cnt", &DispatchedTask::enq_cnt, "The queued task's enq_cnt, unchanged.")
        .def("__repr__", [](const DispatchedTask &t) {
            return "DispatchedTask(pid=" + std::to_string(t.pid) + ", cpu=" + std::to_string(t.cpu) +
                   ", slice_ns=" + std::to_string(t.slice_ns) + ", vtime=" + std::to_string(t.vtime) +
                   ", enq_cnt=" + std::to_string(t.enq_cnt) + ")";
        });

    nb::class_<PyCustody>(m, "Custody",
                          "The tasks the worker handed to the policy and has not seen decided, by pid "
                          "(one generation each: the newest record of a task queued again while held). "
                          "Receiving and releasing allocate nothing.")
        .def(nb::init<size_t>(), "capacity"_a = 1024, "Slots to start with; it doubles when half full.")
        .def("receive",
             [](PyCustody &c, const nb::list &tasks, uint64_t now_ns) {
                 if (!now_ns)
                     now_ns = receive_time(c);
                 for (nb::handle item : tasks)
                     c.custody.receive(nb::cast<const QueuedTask &>(item), now_ns);
             },
             "tasks"_a, "now_ns"_a = 0,
             "Record tasks (QueuedTask) handed to the policy at now_ns (CLOCK_MONOTONIC ns; 0: "
             "stamp_ns, or the clock when no stamp is set).")
        .def_rw("stamp_ns", &PyCustody::stamp_ns,
                "The time (CLOCK_MONOTONIC ns) receive(), decode() and Scheduler.dequeue() record for "
                "the tasks they take in; 0 (the default) reads the clock each time. The worker sets "
                "its next housekeeping time, a moment after any receive before it, so a task is never "
                "taken for older than it is and no clock is read per cycle.")
        .def("release",
             [](PyCustody &c, nb::handle decisions) -> nb::object {
                 if (!release_decisions(c, decisions))
                     return nb::borrow(decisions);
                 return valid_items(c, decisions, 0);
             },
             "decisions"_a.none(),
             "Take the policy's decisions (a list of DispatchedTask) out of custody: one for the "
             "generation held releases its task; one for an older generation of a task held is stale "
             "(sent all the same: the BPF side cancels it); one for a task not held (never given, "
             "decided already, rescued) or for a generation never given is invalid. Returns the "
             "decisions to send: the list itself when none is invalid, else a new list without the "
             "invalid ones (counted in nr_invalid). Raises TypeError, releasing nothing, when it is "
             "not a list of DispatchedTask.")
        .def("decode",
             [](PyCustody &c, const nb::bytes &data) {
                 auto tasks = decode_queued_records(bytes_of(data));
                 receive_all(c, tasks);
                 return tasks;
             },
             "data"_a,
             "decode_queued() and receive() in one call, as Scheduler.dequeue() does (replays, tests, "
             "the policy benchmark).")
        .def("encode",
             [](PyCustody &c, nb::handle decisions) {
                 release_decisions(c, decisions);
                 auto s = encode_dispatched_records(c.valid);
                 return nb::bytes(s.data(), s.size());
             },
             "decisions"_a.none(),
             "release() and encode_dispatched() of what is left in one call, as Scheduler.submit() "
             "does (tests, the policy benchmark).")
        .def("take_overdue",
             [](PyCustody &c, uint64_t held_longer_than_ns, uint64_t slice_ns, uint64_t now_ns) {
                 if (!now_ns)
                     now_ns = monotonic_ns();
                 c.out.clear();
                 uint64_t cutoff = now_ns > held_longer_than_ns ? now_ns - held_longer_than_ns : 0;
                 c.custody.take_overdue(cutoff, c.out);
                 nb::list rescued;
                 for (const QueuedTask &t : c.out)
                     rescued.append(nb::cast(DispatchedTask{t.pid, RL_CPU_ANY, 0, slice_ns, t.vtime, t.enq_cnt}));
                 return rescued;
             },
             "held_longer_than_ns"_a, "slice_ns"_a, "now_ns"_a = 0,
             "Remove every task held held_longer_than_ns (ns) or longer at now_ns (0: now) and return "
             "a decision for each, oldest first: any CPU (RL_CPU_ANY), slice_ns, the vtime it was queued "
             "with, its enq_cnt.")
        .def("held",
             [](PyCustody &c) {
                 c.out.clear();
                 c.custody.held(c.out);
                 nb::list tasks;
                 for (const QueuedTask &t : c.out)
                     tasks.append(nb::cast(t));
                 return tasks;
             },
             "Every task held (QueuedTask, as queued), oldest first; they stay held.")
        .def("clear", [](PyCustody &c) { c.custody.clear(); }, "Forget every task held.")
        .def("__len__", [](const PyCustody &c) { return c.custody.size(); })
        .def_ro("nr_released", &PyCustody::nr_released, "Decisions that released a task held.")
        .def_ro("nr_stale", &PyCustody::nr_stale, "Decisions for an older generation of a task held (sent).")
        .def_ro("nr_invalid", &PyCustody::nr_invalid, "Decisions for tasks not held (dropped).");

    nb::class_<Counters>(m, "Counters", "The BPF side's counters at one moment.")
        .def_ro("nr_queued", &Counters::nr_queued)
        .def_ro("nr_scheduled", &Counters::nr_scheduled)
        .def_ro("nr_running", &Counters::nr_running)
        .def_ro("nr_online_cpus", &Counters::nr_online_cpus)
        .def_ro("nr_user_dispatches", &Counters::nr_user_dispatches)
        .def_ro("nr_kernel_dispatches", &Counters::nr_kernel_dispatches)
        .def_ro("nr_cancel_dispatches", &Counters::nr_cancel_dispatches)
        .def_ro("nr_bounce_dispatches", &Counters::nr_bounce_dispatches)
        .def_ro("nr_failed_dispatches", &Counters::nr_failed_dispatches)
        .def_ro("nr_sched_congested", &Counters::nr_sched_congested)
        .def_ro("nr_direct_dispatches", &Counters::nr_direct_dispatches)
        .def_ro("nr_rt_dispatches", &Counters::nr_rt_dispatches)
        .def_ro("nr_stalled_dispatches", &Counters::nr_stalled_dispatches)
        .def_ro("nr_sent", &Counters::nr_sent)
        .def_ro("nr_received", &Counters::nr_received)
        .def_ro("nr_drain_errors", &Counters::nr_drain_errors)
        .def_ro("nr_worker_preempts", &Counters::nr_worker_preempts)
        .def_ro("nr_custody_dispatches", &Counters::nr_custody_dispatches);

    nb::class_<ExitInfo>(m, "ExitInfo", "What the kernel said when the scheduler left.")
        .def_ro("kind", &ExitInfo::kind, "enum scx_exit_kind.")
        .def_ro("exit_code", &ExitInfo::exit_code)
        .def_ro("reason", &ExitInfo::reason)
        .def_ro("msg", &ExitInfo::msg)
        .def_ro("dump", &ExitInfo::dump);

    nb::class_<PyScheduler>(m, "Scheduler",
                            "The attached BPF scheduler. Creating it loads and attaches; close() "
                            "(or leaving a with block, or garbage collection) detaches. After close(), "
                            "every call that needs the BPF side raises Error('the scheduler is closed').")
        .def("__init__",
             [](PyScheduler *s, uint64_t slice_ns, uint32_t timeout_ms, uint32_t exit_dump_len, bool partial,
                bool verbose, std::string name, bool smt_enabled, bool direct_dispatch,
                std::vector<std::tuple<int, int, std::vector<int>>> domains, uint64_t max_user_wait_ns) {
                 new (s) PyScheduler(Options{slice_ns, timeout_ms, exit_dump_len, partial, verbose, name,
                                             smt_enabled, direct_dispatch, max_user_wait_ns, std::move(domains)});
             },
             nb::kw_only(), "slice_ns"_a = 20'000'000, "timeout_ms"_a = 5000, "exit_dump_len"_a = 0,
             "partial"_a = false, "verbose"_a = false, "name"_a = "pyland", "smt_enabled"_a = false,
             "direct_dispatch"_a = true, "domains"_a = std::vector<std::tuple<int, int, std::vector<int>>>{},
             "max_user_wait_ns"_a = 50'000'000)
        .def("dequeue",
             [](PyScheduler &s, size_t max) {
                 s.queued.clear();
                 s.sched.dequeue(s.queued, max);
                 if (!s.queued.empty())
                     receive_all(s.custody, s.queued);
                 nb::list out;
                 for (const QueuedTask &t : s.queued)
                     out.append(nb::cast(t));
                 return out;
             },
             "max"_a,
             "Up to max tasks that need a CPU, oldest first; each is recorded in custody (the policy "
             "holds it from now on).")
        .def("dispatch",
             [](PyScheduler &s, const nb::list &tasks) {
                 size_t sent = s.sched.dispatch(gather(tasks, s.dispatched));
                 s.nr_decisions_sent += sent;
                 return sent;
             },
             "tasks"_a,
             "Send decisions in order, custody untouched (decisions taken out of it already); returns "
             "how many went (fewer when the ring is full).")
        .def("submit",
             [](PyScheduler &s, nb::handle decisions) -> nb::object {
                 release_decisions(s.custody, decisions);
                 size_t sent = s.sched.dispatch(s.custody.valid);
                 s.nr_decisions_sent += sent;
                 if (sent == s.custody.valid.size())
                     return nb::none();
                 return valid_items(s.custody, decisions, sent);
             },
             "decisions"_a.none(),
             "The policy's decisions: take them out of custody (Custody.release: the invalid ones are "
             "dropped and counted) and send the rest in order. Returns None when all went, else the "
             "list of those the full ring refused, to send first next time (with dispatch()). Raises "
             "TypeError, changing nothing, when it is not a list of DispatchedTask.")
        .def_prop_ro("custody", [](PyScheduler &s) -> PyCustody & { return s.custody; },
                     nb::rv_policy::reference_internal, "The tasks the policy holds (a Custody).")
        .def_ro("nr_decisions_sent", &PyScheduler::nr_decisions_sent,
                "Decisions sent through submit() and dispatch(): the policy's and the worker's rescues.")
        .def("select_cpus",
             [](PyScheduler &s, const nb::list &tasks) {
                 s.select_in.clear();
                 s.select_out.clear();
                 if (s.sched.all_cpus_busy()) {  // no idle CPU: skip reading the tasks too
                     s.select_out.assign(tasks.size(), -1);
                     return s.select_out;
                 }
                 for (nb::handle t : tasks)
                     s.select_in.emplace_back(nb::cast<int32_t>(t.attr("pid")), nb::cast<int32_t>(t.attr("cpu")));
                 s.sched.select_cpus(s.select_in, s.select_out);
                 return s.select_out;
             },
             "tasks"_a,
             "An idle CPU for each task (anything with .pid and .cpu, e.g. QueuedTask), nearest "
             "to its previous CPU first; -1 where none is idle. One BPF program run per 256 tasks.")
        .def("select_cpu",
             [](PyScheduler &s, int32_t pid, int32_t prev_cpu) {
                 std::pair<int32_t, int32_t> one{pid, prev_cpu};
                 s.select_out.clear();
                 s.sched.select_cpus({&one, 1}, s.select_out);
                 return s.select_out[0];
             },
             "pid"_a, "prev_cpu"_a, "An idle CPU for one task, or -1.")
        .def("idle_cpus",
             [](PyScheduler &s, uint64_t min_idle_ns, uint64_t min_uncontended_ns) {
                 s.sched.idle_cpus(min_idle_ns, min_uncontended_ns, s.select_out);
                 return s.select_out;
             },
             "min_idle_ns"_a, "min_uncontended_ns"_a = 0,
             "The CPUs that have run no task but the worker for at least min_idle_ns (ns) and had no "
             "task queued again without sleeping (a slice that ended, a preemption: a task still "
             "runnable, whose decision will bring it back) for at least min_uncontended_ns, in id "
             "order: a read of the BPF side's per-CPU state, no system call.")
        .def("read_domain", [](PyScheduler &s, int level, int cpu) { return s.sched.read_domain(level, cpu); },
             "level"_a, "cpu"_a, "The CPUs of a cache domain as the BPF side holds them (level: 0 SMT, 1 L2, 2 L3).")
        // The GIL stays held: the worker has no other thread to give it to, and
        // releasing and taking it back costs on every cycle.
        .def("notify_complete", [](PyScheduler &s, uint64_t n) { return s.sched.notify_complete(n); },
             "nr_pending"_a,
             "End a cycle: tell the BPF side how many tasks the policy still holds, then yield. "
             "Returns exited().")
        .def("exited", [](const PyScheduler &s) { return s.sched.exited(); },
             "True once the kernel has unregistered the scheduler.")
        .def("run_fifo_ceiling", &run_fifo_ceiling_py, "duration_ns"_a, "slice_ns"_a, "slice_min_ns"_a,
             nb::call_guard<nb::gil_scoped_release>(),
             "Benchmark only: run the fifo policy's cycle in C++, no Python in the loop, for "
             "duration_ns or until the scheduler exits; returns how many decisions were sent.")
        .def_prop_ro("ceiling_backlog", [](const PyScheduler &s) { return s.sched.ceiling_backlog(); },
                     "Decisions run_fifo_ceiling holds for the next call (the ring was full).")
        .def("debug_request_error", [](PyScheduler &s) { s.sched.debug_request_error(); },
             "Debug only: have the BPF side call scx_bpf_error() on its next dispatch.")
        .def("debug_disable_custody", [](PyScheduler &s) { s.sched.debug_disable_custody(); },
             "Debug only: the BPF side's custody serves no task any more, so tasks the worker drops "
             "stall until the kernel's watchdog ends the scheduler.")
        .def("shutdown_and_report", [](PyScheduler &s) { return s.sched.shutdown_and_report(); },
             nb::call_guard<nb::gil_scoped_release>(), "Detach if attached, and return the exit info.")
        .def("counters", [](const PyScheduler &s) { return s.sched.counters(); })
        .def_prop_ro("ops_name", [](const PyScheduler &s) { return s.sched.ops_name(); })
        .def_prop_ro("attached", [](const PyScheduler &s) { return s.sched.attached(); })
        .def("close", [](PyScheduler &s) { s.sched.close(); }, nb::call_guard<nb::gil_scoped_release>(),
             "Detach and free everything.")
        .def("__enter__", [](PyScheduler &s) -> PyScheduler & { return s; }, nb::rv_policy::reference)
        .def("__exit__", [](PyScheduler &s, nb::args) { s.sched.close(); });

    m.def("decode_queued",
          [](const nb::bytes &data) { return decode_queued_records(bytes_of(data)); }, "data"_a,
          "Decode back-to-back queued_task records (bytes in the intf.h layout), as the ring buffer "
          "callback does.");
    m.def("encode_dispatched",
          [](const nb::list &tasks) {
              std::vector<DispatchedTask> buf;
              auto s = encode_dispatched_records(gather(tasks, buf));
              return nb::bytes(s.data(), s.size());
          },
          "tasks"_a, "Encode tasks as the user ring buffer carries them.");
    m.def("check_environment", &check_environment,
          "Raise CannotStartHere (SchedExtUnavailable, SchedulerBusy, NotPrivileged) if this system "
          "cannot take the scheduler, Error if it cannot now (the last scheduler is still detaching).");
    m.def("encode_queued",
          [](const nb::list &tasks) {
              std::vector<QueuedTask> buf;
              for (nb::handle item : tasks)
                  buf.push_back(nb::cast<const QueuedTask &>(item));
              auto s = encode_queued_records(buf);
              return nb::bytes(s.data(), s.size());
          },
          "tasks"_a, "Encode queued tasks back into their ring buffer bytes (for --record).");
    m.def("missing_kfuncs", &missing_kfuncs,
          "The kfuncs the BPF scheduler needs that this kernel lacks, as (name, Linux release that "
          "added it); empty if it has them all.");
    m.def("guard_memory", &guard_memory,
          "Lock memory, disable THP and malloc trimming for this process; returns warnings.");
    m.def("kernel_enum_value", &kernel_enum_value, "enum_name"_a, "value_name"_a,
          "An enumerator's value in the running kernel's BTF, or None.");
    m.def("bpf_object", []() { auto s = bpf_object_bytes(); return nb::bytes(s.data(), s.size()); },
          "The BPF object file embedded in the extension.");
    m.def("libbpf_version", []() {
        return std::to_string(libbpf_major_version()) + "." + std::to_string(libbpf_minor_version());
    });
    m.def("layout", []() {
        nb::dict d;
        d["queued_task"] = layout_of<QueuedTask>({
            FIELD(QueuedTask, pid), FIELD(QueuedTask, cpu), FIELD(QueuedTask, nr_cpus_allowed),
            FIELD(QueuedTask, flags), FIELD(QueuedTask, start_ts), FIELD(QueuedTask, stop_ts),
            FIELD(QueuedTask, exec_runtime), FIELD(QueuedTask, weight), FIELD(QueuedTask, vtime),
            FIELD(QueuedTask, enq_cnt), FIELD(QueuedTask, comm), FIELD(QueuedTask, enq_ts),
            FIELD(QueuedTask, decided_ts)});
        d["dispatched_task"] = layout_of<DispatchedTask>({
            FIELD(DispatchedTask, pid), FIELD(DispatchedTask, cpu), FIELD(DispatchedTask, flags),
            FIELD(DispatchedTask, slice_ns), FIELD(DispatchedTask, vtime), FIELD(DispatchedTask, enq_cnt)});
        return d;
    }, "Offsets and sizes of the record fields as this extension was compiled.");
}
