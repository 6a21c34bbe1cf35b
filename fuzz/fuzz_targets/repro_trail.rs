//! Auto-repro's trail as the host decodes and renders it: probed values
//! by kind (`probe::decode::value`: DSQ ids, `SCX_ENQ_*` and `SCX_TASK_*`
//! flags, cpumasks, enums, integers) over an input-chosen u64, and the
//! `--- auto-repro ---` section (`repro::render`: stitching entries to
//! exits, every call's decoded fields, the probe pipeline's accounting)
//! over a deserialised `ProbeTrail`, the record the repro VM's guest sends.
//!
//! Input: `raw: u64 LE | size: u8 | sel: u8 | ProbeTrail JSON`.

#![no_main]

use std::time::Duration;

use ktstr::probe::{ProbeTrail, ValueKind};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut h = common::Header::new(data);
    let raw = h.u64();
    let size = h.u8();
    let sel = h.u8();
    let kinds = [
        ValueKind::Int { signed: true, size },
        ValueKind::Int { signed: false, size },
        ValueKind::DsqId,
        ValueKind::EnqFlags,
        ValueKind::ScxFlags,
        ValueKind::Cpumask,
        ValueKind::Ptr,
        ValueKind::Enum { variants: vec![("A".into(), raw as i64), ("B".into(), i64::from(size))] },
    ];
    for k in &kinds {
        let text = ktstr::fuzz_api::probe_value(k, raw);
        assert!(!text.is_empty(), "{k:?} of {raw:#x} reads as nothing");
    }
    assert!(ktstr::fuzz_api::probe_value(&ValueKind::Cpumask, raw).starts_with(&format!("{raw:#x}(")));

    let Ok(trail) = serde_json::from_slice::<ProbeTrail>(h.rest) else { return };
    let primary = ktstr::fuzz_api::outcome(common::vm_output(String::new(), Vec::new(), sel));
    let mut repro = ktstr::fuzz_api::outcome(common::vm_output("[    1.0] console\n".into(), Vec::new(), sel));
    repro.sched_exit = (sel & 1 != 0).then(|| ("exit status 1".to_string(), sel & 2 != 0));
    repro.probe_trail = Some(trail);
    let note = (sel & 4 != 0).then_some("kernel functions: no source lines (fuzz)");
    let s = ktstr::repro::render(&primary, Ok(&repro), Duration::from_millis(8700), note);
    assert!(s.starts_with("\n--- auto-repro ---\n"));
});
