//! The run as a Chrome trace event file (`{stem}.trace.json`), to open in
//! ui.perfetto.dev or chrome://tracing: a JSON object with `traceEvents`
//! and `displayTimeUnit`.
//!
//! The VM is one process. Its tracks: `scenario`, with the phases (and the
//! workers' set-up) as complete slices (`X`); one per guest CPU, with the
//! monitor's samples as counters (`C`: nr_running, local DSQ depth, sched_ext
//! tasks, idle, context switches per second); one per worker, with its
//! phases (iterations, rate and migration count in their args) and its
//! longest off-CPU gap of each phase as slices. The SCX event rates and the
//! workers' iteration rates are counters of the process. Where the run
//! failed (the scheduler's death or leaving sched_ext, the watchdog, a
//! failed check at the run's end) is a global instant event (`i`).
//! Auto-repro's VM is a second process: the exiting task's probed calls,
//! each entry and its exit as a slice, in order, on a track per CPU (calls
//! nest per CPU, not across), and the exit's trigger as an instant.
//!
//! Only what the data has: migrations are counted per phase but not timed,
//! so they are args, not events; a worker reports its longest gap only; the
//! repro VM's clock is its own, so its process starts at its first call
//! rather than being lined up with the first VM's.

use serde_json::{json, Map, Value};

use super::picture::{self, Picture};
use crate::probe::stitch::stitch;
use crate::probe::{FuncKind, ProbeTrail};

const VM_PID: u64 = 1;
const REPRO_PID: u64 = 2;
/// A guest's times beyond this (about 35 years, in ms) are garbage: kept
/// there so every timestamp stays a JSON integer any reader takes.
const MAX_MS: u64 = 1 << 40;

