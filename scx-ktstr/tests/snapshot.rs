//! Test VMs started from a snapshot of a booted guest, against cold
//! boots: the same scenarios both ways must agree (the stats' shape, the
//! crash, auto-repro's call path), and each run's diagnostics say how it
//! started. The `payload_*` tests are the guest halves.

use ktstr::outcome::RunOutcome;
use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, KtstrFailure, RunOptions};

static CRASH: BpfMapWrite = BpfMapWrite::new(".bss", "crash", 1);

#[ktstr_test(scheduler = SCX_KTSTR, duration_s = 2)]
#[ignore = "guest half of a_scenario_runs_the_same_from_a_snapshot"]
fn payload_snapshot_steady(ctx: &Ctx) -> Result<AssertResult> {
    ktstr::scenario::basic::steady(ctx)
}

#[ktstr_test(scheduler = SCX_KTSTR, duration_s = 3, bpf_map_write = CRASH)]
#[ignore = "guest half of a_crash_and_its_auto_repro_are_the_same_from_a_snapshot"]
fn payload_snapshot_crash(ctx: &Ctx) -> Result<AssertResult> {
    ktstr::scenario::basic::custom_crash_light(ctx)
}

fn run(payload: &str, snapshot: bool, auto_repro: bool) -> Result<RunOutcome, KtstrFailure> {
    let entry = find_test(payload).expect("payload registered");
    run_ktstr_test_with(
        entry,
        &RunOptions { snapshot: Some(snapshot), auto_repro: Some(auto_repro), ..Default::default() },
    )
}

/// (cgroup, workers) of every phase.
fn shape(o: &RunOutcome) -> Vec<Vec<(String, usize)>> {
    let stats = o.result.as_ref().and_then(|r| r.stats.as_ref()).expect("stats");
    stats.phases.iter().map(|p| p.cgroups.iter().map(|c| (c.name.clone(), c.workers.len())).collect()).collect()
}

#[test]
fn a_scenario_runs_the_same_from_a_snapshot() {
    let cold = run("payload_snapshot_steady", false, false).unwrap_or_else(|f| panic!("cold:\n{}", f.report));
    let snap = run("payload_snapshot_steady", true, false).unwrap_or_else(|f| panic!("snapshot:\n{}", f.report));
    // The first start from a snapshot left (or found) the one with this
    // binary's base image unpacked: the second starts from that.
    let again = run("payload_snapshot_steady", true, false).unwrap_or_else(|f| panic!("again:\n{}", f.report));
    for (o, how) in [(&cold, "cold"), (&snap, "snapshot"), (&again, "again")] {
        eprintln!("{how}: {} ({:.2}s)", o.vm.start, o.vm.wall.as_secs_f64());
    }
    assert!(cold.vm.start.starts_with("booted cold: snapshots are off"), "{}", cold.vm.start);
    assert!(snap.vm.start.starts_with("started from snapshot "), "{}", snap.vm.start);
    assert!(again.vm.start.contains(" with the base image unpacked "), "{}", again.vm.start);
    assert_eq!(shape(&cold), shape(&snap));
    assert_eq!(shape(&cold), shape(&again));
    for (o, how) in [(&cold, "cold"), (&snap, "snapshot"), (&again, "again")] {
        let workers: Vec<u64> = o
            .result
            .iter()
            .flat_map(|r| r.stats.iter())
            .flat_map(|s| s.totals())
            .flat_map(|c| c.workers)
            .map(|w| w.iterations)
            .collect();
        assert!(!workers.is_empty() && workers.iter().all(|&i| i > 0), "{how}: {workers:?}");
        let m = o.monitor.as_ref().expect("monitored");
        assert_eq!(m.unavailable, None, "{how}: the monitor reads guest RAM");
        assert!(m.samples.len() >= 5, "{how}: {} samples", m.samples.len());
    }
}

/// The functions of auto-repro's trail, in order, without repeats.
fn call_path(f: &KtstrFailure) -> Vec<String> {
    let trail = f.repro.as_ref().and_then(|r| r.probe_trail.as_ref()).expect("a probe trail");
    let mut path: Vec<String> = Vec::new();
    for e in &trail.events {
        let name = trail.funcs.iter().find(|f| f.id == e.func).map(|f| f.name.clone()).unwrap_or_default();
        if path.last() != Some(&name) {
            path.push(name);
        }
    }
    path
}

#[test]
fn a_crash_and_its_auto_repro_are_the_same_from_a_snapshot() {
    let cold = run("payload_snapshot_crash", false, true).expect_err("the crash knob crashes the scheduler");
    let snap = run("payload_snapshot_crash", true, true).expect_err("the crash knob crashes the scheduler");
    let summary = |f: &KtstrFailure| f.outcome.as_ref().and_then(|o| o.bug_summary.clone());
    assert!(summary(&cold).is_some_and(|s| s.contains("ktstr: host-triggered crash")), "{}", cold.report);
    assert_eq!(summary(&cold), summary(&snap));
    assert!(snap.report.contains("vm start: started from snapshot "), "{}", snap.report);
    let repro_start = snap.repro.as_ref().map(|r| r.vm.start.clone()).unwrap_or_default();
    assert!(repro_start.starts_with("started from snapshot "), "the repro VM: {repro_start}");
    let (pc, ps) = (call_path(&cold), call_path(&snap));
    let tail = |p: &[String]| p[p.len().saturating_sub(12)..].join(" > ");
    eprintln!("cold, last calls: {}\nsnapshot, last calls: {}", tail(&pc), tail(&ps));
    // Both trails follow the crash path: which calls fall in the window
    // before the exit varies run to run, but both see the scheduler's
    // own callbacks on it.
    let callbacks = |p: &[String]| p.iter().filter(|f| f.starts_with("ktstr_")).cloned().collect::<Vec<_>>();
    assert!(!callbacks(&pc).is_empty() && !callbacks(&ps).is_empty(), "cold {}, snapshot {}", tail(&pc), tail(&ps));
    assert!(callbacks(&pc).iter().any(|f| callbacks(&ps).contains(f)), "cold {}, snapshot {}", tail(&pc), tail(&ps));
}
