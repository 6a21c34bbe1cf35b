//! Two figures measured in the guest (QEMU/TCG), where they matter:
//!
//! Telemetry cost: one spin worker with telemetry off, then on, alternating
//! 3 rounds of 1 s each inside one VM; the on/off ratio of the medians.
//! (`--bench workload` measures the same natively on the host.)
//!
//! Scenario set-up cost: from the moment the test body starts in the guest
//! to the first iteration of the last worker (fork, cgroup creation and
//! placement, release), as `ScenarioStats::setup_ms` reports it, for 4 and
//! 16 workers on 1n1l4c1t under EEVDF, 5 runs each. Prints medians and the
//! cost per worker; nothing is asserted (the machine is shared).
//!
//! `cargo bench -p ktstr --bench scenario`

use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, RunOptions};
use ktstr::workload::{SpawnOptions, WorkerSet};

const ROUNDS: usize = 5;

#[ktstr_test(cores = 4, duration_s = 1)]
fn bench_setup_4(ctx: &Ctx) -> Result<AssertResult> {
    execute_defs(ctx, vec![CgroupDef::named("cg_a").workers(2), CgroupDef::named("cg_b").workers(2)])
}

#[ktstr_test(cores = 4, duration_s = 1)]
fn bench_setup_16(ctx: &Ctx) -> Result<AssertResult> {
    execute_defs(ctx, (0..4).map(|i| CgroupDef::named(format!("cg_{i}")).workers(4)).collect())
}

/// Reports `off <rate>` and `on <rate>` detail lines (the verdict passes).
#[ktstr_test(cores = 2, duration_s = 8)]
fn bench_telemetry(_ctx: &Ctx) -> Result<AssertResult> {
    let mut r = AssertResult::pass();
    for _ in 0..3 {
        for telemetry in [false, true] {
            let set = WorkerSet::spawn(&[WorkType::SpinWait], &SpawnOptions { telemetry, ..Default::default() })?;
            set.release();
            std::thread::sleep(Duration::from_secs(1));
            let rate = set.stop()[0].iteration_rate();
            r.details.push(format!("{} {rate:.1}", if telemetry { "on" } else { "off" }));
        }
    }
    Ok(r)
}

fn telemetry_cost() -> anyhow::Result<()> {
    let entry = find_test("bench_telemetry").expect("bench test registered");
    let outcome = run_ktstr_test_with(entry, &RunOptions::default()).map_err(|f| anyhow::anyhow!("{}", f.report))?;
    let details = outcome.result.map(|r| r.details).unwrap_or_default();
    let median = |kind: &str| {
        let mut v: Vec<f64> = details.iter().filter_map(|d| d.strip_prefix(kind)?.trim().parse().ok()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!("guest spin worker, rounds: {}", details.join(", "));
    let (off, on) = (median("off "), median("on "));
    println!("median telemetry off: {off:.1}/s, on: {on:.1}/s, on/off ratio {:.4} (target: cost < 2%)\n", on / off);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let kernel = ktstr::kernel::ensure(None)?;
    println!("kernel: {}", kernel.release);
    telemetry_cost()?;
    let mut medians = Vec::new();
    for (test, workers) in [("bench_setup_4", 4u64), ("bench_setup_16", 16)] {
        let entry = find_test(test).expect("bench test registered");
        let mut ms = Vec::new();
        for round in 0..ROUNDS {
            let outcome =
                run_ktstr_test_with(entry, &RunOptions::default()).map_err(|f| anyhow::anyhow!("{}", f.report))?;
            let setup = outcome.result.as_ref().and_then(|r| r.stats.as_ref()).and_then(|s| s.setup_ms);
            let setup = setup.ok_or_else(|| anyhow::anyhow!("{test}: no setup_ms in the result"))?;
            println!("{test} round {}: set-up {setup} ms", round + 1);
            ms.push(setup);
        }
        ms.sort_unstable();
        medians.push((workers, ms[ROUNDS / 2]));
    }
    println!();
    for (workers, median) in &medians {
        println!(
            "{workers:>2} workers: median set-up {median} ms ({:.1} ms per worker)",
            *median as f64 / *workers as f64
        );
    }
    let (small, large) = (medians[0], medians[1]);
    println!(
        "marginal cost per extra worker: {:.1} ms",
        (large.1 as f64 - small.1 as f64) / (large.0 - small.0) as f64
    );
    Ok(())
}