/// The trace of the run, as bytes of JSON.
pub fn render(pic: &Picture) -> Vec<u8> {
    let mut t = Trace { events: Vec::new(), next_tid: 1 };
    vm_process(&mut t, pic);
    if let Some(trail) = pic.trail {
        repro_process(&mut t, trail);
    }
    let mut left_out = vec![
        "migrations: counted per phase, not timed (in each worker phase's args)",
        "gaps: each worker reports its longest off-CPU gap per phase, no other",
    ];
    if pic.run.monitor.as_ref().is_none_or(|m| m.samples.is_empty()) {
        left_out.push("monitor: no samples");
    }
    let doc = json!({
        "traceEvents": t.events,
        "displayTimeUnit": "ms",
        "otherData": {
            "test": pic.title,
            "passed": pic.run.passed,
            "reasons": pic.run.reasons,
            "time_axis": "the VM: ms since the payload started; auto-repro: its own clock, from its first call",
            "left_out": left_out,
        },
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

struct Trace {
    events: Vec<Value>,
    next_tid: u64,
}

/// A slice before it is placed on a track: times in ns.
struct Slice {
    start: u64,
    dur: u64,
    name: String,
    cat: &'static str,
    args: Value,
}

impl Trace {
    fn tid(&mut self) -> u64 {
        self.next_tid += 1;
        self.next_tid - 1
    }

    fn meta(&mut self, pid: u64, tid: u64, what: &str, args: Value) {
        self.events.push(json!({ "ph": "M", "name": what, "pid": pid, "tid": tid, "args": args }));
    }

    /// A named track (a thread), sorted in the order made.
    fn track(&mut self, pid: u64, name: &str) -> u64 {
        let tid = self.tid();
        self.meta(pid, tid, "thread_name", json!({ "name": name }));
        self.meta(pid, tid, "thread_sort_index", json!({ "sort_index": tid }));
        tid
    }

    /// `slices` on the track `tid` named `name`. Slices of one track must
    /// nest; any that would overlap without nesting (the guest's figures
    /// are not trusted to) go to a track of their own beside it.
    fn slices(&mut self, pid: u64, tid: u64, name: &str, mut slices: Vec<Slice>) {
        slices.sort_by_key(|s| (s.start, std::cmp::Reverse(s.dur)));
        // Per lane: its tid and the ends of the slices open at this point.
        let mut lanes: Vec<(u64, Vec<u64>)> = vec![(tid, Vec::new())];
        for s in slices {
            let end = s.start.saturating_add(s.dur);
            let fits = |open: &mut Vec<u64>| {
                while open.last().is_some_and(|&e| e <= s.start) {
                    open.pop();
                }
                open.last().is_none_or(|&e| e >= end)
            };
            let lane = match lanes.iter_mut().position(|(_, open)| fits(open)) {
                Some(i) => i,
                None => {
                    let t = self.track(pid, &format!("{name} (overlapping)"));
                    lanes.push((t, Vec::new()));
                    lanes.len() - 1
                }
            };
            lanes[lane].1.push(end);
            self.events.push(json!({
                "ph": "X", "name": s.name, "cat": s.cat, "pid": pid, "tid": lanes[lane].0,
                "ts": us(s.start), "dur": us(s.dur), "args": s.args,
            }));
        }
    }

    fn counter(&mut self, pid: u64, tid: u64, name: &str, at_ms: u64, key: &str, v: f64) {
        let mut args = Map::new();
        args.insert(key.to_string(), json!(v));
        self.events.push(json!({ "ph": "C", "name": name, "pid": pid, "tid": tid, "ts": us(ns(at_ms)), "args": args }));
    }

    /// An instant on the track `(pid, tid)`, of scope `g` (global), `p`
    /// (process) or `t` (thread).
    fn instant(&mut self, (pid, tid): (u64, u64), scope: &str, at_ns: u64, name: &str, cat: &str, args: Value) {
        self.events.push(json!({
            "ph": "i", "s": scope, "name": name, "cat": cat, "pid": pid, "tid": tid, "ts": us(at_ns), "args": args,
        }));
    }
}

fn ns(ms: u64) -> u64 {
    ms.min(MAX_MS) * 1_000_000
}

/// The trace's unit: µs, with ns as decimals.
fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn vm_process(t: &mut Trace, pic: &Picture) {
    let run = pic.run;
    t.meta(VM_PID, 0, "process_name", json!({ "name": format!("VM: {}", pic.title) }));
    t.meta(VM_PID, 0, "process_sort_index", json!({ "sort_index": 0 }));
    let scenario = t.track(VM_PID, "scenario");
    let stats = run.stats.as_ref();
    let phases = picture::phases(stats);
    let mut slices: Vec<Slice> = phases
        .iter()
        .zip(stats.map(|s| s.phases.as_slice()).unwrap_or_default())
        .map(|(span, p)| Slice {
            start: ns(span.start_ms),
            dur: ns(span.end_ms).saturating_sub(ns(span.start_ms)),
            name: span.label.clone(),
            cat: "phase",
            args: json!({
                "cgroups": p.cgroups.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
                "workers": p.cgroups.iter().map(|c| c.workers.len()).sum::<usize>(),
                "iterations": p.cgroups.iter().fold(0u64, |n, c| n.saturating_add(c.iterations())),
            }),
        })
        .collect();
    if let Some(ms) = stats.and_then(|s| s.setup_ms) {
        let name = "workers set up (payload start to the last worker's first iteration)".to_string();
        slices.push(Slice { start: 0, dur: ns(ms), name, cat: "setup", args: json!({}) });
    }
    t.slices(VM_PID, scenario, "scenario", slices);
    for m in picture::marks(run) {
        let args = json!({ "at_ms": m.at_ms, "reasons": run.reasons });
        t.instant((VM_PID, scenario), "g", ns(m.at_ms), &m.label, m.kind, args);
    }
    // Per CPU: a track each, its counters on it.
    let metrics = picture::metrics(run);
    let cpus = metrics.iter().filter(|m| m.per_cpu).map(|m| m.series.len()).max().unwrap_or(0);
    let cpu_tids: Vec<u64> = (0..cpus).map(|c| t.track(VM_PID, &format!("cpu{c}"))).collect();
    for m in &metrics {
        for (i, s) in m.series.iter().enumerate() {
            for &(at, v) in &s.points {
                match (m.per_cpu, cpu_tids.get(i)) {
                    (true, Some(&tid)) => t.counter(VM_PID, tid, &s.name, at, m.id, v),
                    _ => t.counter(VM_PID, scenario, m.id, at, &s.name, v),
                }
            }
        }
    }
    workers(t, pic, &phases);
}

/// A track per worker: its phases, with what it did in each, and its
/// longest gap of each.
fn workers(t: &mut Trace, pic: &Picture, phases: &[picture::Phase]) {
    let stats = pic.run.stats.as_ref();
    let mut tracks: Vec<(String, Vec<Slice>)> = Vec::new();
    fn slices_of(tracks: &mut Vec<(String, Vec<Slice>)>, name: String) -> &mut Vec<Slice> {
        let i = tracks.iter().position(|(n, _)| *n == name).unwrap_or_else(|| {
            tracks.push((name, Vec::new()));
            tracks.len() - 1
        });
        &mut tracks[i].1
    }
    for (p, span) in stats.map(|s| s.phases.as_slice()).unwrap_or_default().iter().zip(phases) {
        for c in &p.cgroups {
            for w in &c.workers {
                let rate = w.iteration_rate();
                slices_of(&mut tracks, picture::worker_name(w.pid, &c.name)).push(Slice {
                    start: ns(span.start_ms),
                    dur: ns(span.end_ms).saturating_sub(ns(span.start_ms)),
                    name: format!("{}: {} iterations", span.label, w.iterations),
                    cat: "worker phase",
                    args: json!({
                        "iterations": w.iterations,
                        "iterations_per_s": if rate.is_finite() { rate } else { 0.0 },
                        "migrations": w.migrations,
                        "cpus": w.cpus,
                        "off_cpu_pct": w.off_cpu_pct(),
                        "run_delay_ms": w.run_delay_ns / 1_000_000,
                        "longest_gap_ms": w.max_gap_ns / 1_000_000,
                    }),
                });
            }
        }
    }
    for g in picture::gaps(stats) {
        slices_of(&mut tracks, g.worker.clone()).push(Slice {
            start: ns(g.at_ms),
            dur: ns(g.dur_ms),
            name: format!("off CPU {}ms (longest gap; resumed on cpu{})", g.dur_ms, g.cpu),
            cat: "gap",
            args: json!({ "gap_ms": g.dur_ms, "resumed_on_cpu": g.cpu }),
        });
    }
    for (name, slices) in tracks {
        let tid = t.track(VM_PID, &name);
        t.slices(VM_PID, tid, &name, slices);
    }
}

/// The repro VM: the calls of the task that claimed the exit, stitched as
/// the `--- auto-repro ---` section stitches them, on a track per CPU.
fn repro_process(t: &mut Trace, trail: &ProbeTrail) {
    let until = trail.trigger.as_ref().map_or(u64::MAX, |x| x.ts_ns);
    let calls = stitch(trail, until);
    let who = trail.trigger.as_ref().map_or("no exit trigger fired".into(), |x| format!("{}[{}]", x.comm, x.pid));
    let first = calls.iter().filter_map(|c| c.entry.or(c.exit)).map(|e| e.ts_ns).min();
    let Some(t0) = first.or(trail.trigger.as_ref().map(|x| x.ts_ns)) else { return };
    let name = format!("auto-repro VM: probed calls of {who} (its own clock, from its first call)");
    t.meta(REPRO_PID, 0, "process_name", json!({ "name": name }));
    t.meta(REPRO_PID, 0, "process_sort_index", json!({ "sort_index": 1 }));
    let mut cpus: Vec<u32> = calls.iter().filter_map(|c| c.entry.or(c.exit)).map(|e| e.cpu).collect();
    cpus.extend(trail.trigger.as_ref().map(|x| x.cpu));
    cpus.sort_unstable();
    cpus.dedup();
    let whose = if trail.by_cpu { "calls (none named the task)".into() } else { format!("calls of {who}") };
    for cpu in cpus {
        let track = format!("{whose} on cpu{cpu}");
        let tid = t.track(REPRO_PID, &track);
        let mut slices = Vec::new();
        for (i, c) in calls.iter().enumerate() {
            let (kind, member) = match &c.func.kind {
                FuncKind::Kernel => ("kernel function", None),
                FuncKind::BpfCallback { member } => ("scheduler callback", Some(member.as_str())),
            };
            let args = json!({ "order": i, "source": c.func.source, "sched_ext_ops": member });
            match (c.entry, c.exit) {
                (Some(a), Some(b)) if a.cpu == cpu => slices.push(Slice {
                    start: a.ts_ns.saturating_sub(t0),
                    dur: b.ts_ns.saturating_sub(a.ts_ns),
                    name: c.func.name.clone(),
                    cat: kind,
                    args,
                }),
                (Some(e), None) | (None, Some(e)) if e.cpu == cpu => {
                    let what = if e.exit { "exit seen, not its entry" } else { "entry probed, not its exit" };
                    let n = format!("{} ({what})", c.func.name);
                    t.instant((REPRO_PID, tid), "t", e.ts_ns.saturating_sub(t0), &n, kind, args);
                }
                _ => {}
            }
        }
        t.slices(REPRO_PID, tid, &track, slices);
        if let Some(x) = trail.trigger.as_ref().filter(|x| x.cpu == cpu) {
            let n = format!("sched_ext_exit: exit claimed by {}[{}] on CPU {}", x.comm, x.pid, x.cpu);
            t.instant((REPRO_PID, tid), "p", x.ts_ns.saturating_sub(t0), &n, "exit", json!({}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::stitch::tests::trail;
    use crate::report::picture::tests::{sidecar, CRASH};

    /// The Chrome trace event format's rules, as a checker: every event
    /// has `ph`, `pid` and `tid`, and `ts` unless it is metadata; `X` has
    /// a `dur`; counters have numeric args; the slices of one track nest.
    /// Returns the events.
    pub(crate) fn valid(bytes: &[u8]) -> Vec<Value> {
        let doc: Value = serde_json::from_slice(bytes).expect("the trace is JSON");
        assert_eq!(doc["displayTimeUnit"], "ms");
        let events = doc["traceEvents"].as_array().expect("traceEvents").clone();
        let mut open: std::collections::HashMap<(u64, u64), Vec<f64>> = Default::default();
        for e in &events {
            let ph = e["ph"].as_str().unwrap_or_else(|| panic!("no ph: {e}"));
            assert!(e["pid"].is_u64() && e["tid"].is_u64(), "pid and tid: {e}");
            assert!(["M", "X", "C", "i"].contains(&ph), "{e}");
            if ph == "M" {
                assert!(e["args"].is_object(), "{e}");
                continue;
            }
            let ts = e["ts"].as_f64().unwrap_or_else(|| panic!("no ts: {e}"));
            assert!(ts.is_finite() && ts >= 0.0, "{e}");
            match ph {
                "X" => {
                    let dur = e["dur"].as_f64().unwrap_or_else(|| panic!("X without dur: {e}"));
                    assert!(dur.is_finite() && dur >= 0.0, "{e}");
                    let stack = open.entry((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap())).or_default();
                    while stack.last().is_some_and(|&end| end <= ts) {
                        stack.pop();
                    }
                    assert!(stack.last().is_none_or(|&end| end >= ts + dur), "slices nest on a track: {e}");
                    stack.push(ts + dur);
                }
                "C" => {
                    let args = e["args"].as_object().unwrap_or_else(|| panic!("counter without args: {e}"));
                    assert!(!args.is_empty() && args.values().all(Value::is_number), "{e}");
                }
                _ => assert!(["g", "p", "t"].contains(&e["s"].as_str().unwrap_or("t")), "{e}"),
            }
        }
        events
    }

    fn names(events: &[Value], what: &str) -> Vec<String> {
        let m = events.iter().filter(|e| e["ph"] == "M" && e["name"] == what);
        m.map(|e| e["args"]["name"].as_str().unwrap().to_string()).collect()
    }

    /// A real passing run (two steps, two CPUs): its tracks, a counter per
    /// sample and CPU, the phases as slices, time in order; no mark.
    #[test]
    fn a_passing_run_traces_its_samples_and_phases() {
        let run = sidecar("monitor/steps_are_phases.ktstr.json");
        let pic = Picture { title: "ktstr_test 'steps_are_phases'", run: &run, report: "", trail: None };
        let events = valid(&render(&pic));
        let threads = names(&events, "thread_name");
        for want in ["scenario", "cpu0", "cpu1", "worker 110 (cg_a)", "worker 111 (cg_b)", "worker 112 (cg_c)"] {
            assert!(threads.iter().any(|t| t == want), "no track {want}: {threads:?}");
        }
        assert_eq!(names(&events, "process_name"), ["VM: ktstr_test 'steps_are_phases'"]);
        let n = run.monitor.as_ref().unwrap().samples.len();
        let nr: Vec<&Value> = events.iter().filter(|e| e["ph"] == "C" && e["args"]["nr_running"].is_number()).collect();
        assert_eq!(nr.len(), 2 * n, "one per sample and CPU");
        let ts: Vec<f64> = nr.iter().filter(|e| e["name"] == "cpu0").map(|e| e["ts"].as_f64().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "samples in time order: {ts:?}");
        assert_eq!(ts.last(), Some(&(run.monitor.as_ref().unwrap().samples[n - 1].at_ms as f64 * 1000.0)));
        let phases: Vec<(f64, f64)> = events
            .iter()
            .filter(|e| e["cat"] == "phase")
            .map(|e| (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap()))
            .collect();
        assert_eq!(phases, [(0.0, 1_628_000.0), (1_628_000.0, 1_551_000.0)]);
        assert_eq!(events.iter().filter(|e| e["cat"] == "gap").count(), 4);
        assert!(!events.iter().any(|e| e["ph"] == "i"), "a passing run has no failure instant");
    }

    /// A real stall with a repro trail: the failure instant, the stuck
    /// worker's 6.5 s gap, and the probed calls as slices in order on the
    /// trigger's CPU, begun before the exit claimed there.
    #[test]
    fn a_crash_traces_its_moment_and_the_repro_calls() {
        let run = sidecar(CRASH);
        let tr = trail();
        let pic = Picture { title: "t", run: &run, report: "", trail: Some(&tr) };
        let bytes = render(&pic);
        let events = valid(&bytes);
        let marks: Vec<&Value> = events.iter().filter(|e| e["ph"] == "i" && e["s"] == "g").collect();
        assert_eq!(marks.len(), 1);
        assert_eq!((marks[0]["cat"].as_str(), marks[0]["ts"].as_f64()), (Some("scheduler-left"), Some(7_752_000.0)));
        let gap = events.iter().find(|e| e["cat"] == "gap" && e["args"]["gap_ms"] == 6545).expect("the stall");
        assert_eq!(gap["ts"].as_f64(), Some(1_105_000.0));
        let repro: Vec<&Value> = events.iter().filter(|e| e["pid"] == REPRO_PID).collect();
        let tid = repro
            .iter()
            .find(|e| e["ph"] == "M" && e["args"]["name"] == "calls of ktstr-worker[131] on cpu1")
            .map(|e| e["tid"].clone())
            .expect("the exiting task's track on the trigger's CPU");
        let calls: Vec<&&Value> = repro.iter().filter(|e| e["ph"] == "X" && e["tid"] == tid).collect();
        assert!(calls.len() > 10, "{}", calls.len());
        let order: Vec<u64> = calls.iter().map(|e| e["args"]["order"].as_u64().unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "in the stitched order");
        let exit = repro.iter().find(|e| e["ph"] == "i" && e["cat"] == "exit").expect("the trigger");
        assert_eq!(exit["tid"], tid);
        // Every call began before the exit; the ones it was claimed in
        // (dispatch calling scx_bpf_error) end after it.
        let exit_ts = exit["ts"].as_f64().unwrap();
        assert!(calls.iter().all(|e| e["ts"].as_f64().unwrap() <= exit_ts), "calls start before the exit");
        assert!(calls.iter().any(|e| e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap() > exit_ts));
        assert!(calls.iter().any(|e| e["name"] == "ktstr_dispatch" && e["cat"] == "scheduler callback"));
    }

    /// Garbage from the guest: huge times, gaps past their phase, no
    /// samples; the trace stays valid.
    #[test]
    fn odd_figures_keep_the_trace_valid() {
        let mut run = sidecar("monitor/fair_two_cgroups.ktstr.json");
        let st = run.stats.as_mut().unwrap();
        st.phases[0].cgroups[0].workers[0].max_gap_at_ns = u64::MAX;
        st.phases[0].cgroups[0].workers[0].max_gap_ns = u64::MAX;
        st.phases[0].cgroups[0].workers[1].max_gap_at_ns = 3_000_000_000;
        st.phases[0].cgroups[0].workers[1].max_gap_ns = 2_000_000_000;
        st.phases[0].cgroups[0].workers[1].wall_ns = 0;
        run.monitor.as_mut().unwrap().samples[3].at_ms = u64::MAX;
        run.passed = false;
        let mut tr = trail();
        tr.events.iter_mut().step_by(3).for_each(|e| e.ts_ns = u64::MAX - e.ts_ns);
        let pic = Picture { title: "t", run: &run, report: "", trail: Some(&tr) };
        let events = valid(&render(&pic));
        assert!(names(&events, "thread_name").iter().any(|n| n.ends_with("(overlapping)")), "misnested moved aside");
        run.monitor = None;
        run.stats = None;
        valid(&render(&Picture { title: "t", run: &run, report: "", trail: None }));
    }
}
