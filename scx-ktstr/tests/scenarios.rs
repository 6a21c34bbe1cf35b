//! Scenarios under the fixture scheduler, end to end in real VMs: cgroups
//! of forked workers, cpusets, steps as phases, the canned scenarios.

use ktstr::prelude::*;
use ktstr::scenario::{basic, cpuset};

/// Every cgroup of the result ran `want` workers, each of which made
/// progress on some CPU.
fn all_progressed(r: &AssertResult, want: &[(&str, usize)]) -> AssertResult {
    let mut check = AssertResult::pass();
    let Some(stats) = &r.stats else {
        return AssertResult::fail("the scenario reported no stats");
    };
    let totals = stats.totals();
    let names: Vec<(&str, usize)> = totals.iter().map(|c| (c.name.as_str(), c.workers.len())).collect();
    check.check(names == want, || format!("cgroups and workers {names:?}, want {want:?}"));
    for w in totals.iter().flat_map(|c| &c.workers) {
        check.check(w.iterations > 0 && !w.cpus.is_empty(), || format!("worker {} made no progress: {w:?}", w.pid));
    }
    check
}

/// Two cgroups on four CPUs: every worker progresses (not_starved holds).
#[ktstr_test(scheduler = SCX_KTSTR, cores = 4, duration_s = 3, not_starved = true)]
fn fair_two_cgroups(ctx: &Ctx) -> Result<AssertResult> {
    let r = execute_defs(ctx, vec![CgroupDef::named("cg_a").workers(2), CgroupDef::named("cg_b").workers(2)])?;
    let check = all_progressed(&r, &[("cg_a", 2), ("cg_b", 2)]);
    Ok(r.merge(check))
}

/// Each cgroup's workers stay on its half of the CPUs, by their own
/// account of where they ran.
#[ktstr_test(scheduler = SCX_KTSTR, cores = 4, duration_s = 3)]
fn cpusets_keep_workers_on_their_cpus(ctx: &Ctx) -> Result<AssertResult> {
    let r = cpuset::disjoint_halves(ctx)?;
    let check = all_progressed(&r, &[("cg_0", 2), ("cg_1", 2)]);
    let cpusets: Vec<Option<Vec<u32>>> = r.stats.iter().flat_map(|s| s.totals()).map(|c| c.cpuset).collect();
    let mut check = check;
    check.check(cpusets == [Some(vec![0, 1]), Some(vec![2, 3])], || format!("cpusets {cpusets:?}"));
    Ok(r.merge(check))
}

/// A cgroup added and one removed between steps: two phases, each with
/// the cgroups alive in it.
#[ktstr_test(scheduler = SCX_KTSTR, cores = 2, duration_s = 3)]
fn steps_are_phases(ctx: &Ctx) -> Result<AssertResult> {
    let hold = HoldSpec::Fixed(Duration::from_millis(1500));
    let r = execute_steps(
        ctx,
        vec![
            Step::with_defs(vec![CgroupDef::named("cg_a").workers(1), CgroupDef::named("cg_b").workers(1)], hold),
            Step::new(
                vec![
                    Op::AddCgroup(CgroupDef::named("cg_c").workers(1).work_type(WorkType::YieldHeavy)),
                    Op::RemoveCgroup("cg_b".into()),
                ],
                hold,
            ),
        ],
    )?;
    let mut check = AssertResult::pass();
    let phases = &r.stats.as_ref().expect("stats").phases;
    let shape: Vec<(usize, usize, Vec<&str>)> =
        phases.iter().map(|p| (p.step, p.ops, p.cgroups.iter().map(|c| c.name.as_str()).collect())).collect();
    check.check(shape == [(0, 0, vec!["cg_a", "cg_b"]), (1, 2, vec!["cg_a", "cg_c"])], || format!("phases {shape:?}"));
    for p in phases {
        for w in p.cgroups.iter().flat_map(|c| &c.workers) {
            check.check(w.iterations > 0, || format!("phase {}: worker {} did nothing", p.step, w.pid));
        }
    }
    Ok(r.merge(check))
}

/// Spec 002's demo scenario, as written there.
fn scenario_yield_heavy(ctx: &Ctx) -> Result<AssertResult> {
    let steps = vec![Step::with_defs(
        vec![CgroupDef::named("demo_workers").work_type(WorkType::YieldHeavy).workers(4)],
        HoldSpec::Fixed(Duration::from_secs(8)),
    )];
    execute_steps(ctx, steps)
}

#[ktstr_test(scheduler = SCX_KTSTR, llcs = 1, cores = 4)]
fn demo_yield_heavy(ctx: &Ctx) -> Result<AssertResult> {
    let r = scenario_yield_heavy(ctx)?;
    let check = all_progressed(&r, &[("demo_workers", 4)]);
    Ok(r.merge(check))
}

#[ktstr_test(scheduler = SCX_KTSTR, cores = 2, duration_s = 2)]
fn basic_steady(ctx: &Ctx) -> Result<AssertResult> {
    let r = basic::steady(ctx)?;
    let check = all_progressed(&r, &[("cg_0", 1), ("cg_1", 1)]);
    Ok(r.merge(check))
}

#[ktstr_test(scheduler = SCX_KTSTR, cores = 2, duration_s = 2)]
fn basic_custom_crash_light(ctx: &Ctx) -> Result<AssertResult> {
    let r = basic::custom_crash_light(ctx)?;
    let check = all_progressed(&r, &[("cg_mixed", 2), ("cg_pingpong", 2)]);
    Ok(r.merge(check))
}
