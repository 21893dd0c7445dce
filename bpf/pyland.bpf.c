/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * scx_pyland: the kernel half of a CPU scheduler whose policy runs in Python.
 *
 * Every task that needs a CPU is sent to a user-space worker over the ring buffer
 * `queued`; the worker's policy decides order, slice and CPU and sends decisions
 * back over the user ring buffer `dispatched`, which ops.dispatch drains into
 * per-CPU DSQs (or a shared one) ordered by the vtime the worker chose.
 *
 * A few tasks never go to user space, because the worker may be waiting on them:
 * the worker itself (its own FIFO DSQ, run whenever it has work), every kernel
 * thread (dispatched on the spot: khugepaged or a kworker can hold a lock the
 * worker needs), and migration-disabled tasks (SCX_OPS_ENQ_MIGRATION_DISABLED is
 * left off, so the kernel dispatches them locally without asking us). If the ring
 * is full, a task goes straight to the shared DSQ and the congestion is counted.
 *
 * Idle CPUs: on wake-up, select_cpu looks for an idle CPU near the task's last one
 * (a whole idle core first on SMT machines, then its L2 and L3 cache domains) and,
 * when nobody waits in user space, dispatches the task there directly. The policy
 * can ask the same question for many tasks at once (the select_cpus program).
 *
 * Limits: on a kernel whose scx_bpf_kick_cpu cannot be linked (Debian's
 * 7.1.13 and 7.2.12, see compat.bpf.h) targeted dispatches go to the CPU's local DSQ in FIFO
 * order instead of its vtime-ordered DSQ. The kernel watchdog ejects the scheduler
 * if the worker stalls, and every task then falls back to the default scheduler.
 */
#define BPF_NO_KFUNC_PROTOTYPES
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "compat.bpf.h"
#include "intf.h"

char _license[] SEC("license") = "GPL";

_Static_assert((u64)ENQ_WAKEUP == (u64)SCX_ENQ_WAKEUP, "intf.h's ENQ_WAKEUP is the kernel's SCX_ENQ_WAKEUP");

#define PF_KTHREAD	0x00200000
#define READ_ONCE(x)	(*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))
#define HEARTBEAT_NS	(1000ULL * 1000 * 1000)
/*
 * How long the worker may go without running while tasks wait for it (stopped by
 * a signal or a debugger, blocked, starved of CPU) before new tasks are
 * dispatched here instead of queued to it: whatever would end the pause (a shell's
 * kill -CONT, a debugger) is a task too, and must not wait for the worker.
 */
#define WORKER_STALL_NS	(250ULL * 1000 * 1000)
/* How often the custody watch looks while tasks wait for the worker. */
#define CUSTODY_WATCH_NS	(WORKER_STALL_NS / 2)
/* Custody entries one look examines at most (a bounded loop on a hot path). */
#define CUSTODY_SCAN	16

/*
 * A wake-up preempts a CPU for the worker only if the task running there has
 * used this much CPU since it last slept: a CPU hog (wake_worker()).
 */
#define PREEMPT_BURST_NS	(2ULL * 1000 * 1000)

/* Settings user space fills before load. */
const volatile u64 slice_ns = 20ULL * 1000 * 1000;	/* default time slice */
const volatile bool smt_enabled;			/* some core has several CPUs */
const volatile bool direct_dispatch = true;		/* select_cpu may dispatch to an idle CPU */
/*
 * How long a record may wait unread in `queued` before the BPF side serves its
 * task itself (the worker is overloaded); 0: never (--max-user-wait-ms).
 */
const volatile u64 max_user_wait_ns = 50ULL * 1000 * 1000;

/* The worker's global tgid, set by the register_worker syscall program. */
u32 worker_tgid;

/* Counters, read (and nr_queued / nr_scheduled / nr_sent written) by user space. */
u64 nr_queued;			/* records in `queued` not yet read by the worker */
u64 nr_scheduled;		/* tasks the worker holds, not yet dispatched */
u64 nr_sent;			/* decisions user space put on `dispatched` (user space adds) */
u64 nr_received;		/* decisions taken off `dispatched`, whatever became of them */
u64 nr_running;			/* tasks running on a CPU right now */
u64 nr_online_cpus;		/* set by user space */
u64 nr_user_dispatches;		/* dispatches the worker decided */
u64 nr_kernel_dispatches;	/* kernel threads, dispatched here */
u64 nr_direct_dispatches;	/* wake-ups sent straight to an idle CPU (select_cpu) */
u64 nr_rt_dispatches;		/* tasks kept in the kernel: a real-time task holds their CPU */
u64 nr_stalled_dispatches;	/* tasks dispatched here while the worker did not run */
u64 nr_drain_errors;		/* bpf_user_ringbuf_drain() failures other than -EBUSY */
u64 nr_cancel_dispatches;	/* worker decisions dropped: task re-enqueued since */
u64 nr_bounce_dispatches;	/* worker decisions for a CPU the task may not use */
u64 nr_failed_dispatches;	/* worker decisions for a task that is gone */
u64 nr_sched_congested;		/* tasks that found `queued` full */
u64 nr_worker_preempts;		/* CPUs preempted so that the worker places a woken task */
u64 nr_custody_dispatches;	/* tasks queued to the worker, dispatched here: it did not run or fell behind */

/*
 * Set (to 1) when the worker must run even with no task waiting: it woke from a
 * sleep (a signal to act on), or the heartbeat wants it. Set by any CPU and the
 * timer, cleared by the ops.dispatch that runs the worker; both atomically. A set
 * that races with that clear is lost, harmlessly: the worker is about to run.
 */
u32 worker_needed;
/*
 * Tasks this CPU's current ops.dispatch call has inserted into its own local DSQ
 * (insert_busy()): they sit in the kernel's dispatch buffer until the call returns,
 * where scx_bpf_dsq_nr_queued() does not see them. Only that CPU's ops.dispatch
 * writes and reads its entry (under its rq lock).
 */
u32 nr_local_next[MAX_CPUS];
/* A CPU was preempted for the worker, which has not run since (wake_worker()). */
u32 worker_kicked;
/*
 * When the burst of the task on each CPU began (ns): when it started running
 * less the CPU time it had used since it last slept. Written by that CPU's
 * ops.running, read racily by wake_worker() on any CPU: a stale value moves
 * one preemption to the next wake-up.
 */
u64 cpu_burst_start[MAX_CPUS];
/*
 * What a policy needs to tell an idle CPU from one whose task is on its way to it
 * (Scheduler.idle_cpus; rustland's rule 5 runs a task it holds back on a CPU that
 * has nothing to do). Both in bpf_ktime_get_ns() (CLOCK_MONOTONIC), per CPU:
 * - cpu_idle_since: since when the CPU has run no sched_ext task but the worker
 *   (stamped by ops.stopping, 0 from ops.running); the worker does not count, as
 *   it runs on an idle CPU to look at the tasks it holds;
 * - cpu_contended_at: when a task that ran there was last queued again without
 *   sleeping (its slice ended or it was preempted): it is still runnable, and the
 *   CPU looks idle only until its decision comes back.
 * Read racily by user space: a value a moment stale moves one decision by a cycle.
 */
u64 cpu_idle_since[MAX_CPUS];
u64 cpu_contended_at[MAX_CPUS];
/*
 * Whether the worker is on a CPU, and the CPU it last ran on. Written only from
 * the worker's own ops.running/ops.stopping, which the kernel serializes for one
 * task; read racily by every CPU and the timer (worker_running may be a moment
 * stale either way: see wake_worker() and the enqueue of the worker).
 */
bool worker_running;
s32 worker_cpu;
/* When the worker last started or stopped running (ns); same writers as above. */
u64 worker_last_run;


/*
 * Debug only (--debug-bpf-error-after): user space sets this to have the next
 * ops.dispatch call scx_bpf_error(), to test recovery from an ERROR_BPF exit.
 */
bool debug_error_requested;

