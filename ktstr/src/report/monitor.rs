//! `--- monitor ---`: the host-side monitor's summary of the workload, in
//! the spec's line shapes, then its verdict. Figures the monitor could
//! not get say why instead of reading as zeros.

use std::fmt::Write;

use crate::monitor::summary::{Figures, MAIN_EVENTS};
use crate::monitor::verdict::Verdict;
use crate::monitor::MonitorReport;

/// The block's body, ending in the verdict: `monitor OK`, or one line
/// per violated threshold.
pub fn render(m: &MonitorReport, v: &Verdict) -> String {
    let (stuck, violations) = (v.stuck, &v.failures);
    let mut s = String::new();
    if let Some(why) = &m.unavailable {
        let _ = writeln!(s, "unavailable: {why}");
    } else {
        let f = Figures::of(&m.samples, &m.event_names);
        let _ = writeln!(
            s,
            "samples={} max_imbalance={:.2} max_dsq_depth={} stuck={stuck}",
            f.samples, f.max_imbalance, f.max_dsq_depth
        );
        let _ = writeln!(
            s,
            "avg: imbalance={:.2} nr_running/cpu={:.1} dsq/cpu={:.1}",
            f.avg_imbalance, f.avg_nr_running, f.avg_dsq
        );
        events(&mut s, &f, m);
        schedstat(&mut s, &f);
    }
    bpf(&mut s, m);
    for n in &m.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if m.unavailable.is_none() {
        let _ = writeln!(
            s,
            "sources: rq, events, schedstat read by the host from guest RAM every {}ms; bpf counted in the guest \
             over the workload",
            m.interval_ms
        );
    }
    if violations.is_empty() {
        let _ = writeln!(s, "verdict: monitor OK");
    }
    for v in violations {
        let _ = writeln!(s, "verdict: {v}");
    }
    s
}

fn events(s: &mut String, f: &Figures, m: &MonitorReport) {
    let Some(all) = &f.events else {
        let why = if m.event_names.is_empty() {
            "this kernel's counters are not readable (see note)"
        } else if m.samples.iter().any(|s| s.events.is_some()) {
            "fewer than two samples with counters"
        } else {
            "no sched_ext scheduler was loaded while sampling"
        };
        let _ = writeln!(s, "events: n/a ({why})");
        return;
    };
    let main: Vec<String> = MAIN_EVENTS
        .iter()
        .filter_map(|(_, name)| {
            let c = f.event(name)?;
            // The spec shows no rate for `offline`: CPUs going offline are
            // events to count, not to pace.
            Some(if *name == "offline" {
                format!("{name}={}", c.total)
            } else {
                format!("{name}={} ({:.1}/s)", c.total, c.per_s)
            })
        })
        .collect();
    let _ = writeln!(s, "events: {}", main.join(" "));
    let more: Vec<String> = all
        .iter()
        .filter(|c| c.total > 0 && !MAIN_EVENTS.iter().any(|(_, n)| *n == c.name))
        .map(|c| format!("{}={}", c.name, c.total))
        .collect();
    if !more.is_empty() {
        let _ = writeln!(s, "events+: {}", more.join(" "));
    }
}

fn schedstat(s: &mut String, f: &Figures) {
    let Some(st) = &f.schedstat else {
        let _ = writeln!(s, "schedstat: n/a (fewer than two samples)");
        return;
    };
    let opt = |v: Option<u64>| v.map_or("n/a".to_string(), |v| v.to_string());
    let per_s = |v: u64| if f.span_s > 0.0 { v as f64 / f.span_s } else { 0.0 };
    let csw = st.csw.map_or("n/a".into(), |c| format!("{c} ({:.0}/s)", per_s(c)));
    let delay = st.run_delay_ns.map_or("n/a".into(), |d| format!("{:.0}ns/s", per_s(d)));
    let _ = writeln!(s, "schedstat: csw={csw} run_delay={delay} ttwu={} goidle={}", opt(st.ttwu), opt(st.goidle));
}

