//! The monitor's thresholds, held against its samples. A threshold fails
//! only when violated in `sustained_samples` samples in a row: one
//! sample is a moment, and moments of imbalance are normal. Independent
//! of the worker-side checks: each fails the test on its own.

use super::sample::Sample;
use super::summary::{imbalance, stalls};
use super::MonitorReport;
use crate::check::Checks;

/// The run of samples in which a figure stayed above its limit longest.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Violation {
    pub from_ms: u64,
    pub samples: usize,
    /// The highest value in the run.
    pub worst: f64,
}

/// The longest run of `(at_ms, value)` above `limit`, if it lasts `n`.
pub(crate) fn sustained(
    values: impl IntoIterator<Item = (u64, Option<f64>)>,
    limit: f64,
    n: usize,
) -> Option<Violation> {
    let (mut best, mut run): (Option<Violation>, Option<Violation>) = (None, None);
    for (at, v) in values {
        run = match (v.filter(|v| *v > limit), run) {
            (Some(v), Some(mut r)) => {
                r.samples += 1;
                r.worst = r.worst.max(v);
                Some(r)
            }
            (Some(v), None) => Some(Violation { from_ms: at, samples: 1, worst: v }),
            (None, _) => None,
        };
        if let Some(r) = run.as_ref().filter(|r| r.samples >= n.max(1)) {
            if best.as_ref().is_none_or(|b| r.samples > b.samples) {
                best = Some(r.clone());
            }
        }
    }
    best
}

/// The monitor's verdict on one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// One detail line per violated threshold; empty when all hold (or
    /// when there are no samples to hold them to).
    pub failures: Vec<String>,
    /// CPUs that stalled for `sustained_samples` samples, whether or not
    /// `fail_on_stall` is set.
    pub stuck: usize,
}

pub(crate) fn evaluate(m: &MonitorReport, checks: &Checks) -> Verdict {
    // `checks` are the thresholds in force (Checks::DEFAULT sets this one).
    let n = checks.sustained_samples.or(Checks::DEFAULT.sustained_samples).unwrap_or(1) as usize;
    Verdict { failures: failures(m, checks, n), stuck: stalls(&m.samples, n).len() }
}

fn failures(m: &MonitorReport, checks: &Checks, n: usize) -> Vec<String> {
    let s = &m.samples;
    let mut out = Vec::new();
    let line = |name: &str, what: &str, v: &Violation, limit: String| {
        format!(
            "monitor: {what} {} for {} samples from +{}ms ({name} {limit}, sustained_samples {n})",
            fmt(v.worst),
            v.samples,
            v.from_ms
        )
    };
    if let Some(max) = checks.max_imbalance_ratio {
        let vals = s.iter().map(|x| (x.at_ms, Some(imbalance(x))));
        if let Some(v) = sustained(vals, max, n) {
            out.push(line("max_imbalance_ratio", "imbalance (max/min nr_running over CPUs)", &v, format!("{max:.2}")));
        }
    }
    if let Some(max) = checks.max_local_dsq_depth {
        let cpus = s.iter().map(|x| x.cpus.len()).max().unwrap_or(0);
        let worst = (0..cpus)
            .filter_map(|cpu| {
                let depth = |x: &Sample| x.cpus.get(cpu)?.as_ref().map(|c| f64::from(c.local_dsq));
                Some((cpu, sustained(s.iter().map(|x| (x.at_ms, depth(x))), f64::from(max), n)?))
            })
            .max_by(|a, b| a.1.samples.cmp(&b.1.samples).then(a.1.worst.total_cmp(&b.1.worst)));
        if let Some((cpu, v)) = worst {
            out.push(line("max_local_dsq_depth", &format!("cpu{cpu} local DSQ depth"), &v, max.to_string()));
        }
    }
    if checks.fail_on_stall == Some(true) {
        for st in stalls(s, n) {
            out.push(format!(
                "monitor: cpu{} stalled: runnable tasks not run (cpu idle or rq clock still) for {} samples from \
                 +{}ms (fail_on_stall, sustained_samples {n})",
                st.cpu, st.samples, st.from_ms
            ));
        }
    }
    for (name, event, max) in [
        ("max_fallback_rate", "SCX_EV_SELECT_CPU_FALLBACK", checks.max_fallback_rate),
        ("max_keep_last_rate", "SCX_EV_DISPATCH_KEEP_LAST", checks.max_keep_last_rate),
    ] {
        let Some(max) = max else { continue };
        let Some(i) = m.event_names.iter().position(|e| e == event) else { continue };
        if let Some(v) = sustained(rates(s, i), max, n) {
            let what = format!("{} rate (/s)", super::summary::event_name(event));
            out.push(line(name, &what, &v, format!("{max:.1}/s")));
        }
    }
    out
}

/// Per-second rate of event `i` between consecutive samples that have
/// counters, stamped at the later one.
fn rates(s: &[Sample], i: usize) -> impl Iterator<Item = (u64, Option<f64>)> + '_ {
    s.windows(2).map(move |w| {
        let (a, b) = (&w[0], &w[1]);
        let dt = b.at_ms.saturating_sub(a.at_ms) as f64 / 1000.0;
        let rate = match (a.events.as_ref().and_then(|e| e.get(i)), b.events.as_ref().and_then(|e| e.get(i))) {
            (Some(x), Some(y)) if dt > 0.0 => Some(y.saturating_sub(*x) as f64 / dt),
            _ => None,
        };
        (b.at_ms, rate)
    })
}

/// Whole numbers without decimals, others with two.
fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_run_of_n_violates() {
        let v = |vals: &[f64]| vals.iter().enumerate().map(|(i, v)| (i as u64 * 100, Some(*v))).collect::<Vec<_>>();
        assert_eq!(sustained(v(&[5.0, 1.0, 5.0, 1.0, 5.0]), 2.0, 2), None);
        assert_eq!(
            sustained(v(&[5.0, 1.0, 3.0, 9.0, 4.0, 1.0]), 2.0, 2),
            Some(Violation { from_ms: 200, samples: 3, worst: 9.0 })
        );
        // A missing value breaks the run.
        let gap = vec![(0, Some(5.0)), (100, None), (200, Some(5.0))];
        assert_eq!(sustained(gap, 2.0, 2), None);
    }
}