/*
 * Debug only (--debug-stall-after): user space sets this once its worker drops
 * the tasks it reads, so that custody_look() serves none of them and the
 * kernel's watchdog fires (a runnable task stall), to test recovery from an
 * ERROR_STALL exit. Custody would otherwise run them.
 */
bool debug_no_custody;

struct exit_info exit_info;
char exit_dump[EXIT_DUMP_MAX];

/*
 * Never used: ring buffer records have no map type of their own, so these keep
 * the record types in the object's BTF, where the tests check that user space
 * agrees with their layout.
 */
struct queued_task queued_task_layout;
struct dispatched_task dispatched_task_layout;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096 * 1024);
} queued SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 4096 * 1024);
} dispatched SEC(".maps");

/* Per-task accounting that travels in queued_task records. */
struct task_ctx {
	u64 start_ts;
	u64 stop_ts;
	u64 exec_runtime;
	u64 enq_cnt;
	u64 shared_ts;		/* when it was last inserted into SHARED_DSQ or KERNEL_DSQ */
	/*
	 * The vtime the worker gave it last (0: never), reported in its next record.
	 * Not p->scx.dsq_vtime: KERNEL_DSQ's deadlines (insert_kernel()) are in
	 * another unit, and a policy given one took the task for far ahead.
	 */
	u64 vtime;
	/*
	 * The newest enqueue generation dispatched, by the worker's decision or by
	 * the BPF side from custody; claimed with a compare-and-swap, so exactly one
	 * of the two dispatches each generation (claim_generation()).
	 */
	u64 dispatched_cnt;
	u64 decided_ts;		/* when the worker's last decision was carried out; 0: reported */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctx_stor SEC(".maps");

/*
 * Custody: every task queued to the worker, in the order queued, until the BPF side
 * sees it decided. The worker may stop, die or fall behind; the BPF side then
 * serves the tasks it holds itself (serve_custody()). Entries are never removed
 * when a decision arrives: one that reaches the head is dropped if its task is
 * gone or its generation dispatched (lazy deletion), so each task costs one push
 * and one pop. docs/design.md, "Custody".
 */
struct custody_entry {
	s32 pid;
	u32 _pad;
	u64 enq_cnt;		/* the generation queued */
	u64 queued_at;		/* when (ns) */
	u64 ring_end;		/* `queued`'s producer position after its record: read once the
				   consumer position reaches it */
};

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, CUSTODY_MAX);
	__type(value, struct custody_entry);
} custody SEC(".maps");

/* One CPU at a time examines custody's head (custody_look()); the others skip. */
u32 custody_busy;
/* The custody watch timer is armed (custody_watch_fn()). */
u32 custody_watch_armed;
/*
 * A record has waited unread in `queued` longer than max_user_wait_ns: the worker
 * is behind, and new tasks are dispatched here until it catches up. Written by
 * custody_look() (one CPU at a time), read racily: a moment stale either way.
 */
bool worker_behind;


/*
 * Cache domains: for each level and CPU, the CPUs sharing that level with it, key
 * level * MAX_CPUS + cpu. User space fills them from sysfs before attaching
 * (enable_sibling_cpu); a CPU whose masks are missing is simply not preferred.
 */
struct domain_mask {
	struct bpf_cpumask __kptr *mask;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_DOMAIN_LEVELS * MAX_CPUS);
	__type(key, u32);
	__type(value, struct domain_mask);
} cpu_domains SEC(".maps");

/* A scratch cpumask per CPU for select_cpu (created on first use). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct domain_mask);
} scratch_mask SEC(".maps");

/* Arguments and results of the syscall programs, written and read through .bss. */
struct select_cpu_req select_reqs[SELECT_BATCH_MAX];
u32 nr_select_reqs;
s32 domain_level, domain_cpu, domain_sibling;
u64 domain_bits[MAX_CPUS / 64];

struct heartbeat {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct heartbeat);
} heartbeat_timer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct heartbeat);
} custody_timer SEC(".maps");

static void stat_inc(u64 *counter)
{
	__sync_fetch_and_add(counter, 1);
}

static struct task_ctx *lookup_task_ctx(const struct task_struct *p)
{
	return bpf_task_storage_get(&task_ctx_stor, (struct task_struct *)p, 0, 0);
}

static bool is_worker(const struct task_struct *p)
{
	return worker_tgid && p->tgid == worker_tgid;
}

static bool is_kthread(const struct task_struct *p)
{
	return p->flags & PF_KTHREAD;
}

/*
 * Whether the worker has something to do: it is needed, it holds tasks, tasks
 * wait in `queued`, or decisions it sent wait in `dispatched` (a drain that found
 * another CPU draining, -EBUSY, or ran out of dispatch slots leaves them there;
 * running the worker again makes its CPU drain again).
 */
static bool worker_has_work(void)
{
	return READ_ONCE(worker_needed) || READ_ONCE(nr_scheduled) ||
	       READ_ONCE(nr_sent) != READ_ONCE(nr_received) ||
	       bpf_ringbuf_query(&queued, BPF_RB_AVAIL_DATA) > 0;
}

/*
 * The worker has work but has not run for WORKER_STALL_NS: stopped, blocked or
 * starved. New tasks do not wait for it (see WORKER_STALL_NS).
 */
static bool worker_unresponsive(void)
{
	return !READ_ONCE(worker_running) && worker_has_work() &&
	       scx_bpf_now() - READ_ONCE(worker_last_run) > WORKER_STALL_NS;
}

static void set_worker_needed(void)
{
	__sync_fetch_and_or(&worker_needed, 1);
}

static void clear_worker_needed(void)
{
	__sync_fetch_and_and(&worker_needed, 0);
}

static bool is_queued(const struct task_struct *p)
{
	return p->scx.flags & SCX_TASK_QUEUED;
}

/*
 * Whether a real-time (or deadline) task holds @cpu. sched_ext tasks then run
 * there only through the kernel's ext_server (7.0+: about 50 ms a second), whose
 * pick must never come back empty while this CPU still has sched_ext tasks:
 * the kernel stops the server on an empty pick and starts it again only when
 * the CPU's sched_ext task count goes from 0 to 1 (docs/design.md, real-time).
 */
static bool cpu_rt_busy(s32 cpu)
{
	const struct rq *rq = bpf_per_cpu_ptr(&runqueues, cpu);

	return rq && rq->rt.rt_nr_running;
}

/*
 * Whether a higher class than ours holds @cpu: a real-time task (cpu_rt_busy()),
 * or any, a deadline task too, when this enqueue is ops.cpu_release's
 * re-enqueue of the CPU's local DSQ (SCX_ENQ_REENQ): the kernel calls it as the
 * higher class takes the CPU.
 */
static bool higher_class_holds(s32 cpu, u64 enq_flags)
{
	return (enq_flags & SCX_ENQ_REENQ) || cpu_rt_busy(cpu);
}

/*
 * @p may run only on @cpu, which a higher class holds: into @cpu's own DSQ, which
 * its ops.dispatch drains when sched_ext gets the CPU back (or its ext_server
 * picks), not into its local DSQ. The kernel re-enqueues a local DSQ each time a
 * higher class takes the CPU (ops.cpu_release), and counts each time: a task
 * sent straight back there every time was re-enqueued 257 times without running
 * beside deadline hogs and the kernel ejected the scheduler (its reenqueue limit).
 * Kernel threads go first (vtime 0); others at the vtime the worker gave them.
 */
static void keep_on_cpu(struct task_struct *p, s32 cpu, u64 enq_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (cpu >= 0 && cpu < MAX_CPUS)
		dsq_insert_vtime(p, cpu, slice_ns, is_kthread(p) || !tctx ? 0 : tctx->vtime, enq_flags);
	else
		dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, enq_flags);
}

static const struct cpumask *cast_mask(struct bpf_cpumask *mask)
{
	return (const struct cpumask *)mask;
}

static struct domain_mask *lookup_domain(s32 level, s32 cpu)
{
	u32 key = level * MAX_CPUS + cpu;

