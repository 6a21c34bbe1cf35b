//! Stack extraction: the functions of the primary run's crash backtrace
//! that are worth probing in the repro VM.
//!
//! The backtrace is the triggered exit's (the scheduler log's DEBUG DUMP,
//! else the same dump out of the `sched_ext_dump` trace lines), else the
//! kernel console's `Call Trace:` (an oops, a panic, a warning). Frames
//! are innermost first, each function once. A BPF program's symbol
//! (`bpf_prog_<tag>_<name>`) gives its name, the struct_ops callback the
//! repro probes with fentry/fexit. Generic frames are dropped: probing
//! them would record every task passing through a spinlock or a syscall,
//! and nothing about the scheduler.
//!
//! Which frames of sched_ext itself are generic: the ones whose job is to
//! end the scheduler, i.e. to detect a stall, claim, record, dump or carry
//! out an exit. They run once the damage is done, and what they record is
//! in the dump already. The ones that act for the scheduler stay, above all the callers of BPF
//! callbacks (`do_pick_task_scx`, `do_enqueue_task`, `select_task_rq_scx`,
//! `scx_disable_and_exit_task`): their task and rq arguments are what the
//! trail is stitched from.
//!
//! Input is guest text, untrusted: nothing here panics, time is linear in
//! the input, and the result is capped.

/// The stack functions of a crash, for the probe plan, and the generic
/// frames dropped from it, for the pipeline's accounting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Extracted {
    pub functions: Vec<String>,
    pub filtered: Vec<String>,
}

/// At most this many functions (and as many filtered frames): the kernel
/// keeps 64 frames of an exit's backtrace (SCX_EXIT_BT_LEN), and a console
/// trace deeper than that is a runaway, not a call chain worth probing.
const MAX_FRAMES: usize = 64;

/// Generic frames, by exact name or, ending in `*`, by prefix; a line a
/// group. Names are the kernel's as of 7.3, with older spellings where
/// they differ.
const GENERIC: &[&str] = &[
    // sched_ext's exit machinery: claiming and recording the exit, the
    // kfuncs that ask for one, the dump, the disable work, and the stall
    // and lockup detectors that call it. Not `scx_exit*`: that would take
    // `scx_exit_task`, which called ops.exit_task() in earlier kernels.
    "scx_exit __scx_exit scx_exit_bstr scx_vexit scx_claim_exit scx_finish_exit scx_kf_exit",
    "scx_error __scx_error scx_kf_error scx_ops_error_kind scx_ops_exit_kind",
    "scx_bpf_error* scx_bpf_exit* scx_bpf_sub_kill* scx_bpf_dump* scx_dump_* scx_disable_dump scx_log_sched_disable",
    "scx_disable scx_disable_workfn scx_disable_irq_workfn scx_error_irq_workfn scx_propagate_exit_irq_workfn",
    "scx_flush_disable_work scx_root_disable scx_sub_disable scx_ops_disable scx_ops_disable_workfn",
    "scx_watchdog_workfn scx_softlockup scx_hardlockup scx_rcu_cpu_stall",
    // BPF struct_ops trampolines, and the trampolines' enter/exit hooks.
    "bpf__sched_ext_ops_* bpf_trampoline_* __bpf_prog_enter* __bpf_prog_exit*",
    // Scheduler entry points, and the idle loop that enters it.
    "__schedule schedule schedule_* preempt_schedule* __cond_resched",
    "do_idle cpu_startup_entry start_secondary common_startup_64",
    // Syscall entry, and interrupt and exception entry.
    "do_syscall_64 x64_sys_call entry_SYSCALL* __x64_sys_* __ia32_sys_* __do_sys_* __se_sys_*",
    "asm_sysvec_* sysvec_* __sysvec_* asm_exc_* asm_common_interrupt common_interrupt",
    // Spinlocks.
    "_raw_spin_* raw_spin_rq_* do_raw_spin_* native_queued_spin_lock_slowpath",
    // Fork and kthread plumbing.
    "ret_from_fork* kthread kthread_worker_fn worker_thread process_one_work",
    // Stack dump helpers, and panic.
    "dump_stack* __dump_stack show_stack show_trace_log_lvl stack_trace_* panic vpanic",
];

