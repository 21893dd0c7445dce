// SPDX-License-Identifier: GPL-2.0-only
//
// Scheduler: the whole lifecycle of the BPF half of scx_pyland, in one object.
//
//   Scheduler sched(options);          // open, settings, load, register worker, rings, attach
//   sched.dequeue(batch, max);         // tasks that need a CPU (ring buffer `queued`)
//   sched.dispatch(tasks);             // decisions back (user ring buffer `dispatched`)
//   sched.notify_complete(nr_pending); // every cycle: say what is left, then yield
//   sched.exited(); sched.shutdown_and_report();   // the kernel's verdict
//
// Destroying the object detaches the scheduler, so a Python exception can never
// leave it attached. After close() every call that needs the BPF side throws
// Error("the scheduler is closed"); exited() is true and attached() false.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "records.hpp"

struct pyland_bpf;
struct ring_buffer;
struct user_ring_buffer;
struct bpf_link;
struct bpf_program;

namespace pyland {

// Why the scheduler could not start, or failed while attached; each maps to a
// Python exception class. A plain Error at start-up is one that may pass (out of
// memory, a ring that could not be mapped, a syscall program run that failed, an
// attach the kernel refused for a reason of the moment): retrying may help. A
// CannotStartHere is one that will not pass on this system as it is.
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct CannotStartHere : Error {  // retrying will not help (the object, the kernel, the setup)
    using Error::Error;
};
struct SchedExtUnavailable : CannotStartHere {  // no sched_ext, no BTF, too old, no feature asked for
    using CannotStartHere::CannotStartHere;
};
struct NotPrivileged : CannotStartHere {  // bpf() or attach refused for lack of privilege
    using CannotStartHere::CannotStartHere;
};
struct SchedulerBusy : CannotStartHere {  // another sched_ext scheduler is attached
    using CannotStartHere::CannotStartHere;
};
struct VerifierRejected : CannotStartHere {  // the kernel refused the BPF program
    using CannotStartHere::CannotStartHere;
};

struct Options {
    uint64_t slice_ns = 20'000'000;   // default time slice
    uint32_t timeout_ms = 5000;       // sched_ext watchdog (the kernel caps it at 30 s)
    uint32_t exit_dump_len = 0;       // 0: the kernel's default
    bool partial = false;             // SCX_OPS_SWITCH_PARTIAL
    bool verbose = false;             // libbpf debug output to stderr
    std::string name = "pyland";      // ops name, before the version suffix
    bool smt_enabled = false;         // some core has several CPUs
    bool direct_dispatch = true;      // select_cpu may dispatch to an idle CPU itself
    uint64_t max_user_wait_ns = 50'000'000;  // a record unread longer: the BPF side serves it (0: never)
    // Cache domains for idle selection: (level, cpu, the CPUs sharing it), see intf.h.
    std::vector<std::tuple<int, int, std::vector<int>>> domains;
};

struct Counters {
    uint64_t nr_queued, nr_scheduled, nr_running, nr_online_cpus;
    uint64_t nr_user_dispatches, nr_kernel_dispatches, nr_cancel_dispatches;
    uint64_t nr_bounce_dispatches, nr_failed_dispatches, nr_sched_congested;
    uint64_t nr_direct_dispatches, nr_rt_dispatches, nr_stalled_dispatches;
    uint64_t nr_sent, nr_received, nr_drain_errors, nr_worker_preempts, nr_custody_dispatches;
};

struct ExitInfo {
    int32_t kind = 0;
    int64_t exit_code = 0;
    std::string reason, msg, dump;
};

class Scheduler {
public:
    explicit Scheduler(const Options &options);
    ~Scheduler();
    Scheduler(const Scheduler &) = delete;
    Scheduler &operator=(const Scheduler &) = delete;

    // Append up to `max` queued tasks to `out`; returns how many were appended.
    size_t dequeue(std::vector<QueuedTask> &out, size_t max);
    // Submit tasks in order until the user ring is full; returns how many went.
    size_t dispatch(std::span<const DispatchedTask> tasks);
    // Tell the BPF side how many tasks the policy still holds, then yield the CPU.
    // Every cycle must end here: it is what lets the BPF side stop running the
    // worker when it has nothing to do. Returns exited(), saving the loop a call.
    bool notify_complete(uint64_t nr_pending);
    // Every online CPU is running a task (this worker's among them), so none is idle.
    bool all_cpus_busy() const;
    // The CPUs that have run no task but this worker for at least `min_idle_ns`
    // and had no task queued again without sleeping (a slice that ended) for at
    // least `min_uncontended_ns` (CLOCK_MONOTONIC), into `out` (cleared first):
    // read from the BPF side's cpu_idle_since and cpu_contended_at, no system call.
    void idle_cpus(uint64_t min_idle_ns, uint64_t min_uncontended_ns, std::vector<int32_t> &out) const;