	if (cpu < 0 || cpu >= MAX_CPUS || level < 0 || level >= NR_DOMAIN_LEVELS)
		return NULL;
	return bpf_map_lookup_elem(&cpu_domains, &key);
}

/*
 * An idle CPU among @mask's that @p may use (its whole core idle with
 * SCX_PICK_IDLE_CORE), claimed; -1 if none. @tmp is scratch space.
 */
static s32 pick_idle_in(const struct task_struct *p, struct bpf_cpumask *mask,
			struct bpf_cpumask *tmp, u64 flags)
{
	s32 cpu;

	if (!mask)
		return -1;
	bpf_cpumask_and(tmp, cast_mask(mask), p->cpus_ptr);
	cpu = scx_bpf_pick_idle_cpu(cast_mask(tmp), flags);
	return cpu >= 0 ? cpu : -1;	/* the kfunc says -EBUSY */
}

/* @level's domain of @cpu, or NULL (e.g. a CPU that came online after start-up). */
static struct bpf_cpumask *domain_of(s32 level, s32 cpu)
{
	struct domain_mask *d = lookup_domain(level, cpu);

	return d ? d->mask : NULL;
}

/*
 * Pick an idle CPU for @p, nearest to @prev_cpu first: with SMT, a whole idle core
 * (in prev's core, then its L2, then its L3, then anywhere); then any idle CPU
 * (prev itself, then its L2, its L3, anywhere). The CPU returned is claimed (no
 * longer idle for the next pick); -1 if no CPU @p may use is idle.
 *
 * Only CPUs online at start-up are candidates: a CPU coming online shows up idle
 * before sched_ext serves it, and a task queued there would wait until the
 * kernel's hotplug restart request (tasks waited into a watchdog stall that way).
 */
static s32 pick_idle_cpu(const struct task_struct *p, s32 prev_cpu, struct bpf_cpumask *tmp)
{
	struct bpf_cpumask *online = domain_of(DOMAIN_ONLINE, 0);
	s32 cpu;

	if (smt_enabled) {
		if ((cpu = pick_idle_in(p, domain_of(DOMAIN_SMT, prev_cpu), tmp, SCX_PICK_IDLE_CORE)) >= 0 ||
		    (cpu = pick_idle_in(p, domain_of(DOMAIN_L2, prev_cpu), tmp, SCX_PICK_IDLE_CORE)) >= 0 ||
		    (cpu = pick_idle_in(p, domain_of(DOMAIN_L3, prev_cpu), tmp, SCX_PICK_IDLE_CORE)) >= 0 ||
		    (cpu = pick_idle_in(p, online, tmp, SCX_PICK_IDLE_CORE)) >= 0)
			return cpu;
	}
	if (online && prev_cpu >= 0 && bpf_cpumask_test_cpu(prev_cpu, p->cpus_ptr) &&
	    bpf_cpumask_test_cpu(prev_cpu, cast_mask(online)) &&
	    scx_bpf_test_and_clear_cpu_idle(prev_cpu))
		return prev_cpu;
	if ((cpu = pick_idle_in(p, domain_of(DOMAIN_L2, prev_cpu), tmp, 0)) >= 0 ||
	    (cpu = pick_idle_in(p, domain_of(DOMAIN_L3, prev_cpu), tmp, 0)) >= 0)
		return cpu;
	return pick_idle_in(p, online, tmp, 0);
}

/* This CPU's scratch mask, created the first time; NULL if out of memory. */
static struct bpf_cpumask *this_cpu_scratch(void)
{
	u32 key = 0;
	struct domain_mask *s = bpf_map_lookup_elem(&scratch_mask, &key);
	struct bpf_cpumask *mask, *old;

	if (!s)
		return NULL;
	mask = s->mask;
	if (mask)
		return mask;
	mask = bpf_cpumask_create();
	if (!mask)
		return NULL;
	old = bpf_kptr_xchg(&s->mask, mask);
	if (old)
		bpf_cpumask_release(old);
	return s->mask;
}

/* Any idle CPU @p may use among those online at start-up, claimed; -1 if none. */
static s32 pick_idle_online(const struct task_struct *p)
{
	struct bpf_cpumask *tmp = this_cpu_scratch();

	return tmp ? pick_idle_in(p, domain_of(DOMAIN_ONLINE, 0), tmp, 0) : -1;
}

/* CPU time the task on @cpu has used since it last slept (ns); 0 if out of range. */
static u64 cpu_burst_ns(s32 cpu)
{
	if (cpu < 0 || cpu >= MAX_CPUS)
		return 0;
	return scx_bpf_now() - READ_ONCE(cpu_burst_start[cpu]);
}

/*
 * Make sure the worker gets a CPU soon, as a task was just queued for it (or it
 * woke up): unless it is running already, kick an idle CPU that the *worker* may
 * use (it may be pinned: taskset, a container's cpuset); that CPU's ops.dispatch
 * then runs it. On a kernel that cannot kick, the wake-up that queued the task
 * reschedules a CPU anyway, and the heartbeat bounds the rest.
 *
 * With no idle CPU, the worker would wait until a slice ends on one of its CPUs
 * (up to slice_ns), and a woken task with it: for a wake-up (@preempt_cpu >= 0)
 * preempt that CPU instead, the one the task woke on, as the kernel's own
 * scheduler preempts for a waking task whose deadline is earlier. The task that
 * ran there is queued to the worker again and placed in the same cycle. Once per
 * worker run (worker_kicked): later wake-ups find it on its way. Only a CPU hog
 * is preempted, a task that has used PREEMPT_BURST_NS since it last slept: a task
 * in a short burst gives the CPU up soon by itself, and may be the very kind
 * the preemption serves (a woken task that runs next on the CPU the worker left,
 * itself preempted by the next wake-up); sparing those took cyclictest beside
 * CPU hogs from 3.0 to 2.2 ms (docs/design.md).
 *
 * Races: worker_running may still read true while the worker stops; the worker's
 * CPU then sees the new record, in ops.dispatch or when it enqueues the worker
 * (pyland_enqueue kicks it), so the record is not missed. A preempted CPU may run
 * something else first (a kernel thread, a task placed there): worker_kicked then
 * stays set until the worker runs, which it does when some slice ends, as without
 * the preemption. cpu_burst_start may be a moment stale (the CPU switching
 * tasks): one preemption is then made or skipped wrongly, once.
 */
static void wake_worker(s32 preempt_cpu)
{
	struct task_struct *worker;
	s32 cpu;
	bool may_preempt;

	if (READ_ONCE(worker_running) || !can_kick_cpus() || !worker_tgid)
		return;
	worker = bpf_task_from_pid(worker_tgid);
	if (!worker)
		return;
	cpu = pick_idle_online(worker);
	may_preempt = preempt_cpu >= 0 && preempt_cpu < MAX_CPUS &&
		      bpf_cpumask_test_cpu(preempt_cpu, worker->cpus_ptr);
	bpf_task_release(worker);
	if (cpu >= 0) {
		kick_cpu(cpu, SCX_KICK_IDLE);
	} else if (may_preempt && !cpu_rt_busy(preempt_cpu) &&
		   cpu_burst_ns(preempt_cpu) >= PREEMPT_BURST_NS &&
		   !__sync_lock_test_and_set(&worker_kicked, 1)) {
		kick_cpu(preempt_cpu, SCX_KICK_PREEMPT);
		stat_inc(&nr_worker_preempts);
	}
}

/*
 * @cpu was claimed for a decision (select_cpus cleared its idle bit) that no
 * longer uses it: an idle kick sends it through idle again, which sets the bit
 * again, so later picks see it; a busy CPU ignores the kick.
 */
static void release_claimed_cpu(s32 cpu)
{
	if (cpu >= 0 && cpu < MAX_CPUS)
		kick_cpu(cpu, SCX_KICK_IDLE);
}

/*
 * Queue @p on @cpu and make sure @cpu notices: into its vtime-ordered DSQ with a
 * kick (an idle CPU does not look at its DSQs by itself). Where kicks are not
 * available, into its local DSQ instead (FIFO): the kernel wakes an idle target of
 * a local insert itself.
 */
