//! Per-run overrides of what a test's entry says: read by the run and
//! by its preparation alike, so both import it from here.

use std::path::PathBuf;
use std::time::Duration;

/// Per-run overrides of what the entry says (error-path tests, tooling).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Kernel spec as `--kernel` takes it; default `KTSTR_KERNEL`, then
    /// the newest cached kernel.
    pub kernel: Option<String>,
    /// Replaces the entry's `extra_sched_args`.
    pub extra_sched_args: Option<Vec<String>>,
    /// Replaces the derived boot deadline (time for init to say hello).
    pub boot_deadline: Option<Duration>,
    /// Overrides the entry's `auto_repro`.
    pub auto_repro: Option<bool>,
    /// Makes the repro VM's trigger fail to attach (the no-trigger path).
    pub break_repro_trigger: bool,
    /// Whether the host-side monitor watches the run (default: yes; never
    /// in auto-repro's second VM).
    pub monitor: Option<bool>,
    /// Host files or directories copied into the guest under `/include`,
    /// beside the entry's own `include_files` (`ktstr shell --include`).
    pub include_files: Vec<PathBuf>,
    /// Start from a snapshot of a booted guest, or boot (default: a
    /// snapshot, unless `KTSTR_SNAPSHOT=0`).
    pub snapshot: Option<bool>,
}

impl RunOptions {
    /// Whether the monitor watches: by default yes, but not the repro VM
    /// (its probes are the observation there).
    pub(super) fn monitored(&self, repro: bool) -> bool {
        !repro && self.monitor.unwrap_or(true)
    }
}
