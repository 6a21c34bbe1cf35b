//! What the host learned from one VM run: the furthest stage the guest
//! reached, the test's own verdict, the scheduler's log, the monitor's
//! samples. Folded from what the VM left, with no threshold in it: the
//! `judge` stage holds it to the checks.

use std::fmt;

use crate::channel::{GuestMessage, GuestStep, Stage};
use crate::check::AssertResult;
use crate::crash;
use crate::vm::VmOutput;

/// How far a run got, in the order a healthy run passes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StageReached {
    KernelDidNotBoot,
    InitDidNotStart,
    /// Init ran but stopped before the payload for a reason it reported
    /// (plan unreadable, test not registered).
    PayloadDidNotStart,
    SchedulerDidNotAttach,
    PayloadNoResult,
    ResultReceived,
}

impl fmt::Display for StageReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StageReached::KernelDidNotBoot => "kernel did not boot",
            StageReached::InitDidNotStart => "init did not start",
            StageReached::PayloadDidNotStart => "init started but the payload did not start",
            StageReached::SchedulerDidNotAttach => "scheduler did not attach",
            StageReached::PayloadNoResult => "payload started but produced no test result",
            StageReached::ResultReceived => "result received",
        })
    }
}

#[derive(Debug)]
pub struct RunOutcome {
    pub stage: StageReached,
    pub kernel_release: Option<String>,
    pub result: Option<AssertResult>,
    /// Scheduler stdout and stderr, one entry per line, in arrival order.
    pub sched_log: Vec<String>,
    /// The kernel's `sched_ext_dump` trace lines, when the guest took them.
    pub sched_ext_dump: Vec<String>,
    /// The one-line cause of a scheduler's error exit, when it had one.
    pub bug_summary: Option<String>,
    /// `(status, during_payload)` when the scheduler process ended on its own.
    pub sched_exit: Option<(String, bool)>,
    /// When it died, into the payload.
    pub sched_exit_at_ms: Option<u64>,
    pub sched_attach_ms: Option<u64>,
    /// Problems the guest runtime reported, `(stage, message)`.
    pub guest_errors: Vec<(GuestStep, String)>,
    /// The guest runtime's exit code, if it got to power off.
    pub guest_exit_code: Option<i32>,
    /// The kernel's oops or panic, with its console excerpt and the
    /// `Kernel panic - not syncing: ...` reason.
    pub kernel_crash: Option<crash::KernelCrash>,
    /// Auto-repro's probe trail (a repro VM's run only).
    pub probe_trail: Option<crate::probe::ProbeTrail>,
    /// The guest's post-mortem of the scheduler's BPF state (the last one
    /// sent: a hang's dump is superseded by the one after the payload).
    pub failure_dump: Option<crate::dump::FailureDump>,
    /// What the host-side monitor saw, when it watched the run.
    pub monitor: Option<crate::monitor::MonitorReport>,
    pub vm: VmOutput,
}

impl RunOutcome {
    /// Reads the run's messages and console (the monitor's report, when
    /// it watched, is set by the caller).
    pub fn from_vm(vm: VmOutput) -> Self {
        let mut o = RunOutcome {
            stage: StageReached::KernelDidNotBoot,
            kernel_release: None,
            result: None,
            sched_log: Vec::new(),
            sched_ext_dump: Vec::new(),
            bug_summary: None,
            sched_exit: None,
            sched_exit_at_ms: None,
            sched_attach_ms: None,
            guest_errors: Vec::new(),
            guest_exit_code: None,
            kernel_crash: crash::kernel_crash(&vm.console),
            probe_trail: None,
            failure_dump: None,
            monitor: None,
            vm,
        };
        let (mut sched_started, mut payload_started) = (false, false);
        for msg in &o.vm.messages {
            match msg {
                GuestMessage::Stage(Stage::InitStarted { kernel_release }) => {
                    o.kernel_release = Some(kernel_release.clone())
                }
                GuestMessage::Stage(Stage::SchedulerStarted { .. }) => sched_started = true,
                GuestMessage::Stage(Stage::SchedulerAttached { after_ms, .. }) => o.sched_attach_ms = Some(*after_ms),
                GuestMessage::Stage(Stage::PayloadStarted) => payload_started = true,
                GuestMessage::SchedulerOutput { line, .. } => o.sched_log.push(line.clone()),
                GuestMessage::Error { stage, message } => o.guest_errors.push((*stage, message.clone())),
                GuestMessage::SchedulerExited { status, during_payload, at_ms } => {
                    o.sched_exit = Some((status.clone(), *during_payload));
                    o.sched_exit_at_ms = *at_ms;
                }
                GuestMessage::SchedExtDumpTrace { text } => o.sched_ext_dump = crash::parse_sched_ext_dump_trace(text),
                GuestMessage::TestResult(r) => o.result = Some(r.clone()),
                GuestMessage::Exit { code } => o.guest_exit_code = Some(*code),
                GuestMessage::ProbeTrail(t) => o.probe_trail = Some((**t).clone()),
                GuestMessage::FailureDump(d) => o.failure_dump = Some((**d).clone()),
                // The monitor's, taken live by the host-side monitor.
                GuestMessage::KernelSymbols(_) | GuestMessage::BpfStats(_) => {}
            }
        }
        // A kernel crash ends everything after it: it is the cause even
        // when a scheduler error came first and set it off.
        o.bug_summary = o
            .kernel_crash
            .as_ref()
            .map(|k| k.summary.clone())
            .or_else(|| crash::bug_summary(&o.sched_log, &o.sched_ext_dump, &o.vm.console));
        let sched_failed = sched_started && o.sched_attach_ms.is_none();
        o.stage = if o.result.is_some() {
            StageReached::ResultReceived
        } else if payload_started {
            StageReached::PayloadNoResult
        } else if sched_failed || o.guest_errors.iter().any(|(s, _)| *s == GuestStep::Scheduler) {
            StageReached::SchedulerDidNotAttach
        } else if o.kernel_release.is_some() {
            StageReached::PayloadDidNotStart
        } else if !o.vm.console.trim().is_empty() {
            // The quiet console prints only errors and panics; any output
            // at all proves the kernel ran.
            StageReached::InitDidNotStart
        } else {
            StageReached::KernelDidNotBoot
        };
        o
    }

