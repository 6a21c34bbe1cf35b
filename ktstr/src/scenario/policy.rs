//! Scheduling policies and weights: nice values, cgroup weights, batch
//! and idle tasks, and a real-time task preempting sched_ext's.

use anyhow::Result;

use super::{execute_defs, execute_steps, CgroupDef, CpusetSpec, Ctx, HoldSpec, Op, SchedPolicy, Step, WorkType};
use crate::wire::verdict::AssertResult;

/// Two cgroups of CPU-bound workers, one per CPU each, whose weights
/// change while they run: one's workers are reniced (to 10, then -5),
/// the other's `cpu.weight` moves (to 400, then 50), a third of the run
/// apart.
///
/// Drives: ops.set_weight, ops.cgroup_set_weight, ops.enqueue, ops.dispatch.
pub fn nice_churn(ctx: &Ctx) -> Result<AssertResult> {
    let third = HoldSpec::Frac(1.0 / 3.0);
    let (a, b) = (String::from("cg_nice"), String::from("cg_weight"));
    execute_steps(
        ctx,
        vec![
            Step::with_defs(vec![CgroupDef::named(&a), CgroupDef::named(&b)], third),
            Step::new(vec![Op::SetPolicy(a.clone(), SchedPolicy::Normal(10)), Op::SetWeight(b.clone(), 400)], third),
            Step::new(vec![Op::SetPolicy(a, SchedPolicy::Normal(-5)), Op::SetWeight(b, 50)], third),
        ],
    )
}

/// A SCHED_FIFO worker on CPU 0, computing ~2 ms and sleeping ~1 ms in
/// turn, beside one CPU-bound sched_ext worker per CPU: CPU 0 keeps being
/// taken from sched_ext and given back, and its waiting tasks must go
/// elsewhere or wait.
///
/// Drives: ops.cpu_release, ops.cpu_acquire, ops.enqueue, ops.dispatch.
pub fn rt_hog(ctx: &Ctx) -> Result<AssertResult> {
    execute_defs(
        ctx,
        vec![
            CgroupDef::named("cg_rt")
                .work_type(WorkType::Bursty)
                .workers(1)
                .with_cpuset(CpusetSpec::Cpus(vec![0]))
                .policy(SchedPolicy::Fifo(50)),
            CgroupDef::named("cg_ext"),
        ],
    )
}

/// CPU-bound SCHED_NORMAL, SCHED_BATCH and SCHED_IDLE workers side by
/// side: half a worker per CPU each of normal and batch, one idle one.
/// The kernel gives the idle one the lowest weight there is (3 against
/// 100): a weighted-fair scheduler lets it wait ~33 slices for each one
/// it runs, so it is kept few tasks to wait behind, to stay within the
/// watchdog's 2 s; it must still make progress.
///
/// Drives: ops.set_weight, ops.enable, ops.enqueue, ops.dispatch.
pub fn batch_idle_mix(ctx: &Ctx) -> Result<AssertResult> {
    let half = (ctx.topology.cpus() as usize / 2).max(1);
    execute_defs(
        ctx,
        vec![
            CgroupDef::named("cg_normal").workers(half),
            CgroupDef::named("cg_batch").policy(SchedPolicy::Batch).workers(half),
            CgroupDef::named("cg_idle").policy(SchedPolicy::Idle).workers(1),
        ],
    )
}
