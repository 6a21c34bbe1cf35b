//! A kernel crash out of the guest's console: an oops (`BUG: ...`,
//! `general protection fault`, `kernel BUG at ...`) or a panic
//! (`Kernel panic - not syncing: ...`).
//!
//! Shapes from the kernel's `arch/x86/mm/fault.c` (`BUG: <what>, address:`),
//! `arch/x86/kernel/traps.c` (`Oops: general protection fault`) and
//! `kernel/panic.c`; each line after the console's `[ seconds] ` stamp.
//! A scheduler can take the kernel down (a kfunc misused, a kernel bug on
//! sched_ext's error path): when it does, the oops is the cause and the
//! report must show it even when the console tail has scrolled past.

/// Lines of a crash kept for the report: an oops with its registers and
/// call trace fits; an endless stream of nested faults does not.
const EXCERPT_MAX: usize = 80;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelCrash {
    /// "kernel oops (BUG: kernel NULL pointer dereference, address:
    /// 0000000000000010 at scx_foo+0x12/0x40)" or "kernel panic (sysrq
    /// triggered crash)": what follows `BUG SUMMARY: `.
    pub summary: String,
    /// The console from the first line of the crash to the panic (or the
    /// end of its trace), timestamps kept.
    pub excerpt: Vec<String>,
    /// The reason of the `Kernel panic - not syncing: ` line, if the
    /// kernel got that far.
    pub panic: Option<String>,
}

/// The first kernel crash in `console`, if any. A `BUG: ...` line alone
/// (a soft lockup, scheduling while atomic) is a warning the kernel
/// survives: it counts only when an `Oops: ` follows it.
pub fn kernel_crash(console: &str) -> Option<KernelCrash> {
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    let bodies: Vec<&str> = lines.iter().map(|l| body(l)).collect();
    let panic_at = bodies.iter().position(|b| panic_reason(b).is_some());
    let oops_at = bodies.iter().position(|b| b.starts_with("Oops: "));
    let (start, summary) = match (oops_at, panic_at) {
        (Some(o), p) if p.is_none_or(|p| o < p) => {
            // The oops line names only the trap (`Oops: 0000 [#1] SMP`,
            // `Oops: general protection fault, ...: 0000 [#1]`); the fault
            // handler's `BUG: <what>` or `kernel BUG at <file:line>!` a few
            // lines before says what went wrong.
            let from = o.saturating_sub(OOPS_PREAMBLE);
            let (start, what) = match (from..o).find(|&i| is_bug_line(bodies[i])) {
                Some(b) => (b, bodies[b]),
                None => (o, trap(bodies[o])),
            };
            let end = crash_end(&bodies, o);
            // The faulting kernel function: `RIP: 0010:<symbol>` (CS 0010,
            // kernel mode; a user-mode RIP is `0033:` and says nothing).
            let rip = bodies[o..end]
                .iter()
                .find_map(|b| b.strip_prefix("RIP: 0010:"))
                .and_then(|r| r.split_whitespace().next());
            let summary = match rip {
                Some(rip) => format!("kernel oops ({what} at {rip})"),
                None => format!("kernel oops ({what})"),
            };
            (start, summary)
        }
        (_, Some(p)) => (p, format!("kernel panic ({})", panic_reason(bodies[p]).unwrap_or_default())),
        _ => return None,
    };
    let end = crash_end(&bodies, start).min(start + EXCERPT_MAX);
    let panic = panic_at.and_then(|p| panic_reason(bodies[p])).map(str::to_string);
    Some(KernelCrash { summary, excerpt: lines[start..end].iter().map(|l| l.to_string()).collect(), panic })
}

impl KernelCrash {
    /// An `int3` trap on code that holds no `int3`: the kernel patches a
    /// static branch through a temporary `int3` (text_poke_bp) and makes
    /// every CPU serialize before it is gone, so hardware cannot trap on it
    /// afterwards. QEMU's multi-threaded TCG can: a vCPU runs a stale
    /// translation of the patched bytes (seen at sched_ext's enable, which
    /// flips static keys). The oops's `Code:` line shows memory as it is
    /// now, the trapping byte just before `<..>`: not `cc`, so not the guest's
    /// doing. `Some(summary)` for such a crash.
    pub fn stale_int3(&self) -> Option<&str> {
        let bodies: Vec<&str> = self.excerpt.iter().map(|l| body(l)).collect();
        let oops = bodies.iter().position(|b| b.starts_with("Oops: int3"))?;
        let code = bodies[oops..].iter().find_map(|b| b.strip_prefix("Code: "))?;
        let words: Vec<&str> = code.split_whitespace().collect();
        let at = words.iter().position(|w| w.starts_with('<'))?;
        (at > 0 && words[at - 1] != "cc").then_some(self.summary.as_str())
    }
}

/// How far before an `Oops: ` line its `BUG: ` line may be (`#PF:` lines
/// and the page-table walk come between).
const OOPS_PREAMBLE: usize = 8;

fn is_bug_line(body: &str) -> bool {
    body.starts_with("BUG: ") || body.starts_with("kernel BUG at ")
}

/// `Oops: general protection fault, probably for ...: 0000 [#1] SMP` as
/// "general protection fault, probably for ..."; the kernel repeats the
/// `Oops: ` prefix on some paths.
fn trap(body: &str) -> &str {
    let mut t = body;
    while let Some(rest) = t.strip_prefix("Oops: ") {
        t = rest;
    }
    let t = t.split(" [#").next().unwrap_or(t);
    t.rsplit_once(": ").map_or(t, |(what, code)| if code.bytes().all(|b| b.is_ascii_hexdigit()) { what } else { t })
}

/// One past the crash's last line: the panic's closing `---[ end Kernel
/// panic` or `Kernel Offset:` line (a panic's own call trace follows its
/// headline; `panic=-1` may reboot before the closing line), else the end
/// of the console.
fn crash_end(bodies: &[&str], from: usize) -> usize {
    bodies[from..]
        .iter()
        .position(|b| b.starts_with("---[ end Kernel panic") || b.starts_with("Kernel Offset:"))
        .map_or(bodies.len(), |p| from + p + 1)
}

/// Anywhere in the line: a console with caller ids (`[T99] `) puts more
/// than a timestamp before it.
fn panic_reason(body: &str) -> Option<&str> {
    body.split_once("Kernel panic - not syncing:").map(|(_, r)| r.trim())
}

/// A console line without its `[    3.291777] ` stamp.
fn body(line: &str) -> &str {
    let t = line.trim_start();
    match t.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((stamp, rest)) if stamp.trim().bytes().all(|b| b.is_ascii_digit() || b == b'.') => rest.trim_start(),
        _ => t,
    }
}
