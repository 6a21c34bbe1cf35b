//! Auto-repro's cost: the repro VM's wall time against the primary run's,
//! side by side in one run, on spec 000's crash demo (scx-ktstr's host-
//! written crash knob on 1n1l4c1t). Each round is one failing test: the
//! primary VM, then the repro VM with its probes. Prints each round and
//! the median ratio; nothing is asserted (the machine is shared). The
//! issue's target under TCG on 2 cores: at most 1.3x the primary, under
//! 17 s.
//!
//! `cargo build -p scx-ktstr && KTSTR_SCHEDULER_SCX_KTSTR=target/debug/scx-ktstr \
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
    let mut ratios = Vec::new();
    println!("round  primary VM  repro VM  ratio  probes ready");
    for round in 1..=ROUNDS {
        let f = match run_ktstr_test_with(entry, &RunOptions::default()) {
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
        println!("{round:>5}  {primary:>9.1}s  {wall:>7.1}s  {:>5.2}  {setup:>11.1}s", wall / primary);
        ratios.push(wall / primary);
    }
    ratios.sort_by(f64::total_cmp);
    println!("median repro/primary: {:.2}x (target: at most 1.3x, and under 17 s)", ratios[ratios.len() / 2]);
}