static void insert_on_cpu(struct task_struct *p, s32 cpu, u64 slice, u64 vtime, u64 enq_flags)
{
	if (can_kick_cpus()) {
		dsq_insert_vtime(p, cpu, slice, vtime, enq_flags);
		kick_cpu(cpu, enq_flags & SCX_ENQ_PREEMPT ? SCX_KICK_PREEMPT : SCX_KICK_IDLE);
	} else {
		dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice, enq_flags);
	}
}

/*
 * Whether @p may run next on this CPU, which is in ops.dispatch applying the
 * worker's decisions (usually the CPU the worker is leaving):
 * - nothing waits in its local DSQ yet, counting what this ops.dispatch call put
 *   there (nr_local_next): one task at a time takes this way, so that a burst of
 *   wake-ups is not piled on one CPU;
 * - the first task of the shared DSQ has waited there less than a maximum slice:
 *   then the shared DSQ takes the new task too, in vtime order. This bounds how
 *   long tasks there are overtaken. Without it, each new wake-up went ahead of
 *   the shared DSQ, whose tasks waited until the watchdog ejected us (a stress-ng
 *   sleeper, 6.5 s, beside 1,600 others). Not vtime: rustland sends vruntimes, and
 *   a CPU hog's vruntime is no later than a woken task's; its deadline is.
 * Not where DSQs cannot be iterated (Debian's 7.1.13): the shared DSQ then.
 *
 * Race: the first task may be taken by another CPU while we look at it; we then
 * judge by a task that has just left, once.
 */
static bool may_run_here_next(const struct task_struct *p)
{
	struct task_struct *first;
	struct task_ctx *fctx;
	u32 cpu = bpf_get_smp_processor_id();
	bool young = true;

	if (!can_iterate_dsqs() || cpu >= MAX_CPUS || !bpf_cpumask_test_cpu(cpu, p->cpus_ptr) ||
	    nr_local_next[cpu] || scx_bpf_dsq_nr_queued(SCX_DSQ_LOCAL))
		return false;
	bpf_for_each(scx_dsq, first, SHARED_DSQ, 0) {
		fctx = lookup_task_ctx(first);
		young = !fctx || scx_bpf_now() - fctx->shared_ts < slice_ns;
		break;
	}
	return young;
}

/* Into the shared DSQ, in vtime order, noting when (may_run_here_next()). */
static void insert_shared(struct task_struct *p, u64 slice, u64 vtime, u64 enq_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (tctx)
		tctx->shared_ts = scx_bpf_now();
	dsq_insert_vtime(p, SHARED_DSQ, slice, vtime, enq_flags);
}

/*
 * No CPU @p may use is idle: the shared DSQ, or with SCX_ENQ_PREEMPT (RL_PREEMPT,
 * from ops.dispatch only) next on this CPU if may_run_here_next().
 */
static void insert_busy(struct task_struct *p, u64 slice, u64 vtime, u64 enq_flags)
{
	u32 cpu = bpf_get_smp_processor_id();

	if ((enq_flags & SCX_ENQ_PREEMPT) && may_run_here_next(p)) {
		dsq_insert(p, SCX_DSQ_LOCAL, slice, 0);
		if (cpu < MAX_CPUS)
			nr_local_next[cpu]++;
	} else {
		insert_shared(p, slice, vtime, enq_flags);
	}
}

/* Run @p on any CPU it may use: an idle one if there is one, else insert_busy(). */
static void insert_anywhere(struct task_struct *p, u64 slice, u64 vtime, u64 enq_flags)
{
	s32 cpu = pick_idle_online(p);

	if (cpu >= 0 && cpu < MAX_CPUS)
		insert_on_cpu(p, cpu, slice, vtime, enq_flags);
	else
		insert_busy(p, slice, vtime, enq_flags);
}

/*
 * RL_CPU_NEAR: an idle CPU near the one @p last ran on, as select_cpus picks it
 * (but now, when the decision is carried out, so it is never stale), else the
 * shared DSQ. pick_idle_cpu() ends with any idle CPU, so this is insert_anywhere()
 * with a preference for @p's caches.
 */
static void insert_near(struct task_struct *p, u64 slice, u64 vtime, u64 enq_flags)
{
	struct bpf_cpumask *tmp = this_cpu_scratch();
	s32 cpu = tmp ? pick_idle_cpu(p, scx_bpf_task_cpu(p), tmp) : -1;

	if (cpu >= 0 && cpu < MAX_CPUS)
		insert_on_cpu(p, cpu, slice, vtime, enq_flags);
	else
		insert_busy(p, slice, vtime, enq_flags);
}

/*
 * @p's weight, 100 for nice 0 (the kernel's p->scx.weight). SCHED_IDLE tasks get
 * the least, 1, whichever path set the weight: EEVDF gives them 3/1024 of a nice-0
 * task's.
 */
static u64 task_weight(const struct task_struct *p)
{
	return p->policy == SCHED_IDLE ? 1 : p->scx.weight;
}

/*
 * A task the BPF side dispatches itself: the worker does not run, is behind or
 * overloaded, a real-time task holds its CPU, or the ring is full. An idle CPU it
 * may use runs it at once; else KERNEL_DSQ, in order of a deadline: now plus the
 * default slice scaled by 100 / weight (a nice-19 task waits its 100 slices' turn).
 * Not by the vtime the worker gave it last: that stands still while the worker
 * does not run, so the lowest ones would keep the CPUs, and tasks the worker had
 * placed in SHARED_DSQ, each a little later, would wait behind every new one
 * (docs/design.md, "Custody"). Its own DSQ, because the worker's vtimes are the policy's to define: a
 * CPU takes whichever of SHARED_DSQ and KERNEL_DSQ has the task that waited longer
 * (dispatch_shared_or_kernel()).
 */
static void insert_kernel(struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	s32 cpu = pick_idle_online(p);
	u64 now = scx_bpf_now();

	if (cpu >= 0 && cpu < MAX_CPUS) {
		dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice_ns, enq_flags);
		return;
	}
	if (tctx)
		tctx->shared_ts = now;
	dsq_insert_vtime(p, KERNEL_DSQ, slice_ns, now + slice_ns * 100 / task_weight(p), enq_flags);
}


/*
 * Claim generation @enq_cnt of a task for dispatching: true for exactly one of the
 * worker's decision and the BPF side's own service (serve_entry()), whichever
 * comes first; the other is cancelled. dispatched_cnt only grows. Retries a CAS
 * lost to a concurrent claim of another generation; after a few, it lets both go:
 * the kernel drops the second insert of one enqueue (its qseq), so that costs a
 * count, never a task.
 */
static bool claim_generation(struct task_ctx *tctx, u64 enq_cnt)
{
	u64 old;
	int i;

	bpf_for(i, 0, 4) {
		old = READ_ONCE(tctx->dispatched_cnt);
		if (old >= enq_cnt)
			return false;
		if (__sync_val_compare_and_swap(&tctx->dispatched_cnt, old, enq_cnt) == old)
			return true;
	}
	return true;
}

enum custody_state {
	NOT_HELD,	/* gone, queued again since, or dispatched: drop the entry */
	HELD_READ,	/* the worker read the record; the policy holds the task */
	HELD_UNREAD,	/* the record waits in `queued` */
};

/*
 * What became of @e's task. Race: a pid reused by a new task whose generation
 * happens to match reads as held; serving it then inserts a task that is not in
 * our custody, which the kernel ignores.
 */
static enum custody_state custody_state(const struct custody_entry *e, u64 cons_pos)
{
	struct task_struct *p = bpf_task_from_pid(e->pid);
	struct task_ctx *tctx;
	enum custody_state state = NOT_HELD;

