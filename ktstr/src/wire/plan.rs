//! The guest's instructions, written by the host into the initramfs as
//! [`GuestPlan::PATH`]. Everything the guest does comes from here or from
//! the test registry compiled into the same binary.

use serde::{Deserialize, Serialize};

use super::topology::Topology;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GuestPlan {
    pub test_name: String,
    pub topology: Topology,
    pub scheduler: Option<SchedulerLaunch>,
    pub duration_s: u64,
    /// How long to wait for the scheduler to attach.
    pub attach_timeout_s: u64,
    /// Repro mode (auto-repro's second VM): the work-conservation watchdog
    /// watches but does not signal the scheduler.
    #[serde(default)]
    pub repro: bool,
    /// A payload still running this many seconds after it started is near
    /// the VM's wall-clock limit: the guest asks the kernel for a sched_ext
    /// dump (sysrq `D`) while it still can. 0: never.
    #[serde(default)]
    pub hang_dump_after_s: u64,
    /// Writes into the scheduler's BPF maps, applied once the workload runs.
    #[serde(default)]
    pub map_writes: Vec<MapWrite>,
    /// Auto-repro's probes, attached once the scheduler has attached.
    #[serde(default)]
    pub probes: Option<super::probe::ProbePlan>,
    /// The host monitors this run: send the kernel symbols it needs,
    /// switch on the optional counters, report BPF program figures.
    #[serde(default)]
    pub monitor: bool,
    /// `cargo ktstr shell`: once the scheduler is up, run an interactive
    /// shell instead of the test function, and power off when it exits.
    #[serde(default)]
    pub shell: Option<ShellPlan>,
    /// The include files' top-level guest paths (`/include/<name>`), for
    /// the shell's banner; the files themselves are in the initramfs.
    #[serde(default)]
    pub include: Vec<String>,
}

/// The guest's interactive shell (see [`GuestPlan::shell`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ShellPlan {
    /// The guest's tty wired to the user's terminal.
    pub tty: String,
    /// The terminal's size on the host, given to the guest's tty so that
    /// line editing wraps where the user's terminal does (0: unknown).
    pub rows: u16,
    pub cols: u16,
    /// The host's `TERM`, for programs that look at it.
    pub term: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SchedulerLaunch {
    pub name: String,
    /// Path of the binary inside the guest.
    pub path: String,
    pub args: Vec<String>,
    pub ops_name: Option<String>,
}

impl GuestPlan {
    pub const PATH: &'static str = super::paths::PLAN;
}

/// One value written into a loaded scheduler's global variable: the map
/// whose name ends in `map` (`.bss`, `.data`), at the BTF offset of `var`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapWrite {
    pub map: String,
    pub var: String,
    pub value: u64,
}