fn bpf(s: &mut String, m: &MonitorReport) {
    let Some(b) = &m.bpf else { return };
    let (ran, idle): (Vec<_>, Vec<_>) = b.progs.iter().partition(|p| p.run_cnt > 0);
    for p in ran {
        let per_call = p.run_time_ns.checked_div(p.run_cnt).unwrap_or(0);
        let _ = writeln!(s, "bpf: {} cnt={} {per_call}ns/call verified_insns={}", p.name, p.run_cnt, p.verified_insns);
    }
    if !idle.is_empty() {
        let names: Vec<&str> = idle.iter().map(|p| p.name.as_str()).collect();
        let _ = writeln!(s, "bpf: not run: {}", names.join(" "));
    }
    if let Some(e) = &b.error {
        let _ = writeln!(s, "bpf: n/a ({e})");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::check::Checks;
    use crate::monitor::verdict::evaluate;

    /// The `monitor` of a real run's stats sidecar, captured from a VM
    /// (`tests/fixtures/monitor`).
    pub(crate) fn fixture(name: &str) -> MonitorReport {
        let path = format!("{}/tests/fixtures/monitor/{name}.ktstr.json", env!("CARGO_MANIFEST_DIR"));
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        serde_json::from_value(doc["monitor"].clone()).unwrap()
    }

    /// A real run (fair_two_cgroups, 4 CPUs, scx-ktstr), in the spec's
    /// shapes, figures checked by hand against the samples.
    #[test]
    fn real_run_renders_in_the_spec_shapes() {
        let m = fixture("fair_two_cgroups");
        assert_eq!(
            render(&m, &evaluate(&m, &Checks::DEFAULT)),
            "samples=33 max_imbalance=3.00 max_dsq_depth=1 stuck=0
avg: imbalance=1.24 nr_running/cpu=1.0 dsq/cpu=0.0
events: fallback=0 (0.0/s) keep_last=0 (0.0/s) offline=0
events+: enq_skip_exiting=2 refill_slice_dfl=2
schedstat: csw=1132 (353/s) run_delay=364239881ns/s ttwu=333 goidle=300
bpf: ktstr_select_cp cnt=332 21388ns/call verified_insns=156
bpf: ktstr_enqueue cnt=798 5232ns/call verified_insns=207
bpf: ktstr_dispatch cnt=855 23588ns/call verified_insns=36
bpf: ktstr_tick cnt=1964 2467ns/call verified_insns=131
bpf: ktstr_running cnt=859 1180ns/call verified_insns=10
bpf: ktstr_stopping cnt=859 4092ns/call verified_insns=27
bpf: ktstr_enable cnt=7 4044ns/call verified_insns=8
bpf: not run: ktstr_dump ktstr_dump_task ktstr_init ktstr_exit
sources: rq, events, schedstat read by the host from guest RAM every 100ms; bpf counted in the guest over the workload
verdict: monitor OK
"
        );
        // The totals are last sample less first: 1371+878+811+852 context
        // switches at the end, 1093+585+523+579 at the start, 3.209 s apart.
        // Imbalance: 2 in 6 samples, 3 in one, 1 in the other 26.
        let (a, b) = (&m.samples[0], m.samples.last().unwrap());
        let csw =
            |s: &crate::monitor::sample::Sample| s.cpus.iter().flatten().map(|c| c.nr_switches.unwrap()).sum::<u64>();
        assert_eq!(csw(b) - csw(a), 1132);
    }

    /// What could not be read says why, and no figure reads as zero.
    #[test]
    fn missing_figures_say_why() {
        let m = MonitorReport {
            interval_ms: 100,
            unavailable: Some("the guest kernel has no symbol runqueues".into()),
            notes: vec!["symbols not found in the guest: runqueues".into()],
            ..Default::default()
        };
        assert_eq!(
            render(&m, &Verdict::default()),
            "unavailable: the guest kernel has no symbol runqueues\nnote: symbols not found in the guest: \
             runqueues\nverdict: monitor OK\n"
        );
        // Samples without event counters (no sched_ext scheduler), one CPU
        // unreadable, schedstat counters missing from the kernel.
        let mut m = fixture("fair_two_cgroups");
        for s in &mut m.samples {
            s.events = None;
            s.cpus[3] = None;
            for c in s.cpus.iter_mut().flatten() {
                c.ttwu = None;
            }
        }
        m.bpf = None;
        let text = render(&m, &Verdict::default());
        assert!(text.contains("\nevents: n/a (no sched_ext scheduler was loaded while sampling)\n"), "{text}");
        assert!(text.contains(" ttwu=n/a goidle="), "{text}");
        assert!(!text.contains("bpf:") && !text.contains("events+"), "{text}");
    }

    #[test]
    fn violations_replace_ok() {
        let m = fixture("fair_two_cgroups");
        let v = Verdict { failures: vec!["monitor: a".into(), "monitor: b".into()], stuck: 2 };
        let text = render(&m, &v);
        assert!(text.starts_with("samples=33 max_imbalance=3.00 max_dsq_depth=1 stuck=2\n"), "{text}");
        assert!(text.ends_with("\nverdict: monitor: a\nverdict: monitor: b\n"), "{text}");
        assert!(!text.contains("monitor OK"));
    }

    /// The guest is untrusted: absurd samples render, they do not panic.
    #[test]
    fn hostile_samples_do_not_panic() {
        use crate::monitor::sample::{CpuSample, Sample};
        let huge = CpuSample {
            nr_running: u32::MAX,
            scx_nr_running: u32::MAX,
            local_dsq: u32::MAX,
            clock: u64::MAX,
            idle: None,
            nr_switches: Some(u64::MAX),
            run_delay_ns: Some(0),
            ttwu: Some(u64::MAX),
            goidle: None,
        };
        let m = MonitorReport {
            interval_ms: 100,
            event_names: vec!["SCX_EV_SELECT_CPU_FALLBACK".into(), "X".into()],
            samples: vec![
                Sample { at_ms: u64::MAX, cpus: vec![Some(huge.clone()), None], events: Some(vec![u64::MAX]) },
                Sample { at_ms: 0, cpus: vec![], events: Some(vec![0, 1, 2]) },
                Sample { at_ms: 5, cpus: vec![Some(CpuSample::default()), Some(huge)], events: None },
            ],
            ..Default::default()
        };
        let all = Checks {
            max_imbalance_ratio: Some(0.0),
            max_local_dsq_depth: Some(0),
            fail_on_stall: Some(true),
            sustained_samples: Some(1),
            max_fallback_rate: Some(0.0),
            max_keep_last_rate: Some(0.0),
            ..Checks::NONE
        };
        let text = render(&m, &evaluate(&m, &all));
        assert!(text.starts_with("samples=3 max_imbalance=4294967295.00 max_dsq_depth=4294967295"), "{text}");
        assert!(render(&MonitorReport::default(), &Verdict::default()).starts_with("samples=0 "));
    }
}
