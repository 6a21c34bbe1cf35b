//! Telemetry overhead benchmark: one SpinWait worker with telemetry off
//! and on, alternating (the order flips every round so drift in the
//! host's load favours neither), ROUNDS rounds of ~1 s each. Prints the
//! median iteration rates and their ratio against the < 2 % target.
//! The host is shared: read the ratio, not the absolute rates.

use std::time::Duration;

use ktstr::workload::{monotonic_ns, SpawnOptions, WorkType, WorkerSet};

const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_secs(1);

fn rate(telemetry: bool) -> anyhow::Result<f64> {
    let opts = SpawnOptions { epoch_ns: monotonic_ns(), telemetry };
    let mut set = WorkerSet::spawn(&[WorkType::SpinWait], &opts)?;
    set.release();
    // Skip start-up (fork, first faults) before measuring.
    std::thread::sleep(Duration::from_millis(50));
    set.take_reports();
    std::thread::sleep(ROUND);
    let report = set.stop().remove(0);
    Ok(report.iteration_rate())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for telemetry in [round % 2 == 1, round % 2 == 0] {
            let r = rate(telemetry)?;
            println!(
                "round {}: telemetry {:<3} {:>10.0} iterations/s",
                round + 1,
                if telemetry { "on" } else { "off" },
                r
            );
            if telemetry { &mut on } else { &mut off }.push(r);
        }
    }
    let (off, on) = (median(off), median(on));
    let ratio = on / off;
    println!("median telemetry off: {off:.0} iterations/s ({:.2} µs/iteration)", 1e6 / off);
    println!("median telemetry on:  {on:.0} iterations/s ({:.2} µs/iteration)", 1e6 / on);
    println!(
        "on/off ratio: {ratio:.4} (overhead {:.2} %, target < 2 %: {})",
        (1.0 - ratio) * 100.0,
        if ratio > 0.98 { "met" } else { "NOT met" }
    );
    Ok(())
}
