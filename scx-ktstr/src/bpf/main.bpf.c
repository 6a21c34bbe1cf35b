/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx-ktstr: the fixture scheduler of the ktstr test harness.
 *
 * A deliberately small weighted-fair scheduler:
 *
 * - select_cpu: the kernel's default idle-CPU pick; if the picked CPU is
 *   idle, the task goes straight to that CPU's local DSQ.
 * - enqueue: every other task waits in one shared DSQ ordered by vtime.
 * - dispatch: a CPU that runs out of work takes the lowest-vtime task.
 * - running/stopping: a task's vtime grows by the time it ran, scaled by the
 *   inverse of its weight, so heavier tasks advance more slowly.
 *
 * Knobs that make it misbehave on purpose, for ktstr's own tests:
 *
 * - slow (read-only, --slow): every ops.dispatch burns KTSTR_SLOW_BURN_US
 *   and slices are short, so CPU-bound tasks really lose throughput.
 * - fail_init (read-only, --fail-init): ops.init calls scx_bpf_error, so
 *   the scheduler never attaches (a crash before any workload).
 * - stall (.bss, --stall or a host map write): tasks named ktstr-worker*
 *   are parked in a DSQ nothing consumes; everything else runs normally.
 *   The kernel's own watchdog ends the scheduler once a parked task has
 *   waited timeout_ms (30 s by default); ktstr's watchdog must be quicker.
 * - pile (.bss, --pile or a host map write): tasks named ktstr-worker* all
 *   queue on CPU KTSTR_PILE_CPU's local DSQ, however idle the other CPUs
 *   are: a deep local DSQ and an imbalance for the monitor to see.
 * - crash (.bss): the next ops.dispatch ends the scheduler with an error.
 * - watchdog_exit (.bss, set by the loader on SIGUSR2): the next callback
 *   ends the scheduler with an error, so the kernel records a debug dump.
 * - degrade_rt (.bss, a host map write): while non-zero, every ops.dispatch
 *   burns that many microseconds (at most KTSTR_DEGRADE_MAX_US): a
 *   scheduler that degrades at run time, and recovers when it is set back.
 *
 * It implements every task, CPU and cgroup callback a scenario of ktstr's
 * catalogue (ktstr::scenario::catalogue) says it drives, most of them as
 * no-ops: the kernel counts each program's runs (bpf_stats), and the
 * catalogue's coverage test reads those counts to prove each scenario
 * really reaches the paths its doc names. Without cpu_online/cpu_offline
 * the kernel would end the scheduler on the first CPU hotplug.
 */
#include <scx/common.bpf.h>
#include "intf.h"

char _license[] SEC("license") = "GPL";

/* Time slice in ns, set by the loader from --slice-us before load. */
const volatile u64 slice_ns = (u64)KTSTR_SLICE_US_DFL * KTSTR_NSEC_PER_USEC;

/* Deliberately slow dispatch; set by the loader from --slow before load. */
const volatile bool slow;
/* ops.init fails with an error (--fail-init): a scheduler that never attaches. */
const volatile bool fail_init;

/* Host-controlled fault knobs (.bss, 0 = behave). */
u32 stall;
u32 crash;
u32 degrade_rt;
u32 watchdog_exit;
u32 pile;

/* Event counters (.bss), shown by ops.dump. */
u64 nr_enqueued;	/* tasks queued on the shared DSQ */
u64 nr_dispatched;	/* tasks moved from the shared DSQ to a local DSQ */
u64 nr_direct;		/* tasks sent straight to an idle CPU by select_cpu */
u64 nr_stalled;		/* tasks parked on the stall DSQ */
u64 nr_piled;		/* tasks queued on the pile CPU's local DSQ */
u64 slow_cnt;		/* dispatches slowed down by --slow */
u64 degrade_cnt;	/* dispatches slowed down by degrade_rt */

/* Largest vtime of any task that started running: the "current" vtime. */
static u64 vtime_now;

/* Exit information for user space (kind, reason, message, debug dump). */
UEI_DEFINE(uei);

/* The workload's worker processes name themselves "ktstr-worker". */
static bool is_ktstr_worker(const struct task_struct *p)
{
	const char prefix[] = "ktstr-worker";
	int i;

#pragma unroll
	for (i = 0; i < sizeof(prefix) - 1; i++)
		if (p->comm[i] != prefix[i])
			return false;
	return true;
}

