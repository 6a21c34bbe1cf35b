//! A run as a picture: what its Perfetto trace ([`super::trace`]) and its
//! HTML page ([`super::html`]) both draw, taken once from the run's stats
//! sidecar (and auto-repro's trail), so the two show the same series.
//!
//! One time axis: milliseconds since the payload started. The monitor's
//! samples count from there (the host saw `PayloadStarted`, within a 10 ms
//! poll); the scenario's phases follow each other from its start, a few
//! ms later (cgroup set-up), each lasting its `duration_ms`, as the
//! `--- timeline ---` places them; a worker's longest gap is an offset
//! from the scenario's epoch, taken at that same start; the scheduler's
//! death is timed by the guest from the payload's start. The figures are
//! the guest's: every one is taken saturating, and a rate is drawn only
//! where its interval is non-zero, so nothing here panics or plots NaN.

use crate::monitor::MonitorReport;
use crate::probe::ProbeTrail;
use crate::scenario::ScenarioStats;
use crate::wire::monitor::CpuSample;
use crate::wire::records::StatsSidecar;

/// What a run's picture is drawn from.
pub struct Picture<'a> {
    /// `ktstr_test 'name' [sched=...] [topo=...]`, as the report's header.
    pub title: &'a str,
    pub run: &'a StatsSidecar,
    /// The failure report as printed (a passing run's one line).
    pub report: &'a str,
    /// Auto-repro's trail, when its VM sent one.
    pub trail: Option<&'a ProbeTrail>,
}

/// A phase of the scenario on the time axis.
pub(crate) struct Phase {
    pub start_ms: u64,
    pub end_ms: u64,
    /// `StepStart[i] ops=N`, as the timeline names it.
    pub label: String,
}

pub(crate) fn phases(stats: Option<&ScenarioStats>) -> Vec<Phase> {
    let mut at = 0u64;
    let mut out = Vec::new();
    for p in stats.map(|s| s.phases.as_slice()).unwrap_or_default() {
        let end = at.saturating_add(p.duration_ms);
        out.push(Phase { start_ms: at, end_ms: end, label: format!("StepStart[{}] ops={}", p.step, p.ops) });
        at = end;
    }
    out
}

/// A moment the run failed at.
pub(crate) struct Mark {
    pub at_ms: u64,
    /// `scheduler-exit`, `scheduler-left`, `watchdog` or `checks`: an id
    /// for the page, a category for the trace.
    pub kind: &'static str,
    pub label: String,
}

/// Where a failed run failed; nothing for a passing one. The scheduler's
/// death is timed by the guest. Leaving sched_ext is timed from the hold
/// of its step, which starts after the step's ops, whose length the stats
/// do not keep: the phase ended when the hold saw it, so its end is the
/// moment. The watchdog's trip carries no time either, but it ends the
/// scenario: the last phase's end. A failed check is judged on the whole
/// run: its end (the last phase's, else the last sample's).
pub(crate) fn marks(run: &StatsSidecar) -> Vec<Mark> {
    if run.passed {
        return Vec::new();
    }
    let stats = run.stats.as_ref();
    let phases = phases(stats);
    let end = phases.last().map(|p| p.end_ms).or_else(|| last_sample_ms(run.monitor.as_ref()));
    let mut out = Vec::new();
    if let Some(at) = run.sched_exit_at_ms {
        let why = run.bug_summary.as_deref().unwrap_or("exited during the workload");
        out.push(Mark { at_ms: at, kind: "scheduler-exit", label: format!("scheduler died: {why}") });
    }
    if let Some((i, ms)) = stats.and_then(|s| s.scheduler_gone) {
        if let Some(p) = phases.get(i) {
            let label = format!("scheduler left sched_ext ({} +{ms}ms)", p.label);
            out.push(Mark { at_ms: p.end_ms, kind: "scheduler-left", label });
        }
    }
    if let (Some(t), Some(at)) = (stats.and_then(|s| s.watchdog.as_ref()), end) {
        let label = format!("watchdog: tid {} in {} stuck {}ms", t.pid, t.cgroup, t.stuck_ms);
        out.push(Mark { at_ms: at, kind: "watchdog", label });
    }
    if out.is_empty() {
        if let Some(at) = end {
            let why = run.reasons.first().map(String::as_str).unwrap_or("failed");
            out.push(Mark { at_ms: at, kind: "checks", label: format!("judged at the end of the run: {why}") });
        }
    }
    out.sort_by_key(|m| m.at_ms);
    out
}