	if (!p)
		return NOT_HELD;
	tctx = lookup_task_ctx(p);
	if (tctx && tctx->enq_cnt == e->enq_cnt && READ_ONCE(tctx->dispatched_cnt) < e->enq_cnt)
		state = cons_pos >= e->ring_end ? HELD_READ : HELD_UNREAD;
	bpf_task_release(p);
	return state;
}

/*
 * Dispatch @e's task here (ops.dispatch only), as the worker would with no
 * particular wish: an idle CPU, else the shared DSQ at the vtime the worker gave
 * it last. A decision for it that arrives later is cancelled (claim_generation()).
 * Race: the task queued again between our claim and insert: the insert is taken
 * back, as dispatch_task() does.
 */
static void serve_entry(const struct custody_entry *e)
{
	struct task_struct *p = bpf_task_from_pid(e->pid);
	struct task_ctx *tctx;

	if (!p)
		return;
	tctx = lookup_task_ctx(p);
	if (tctx && tctx->enq_cnt == e->enq_cnt && claim_generation(tctx, e->enq_cnt)) {
		insert_kernel(p, 0);
		if (tctx->enq_cnt != e->enq_cnt)
			scx_bpf_dispatch_cancel();
		else
			stat_inc(&nr_custody_dispatches);
	}
	bpf_task_release(p);
}

/*
 * Look at custody from its head, the oldest entry, CUSTODY_SCAN entries at most:
 * - drop the entries no longer held (lazy deletion);
 * - dispatch (ops.dispatch only: it has dispatch slots) every task held while
 *   the worker does not run (worker_unresponsive()), and every task whose record
 *   has waited unread longer than max_user_wait_ns;
 * - move a task the policy holds (record read) to the tail: its wait is the
 *   policy's choice, bounded by the worker's rescue and, if the worker stops,
 *   by the first rule; the records behind it are what tells whether the worker
 *   is behind.
 * Sets worker_behind: a record has waited unread longer than max_user_wait_ns.
 * One CPU at a time (custody_busy): a CPU that finds it busy returns the last
 * verdict. Only the CPU holding custody_busy pops, so the entry it popped is the
 * one it peeked; other CPUs push at the tail meanwhile. A held entry that finds
 * custody full when moved to the tail is lost: its task then waits for the
 * worker, as before custody existed.
 */
static bool custody_look(void)
{
	struct custody_entry e;
	bool stalled, overdue, behind = false;
	u64 cons_pos, now;
	int i;

	if (__sync_lock_test_and_set(&custody_busy, 1))
		return READ_ONCE(worker_behind);
	stalled = worker_unresponsive() && !READ_ONCE(debug_no_custody);
	cons_pos = bpf_ringbuf_query(&queued, BPF_RB_CONS_POS);
	now = scx_bpf_now();
	bpf_for(i, 0, CUSTODY_SCAN) {
		enum custody_state state;

		if (bpf_map_peek_elem(&custody, &e))
			break;
		state = custody_state(&e, cons_pos);
		overdue = state == HELD_UNREAD && max_user_wait_ns &&
			  now - e.queued_at > max_user_wait_ns && !READ_ONCE(debug_no_custody);
		behind |= overdue;
		if (state == NOT_HELD) {
			bpf_map_pop_elem(&custody, &e);
		} else if (stalled || overdue) {
			if (scx_bpf_dispatch_nr_slots() < 2)
				break;	/* keep a slot for this CPU's own pick */
			bpf_map_pop_elem(&custody, &e);
			serve_entry(&e);
		} else if (state == HELD_READ) {
			bpf_map_pop_elem(&custody, &e);
			bpf_map_push_elem(&custody, &e, 0);
		} else {
			break;	/* the oldest unread record, young enough */
		}
	}
	WRITE_ONCE(worker_behind, behind);
	__sync_fetch_and_and(&custody_busy, 0);
	return behind;
}

/*
 * New tasks skip the worker while it is behind: a record waited unread longer than
 * max_user_wait_ns (custody_look(), at each ops.dispatch).
 */
static bool worker_is_behind(void)
{
	if (!max_user_wait_ns)
		return false;
	if (!READ_ONCE(nr_queued))
		WRITE_ONCE(worker_behind, false);
	return READ_ONCE(worker_behind);
}

/*
 * Make sure some CPU looks at custody soon while tasks wait for the worker: the
 * watch fires every CUSTODY_WATCH_NS while the worker has work and, if it must
 * be served (the worker stopped or behind), kicks an idle CPU, whose ops.dispatch
 * serves it; busy CPUs get there when a slice ends. Armed by queue_to_user().
 */
static void arm_custody_watch(void)
{
	u32 key = 0;
	struct heartbeat *t;

	if (READ_ONCE(custody_watch_armed) || __sync_lock_test_and_set(&custody_watch_armed, 1))
		return;
	t = bpf_map_lookup_elem(&custody_timer, &key);
	if (t)
		bpf_timer_start(&t->timer, CUSTODY_WATCH_NS, 0);
}

/* Send @p to the worker. False if the ring is full. */
static bool queue_to_user(struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	struct custody_entry entry = {};
	struct queued_task *task;

	if (!tctx)
		return false;
	task = bpf_ringbuf_reserve(&queued, sizeof(*task), 0);
	if (!task)
		return false;

	task->pid = p->pid;
	task->cpu = scx_bpf_task_cpu(p);
	task->nr_cpus_allowed = p->nr_cpus_allowed;
	task->flags = enq_flags;
	task->start_ts = tctx->start_ts;
	task->stop_ts = tctx->stop_ts;
	task->exec_runtime = tctx->exec_runtime;
	task->weight = task_weight(p);
	task->vtime = tctx->vtime;
	task->enq_cnt = ++tctx->enq_cnt;
	__builtin_memcpy(task->comm, p->comm, PYLAND_COMM_LEN);
	task->enq_ts = scx_bpf_now();
	task->decided_ts = tctx->decided_ts;
	/* Reported once: a record after a task the BPF side served carries 0. */
	tctx->decided_ts = 0;

	/*
	 * Into custody before the worker can see the record. The producer position
	 * read now is at or past the record's end (another CPU may have reserved
	 * after us): the record may be judged unread a moment longer, never shorter.
	 * Custody full: the task stays in the kernel, as with a full ring.
	 */
	entry.pid = p->pid;
	entry.enq_cnt = task->enq_cnt;
	entry.queued_at = task->enq_ts;
	entry.ring_end = bpf_ringbuf_query(&queued, BPF_RB_PROD_POS);
	if (bpf_map_push_elem(&custody, &entry, 0)) {
		bpf_ringbuf_discard(task, BPF_RB_NO_WAKEUP);
		return false;
	}

	/* Count before submitting: the worker subtracts what it reads, never below 0. */
	stat_inc(&nr_queued);
	/* No wake-up: the worker polls; wake_worker() gets it a CPU instead. */
	bpf_ringbuf_submit(task, BPF_RB_NO_WAKEUP);
	arm_custody_watch();
	return true;
}

/*
 * The worker waits in its own DSQ; ops.dispatch runs it when it has work. A worker
 * that woke from a sleep may have work we cannot see (a signal to act on): let it
 * run. A worker enqueued as its CPU's last task, with work that arrived after
 * ops.dispatch looked (a task queued while it stopped): kick the CPU, which is
 * about to go idle and would otherwise not look again.
 */
static void enqueue_worker(struct task_struct *p, u64 enq_flags)
{
	s32 cpu;

	/*
	 * Where CPUs cannot be kicked (Debian's 7.1 and 7.2, compat.bpf.h), a waking
	 * worker goes straight to an idle CPU's local DSQ, whose CPU the kernel wakes
	 * itself: otherwise it would wait for the heartbeat while tasks queued to it
	 * wait too (a 4 s SIGSTOP then ended in the watchdog's ejection on 7.2).
	 */
	if ((enq_flags & SCX_ENQ_WAKEUP) && !can_kick_cpus() &&
	    (cpu = pick_idle_online(p)) >= 0 && cpu < MAX_CPUS) {
		dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice_ns, enq_flags);
		return;
	}

	dsq_insert(p, WORKER_DSQ, slice_ns, enq_flags);
	if (enq_flags & SCX_ENQ_WAKEUP) {
		set_worker_needed();
		wake_worker(-1);
	} else if ((enq_flags & SCX_ENQ_LAST) && worker_has_work()) {
		kick_cpu(scx_bpf_task_cpu(p), SCX_KICK_IDLE);
	}
}

