//! Figures over a run of samples: the whole workload for the `---
//! monitor ---` block, or one phase for its timeline line. Pure
//! arithmetic on what was sampled; the guest's numbers may be absurd, so
//! nothing here can panic or divide by zero.

use super::sample::Sample;

/// The SCX event counters the block names first (`events:`), by their
/// kernel names, with the names shown; every other counter that moved
/// goes to `events+:` under its kernel name, lower case, less `SCX_EV_`.
pub(crate) const MAIN_EVENTS: &[(&str, &str)] = &[
    ("SCX_EV_SELECT_CPU_FALLBACK", "fallback"),
    ("SCX_EV_DISPATCH_KEEP_LAST", "keep_last"),
    ("SCX_EV_DISPATCH_LOCAL_DSQ_OFFLINE", "offline"),
];

#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    pub samples: usize,
    /// Seconds from the first sample to the last.
    pub span_s: f64,
    pub max_imbalance: f64,
    pub avg_imbalance: f64,
    pub max_dsq_depth: u32,
    pub avg_dsq: f64,
    pub avg_nr_running: f64,
    /// Counter deltas over the span, `None` without two samples that
    /// have them (no sched_ext scheduler loaded).
    pub events: Option<Vec<Counter>>,
    pub schedstat: Option<Schedstat>,
}

/// One event counter's change over the span.
#[derive(Clone, Debug, PartialEq)]
pub struct Counter {
    /// As shown: `fallback`, `refill_slice_dfl`.
    pub name: String,
    pub total: u64,
    pub per_s: f64,
}

/// Schedstat deltas over the span, summed over CPUs.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedstat {
    pub csw: Option<u64>,
    pub run_delay_ns: Option<u64>,
    pub ttwu: Option<u64>,
    pub goidle: Option<u64>,
}

/// The shown name of a kernel event counter.
pub(crate) fn event_name(kernel: &str) -> String {
    MAIN_EVENTS
        .iter()
        .find(|(k, _)| *k == kernel)
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| kernel.strip_prefix("SCX_EV_").unwrap_or(kernel).to_lowercase())
}

/// Max nr_running over min, with an idle CPU counted as 1 task: one task
/// beside an idle CPU is no imbalance, two on one CPU beside an idle one
/// is 2.0. Unreadable CPUs are left out.
pub(crate) fn imbalance(s: &Sample) -> f64 {
    let nr = s.cpus.iter().flatten().map(|c| c.nr_running);
    let (max, min) = (nr.clone().max().unwrap_or(0), nr.min().unwrap_or(0));
    f64::from(max.max(1)) / f64::from(min.max(1))
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / f64::from(n)
    }
}

impl Figures {
    pub fn of(samples: &[Sample], event_names: &[String]) -> Figures {
        let span_s = match (samples.first(), samples.last()) {
            (Some(a), Some(b)) => b.at_ms.saturating_sub(a.at_ms) as f64 / 1000.0,
            _ => 0.0,
        };
        let per_cpu = |f: fn(&super::sample::CpuSample) -> f64| {
            mean(samples.iter().map(|s| mean(s.cpus.iter().flatten().map(f))))
        };
        Figures {
            samples: samples.len(),
            span_s,
            max_imbalance: samples.iter().map(imbalance).fold(0.0, f64::max),
            avg_imbalance: mean(samples.iter().map(imbalance)),
            max_dsq_depth: samples.iter().flat_map(|s| s.cpus.iter().flatten()).map(|c| c.local_dsq).max().unwrap_or(0),
            avg_dsq: per_cpu(|c| f64::from(c.local_dsq)),
            avg_nr_running: per_cpu(|c| f64::from(c.nr_running)),
            events: events(samples, event_names, span_s),
            schedstat: schedstat(samples),
        }
    }

    /// A counter's figure by its shown name.
    pub fn event(&self, name: &str) -> Option<&Counter> {
        self.events.as_ref()?.iter().find(|c| c.name == name)
    }
}

fn rate(total: u64, span_s: f64) -> f64 {
    if span_s > 0.0 {
        total as f64 / span_s
    } else {
        0.0
    }
}

fn events(samples: &[Sample], names: &[String], span_s: f64) -> Option<Vec<Counter>> {
    let mut with = samples.iter().filter_map(|s| s.events.as_ref());
    let first = with.next()?;
    let last = with.next_back()?;
    Some(
        names
            .iter()
            .zip(first.iter().zip(last))
            .map(|(name, (a, b))| {
                let total = b.saturating_sub(*a);
                Counter { name: event_name(name), total, per_s: rate(total, span_s) }
            })
            .collect(),
    )
}

