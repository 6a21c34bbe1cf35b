//! What a scenario measured, phase by phase: the data the host checks and
//! renders (`--- stats ---`, `--- timeline ---`). Plain data: it crosses
//! the channel inside [`crate::check::AssertResult`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::workload::WorkerReport;

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