s32 BPF_STRUCT_OPS(pyland_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct bpf_cpumask *tmp = this_cpu_scratch();
	s32 cpu;

	if (!tmp)
		return prev_cpu;
	cpu = pick_idle_cpu(p, prev_cpu, tmp);
	if (cpu < 0)
		return prev_cpu;

	/*
	 * An idle CPU and nobody waiting in user space: run @p there now, as the
	 * worker would (and without the round trip). The worker never goes this way:
	 * it runs from its own DSQ.
	 */
	if (direct_dispatch && !is_worker(p) &&
	    (!worker_has_work() || worker_unresponsive() || worker_is_behind())) {
		dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, 0);
		stat_inc(&nr_direct_dispatches);
	}
	return cpu;
}

void BPF_STRUCT_OPS(pyland_enqueue, struct task_struct *p, u64 enq_flags)
{
	s32 cpu = scx_bpf_task_cpu(p);

	if (is_worker(p)) {
		enqueue_worker(p, enq_flags);
		return;
	}

	/*
	 * Kernel threads never wait for the worker (it may wait for them). One that
	 * may run on several CPUs (an unbound kworker, the sched_ext watchdog's own
	 * among them) goes where any CPU takes it first: a real-time task may hold
	 * the CPU it woke on for seconds.
	 */
	if (is_kthread(p)) {
		if (p->nr_cpus_allowed > 1)
			dsq_insert(p, KTHREAD_DSQ, slice_ns, enq_flags);
		else if (higher_class_holds(cpu, enq_flags))
			keep_on_cpu(p, cpu, enq_flags);
		else
			dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, enq_flags);
		stat_inc(&nr_kernel_dispatches);
		return;
	}

	/*
	 * A real-time or deadline task holds @p's CPU, whose ext_server may pick at
	 * any moment and must find @p (see cpu_rt_busy()): keep it in the kernel, on
	 * that CPU if it may run nowhere else, else on an idle CPU or the shared DSQ.
	 */
	if (higher_class_holds(cpu, enq_flags)) {
		if (p->nr_cpus_allowed == 1)
			keep_on_cpu(p, cpu, enq_flags);
		else
			insert_kernel(p, enq_flags);
		stat_inc(&nr_rt_dispatches);
		return;
	}

	/*
	 * The worker does not run (stopped, blocked, starved) or is behind: @p does
	 * not wait for it. Whatever would end a pause (a shell's kill -CONT, a
	 * debugger) is a task too.
	 */
	if (worker_unresponsive() || worker_is_behind()) {
		insert_kernel(p, enq_flags);
		stat_inc(&nr_stalled_dispatches);
		return;
	}

	if (queue_to_user(p, enq_flags)) {
		if (!(enq_flags & SCX_ENQ_WAKEUP) && cpu >= 0 && cpu < MAX_CPUS)
			WRITE_ONCE(cpu_contended_at[cpu], bpf_ktime_get_ns());
		wake_worker(enq_flags & SCX_ENQ_WAKEUP ? cpu : -1);
		/*
		 * The last task of this CPU: it goes idle right after this, and an
		 * idle CPU looks at nothing by itself. The kick brings it back through
		 * ops.dispatch, which runs the worker if it may run here.
		 */
		if (enq_flags & SCX_ENQ_LAST)
			kick_cpu(cpu, SCX_KICK_IDLE);
		return;
	}

	/* The ring is full (or the task has no context): keep it running anyway. */
	insert_kernel(p, enq_flags);
	stat_inc(&nr_sched_congested);
}

/* Carry out one decision of the worker. */
static void dispatch_task(const struct dispatched_task *rec)
{
	struct task_struct *p;
	struct task_ctx *tctx;
	u64 slice = rec->slice_ns ?: slice_ns;
	u64 flags = rec->flags & RL_PREEMPT ? SCX_ENQ_PREEMPT : 0;
	bool bounced = false;

	p = bpf_task_from_pid(rec->pid);
	if (!p) {
		/* The task exited while the worker held it. */
		stat_inc(&nr_failed_dispatches);
		release_claimed_cpu(rec->cpu);
		return;
	}

	/*
	 * The BPF side served this generation from custody already (the worker
	 * stopped or fell behind), or a newer one was dispatched: cancelled.
	 */
	tctx = lookup_task_ctx(p);
	if (tctx && !claim_generation(tctx, rec->enq_cnt)) {
		stat_inc(&nr_cancel_dispatches);
		release_claimed_cpu(rec->cpu);
		bpf_task_release(p);
		return;
	}

	if (rec->cpu >= 0 && rec->cpu < MAX_CPUS && bpf_cpumask_test_cpu(rec->cpu, p->cpus_ptr)) {
		insert_on_cpu(p, rec->cpu, slice, rec->vtime, flags);
	} else if (rec->cpu == RL_CPU_NEAR) {
		insert_near(p, slice, rec->vtime, flags);
	} else {
		/* RL_CPU_ANY, or a CPU the task may not (or no longer) use. */
		bounced = rec->cpu != RL_CPU_ANY;
		release_claimed_cpu(rec->cpu);
		insert_anywhere(p, slice, rec->vtime, flags);
	}

	/*
	 * The task may have been dequeued and enqueued again (e.g. its affinity
	 * changed) after this record was queued, even while we inserted it: a newer
	 * record is on its way, and this one may place it on a CPU it may no longer
	 * use. So check after the insert and take it back, as scx_rustland_core
	 * does. A re-enqueue after this check is the kernel's to catch: it drops an
	 * insert made for an older enqueue of the task (its qseq).
	 */
	tctx = lookup_task_ctx(p);
	if (!tctx || rec->enq_cnt < tctx->enq_cnt) {
		scx_bpf_dispatch_cancel();
		stat_inc(&nr_cancel_dispatches);
		release_claimed_cpu(rec->cpu);
	} else {
		tctx->vtime = rec->vtime;
		tctx->decided_ts = scx_bpf_now();
		if (bounced)
			stat_inc(&nr_bounce_dispatches);
		stat_inc(&nr_user_dispatches);
	}
	bpf_task_release(p);
}

static long dispatch_one(struct bpf_dynptr *dynptr, void *ctx)
{
	struct dispatched_task rec;

	if (bpf_dynptr_read(&rec, sizeof(rec), dynptr, 0, 0)) {
		stat_inc(&nr_failed_dispatches);
		stat_inc(&nr_received);
		return 0;
	}
	dispatch_task(&rec);
	stat_inc(&nr_received);

	/*
	 * Each insert takes one of this ops.dispatch call's slots, and running out
	 * kills the scheduler ("dispatch buffer overflow"). The record is consumed
	 * even when we stop, so check after the insert, not before.
	 */
	return scx_bpf_dispatch_nr_slots() > 0 ? 0 : 1;
}

/* When the first task of @dsq_id was inserted (shared_ts); ~0 if there is none. */
static u64 first_inserted_at(u64 dsq_id)
{
	struct task_struct *first;
	struct task_ctx *fctx;
	u64 ts = ~0ULL;

	bpf_for_each(scx_dsq, first, dsq_id, 0) {
		fctx = lookup_task_ctx(first);
		ts = fctx ? fctx->shared_ts : 0;
		break;
	}
	return ts;
}

/*
 * The next task from SHARED_DSQ (placed by the worker, in its vtime order) or
 * KERNEL_DSQ (dispatched by the BPF side, insert_kernel()): whichever first task
 * was inserted earlier, so neither waits behind the other for good. Where DSQs
 * cannot be iterated (Debian's 7.1.13), SHARED_DSQ first. True if one was moved.
 */
