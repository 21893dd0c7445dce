/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The sched_ext kfuncs scx_pyland uses, declared here (vmlinux.h's own kfunc
 * prototypes are switched off with BPF_NO_KFUNC_PROTOTYPES), and wrappers that keep
 * one BPF object loading on every kernel from 6.16 to 7.3.
 *
 * How the drift is handled: a kfunc declared `name___suffix` binds to the kernel's
 * `name` (libbpf drops the suffix) only if the prototypes match; otherwise it stays
 * unresolved (__weak) and bpf_ksym_exists() on it is false at load time, so the
 * verifier drops the branch that calls it. Where a kernel exports two variants,
 * `name___v2` is the newer one (the kernel names it so).
 */
#ifndef __PYLAND_COMPAT_BPF_H
#define __PYLAND_COMPAT_BPF_H

/* Constants of UAPI headers that vmlinux.h cannot carry (they are macros). */
#define ENOENT		2
#define ENOMEM		12
#define E2BIG		7
#define ESRCH		3
#define EINVAL		22
#define EBUSY		16
#define SCHED_IDLE	5
#define CLOCK_BOOTTIME	7

/* Kfuncs whose prototype is the same on every supported kernel. */
s32 scx_bpf_create_dsq(u64 dsq_id, s32 node) __ksym;
u32 scx_bpf_dispatch_nr_slots(void) __ksym;
void scx_bpf_kick_cpu(s32 cpu, u64 flags) __ksym;
s32 scx_bpf_dsq_nr_queued(u64 dsq_id) __ksym;
s32 scx_bpf_select_cpu_dfl(struct task_struct *p, s32 prev_cpu, u64 wake_flags, bool *is_idle) __ksym;
s32 scx_bpf_pick_idle_cpu(const struct cpumask *cpus_allowed, u64 flags) __ksym;
s32 scx_bpf_task_cpu(const struct task_struct *p) __ksym;
u32 scx_bpf_nr_cpu_ids(void) __ksym;
u64 scx_bpf_now(void) __ksym;
void scx_bpf_error_bstr(char *fmt, unsigned long long *data, u32 data__sz) __ksym;
struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
void bpf_task_release(struct task_struct *p) __ksym;
bool bpf_cpumask_test_cpu(u32 cpu, const struct cpumask *cpumask) __ksym;
struct bpf_cpumask *bpf_cpumask_create(void) __ksym;
void bpf_cpumask_release(struct bpf_cpumask *cpumask) __ksym;
void bpf_cpumask_set_cpu(u32 cpu, struct bpf_cpumask *cpumask) __ksym;
bool bpf_cpumask_and(struct bpf_cpumask *dst, const struct cpumask *src1, const struct cpumask *src2) __ksym;
bool scx_bpf_test_and_clear_cpu_idle(s32 cpu) __ksym;
void bpf_rcu_read_lock(void) __ksym;
void bpf_rcu_read_unlock(void) __ksym;
int bpf_iter_scx_dsq_new(struct bpf_iter_scx_dsq *it, u64 dsq_id, u64 flags) __ksym __weak;
struct task_struct *bpf_iter_scx_dsq_next(struct bpf_iter_scx_dsq *it) __ksym __weak;
void bpf_iter_scx_dsq_destroy(struct bpf_iter_scx_dsq *it) __ksym __weak;
bool scx_bpf_dsq_move(struct bpf_iter_scx_dsq *it__iter, struct task_struct *p, u64 dsq_id, u64 enq_flags) __ksym;
/* Inside bpf_for_each(scx_dsq, ...): the iterator, which scx_bpf_dsq_move() takes. */
#define BPF_FOR_EACH_ITER	(&___it)

/* scx_bpf_error(fmt, args...): abort the scheduler with a formatted reason. */
#define scx_bpf_error(fmt, args...)						\
({										\
	static char ___fmt[] = fmt;						\
	unsigned long long ___param[___bpf_narg(args)];				\
										\
	_Pragma("GCC diagnostic push")						\
	_Pragma("GCC diagnostic ignored \"-Wint-conversion\"")			\
	___bpf_fill(___param, args);						\
	_Pragma("GCC diagnostic pop")						\
	scx_bpf_error_bstr(___fmt, ___param, sizeof(___param));		\
})

/*
 * Insert into a FIFO DSQ. 6.19 made scx_bpf_dsq_insert() return bool and exports
 * the old void one beside it; 6.16-6.18 have only the void one.
 */
