//! The kernel's sched_ext debug dump reaches the `sched_ext_dump` trace
//! event on this kernel, and `ktstr::crash` reads what a real guest
//! produces: a dump on demand (SysRq-D, the scheduler keeps running) and
//! the dump of an error exit (SIGUSR2 makes scx-ktstr call
//! scx_bpf_error()). The `payload_*` tests are the guest halves; they hand
//! the raw trace text back in their result's first detail line.
//!
//! With `KTSTR_CRASH_CAPTURE_DIR` set, the host halves also write what the
//! guest produced there, unedited: that is how the fixtures under
//! `ktstr/tests/fixtures/crash/` were captured.

use std::time::Instant;

use anyhow::Context;
use ktstr::crash::{bug_summary, exit_backtrace, parse_sched_ext_dump_trace};
use ktstr::outcome::RunOutcome;
use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, RunOptions};

mod common;
use common::scheduler_pid;

const TRACING: &str = "/sys/kernel/tracing";

fn enable_dump_event() -> Result<()> {
    let path = format!("{TRACING}/events/sched_ext/sched_ext_dump/enable");
    std::fs::write(&path, "1").with_context(|| format!("enabling the sched_ext_dump event ({path})"))
}

/// Polls `done` every 20 ms for up to 5 s.
fn wait_until(what: &str, done: impl Fn() -> bool) -> Result<()> {
    let start = Instant::now();
    while !done() {
        ensure!(start.elapsed() < Duration::from_secs(5), "{what} after 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The trace once it holds a dump's last section (the event counters are
/// the last thing `scx_dump_state()` prints), or a failing result that says
/// what it held instead.
fn traced_dump() -> Result<AssertResult> {
    let read = || std::fs::read_to_string(format!("{TRACING}/trace")).unwrap_or_default();
    let complete = || parse_sched_ext_dump_trace(&read()).iter().any(|l| l == "Event counters");
    if let Err(e) = wait_until("the trace held no complete sched_ext_dump", complete) {
        let trace = read();
        let head: Vec<&str> = trace.lines().take(20).collect();
        return Ok(AssertResult::fail(format!(
            "{e}: {} lines, {} sched_ext_dump records; first lines:\n{}",
            trace.lines().count(),
            parse_sched_ext_dump_trace(&trace).len(),
            head.join("\n")
        )));
    }
    // The raw text goes back to the host, which checks and may keep it.
    Ok(AssertResult { passed: true, details: vec![read()], stats: None })
}

#[ktstr_test(scheduler = SCX_KTSTR)]
#[ignore = "guest half of sysrq_d_dumps_the_scheduler_state_to_the_trace"]
fn payload_sysrq_dump(_ctx: &Ctx) -> Result<AssertResult> {
    enable_dump_event()?;
    std::fs::write("/proc/sysrq-trigger", "D").context("writing D to /proc/sysrq-trigger")?;
    std::thread::sleep(Duration::from_secs(1));
    traced_dump()
}

#[ktstr_test(scheduler = SCX_KTSTR)]
#[ignore = "guest half of an_error_exit_reads_the_same_from_log_trace_and_console"]
fn payload_sigusr2_traced(_ctx: &Ctx) -> Result<AssertResult> {
    enable_dump_event()?;
    let pid = scheduler_pid()?;
    // SAFETY: plain kill(2) on a pid we just read.
    unsafe { libc::kill(pid, libc::SIGUSR2) };
    wait_until("sched_ext was still enabled", || {
        std::fs::read_to_string("/sys/kernel/sched_ext/state").is_ok_and(|s| s.trim() != "enabled")
    })?;
    // The loader's log must be complete before the harness looks: wait
    // until the process is gone (a zombie: PID 1 reaps it later).
    wait_until("scx-ktstr had not exited", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
            .unwrap_or(true)
    })?;
    traced_dump()
}

/// Runs a payload; the outcome whether or not the run failed, and the
/// trace text its result carries.
fn run(payload: &str) -> (RunOutcome, String) {
    let entry = find_test(payload).expect("payload registered");
    let outcome = match run_ktstr_test_with(entry, &RunOptions { auto_repro: Some(false), ..Default::default() }) {
        Ok(o) => o,
        Err(f) => {
            if let Some(dir) = &f.run_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            *f.outcome.unwrap_or_else(|| panic!("{}", f.report))
        }
    };
    let result = outcome.result.as_ref().unwrap_or_else(|| panic!("{payload}: no result: {:?}", outcome.stage));
    assert!(result.passed, "{payload}: {}", result.details.join("\n"));
    let trace = result.details.first().cloned().unwrap_or_default();
    (outcome, trace)
}

/// Writes a capture into `KTSTR_CRASH_CAPTURE_DIR`, when it is set.
fn keep(name: &str, text: &str) {
    if let Some(dir) = std::env::var_os("KTSTR_CRASH_CAPTURE_DIR") {
        let path = std::path::Path::new(&dir).join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("captured {}", path.display());
    }
}

/// A short view of dump lines for assertion messages: never the megabytes.
fn head(lines: &[String]) -> String {
    format!("{} lines, first 40:\n{}", lines.len(), lines.iter().take(40).cloned().collect::<Vec<_>>().join("\n"))
}

#[test]
fn sysrq_d_dumps_the_scheduler_state_to_the_trace() {
    let (outcome, trace) = run("payload_sysrq_dump");
    assert!(outcome.sched_exit.is_none(), "a dump on demand must not end the scheduler: {:?}", outcome.sched_exit);
    keep("sched_ext_dump.trace", &trace);
    let dump = parse_sched_ext_dump_trace(&trace);
    // 7.x opens a dump with `<ops name>: <cgroup>`, then the trigger.
    let trigger = dump.iter().take(2).any(|l| l == "Debug dump triggered by SysRq-D");
    assert!(trigger, "no SysRq-D trigger line at the top: {}", head(&dump));
    assert!(dump.iter().any(|l| l.starts_with("CPU ")), "no per-CPU state: {}", head(&dump));
    // The scheduler's own ops.dump ran.
    assert!(dump.iter().any(|l| l == "ktstr scheduler state:"), "no ops.dump output: {}", head(&dump));
    assert_eq!(bug_summary(&[], &dump, ""), None, "a dump on demand is no crash");
}

#[test]
fn an_error_exit_reads_the_same_from_log_trace_and_console() {
    let (outcome, trace) = run("payload_sigusr2_traced");
    assert!(outcome.sched_exit.is_some(), "SIGUSR2 must end the scheduler");
    let console = &outcome.vm.console;
    keep("scx_bpf_error_sigusr2.trace", &trace);
    keep("scx_bpf_error_sigusr2.console", console);
    let dump = parse_sched_ext_dump_trace(&trace);
    // The error's source line, wherever edits to the scheduler moved it.
    let msg = "ktstr watchdog: a task was stuck (scx-ktstr got SIGUSR2)";
    let line = include_str!("../src/bpf/main.bpf.c").lines().position(|l| l.contains(msg)).unwrap() + 1;
    let want = format!("scx_bpf_error (src/bpf/main.bpf.c:{line}: {msg})");
    let want = want.as_str();
    let log = &outcome.sched_log;
    assert_eq!(bug_summary(log, &[], "").as_deref(), Some(want), "{}", head(log));
    assert_eq!(bug_summary(&[], &dump, "").as_deref(), Some(want), "{}", head(&dump));
    assert_eq!(bug_summary(&[], &[], console).as_deref(), Some(want), "console:\n{console}");
    let frames = exit_backtrace(log);
    assert_eq!(frames[..2], ["scx_exit_bstr", "scx_bpf_error_bstr"], "{frames:?}");
    assert_eq!(exit_backtrace(&dump), frames, "the trace carries the same backtrace");
}
