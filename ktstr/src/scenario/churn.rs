//! Tasks and their groups changing under the scheduler: processes and
//! threads coming and going, running tasks moved between cgroups.

use anyhow::Result;

use super::{execute_defs, execute_steps, CgroupDef, Ctx, HoldSpec, Op, Step, WorkType};
use crate::wire::verdict::AssertResult;

/// One worker per CPU forking a short-lived child (or, every other time,
/// a thread) and waiting for it, beside half as many CPU-bound workers:
/// hundreds of tasks a second join sched_ext and leave it.
///
/// Drives: ops.init_task, ops.enable, ops.exit_task, ops.disable, ops.select_cpu.
pub fn fork_exit_churn(ctx: &Ctx) -> Result<AssertResult> {
    let cpus = ctx.topology.cpus() as usize;
    execute_defs(
        ctx,
        vec![
            CgroupDef::named("cg_forks").work_type(WorkType::ForkExit),
            CgroupDef::named("cg_spin").workers(cpus.div_ceil(2)),
        ],
    )
}

/// Two cgroups; a third of the way in, the first's running CPU-bound
/// workers (one per CPU) move into the second, and at two thirds back.
///
/// Drives: ops.cgroup_prep_move, ops.cgroup_move, ops.enqueue, ops.dispatch.
pub fn cgroup_move(ctx: &Ctx) -> Result<AssertResult> {
    let third = HoldSpec::Frac(1.0 / 3.0);
    let (a, b) = (String::from("cg_from"), String::from("cg_to"));
    execute_steps(
        ctx,
        vec![
            Step::with_defs(vec![CgroupDef::named(&a), CgroupDef::named(&b).workers(1)], third),
            Step::new(vec![Op::MoveWorkers(a.clone(), b.clone())], third),
            Step::new(vec![Op::MoveWorkers(a.clone(), a)], third),
        ],
    )
}