bool scx_bpf_dsq_insert___v2___compat(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __ksym __weak;
void scx_bpf_dsq_insert___v1(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __ksym __weak;

static inline void dsq_insert(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags)
{
	if (bpf_ksym_exists(scx_bpf_dsq_insert___v2___compat))
		scx_bpf_dsq_insert___v2___compat(p, dsq_id, slice, enq_flags);
	else
		scx_bpf_dsq_insert___v1(p, dsq_id, slice, enq_flags);
}

/*
 * Insert into a vtime-ordered DSQ. 6.19 packs the scalars into a struct (BPF calls
 * take five arguments at most) and keeps the five-argument kfunc for old objects.
 */
bool __scx_bpf_dsq_insert_vtime(struct task_struct *p, struct scx_bpf_dsq_insert_vtime_args *args) __ksym __weak;
void scx_bpf_dsq_insert_vtime___compat(struct task_struct *p, u64 dsq_id, u64 slice, u64 vtime, u64 enq_flags) __ksym __weak;

static inline void dsq_insert_vtime(struct task_struct *p, u64 dsq_id, u64 slice, u64 vtime, u64 enq_flags)
{
	if (bpf_core_type_exists(struct scx_bpf_dsq_insert_vtime_args) &&
	    bpf_ksym_exists(__scx_bpf_dsq_insert_vtime)) {
		struct scx_bpf_dsq_insert_vtime_args args = {
			.dsq_id = dsq_id, .slice = slice, .vtime = vtime, .enq_flags = enq_flags,
		};
		__scx_bpf_dsq_insert_vtime(p, &args);
	} else {
		scx_bpf_dsq_insert_vtime___compat(p, dsq_id, slice, vtime, enq_flags);
	}
}

/* Move the first task of a DSQ to this CPU's local DSQ. 7.1 added @enq_flags. */
bool scx_bpf_dsq_move_to_local___v2___compat(u64 dsq_id, u64 enq_flags) __ksym __weak;
bool scx_bpf_dsq_move_to_local___v1(u64 dsq_id) __ksym __weak;

static inline bool dsq_move_to_local(u64 dsq_id)
{
	if (bpf_ksym_exists(scx_bpf_dsq_move_to_local___v2___compat))
		return scx_bpf_dsq_move_to_local___v2___compat(dsq_id, 0);
	return scx_bpf_dsq_move_to_local___v1(dsq_id);
}

/*
 * Kick a CPU. Debian's 7.1.13 and 7.2.12 kernels cannot link it: the kernel flags
 * scx_bpf_kick_cpu KF_IMPLICIT_ARGS, so the verifier reads its prototype from
 * scx_bpf_kick_cpu_impl, which those kernels' BTF lacks (the BTF has only the
 * internal prototype with the trailing `aux`). The declaration then does not
 * match, stays unresolved, and callers fall back to ways that need no kick (see
 * pyland.bpf.c). Debian's 7.1.13 has the same defect for bpf_iter_scx_dsq_new.
 */
void scx_bpf_kick_cpu___compat(s32 cpu, u64 flags) __ksym __weak;

static inline bool can_kick_cpus(void)
{
	return bpf_ksym_exists(scx_bpf_kick_cpu___compat);
}

static inline void kick_cpu(s32 cpu, u64 flags)
{
	if (can_kick_cpus())
		scx_bpf_kick_cpu___compat(cpu, flags);
}

/*
 * Give a task a new slice. 6.18 added the kfunc; before it, ops could write
 * p->scx.slice directly (the kernel's BTF access rules allow that field).
 */
bool scx_bpf_task_set_slice___compat(struct task_struct *p, u64 slice) __ksym __weak;

static inline void task_set_slice(struct task_struct *p, u64 slice)
{
	if (bpf_ksym_exists(scx_bpf_task_set_slice___compat))
		scx_bpf_task_set_slice___compat(p, slice);
	else
		p->scx.slice = slice;
}

/* Re-enqueue the tasks of this CPU's local DSQ, from ops.cpu_release (every kernel). */
u32 scx_bpf_reenqueue_local(void) __ksym;

/* Take back the last insert of this ops.dispatch call (every kernel since 6.12). */
void scx_bpf_dispatch_cancel(void) __ksym;

/*
 * Each CPU's run queue, to see whether a real-time task holds the CPU (every
 * kernel: a per-CPU variable in vmlinux BTF, read with bpf_per_cpu_ptr()).
 */
extern const struct rq runqueues __ksym;

/* Whether DSQs can be iterated (and tasks moved out of them), see above. */
static inline bool can_iterate_dsqs(void)
{
	return bpf_ksym_exists(bpf_iter_scx_dsq_new);
}

#define BPF_STRUCT_OPS(name, args...) SEC("struct_ops/" #name) BPF_PROG(name, ##args)
#define BPF_STRUCT_OPS_SLEEPABLE(name, args...) SEC("struct_ops.s/" #name) BPF_PROG(name, ##args)

#endif /* __PYLAND_COMPAT_BPF_H */
