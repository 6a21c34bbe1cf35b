//! Canned scenarios any scheduler can be run against.

use anyhow::Result;

use super::{execute_defs, CgroupDef, Ctx, WorkType};
use crate::wire::verdict::AssertResult;

/// Every CPU busy: two cgroups of CPU-bound workers, one worker per CPU in
/// all, for the test's whole `duration_s`.
///
/// Drives: ops.enqueue, ops.dispatch, ops.running, ops.stopping, ops.tick.
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
///
/// Drives: ops.select_cpu, ops.enqueue, ops.dispatch, ops.yield, ops.runnable.
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

/// Four CPU-bound workers per CPU in two cgroups: queues on every CPU, so
/// slices expire and tasks go round through the scheduler's queues.
///
/// Drives: ops.enqueue, ops.dispatch, ops.tick, ops.running, ops.stopping.
pub fn oversubscribed(ctx: &Ctx) -> Result<AssertResult> {
    let cpus = ctx.topology.cpus() as usize;
    execute_defs(ctx, vec![CgroupDef::named("cg_0").workers(2 * cpus), CgroupDef::named("cg_1").workers(2 * cpus)])
}

/// Two PingPong pairs per CPU: each worker wakes its partner and sleeps
/// until woken, thousands of times a second.
///
/// Drives: ops.select_cpu, ops.runnable, ops.quiescent, ops.enqueue.
pub fn sleep_wake_pairs(ctx: &Ctx) -> Result<AssertResult> {
    let cpus = ctx.topology.cpus() as usize;
    execute_defs(ctx, vec![CgroupDef::named("cg_pairs").work_type(WorkType::PingPong).workers(4 * cpus)])
}

/// A mostly idle machine: one worker per CPU sleeping ~20 ms, then
/// computing ~2 ms, so CPUs keep going idle and being woken.
///
/// Drives: ops.select_cpu, ops.update_idle, ops.runnable, ops.quiescent.
pub fn idle_bursts(ctx: &Ctx) -> Result<AssertResult> {
    execute_defs(ctx, vec![CgroupDef::named("cg_idle").work_type(WorkType::IdleBurst)])
}