    /// What `expect_scx_bpf_error_*` matchers look at: the scheduler's log
    /// (the kernel's debug dump included) and the traced sched_ext dump.
    pub(crate) fn error_corpus(&self) -> String {
        let mut s = self.sched_log.join("\n");
        for l in &self.sched_ext_dump {
            s.push('\n');
            s.push_str(l);
        }
        s
    }
}

/// Outcomes of real runs, captured from VMs (console + channel bytes
/// under `tests/fixtures/runs`), for the tests of this module and `report`.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::RunOutcome;
    use crate::vm::{VmExit, VmOutput};

    pub const EXITED: VmExit = VmExit::Exited { code: Some(0) };

    pub fn fixture(name: &str, exit: VmExit) -> RunOutcome {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs").join(name);
        assert!(dir.join("channel.bin").exists(), "fixture {name} missing");
        RunOutcome::from_vm(VmOutput::collect(&dir, exit, Duration::from_secs(5)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::fixtures::{fixture, EXITED};
    use super::*;
    use crate::check::Checks;
    use crate::judge::judge;
    use crate::vm::VmExit;

    fn reasons(o: &RunOutcome) -> Vec<String> {
        judge(o, &Checks::DEFAULT).lines()
    }

    #[test]
    fn kernel_panic_during_payload() {
        let o = fixture("kernel_panic", EXITED);
        assert_eq!(o.stage, StageReached::PayloadNoResult);
        assert_eq!(o.kernel_crash.as_ref().and_then(|k| k.panic.as_deref()), Some("sysrq triggered crash"));
        assert_eq!(reasons(&o), ["guest kernel panicked: sysrq triggered crash"]);
    }

    #[test]
    fn guest_hang_names_the_limit_and_stage() {
        let o = fixture("guest_hang", VmExit::TimedOut { limit: Duration::from_secs(39) });
        assert_eq!(o.stage, StageReached::PayloadNoResult);
        assert_eq!(
            reasons(&o),
            ["guest did not power off within the 39s wall-clock limit (stage reached: payload started but \
              produced no test result); QEMU was killed"]
        );
    }

    #[test]
    fn scheduler_exiting_before_attach() {
        let o = fixture("sched_exits_at_once", EXITED);
        assert_eq!(o.stage, StageReached::SchedulerDidNotAttach);
        assert_eq!(o.kernel_release.as_deref(), Some("7.3.4+deb13-cloud-amd64"));
        assert!(o.sched_log.iter().any(|l| l.contains("unexpected argument '--no-such-flag'")), "{:?}", o.sched_log);
        assert_eq!(o.guest_exit_code, Some(1));
        assert!(reasons(&o)[0].contains("before attaching"), "{:?}", reasons(&o));
    }

    #[test]
    fn failed_checks_become_detail_lines() {
        let o = fixture("topology_mismatch", EXITED);
        assert_eq!(o.stage, StageReached::ResultReceived);
        let why = reasons(&o);
        assert!(why.contains(&"cpu0: thread_siblings_list 0, want 0-1".to_string()), "{why:?}");
        assert!(!judge(&o, &Checks::DEFAULT).passed());
    }

    #[test]
    fn empty_run_directory_means_the_kernel_never_ran() {
        let dir = std::env::temp_dir().join(format!("ktstr-empty-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let o = RunOutcome::from_vm(VmOutput::collect(&dir, EXITED, Duration::ZERO));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(o.stage, StageReached::KernelDidNotBoot);
        assert_eq!(reasons(&o), ["no test result from the guest (stage reached: kernel did not boot)"]);
    }
}
