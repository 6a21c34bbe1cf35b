//! What a scenario measured, phase by phase: the data the host checks and
//! renders (`--- stats ---`, `--- timeline ---`). Plain data: it crosses
//! the channel inside [`super::AssertResult`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioStats {
    /// One per step that ran, in order.
    pub phases: Vec<PhaseStats>,
    /// From the payload's start to the first iteration of the last worker
    /// of the first step: the cost of forking and placing the workers.
    pub setup_ms: Option<u64>,
    /// Set when the work-conservation watchdog ended the scenario.
    pub watchdog: Option<WatchdogTrip>,
    /// Set when the scheduler left sched_ext during the scenario, which
    /// ended it early: (phase index, ms into that phase).
    pub scheduler_gone: Option<(usize, u64)>,
}

/// One step: its ops applied at its start, then its hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseStats {
    /// Index of the step (`StepStart[i]`).
    pub step: usize,
    /// Ops applied at the step's start (cgroups in its setup are not ops).
    pub ops: usize,
    pub duration_ms: u64,
    /// The cgroups alive during the phase, with their workers' reports
    /// over the phase.
    pub cgroups: Vec<CgroupStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupStats {
    pub name: String,
    /// CPUs its cpuset allows, when it has one.
    pub cpuset: Option<Vec<u32>>,
    pub workers: Vec<WorkerReport>,
}

/// A worker stuck off CPU past the watchdog's threshold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchdogTrip {
    pub pid: u32,
    pub cgroup: String,
    pub stuck_ms: u64,
    /// The scheduler process signalled (SIGUSR2), if there was one.
    pub scheduler_pid: Option<u32>,
}

impl CgroupStats {
    /// Distinct CPUs any of its workers ran on.
    pub fn cpus_used(&self) -> Vec<u32> {
        let mut cpus: Vec<u32> = self.workers.iter().flat_map(|w| w.cpus.iter().copied()).collect();
        cpus.sort_unstable();
        cpus.dedup();
        cpus
    }

    pub fn iterations(&self) -> u64 {
        self.workers.iter().fold(0, |n, w| n.saturating_add(w.iterations))
    }

    pub fn migrations(&self) -> u64 {
        self.workers.iter().fold(0, |n, w| n.saturating_add(w.migrations))
    }

    /// The worker with the longest gap.
    pub fn worst_gap(&self) -> Option<&WorkerReport> {
        self.workers.iter().max_by_key(|w| w.max_gap_ns)
    }
}

impl ScenarioStats {
    pub fn duration_ms(&self) -> u64 {
        self.phases.iter().fold(0, |n, p| n.saturating_add(p.duration_ms))
    }

    /// Whole-run figures per cgroup, in order of first appearance: each
    /// worker's phase reports merged.
    pub fn totals(&self) -> Vec<CgroupStats> {
        let mut out: Vec<CgroupStats> = Vec::new();
        // Indexes, so that a huge (or hostile) report stays linear.
        let mut cgroup_at: HashMap<&str, usize> = HashMap::new();
        let mut worker_at: HashMap<(usize, u32), usize> = HashMap::new();
        for c in self.phases.iter().flat_map(|p| &p.cgroups) {
            let i = *cgroup_at.entry(&c.name).or_insert_with(|| {
                out.push(CgroupStats { name: c.name.clone(), cpuset: None, workers: Vec::new() });
                out.len() - 1
            });
            let total = &mut out[i];
            total.cpuset = c.cpuset.clone();
            for w in &c.workers {
                match worker_at.get(&(i, w.pid)) {
                    Some(&j) => total.workers[j].merge(w),
                    None => {
                        worker_at.insert((i, w.pid), total.workers.len());
                        total.workers.push(w.clone());
                    }
                }
            }
        }
        out
    }
}

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
    /// A compute unit per iteration; every 8th it narrows its own CPU mask
    /// (`sched_setaffinity`) to one CPU of those it started with, rotating,
    /// and every 8th after that widens it back to all of them.
    AffinityChurn,
    /// Per iteration: forks a child that computes a small unit and exits,
    /// and waits for it; every other iteration a thread instead, joined.
    /// Task creation and exit, not CPU time, is the load.
    ForkExit,
    /// Mostly idle: sleeps ~20 ms, then computes for ~2 ms, over and over,
    /// so CPUs keep going idle and waking up.
    IdleBurst,
}

/// What one worker did over one interval (a phase), or the merge of several.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub pid: u32,
    pub work_type: WorkType,
    pub iterations: u64,
    /// Length of the interval covered.
    pub wall_ns: u64,
    /// Distinct CPUs it ran on in the interval (CPUs below `workload::MAX_CPUS`), sorted.
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