/// Deltas of the cumulative counters, first sample to last, summed over
/// the CPUs readable in both.
fn schedstat(samples: &[Sample]) -> Option<Schedstat> {
    let (a, b) = (samples.first()?, samples.last()?);
    if samples.len() < 2 {
        return None;
    }
    let delta = |f: fn(&super::sample::CpuSample) -> Option<u64>| -> Option<u64> {
        let mut sum = 0u64;
        for (x, y) in a.cpus.iter().zip(&b.cpus) {
            if let (Some(x), Some(y)) = (x, y) {
                sum = sum.saturating_add(f(y)?.saturating_sub(f(x)?));
            }
        }
        Some(sum)
    };
    Some(Schedstat {
        csw: delta(|c| c.nr_switches),
        run_delay_ns: delta(|c| c.run_delay_ns),
        ttwu: delta(|c| c.ttwu),
        goidle: delta(|c| c.goidle),
    })
}

/// A CPU that had runnable tasks but did not run them, for `sustained`
/// samples in a row: its run queue held tasks while its clock stood
/// still (nothing scheduled there, not even a tick: a hung CPU) or while
/// it ran its idle task (the tasks are held where nothing dispatches
/// them: a sched_ext stall). The second is what a stalling BPF scheduler
/// looks like here: other threads waking on that CPU keep its clock
/// going, so the clock alone misses it (seen with scx-ktstr's stall
/// knob). A woken task waits for an idle CPU a moment, not 3 samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Stall {
    pub cpu: usize,
    /// When the run of samples began, ms into the workload.
    pub from_ms: u64,
    pub samples: usize,
}

/// Every CPU's longest stall of at least `sustained` samples.
pub fn stalls(samples: &[Sample], sustained: usize) -> Vec<Stall> {
    let cpus = samples.iter().map(|s| s.cpus.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for cpu in 0..cpus {
        let mut best: Option<Stall> = None;
        let mut run: Option<Stall> = None;
        for w in samples.windows(2) {
            let (prev, cur) = (w[0].cpus.get(cpu).cloned().flatten(), w[1].cpus.get(cpu).cloned().flatten());
            let stuck = matches!((prev, cur), (Some(p), Some(c))
                if c.nr_running > 0 && (c.clock == p.clock || c.idle == Some(true)));
            run = match (stuck, run) {
                (true, Some(mut r)) => {
                    r.samples += 1;
                    Some(r)
                }
                (true, None) => Some(Stall { cpu, from_ms: w[1].at_ms, samples: 1 }),
                (false, _) => None,
            };
            if let Some(r) = &run {
                if r.samples >= sustained.max(1) && best.as_ref().is_none_or(|b| r.samples > b.samples) {
                    best = Some(r.clone());
                }
            }
        }
        out.extend(best);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::sample::CpuSample;

    fn sample(at_ms: u64, cpus: &[(u32, u64)]) -> Sample {
        let cpus = cpus.iter().map(|&(nr_running, clock)| Some(CpuSample { nr_running, clock, ..Default::default() }));
        Sample { at_ms, cpus: cpus.collect(), events: None }
    }

    #[test]
    fn imbalance_counts_an_idle_cpu_as_one_task() {
        assert_eq!(imbalance(&sample(0, &[(1, 0), (0, 0)])), 1.0);
        assert_eq!(imbalance(&sample(0, &[(2, 0), (0, 0)])), 2.0);
        assert_eq!(imbalance(&sample(0, &[(6, 0), (2, 0)])), 3.0);
        assert_eq!(imbalance(&sample(0, &[])), 1.0);
    }

    /// CPU 1 holds a task with its clock still from +100 to +400 ms;
    /// CPU 0's clock stands still too, but with nothing to run.
    #[test]
    fn a_stall_is_runnable_tasks_under_a_still_clock_or_an_idle_cpu() {
        let s: Vec<Sample> = (0..6u64)
            .map(|i| {
                let clock1 = if (1..=4).contains(&i) { 100 } else { i * 1000 };
                sample(i * 100, &[(0, 7), (1, clock1)])
            })
            .collect();
        // Samples 2, 3 and 4 repeat sample 1's clock: 3 in a row.
        assert_eq!(stalls(&s, 3), [Stall { cpu: 1, from_ms: 200, samples: 3 }]);
        assert_eq!(stalls(&s, 4), []);
        // Ticking but idle with a task queued: stalled too; busy is not.
        let idle = |at: u64, idle: bool| {
            let c = CpuSample { nr_running: 2, clock: at, idle: Some(idle), ..Default::default() };
            Sample { at_ms: at, cpus: vec![Some(c)], events: None }
        };
        let s: Vec<Sample> = (0..5).map(|i| idle(i * 100, i != 1)).collect();
        assert_eq!(stalls(&s, 3), [Stall { cpu: 0, from_ms: 200, samples: 3 }]);
        let busy: Vec<Sample> = (0..5).map(|i| idle(i * 100, false)).collect();
        assert_eq!(stalls(&busy, 1), []);
    }

    #[test]
    fn event_names_as_shown() {
        assert_eq!(event_name("SCX_EV_SELECT_CPU_FALLBACK"), "fallback");
        assert_eq!(event_name("SCX_EV_REFILL_SLICE_DFL"), "refill_slice_dfl");
        assert_eq!(event_name("odd"), "odd");
    }
}
