//! Reading a scheduler crash out of the text a run leaves behind: the
//! scheduler's log (which carries the kernel's DEBUG DUMP, as scx_utils'
//! `uei_report` prints it), the `sched_ext_dump` trace lines, and the
//! kernel console.
//!
//! Everything here is host-side and takes text that came out of the guest,
//! which is untrusted: no input makes these functions panic, and each runs
//! in time linear in its input.
//!
//! The shapes parsed are the kernel's (`kernel/sched/ext.c`):
//! `scx_dump_state()` opens an error dump with
//! `<comm>[<pid>] triggered exit kind <N>[ on CPU <c>]:`, then the
//! indented `  <reason> (<msg>)`, a blank line and `Backtrace:` with one
//! indented `function+0xoff/0xlen` per frame.

mod collapse;
mod oops;
mod trace;

#[cfg(test)]
mod tests;

pub use collapse::collapse_cycles;
pub use oops::{kernel_crash, KernelCrash};
pub use trace::parse_sched_ext_dump_trace;

/// Reasons of orderly exits: the loader detaching at the end of a run
/// prints `EXIT: unregistered from user space`, and a verbose console logs
/// the same with pr_info. Neither is a crash.
const ORDERLY_EXITS: &[&str] = &["unregistered from user space"];

/// The one-line cause, e.g. `scx_bpf_error (src/bpf/main.bpf.c:424: ktstr:
/// host-triggered crash)` or `runnable task stall (ktstr-worker[107] failed
/// to run for 30.132s)`: what follows `BUG SUMMARY: ` in the report.
///
/// In order of preference: the kernel's triggered-exit lines, from the
/// scheduler log's DEBUG DUMP, else from the `sched_ext_dump` trace lines
/// (the same dump, for a scheduler that does not print it); else the
/// loader's `EXIT: ` line; else the kernel console's error lines.
pub fn bug_summary(sched_log: &[String], sched_ext_dump: &[String], console: &str) -> Option<String> {
    triggered_exit(sched_log)
        .or_else(|| triggered_exit(sched_ext_dump))
        .map(|(_, reason)| reason.to_string())
        .or_else(|| loader_exit(sched_log))
        .or_else(|| console_error(console))
}

/// Function names of the triggered exit's backtrace, innermost first
/// ("scx_exit+0x50/0x70" gives "scx_exit"). Auto-repro probes these.
pub fn exit_backtrace(lines: &[String]) -> Vec<String> {
    exit_backtrace_frames(lines).into_iter().map(|(function, _)| function).collect()
}

/// The triggered exit's backtrace frames, in order, as
/// `(function, offset_text)`: "scx_exit+0x50/0x70" gives
/// `("scx_exit", "+0x50/0x70")`. Empty when `lines` hold no triggered exit
/// or it has no backtrace (a kernel without CONFIG_STACKTRACE).
pub fn exit_backtrace_frames(lines: &[String]) -> Vec<(String, String)> {
    let Some((at, _)) = triggered_exit(lines) else { return Vec::new() };
    // `Backtrace:` follows the reason line and a blank line; a few lines of
    // slack, but never the backtrace of something further down the dump.
    let Some(bt) = lines.iter().skip(at + 2).take(3).position(|l| l.trim() == "Backtrace:") else {
        return Vec::new();
    };
    lines
        .iter()
        .skip(at + 2 + bt + 1)
        .map_while(|l| split_frame(l))
        .map(|(f, o)| (f.to_string(), o.to_string()))
        .collect()
}

/// One backtrace line ("  scx_exit+0x50/0x70", optionally followed by a
/// module in brackets) as `(function, offset_text)`; `None` for anything
/// else, which ends a backtrace.
pub fn split_frame(line: &str) -> Option<(&str, &str)> {
    let mut tokens = line.split_whitespace();
    let frame = tokens.next()?;
    // `%pS` adds ` [module]` for module text; nothing else may follow.
    match (tokens.next(), tokens.next()) {
        (None, _) => {}
        (Some(m), None) if m.starts_with('[') && m.ends_with(']') => {}
        _ => return None,
    }
    let (function, offset) = frame.split_at(frame.rfind('+')?);
    let (off, len) = offset[1..].split_once('/')?;
    let hex = |s: &str| s.strip_prefix("0x").is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()));
    (!function.is_empty() && hex(off) && hex(len)).then_some((function, offset))
}

/// The first `... triggered exit kind N[ on CPU c]:` line followed by an
/// indented reason: its index and the trimmed reason.
fn triggered_exit(lines: &[String]) -> Option<(usize, &str)> {
    lines.windows(2).enumerate().find_map(|(i, pair)| {
        let reason = pair[1].trim();
        let indented = pair[1].starts_with([' ', '\t']);
        (is_exit_header(&pair[0]) && indented && !reason.is_empty()).then_some((i, reason))
    })
}

/// `<comm>[<pid>] triggered exit kind <N>[ on CPU <c>]:`
fn is_exit_header(line: &str) -> bool {
    let Some((task, rest)) = line.trim().split_once(" triggered exit kind ") else { return false };
    let Some(rest) = rest.strip_suffix(':') else { return false };
    let (kind, cpu) = rest.split_once(" on CPU ").unwrap_or((rest, "0"));
    task.ends_with(']') && is_number(kind) && is_number(cpu)
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The loader's last word, `EXIT: <reason>` (scx_utils prints it plain for
/// an orderly exit and as the `Error: EXIT: ...` of a failing `main`
/// otherwise), without the ` on CPU N` the kernel appends.
fn loader_exit(sched_log: &[String]) -> Option<String> {
    sched_log.iter().find_map(|l| {
        let l = l.trim();
        let why = l.strip_prefix("Error: EXIT: ").or_else(|| l.strip_prefix("EXIT: "))?;
        let why = strip_on_cpu(why.trim());
        (!why.is_empty() && !is_orderly(why)).then(|| why.to_string())
    })
}

fn strip_on_cpu(s: &str) -> &str {
    match s.rsplit_once(" on CPU ") {
        Some((head, cpu)) if is_number(cpu) => head,
        _ => s,
    }
}

fn is_orderly(reason: &str) -> bool {
    ORDERLY_EXITS.iter().any(|o| reason.starts_with(o))
}

/// The kernel's own report of an error exit, in either of its shapes:
/// `BPF scheduler "<name>" disabled (<reason>)` then `<name>: <msg>`
/// (mainline, 6.12 on), or `BPF scheduler "<name>" errored, disabling`
/// then `<reason> (<msg>)` (the sched_ext trees before it was merged);
/// each line after `sched_ext: `.
fn console_error(console: &str) -> Option<String> {
    const TAG: &str = "sched_ext: ";
    // Console lines carry a timestamp before the tag; other messages may
    // be interleaved, so the second line is looked for a little further on.
    let bodies: Vec<Option<&str>> =
        console.lines().map(|l| l.find(TAG).map(|at| l[at + TAG.len()..].trim_end())).collect();
    bodies.iter().enumerate().find_map(|(i, body)| {
        let (name, rest) = body.as_ref()?.strip_prefix("BPF scheduler \"")?.split_once('"')?;
        let mut next = bodies.iter().skip(i + 1).take(3).flatten();
        if rest == " errored, disabling" {
            return next.next().map(|s| s.to_string());
        }
        let reason = rest.strip_prefix(" disabled (")?.strip_suffix(')')?;
        if is_orderly(reason) {
            return None;
        }
        let msg = next.find_map(|s| s.strip_prefix(name)?.strip_prefix(": "));
        Some(match msg {
            Some(msg) => format!("{reason} ({msg})"),
            None => reason.to_string(),
        })
    })
}
