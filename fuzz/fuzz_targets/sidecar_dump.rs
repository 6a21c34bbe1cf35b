//! What the host reads back from disk and renders: stats sidecars
//! (`wire::records::StatsSidecar`, read by `report::matrix::Matrix` and
//! `cargo ktstr`'s replay), the failure dump (`wire::dump::FailureDump`,
//! which arrives from the guest and is written as it came) and the last
//! run's record (`wire::records::RunRecord`). Each sidecar is classified
//! and tabled as the matrix does, and its stats and monitor samples go
//! through the failure report (judge, `--- stats ---`, `--- timeline ---`,
//! `--- monitor ---`) as if a run had produced them.
//!
//! Input: `sel: u8 | JSON`; a run of concatenated sidecars is read one
//! after the other, as a directory of them would be.

#![no_main]

use ktstr::check::AssertResult;
use ktstr::report::matrix::{classify, parse_test_name, Matrix};
use ktstr::wire::dump::FailureDump;
use ktstr::wire::records::{RunRecord, StatsSidecar};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn sidecar(s: &StatsSidecar, sel: u8) {
    let _ = (s.is_news(), s.what());
    if let Some(st) = &s.stats {
        let _ = st.duration_ms();
        for c in st.totals() {
            let _ = (c.cpus_used(), c.iterations(), c.migrations(), c.worst_gap());
            for w in &c.workers {
                let pct = w.off_cpu_pct();
                assert!((0.0..=100.0).contains(&pct), "off-CPU share {pct}");
                assert!(w.iteration_rate() >= 0.0);
            }
        }
    }
    // The sidecar as a run's outcome: what the report renders from.
    let mut o = ktstr::fuzz_api::outcome(common::vm_output(String::new(), Vec::new(), sel));
    o.result = Some(AssertResult { passed: s.passed, details: s.reasons.clone(), stats: s.stats.clone() });
    o.sched_log = s.scheduler_log_tail.clone();
    o.bug_summary = s.bug_summary.clone();
    o.monitor = s.monitor.clone();
    common::report(&o, &common::checks(sel, s.vm_ms.unwrap_or(0) as u32));
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, json)) = data.split_first() else { return };
    let mut m = Matrix::default();
    let mut scenarios = Vec::new();
    for s in serde_json::Deserializer::from_slice(json).into_iter::<StatsSidecar>() {
        let Ok(s) = s else { break };
        sidecar(&s, sel);
        if let Some((sched, scen, topo)) = parse_test_name(&s.test) {
            if !scenarios.iter().any(|x| x == scen) {
                scenarios.push(scen.to_string());
            }
            m.cells.insert((sched.into(), scen.into(), topo.into()), classify(&s));
        } else {
            let _ = classify(&s);
        }
    }
    if !m.cells.is_empty() {
        let scen: Vec<&str> = scenarios.iter().map(String::as_str).collect();
        let _ = m.markdown(&scen);
        let _ = m.vm_time();
    }
    if let Ok(d) = serde_json::from_slice::<FailureDump>(json) {
        for p in &d.progs {
            let _ = p.ns_per_call();
        }
        // Written as `artifacts` writes it, it must read back. (Not
        // compared: serde_json parses floats to within an ulp, so a float
        // may come back a bit off; BPF state holds integers.)
        let text = serde_json::to_vec_pretty(&d).expect("a dump read back serialises");
        let back: FailureDump = serde_json::from_slice(&text).expect("a dump written reads back");
        assert_eq!(back.maps.len(), d.maps.len());
    }
    if let Ok(r) = serde_json::from_slice::<RunRecord>(json) {
        for f in &r.failed {
            let _ = f.filter();
        }
    }
});