    bool exited() const;
    // Debug only: make the BPF side call scx_bpf_error() on its next dispatch.
    void debug_request_error();
    // Debug only: custody serves no task any more (the watchdog is meant to fire).
    void debug_disable_custody();
    // Benchmark only: the transport's ceiling. The worker cycle of the fifo policy
    // (every queued task to any CPU, the slice shrinking as more wait) run in C++
    // with no Python in the loop, for `duration_ns` or until the kernel ends the
    // scheduler. Decisions the ring had no room for carry over to the next call.
    // Returns how many decisions were sent.
    uint64_t run_fifo_ceiling(uint64_t duration_ns, uint64_t slice_ns, uint64_t slice_min_ns);
    size_t ceiling_backlog() const { return ceiling_backlog_.size(); }

    // Idle CPUs for tasks, nearest to their previous CPU first (the select_cpus
    // program): one result per (pid, prev_cpu), -1 if none is idle or the task is
    // gone. One program run serves up to SELECT_BATCH_MAX tasks; none when
    // every online CPU is busy (then all answers are -1).
    void select_cpus(std::span<const std::pair<int32_t, int32_t>> tasks, std::vector<int32_t> &out);
    // The CPUs of `cpu`'s cache domain at `level`, as the BPF side holds them.
    std::vector<int> read_domain(int level, int cpu);
    // Detach (if still attached) and return what the kernel said at exit.
    ExitInfo shutdown_and_report();
    Counters counters() const;
    std::string ops_name() const;
    bool attached() const { return link_ != nullptr; }
    void close();

private:
    struct SkelDeleter { void operator()(pyland_bpf *) const; };
    struct RingDeleter { void operator()(ring_buffer *) const; };
    struct UserRingDeleter { void operator()(user_ring_buffer *) const; };
    struct LinkDeleter { void operator()(bpf_link *) const; };

    void load(const Options &options);
    void register_worker();
    void init_domains(const Options &options);
    void run_syscall_prog(struct bpf_program *prog, std::string_view what);
    void create_rings();
    void attach();
    // Throws Error("the scheduler is closed") once close() has freed the BPF side.
    void require_open() const;

    // Declared in the order of creation: the link (the attachment) is destroyed
    // first, the skeleton last.
    std::unique_ptr<pyland_bpf, SkelDeleter> skel_;
    std::unique_ptr<ring_buffer, RingDeleter> queued_;
    std::unique_ptr<user_ring_buffer, UserRingDeleter> dispatched_;
    std::unique_ptr<bpf_link, LinkDeleter> link_;
    std::string ops_name_;
    int nr_cpu_ids_ = 0;  // possible CPUs: the ids cpu_idle_since has entries for
    std::vector<QueuedTask> *consume_out_ = nullptr;  // target of the ring callback
    std::vector<QueuedTask> ceiling_queued_;            // run_fifo_ceiling's buffers
    std::vector<DispatchedTask> ceiling_backlog_;
};

// Lock the worker's memory and keep the kernel off its mmap lock: mlockall (after
// raising RLIMIT_MEMLOCK), transparent huge pages off, no malloc trimming or mmap.
// Returns warnings for what could not be done.
std::vector<std::string> guard_memory();

// Refuse early, in words, where the kernel or the system is not ready for us.
void check_environment();

// The kfuncs the BPF object needs that the running kernel's BTF lacks, each with the
// Linux release that added it (empty when the kernel has them all or no BTF).
std::vector<std::pair<std::string, std::string>> missing_kfuncs();

// The value of an enumerator in the running kernel's BTF, if it has it.
std::optional<uint64_t> kernel_enum_value(const std::string &enum_name, const std::string &value_name);

// The BPF object embedded in the skeleton (for inspecting its BTF).
std::string bpf_object_bytes();

}  // namespace pyland