/// The functions worth probing from a crash's backtrace: the triggered
/// exit's in `sched_log`, else in `sched_ext_dump` (its trace lines), else
/// the kernel `console`'s call trace (the crash's, when the console holds
/// an oops or panic, else the first). Empty when none has one.
pub(crate) fn stack_functions(sched_log: &[String], sched_ext_dump: &[String], console: &str) -> Extracted {
    let mut frames = crate::crash::exit_backtrace_frames(sched_log);
    if frames.is_empty() {
        frames = crate::crash::exit_backtrace_frames(sched_ext_dump);
    }
    if frames.is_empty() {
        return sort(console_trace(console));
    }
    sort(frames.iter().map(|(function, _)| function.as_str()))
}

/// Short names for BPF programs, generic frames apart, each name once.
fn sort<'a>(frames: impl IntoIterator<Item = &'a str>) -> Extracted {
    let mut out = Extracted::default();
    // Frames outer to the scheduler's entry are the path a task took to
    // call schedule() (a sleep, a read, a futex): every task has one, and
    // none of them is the scheduler's doing.
    let mut below_entry = false;
    for frame in frames {
        let name = without_cold(frame);
        // A frame that is no symbol (garbage, an address) cannot be probed.
        if !is_symbol(name) {
            continue;
        }
        let (list, name) = match bpf_prog_name(name) {
            Some(short) if !below_entry => (&mut out.functions, short),
            _ if below_entry || is_generic(name) => (&mut out.filtered, name),
            _ => (&mut out.functions, name),
        };
        below_entry |= is_sched_entry(name);
        // Capped lists: the scan stays linear.
        if list.len() < MAX_FRAMES && !list.iter().any(|n| n == name) {
            list.push(name.to_string());
        }
        if out.functions.len() >= MAX_FRAMES {
            break;
        }
    }
    out
}

/// GCC moves a function's unlikely paths to `<name>.cold`, a fragment
/// with no entry of its own: the frame is the function's. (`.isra.0`,
/// `.constprop.0` and `.part.0` are functions of their own and stay.)
fn without_cold(name: &str) -> &str {
    match name.split_once(".cold") {
        Some((base, rest)) if rest.is_empty() || rest.strip_prefix('.').is_some_and(is_digits) => base,
        _ => name,
    }
}

/// `bpf_prog_<16 hex digit tag>_<name>` as `<name>`.
fn bpf_prog_name(symbol: &str) -> Option<&str> {
    let rest = symbol.strip_prefix("bpf_prog_")?;
    let (tag, name) = (rest.get(..16)?, rest.get(16..)?.strip_prefix('_')?);
    (tag.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty()).then_some(name)
}

/// `schedule()` and the other ways into the scheduler core.
fn is_sched_entry(name: &str) -> bool {
    matches!(name, "__schedule" | "schedule" | "__cond_resched" | "do_idle")
        || name.starts_with("schedule_")
        || name.starts_with("preempt_schedule")
}

fn is_generic(name: &str) -> bool {
    GENERIC.iter().flat_map(|group| group.split_whitespace()).any(|g| match g.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == g,
    })
}

