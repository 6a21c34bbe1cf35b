//! What the guest tells the host.

use serde::{Deserialize, Serialize};

use crate::check::AssertResult;
use crate::dump::FailureDump;
use crate::monitor::wire::{BpfStats, KernelSymbols};
use crate::probe::ProbeTrail;

/// How far the guest runtime got. Sent as each stage is reached, so the
/// host can name the last one when a run ends early.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Stage {
    /// PID 1 is running and the channel is open.
    InitStarted { kernel_release: String },
    /// The scheduler process was spawned.
    SchedulerStarted { pid: u32 },
    /// `/sys/kernel/sched_ext/state` reads `enabled` with the expected ops.
    SchedulerAttached { ops: String, after_ms: u64 },
    /// The test function is about to run.
    PayloadStarted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogStream {
    Stdout,
    Stderr,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GuestMessage {
    Stage(Stage),
    /// One line of the scheduler's output.
    SchedulerOutput {
        stream: LogStream,
        line: String,
    },
    /// A guest-runtime problem, in words (e.g. why the scheduler never attached).
    Error {
        stage: String,
        message: String,
    },
    /// The scheduler process ended (or the kernel ended its scheduler);
    /// `status` as the shell would show it; `at_ms` into the payload.
    SchedulerExited {
        status: String,
        during_payload: bool,
        #[serde(default)]
        at_ms: Option<u64>,
    },
    /// The text of the guest's trace buffer with the kernel's
    /// `sched_ext_dump` lines, taken when the scheduler died.
    SchedExtDumpTrace {
        text: String,
    },
    /// The test function's verdict.
    TestResult(AssertResult),
    /// The scheduler's BPF state after a failure (see [`FailureDump`]).
    FailureDump(Box<FailureDump>),
    /// Auto-repro's probe trail, once the scheduler has exited.
    ProbeTrail(Box<ProbeTrail>),
    /// For the host-side monitor, before the workload: where the kernel's
    /// data lies (the host starts sampling guest RAM once it has them).
    KernelSymbols(KernelSymbols),
    /// For the host-side monitor, after the workload: the scheduler's BPF
    /// program figures.
    BpfStats(BpfStats),
    /// The guest runtime is about to power off with this exit code.
    Exit {
        code: i32,
    },
}
