//! Stitching the repro VM's probe events and rendering the
//! `--- auto-repro ---` section (spec 000 and 002).

use std::fmt::Write;
use std::time::Duration;

use crate::outcome::{RunOutcome, StageReached};
use crate::probe::decode::value;
use crate::probe::stitch::{stitch, Call};
use crate::probe::{ProbeTrail, TriggerStatus};

/// Calls shown before the exit; older ones are counted, not printed.
const MAX_CALLS: usize = 12;
/// Lines of each diagnostic tail.
const TAIL: usize = 40;
/// Where a function's source location starts.
const SOURCE_COLUMN: usize = 64;
/// Width of a field's name and of its entry value.
const NAME_W: usize = 11;
const VALUE_W: usize = 24;

/// The section: the trail (or why there is none), the pipeline's
/// accounting, the repro VM's wall time and its diagnostic tails.
/// `kernel_lines` says why kernel functions lack `file:line`, if any do
/// (see [`super::add_kernel_sources`]).
pub fn render(
    primary: &RunOutcome,
    repro: Result<&RunOutcome, &str>,
    wall: Duration,
    kernel_lines: Option<&str>,
) -> String {
    let mut s = String::from("\n--- auto-repro ---\n");
    let repro = match repro {
        Ok(r) => r,
        Err(why) => {
            let _ = writeln!(s, "repro VM did not run: {why}");
            return s;
        }
    };
    match &repro.probe_trail {
        Some(trail) => {
            let calls = trail.trigger.as_ref().map(|t| stitch(trail, t.ts_ns)).unwrap_or_default();
            trail_text(&mut s, trail, &calls, kernel_lines);
            pipeline_text(&mut s, trail, calls.len(), wall);
        }
        None => {
            s.push_str("--- probe pipeline ---\nno probe data came back from the repro VM\n");
            let _ = writeln!(s, "repro VM duration: {:.1}s", wall.as_secs_f64());
        }
    }
    tails(&mut s, repro);
    if primary.stage < StageReached::PayloadNoResult || primary.sched_exit.as_ref().is_some_and(|(_, during)| !during) {
        s.push_str("PRIMARY DID NOT REACH WORKLOAD\n");
    }
    let _ = writeln!(s, "{}", verdict(repro));
    s
}

fn trail_text(s: &mut String, trail: &ProbeTrail, calls: &[Call], kernel_lines: Option<&str>) {
    let Some(trigger) = &trail.trigger else {
        s.push_str("=== AUTO-PROBE: scx_exit did not fire ===\n");
        return;
    };
    s.push_str("=== AUTO-PROBE: scx_exit fired ===\n");
    let _ = writeln!(s, "exit claimed by {}[{}] on CPU {}", trigger.comm, trigger.pid, trigger.cpu);
    if trail.by_cpu {
        let _ =
            writeln!(s, "(no probed call names that task: the calls on CPU {} up to the exit instead)", trigger.cpu);
    }
    if calls.is_empty() {
        s.push_str("(no probed call of that task was recorded)\n");
        return;
    }
    let from = calls.len().saturating_sub(MAX_CALLS);
    if from > 0 {
        let _ = writeln!(s, "({from} earlier calls not shown)");
    }
    for call in &calls[from..] {
        s.push('\n');
        call_text(s, call);
    }
    if let Some(note) = kernel_lines {
        let _ = writeln!(s, "\n{note}");
    }
}