fn last_sample_ms(m: Option<&MonitorReport>) -> Option<u64> {
    m?.samples.iter().map(|s| s.at_ms).max()
}

/// The end of the time axis: the last thing on it.
pub(crate) fn end_ms(run: &StatsSidecar) -> u64 {
    let phases = phases(run.stats.as_ref()).last().map_or(0, |p| p.end_ms);
    let marks = marks(run).iter().map(|m| m.at_ms).max().unwrap_or(0);
    phases.max(last_sample_ms(run.monitor.as_ref()).unwrap_or(0)).max(marks)
}

/// One line of a plot (one counter track of the trace).
pub(crate) struct Series {
    /// `cpu0`, `worker 126 (cg_a)`, an event's name.
    pub name: String,
    /// `(ms, value)`, in time order, finite.
    pub points: Vec<(u64, f64)>,
}

/// A quantity over time, one series per CPU, worker or counter.
pub(crate) struct Metric {
    /// `nr_running`: the plot's id and the counter's name.
    pub id: &'static str,
    pub title: &'static str,
    /// Series per CPU (the trace puts them on the CPU's track).
    pub per_cpu: bool,
    pub series: Vec<Series>,
}

/// Every series the run has, in the order the page shows them. Empty
/// metrics are left out.
pub(crate) fn metrics(run: &StatsSidecar) -> Vec<Metric> {
    let mut out = Vec::new();
    if let Some(m) = run.monitor.as_ref().filter(|m| m.unavailable.is_none()) {
        out.extend(monitor_metrics(m));
    }
    out.push(Metric {
        id: "iteration_rate",
        title: "worker iterations per second, per phase",
        per_cpu: false,
        series: worker_rates(run.stats.as_ref()),
    });
    out.retain(|m| m.series.iter().any(|s| !s.points.is_empty()));
    out
}

fn monitor_metrics(m: &MonitorReport) -> Vec<Metric> {
    let cpus = m.samples.iter().map(|s| s.cpus.len()).max().unwrap_or(0);
    // Per CPU, as sampled: a CPU whose run queue could not be read has no
    // point in that sample.
    let per_cpu = |id, title, f: fn(&CpuSample) -> Option<f64>| Metric {
        id,
        title,
        per_cpu: true,
        series: (0..cpus)
            .map(|c| Series {
                name: format!("cpu{c}"),
                points: m
                    .samples
                    .iter()
                    .filter_map(|s| Some((s.at_ms, f(s.cpus.get(c)?.as_ref()?)?)))
                    .filter(|(_, v)| v.is_finite())
                    .collect(),
            })
            .collect(),
    };
    let idle_cpus = Series {
        name: "idle CPUs".into(),
        points: m
            .samples
            .iter()
            .filter(|s| s.cpus.iter().flatten().any(|c| c.idle.is_some()))
            .map(|s| (s.at_ms, s.cpus.iter().flatten().filter(|c| c.idle == Some(true)).count() as f64))
            .collect(),
    };
    vec![
        per_cpu("nr_running", "tasks on each CPU's run queue (rq.nr_running)", |c| Some(f64::from(c.nr_running))),
        per_cpu("local_dsq", "tasks waiting in each CPU's local DSQ (rq.scx.local_dsq.nr)", |c| {
            Some(f64::from(c.local_dsq))
        }),
        per_cpu("scx_nr_running", "sched_ext tasks on each CPU (rq.scx.nr_running)", |c| {
            Some(f64::from(c.scx_nr_running))
        }),
        per_cpu("idle", "CPU running its idle task (1) or not (0)", |c| c.idle.map(|i| f64::from(u8::from(i)))),
        Metric { id: "idle_cpus", title: "CPUs running their idle task", per_cpu: false, series: vec![idle_cpus] },
        Metric {
            id: "csw_rate",
            title: "context switches per second, per CPU (rq.nr_switches)",
            per_cpu: true,
            series: (0..cpus).map(|c| csw_rate(m, c)).collect(),
        },
        Metric { id: "scx_events", title: "SCX events per second", per_cpu: false, series: event_rates(m) },
    ]
}

