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
 * The .bss knobs stall, crash and degrade_rt are written by the host to make
 * the scheduler misbehave on purpose. Only crash does something for now.
 */
#include <scx/common.bpf.h>
#include "intf.h"

char _license[] SEC("license") = "GPL";

/* Time slice in ns, set by the loader from --slice-us before load. */
const volatile u64 slice_ns = (u64)KTSTR_SLICE_US_DFL * KTSTR_NSEC_PER_USEC;

/* Host-controlled fault knobs (.bss, 0 = behave). */
u32 stall;
u32 crash;
u32 degrade_rt;

/* Event counters (.bss), shown by ops.dump. */
u64 nr_enqueued;	/* tasks queued on the shared DSQ */
u64 nr_dispatched;	/* tasks moved from the shared DSQ to a local DSQ */
u64 nr_direct;		/* tasks sent straight to an idle CPU by select_cpu */

/* Largest vtime of any task that started running: the "current" vtime. */
static u64 vtime_now;

/* Exit information for user space (kind, reason, message, debug dump). */
UEI_DEFINE(uei);

s32 BPF_STRUCT_OPS(ktstr_select_cpu, struct task_struct *p, s32 prev_cpu,
		   u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu;

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
	/* Host-triggered failure: the kernel ends the scheduler (ERROR_BPF). */
	if (crash)
		scx_bpf_error("ktstr: host-triggered crash");

	if (scx_bpf_dsq_move_to_local(KTSTR_SHARED_DSQ, 0))
		__sync_fetch_and_add(&nr_dispatched, 1);
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

void BPF_STRUCT_OPS(ktstr_dump, struct scx_dump_ctx *dctx)
{
	scx_bpf_dump("ktstr scheduler state:\n");
	scx_bpf_dump("nr_enqueued=%llu nr_dispatched=%llu nr_direct=%llu\n",
		     nr_enqueued, nr_dispatched, nr_direct);
	scx_bpf_dump("nr_queued=%d vtime_now=%llu stall=%u crash=%u degrade_rt=%u\n",
		     scx_bpf_dsq_nr_queued(KTSTR_SHARED_DSQ), vtime_now,
		     stall, crash, degrade_rt);
}

void BPF_STRUCT_OPS(ktstr_dump_task, struct scx_dump_ctx *dctx,
		    struct task_struct *p)
{
	scx_bpf_dump("ktstr: dsq_vtime=%llu weight=%u\n",
		     p->scx.dsq_vtime, p->scx.weight);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(ktstr_init)
{
	return scx_bpf_create_dsq(KTSTR_SHARED_DSQ, -1);
}

void BPF_STRUCT_OPS(ktstr_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

SCX_OPS_DEFINE(ktstr_ops,
	       .select_cpu	= (void *)ktstr_select_cpu,
	       .enqueue		= (void *)ktstr_enqueue,
	       .dispatch	= (void *)ktstr_dispatch,
	       .running		= (void *)ktstr_running,
	       .stopping	= (void *)ktstr_stopping,
	       .enable		= (void *)ktstr_enable,
	       .dump		= (void *)ktstr_dump,
	       .dump_task	= (void *)ktstr_dump_task,
	       .init		= (void *)ktstr_init,
	       .exit		= (void *)ktstr_exit,
	       .name		= "ktstr");
