//! On real captures (`tests/fixtures/crash/`): the scheduler's stderr after
//! a kernel watchdog stall and after an scx_bpf_error exit; the raw tracefs
//! text of a SysRq-D dump and of an scx_bpf_error exit's dump, and the
//! kernel console of that same exit (both captured by
//! `scx-ktstr/tests/crash_capture.rs`).

use std::time::{Duration, Instant};

use super::*;

const STALL_LOG: &str = include_str!("../../tests/fixtures/crash/kernel_watchdog_stall.log");
const ERROR_LOG: &str = include_str!("../../tests/fixtures/crash/scx_bpf_error_sigusr2.log");
const SYSRQ_TRACE: &str = include_str!("../../tests/fixtures/crash/sched_ext_dump.trace");
const ERROR_TRACE: &str = include_str!("../../tests/fixtures/crash/scx_bpf_error_sigusr2.trace");
const ERROR_CONSOLE: &str = include_str!("../../tests/fixtures/crash/scx_bpf_error_sigusr2.console");

const STALL: &str = "runnable task stall (ktstr-worker[107] failed to run for 30.132s)";
const BPF_ERROR: &str =
    "scx_bpf_error (src/bpf/main.bpf.c:82: ktstr watchdog: a task was stuck (scx-ktstr got SIGUSR2))";

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// `block` `n` times over (`slice::repeat` wants `Copy`).
fn repeat(block: &[String], n: usize) -> Vec<String> {
    block.iter().cycle().take(block.len() * n).cloned().collect()
}

#[test]
fn bug_summary_reads_the_triggered_exit_of_a_scheduler_log() {
    assert_eq!(bug_summary(&lines(STALL_LOG), &[], "").as_deref(), Some(STALL));
    assert_eq!(bug_summary(&lines(ERROR_LOG), &[], "").as_deref(), Some(BPF_ERROR));
}

#[test]
fn bug_summary_falls_back_to_the_loaders_exit_line() {
    // Only the loader's last line, as when the dump itself is cut off:
    // the same summary, without the kernel's ` on CPU N`.
    for (log, want) in [(STALL_LOG, STALL), (ERROR_LOG, BPF_ERROR)] {
        let tail: Vec<String> = lines(log).into_iter().skip_while(|l| !l.starts_with("Error: EXIT: ")).collect();
        assert_eq!(tail.len(), 1, "{tail:?}");
        assert_eq!(bug_summary(&tail, &[], "").as_deref(), Some(want));
        // scx_utils prints an orderly exit's line without `Error: `.
        let plain = [tail[0].trim_start_matches("Error: ").to_string()];
        assert_eq!(bug_summary(&plain, &[], "").as_deref(), Some(want));
    }
    // The loader's own detach at the end of a run is no crash.
    assert_eq!(bug_summary(&["EXIT: unregistered from user space".into()], &[], ""), None);
}

#[test]
fn bug_summary_reads_the_trace_and_the_console() {
    let traced = parse_sched_ext_dump_trace(ERROR_TRACE);
    assert_eq!(bug_summary(&[], &traced, "").as_deref(), Some(BPF_ERROR));
    assert_eq!(bug_summary(&[], &[], ERROR_CONSOLE).as_deref(), Some(BPF_ERROR));
    // A dump on demand has no triggered exit.
    assert_eq!(bug_summary(&[], &parse_sched_ext_dump_trace(SYSRQ_TRACE), ""), None);
    assert_eq!(bug_summary(&[], &[], ""), None);
}

