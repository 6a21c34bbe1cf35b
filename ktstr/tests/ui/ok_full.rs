use ktstr::prelude::*;

#[ktstr_test(numa_nodes = 2, llcs = 4, cores = 2, threads = 2, memory_mb = 1024, duration_s = 3,
             scheduler = SCX_KTSTR, extra_sched_args = ["--slice-us", "5000"],
             not_starved = false, max_gap_ms = 500, max_spread_pct = 25, min_iteration_rate = 1000.5,
             max_imbalance_ratio = 3, max_local_dsq_depth = 0, fail_on_stall = true, sustained_samples = 5,
             max_fallback_rate = 10.5, max_keep_last_rate = 100,
             gauntlet = ["tiny-1llc", "smt-2llc", "odd-3llc", "numa-2n", "big-32"],
             include_files = ["tests/fixtures/guest-files", "Cargo.toml"])]
fn full(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
