//! The monitor's records: what the guest sends for it (symbols, BPF
//! program figures) and what the host-side monitor saw (its samples), as
//! the stats sidecar keeps them. Plain data, no behaviour.

use serde::{Deserialize, Serialize};

use super::dump::ProgStats;

/// The kernel symbols the host sampler needs, in the order it uses them.
/// Looked up in the guest (the kernel's own kallsyms table); the host has
/// no symbol table for a stock kernel (Debian's System.map is a stub).
pub const SYMBOLS: &[&str] = &[
    // Per-CPU `struct rq`s: CPU n's at `runqueues + __per_cpu_offset[n]`.
    "runqueues",
    "__per_cpu_offset",
    // The root sched_ext scheduler (`struct scx_sched *`), NULL when none.
    "scx_root",
    // Page-table root: per-CPU chunks past the first live in vmalloc space.
    "init_top_pgt",
    // The direct map's base, read rather than assumed.
    "page_offset_base",
    // Per-CPU: equals `__per_cpu_offset[n]` on CPU n. Checks the address
    // translation end to end before any figure is trusted.
    "this_cpu_off",
];

/// The symbols' addresses, found in the guest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelSymbols {
    pub found: Vec<(String, u64)>,
    /// Names the kernel does not have (or that did not resolve).
    pub missing: Vec<String>,
    /// Why the lookup could not run at all.
    pub error: Option<String>,
    pub lookup_ms: u64,
    /// Optional kernel counters that could not be switched on.
    pub counters_off: Vec<String>,
}

impl KernelSymbols {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.found.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }
}

/// The scheduler's struct_ops programs after the workload: run counts
/// and times counted over it (read in the guest from `bpf_prog_info`
/// before and after: they exist only there, per CPU behind the program,
/// out of the host's simple reach).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BpfStats {
    pub progs: Vec<ProgStats>,
    /// Why they could not be read, or why run figures are missing
    /// (`kernel.bpf_stats_enabled` is off).
    pub error: Option<String>,
}

/// What the monitor saw of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MonitorReport {
    pub interval_ms: u64,
    /// The SCX event counters' kernel names, in the order of each
    /// sample's `events`.
    pub event_names: Vec<String>,
    pub samples: Vec<Sample>,
    /// The scheduler's BPF programs (from the guest, after the workload).
    pub bpf: Option<BpfStats>,
    /// Why the monitor could not sample at all; `samples` is then empty.
    pub unavailable: Option<String>,
    /// Why some figures are missing (no event counters, counters off).
    pub notes: Vec<String>,
    /// How long the guest's symbol lookup took.
    pub symbols_ms: Option<u64>,
    /// Host time spent taking the samples, in all (µs).
    #[serde(default)]
    pub sampling_us: u64,
}

/// One CPU's `struct rq`, as read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSample {
    /// Tasks on the run queue, all classes (`rq.nr_running`).
    pub nr_running: u32,
    /// Of those, sched_ext's (`rq.scx.nr_running`).
    pub scx_nr_running: u32,
    /// Tasks waiting in the CPU's local DSQ (`rq.scx.local_dsq.nr`).
    pub local_dsq: u32,
    /// The run queue's clock, ns (`rq.clock`).
    pub clock: u64,
    /// Whether the CPU runs its idle task (`rq.curr == rq.idle`).
    pub idle: Option<bool>,
    /// Cumulative schedstat counters (`rq.nr_switches`,
    /// `rq.rq_sched_info.run_delay`, `rq.ttwu_count`, `rq.sched_goidle`).
    pub nr_switches: Option<u64>,
    pub run_delay_ns: Option<u64>,
    pub ttwu: Option<u64>,
    pub goidle: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Host time since the workload started (the guest said so).
    pub at_ms: u64,
    /// By CPU id; `None` where the run queue could not be read.
    pub cpus: Vec<Option<CpuSample>>,
    /// The SCX event counters summed over CPUs, since the scheduler
    /// attached, in the order of `MonitorReport::event_names`; `None`
    /// while no sched_ext scheduler is loaded.
    pub events: Option<Vec<u64>>,
}
