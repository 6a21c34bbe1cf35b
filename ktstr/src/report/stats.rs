//! `--- stats ---`: the whole run rolled up, one line per cgroup.
//! `cg{i}` is the cgroup's position in this roll-up, not its name (the
//! timeline names them).

use std::fmt::Write;

use crate::check::spread;
use crate::scenario::ScenarioStats;

pub fn render(stats: &ScenarioStats) -> String {
    let totals = stats.totals();
    let workers: usize = totals.iter().map(|c| c.workers.len()).sum();
    let cpus: usize = totals.iter().map(|c| c.cpus_used().len()).sum();
    let migrations = totals.iter().fold(0u64, |n, c| n.saturating_add(c.migrations()));
    let worst_spread =
        totals.iter().filter_map(|c| ran(c).then(|| spread(c)).flatten()).map(|s| s.pct).fold(0.0, f64::max);
    let worst_gap = totals.iter().filter_map(|c| c.worst_gap()).map(|w| w.max_gap_ns).max().unwrap_or(0);
    let mut s = format!(
        "{workers} workers, {cpus} cpus, {migrations} migrations, worst_spread={worst_spread:.1}%, worst_gap={}ms\n",
        worst_gap / 1_000_000
    );
    for (i, c) in totals.iter().enumerate() {
        let spread = match spread(c).filter(|_| ran(c)) {
            Some(sp) => format!("{:.1}%", sp.pct),
            None => "n/a".into(),
        };
        let _ = writeln!(
            s,
            "cg{i}: workers={} cpus={} spread={spread} gap={}ms migrations={} iter={}",
            c.workers.len(),
            c.cpus_used().len(),
            c.worst_gap().map_or(0, |w| w.max_gap_ns / 1_000_000),
            c.migrations(),
            c.iterations()
        );
    }
    s
}

/// A spread means nothing for a cgroup none of whose workers ran.
fn ran(c: &crate::scenario::CgroupStats) -> bool {
    c.workers.iter().any(|w| w.iterations > 0)
}
