//! The `sched_ext_dump` tracepoint's lines out of tracefs text.
//!
//! The kernel emits every line of a debug dump (an error exit's, or one
//! asked for with SysRq-D) as one `sched_ext_dump` trace event whose
//! payload is the line itself. `/sys/kernel/tracing/trace` and
//! `trace_pipe` print each event as
//! `<comm>-<pid> [<cpu>] <flags> <timestamp>: <event>: <payload>`, where
//! the flags column and a `(<tgid>)` column come and go with trace
//! options; `#` lines are headers.

const EVENT: &str = "sched_ext_dump";

/// The `sched_ext_dump` tracepoint's lines from the text of
/// `/sys/kernel/tracing/trace` (or `trace_pipe`): each record's message
/// after `sched_ext_dump: `, in order, indentation kept; other events and
/// header comments dropped.
pub fn parse_sched_ext_dump_trace(trace_text: &str) -> Vec<String> {
    trace_text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| match event_and_payload(l.trim_end_matches('\r')) {
            Some((EVENT, payload)) => Some(payload.to_string()),
            _ => None,
        })
        .collect()
}

/// Splits a record after its header: the header ends at the first `: `
/// that follows the `[cpu]` column and closes a timestamp (`123.456789`,
/// or a plain counter). Searching from the left, a payload that itself
/// looks like a record can never be taken for the header.
fn event_and_payload(record: &str) -> Option<(&str, &str)> {
    let cpu_end = record.find(']')?;
    let at = record.match_indices(": ").map(|(at, _)| at).filter(|&at| at > cpu_end).find(|&at| {
        // Scans back to the last blank only: at most to the previous `: `,
        // so the whole search stays linear in the record's length.
        record[..at].rsplit([' ', '\t']).next().is_some_and(is_timestamp)
    })?;
    let (event, payload) = record[at + 2..].split_once(':')?;
    let valid = !event.is_empty() && !event.contains(char::is_whitespace);
    valid.then(|| (event, payload.strip_prefix(' ').unwrap_or(payload)))
}

fn is_timestamp(token: &str) -> bool {
    let (secs, frac) = token.split_once('.').unwrap_or((token, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(secs) && digits(frac)
}