fn call_text(s: &mut String, call: &Call) {
    let f = call.func;
    let head = format!("  {}", f.name);
    match &f.source {
        Some(src) => {
            let pad = SOURCE_COLUMN.saturating_sub(head.len()).max(1);
            let _ = writeln!(s, "{head}{}{src}", " ".repeat(pad));
        }
        None => {
            let _ = writeln!(s, "{head}");
        }
    }
    let (first, second) = match (call.entry, call.exit) {
        (Some(a), b) => (a, b),
        (None, Some(b)) => (b, None),
        (None, None) => return,
    };
    let mut field_at = 0;
    for (i, p) in f.params.iter().enumerate() {
        if p.fields.is_empty() {
            let raw = first.args.get(i).copied().unwrap_or(0);
            let _ = writeln!(s, "    {} {:<w$} {}", p.type_name, p.name, value(&p.kind, raw), w = NAME_W);
            continue;
        }
        let _ = writeln!(s, "    {}{}", p.type_name, p.name);
        for field in &p.fields {
            let a = value(&field.kind, first.fields.get(field_at).copied().unwrap_or(0));
            let b = second.map(|x| value(&field.kind, x.fields.get(field_at).copied().unwrap_or(0)));
            field_at += 1;
            match b.filter(|b| *b != a) {
                Some(b) => {
                    let _ = writeln!(s, "      {:<nw$} {a:<vw$} →  {b}", field.name, nw = NAME_W, vw = VALUE_W);
                }
                None => {
                    let _ = writeln!(s, "      {:<nw$} {a}", field.name, nw = NAME_W);
                }
            }
        }
    }
}

fn pipeline_text(s: &mut String, trail: &ProbeTrail, after_stitch: usize, wall: Duration) {
    let p = &trail.pipeline;
    s.push_str("\n--- probe pipeline ---\n");
    let _ = writeln!(s, "extracted: {} functions from crash backtrace", p.extracted);
    // The crash stack's own functions; callers added to bridge to the
    // callbacks are accounted below, with the reason each was left out.
    let stack_dropped: Vec<&str> =
        p.dropped.iter().filter(|d| d.caller_of.is_none()).map(|d| d.name.as_str()).collect();
    let _ = write!(s, "traceable: {} passed, {} dropped", p.traceable, stack_dropped.len());
    if !stack_dropped.is_empty() {
        let _ = write!(s, ": {}", stack_dropped.join(", "));
    }
    s.push('\n');
    let _ = writeln!(s, "bpf_discover: {} programs found", p.bpf_discovered);
    let _ = writeln!(s, "after_expand: {} total probe targets", p.after_expand);
    let _ = writeln!(s, "kprobes: {} attached", p.kprobes_attached);
    let _ = writeln!(s, "fentry/fexit: {} fentry, {} fexit attached", p.fentry_attached, p.fexit_attached);
    match &p.trigger {
        TriggerStatus::Attached => s.push_str("trigger: attached (tp_btf/sched_ext_exit)\n"),
        TriggerStatus::AttachFailed(why) => {
            let _ = writeln!(s, "trigger: attach failed ({why})");
        }
    }
    let _ = writeln!(s, "probe_data: {} keys, {} unmatched IPs", p.probe_keys, p.unmatched);
    let _ = write!(s, "events: {} captured, {after_stitch} after stitch", p.events_captured);
    if p.events_held < p.events_captured {
        let _ = write!(s, " ({} held in the guest at the exit)", p.events_held);
    }
    if p.events_lost > 0 {
        let _ = write!(s, " ({} lost: ring buffer full)", p.events_lost);
    }
    s.push('\n');
    for d in &p.dropped {
        let _ = writeln!(s, "  dropped {}: {}", d.name, d.reason());
    }
    for (name, why) in &p.attach_failed {
        let _ = writeln!(s, "  dropped {name}: {why}");
    }
    let _ = writeln!(s, "probes ready {:.1}s after the scheduler attached", p.setup_ms as f64 / 1000.0);
    let _ = writeln!(s, "repro VM duration: {:.1}s", wall.as_secs_f64());
}

/// The repro VM's scheduler log, sched_ext dump and console, the last
/// lines of each that has any.
fn tails(s: &mut String, repro: &RunOutcome) {
    let log = crate::crash::collapse_cycles(&repro.sched_log);
    let console: Vec<String> = repro.vm.console.lines().map(str::to_string).collect();
    for (what, lines) in
        [("repro scheduler log", &log), ("repro sched_ext dump", &repro.sched_ext_dump), ("repro dmesg", &console)]
    {
        if lines.iter().all(|l| l.trim().is_empty()) {
            continue;
        }
        let from = lines.len().saturating_sub(TAIL);
        let _ = writeln!(s, "\n{what} (last {} of {} lines):", lines.len() - from, lines.len());
        for l in &lines[from..] {
            let _ = writeln!(s, "  {}", l.trim_end_matches('\r'));
        }
    }
}