fn is_symbol(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The frames of a console `Call Trace:` block, innermost first: the
/// crash's block when the console holds an oops or a panic (a warning
/// earlier in boot has one too), else the first. Unreliable frames
/// (`? name+0x..`, leftovers on the stack) are skipped. The block ends at
/// `</TASK>` or `</IRQ>` (what an interrupt interrupted is not the crash),
/// or at the first line that is no frame (`RIP: ...`, the next message).
fn console_trace(console: &str) -> Vec<&str> {
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    let crash_at = crate::crash::kernel_crash(console)
        .and_then(|c| c.excerpt.first().cloned())
        .and_then(|first| lines.iter().position(|l| *l == first.as_str()));
    let from = |at: usize| lines[at..].iter().position(|l| body(l) == "Call Trace:").map(|p| at + p + 1);
    let Some(start) = crash_at.and_then(from).or_else(|| from(0)) else { return Vec::new() };
    let mut frames = Vec::new();
    for line in &lines[start..] {
        let body = body(line);
        match body {
            "<TASK>" | "<IRQ>" | "<NMI>" | "<SOFTIRQ>" => continue,
            "</TASK>" | "</IRQ>" | "</NMI>" | "</SOFTIRQ>" => break,
            _ => {}
        }
        if let Some(unreliable) = body.strip_prefix("? ") {
            if crate::crash::split_frame(unreliable).is_some() {
                continue;
            }
            break;
        }
        match crate::crash::split_frame(body) {
            Some((function, _)) => frames.push(function),
            None => break,
        }
    }
    frames
}

/// A console line without its `[    3.291777] ` stamp and, from a kernel
/// with CONFIG_PRINTK_CALLER, the `[  T123]` or `[    C1]` after it.
fn body(line: &str) -> &str {
    let mut t = line.trim();
    for allowed in [is_stamp as fn(&str) -> bool, is_caller] {
        if let Some((tag, rest)) = t.strip_prefix('[').and_then(|r| r.split_once(']')) {
            if allowed(tag.trim()) {
                t = rest.trim_start();
            }
        }
    }
    t
}

fn is_stamp(tag: &str) -> bool {
    let (secs, frac) = tag.split_once('.').unwrap_or((tag, "0"));
    is_digits(secs) && is_digits(frac)
}

fn is_caller(tag: &str) -> bool {
    tag.strip_prefix(['T', 'C']).is_some_and(is_digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash::parse_sched_ext_dump_trace;

    const ERROR_LOG: &str = include_str!("../../tests/fixtures/crash/scx_bpf_error_sigusr2.log");
    const ERROR_TRACE: &str = include_str!("../../tests/fixtures/crash/scx_bpf_error_sigusr2.trace");
    const ERROR_CONSOLE: &str = include_str!("../../tests/fixtures/crash/scx_bpf_error_sigusr2.console");
    const STALL_LOG: &str = include_str!("../../tests/fixtures/crash/kernel_watchdog_stall.log");
    const PANIC_CONSOLE: &str = include_str!("../../tests/fixtures/runs/kernel_panic/console.log");

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    fn extracted(functions: &[&str], filtered: &[&str]) -> Extracted {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Extracted { functions: own(functions), filtered: own(filtered) }
    }

    #[test]
    fn a_bpf_error_keeps_the_program_and_its_caller() {
        let want = extracted(
            &["ktstr_dispatch", "do_pick_task_scx"],
            &[
                "scx_exit_bstr",
                "scx_bpf_error_bstr",
                "bpf__sched_ext_ops_dispatch",
                "__schedule",
                "schedule",
                "do_nanosleep",
                "hrtimer_nanosleep",
                "common_nsleep_timens",
                "__x64_sys_clock_nanosleep",
                "do_syscall_64",
                "entry_SYSCALL_64_after_hwframe",
            ],
        );
        assert_eq!(stack_functions(&lines(ERROR_LOG), &[], ""), want);
        // The log wins over the trace lines (another run's) and the console.
        let dump = parse_sched_ext_dump_trace(ERROR_TRACE);
        assert_eq!(stack_functions(&lines(ERROR_LOG), &dump, PANIC_CONSOLE), want);
    }

    #[test]
    fn the_trace_lines_stand_in_for_a_log_without_a_dump() {
        let dump = parse_sched_ext_dump_trace(ERROR_TRACE);
        let got = stack_functions(&lines("scx-ktstr: attached\n"), &dump, ERROR_CONSOLE);
        assert_eq!(got.functions, ["ktstr_dispatch", "do_pick_task_scx"]);
        assert_eq!(got.filtered.len(), 10);
    }

    #[test]
    fn a_watchdog_stall_is_all_exit_machinery() {
        let want = extracted(
            &[],
            &[
                "scx_vexit",
                "__scx_exit",
                "scx_watchdog_workfn",
                "process_one_work",
                "worker_thread",
                "kthread",
                "ret_from_fork",
                "ret_from_fork_asm",
            ],
        );
        assert_eq!(stack_functions(&lines(STALL_LOG), &[], ""), want);
    }

    #[test]
    fn a_console_call_trace_skips_unreliable_frames() {
        let want = extracted(
            &[
                "sysrq_handle_crash",
                "__handle_sysrq",
                "write_sysrq_trigger",
                "proc_reg_write",
                "vfs_write",
                "ksys_write",
            ],
            &["dump_stack_lvl", "vpanic", "panic", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"],
        );
        assert_eq!(stack_functions(&[], &[], PANIC_CONSOLE), want);
        // A sched_ext error leaves no call trace on the console.
        assert_eq!(stack_functions(&[], &[], ERROR_CONSOLE), Extracted::default());
    }

    #[test]
    fn the_crash_trace_wins_over_an_earlier_warning_and_stops_at_irq_end() {
        let console = "\
[    1.000000] WARNING: CPU: 0 PID: 1 at kernel/foo.c:1 foo+0x1/0x2
[    1.000001] Call Trace:
[    1.000002]  <TASK>
[    1.000003]  early_warning_fn+0x1/0x2
[    1.000004]  </TASK>
[    2.000000] BUG: kernel NULL pointer dereference, address: 0000000000000010
[    2.000001] Oops: 0000 [#1] SMP
[    2.000002] [   T97] Call Trace:\r
[    2.000003] [   T97]  <IRQ>
[    2.000004] [   T97]  bpf_prog_0123456789abcdef_ktstr_enqueue+0x10/0x20
[    2.000005] [   T97]  ? stale_fn+0x1/0x2
[    2.000006] [   T97]  do_enqueue_task.cold+0x5/0x9 [scx_mod]
[    2.000007] [   T97]  bpf_prog_fedcba9876543210_ktstr_enqueue+0x10/0x20
[    2.000008] [   T97]  _raw_spin_lock+0x1/0x2
[    2.000009] [   T97]  do_enqueue_task+0x2d8/0xcb0
[    2.000010] [   T97]  </IRQ>
[    2.000011] [   T97]  <TASK>
[    2.000012] [   T97]  interrupted_fn+0x1/0x2
[    2.000013] Kernel panic - not syncing: Fatal exception in interrupt
";
        let want = extracted(&["ktstr_enqueue", "do_enqueue_task"], &["_raw_spin_lock"]);
        assert_eq!(stack_functions(&[], &[], console), want);
        // Without a crash, the first block; a non-frame line ends it.
        let warning = "Call Trace:\n <TASK>\n warn_fn+0x1/0x2\nRIP: 0010:foo+0x1/0x2\n next_fn+0x1/0x2\n";
        assert_eq!(stack_functions(&[], &[], warning).functions, ["warn_fn"]);
    }

    #[test]
    fn names_are_symbols_and_suffixes_read_right() {
        assert_eq!(bpf_prog_name("bpf_prog_38b55dcef1fae768_ktstr_dispatch"), Some("ktstr_dispatch"));
        assert_eq!(bpf_prog_name("bpf_prog_38b55dcef1fae768"), None);
        assert_eq!(bpf_prog_name("bpf_prog_38b55dcef1fae76_x"), None);
        assert_eq!(bpf_prog_name("bpf_prog_xyz"), None);
        assert_eq!(without_cold("__handle_sysrq.cold"), "__handle_sysrq");
        assert_eq!(without_cold("foo.cold.12"), "foo");
        assert_eq!(without_cold("foo.constprop.0"), "foo.constprop.0");
        assert_eq!(without_cold("foo.coldness"), "foo.coldness");
        assert!(is_generic("scx_bpf_error_bstr_impl") && is_generic("schedule_timeout") && is_generic("schedule"));
        assert!(!is_generic("scx_exit_task") && !is_generic("scheduler_tick") && !is_generic("do_pick_task_scx"));
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded() {
        // xorshift: deterministic bytes, any of them.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let bytes: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = stack_functions(&lines(&text), &lines(&text), &text);
        let _ = stack_functions(&[], &[], "Call Trace:\n? \n[\n[]\n[ T]\n+0x/0x\n\u{0}+0x1/0x1\n");

        // A huge trace of distinct frames: capped, and quick.
        let mut log =
            vec!["x[1] triggered exit kind 1024:".to_string(), "  why".into(), String::new(), "Backtrace:".into()];
        log.extend((0..200_000).map(|i| format!("  fn_{i}+0x1/0x2")));
        let got = stack_functions(&log, &[], "");
        assert_eq!(got.functions.len(), MAX_FRAMES);
        assert_eq!(got.functions[0], "fn_0");
        let console: String = std::iter::once("Call Trace:\n".to_string())
            .chain((0..200_000).map(|i| format!("[ 1.0]  ? x_{i}+0x1/0x2\n[ 1.0]  schedule_{i}+0x1/0x2\n")))
            .collect();
        let got = stack_functions(&[], &[], &console);
        assert!(got.functions.is_empty());
        assert_eq!(got.filtered.len(), MAX_FRAMES);
    }
}