static bool stalled(const struct task_struct *p)
{
	return stall && is_ktstr_worker(p);
}

static bool piled(const struct task_struct *p)
{
	return pile && is_ktstr_worker(p) &&
	       bpf_cpumask_test_cpu(KTSTR_PILE_CPU, p->cpus_ptr);
}

/*
 * Called from the frequent callbacks, so the exit lands within a tick even
 * on a mostly idle machine (an idle CPU runs neither tick nor dispatch).
 */
static void check_watchdog_exit(void)
{
	if (watchdog_exit)
		scx_bpf_error("ktstr watchdog: a task was stuck (scx-ktstr got SIGUSR2)");
}

/*
 * Busy-waits `us` microseconds. The clock ends the loop; the iteration
 * cap only bounds it for the verifier, and must stay within the kernel's
 * limit for bpf_for (BPF_MAX_LOOPS, 8M): beyond it the loop never runs.
 */
static void burn_us(u64 us)
{
	u64 start = bpf_ktime_get_ns();
	u32 i;

	bpf_for(i, 0, 1 << 22) {
		if (bpf_ktime_get_ns() - start >= us * KTSTR_NSEC_PER_USEC)
			break;
	}
}

s32 BPF_STRUCT_OPS(ktstr_select_cpu, struct task_struct *p, s32 prev_cpu,
		   u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu;

	check_watchdog_exit();
	/* No shortcut to an idle CPU: ops.enqueue must park or pile it. */
	if (stalled(p) || piled(p))
		return prev_cpu;

	cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	if (is_idle) {
		/* Skips ops.enqueue: runs on @cpu's local DSQ. */
		__sync_fetch_and_add(&nr_direct, 1);
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, 0);
	}
	return cpu;
}

void BPF_STRUCT_OPS(ktstr_enqueue, struct task_struct *p, u64 enq_flags)
{
	u64 vtime = p->scx.dsq_vtime;

	check_watchdog_exit();
	if (stalled(p)) {
		__sync_fetch_and_add(&nr_stalled, 1);
		scx_bpf_dsq_insert(p, KTSTR_STALL_DSQ, slice_ns, enq_flags);
		return;
	}

	if (piled(p)) {
		__sync_fetch_and_add(&nr_piled, 1);
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | KTSTR_PILE_CPU,
				   slice_ns, enq_flags);
		return;
	}

	/*
	 * SCX_OPS_ENQ_LAST (needed so a lone stalled task leaves its CPU)
	 * sends a CPU's only runnable task here when its slice ends: keep
	 * it running, as the kernel would without the flag.
	 */
	if (enq_flags & SCX_ENQ_LAST) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, enq_flags);
		return;
	}

	/*
	 * A task that slept for long must not hoard credit: let it lag
	 * behind the current vtime by at most one slice.
	 */
	if (time_before(vtime, vtime_now - slice_ns))
		vtime = vtime_now - slice_ns;

	__sync_fetch_and_add(&nr_enqueued, 1);
	scx_bpf_dsq_insert_vtime(p, KTSTR_SHARED_DSQ, slice_ns, vtime, enq_flags);
}

void BPF_STRUCT_OPS(ktstr_dispatch, s32 cpu, struct task_struct *prev)
{
	check_watchdog_exit();
	/* Host-triggered failure: the kernel ends the scheduler (ERROR_BPF). */
	if (crash)
		scx_bpf_error("ktstr: host-triggered crash");

	if (slow) {
		burn_us(KTSTR_SLOW_BURN_US);
		__sync_fetch_and_add(&slow_cnt, 1);
	}
	if (degrade_rt) {
		burn_us(degrade_rt < KTSTR_DEGRADE_MAX_US ? degrade_rt : KTSTR_DEGRADE_MAX_US);
		__sync_fetch_and_add(&degrade_cnt, 1);
	}

	if (scx_bpf_dsq_move_to_local(KTSTR_SHARED_DSQ, 0))
		__sync_fetch_and_add(&nr_dispatched, 1);
}

