//! Forked worker processes that load the CPUs in a chosen way and record,
//! in shared memory, what the scheduler did to them.
//!
//! The scenario runner spawns a [`WorkerSet`], moves the pids into
//! cgroups, calls [`WorkerSet::release`] so they all start together, takes
//! a report per phase with [`WorkerSet::take_reports`], watches
//! [`WorkerSet::stuck`], and ends with [`WorkerSet::stop`].
//!
//! Telemetry: after every iteration a worker reads CLOCK_MONOTONIC and its
//! CPU. The time since the previous iteration is a candidate *gap* (time
//! it wanted to run but did not, plus one iteration's work), except across
//! its own voluntary sleeps (futex waits, nanosleep), after which timing
//! restarts. `sched_yield` is not a sleep: what it costs is scheduling
//! latency. Per-interval values (longest gap, CPU set) are drained by the
//! parent; counters are cumulative and reported as differences.

mod set;
mod shm;
mod worker;

#[cfg(test)]
mod tests;

pub use crate::wire::stats::{WorkType, WorkerReport};
pub use set::{WorkerExit, WorkerSet};
pub use shm::MAX_CPUS;

#[derive(Clone, Copy, Debug)]
pub struct SpawnOptions {
    /// CLOCK_MONOTONIC ns of the scenario start; gap times are offsets from it.
    pub epoch_ns: u64,
    /// False: count iterations only (the overhead benchmark's baseline);
    /// gaps, CPUs, migrations and `stuck` are then empty.
    pub telemetry: bool,
}

impl Default for SpawnOptions {
    /// Epoch now, telemetry on.
    fn default() -> Self {
        SpawnOptions { epoch_ns: monotonic_ns(), telemetry: true }
    }
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of every timestamp here.
pub fn monotonic_ns() -> u64 {
    shm::now_ns()
}

/// `/proc/<pid>/schedstat` as (run_ns, run_delay_ns, timeslices); None if
/// the process is gone or the kernel lacks CONFIG_SCHED_INFO.
pub fn read_schedstat(pid: u32) -> Option<(u64, u64, u64)> {
    parse_schedstat(&std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?)
}

/// Parses a schedstat line: "run_ns delay_ns timeslices".
pub fn parse_schedstat(line: &str) -> Option<(u64, u64, u64)> {
    let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().ok());
    let (run, delay, slices) = (fields.next()??, fields.next()??, fields.next()??);
    fields.next().is_none().then_some((run, delay, slices))
}