#[test]
fn bug_summary_prefers_log_then_trace_then_console() {
    let traced = parse_sched_ext_dump_trace(ERROR_TRACE);
    assert_eq!(bug_summary(&lines(STALL_LOG), &traced, ERROR_CONSOLE).as_deref(), Some(STALL));
    // A log without a dump (here: only its `attached` line) yields to the trace.
    let no_dump = lines(STALL_LOG)[..1].to_vec();
    assert_eq!(bug_summary(&no_dump, &traced, "").as_deref(), Some(BPF_ERROR));
    // The console's boot noise before the exit, including the `enabled` line
    // in the same shape as `disabled (...)`, is not taken for a cause.
    let upto = ERROR_CONSOLE.find("disabled (scx_bpf_error)").unwrap();
    assert_eq!(bug_summary(&no_dump, &[], &ERROR_CONSOLE[..upto]), None);
}

#[test]
fn console_error_needs_an_error_reason() {
    // The kernel logs an orderly disable in the same shape (pr_info): only
    // the reason tells them apart.
    let orderly = ERROR_CONSOLE.replace("disabled (scx_bpf_error)", "disabled (unregistered from user space)");
    assert_eq!(console_error(&orderly), None);
    // Without its message line, the reason alone.
    let bare: String = ERROR_CONSOLE.lines().filter(|l| !l.contains("src/bpf/")).map(|l| format!("{l}\n")).collect();
    assert_eq!(console_error(&bare).as_deref(), Some("scx_bpf_error"));
    // The shape before sched_ext was merged, as quoted in the commit that
    // added the watchdog (no capture of such a kernel here).
    let old = " sched_ext: BPF scheduler \"qmap\" errored, disabling\n \
               sched_ext: runnable task stall (dbus-daemon[953] failed to run for 6.478s)\n \
                  scx_check_timeout_workfn+0x10e/0x1b0\n";
    assert_eq!(console_error(old).as_deref(), Some("runnable task stall (dbus-daemon[953] failed to run for 6.478s)"));
}

#[test]
fn exit_backtrace_lists_the_exits_frames_in_order() {
    let stall = exit_backtrace(&lines(STALL_LOG));
    assert_eq!(
        stall,
        [
            "scx_vexit",
            "__scx_exit",
            "scx_watchdog_workfn",
            "process_one_work",
            "worker_thread",
            "kthread",
            "ret_from_fork",
            "ret_from_fork_asm"
        ]
    );
    let error = exit_backtrace_frames(&lines(ERROR_LOG));
    assert_eq!(error.len(), 13, "{error:?}");
    assert_eq!(error[0], ("scx_exit_bstr".to_string(), "+0xdd/0x110".to_string()));
    assert_eq!(error[2].0, "bpf_prog_38b55dcef1fae768_ktstr_dispatch");
    assert_eq!(error[12].0, "entry_SYSCALL_64_after_hwframe");
    // The same exit through the trace: same head, the task's own tail.
    let traced = exit_backtrace(&parse_sched_ext_dump_trace(ERROR_TRACE));
    assert_eq!(traced.len(), 12, "{traced:?}");
    let names: Vec<&str> = error.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(traced[..7], names[..7]);
    assert_eq!(traced[7], "anon_pipe_read");
    // The per-task backtraces further down a dump are not the exit's.
    assert_eq!(exit_backtrace(&parse_sched_ext_dump_trace(SYSRQ_TRACE)), Vec::<String>::new());
}

#[test]
fn split_frame_takes_function_and_offset() {
    assert_eq!(split_frame("  scx_exit+0x50/0x70"), Some(("scx_exit", "+0x50/0x70")));
    assert_eq!(split_frame("  foo+0x1/0x2 [bpf_mod]"), Some(("foo", "+0x1/0x2")));
    for not_a_frame in ["", "Backtrace:", "+0x1/0x2", "f+0x/0x2", "f+0x1", "f+0x1/0x2 extra words", "CPU 0   : x"] {
        assert_eq!(split_frame(not_a_frame), None, "{not_a_frame:?}");
    }
}

#[test]
fn collapse_keeps_a_real_log_that_does_not_repeat() {
    for log in [STALL_LOG, ERROR_LOG] {
        assert_eq!(collapse_cycles(&lines(log)), lines(log));
    }
}

