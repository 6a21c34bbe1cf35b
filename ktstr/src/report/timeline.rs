//! `--- timeline ---`: the run phase by phase. With the monitor's
//! samples, each phase line says how many fell in it and a line of their
//! figures follows; without them those are left out rather than printed
//! as zeros.
//!
//! Samples go to phases by time: a sample's `at_ms` counts from the
//! workload's start as the host saw it (within a 10 ms poll), and phases
//! follow each other from that start, each lasting its `duration_ms`.

use std::fmt::Write;

use crate::monitor::summary::Figures;
use crate::monitor::MonitorReport;
use crate::scenario::{CgroupStats, PhaseStats, ScenarioStats};
use crate::wire::topology::Topology;

pub(crate) struct TimelineHeader<'a> {
    pub topology: Topology,
    pub scheduler: Option<&'a str>,
    pub scenario: &'a str,
}

pub fn render(h: &TimelineHeader, stats: &ScenarioStats, monitor: Option<&MonitorReport>) -> String {
    let mut s = format!(
        "topology: {} ({} cpus) scheduler: {} scenario: {} duration: {:.1}s\n",
        h.topology,
        h.topology.cpus(),
        h.scheduler.unwrap_or("eevdf"),
        h.scenario,
        stats.duration_ms() as f64 / 1000.0
    );
    let mut start_ms = 0u64;
    for (n, p) in stats.phases.iter().enumerate() {
        let end_ms = start_ms.saturating_add(p.duration_ms);
        let head = format!("Phase {}: StepStart[{}] ops={} ({}ms", n + 1, p.step, p.ops, p.duration_ms);
        match monitor.filter(|m| m.unavailable.is_none()) {
            Some(m) => {
                let samples: Vec<_> =
                    m.samples.iter().filter(|x| (start_ms..end_ms).contains(&x.at_ms)).cloned().collect();
                let _ = writeln!(s, "{head}, {} samples):", samples.len());
                let _ = writeln!(s, "{}", monitor_line(&Figures::of(&samples, &m.event_names), p));
            }
            None => {
                let _ = writeln!(s, "{head}):");
            }
        }
        start_ms = end_ms;
        s.push_str("per-cgroup:\n");
        for c in &p.cgroups {
            let _ = writeln!(s, "{}", cgroup_line(c));
        }
    }
    for p in &stats.phases {
        let workers: usize = p.cgroups.iter().map(|c| c.workers.len()).sum();
        let _ =
            writeln!(s, ">>> StepStart[{}]: ops={} ({} cgroups, {workers} workers)", p.step, p.ops, p.cgroups.len());
    }
    if let Some(t) = &stats.watchdog {
        let _ = writeln!(s, ">>> watchdog: tid {} in {} stuck {}ms", t.pid, t.cgroup, t.stuck_ms);
    }
    if let Some((phase, ms)) = stats.scheduler_gone {
        let step = stats.phases.get(phase).map_or(phase, |p| p.step);
        let _ = writeln!(s, ">>> scheduler left sched_ext: StepStart[{step}] +{ms}ms; scenario ended early");
    }
    s
}

/// `imbalance: avg= max= | dsq: avg= max= | nr_run: avg= | fallback: N/s |
/// keep_last: N/s | throughput: N iter/s (stimulus-derived)`: the
/// monitor's figures over the phase's samples, and the workers' own
/// iteration count over the phase's length.
pub(crate) fn monitor_line(f: &Figures, p: &PhaseStats) -> String {
    let rate = |name: &str| f.event(name).map_or("n/a".into(), |c| format!("{:.0}/s", c.per_s));
    let iters = p.cgroups.iter().fold(0u64, |n, c| n.saturating_add(c.iterations()));
    let throughput = if p.duration_ms > 0 { iters as f64 * 1000.0 / p.duration_ms as f64 } else { 0.0 };
    format!(
        "imbalance: avg={:.1} max={:.1} | dsq: avg={:.0} max={} | nr_run: avg={:.1} | fallback: {} | keep_last: {} | \
         throughput: {throughput:.0} iter/s (stimulus-derived)",
        f.avg_imbalance,
        f.max_imbalance,
        f.avg_dsq,
        f.max_dsq_depth,
        f.avg_nr_running,
        rate("fallback"),
        rate("keep_last"),
    )
}

