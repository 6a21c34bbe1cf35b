//! Scenarios under the kernel's default scheduler (EEVDF): cgroups,
//! forked workers and their reports, end to end in a real VM.

use ktstr::prelude::*;

/// Two cgroups of two CPU-bound workers on four CPUs: everyone progresses.
#[ktstr_test(cores = 4, duration_s = 3, not_starved = true)]
fn eevdf_two_cgroups_progress(ctx: &Ctx) -> Result<AssertResult> {
    let r = execute_defs(ctx, vec![CgroupDef::named("cg_a").workers(2), CgroupDef::named("cg_b").workers(2)])?;
    let stats = r.stats.as_ref().expect("a scenario reports stats");
    let totals = stats.totals();
    let mut check = AssertResult::pass();
    check.check(totals.len() == 2, || format!("{} cgroups in the stats, want 2", totals.len()));
    for c in &totals {
        check.check(c.workers.len() == 2, || format!("{}: {} workers, want 2", c.name, c.workers.len()));
        for w in &c.workers {
            check.check(w.iterations > 0 && !w.cpus.is_empty() && w.run_ns > 0, || {
                format!("{}: worker {} reported {w:?}", c.name, w.pid)
            });
        }
    }
    Ok(r.merge(check))
}