#[test]
fn collapse_folds_repeated_lines_and_blocks() {
    let log = lines(STALL_LOG);
    let frames = &log[log.iter().position(|l| l == "Backtrace:").unwrap() + 1..][..8];
    assert!(frames[7].contains("ret_from_fork_asm"));
    // A loop printing the same 8-line block 5 times, between real lines.
    let mut input = log[..3].to_vec();
    input.extend(repeat(frames, 5));
    input.extend_from_slice(&log[3..6]);
    let mut want = log[..3].to_vec();
    want.extend_from_slice(frames);
    want.push("  [previous 8 lines repeated 4 times]".into());
    want.extend_from_slice(&log[3..6]);
    assert_eq!(collapse_cycles(&input), want);
    // One line 4 times; a 2-line cycle 3 times and a partial copy after.
    let (a, b, c) = (frames[0].clone(), frames[1].clone(), frames[2].clone());
    let input = [vec![a.clone(); 4], repeat(&[b.clone(), c.clone()], 3), vec![b.clone()]].concat();
    let want = [
        a.clone(),
        "  [previous line repeated 3 times]".into(),
        b.clone(),
        c.clone(),
        "  [previous 2 lines repeated 2 times]".into(),
        b.clone(),
    ];
    assert_eq!(collapse_cycles(&input), want);
    // Two copies are kept as they are; so is a 9-line cycle (too long).
    let twice = repeat(&[b, c], 2);
    assert_eq!(collapse_cycles(&twice), twice);
    let nine = repeat(&log[..9], 3);
    assert_eq!(collapse_cycles(&nine), nine);
}

#[test]
fn parse_trace_keeps_each_dump_record_in_order() {
    let dump = parse_sched_ext_dump_trace(SYSRQ_TRACE);
    // The buffer's own count of records: every one of them is a dump line.
    assert!(SYSRQ_TRACE.contains("# entries-in-buffer/entries-written: 58/58"));
    assert_eq!(dump.len(), 58);
    assert_eq!(dump[..3], ["ktstr_0.1.0_x86_64_unknown_linux_gnu_debug: root", "Debug dump triggered by SysRq-D", ""]);
    assert!(dump.contains(&"ktstr scheduler state:".to_string()));
    assert!(dump.contains(&"    scx_dump_cpu+0x5e1/0x630".to_string()), "indentation is kept");
    assert_eq!(dump.last().unwrap().trim(), "SCX_EV_SUB_RESCUE:                0");
    let error = parse_sched_ext_dump_trace(ERROR_TRACE);
    assert_eq!(error.len(), 50);
    // The same dump the loader printed, line for line (one run apart:
    // counters and the task's own frames differ).
    let log = lines(ERROR_LOG);
    let same = |l: &String| log.contains(l);
    assert!(error.iter().filter(|l| same(l)).count() > 30, "{error:#?}");
}

#[test]
fn parse_trace_drops_other_events() {
    let record = SYSRQ_TRACE.lines().find(|l| l.ends_with("sched_ext_dump: ktstr scheduler state:")).unwrap();
    let header = &record[..record.find("sched_ext_dump: ").unwrap()];
    let text = [
        format!("{header}sched_switch: prev_comm=init prev_pid=1 ==> next_comm=sh next_pid=2"),
        // A payload that itself reads like a dump record.
        format!("{header}bputs: {record}"),
        record.to_string(),
        format!("{record}\r"),
    ]
    .join("\n");
    assert_eq!(parse_sched_ext_dump_trace(&text), ["ktstr scheduler state:"; 2]);
}

