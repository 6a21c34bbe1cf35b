//! The monitor's cost on the workload it watches: a spin workload's
//! iteration rate with the monitor on and off, side by side in one run,
//! alternating (the order flips every round so drift in the shared
//! host's load favours neither). Each round is one VM per side.
//!
//! "On" carries everything the monitor brings: the guest RAM in a shared
//! file, the host sampling every 100 ms, the guest's symbol lookup before
//! the workload and the counters it switches on (bpf_stats_enabled,
//! sched_schedstats). Prints each round, then the median of the rounds'
//! on/off ratios (the pair of a round runs back to back, under the same
//! host load, while the load itself swings the absolute rates by tens of
//! percent from round to round here) against the < 1 % target, the
//! medians of the rates themselves, and the host's time per sample.
//! Nothing is asserted: the machine is shared.
//!
//! `cargo build -p scx-ktstr && KTSTR_SCHEDULER_SCX_KTSTR=target/debug/scx-ktstr \
//!  cargo bench -p ktstr --bench monitor`

use ktstr::outcome::RunOutcome;
use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, RunOptions};

const ROUNDS: usize = 5;

/// Two spinning workers on the guest's two CPUs, under scx-ktstr.
#[ktstr_test(scheduler = SCX_KTSTR, cores = 2, duration_s = 3)]
fn bench_monitor_spin(ctx: &Ctx) -> Result<AssertResult> {
    execute_defs(ctx, vec![CgroupDef::named("spin").workers(2)])
}

fn run(monitor: bool) -> anyhow::Result<RunOutcome> {
    let entry = find_test("bench_monitor_spin").expect("bench test registered");
    let opts = RunOptions { monitor: Some(monitor), auto_repro: Some(false), ..Default::default() };
    run_ktstr_test_with(entry, &opts).map_err(|f| anyhow::anyhow!("{}", f.report))
}

/// Iterations per second of all workers together.
fn rate(o: &RunOutcome) -> f64 {
    let stats = o.result.as_ref().and_then(|r| r.stats.as_ref()).expect("scenario stats");
    stats.totals().iter().flat_map(|c| &c.workers).map(|w| w.iteration_rate()).sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let kernel = ktstr::kernel::ensure(None)?;
    println!("kernel: {}", kernel.release);
    let (mut off, mut on, mut per_sample, mut wall) = (Vec::new(), Vec::new(), Vec::new(), [Vec::new(), Vec::new()]);
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        for monitor in [round % 2 == 1, round % 2 == 0] {
            let o = run(monitor)?;
            let r = rate(&o);
            let mut line = format!(
                "round {}: monitor {:<3} {:>10.0} iterations/s, VM {:.1}s",
                round + 1,
                if monitor { "on" } else { "off" },
                r,
                o.vm.wall.as_secs_f64()
            );
            wall[monitor as usize].push(o.vm.wall.as_secs_f64());
            if let Some(m) = o.monitor.as_ref().filter(|_| monitor) {
                anyhow::ensure!(m.unavailable.is_none(), "monitor unavailable: {:?}", m.unavailable);
                let us = m.sampling_us as f64 / m.samples.len().max(1) as f64;
                line += &format!(", {} samples, {us:.0} µs each on the host", m.samples.len());
                per_sample.push(us);
            }
            println!("{line}");
            if monitor { &mut on } else { &mut off }.push(r);
        }
        let ratio = on[round] / off[round];
        println!("round {}: on/off {ratio:.4}", round + 1);
        ratios.push(ratio);
    }
    let ratio = median(ratios);
    println!("median monitor off: {:.0} iterations/s, on: {:.0} iterations/s", median(off), median(on));
    println!(
        "median of the rounds' on/off ratios: {ratio:.4} (cost {:.2} %, target < 1 %: {})",
        (1.0 - ratio) * 100.0,
        if ratio > 0.99 { "met" } else { "NOT met" }
    );
    println!(
        "median host time per sample: {:.0} µs; median VM wall: off {:.1}s, on {:.1}s",
        median(per_sample),
        median(wall[0].clone()),
        median(wall[1].clone())
    );
    Ok(())
}