/// Per second between consecutive samples of a cumulative counter; no
/// point where it went back (a reset) or no time passed.
fn rate(a: (u64, u64), b: (u64, u64)) -> Option<(u64, f64)> {
    let dt = b.0.checked_sub(a.0).filter(|d| *d > 0)?;
    let dv = b.1.checked_sub(a.1)?;
    let r = dv as f64 * 1000.0 / dt as f64;
    r.is_finite().then_some((b.0, r))
}

fn csw_rate(m: &MonitorReport, cpu: usize) -> Series {
    let counts: Vec<(u64, u64)> =
        m.samples.iter().filter_map(|s| Some((s.at_ms, s.cpus.get(cpu)?.as_ref()?.nr_switches?))).collect();
    Series { name: format!("cpu{cpu}"), points: counts.windows(2).filter_map(|w| rate(w[0], w[1])).collect() }
}

/// The SCX event counters that moved, each as a rate (`SCX_EV_` left off).
fn event_rates(m: &MonitorReport) -> Vec<Series> {
    let mut out = Vec::new();
    for (i, name) in m.event_names.iter().enumerate() {
        let counts: Vec<(u64, u64)> =
            m.samples.iter().filter_map(|s| Some((s.at_ms, *s.events.as_ref()?.get(i)?))).collect();
        let points: Vec<(u64, f64)> = counts.windows(2).filter_map(|w| rate(w[0], w[1])).collect();
        if points.iter().any(|(_, v)| *v > 0.0) {
            out.push(Series { name: name.strip_prefix("SCX_EV_").unwrap_or(name).to_string(), points });
        }
    }
    out
}

/// Each worker's iteration rate over each phase it ran in, as a step:
/// the workers report per phase, not per sample.
fn worker_rates(stats: Option<&ScenarioStats>) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    let phases = phases(stats);
    for (p, span) in stats.map(|s| s.phases.as_slice()).unwrap_or_default().iter().zip(&phases) {
        for c in &p.cgroups {
            for w in &c.workers {
                let name = worker_name(w.pid, &c.name);
                let i = match out.iter().position(|s| s.name == name) {
                    Some(i) => i,
                    None => {
                        out.push(Series { name, points: Vec::new() });
                        out.len() - 1
                    }
                };
                let r = w.iteration_rate();
                if r.is_finite() {
                    out[i].points.extend([(span.start_ms, r), (span.end_ms, r)]);
                }
            }
        }
    }
    out
}

pub(crate) fn worker_name(pid: u32, cgroup: &str) -> String {
    format!("worker {pid} ({cgroup})")
}

/// A worker's longest off-CPU gap in one phase.
pub(crate) struct Gap {
    pub worker: String,
    pub at_ms: u64,
    pub dur_ms: u64,
    /// The CPU it resumed on.
    pub cpu: u32,
}

