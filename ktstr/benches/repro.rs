//! Auto-repro's cost: the repro VM's wall time against the primary run's,
//! side by side in one run, on spec 000's crash demo (scx-ktstr's host-
//! written crash knob on 1n1l4c1t). Each round is one failing test booted
//! cold and the same started from snapshots (both VMs): the primary VM,
//! then the repro VM with its probes. Prints each round and the median
//! ratios; nothing is asserted (the machine is shared). The target under
//! TCG on 2 cores: the repro VM at most 1.3x the primary, under 17 s.
//!
//! `cargo build -p scx-ktstr && KTSTR_SCHEDULER_SCX_KTSTR=$PWD/target/debug/scx-ktstr \
//!  cargo bench -p ktstr --bench repro` (benches build in release; the
//! scheduler is found where `cargo build` put it).

use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, RunOptions};

const ROUNDS: usize = 3;

static BPF_CRASH: BpfMapWrite = BpfMapWrite::new(".bss", "crash", 1);

#[ktstr_test(scheduler = SCX_KTSTR, llcs = 1, cores = 4, duration_s = 4, bpf_map_write = BPF_CRASH)]
fn bench_crash(ctx: &Ctx) -> Result<AssertResult> {
    ktstr::scenario::basic::custom_crash_light(ctx)
}

fn main() {
    let entry = find_test("bench_crash").expect("registered");
    let (mut ratios, mut cold_walls, mut snap_walls) = (Vec::new(), Vec::new(), Vec::new());
    println!("round  start      primary VM  repro VM  ratio  probes ready");
    for round in 1..=ROUNDS {
        for snapshot in [false, true] {
            let opts = RunOptions { snapshot: Some(snapshot), ..Default::default() };
            let f = match run_ktstr_test_with(entry, &opts) {
                Ok(_) => panic!("the crash knob did not crash the scheduler"),
                Err(f) => f,
            };
            if let Some(dir) = &f.run_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            let primary =
                f.outcome.as_ref().unwrap_or_else(|| panic!("no primary VM ran:\n{}", f.report)).vm.wall.as_secs_f64();
            let repro = f.repro.as_ref().unwrap_or_else(|| panic!("no repro VM ran:\n{}", f.report));
            let setup = repro.probe_trail.as_ref().map_or(0.0, |t| t.pipeline.setup_ms as f64 / 1000.0);
            let wall = repro.vm.wall.as_secs_f64();
            let how = if snapshot { "snapshot" } else { "cold" };
            println!("{round:>5}  {how:<9}  {primary:>9.1}s  {wall:>7.1}s  {:>5.2}  {setup:>11.1}s", wall / primary);
            ratios.push(wall / primary);
            if snapshot { &mut snap_walls } else { &mut cold_walls }.push((primary, wall));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("median repro/primary: {:.2}x (target: at most 1.3x, and under 17 s)", median(&mut ratios));
    for (how, walls) in [("cold", &cold_walls), ("snapshot", &snap_walls)] {
        let (mut p, mut r): (Vec<f64>, Vec<f64>) = walls.iter().copied().unzip();
        println!("{how:<9} median primary VM {:.1}s, repro VM {:.1}s", median(&mut p), median(&mut r));
    }
}
