//! What the guest tells the host.

use serde::{Deserialize, Serialize};

use super::dump::FailureDump;
use super::monitor::{BpfStats, KernelSymbols};
use super::probe::ProbeTrail;
use super::verdict::AssertResult;

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

/// How a [`GuestStep::Scheduler`] error starts when the kernel has no
/// sched_ext: the host labels that run the harness's fault, not the
/// scheduler's.
pub const NO_SCHED_EXT: &str = "this kernel has no sched_ext";

/// The step of the guest runtime a [`GuestMessage::Error`] comes from.
/// On the wire and in words, the names below (`mounts`, `bpf_map_write`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestStep {
    /// Mounting /proc, /sys, cgroup2, tracefs...: not fatal by itself.
    Mounts,
    /// Reading the plan, or finding the test it names.
    Plan,
    /// Starting the scheduler or waiting for it to attach.
    Scheduler,
    /// Writing a `bpf_map_write` into the scheduler's maps.
    #[serde(rename = "bpf_map_write")]
    MapWrite,
    /// Switching on the sched_ext_dump trace event.
    Trace,
    /// The payload ran past its time and the guest took a dump on demand.
    Hang,
    /// `cargo ktstr shell`'s shell.
    Shell,
}

impl std::fmt::Display for GuestStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestStep::Mounts => "mounts",
            GuestStep::Plan => "plan",
            GuestStep::Scheduler => "scheduler",
            GuestStep::MapWrite => "bpf_map_write",
            GuestStep::Trace => "trace",
            GuestStep::Hang => "hang",
            GuestStep::Shell => "shell",
        })
    }
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
    /// A guest-runtime problem, in words (e.g. why the scheduler never
    /// attached), and the step of the guest runtime it happened in.
    Error {
        stage: GuestStep,
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
