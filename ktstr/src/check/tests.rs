//! The detail-line catalog, shape by shape, and which thresholds fire.

use super::*;
use crate::scenario::{CgroupStats, PhaseStats, ScenarioStats};

fn worker(pid: u32, iterations: u64, off_cpu_pct: f64) -> WorkerReport {
    let wall_ns = 2_000_000_000;
    WorkerReport {
        pid,
        iterations,
        wall_ns,
        run_ns: (wall_ns as f64 * (1.0 - off_cpu_pct / 100.0)) as u64,
        cpus: vec![0, 1],
        ..Default::default()
    }
}

fn one_phase(cgroups: Vec<(&str, Vec<WorkerReport>)>) -> ScenarioStats {
    ScenarioStats {
        phases: vec![PhaseStats {
            step: 0,
            ops: 0,
            duration_ms: 2000,
            cgroups: cgroups
                .into_iter()
                .map(|(n, workers)| CgroupStats { name: n.into(), cpuset: None, workers })
                .collect(),
        }],
        ..Default::default()
    }
}

#[test]
fn rate_line_shape() {
    let w = WorkerReport { pid: 71, iterations: 83_807, wall_ns: 2_000_000_000, ..Default::default() };
    assert_eq!(rate_line(&w, 50_000_000.0), "worker 71 iteration rate 41903.5/s below floor 50000000.0/s");
}

#[test]
fn starved_line_shape() {
    assert_eq!(starved_line(&worker(97, 0, 100.0)), "tid 97 starved (0 work units)");
}

#[test]
fn stuck_line_shape() {
    let w = WorkerReport {
        pid: 97,
        max_gap_ns: 2_345_678_901,
        max_gap_cpu: 3,
        max_gap_at_ns: 1_250_000_000,
        ..Default::default()
    };
    assert_eq!(stuck_line(&w, 2000), "tid 97 stuck 2345ms on cpu3 at +1250ms (threshold 2000ms)");
}

#[test]
fn unfair_line_shape() {
    let s = Spread { pct: 37.5, lo: 2.5, hi: 40.0 };
    assert_eq!(
        unfair_line(&s, 4, 2, 25.0),
        "unfair cgroup: spread=37.5% (2.5-40.0%) 4 workers on 2 cpus (threshold 25.0%)"
    );
}

#[test]
fn each_threshold_fires_only_past_its_limit() {
    let stats = one_phase(vec![
        ("cg_a", vec![worker(1, 1000, 10.0), worker(2, 0, 100.0)]),
        ("cg_b", vec![worker(3, 5000, 5.0), worker(4, 5000, 6.0)]),
    ]);
    // Defaults: only the starved worker.
    assert_eq!(evaluate(&stats, &Checks::DEFAULT), ["tid 2 starved (0 work units)"]);
    // A spread limit between cg_b's 1% and cg_a's 90%.
    let spread_only = Checks { max_spread_pct: Some(20.0), ..Checks::NONE };
    assert_eq!(
        evaluate(&stats, &spread_only),
        ["unfair cgroup: spread=90.0% (10.0-100.0%) 2 workers on 2 cpus (threshold 20.0%)"]
    );
    // A rate floor of 1000/s: 500/s and 0/s are below, 2500/s is not.
    let floor = Checks { min_iteration_rate: Some(1000.0), ..Checks::NONE };
    assert_eq!(
        evaluate(&stats, &floor),
        ["worker 1 iteration rate 500.0/s below floor 1000.0/s", "worker 2 iteration rate 0.0/s below floor 1000.0/s"]
    );
    assert!(evaluate(&stats, &Checks::NONE).is_empty());
}

#[test]
fn gaps_are_checked_over_the_whole_run() {
    let mut stats = one_phase(vec![("cg", vec![worker(5, 10, 0.0)])]);
    let mut later = stats.phases[0].clone();
    later.step = 1;
    later.cgroups[0].workers[0].max_gap_ns = 2_500_000_000;
    later.cgroups[0].workers[0].max_gap_cpu = 1;
    later.cgroups[0].workers[0].max_gap_at_ns = 3_000_000_000;
    stats.phases.push(later);
    assert_eq!(evaluate(&stats, &Checks::DEFAULT), ["tid 5 stuck 2500ms on cpu1 at +3000ms (threshold 2000ms)"]);
}

#[test]
fn test_overrides_scheduler_overrides_default() {
    let sched = Checks { max_gap_ms: Some(500), not_starved: Some(false), ..Checks::NONE };
    let test = Checks { max_gap_ms: Some(100), ..Checks::NONE };
    let c = test.or(sched).or(Checks::DEFAULT);
    assert_eq!(c.max_gap_ms, Some(100));
    assert_eq!(c.not_starved, Some(false));
    assert_eq!(c.min_iteration_rate, None);
    assert_eq!(Checks::NONE.or(Checks::DEFAULT), Checks::DEFAULT);
}