static bool dispatch_shared_or_kernel(void)
{
	if (scx_bpf_dsq_nr_queued(KERNEL_DSQ) && can_iterate_dsqs() &&
	    first_inserted_at(KERNEL_DSQ) < first_inserted_at(SHARED_DSQ) &&
	    dsq_move_to_local(KERNEL_DSQ))
		return true;
	return dsq_move_to_local(SHARED_DSQ) || dsq_move_to_local(KERNEL_DSQ);
}

void BPF_STRUCT_OPS(pyland_dispatch, s32 cpu, struct task_struct *prev)
{
	long err;

	if (debug_error_requested) {
		scx_bpf_error("debug: error requested by user space (--debug-bpf-error-after)");
		return;
	}
	if (cpu >= 0 && cpu < MAX_CPUS)
		nr_local_next[cpu] = 0;

	/*
	 * -EBUSY: another CPU is draining right now. What it misses (sent after
	 * its last look) keeps worker_has_work() true, so it is drained later.
	 */
	err = bpf_user_ringbuf_drain(&dispatched, dispatch_one, NULL, 0);
	if (err < 0 && err != -EBUSY)
		stat_inc(&nr_drain_errors);

	/*
	 * Tasks that wait for a worker that does not run, or wait unread too long:
	 * this CPU serves them (custody_look()), into idle CPUs or the shared DSQ.
	 */
	custody_look();

	/* Kernel threads first: the worker may be waiting for one. */
	if (dsq_move_to_local(KTHREAD_DSQ))
		return;

	/* Then tasks the worker placed on this CPU: they are ready and chosen. */
	if (dsq_move_to_local(cpu))
		return;

	/*
	 * Then the worker, if it has work, before the shared DSQ: tasks wait in the
	 * user-space queue until it runs, while the shared DSQ is served by every
	 * CPU. It cannot starve the DSQs: once it has dispatched what was queued,
	 * worker_has_work() is false until new tasks arrive.
	 */
	if (worker_has_work() && dsq_move_to_local(WORKER_DSQ)) {
		clear_worker_needed();
		return;
	}

	if (dispatch_shared_or_kernel())
		return;

	/*
	 * A real-time task holds this CPU, and this may be its ext_server's pick:
	 * an empty answer stops the server for good while this CPU still has
	 * sched_ext tasks (cpu_rt_busy()). Run the worker even with nothing to do,
	 * or let the task that ran go on: a worker that yields here with nothing
	 * left to do is the usual case (it ran under the server and caught up).
	 */
	if (cpu_rt_busy(cpu)) {
		if (dsq_move_to_local(WORKER_DSQ))
			return;
		if (prev && is_queued(prev))
			task_set_slice(prev, slice_ns);
		return;
	}

	/*
	 * Nothing else wants this CPU: the task whose slice ended goes on instead of
	 * going idle. The worker, if it has work: it yielded, and the kernel asks us
	 * before it enqueues it, so it is in no DSQ we could move it from; without
	 * this, with ENQ_LAST, its CPU went idle with the worker waiting, until
	 * another CPU or the heartbeat ran it. Any other task if nobody waits in
	 * user space: a lone task then costs no round trip through the worker.
	 */
	if (prev && is_queued(prev)) {
		if (!is_worker(prev)) {
			if (!worker_has_work())
				task_set_slice(prev, slice_ns);
		} else if (worker_has_work()) {
			clear_worker_needed();
			task_set_slice(prev, slice_ns);
		}
	}
}

void BPF_STRUCT_OPS(pyland_runnable, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	/* A wake-up starts a new burst: exec_runtime counts CPU time since sleeping. */
	if (tctx)
		tctx->exec_runtime = 0;
}

void BPF_STRUCT_OPS(pyland_running, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	s32 cpu = scx_bpf_task_cpu(p);
	u64 now = scx_bpf_now();

	if (tctx) {
		tctx->start_ts = now;
	}
	if (cpu >= 0 && cpu < MAX_CPUS) {
		WRITE_ONCE(cpu_burst_start[cpu], now - (tctx ? tctx->exec_runtime : 0));
		if (!is_worker(p))
			WRITE_ONCE(cpu_idle_since[cpu], 0);
	}
	if (is_worker(p)) {
		WRITE_ONCE(worker_last_run, now);
		WRITE_ONCE(worker_running, true);
		WRITE_ONCE(worker_cpu, cpu);
		WRITE_ONCE(worker_kicked, 0);
	}
	__sync_fetch_and_add(&nr_running, 1);
}

void BPF_STRUCT_OPS(pyland_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	s32 cpu = scx_bpf_task_cpu(p);
	u64 now = scx_bpf_now();

	if (tctx) {
		tctx->stop_ts = now;
		tctx->exec_runtime += now - tctx->start_ts;
	}
	if (is_worker(p)) {
		WRITE_ONCE(worker_last_run, now);
		WRITE_ONCE(worker_running, false);
	} else if (cpu >= 0 && cpu < MAX_CPUS) {
		/* The next task's ops.running clears it again. */
		WRITE_ONCE(cpu_idle_since[cpu], bpf_ktime_get_ns());
	}
	__sync_fetch_and_sub(&nr_running, 1);
}

/*
 * A higher class takes @cpu. A real-time task may keep it for as long as it likes:
 * tasks waiting in its local DSQ (the worker among them, when the heartbeat put it
 * there) would wait that long, so enqueue them again, and the ones that may run
 * elsewhere do (pyland_enqueue keeps the rest on @cpu, for its ext_server). A
 * deadline task runs its runtime and gives the CPU back: nothing to do. Re-enqueued
 * at every deadline task's turn, the task whose slice was running at the local
 * DSQ's head would come back with a whole slice each time and never run out,
 * while the kernel threads waiting for the CPU never ran (docs/design.md,
 * real-time).
 */
void BPF_STRUCT_OPS(pyland_cpu_release, s32 cpu, struct scx_cpu_release_args *args)
{
	if (args->reason == SCX_CPU_PREEMPT_RT)
		scx_bpf_reenqueue_local();
}

s32 BPF_STRUCT_OPS(pyland_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&task_ctx_stor, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -ENOMEM;
	return 0;
}

/*
 * The heartbeat: once a second, a worker that is waiting in its DSQ gets a CPU, so
 * that it notices signals and exits even on an idle system (and the watchdog never
 * sees it wait). worker_needed makes the next ops.dispatch on any CPU run it, and
 * an idle CPU is kicked to make that soon (wake_worker()).
 *
 * Kick, not move: a worker moved from here into an idle CPU's local DSQ was
 * charged the whole time since that CPU's run-queue clock was last updated, up
 * to 200 ms a beat on 7.3.4 (docs/design.md, "The worker's CPU time"). Where CPUs
 * cannot be kicked (Debian's 7.1.13 and 7.2.12, compat.bpf.h) the move is the only
 * way to wake an idle CPU, and the charge is the price: the worker moves to the
 * local DSQ of the CPU it last ran on (or an idle one) where DSQs can be iterated,
 * and waits for some CPU's next ops.dispatch where they cannot (7.1.13).
 */
static int heartbeat_fn(void *map, int *key, struct bpf_timer *timer)
{
	struct task_struct *p;
	s32 cpu = READ_ONCE(worker_cpu);

	if (READ_ONCE(worker_running))
		goto out;
	set_worker_needed();
	if (can_kick_cpus()) {
		/* A timer callback is no RCU read section by itself (6.16 insists). */
		bpf_rcu_read_lock();
		wake_worker(-1);
		bpf_rcu_read_unlock();
	} else if (can_iterate_dsqs()) {
		/* A timer callback is no RCU read section by itself (6.16 insists). */
		bpf_rcu_read_lock();
		bpf_for_each(scx_dsq, p, WORKER_DSQ, 0) {
			/* Not to a CPU a real-time task holds: it may not run there for a second. */
			if (cpu < 0 || cpu >= MAX_CPUS || !bpf_cpumask_test_cpu(cpu, p->cpus_ptr) ||
			    cpu_rt_busy(cpu))
				cpu = pick_idle_online(p);
			if (cpu >= 0)
				scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SCX_DSQ_LOCAL_ON | cpu, 0);
			break;
		}
		bpf_rcu_read_unlock();
	}