/// Guest text is untrusted: nothing panics, and shapes that would make a
/// careless parser quadratic finish in well under a second each here (the
/// bound is generous for debug builds on a loaded machine).
#[test]
fn garbage_never_panics_and_stays_linear() {
    // Mostly the characters the parsers look for, and invalid UTF-8.
    const ALPHABET: &[u8] = b" \n\t:[]()+/0x1.9aEXIT triggered exit kind on CPU sched_ext: \xff\xc3";
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize]
        })
        .collect();
    let random = String::from_utf8_lossy(&bytes).into_owned();
    let mb = 1 << 20;
    let inputs = [
        String::new(),
        random,
        "x".repeat(mb),
        ": ".repeat(mb / 2),
        "] 1.0: ".repeat(mb / 7),
        "a triggered exit kind 1 on CPU ".repeat(mb / 32),
        "sched_ext: BPF scheduler \"x\" disabled (".repeat(mb / 40),
        // Many short lines: a quarter of the size is plenty to tell
        // linear from quadratic (10^5 lines) and keeps debug runs quick.
        "f+0x1/0x2\n".repeat(mb / 40),
        "  x\n".repeat(mb / 16),
        "a\nb\n".repeat(mb / 16),
        "a\nb\nc\nd\ne\nf\ng\nh\ni\n".repeat(mb / 72),
        format!("{}:\n  r\n", "p[1] triggered exit kind 1025".repeat(mb / 30)),
        "[ 1.0] BUG: x\n[ 1.1] Oops: 0000 [#1]\n".repeat(mb / 40),
        format!("{}[ 2.0] Kernel panic - not syncing: x\n", "[ 1.0] RIP: 0010:\n".repeat(mb / 20)),
    ];
    for text in &inputs {
        let start = Instant::now();
        let ls = lines(text);
        let _ = bug_summary(&ls, &ls, text);
        let _ = exit_backtrace(&ls);
        let _ = collapse_cycles(&ls);
        let _ = parse_sched_ext_dump_trace(text);
        let _ = kernel_crash(text);
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "{took:?} on {:?}...", text.chars().take(40).collect::<String>());
    }
}

const PANIC_CONSOLE: &str = include_str!("../../tests/fixtures/runs/kernel_panic/console.log");

#[test]
fn kernel_crash_reads_a_panic_and_keeps_its_trace() {
    let k = kernel_crash(PANIC_CONSOLE).expect("the capture panicked");
    assert_eq!(k.summary, "kernel panic (sysrq triggered crash)");
    assert!(k.excerpt[0].ends_with("Kernel panic - not syncing: sysrq triggered crash"), "{:?}", k.excerpt);
    assert!(k.excerpt.iter().any(|l| l.ends_with(" sysrq_handle_crash+0x1a/0x20")), "{:?}", k.excerpt);
    assert!(k.excerpt.last().unwrap().contains("] Kernel Offset: "), "{:?}", k.excerpt);
    // A console that never crashed, and the warnings a kernel survives.
    let quiet: String = PANIC_CONSOLE.lines().take_while(|l| !l.contains("sysrq")).map(|l| format!("{l}\n")).collect();
    assert_eq!(kernel_crash(&quiet), None);
    assert_eq!(kernel_crash(&format!("{quiet}[   22.1] BUG: soft lockup - CPU#1 stuck for 22s! [init:1]\n")), None);
}

/// The QEMU TCG fault of a CI run: `int3` at a static-branch NOP in
/// `sched_tick` while sched_ext was enabled.
#[test]
fn an_int3_on_code_without_int3_is_the_emulators() {
    let k = kernel_crash(include_str!("../../tests/fixtures/crash/tcg_stale_int3.console")).expect("an oops");
    assert_eq!(k.summary, "kernel oops (int3 at sched_tick+0xbc/0x250)");
    assert_eq!(k.stale_int3(), Some("kernel oops (int3 at sched_tick+0xbc/0x250)"));
    // A real int3 (a BUG() or a breakpoint the kernel did place) stays a crash.
    let real =
        include_str!("../../tests/fixtures/crash/tcg_stale_int3.console").replace("03 00 0f <1f>", "03 00 cc <1f>");
    assert_eq!(kernel_crash(&real).unwrap().stale_int3(), None);
    assert_eq!(kernel_crash(PANIC_CONSOLE).unwrap().stale_int3(), None);
}
