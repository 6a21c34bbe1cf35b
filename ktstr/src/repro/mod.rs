//! Auto-repro: when the scheduler crashed, a second VM replays the
//! scenario with BPF probes on the crash path, and the trail of the task
//! that triggered the exit is stitched and rendered.
//!
//! The stages: [`extract`] reads the primary run's crash stack into a
//! [`ProbePlan`]; the repro VM runs the same test with that plan (the guest
//! discovers the scheduler's callbacks, resolves BTF and attaches, see
//! `guest::probe`); [`render`] stitches what came back into the
//! `--- auto-repro ---` section.

pub(crate) mod extract;
mod render;

use std::path::Path;

use crate::kernel::lines::SourceLines;
use crate::outcome::RunOutcome;
use crate::probe::{FuncKind, ProbePlan, ProbeTrail};

pub use render::render;

/// The probe plan for a primary run that failed because its scheduler
/// crashed or exited; `None` for any other failure (checks, a kernel
/// panic, a VM that never booted), where replaying probes nothing.
pub(crate) fn plan_for(primary: &RunOutcome) -> Option<ProbePlan> {
    if primary.sched_exit.is_none() || primary.kernel_crash.is_some() {
        return None;
    }
    let stack = extract::stack_functions(&primary.sched_log, &primary.sched_ext_dump, &primary.vm.console);
    Some(ProbePlan { stack: stack.functions, break_trigger: false })
}

/// Gives the trail's kernel functions their `file:line` from the kernel's
/// debug vmlinux (the guest knows BPF line info, not the kernel's DWARF).
/// Returns the note the trail ends with when some kernel function is left
/// without a line, saying why and what to do.
pub(crate) fn add_kernel_sources(trail: &mut ProbeTrail, debug_vmlinux: Option<&Path>) -> Option<String> {
    let is_kernel = |f: &crate::probe::ProbeFunc| f.kind == FuncKind::Kernel && f.source.is_none();
    if !trail.funcs.iter().any(is_kernel) {
        return None;
    }
    let Some(path) = debug_vmlinux else {
        return Some(
            "kernel functions: no source lines (no debug vmlinux cached; `cargo ktstr kernel fetch \
             --debug-info` fetches Debian's)"
                .to_string(),
        );
    };
    let lines = match SourceLines::open(path) {
        Ok(l) => l,
        Err(e) => return Some(format!("kernel functions: no source lines ({e:#})")),
    };
    let mut missing = Vec::new();
    for f in trail.funcs.iter_mut().filter(|f| is_kernel(f)) {
        match lines.function_source(&f.name) {
            Some(src) => f.source = Some(src),
            None => missing.push(f.name.clone()),
        }
    }
    (!missing.is_empty())
        .then(|| format!("kernel functions without a line in {}: {}", path.display(), missing.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail() -> ProbeTrail {
        serde_json::from_str(include_str!("../../tests/fixtures/repro/probe_trail.json")).unwrap()
    }

    #[test]
    fn kernel_functions_say_why_they_have_no_line() {
        let mut t = trail();
        let note = add_kernel_sources(&mut t, None).unwrap();
        assert!(note.contains("no debug vmlinux cached; `cargo ktstr kernel fetch --debug-info`"), "{note}");

        let junk = std::env::temp_dir().join(format!("ktstr-repro-junk-{}", std::process::id()));
        std::fs::write(&junk, b"junk").unwrap();
        let note = add_kernel_sources(&mut t, Some(&junk)).unwrap();
        let _ = std::fs::remove_file(&junk);
        assert!(note.starts_with("kernel functions: no source lines (") && note.contains("not an ELF"), "{note}");

        // A real binary with line tables but none of these functions:
        // each is named, and callbacks keep their BPF line info.
        let exe = std::env::current_exe().unwrap();
        let note = add_kernel_sources(&mut t, Some(&exe)).unwrap();
        let kernel: Vec<&str> =
            t.funcs.iter().filter(|f| f.kind == FuncKind::Kernel).map(|f| f.name.as_str()).collect();
        assert!(!kernel.is_empty() && kernel.iter().all(|k| note.contains(k)), "{note}");
        assert!(t.funcs.iter().any(|f| matches!(f.kind, FuncKind::BpfCallback { .. }) && f.source.is_some()));
    }
}
