//! Judging a run, once: the outcome folded from the VM's messages, held to
//! the thresholds in force, gives a [`Verdict`] whose reasons are values
//! (the report's detail lines are their words). Nothing before this stage
//! knows a threshold; everything after it reads the verdict.

use std::fmt;
use std::time::Duration;

use crate::channel::GuestStep;
use crate::check::{self, Checks};
use crate::monitor::verdict as monitor_verdict;
use crate::outcome::{RunOutcome, StageReached};
use crate::vm::VmExit;
use crate::wire::message::NO_SCHED_EXT;

/// How a [`Reason::Harness`] line starts: what tools reading reports
/// (the matrix) key on.
pub const HARNESS_FAULT: &str = "harness or host fault, not the scheduler's: ";

/// Why a run failed: one value per detail line under the report's header.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    /// A fault of the harness or the host, not the scheduler's: its cause.
    /// Always the first line when present.
    Harness(String),
    /// The wall-clock limit killed QEMU.
    TimedOut { limit: Duration, stage: StageReached },
    /// Init sent nothing before the boot deadline.
    BootStalled { deadline: Duration, stage: StageReached },
    /// The guest kernel panicked (its `Kernel panic - not syncing:` reason).
    KernelPanic(String),
    /// A problem the guest runtime reported, in its words.
    Guest(String),
    /// The scheduler process ended while the workload ran.
    SchedulerDied { at_ms: Option<u64>, status: String },
    /// A detail line of the test's own failing `AssertResult`.
    Test(String),
    /// The test failed without saying why.
    TestWithoutDetail,
    /// A threshold the workers' figures violate (its detail line).
    Check(String),
    /// A threshold the monitor's samples violate (its detail line).
    Monitor(String),
    /// No verdict came back from the guest.
    NoResult(StageReached),
    /// Frames of the channel did not decode (said beside other reasons).
    ChannelDamaged { frames: u64, bytes: u64 },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::TimedOut { limit, stage } => write!(
                f,
                "guest did not power off within the {}s wall-clock limit (stage reached: {stage}); QEMU was killed",
                limit.as_secs()
            ),
            Reason::BootStalled { deadline, stage } => write!(
                f,
                "guest boot stalled: init sent nothing within {:.1}s (stage reached: {stage}); QEMU was killed",
                deadline.as_secs_f64()
            ),
            Reason::Harness(cause) => write!(f, "{HARNESS_FAULT}{cause}"),
            Reason::KernelPanic(p) => write!(f, "guest kernel panicked: {p}"),
            Reason::Guest(m) | Reason::Test(m) | Reason::Check(m) | Reason::Monitor(m) => f.write_str(m),
            Reason::SchedulerDied { at_ms: Some(ms), .. } => {
                write!(f, "scheduler process died unexpectedly during workload ({:.1}s into test)", *ms as f64 / 1000.0)
            }
            Reason::SchedulerDied { at_ms: None, status } => {
                write!(f, "scheduler process died unexpectedly during workload ({status})")
            }
            Reason::TestWithoutDetail => f.write_str("test returned a failing AssertResult with no detail"),
            Reason::NoResult(stage) => write!(f, "no test result from the guest (stage reached: {stage})"),
            Reason::ChannelDamaged { frames, bytes } => {
                write!(f, "guest channel damaged: {frames} frames / {bytes} bytes did not decode")
            }
        }
    }
}

/// A run, judged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Empty when the run passed.
    pub reasons: Vec<Reason>,
    /// The monitor's thresholds held to its samples (its failures are also
    /// among `reasons`; `stuck` feeds the `--- monitor ---` block).
    pub monitor: monitor_verdict::Verdict,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.reasons.is_empty()
    }

    /// The report's detail lines.
    pub fn lines(&self) -> Vec<String> {
        self.reasons.iter().map(Reason::to_string).collect()
    }

    /// Whether the test's own verdict or a workers' threshold failed (the
    /// report then leads with the figures, not the VM's diagnostics).
    pub(crate) fn checks_failed(&self) -> bool {
        self.reasons.iter().any(|r| matches!(r, Reason::Test(_) | Reason::TestWithoutDetail | Reason::Check(_)))
    }
}