/// `name: off-cpu avg= min= max= spread= | run-delay mean= worst= | iters= migrations= | gap=Nms@cpuC`
pub(crate) fn cgroup_line(c: &CgroupStats) -> String {
    let off: Vec<f64> = c.workers.iter().map(|w| w.off_cpu_pct()).collect();
    let (min, max) = (off.iter().copied().fold(f64::INFINITY, f64::min), off.iter().copied().fold(0.0, f64::max));
    let avg = if off.is_empty() { 0.0 } else { off.iter().sum::<f64>() / off.len() as f64 };
    let min = if off.is_empty() { 0.0 } else { min };
    // Run delay per time the task was scheduled in: how long, on average,
    // it waited runnable before each run.
    let delays: Vec<u64> = c.workers.iter().map(|w| w.run_delay_ns.checked_div(w.timeslices).unwrap_or(0)).collect();
    let mean = delays.iter().fold(0u64, |n, d| n.saturating_add(*d)).checked_div(delays.len() as u64).unwrap_or(0);
    let worst = delays.iter().copied().max().unwrap_or(0);
    let (gap, gap_cpu) = c.worst_gap().map_or((0, 0), |w| (w.max_gap_ns / 1_000_000, w.max_gap_cpu));
    format!(
        "{}: off-cpu avg={avg:.1}% min={min:.1}% max={max:.1}% spread={:.1}% | run-delay mean={}µs worst={}µs | \
         iters={} migrations={} | gap={gap}ms@cpu{gap_cpu}",
        c.name,
        max - min,
        mean / 1000,
        worst / 1000,
        c.iterations(),
        c.migrations()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real two-step run (steps_are_phases, scx-ktstr, 2 CPUs) with its
    /// monitor samples, from its stats sidecar. By hand: phase 1 spans
    /// 0-1628 ms, 17 samples (at 0 to 1608), imbalances summing to 22
    /// (avg 1.3, max 3), nr_running per CPU averaging 21/17; phase 2 spans
    /// 1628-3179 ms, 15 samples (1709 to 3104; the one after is teardown),
    /// imbalance 2 in two of them; throughput (859+643)/1.628 s and
    /// (831+7450)/1.551 s.
    #[test]
    fn phases_carry_their_samples_figures() {
        let path = format!("{}/tests/fixtures/monitor/steps_are_phases.ktstr.json", env!("CARGO_MANIFEST_DIR"));
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let stats: ScenarioStats = serde_json::from_value(doc["stats"].clone()).unwrap();
        let m: MonitorReport = serde_json::from_value(doc["monitor"].clone()).unwrap();
        let h = TimelineHeader { topology: Topology::new(1, 1, 2, 1), scheduler: Some("scx-ktstr"), scenario: "t" };
        let text = render(&h, &stats, Some(&m));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "Phase 1: StepStart[0] ops=0 (1628ms, 17 samples):");
        assert_eq!(
            lines[2],
            "imbalance: avg=1.3 max=3.0 | dsq: avg=0 max=0 | nr_run: avg=1.2 | fallback: 0/s | keep_last: 0/s | \
             throughput: 923 iter/s (stimulus-derived)"
        );
        assert_eq!(lines[3], "per-cgroup:");
        assert_eq!(lines[6], "Phase 2: StepStart[1] ops=2 (1551ms, 15 samples):");
        assert!(lines[7].starts_with("imbalance: avg=1.1 max=2.0 | dsq: avg=0 max=1 | nr_run: avg=1.1 | "), "{text}");
        assert!(lines[7].ends_with(" | throughput: 5339 iter/s (stimulus-derived)"), "{text}");
        // Without samples (no monitor, or one that could not read), the
        // phase lines are as they were, with no zeros standing in.
        let unavailable = MonitorReport { unavailable: Some("x".into()), ..m };
        let bare = render(&h, &stats, Some(&unavailable));
        assert_eq!(bare, render(&h, &stats, None));
        assert!(bare.contains("\nPhase 1: StepStart[0] ops=0 (1628ms):\nper-cgroup:\n"), "{bare}");
    }
}
