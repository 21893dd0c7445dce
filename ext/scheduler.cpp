// SPDX-License-Identifier: GPL-2.0-only
#include "scheduler.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <malloc.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

extern "C" {
// The skeleton names these types only through pointers.
struct sched_ext_ops;
#include "pyland.skel.h"
}

namespace pyland {
namespace {

constexpr const char *kSchedExt = "/sys/kernel/sched_ext";

// The oldest Linux the BPF object loads on, and why: the newest of the kfuncs
// bpf/compat.bpf.h declares without a fallback, each with the release that added
// it. 6.12 has sched_ext but neither (nor scx_bpf_dsq_insert and friends, renamed
// from scx_bpf_dispatch* in 6.13; their later variants make them unfit to check by
// name). The oldest kernel tested is 6.16.
constexpr const char *kMinLinux = "6.14";
constexpr std::pair<const char *, const char *> kRequiredKfuncs[] = {
    {"scx_bpf_dsq_move", "6.13"},  // renamed from scx_bpf_dispatch_from_dsq
    {"scx_bpf_now", "6.14"},
};

// What a user without the privileges needs (the kernel's rules: bpf_capable() is
// CAP_BPF or CAP_SYS_ADMIN, perfmon_capable() CAP_PERFMON or CAP_SYS_ADMIN).
constexpr const char *kPrivilegesNeeded =
    "scx_pyland needs root with CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); in a container: "
    "--privileged, or the capabilities in README.md";

// libbpf's messages: kept (the tail) for error reports, printed only with verbose.
std::string libbpf_log;
bool libbpf_verbose = false;

int on_libbpf_print(enum libbpf_print_level, const char *fmt, va_list args) {
    // One message can be a whole verifier log: format it at its full length.
    char *line = nullptr;
    if (vasprintf(&line, fmt, args) < 0)
        return 0;
    libbpf_log += line;
    constexpr size_t kKeep = 256 * 1024;
    if (libbpf_log.size() > kKeep)
        libbpf_log.erase(0, libbpf_log.size() - kKeep);
    if (libbpf_verbose)
        fputs(line, stderr);
    free(line);
    return 0;
}

std::optional<std::string> read_text(const std::string &path) {
    std::ifstream in(path);
    if (!in)
        return std::nullopt;
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

std::string kernel_release() {
    struct utsname u {};
    uname(&u);
    return u.release;
}

// The verifier's log of the last failed load, its last `lines` lines.
std::string verifier_log_tail(size_t lines) {
    auto begin = libbpf_log.rfind("-- BEGIN PROG LOAD LOG --");
    std::string log = begin == std::string::npos ? libbpf_log : libbpf_log.substr(begin);
    size_t pos = log.size();
    for (size_t n = 0; n <= lines && pos > 0; n++) {
        pos = log.rfind('\n', pos - 1);
        if (pos == std::string::npos) {
            pos = 0;
            break;
        }
    }
    return log.substr(pos);
}

std::string errno_text(int err) { return std::string(strerror(err < 0 ? -err : err)); }

// An errno a retry may not see again: a shortage of memory, descriptors or time.
bool may_pass(int err) {
    switch (err < 0 ? -err : err) {
    case ENOMEM: case EAGAIN: case EINTR: case EBUSY: case ENOSPC: case EMFILE: case ENFILE:
        return true;
    default:
        return false;
    }
}

// A member of struct sched_ext_ops in the object's own BTF: libbpf translates the
// object's layout to the running kernel's by member name at load time.
void *ops_member(bpf_map *ops_map, const bpf_object *obj, const char *member, size_t size) {
    size_t data_size = 0;
    auto *data = static_cast<char *>(bpf_map__initial_value(ops_map, &data_size));
    const struct btf *btf = bpf_object__btf(obj);
    int id = btf__find_by_name_kind(btf, "sched_ext_ops", BTF_KIND_STRUCT);
    if (!data || id < 0)
        throw CannotStartHere("the BPF object has no struct sched_ext_ops");
    const struct btf_type *t = btf__type_by_id(btf, id);
    const struct btf_member *m = btf_members(t);
    for (int i = 0; i < btf_vlen(t); i++, m++) {
        if (strcmp(btf__name_by_offset(btf, m->name_off), member) != 0)
            continue;
        size_t offset = btf_member_bit_offset(t, i) / 8;
        if (static_cast<size_t>(btf__resolve_size(btf, m->type)) != size || offset + size > data_size)
            throw CannotStartHere(std::string("sched_ext_ops.") + member + " has an unexpected size");
        return data + offset;
    }
    throw CannotStartHere(std::string("sched_ext_ops has no member ") + member);
}

template <typename T>
void set_ops_member(bpf_map *ops_map, const bpf_object *obj, const char *member, T value) {
    std::memcpy(ops_member(ops_map, obj, member, sizeof(T)), &value, sizeof(T));
}

uint64_t ops_flag(const char *name) {
    auto value = kernel_enum_value("scx_ops_flags", name);
    return value.value_or(0);
}

// The CapEff mask of /proc/self/status, if it can be read.
std::optional<uint64_t> effective_capabilities() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("CapEff:", 0) == 0)
            return std::stoull(line.substr(7), nullptr, 16);
    return std::nullopt;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> missing_kfuncs() {
    std::vector<std::pair<std::string, std::string>> missing;
    struct btf *btf = btf__load_vmlinux_btf();
    if (!btf)
        return missing;  // no BTF to tell: the load will say what is wrong
    for (const auto &[kfunc, since] : kRequiredKfuncs)
        if (btf__find_by_name_kind(btf, kfunc, BTF_KIND_FUNC) < 0)
            missing.emplace_back(kfunc, since);
    btf__free(btf);
    return missing;
}

void check_environment() {
    if (access(kSchedExt, F_OK) != 0)
        throw SchedExtUnavailable("this kernel (" + kernel_release() +
                                  ") has no sched_ext: /sys/kernel/sched_ext is missing; it needs "
                                  "CONFIG_SCHED_CLASS_EXT=y (Linux " + kMinLinux + " or later)");
    if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
        throw SchedExtUnavailable("this kernel (" + kernel_release() +
                                  ") exposes no BTF (/sys/kernel/btf/vmlinux); it needs "
                                  "CONFIG_DEBUG_INFO_BTF=y");
    auto missing = missing_kfuncs();
    if (!missing.empty()) {
        std::string names;
        for (const auto &[kfunc, since] : missing)
            names += (names.empty() ? "" : ", ") + kfunc + " (Linux " + since + ")";
        throw SchedExtUnavailable("this kernel (" + kernel_release() + ") is too old for scx_pyland: it lacks " +
                                  names + "; scx_pyland needs Linux " + kMinLinux + " or later");
    }
    auto state = read_text(std::string(kSchedExt) + "/state").value_or("unknown");
    if (state == "disabling")  // the last scheduler is still leaving: it passes
        throw Error("the last sched_ext scheduler is still detaching (state disabling)");
    if (state != "disabled") {
        auto ops = read_text(std::string(kSchedExt) + "/root/ops").value_or("unknown");
        throw SchedulerBusy("another sched_ext scheduler is attached (" + ops + ", state " + state +
                            "); stop it first");
    }
    // Privileges, checked before anything else is set up, so a container without
    // them gets one clear line instead of warnings and then a load failure. The
    // kernel's rules: bpf_capable() is CAP_BPF or CAP_SYS_ADMIN, perfmon_capable()
    // (which the scheduler's kernel-pointer reads need) CAP_PERFMON or CAP_SYS_ADMIN.
    constexpr int kCapSysAdmin = 21, kCapPerfmon = 38, kCapBpf = 39;
    if (auto caps = effective_capabilities()) {
        auto has = [&](int cap) { return (*caps >> cap) & 1; };
        std::string lacking;
        if (!has(kCapBpf) && !has(kCapSysAdmin))
            lacking += " CAP_BPF";
        if (!has(kCapPerfmon) && !has(kCapSysAdmin))
            lacking += " CAP_PERFMON";
        if (!lacking.empty())
            throw NotPrivileged("scx_pyland lacks" + lacking + ": " + kPrivilegesNeeded);
    }
    // Can this process use bpf() at all (seccomp, an LSM)?
    int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "pyland_probe", 4, 4, 1, nullptr);
    if (fd >= 0) {
        ::close(fd);
    } else if (errno == EPERM || errno == EACCES) {
        throw NotPrivileged("the kernel refused bpf() (" + errno_text(errno) + "): " + kPrivilegesNeeded);
    }
}

void Scheduler::SkelDeleter::operator()(pyland_bpf *skel) const { pyland_bpf__destroy(skel); }
void Scheduler::RingDeleter::operator()(ring_buffer *rb) const { ring_buffer__free(rb); }
void Scheduler::UserRingDeleter::operator()(user_ring_buffer *rb) const { user_ring_buffer__free(rb); }
void Scheduler::LinkDeleter::operator()(bpf_link *link) const { bpf_link__destroy(link); }

Scheduler::Scheduler(const Options &options) {
    libbpf_verbose = options.verbose;
    libbpf_set_print(on_libbpf_print);
    check_environment();
    load(options);
    register_worker();
    init_domains(options);
    // Attach last: whatever fails before it throws with nothing attached, and once
    // attached, the rings are there for the worker to read.
    create_rings();
    attach();
}

Scheduler::~Scheduler() { close(); }

void Scheduler::load(const Options &options) {
    skel_.reset(pyland_bpf__open());
    if (!skel_)
        throw Error("cannot open the BPF object: " + errno_text(errno));
    bpf_map *ops = skel_->maps.pyland_ops;
    const bpf_object *obj = skel_->obj;

    skel_->rodata->slice_ns = options.slice_ns;
    skel_->rodata->smt_enabled = options.smt_enabled;
    skel_->rodata->direct_dispatch = options.direct_dispatch;
    skel_->rodata->max_user_wait_ns = options.max_user_wait_ns;

    // The kernel accepts only [A-Za-z0-9_.] in the name; the version tells which
    // scx_pyland is attached (root/ops).
    ops_name_ = options.name + "_" SCX_PYLAND_VERSION;
    auto *name = static_cast<char *>(ops_member(ops, obj, "name", 128));
    std::memset(name, 0, 128);
    std::memcpy(name, ops_name_.data(), std::min<size_t>(ops_name_.size(), 127));

    // ENQ_LAST: without it the kernel keeps running the last runnable task and the
    // worker's sched_yield() returns at once, so it would spin.
    uint64_t flags = ops_flag("SCX_OPS_ENQ_LAST") | ops_flag("SCX_OPS_ALLOW_QUEUED_WAKEUP");
    if (options.partial) {
        uint64_t partial = ops_flag("SCX_OPS_SWITCH_PARTIAL");
        if (!partial)
            throw SchedExtUnavailable("this kernel has no SCX_OPS_SWITCH_PARTIAL (--partial)");
        flags |= partial;
    }
    set_ops_member<uint64_t>(ops, obj, "flags", flags);
    set_ops_member<uint32_t>(ops, obj, "timeout_ms", options.timeout_ms);
    set_ops_member<uint32_t>(ops, obj, "exit_dump_len", options.exit_dump_len);
    // The kernel checks it at attach: a CPU hotplug since we read it makes the
    // attach fail with a restart request instead of racing.
    auto seq = read_text(std::string(kSchedExt) + "/hotplug_seq");
    if (seq)
        set_ops_member<uint64_t>(ops, obj, "hotplug_seq", std::stoull(*seq));

    libbpf_log.clear();
    int err = pyland_bpf__load(skel_.get());
    if (err == -EPERM || err == -EACCES) {
        if (libbpf_log.find("BEGIN PROG LOAD LOG") != std::string::npos)
            throw VerifierRejected("the kernel's verifier rejected the BPF scheduler:\n" + verifier_log_tail(25));
        throw NotPrivileged("the kernel refused to load BPF (" + errno_text(err) + "): " + kPrivilegesNeeded);
    }
    if (err) {
        if (libbpf_log.find("BEGIN PROG LOAD LOG") != std::string::npos)
            throw VerifierRejected("the kernel's verifier rejected the BPF scheduler:\n" + verifier_log_tail(25));
        std::string what = "cannot load the BPF scheduler (" + errno_text(err) + "):\n" + verifier_log_tail(10);
        if (may_pass(err))
            throw Error(what);
        throw CannotStartHere(what);  // e.g. a type or kfunc this kernel lacks (ESRCH, EINVAL)
    }
    skel_->bss->nr_online_cpus = static_cast<uint64_t>(sysconf(_SC_NPROCESSORS_ONLN));
    nr_cpu_ids_ = std::clamp(libbpf_num_possible_cpus(), 0, static_cast<int>(MAX_CPUS));
}

// Run a syscall program: the caller has written its arguments into .bss, and its
// results come back there. A failed run, or a non-zero return (-errno), throws
// Error("<what>: <the errno's text>").
void Scheduler::run_syscall_prog(struct bpf_program *prog, std::string_view what) {
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    int err = bpf_prog_test_run_opts(bpf_program__fd(prog), &opts) != 0 ? -errno : static_cast<int>(opts.retval);
    if (err)
        throw Error(std::string(what) + ": " + errno_text(err));
}

void Scheduler::register_worker() {
    run_syscall_prog(skel_->progs.register_worker, "cannot register the worker with the BPF side");
}

void Scheduler::init_domains(const Options &options) {
    for (const auto &[level, cpu, siblings] : options.domains) {
        for (int sibling : siblings) {
            skel_->bss->domain_level = level;
            skel_->bss->domain_cpu = cpu;
            skel_->bss->domain_sibling = sibling;
            run_syscall_prog(skel_->progs.enable_sibling_cpu, "cannot set up the cache domain " +
                             std::to_string(level) + " of CPU " + std::to_string(cpu));
        }
    }
}

void Scheduler::select_cpus(std::span<const std::pair<int32_t, int32_t>> tasks, std::vector<int32_t> &out) {
    require_open();
    auto *bss = skel_->bss;
    // Every online CPU runs a task (this worker's among them): none is idle, so
    // spare the program run, a system call, and answer -1 for all. Nothing is lost
    // if a CPU goes idle meanwhile: an RL_CPU_ANY dispatch looks for an idle CPU
    // again in the kernel. Under overload this is the common case.
    if (all_cpus_busy()) {
        out.insert(out.end(), tasks.size(), -1);
        return;
    }
    for (size_t done = 0; done < tasks.size();) {
        size_t n = std::min<size_t>(tasks.size() - done, SELECT_BATCH_MAX);
        for (size_t i = 0; i < n; i++) {
            bss->select_reqs[i].pid = tasks[done + i].first;
            bss->select_reqs[i].prev_cpu = tasks[done + i].second;
            bss->select_reqs[i].cpu = -1;
        }
        bss->nr_select_reqs = static_cast<uint32_t>(n);
        run_syscall_prog(skel_->progs.select_cpus, "select_cpus failed");
        // The program answers -ESRCH for a task that is gone: for the caller that
        // is "no idle CPU" too, so every negative answer becomes -1.
        for (size_t i = 0; i < n; i++)
            out.push_back(std::max(bss->select_reqs[i].cpu, -1));
        done += n;
    }
}

std::vector<int> Scheduler::read_domain(int level, int cpu) {
    require_open();
    skel_->bss->domain_level = level;
    skel_->bss->domain_cpu = cpu;
    run_syscall_prog(skel_->progs.read_domain, "read_domain failed");
    std::vector<int> cpus;
    for (int c = 0; c < MAX_CPUS; c++)
        if (skel_->bss->domain_bits[c / 64] & (1ULL << (c % 64)))
            cpus.push_back(c);
    return cpus;
}

void Scheduler::create_rings() {
    queued_.reset(ring_buffer__new(bpf_map__fd(skel_->maps.queued), [](void *ctx, void *data, size_t size) {
        auto *self = static_cast<Scheduler *>(ctx);
        QueuedTask &task = self->consume_out_->emplace_back();
        if (!decode_queued({static_cast<const std::byte *>(data), size}, task)) {
            self->consume_out_->pop_back();
            return -EINVAL;
        }
        return 0;
    }, this, nullptr));
    if (!queued_)
        throw Error("cannot map the ring buffer of queued tasks: " + errno_text(errno));
    dispatched_.reset(user_ring_buffer__new(bpf_map__fd(skel_->maps.dispatched), nullptr));
    if (!dispatched_)
        throw Error("cannot map the user ring buffer of dispatched tasks: " + errno_text(errno));
}

void Scheduler::attach() {
    link_.reset(bpf_map__attach_struct_ops(skel_->maps.pyland_ops));
    if (link_)
        return;
    int err = errno;
    if (skel_->bss->exit_info.kind != 0)
        throw Error(std::string("the kernel refused the scheduler at start: ") + skel_->bss->exit_info.reason +
                    ": " + skel_->bss->exit_info.msg);
    if (err == EBUSY || err == EEXIST) {
        // Busy because another scheduler got there first, or because the last one
        // is still on its way out (the kernel's enable state is not yet DISABLED).
        auto state = read_text(std::string(kSchedExt) + "/state").value_or("unknown");
        auto ops = read_text(std::string(kSchedExt) + "/root/ops").value_or("unknown");
        if (state == "enabled" || state == "enabling")
            throw SchedulerBusy("another sched_ext scheduler is attached (" + ops + "); stop it first");
        throw Error("the kernel refused to attach the scheduler (" + errno_text(err) + ", state " + state + ")");
    }
    if (err == EPERM || err == EACCES)
        throw NotPrivileged("the kernel refused to attach the scheduler (" + errno_text(err) + "): " +
                            kPrivilegesNeeded);
    throw Error("cannot attach the scheduler: " + errno_text(err));
}

void Scheduler::require_open() const {
    if (!skel_)
        throw Error("the scheduler is closed");
}

size_t Scheduler::dequeue(std::vector<QueuedTask> &out, size_t max) {
    require_open();
    if (max == 0)
        return 0;
    size_t before = out.size();
    consume_out_ = &out;
    int n = ring_buffer__consume_n(queued_.get(), max);
    consume_out_ = nullptr;
    if (n < 0 && n != -EINTR)
        throw Error("reading the ring buffer of queued tasks failed: " + errno_text(n));
    size_t got = out.size() - before;
    if (got)
        __atomic_fetch_sub(&skel_->bss->nr_queued, got, __ATOMIC_RELAXED);
    return got;
}

size_t Scheduler::dispatch(std::span<const DispatchedTask> tasks) {
    require_open();
    size_t sent = 0;
    for (const DispatchedTask &task : tasks) {
        void *slot = user_ring_buffer__reserve(dispatched_.get(), sizeof(task));
        if (!slot) {
            if (errno == ENOSPC)
                break;  // full: the policy keeps the rest for the next cycle
            throw Error("reserving in the user ring buffer failed: " + errno_text(errno));
        }
        std::memcpy(slot, &task, sizeof(task));
        user_ring_buffer__submit(dispatched_.get(), slot);
        sent++;
    }
    // After the submits: the BPF side runs the worker again while a decision it
    // was sent is still on the ring (worker_has_work()), so none waits there.
    if (sent)
        __atomic_fetch_add(&skel_->bss->nr_sent, sent, __ATOMIC_RELEASE);
    return sent;
}

bool Scheduler::notify_complete(uint64_t nr_pending) {
    if (skel_)
        __atomic_store_n(&skel_->bss->nr_scheduled, nr_pending, __ATOMIC_RELAXED);
    sched_yield();
    return exited();
}

bool Scheduler::all_cpus_busy() const {
    return skel_ && __atomic_load_n(&skel_->bss->nr_running, __ATOMIC_RELAXED) >=
                        __atomic_load_n(&skel_->bss->nr_online_cpus, __ATOMIC_RELAXED);
}

void Scheduler::idle_cpus(uint64_t min_idle_ns, uint64_t min_uncontended_ns, std::vector<int32_t> &out) const {
    out.clear();
    if (!skel_)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t now = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
    for (int cpu = 0; cpu < nr_cpu_ids_; cpu++) {
        uint64_t since = __atomic_load_n(&skel_->bss->cpu_idle_since[cpu], __ATOMIC_RELAXED);
        uint64_t contended = __atomic_load_n(&skel_->bss->cpu_contended_at[cpu], __ATOMIC_RELAXED);
        uint64_t uncontended = contended <= now ? now - contended : 0;
        if (since && since <= now && now - since >= min_idle_ns && uncontended >= min_uncontended_ns)
            out.push_back(cpu);
    }
}

bool Scheduler::exited() const {
    return !skel_ || __atomic_load_n(&skel_->bss->exit_info.kind, __ATOMIC_ACQUIRE) != 0;
}

uint64_t Scheduler::run_fifo_ceiling(uint64_t duration_ns, uint64_t slice_ns, uint64_t slice_min_ns) {
    require_open();
    constexpr size_t kBatch = 512;  // as the Python worker's BATCH
    auto now_ns = [] {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
    };
    ceiling_queued_.reserve(kBatch);
    ceiling_backlog_.reserve(4 * kBatch);
    uint64_t sent_total = 0;
    const uint64_t end = now_ns() + duration_ns;
    while (!exited() && now_ns() < end) {
        ceiling_queued_.clear();
        dequeue(ceiling_queued_, kBatch);
        if (!ceiling_queued_.empty()) {
            uint64_t slice = std::max(slice_ns / ceiling_queued_.size(), slice_min_ns);
            for (const QueuedTask &t : ceiling_queued_)
                ceiling_backlog_.push_back(DispatchedTask{t.pid, RL_CPU_ANY, 0, slice, 0, t.enq_cnt});
        }
        if (!ceiling_backlog_.empty()) {
            size_t sent = dispatch(ceiling_backlog_);
            ceiling_backlog_.erase(ceiling_backlog_.begin(), ceiling_backlog_.begin() + sent);
            sent_total += sent;
        }
        notify_complete(ceiling_backlog_.size());
    }
    return sent_total;
}

void Scheduler::debug_request_error() {
    require_open();
    __atomic_store_n(&skel_->bss->debug_error_requested, true, __ATOMIC_RELEASE);
}

void Scheduler::debug_disable_custody() {
    require_open();
    __atomic_store_n(&skel_->bss->debug_no_custody, true, __ATOMIC_RELEASE);
}

ExitInfo Scheduler::shutdown_and_report() {
    require_open();
    // Destroying the link unregisters the scheduler; the kernel runs ops.exit
    // before the call returns, so the exit info is complete afterwards.
    link_.reset();
    ExitInfo info;
    const auto &ei = skel_->bss->exit_info;
    info.kind = __atomic_load_n(&ei.kind, __ATOMIC_ACQUIRE);
    info.exit_code = ei.exit_code;
    info.reason.assign(ei.reason, strnlen(ei.reason, sizeof(ei.reason)));
    info.msg.assign(ei.msg, strnlen(ei.msg, sizeof(ei.msg)));
    info.dump.assign(skel_->bss->exit_dump, strnlen(skel_->bss->exit_dump, sizeof(skel_->bss->exit_dump)));
    return info;
}

Counters Scheduler::counters() const {
    require_open();
    const auto *bss = skel_->bss;
    auto load = [](const uint64_t &v) { return __atomic_load_n(&v, __ATOMIC_RELAXED); };
    return Counters{
        load(bss->nr_queued), load(bss->nr_scheduled), load(bss->nr_running), load(bss->nr_online_cpus),
        load(bss->nr_user_dispatches), load(bss->nr_kernel_dispatches), load(bss->nr_cancel_dispatches),
        load(bss->nr_bounce_dispatches), load(bss->nr_failed_dispatches), load(bss->nr_sched_congested),
        load(bss->nr_direct_dispatches), load(bss->nr_rt_dispatches), load(bss->nr_stalled_dispatches),
        load(bss->nr_sent), load(bss->nr_received), load(bss->nr_drain_errors), load(bss->nr_worker_preempts),
        load(bss->nr_custody_dispatches),
    };
}

std::string Scheduler::ops_name() const { return ops_name_; }

void Scheduler::close() {
    link_.reset();  // detach first, while everything the BPF side uses still exists
    dispatched_.reset();
    queued_.reset();
    skel_.reset();
}

std::vector<std::string> guard_memory() {
    std::vector<std::string> warnings;
    // Only matters without CAP_IPC_LOCK (a least-privilege container).
    struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_MEMLOCK, &unlimited) != 0)
        warnings.push_back("cannot raise RLIMIT_MEMLOCK: " + errno_text(errno));
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        warnings.push_back("mlockall failed, page faults may stall the system: " + errno_text(errno));
    // khugepaged collapsing our pages takes our mmap lock while we may be the
    // only one who could schedule it.
    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
        warnings.push_back("cannot disable transparent huge pages: " + errno_text(errno));
    // Never give memory back or mmap new chunks: both take the mmap lock.
    mallopt(M_TRIM_THRESHOLD, -1);
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_ARENA_MAX, 1);
    return warnings;
}