/// Whether the crash came back in the repro VM.
fn verdict(repro: &RunOutcome) -> String {
    match (&repro.bug_summary, &repro.sched_exit) {
        (Some(b), _) => format!("crash reproduced: {b}"),
        (None, Some((status, _))) => format!("crash reproduced: scheduler exited ({status})"),
        (None, None) => "crash did not reproduce in the repro VM".into(),
    }
}

#[cfg(test)]
mod tests {
    //! On a real trail (`crate::probe::stitch::tests::trail`).

    use super::*;
    use crate::probe::stitch::tests::trail;

    #[test]
    fn the_trail_decodes_callbacks_and_kernel_functions() {
        let t = trail();
        let calls = stitch(&t, t.trigger.as_ref().unwrap().ts_ns);
        let mut s = String::new();
        trail_text(&mut s, &t, &calls, Some("kernel functions: no source lines (test)"));
        assert!(
            s.starts_with("=== AUTO-PROBE: scx_exit fired ===\nexit claimed by ktstr-worker[131] on CPU 1\n"),
            "{s}"
        );
        let callback = regex::Regex::new(r"(?m)^  ktstr_\w+ +main\.bpf\.c:\d+$").unwrap();
        assert!(callback.is_match(&s), "{s}");
        assert!(s.contains("\n    task_struct *p\n      pid         131\n"), "{s}");
        // Decoded, not raw: a cpumask with its CPUs, flags by name.
        assert!(s.contains("      cpus_ptr    0xf(0-3)\n"), "{s}");
        assert!(s.lines().any(|l| l.starts_with("      scx_flags   ") && l.contains("ENABLED")), "{s}");
        assert!(s.lines().any(|l| l.starts_with("      ") && l.contains(" →  ")), "{s}");
        assert!(s.contains("kernel functions: no source lines"), "{s}");
    }

    #[test]
    fn stitching_pairs_each_entry_with_its_own_exit_before_the_trigger() {
        let t = trail();
        let until = t.trigger.as_ref().unwrap().ts_ns;
        let calls = stitch(&t, until);
        assert!(!calls.is_empty());
        let mut last = 0;
        for c in &calls {
            let first = c.entry.or(c.exit).unwrap();
            assert!(first.ts_ns <= until && first.ts_ns >= last, "calls in time order, before the exit");
            last = first.ts_ns;
            if let (Some(a), Some(b)) = (c.entry, c.exit) {
                assert!(!a.exit && b.exit && a.func == b.func && a.cpu == b.cpu && b.ts_ns >= a.ts_ns);
            }
        }
        let mut s = String::new();
        pipeline_text(&mut s, &t, calls.len(), Duration::from_millis(8700));
        assert!(s.contains("\ntrigger: attached (tp_btf/sched_ext_exit)\n"), "{s}");
        let want = format!(", {} after stitch", calls.len());
        assert!(s.contains(&want), "{s}");
        assert!(s.ends_with("repro VM duration: 8.7s\n"), "{s}");
    }

    #[test]
    fn garbage_from_the_guest_never_panics() {
        let mut t = trail();
        for (i, e) in t.events.iter_mut().enumerate() {
            // Unknown functions, short field lists, no args.
            e.func = if i % 3 == 0 { u32::MAX } else { e.func };
            e.fields.truncate(i % 4);
            e.args.clear();
        }
        t.funcs.truncate(2);
        let calls = stitch(&t, u64::MAX);
        let mut s = String::new();
        trail_text(&mut s, &t, &calls, None);
        pipeline_text(&mut s, &t, calls.len(), Duration::ZERO);
        drop(calls);
        t.trigger = None;
        trail_text(&mut s, &t, &[], None);
    }
}