/// The gaps the workers recorded, one per worker and phase (the longest:
/// the guest keeps no other). Migrations have no times, only counts per
/// phase, so they are not among them.
pub(crate) fn gaps(stats: Option<&ScenarioStats>) -> Vec<Gap> {
    let mut out = Vec::new();
    for c in stats.iter().flat_map(|s| &s.phases).flat_map(|p| &p.cgroups) {
        for w in c.workers.iter().filter(|w| w.max_gap_ns > 0) {
            out.push(Gap {
                worker: worker_name(w.pid, &c.name),
                at_ms: w.max_gap_at_ns / 1_000_000,
                dur_ms: w.max_gap_ns / 1_000_000,
                cpu: w.max_gap_cpu,
            });
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real sidecar from `tests/fixtures` (monitor/ or matrix/).
    pub(crate) fn sidecar(path: &str) -> StatsSidecar {
        let p = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    pub(crate) const CRASH: &str = "matrix/matrix__scx_bpfland__cpu_hotplug__smt-53e3e17f29f7d3de.ktstr.json";

    /// The two-step run: phases back to back, one point per sample and CPU,
    /// rates one fewer.
    #[test]
    fn series_follow_the_samples() {
        let run = sidecar("monitor/steps_are_phases.ktstr.json");
        let p = phases(run.stats.as_ref());
        assert_eq!((p[0].start_ms, p[0].end_ms, p[1].end_ms), (0, 1628, 3179));
        let ms = metrics(&run);
        let get = |id| ms.iter().find(|m| m.id == id).unwrap();
        let n = run.monitor.as_ref().unwrap().samples.len();
        assert_eq!(get("nr_running").series.iter().map(|s| s.points.len()).collect::<Vec<_>>(), [n, n]);
        assert_eq!(get("csw_rate").series[0].points.len(), n - 1);
        // cg_a's worker ran both phases; cg_b's only the first.
        let rates = &get("iteration_rate").series;
        assert_eq!(rates.iter().map(|s| s.points.len()).collect::<Vec<_>>(), [4, 2, 2]);
        assert!(marks(&run).is_empty(), "a passing run has no failure mark");
        assert_eq!(gaps(run.stats.as_ref()).len(), 4);
    }

    /// A real stall: the scheduler left sched_ext at the end of phase 2,
    /// where the mark goes; the stuck worker's 6.5 s gap is there to see.
    #[test]
    fn a_failed_run_is_marked_where_it_failed() {
        let run = sidecar(CRASH);
        let m = marks(&run);
        assert_eq!(m.iter().map(|m| (m.kind, m.at_ms)).collect::<Vec<_>>(), [("scheduler-left", 1063 + 6689)]);
        let g = gaps(run.stats.as_ref());
        assert!(g.iter().any(|g| g.worker == "worker 139 (cg_hotplug)" && g.dur_ms == 6545 && g.at_ms == 1105));
        let mut exited = run.clone();
        exited.sched_exit_at_ms = Some(8100);
        let both: Vec<_> = marks(&exited).iter().map(|m| (m.kind, m.at_ms)).collect();
        assert_eq!(both, [("scheduler-left", 7752), ("scheduler-exit", 8100)], "in time order");
        assert_eq!(end_ms(&exited), 8100);
    }

    /// A check failure is marked at the run's end; garbage never panics.
    #[test]
    fn odd_figures_never_panic() {
        let mut run = sidecar("monitor/fair_two_cgroups.ktstr.json");
        run.passed = false;
        run.reasons = vec!["worker 1 iteration rate 1.0/s below floor 2.0/s".into()];
        assert_eq!(marks(&run)[0].at_ms, 3121);
        let m = run.monitor.as_mut().unwrap();
        for (i, s) in m.samples.iter_mut().enumerate() {
            s.at_ms = if i % 2 == 0 { u64::MAX - i as u64 } else { 0 };
            s.cpus.truncate(i % 3);
            if let Some(Some(c)) = s.cpus.first_mut() {
                c.nr_switches = Some(u64::MAX / (i as u64 + 1));
            }
            s.events = None;
        }
        let st = run.stats.as_mut().unwrap();
        st.phases[0].duration_ms = u64::MAX;
        st.phases[0].cgroups[0].workers[0].wall_ns = 0;
        st.phases[0].cgroups[0].workers[1].max_gap_at_ns = u64::MAX;
        for m in metrics(&run) {
            assert!(m.series.iter().flat_map(|s| &s.points).all(|(_, v)| v.is_finite()), "{}", m.id);
        }
        let _ = (end_ms(&run), gaps(run.stats.as_ref()), marks(&run));
        assert!(metrics(&StatsSidecar::default()).is_empty(), "no data, no series");
    }
}