std::optional<uint64_t> kernel_enum_value(const std::string &enum_name, const std::string &value_name) {
    struct btf *btf = btf__load_vmlinux_btf();
    if (!btf)
        return std::nullopt;
    std::optional<uint64_t> result;
    for (int kind : {int(BTF_KIND_ENUM), int(BTF_KIND_ENUM64)}) {
        int id = btf__find_by_name_kind(btf, enum_name.c_str(), kind);
        if (id < 0)
            continue;
        const struct btf_type *t = btf__type_by_id(btf, id);
        for (int i = 0; i < btf_vlen(t) && !result; i++) {
            if (btf_is_enum(t)) {
                const struct btf_enum *e = btf_enum(t) + i;
                if (value_name == btf__name_by_offset(btf, e->name_off))
                    result = static_cast<uint32_t>(e->val);
            } else {
                const struct btf_enum64 *e = btf_enum64(t) + i;
                if (value_name == btf__name_by_offset(btf, e->name_off))
                    result = btf_enum64_value(e);
            }
        }
    }
    btf__free(btf);
    return result;
}

std::string bpf_object_bytes() {
    size_t size = 0;
    const void *data = pyland_bpf__elf_bytes(&size);
    return std::string(static_cast<const char *>(data), size);
}

}  // namespace pyland