void BPF_STRUCT_OPS(ktstr_tick, struct task_struct *p)
{
	check_watchdog_exit();
	/*
	 * A worker already running when stall or pile was switched on (or,
	 * piled, running elsewhere): off it goes, back through ops.enqueue.
	 */
	if (stalled(p) ||
	    (piled(p) && bpf_get_smp_processor_id() != KTSTR_PILE_CPU))
		p->scx.slice = 0;
}

void BPF_STRUCT_OPS(ktstr_running, struct task_struct *p)
{
	/* Advance the global vtime; racy across CPUs, which is harmless. */
	if (time_before(vtime_now, p->scx.dsq_vtime))
		vtime_now = p->scx.dsq_vtime;
}

void BPF_STRUCT_OPS(ktstr_stopping, struct task_struct *p, bool runnable)
{
	u64 used = 0;

	/* p->scx.slice counts down from slice_ns while the task runs. */
	if (p->scx.slice < slice_ns)
		used = slice_ns - p->scx.slice;

	scx_bpf_task_set_dsq_vtime(p, p->scx.dsq_vtime +
				   scale_by_task_weight_inverse(p, used));
}

void BPF_STRUCT_OPS(ktstr_enable, struct task_struct *p)
{
	/* A task joining the scheduler starts at the current vtime. */
	scx_bpf_task_set_dsq_vtime(p, vtime_now);
}

void BPF_STRUCT_OPS(ktstr_disable, struct task_struct *p)
{
}

s32 BPF_STRUCT_OPS(ktstr_init_task, struct task_struct *p,
		   struct scx_init_task_args *args)
{
	return 0;
}

void BPF_STRUCT_OPS(ktstr_exit_task, struct task_struct *p,
		    struct scx_exit_task_args *args)
{
}

void BPF_STRUCT_OPS(ktstr_runnable, struct task_struct *p, u64 enq_flags)
{
}

void BPF_STRUCT_OPS(ktstr_quiescent, struct task_struct *p, u64 deq_flags)
{
}

/* sched_yield(): give up the rest of the slice, as the kernel would without this op. */
bool BPF_STRUCT_OPS(ktstr_yield, struct task_struct *from, struct task_struct *to)
{
	from->scx.slice = 0;
	return false;
}

/* Weights are read from p->scx.weight when a task stops; nothing to keep. */
void BPF_STRUCT_OPS(ktstr_set_weight, struct task_struct *p, u32 weight)
{
}

/* scx_bpf_select_cpu_dfl() honours p->cpus_ptr itself. */
void BPF_STRUCT_OPS(ktstr_set_cpumask, struct task_struct *p,
		    const struct cpumask *cpumask)
{
}

/* Needs SCX_OPS_KEEP_BUILTIN_IDLE, or the built-in idle tracking goes. */
void BPF_STRUCT_OPS(ktstr_update_idle, s32 cpu, bool idle)
{
}

void BPF_STRUCT_OPS(ktstr_cpu_acquire, s32 cpu, struct scx_cpu_acquire_args *args)
{
}

/*
 * A higher class (an RT task) took the CPU: what waits on its local DSQ
 * goes back through ops.enqueue, to run elsewhere meanwhile.
 */
void BPF_STRUCT_OPS(ktstr_cpu_release, s32 cpu, struct scx_cpu_release_args *args)
{
	scx_bpf_reenqueue_local();
}

void BPF_STRUCT_OPS(ktstr_cpu_online, s32 cpu)
{
}

void BPF_STRUCT_OPS(ktstr_cpu_offline, s32 cpu)
{
}

s32 BPF_STRUCT_OPS(ktstr_cgroup_init, struct cgroup *cgrp,
		   struct scx_cgroup_init_args *args)
{
	return 0;
}

void BPF_STRUCT_OPS(ktstr_cgroup_exit, struct cgroup *cgrp)
{
}

s32 BPF_STRUCT_OPS(ktstr_cgroup_prep_move, struct task_struct *p,
		   struct cgroup *from, struct cgroup *to)
{
	return 0;
}

void BPF_STRUCT_OPS(ktstr_cgroup_move, struct task_struct *p,
		    struct cgroup *from, struct cgroup *to)
{
}

void BPF_STRUCT_OPS(ktstr_cgroup_cancel_move, struct task_struct *p,
		    struct cgroup *from, struct cgroup *to)
{
}

