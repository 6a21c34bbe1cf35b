//! Verdicts: [`AssertResult`] (what a test returns; it crosses the channel
//! with the scenario's figures in it), the thresholds a test is held to
//! ([`Checks`]), and their evaluation on the host from the workers' own
//! reports, so that a verdict and the figures printed beside it come from
//! the same data.
//!
//! Each failed check is one detail line, in the shapes of the spec's
//! detail-line catalog (pinned by the tests below).

mod matchers;

pub use crate::wire::verdict::AssertResult;
pub use matchers::ErrorMatchers;

use crate::wire::stats::{CgroupStats, ScenarioStats, WorkerReport};

/// Thresholds, each `None` when not set at that level. A test's attributes
/// override its scheduler's [`Checks`], which override [`Checks::DEFAULT`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Checks {
    /// Every worker must make progress (`tid N starved (0 work units)`).
    pub not_starved: Option<bool>,
    /// Longest off-CPU gap a worker may see, in ms.
    pub max_gap_ms: Option<u64>,
    /// Largest spread of off-CPU % between the workers of one cgroup.
    pub max_spread_pct: Option<f64>,
    /// Slowest iteration rate a worker may have, per second.
    pub min_iteration_rate: Option<f64>,
    /// The host-side monitor's thresholds (see `monitor::verdict`): each
    /// must be violated for `sustained_samples` samples in a row.
    pub max_imbalance_ratio: Option<f64>,
    pub max_local_dsq_depth: Option<u32>,
    /// A CPU holding runnable tasks that it does not run (idle, or its
    /// run-queue clock standing still).
    pub fail_on_stall: Option<bool>,
    pub sustained_samples: Option<u32>,
    /// SCX events per second (`select_cpu_fallback`, `dispatch_keep_last`).
    pub max_fallback_rate: Option<f64>,
    pub max_keep_last_rate: Option<f64>,
}

impl Checks {
    /// Nothing set: defer to the next level.
    pub const NONE: Checks = Checks {
        not_starved: None,
        max_gap_ms: None,
        max_spread_pct: None,
        min_iteration_rate: None,
        max_imbalance_ratio: None,
        max_local_dsq_depth: None,
        fail_on_stall: None,
        sustained_samples: None,
        max_fallback_rate: None,
        max_keep_last_rate: None,
    };

    /// What every test is held to unless told otherwise: no starved
    /// worker, and no gap longer than the work-conservation watchdog's
    /// threshold. Fairness and rate floors depend on the scheduler's
    /// policy, so they are opt-in; so are the monitor's thresholds, whose
    /// violations must last 3 samples (300 ms) to count.
    pub const DEFAULT: Checks = Checks {
        not_starved: Some(true),
        max_gap_ms: Some(crate::scenario::WATCHDOG_STUCK_MS),
        sustained_samples: Some(3),
        ..Checks::NONE
    };

    /// `self`, with unset thresholds taken from `fallback`.
    pub const fn or(self, fallback: Checks) -> Checks {
        // `Option::or` is not const.
        macro_rules! or {
            ($f:ident) => {
                if self.$f.is_some() {
                    self.$f
                } else {
                    fallback.$f
                }
            };
        }
        Checks {
            not_starved: or!(not_starved),
            max_gap_ms: or!(max_gap_ms),
            max_spread_pct: or!(max_spread_pct),
            min_iteration_rate: or!(min_iteration_rate),
            max_imbalance_ratio: or!(max_imbalance_ratio),
            max_local_dsq_depth: or!(max_local_dsq_depth),
            fail_on_stall: or!(fail_on_stall),
            sustained_samples: or!(sustained_samples),
            max_fallback_rate: or!(max_fallback_rate),
            max_keep_last_rate: or!(max_keep_last_rate),
        }
    }
}

/// The detail lines of every threshold `stats` violates; empty when all hold.
pub fn evaluate(stats: &ScenarioStats, checks: &Checks) -> Vec<String> {
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

pub fn starved_line(w: &WorkerReport) -> String {
    format!("tid {} starved (0 work units)", w.pid)
}

pub fn stuck_line(w: &WorkerReport, threshold_ms: u64) -> String {
    format!(
        "tid {} stuck {}ms on cpu{} at +{}ms (threshold {threshold_ms}ms)",
        w.pid,
        w.max_gap_ns / 1_000_000,
        w.max_gap_cpu,
        w.max_gap_at_ns / 1_000_000
    )
}

pub fn unfair_line(s: &Spread, workers: usize, cpus: usize, threshold: f64) -> String {
    format!(
        "unfair cgroup: spread={:.1}% ({:.1}-{:.1}%) {workers} workers on {cpus} cpus (threshold {threshold:.1}%)",
        s.pct, s.lo, s.hi
    )
}

pub fn rate_line(w: &WorkerReport, floor: f64) -> String {
    format!("worker {} iteration rate {:.1}/s below floor {floor:.1}/s", w.pid, w.iteration_rate())
}

#[cfg(test)]
mod tests;
