//! Where tasks may run: cpusets, a task's own CPU mask, CPUs going offline.

use anyhow::Result;

use super::{execute_defs, execute_steps, CgroupDef, CpusetSpec, Ctx, HoldSpec, Op, Step, WorkType};
use crate::wire::topology::format_cpu_list;
use crate::wire::verdict::AssertResult;

/// Two cgroups on disjoint halves of the CPUs, each with one CPU-bound
/// worker per CPU it owns. Fails if any worker ran outside its cgroup's
/// cpuset (from the CPUs the workers saw themselves run on).
///
/// Drives: ops.set_cpumask, ops.enqueue, ops.dispatch.
pub fn disjoint_halves(ctx: &Ctx) -> Result<AssertResult> {
    let result = execute_defs(
        ctx,
        vec![
            CgroupDef::named("cg_0").with_cpuset(CpusetSpec::Disjoint { index: 0, of: 2 }),
            CgroupDef::named("cg_1").with_cpuset(CpusetSpec::Disjoint { index: 1, of: 2 }),
        ],
    )?;
    Ok(check_containment(result))
}

/// Adds a detail line for every worker of a cpuset cgroup seen on a CPU
/// outside its cpuset, or on none at all (nothing to judge by).
pub(crate) fn check_containment(mut result: AssertResult) -> AssertResult {
    let totals = result.stats.as_ref().map(|s| s.totals()).unwrap_or_default();
    for c in &totals {
        let Some(allowed) = &c.cpuset else { continue };
        for w in &c.workers {
            result.check(!w.cpus.is_empty(), || format!("cgroup {}: tid {} reported no cpus", c.name, w.pid));
            let outside: Vec<u32> = w.cpus.iter().copied().filter(|cpu| !allowed.contains(cpu)).collect();
            result.check(outside.is_empty(), || {
                format!(
                    "cgroup {}: tid {} ran on cpus {} outside its cpuset {}",
                    c.name,
                    w.pid,
                    format_cpu_list(outside.iter().copied()),
                    format_cpu_list(allowed.iter().copied())
                )
            });
        }
    }
    result
}

/// One CPU-bound worker per CPU in one cgroup whose cpuset shrinks to the
/// first half of the CPUs for the middle third of the run, then grows back.
///
/// Drives: ops.set_cpumask, ops.enqueue, ops.dispatch.
pub fn cpuset_shrink_grow(ctx: &Ctx) -> Result<AssertResult> {
    let all = CpusetSpec::Cpus(ctx.cpus());
    let third = HoldSpec::Frac(1.0 / 3.0);
    execute_steps(
        ctx,
        vec![
            Step::with_defs(vec![CgroupDef::named("cg_shrink").with_cpuset(all.clone())], third),
            Step::new(vec![Op::SetCpuset("cg_shrink".into(), CpusetSpec::Disjoint { index: 0, of: 2 })], third),
            Step::new(vec![Op::SetCpuset("cg_shrink".into(), all)], third),
        ],
    )
}

/// One worker per CPU, plus one, each narrowing its own CPU mask to a
/// single CPU (a different one each time) and widening it back, every few
/// iterations.
///
/// Drives: ops.set_cpumask, ops.select_cpu, ops.enqueue, ops.dispatch.
pub fn affinity_churn(ctx: &Ctx) -> Result<AssertResult> {
    let cpus = ctx.topology.cpus() as usize;
    execute_defs(ctx, vec![CgroupDef::named("cg_affinity").work_type(WorkType::AffinityChurn).workers(cpus + 1)])
}

/// One CPU-bound worker per CPU; the last CPU goes offline for the middle
/// third of the run and comes back. A scheduler without ops.cpu_offline
/// and ops.cpu_online is ended by the kernel at the first hotplug event
/// (scx_utils schedulers then restart): that shows as the scheduler
/// leaving sched_ext.
///
/// Drives: ops.cpu_offline, ops.cpu_online, ops.enqueue, ops.dispatch.
pub fn cpu_hotplug(ctx: &Ctx) -> Result<AssertResult> {
    let last = ctx.topology.cpus() - 1;
    anyhow::ensure!(last > 0, "cpu_hotplug needs at least 2 CPUs: CPU 0 stays online");
    let third = HoldSpec::Frac(1.0 / 3.0);
    execute_steps(
        ctx,
        vec![
            Step::with_defs(vec![CgroupDef::named("cg_hotplug")], third),
            Step::new(vec![Op::CpuOffline(last)], third),
            Step::new(vec![Op::CpuOnline(last)], third),
        ],
    )
}