out:
	/* Without the heartbeat an idle system would never run the worker: say so. */
	if (bpf_timer_start(timer, HEARTBEAT_NS, 0))
		scx_bpf_error("cannot re-arm the heartbeat timer");
	return 0;
}

/*
 * The custody watch (arm_custody_watch()). Races: a task queued between the last
 * look at the worker's work and the clear of custody_watch_armed found the watch
 * armed and did not arm it: look again after the clear.
 */
static int custody_watch_fn(void *map, int *key, struct bpf_timer *timer)
{
	struct bpf_cpumask *online;
	s32 cpu;

	if (can_kick_cpus() && (worker_unresponsive() || READ_ONCE(worker_behind))) {
		/* A timer callback is no RCU read section by itself (6.16 insists). */
		bpf_rcu_read_lock();
		online = domain_of(DOMAIN_ONLINE, 0);
		cpu = online ? scx_bpf_pick_idle_cpu(cast_mask(online), 0) : -1;
		if (cpu >= 0 && cpu < MAX_CPUS)
			kick_cpu(cpu, SCX_KICK_IDLE);
		bpf_rcu_read_unlock();
	}
	if (worker_has_work()) {
		bpf_timer_start(timer, CUSTODY_WATCH_NS, 0);
		return 0;
	}
	WRITE_ONCE(custody_watch_armed, 0);
	if (worker_has_work() && !__sync_lock_test_and_set(&custody_watch_armed, 1))
		bpf_timer_start(timer, CUSTODY_WATCH_NS, 0);
	return 0;
}

static s32 init_custody_watch(void)
{
	u32 key = 0;
	struct bpf_timer *timer = bpf_map_lookup_elem(&custody_timer, &key);

	if (!timer)
		return -ENOENT;
	bpf_timer_init(timer, &custody_timer, CLOCK_BOOTTIME);
	return bpf_timer_set_callback(timer, custody_watch_fn);
}

static s32 start_heartbeat(void)
{
	u32 key = 0;
	struct bpf_timer *timer = bpf_map_lookup_elem(&heartbeat_timer, &key);

	if (!timer)
		return -ENOENT;
	bpf_timer_init(timer, &heartbeat_timer, CLOCK_BOOTTIME);
	bpf_timer_set_callback(timer, heartbeat_fn);
	return bpf_timer_start(timer, HEARTBEAT_NS, 0);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(pyland_init)
{
	u32 nr_cpus = scx_bpf_nr_cpu_ids();
	s32 cpu, err;

	if (nr_cpus > MAX_CPUS) {
		scx_bpf_error("%u CPU ids, more than the %d supported", nr_cpus, MAX_CPUS);
		return -E2BIG;
	}
	bpf_for(cpu, 0, nr_cpus) {
		err = scx_bpf_create_dsq(cpu, -1);
		if (err) {
			scx_bpf_error("cannot create the DSQ of CPU %d: %d", cpu, err);
			return err;
		}
	}
	err = scx_bpf_create_dsq(SHARED_DSQ, -1) ?: scx_bpf_create_dsq(WORKER_DSQ, -1) ?:
	      scx_bpf_create_dsq(KTHREAD_DSQ, -1) ?: scx_bpf_create_dsq(KERNEL_DSQ, -1);
	if (err) {
		scx_bpf_error("cannot create the shared, worker, kernel-thread and kernel DSQs: %d", err);
		return err;
	}
	return init_custody_watch() ?: start_heartbeat();
}

void BPF_STRUCT_OPS(pyland_exit, struct scx_exit_info *ei)
{
	bpf_probe_read_kernel_str(exit_info.reason, sizeof(exit_info.reason), ei->reason);
	bpf_probe_read_kernel_str(exit_info.msg, sizeof(exit_info.msg), ei->msg);
	bpf_probe_read_kernel_str(exit_dump, sizeof(exit_dump), ei->dump);
	exit_info.exit_code = ei->exit_code;
	/*
	 * Last, with an atomic exchange (a full barrier): user space reads kind != 0
	 * as "the rest is written".
	 */
	__atomic_exchange_n(&exit_info.kind, ei->kind, __ATOMIC_SEQ_CST);
}

/*
 * Run once by the worker (BPF_PROG_TEST_RUN) before attaching: the kernel knows its
 * global tgid even where the worker's own pid namespace hides it (a container).
 */
SEC("syscall")
int register_worker(void *ctx)
{
	worker_tgid = bpf_get_current_pid_tgid() >> 32;
	return 0;
}

/*
 * Pick idle CPUs for the tasks of select_reqs[0..nr_select_reqs), as select_cpu
 * would: the policy's select_cpu helper. One run serves a whole batch.
 */
SEC("syscall")
int select_cpus(void *ctx)
{
	struct bpf_cpumask *tmp = bpf_cpumask_create();
	u32 i, nr = nr_select_reqs;

	if (!tmp)
		return -ENOMEM;
	bpf_rcu_read_lock();
	bpf_for(i, 0, nr < SELECT_BATCH_MAX ? nr : SELECT_BATCH_MAX) {
		struct select_cpu_req *req = &select_reqs[i];
		struct task_struct *p = bpf_task_from_pid(req->pid);

		if (!p) {
			req->cpu = -ESRCH;
			continue;
		}
		req->cpu = pick_idle_cpu(p, req->prev_cpu, tmp);
		bpf_task_release(p);
	}
	bpf_rcu_read_unlock();
	bpf_cpumask_release(tmp);
	return 0;
}

/* Add domain_sibling to the domain_level mask of domain_cpu (filled from sysfs). */
SEC("syscall")
int enable_sibling_cpu(void *ctx)
{
	struct domain_mask *d = lookup_domain(domain_level, domain_cpu);
	struct bpf_cpumask *mask, *old;
	s32 sibling = domain_sibling;

	if (!d || sibling < 0 || sibling >= MAX_CPUS)
		return -EINVAL;
	if (!d->mask) {
		mask = bpf_cpumask_create();
		if (!mask)
			return -ENOMEM;
		old = bpf_kptr_xchg(&d->mask, mask);
		if (old)
			bpf_cpumask_release(old);
	}
	bpf_rcu_read_lock();
	mask = d->mask;
	if (mask)
		bpf_cpumask_set_cpu(sibling, mask);
	bpf_rcu_read_unlock();
	return 0;
}

/* Debugging and tests: copy the domain_level mask of domain_cpu into domain_bits. */
SEC("syscall")
int read_domain(void *ctx)
{
	struct domain_mask *d = lookup_domain(domain_level, domain_cpu);
	struct bpf_cpumask *mask;
	u32 cpu;

	bpf_for(cpu, 0, MAX_CPUS / 64)
		domain_bits[cpu] = 0;
	if (!d)
		return -EINVAL;
	bpf_rcu_read_lock();
	mask = d->mask;
	if (mask) {
		bpf_for(cpu, 0, MAX_CPUS) {
			if (bpf_cpumask_test_cpu(cpu, cast_mask(mask)))
				domain_bits[cpu / 64] |= 1ULL << (cpu % 64);
		}
	}
	bpf_rcu_read_unlock();
	return 0;
}

SEC(".struct_ops.link")
struct sched_ext_ops pyland_ops = {
	.select_cpu		= (void *)pyland_select_cpu,
	.enqueue		= (void *)pyland_enqueue,
	.dispatch		= (void *)pyland_dispatch,
	.runnable		= (void *)pyland_runnable,
	.running		= (void *)pyland_running,
	.stopping		= (void *)pyland_stopping,
	.cpu_release		= (void *)pyland_cpu_release,
	.init_task		= (void *)pyland_init_task,
	.init			= (void *)pyland_init,
	.exit			= (void *)pyland_exit,
	.name			= "pyland",
};
