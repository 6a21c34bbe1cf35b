//! Scenarios: what runs inside the guest while the scheduler is watched.
//! A scenario is data: [`Step`]s, each applying cgroup ops at its start
//! and then holding; [`execute_steps`] carries them out with forked
//! workers ([`crate::workload`]) in cgroup v2 groups and returns their
//! reports phase by phase in the [`AssertResult`].
//!
//! ```no_run
//! # use ktstr::prelude::*;
//! fn two_groups(ctx: &Ctx) -> Result<AssertResult> {
//!     execute_defs(ctx, vec![CgroupDef::named("cg_a").workers(2), CgroupDef::named("cg_b").workers(2)])
//! }
//! ```
//!
//! Canned scenarios any scheduler can be run against: [`catalogue::CATALOGUE`]
//! lists them, from [`basic`], [`cpuset`] and [`policy`].

pub mod basic;
pub mod catalogue;
mod cgroup;
pub mod churn;
pub mod cpuset;
mod ctx;
pub mod policy;
mod run;
mod system;

use std::time::Duration;

pub use crate::wire::stats::{CgroupStats, PhaseStats, ScenarioStats, WatchdogTrip};
pub use ctx::Ctx;
pub use run::{execute_defs, execute_steps};

use crate::wire::topology::Topology;
pub use crate::wire::verdict::AssertResult;
pub use crate::workload::WorkType;

/// Set once a scenario's first workers are released: the guest waits for
/// it before writing into the scheduler's maps (`bpf_map_write`), so a
/// crash knob lands on a scheduler with work to do.
pub(crate) static WORKLOAD_RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A worker off CPU (and not sleeping on its own) for this long trips the
/// work-conservation watchdog.
pub(crate) const WATCHDOG_STUCK_MS: u64 = 2000;

/// One cgroup and the workers in it.
#[derive(Clone, Debug, PartialEq)]
pub struct CgroupDef {
    pub name: String,
    /// `None`: one worker per CPU the cgroup may use.
    pub workers: Option<usize>,
    pub work_type: WorkType,
    pub cpuset: Option<CpusetSpec>,
    /// `cpu.weight` (1-10000, default 100).
    pub weight: Option<u32>,
    /// The workers' scheduling policy, set before they start.
    pub policy: SchedPolicy,
}

impl CgroupDef {
    pub fn named(name: impl Into<String>) -> Self {
        CgroupDef {
            name: name.into(),
            workers: None,
            work_type: WorkType::default(),
            cpuset: None,
            weight: None,
            policy: SchedPolicy::Normal(0),
        }
    }

    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    pub fn work_type(mut self, t: WorkType) -> Self {
        self.work_type = t;
        self
    }

    pub fn with_cpuset(mut self, cpus: CpusetSpec) -> Self {
        self.cpuset = Some(cpus);
        self
    }

    pub fn weight(mut self, w: u32) -> Self {
        self.weight = Some(w);
        self
    }

    pub fn policy(mut self, p: SchedPolicy) -> Self {
        self.policy = p;
        self
    }
}

/// A worker's scheduling policy. Under a sched_ext scheduler that switched
/// every task (the usual), the first three are its tasks, with the weight
/// the kernel gives them; `Fifo` is the RT class, which preempts them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SchedPolicy {
    /// SCHED_NORMAL at this nice value (-20..=19).
    Normal(i32),
    /// SCHED_BATCH: CPU-bound, not latency-sensitive.
    Batch,
    /// SCHED_IDLE: the lowest weight there is.
    Idle,
    /// SCHED_FIFO at this priority (1..=99): real time, above sched_ext.
    Fifo(u8),
}

/// Which CPUs a cgroup may use, resolved against the VM's topology.
#[derive(Clone, Debug, PartialEq)]
pub enum CpusetSpec {
    /// Exactly these CPUs.
    Cpus(Vec<u32>),
    /// Part `index` of the CPUs split into `of` contiguous parts.
    Disjoint { index: u32, of: u32 },
    /// The CPUs of one LLC.
    Llc(u32),
    /// The CPUs of one NUMA node.
    Numa(u32),
}

impl CpusetSpec {
    pub fn resolve(&self, t: &Topology) -> Result<Vec<u32>, String> {
        let cpus: Vec<u32> = match self {
            CpusetSpec::Cpus(c) => c.clone(),
            CpusetSpec::Disjoint { index, of } => {
                if *of == 0 || index >= of || *of > t.cpus() {
                    return Err(format!(
                        "cpuset Disjoint {{ index: {index}, of: {of} }} does not fit {} cpus",
                        t.cpus()
                    ));
                }
                let n = t.cpus();
                (index * n / of..(index + 1) * n / of).collect()
            }
            CpusetSpec::Llc(l) if *l < t.llcs => t.llc_cpus(*l).collect(),
            CpusetSpec::Numa(n) if *n < t.numa_nodes => t.node_cpus(*n).collect(),
            other => return Err(format!("cpuset {other:?} does not exist in topology {t}")),
        };
        match cpus.iter().find(|&&c| c >= t.cpus()) {
            _ if cpus.is_empty() => Err(format!("cpuset {self:?} is empty")),
            Some(c) => Err(format!("cpuset {self:?} names cpu{c}, but the VM has {} cpus", t.cpus())),
            None => Ok(cpus),
        }
    }
}

/// A change applied at the start of a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    AddCgroup(CgroupDef),
    /// Stops the cgroup's workers and removes it.
    RemoveCgroup(String),
    SetCpuset(String, CpusetSpec),
    /// Moves the running workers of the first cgroup into the second; they
    /// keep reporting under the first's name.
    MoveWorkers(String, String),
    /// Sets the scheduling policy (or nice value) of a cgroup's running workers.
    SetPolicy(String, SchedPolicy),
    /// Sets a cgroup's `cpu.weight`.
    SetWeight(String, u32),
    /// Takes a CPU offline (`/sys/devices/system/cpu/cpuN/online`); the
    /// scenario brings every CPU it took offline back at its end.
    CpuOffline(u32),
    CpuOnline(u32),
}

/// How long a step holds once its ops are applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HoldSpec {
    Fixed(Duration),
    /// A fraction of the test's `duration_s`.
    Frac(f64),
}

impl HoldSpec {
    /// The whole of the test's `duration_s`.
    pub const FULL: HoldSpec = HoldSpec::Frac(1.0);

    pub fn resolve(&self, test_duration: Duration) -> Duration {
        match *self {
            HoldSpec::Fixed(d) => d,
            HoldSpec::Frac(f) => test_duration.mul_f64(f.max(0.0)),
        }
    }
}

/// One phase of a scenario: cgroups to create, ops, then a hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Cgroups created at the step's start; they live on until removed.
    pub setup: Vec<CgroupDef>,
    pub ops: Vec<Op>,
    pub hold: HoldSpec,
}

impl Step {
    pub fn new(ops: Vec<Op>, hold: HoldSpec) -> Self {
        Step { setup: Vec::new(), ops, hold }
    }

    pub fn with_defs(defs: Vec<CgroupDef>, hold: HoldSpec) -> Self {
        Step { setup: defs, ops: Vec::new(), hold }
    }
}
