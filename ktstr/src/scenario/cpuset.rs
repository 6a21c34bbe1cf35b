//! Cpuset scenarios: cgroups confined to parts of the machine.

use anyhow::Result;

use super::{execute_defs, CgroupDef, CpusetSpec, Ctx};
use crate::wire::topology::format_cpu_list;
use crate::wire::verdict::AssertResult;

/// Two cgroups on disjoint halves of the CPUs, each with one CPU-bound
/// worker per CPU it owns. Fails if any worker ran outside its cgroup's
/// cpuset (from the CPUs the workers saw themselves run on).
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
