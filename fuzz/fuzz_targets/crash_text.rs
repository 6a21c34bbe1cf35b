//! The crash-text parsers (`ktstr::crash`): the kernel console's oops and
//! panic (`kernel_crash`, `stale_int3`), the `sched_ext_dump` trace lines
//! (`parse_sched_ext_dump_trace`), the one-line cause (`bug_summary`), the
//! triggered exit's backtrace (`exit_backtrace`, `split_frame`), repeats
//! collapsed for display (`collapse_cycles`), and auto-repro's stack
//! extraction over all three (`repro::extract::stack_functions`).
//!
//! Input: `console \0 scheduler log \0 tracefs text`, any part may be
//! missing; bytes that are not UTF-8 are replaced, as the host reads them.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0).map(String::from_utf8_lossy);
    let console = parts.next().unwrap_or_default();
    let log = parts.next().unwrap_or_default();
    let trace = parts.next().unwrap_or_default();
    let sched_log: Vec<String> = log.lines().map(str::to_string).collect();
    let dump = ktstr::crash::parse_sched_ext_dump_trace(&trace);

    if let Some(k) = ktstr::crash::kernel_crash(&console) {
        assert!(!k.excerpt.is_empty(), "a crash without an excerpt");
        assert!(k.excerpt.len() <= 80, "excerpt over its cap: {}", k.excerpt.len());
        let _ = k.stale_int3();
    }
    let _ = ktstr::crash::bug_summary(&sched_log, &dump, &console);
    for lines in [&sched_log, &dump] {
        let frames = ktstr::crash::exit_backtrace_frames(lines);
        assert_eq!(ktstr::crash::exit_backtrace(lines).len(), frames.len());
        let collapsed = ktstr::crash::collapse_cycles(lines);
        assert!(collapsed.len() <= lines.len(), "collapsing added lines");
    }
    for line in console.lines().chain(log.lines()).chain(dump.iter().map(String::as_str)) {
        if let Some((function, offset)) = ktstr::crash::split_frame(line) {
            assert!(!function.is_empty() && offset.starts_with('+'));
        }
    }
    let (functions, filtered) = ktstr::fuzz_api::stack_functions(&sched_log, &dump, &console);
    assert!(functions.len() <= 64 && filtered.len() <= 64, "stack extraction over its cap");
});