/// What in `o` is the harness's or the host's doing rather than the
/// scheduler's: QEMU killed from outside, QEMU failing before the guest
/// ran, a guest that never reached init or stopped talking before its
/// scheduler started, a kernel that panicked before init.
pub fn harness_fault(o: &RunOutcome) -> Option<String> {
    let before_init = matches!(o.stage, StageReached::KernelDidNotBoot | StageReached::InitDidNotStart);
    let before_scheduler = before_init || o.stage == StageReached::PayloadDidNotStart;
    let qemu_said = || o.vm.qemu_log.lines().rev().find(|l| !l.trim().is_empty()).map(str::trim);
    match o.vm.exit {
        VmExit::Killed { signal } => {
            return Some(format!(
                "{} (stage reached: {}): the host's OOM killer or a user",
                crate::vm::killed_from_outside(signal),
                o.stage
            ))
        }
        VmExit::Exited { code: Some(c) } if c != 0 && before_init => {
            let said = qemu_said().map(|l| format!(": {l}")).unwrap_or_default();
            return Some(format!("QEMU exited with code {c} before the guest kernel ran init{said}"));
        }
        VmExit::BootStalled { deadline } => {
            return Some(format!(
                "the guest said nothing within {:.1}s of starting, twice (stage reached: {})",
                deadline.as_secs_f64(),
                o.stage
            ))
        }
        VmExit::TimedOut { .. } if before_scheduler && o.sched_exit.is_none() => {
            return Some(format!("the guest stopped talking before its scheduler started (stage reached: {})", o.stage))
        }
        _ => {}
    }
    // A kernel without sched_ext: no scheduler could have attached. The
    // guest's own line, with the fix, follows.
    if o.guest_errors.iter().any(|(s, m)| *s == GuestStep::Scheduler && m.starts_with(NO_SCHED_EXT)) {
        return Some(format!(
            "the guest kernel has no sched_ext, so no scheduler can run on it (stage reached: {})",
            o.stage
        ));
    }
    let panic = o.kernel_crash.as_ref().and_then(|k| k.panic.as_ref()).filter(|_| before_init)?;
    if short_of_memory(o).is_some() {
        return None;
    }
    Some(format!("the guest kernel panicked before init started, for reasons of its own: {panic}"))
}

/// A guest that ran out of memory before init: the test's `memory_mb`,
/// not the host's fault nor the scheduler's. The kernel says so in a
/// panic ("System is deadlocked on memory", "Out of memory and no
/// killable processes"), or its initramfs did not fit ("write error": other
/// unpacking failures are a damaged image) and init is missing.
/// prepare refuses the smallest sizes before boot; this names the rest.
pub fn short_of_memory(o: &RunOutcome) -> Option<String> {
    if !matches!(o.stage, StageReached::KernelDidNotBoot | StageReached::InitDidNotStart) {
        return None;
    }
    let panic = o.kernel_crash.as_ref().and_then(|k| k.panic.as_deref()).unwrap_or("");
    let unpack_failed = o.vm.console.lines().find(|l| l.contains("Initramfs unpacking failed: write error"));
    let said = match unpack_failed {
        Some(l) => l.split("] ").nth(1).unwrap_or(l).trim(),
        None if panic.to_ascii_lowercase().contains("memory") => panic,
        None => return None,
    };
    Some(format!("the guest ran out of memory before init ({said}): raise the test's `memory_mb`"))
}

/// Holds `o` to `checks`: the VM's fate, the guest's errors, the
/// scheduler's death, the test's verdict, the workers' thresholds and the
/// monitor's, in the order the report prints them.
pub fn judge(o: &RunOutcome, checks: &Checks) -> Verdict {
    let mut why: Vec<Reason> = harness_fault(o).into_iter().map(Reason::Harness).collect();
    why.extend(short_of_memory(o).map(Reason::Guest));
    match o.vm.exit {
        VmExit::TimedOut { limit } => why.push(Reason::TimedOut { limit, stage: o.stage }),
        VmExit::BootStalled { deadline } => why.push(Reason::BootStalled { deadline, stage: o.stage }),
        VmExit::Exited { .. } | VmExit::Killed { .. } => {}
    }
    if let Some(p) = o.kernel_crash.as_ref().and_then(|k| k.panic.as_ref()) {
        why.push(Reason::KernelPanic(p.clone()));
    }
    // A failed mount is worth a line in the diagnostics, not a verdict.
    why.extend(
        o.guest_errors.iter().filter(|(step, _)| *step != GuestStep::Mounts).map(|(_, m)| Reason::Guest(m.clone())),
    );
    if let Some((status, true)) = &o.sched_exit {
        why.push(Reason::SchedulerDied { at_ms: o.sched_exit_at_ms, status: status.clone() });
    }
    let monitor = o.monitor.as_ref().map(|m| monitor_verdict::evaluate(m, checks)).unwrap_or_default();
    match &o.result {
        Some(r) => {
            if !r.passed {
                why.extend(r.details.iter().cloned().map(Reason::Test));
                if r.details.is_empty() {
                    why.push(Reason::TestWithoutDetail);
                }
            }
            if let Some(stats) = &r.stats {
                why.extend(check::evaluate(stats, checks).into_iter().map(Reason::Check));
            }
        }
        None if why.is_empty() && monitor.failures.is_empty() => why.push(Reason::NoResult(o.stage)),
        None => {}
    }
    // The monitor's verdict stands beside the workers' checks.
    why.extend(monitor.failures.iter().cloned().map(Reason::Monitor));
    let (bytes, frames) = o.vm.channel_damage;
    if !why.is_empty() && frames > 0 {
        why.push(Reason::ChannelDamaged { frames: frames as u64, bytes: bytes as u64 });
    }
    Verdict { reasons: why, monitor }
}
