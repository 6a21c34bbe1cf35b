//! What the guest sends for the monitor: plain records, no behaviour.

use serde::{Deserialize, Serialize};

use crate::dump::ProgStats;

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