void BPF_STRUCT_OPS(ktstr_cgroup_set_weight, struct cgroup *cgrp, u32 weight)
{
}

void BPF_STRUCT_OPS(ktstr_dump, struct scx_dump_ctx *dctx)
{
	scx_bpf_dump("ktstr scheduler state:\n");
	scx_bpf_dump("stall=%u crash=%u degrade_rt=%u watchdog_exit=%u\n",
		     stall, crash, degrade_rt, watchdog_exit);
	scx_bpf_dump("pile=%u nr_piled=%llu\n", pile, nr_piled);
	scx_bpf_dump("rodata: slow=%d fail_init=%d slice_us=%llu\n",
		     slow, fail_init, slice_ns / KTSTR_NSEC_PER_USEC);
	scx_bpf_dump("degrade_cnt=%llu\n", degrade_cnt);
	scx_bpf_dump("slow_cnt=%llu nr_enqueued=%llu nr_dispatched=%llu nr_direct=%llu nr_stalled=%llu\n",
		     slow_cnt, nr_enqueued, nr_dispatched, nr_direct, nr_stalled);
	scx_bpf_dump("nr_queued=%d stall_queued=%d vtime_now=%llu\n",
		     scx_bpf_dsq_nr_queued(KTSTR_SHARED_DSQ),
		     scx_bpf_dsq_nr_queued(KTSTR_STALL_DSQ), vtime_now);
}

void BPF_STRUCT_OPS(ktstr_dump_task, struct scx_dump_ctx *dctx,
		    struct task_struct *p)
{
	scx_bpf_dump("ktstr: dsq_vtime=%llu weight=%u\n",
		     p->scx.dsq_vtime, p->scx.weight);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(ktstr_init)
{
	s32 ret;

	if (fail_init) {
		scx_bpf_error("ktstr: init failed on purpose (--fail-init)");
		return -EINVAL;
	}
	ret = scx_bpf_create_dsq(KTSTR_SHARED_DSQ, -1);

	if (ret)
		return ret;
	return scx_bpf_create_dsq(KTSTR_STALL_DSQ, -1);
}

void BPF_STRUCT_OPS(ktstr_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

SCX_OPS_DEFINE(ktstr_ops,
	       .select_cpu	= (void *)ktstr_select_cpu,
	       .enqueue		= (void *)ktstr_enqueue,
	       .dispatch	= (void *)ktstr_dispatch,
	       .tick		= (void *)ktstr_tick,
	       .running		= (void *)ktstr_running,
	       .stopping	= (void *)ktstr_stopping,
	       .enable		= (void *)ktstr_enable,
	       .disable		= (void *)ktstr_disable,
	       .init_task	= (void *)ktstr_init_task,
	       .exit_task	= (void *)ktstr_exit_task,
	       .runnable	= (void *)ktstr_runnable,
	       .quiescent	= (void *)ktstr_quiescent,
	       .yield		= (void *)ktstr_yield,
	       .set_weight	= (void *)ktstr_set_weight,
	       .set_cpumask	= (void *)ktstr_set_cpumask,
	       .update_idle	= (void *)ktstr_update_idle,
	       .cpu_acquire	= (void *)ktstr_cpu_acquire,
	       .cpu_release	= (void *)ktstr_cpu_release,
	       .cpu_online	= (void *)ktstr_cpu_online,
	       .cpu_offline	= (void *)ktstr_cpu_offline,
	       .cgroup_init	= (void *)ktstr_cgroup_init,
	       .cgroup_exit	= (void *)ktstr_cgroup_exit,
	       .cgroup_prep_move = (void *)ktstr_cgroup_prep_move,
	       .cgroup_move	= (void *)ktstr_cgroup_move,
	       .cgroup_cancel_move = (void *)ktstr_cgroup_cancel_move,
	       .cgroup_set_weight = (void *)ktstr_cgroup_set_weight,
	       .dump		= (void *)ktstr_dump,
	       .dump_task	= (void *)ktstr_dump_task,
	       .init		= (void *)ktstr_init,
	       .exit		= (void *)ktstr_exit,
	       .flags		= SCX_OPS_ENQ_LAST | SCX_OPS_KEEP_BUILTIN_IDLE,
	       .name		= "ktstr");
