//! Auto-repro: when the scheduler crashed, a second VM replays the
//! scenario with BPF probes on the crash path, and the trail of the task
//! that triggered the exit is stitched and rendered.
//!
//! The stages: [`extract`] reads the primary run's crash stack into a
//! [`ProbePlan`]; the repro VM runs the same test with that plan (the guest
//! discovers the scheduler's callbacks, resolves BTF and attaches, see
//! `guest::probe`); [`render`] stitches what came back into the
//! `--- auto-repro ---` section.

pub mod extract;
mod render;

use crate::outcome::RunOutcome;
use crate::probe::ProbePlan;

pub use render::render;

/// The probe plan for a primary run that failed because its scheduler
/// crashed or exited; `None` for any other failure (checks, a kernel
/// panic, a VM that never booted), where replaying probes nothing.
pub fn plan_for(primary: &RunOutcome) -> Option<ProbePlan> {
    if primary.sched_exit.is_none() || primary.kernel_crash.is_some() {
        return None;
    }
    let stack = extract::stack_functions(&primary.sched_log, &primary.sched_ext_dump, &primary.vm.console);
    Some(ProbePlan { stack: stack.functions, break_trigger: false })
}
