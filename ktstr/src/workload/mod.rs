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

use serde::{Deserialize, Serialize};

pub use set::{WorkerExit, WorkerSet};
pub use shm::MAX_CPUS;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkType {
    /// CPU-bound: one fixed compute unit (~20 µs natively) per iteration.
    #[default]
    SpinWait,
    /// A small compute unit, then `sched_yield()`, every iteration.
    YieldHeavy,
    /// Sleep/wake between pairs: PingPong workers of one set pair up in
    /// order and hand a turn back and forth through a futex word, one
    /// waking the other and then waiting. An odd one out sleeps ~100 µs
    /// per iteration instead.
    PingPong,
    /// Compute for ~2 ms (one unit per iteration), then sleep ~1 ms.
    Bursty,
    /// Rotates every iteration through a compute unit, a yield and a
    /// ~200 µs sleep, so enqueue, dispatch and wake-up paths all stay busy.
    Mixed,
}

/// What one worker did over one interval (a phase), or the merge of several.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub pid: u32,
    pub work_type: WorkType,
    pub iterations: u64,
    /// Length of the interval covered.
    pub wall_ns: u64,
    /// Distinct CPUs it ran on in the interval (CPUs below [`MAX_CPUS`]), sorted.
    pub cpus: Vec<u32>,
    /// CPU changes seen between consecutive iterations.
    pub migrations: u64,
    /// Longest gap between iterations outside voluntary sleeps.
    pub max_gap_ns: u64,
    /// CPU it resumed on after that gap.
    pub max_gap_cpu: u32,
    /// When that gap began, as an offset from the set's epoch.
    pub max_gap_at_ns: u64,
    /// Time on CPU (`/proc/<pid>/schedstat` field 1) over the interval.
    pub run_ns: u64,
    /// Time runnable but waiting (schedstat field 2) over the interval.
    pub run_delay_ns: u64,
    /// Times it was scheduled in (schedstat field 3) over the interval.
    pub timeslices: u64,
}

impl WorkerReport {
    /// Iterations per second of `wall_ns` (0 when `wall_ns` is 0).
    pub fn iteration_rate(&self) -> f64 {
        if self.wall_ns == 0 {
            return 0.0;
        }
        self.iterations as f64 * 1e9 / self.wall_ns as f64
    }

    /// Share of the interval spent off CPU, in percent, within [0, 100].
    pub fn off_cpu_pct(&self) -> f64 {
        if self.wall_ns == 0 {
            return 0.0;
        }
        let off = self.wall_ns as f64 - self.run_ns as f64;
        (100.0 * off / self.wall_ns as f64).clamp(0.0, 100.0)
    }

    /// Folds in the report of a later interval: counters and wall time add
    /// up, CPU sets unite, the larger gap stays with its CPU and time. An
    /// empty (default) report takes the pid and work type of `later`.
    pub fn merge(&mut self, later: &WorkerReport) {
        if self.pid == 0 {
            self.pid = later.pid;
            self.work_type = later.work_type;
        }
        // Saturating: the figures come from the guest, which the host does
        // not trust to keep them sane.
        self.iterations = self.iterations.saturating_add(later.iterations);
        self.wall_ns = self.wall_ns.saturating_add(later.wall_ns);
        self.cpus.extend_from_slice(&later.cpus);
        self.cpus.sort_unstable();
        self.cpus.dedup();
        self.migrations = self.migrations.saturating_add(later.migrations);
        if later.max_gap_ns > self.max_gap_ns {
            self.max_gap_ns = later.max_gap_ns;
            self.max_gap_cpu = later.max_gap_cpu;
            self.max_gap_at_ns = later.max_gap_at_ns;
        }
        self.run_ns = self.run_ns.saturating_add(later.run_ns);
        self.run_delay_ns = self.run_delay_ns.saturating_add(later.run_delay_ns);
        self.timeslices = self.timeslices.saturating_add(later.timeslices);
    }
}

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
