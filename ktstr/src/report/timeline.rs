//! `--- timeline ---`: the run phase by phase. The monitor's per-phase
//! figures (samples, imbalance, DSQ depth) join the phase lines once the
//! monitor exists; until then they are left out rather than printed as
//! zeros.

use std::fmt::Write;

use crate::scenario::{CgroupStats, ScenarioStats};
use crate::topology::Topology;

pub struct TimelineHeader<'a> {
    pub topology: Topology,
    pub scheduler: Option<&'a str>,
    pub scenario: &'a str,
}

pub fn render(h: &TimelineHeader, stats: &ScenarioStats) -> String {
    let mut s = format!(
        "topology: {} ({} cpus) scheduler: {} scenario: {} duration: {:.1}s\n",
        h.topology,
        h.topology.cpus(),
        h.scheduler.unwrap_or("eevdf"),
        h.scenario,
        stats.duration_ms() as f64 / 1000.0
    );
    for (n, p) in stats.phases.iter().enumerate() {
        let _ = writeln!(s, "Phase {}: StepStart[{}] ops={} ({}ms):", n + 1, p.step, p.ops, p.duration_ms);
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

/// `name: off-cpu avg= min= max= spread= | run-delay mean= worst= | iters= migrations= | gap=Nms@cpuC`
pub fn cgroup_line(c: &CgroupStats) -> String {
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
