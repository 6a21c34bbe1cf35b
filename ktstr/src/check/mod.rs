//! Verdicts: [`AssertResult`] (what a test returns; it crosses the channel
//! with the scenario's figures in it), the thresholds a test is held to
//! ([`Checks`]), and their evaluation on the host from the workers' own
//! reports, so that a verdict and the figures printed beside it come from
//! the same data.
//!
//! Each failed check is one detail line, in the shapes of the spec's
//! detail-line catalog (pinned by the tests below).

mod matchers;

pub use crate::wire::checks::Checks;
pub use crate::wire::verdict::AssertResult;
pub use matchers::ErrorMatchers;

use crate::wire::stats::{CgroupStats, ScenarioStats, WorkerReport};

impl Checks {
    /// What every test is held to unless told otherwise: no starved
    /// worker, and no gap longer than the work-conservation watchdog's
    /// threshold. Fairness and rate floors depend on the scheduler's
    /// policy, so they are opt-in; so are the monitor's thresholds, whose
    /// violations must last 3 samples (300 ms) to count.
    pub(crate) const DEFAULT: Checks = Checks {
        not_starved: Some(true),
        max_gap_ms: Some(crate::scenario::WATCHDOG_STUCK_MS),
        sustained_samples: Some(3),
        ..Checks::NONE
    };
}

/// The detail lines of every threshold `stats` violates; empty when all hold.
pub(crate) fn evaluate(stats: &ScenarioStats, checks: &Checks) -> Vec<String> {
    let cgroups = stats.totals();
    let workers = || cgroups.iter().flat_map(|c| c.workers.iter());
    let mut out = Vec::new();
    if checks.not_starved == Some(true) {
        out.extend(workers().filter(|w| w.iterations == 0).map(starved_line));
    }
    if let Some(max) = checks.max_gap_ms {
        out.extend(workers().filter(|w| w.max_gap_ns > max.saturating_mul(1_000_000)).map(|w| stuck_line(w, max)));
    }
    if let Some(max) = checks.max_spread_pct {
        out.extend(
            cgroups
                .iter()
                .filter_map(|c| Some((c, spread(c)?)))
                .filter(|(_, s)| s.pct > max)
                .map(|(c, s)| unfair_line(&s, c.workers.len(), c.cpus_used().len(), max)),
        );
    }
    if let Some(floor) = checks.min_iteration_rate {
        out.extend(workers().filter(|w| w.iteration_rate() < floor).map(|w| rate_line(w, floor)));
    }
    out
}

/// Off-CPU spread among a cgroup's workers: max - min, with both ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub pct: f64,
    pub lo: f64,
    pub hi: f64,
}

/// `None` for a cgroup without workers.
pub fn spread(c: &CgroupStats) -> Option<Spread> {
    let pcts = c.workers.iter().map(WorkerReport::off_cpu_pct);
    let lo = pcts.clone().fold(f64::INFINITY, f64::min);
    let hi = pcts.fold(f64::NEG_INFINITY, f64::max);
    (!c.workers.is_empty()).then_some(Spread { pct: hi - lo, lo, hi })
}

pub(crate) fn starved_line(w: &WorkerReport) -> String {
    format!("tid {} starved (0 work units)", w.pid)
}

pub(crate) fn stuck_line(w: &WorkerReport, threshold_ms: u64) -> String {
    format!(
        "tid {} stuck {}ms on cpu{} at +{}ms (threshold {threshold_ms}ms)",
        w.pid,
        w.max_gap_ns / 1_000_000,
        w.max_gap_cpu,
        w.max_gap_at_ns / 1_000_000
    )
}

pub(crate) fn unfair_line(s: &Spread, workers: usize, cpus: usize, threshold: f64) -> String {
    format!(
        "unfair cgroup: spread={:.1}% ({:.1}-{:.1}%) {workers} workers on {cpus} cpus (threshold {threshold:.1}%)",
        s.pct, s.lo, s.hi
    )
}

pub(crate) fn rate_line(w: &WorkerReport, floor: f64) -> String {
    format!("worker {} iteration rate {:.1}/s below floor {floor:.1}/s", w.pid, w.iteration_rate())
}

#[cfg(test)]
mod tests;
