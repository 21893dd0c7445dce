/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one definition of what crosses between the BPF scheduler and user space:
 * the records on the two rings, the DSQ ids, the syscall programs' arguments and
 * the exit info. Included by bpf/pyland.bpf.c and by the C++ extension.
 */
#ifndef __PYLAND_INTF_H
#define __PYLAND_INTF_H

#ifndef __VMLINUX_H__
#include <stdint.h>
typedef int32_t s32;
typedef uint32_t u32;
typedef int64_t s64;
typedef uint64_t u64;
#endif

#define PYLAND_COMM_LEN 16

enum pyland_consts {
	/* Largest CPU id the BPF side keeps a DSQ for. */
	MAX_CPUS = 1024,
	/* DSQ ids: 0 .. MAX_CPUS-1 are per-CPU; then the shared, the worker's, the
	 * one of kernel threads that may run on several CPUs, and the one of tasks the
	 * BPF side dispatches itself (the worker does not run or is overloaded). */
	SHARED_DSQ = MAX_CPUS,
	WORKER_DSQ = MAX_CPUS + 1,
	KTHREAD_DSQ = MAX_CPUS + 2,
	KERNEL_DSQ = MAX_CPUS + 3,
	/* dispatched_task.cpu: run on whichever CPU gets to it first (shared DSQ). */
	RL_CPU_ANY = -1,
	/*
	 * dispatched_task.cpu: an idle CPU near the one the task last ran on, picked
	 * as select_cpus would when the decision is carried out; else as RL_CPU_ANY.
	 * Spares the policy a select_cpus call (a system call) per cycle.
	 */
	RL_CPU_NEAR = -2,
	/* Bytes of the kernel's exit dump kept for user space. */
	EXIT_REASON_LEN = 128,
	EXIT_MSG_LEN = 1024,
	EXIT_DUMP_MAX = 32768,
	/* Tasks one run of the select_cpus syscall program handles. */
	SELECT_BATCH_MAX = 256,
	/* Entries of the BPF side's custody queue (tasks queued to the worker). */
	CUSTODY_MAX = 65536,
};

/* Cache-domain levels of the idle-CPU masks (see enable_sibling_cpu). */
enum pyland_domain_level {
	DOMAIN_SMT = 0,
	DOMAIN_L2 = 1,
	DOMAIN_L3 = 2,
	/* CPU 0's mask at this level: every CPU online when the scheduler started. */
	DOMAIN_ONLINE = 3,
	NR_DOMAIN_LEVELS = 4,
};

/* queued_task.flags: the kernel's SCX_ENQ_* bits a policy may use. */
enum pyland_enqueue_flags {
	/* The task woke up (SCX_ENQ_WAKEUP); else its slice ended, it was preempted,
	 * or it is new. */
	ENQ_WAKEUP = 1 << 0,
};

/* dispatched_task.flags */
enum pyland_dispatch_flags {
	/*
	 * Run the task at once: on a target CPU, preempt what runs there; with
	 * RL_CPU_ANY or RL_CPU_NEAR and no idle CPU, run it next on the CPU that
	 * applies the decision (usually the one the worker leaves), unless a task
	 * waits there already or the shared DSQ's first task has waited a maximum
	 * slice (docs/design.md, "A woken task when no CPU is idle").
	 */
	RL_PREEMPT = 1 << 0,
};

/* BPF -> user (ring buffer "queued"): a task that needs a CPU. */
struct queued_task {
	s32 pid;		/* global pid */
	s32 cpu;		/* CPU the task last ran on */
	u64 nr_cpus_allowed;	/* how many CPUs it may use */
	u64 flags;		/* SCX_ENQ_* flags of this enqueue */
	u64 start_ts;		/* when it last started running (ns) */
	u64 stop_ts;		/* when it last stopped running (ns) */
	u64 exec_runtime;	/* CPU time since it last slept (ns) */
	u64 weight;		/* scheduling weight, 100 = nice 0 */
	u64 vtime;		/* vtime user space gave it last; 0 = new task */
	u64 enq_cnt;		/* enqueue generation, copied into the dispatch */
	char comm[PYLAND_COMM_LEN];
	u64 enq_ts;		/* when this enqueue queued it to user space (ns) */
	u64 decided_ts;		/* when the worker's decision for its previous record
				 * was carried out (ns); 0: none since (served by
				 * the BPF side, cancelled, or a new task) */
};

/* user -> BPF (user ring buffer "dispatched"): where and how to run a task. */
struct dispatched_task {
	s32 pid;		/* global pid, as queued */
	s32 cpu;		/* target CPU, RL_CPU_ANY or RL_CPU_NEAR */
	u64 flags;		/* RL_* dispatch flags */
	u64 slice_ns;		/* time slice; 0 = the default slice */
	u64 vtime;		/* order within the target DSQ; kept for the next enqueue */
	u64 enq_cnt;		/* queued_task.enq_cnt, unchanged */
};

/* One request to the select_cpus syscall program (in .bss: select_reqs[]). */
struct select_cpu_req {
	s32 pid;		/* in: the task */
	s32 prev_cpu;		/* in: where it last ran */
	s32 cpu;		/* out: an idle CPU it may use, or -1 (-ESRCH: no such task) */
	s32 _pad;
};

/* What ops.exit recorded, read by user space once the scheduler is gone. */
struct exit_info {
	s32 kind;		/* enum scx_exit_kind; 0 while attached */
	s32 _pad;
	s64 exit_code;
	char reason[EXIT_REASON_LEN];
	char msg[EXIT_MSG_LEN];
};

#endif /* __PYLAND_INTF_H */
