//! Canned scenarios any scheduler can be run against.

use anyhow::Result;

use super::{execute_defs, CgroupDef, Ctx, WorkType};
use crate::wire::verdict::AssertResult;

/// Every CPU busy: two cgroups of CPU-bound workers, one worker per CPU in
/// all, for the test's whole `duration_s`.
pub fn steady(ctx: &Ctx) -> Result<AssertResult> {
    let cpus = ctx.topology.cpus() as usize;
    execute_defs(
        ctx,
        vec![CgroupDef::named("cg_0").workers(cpus.div_ceil(2)), CgroupDef::named("cg_1").workers((cpus / 2).max(1))],
    )
}

/// A light mixed load that keeps every CPU's enqueue, dispatch and wake-up
/// paths busy (spin, yield and short sleeps, plus sleep/wake pairs), so
/// that a crash knob in a scheduler is hit within a second.
pub fn custom_crash_light(ctx: &Ctx) -> Result<AssertResult> {
    let cpus = ctx.topology.cpus() as usize;
    execute_defs(
        ctx,
        vec![
            CgroupDef::named("cg_mixed").work_type(WorkType::Mixed).workers(cpus),
            CgroupDef::named("cg_pingpong").work_type(WorkType::PingPong).workers(2),
        ],
    )
}
