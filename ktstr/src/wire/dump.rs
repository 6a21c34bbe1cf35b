//! The failure dump's content: the scheduler's BPF state as the guest
//! read it after a failed run (its maps with BTF field names, its
//! programs' run statistics). The guest fills it (`guest::bpf_state`),
//! `artifacts` writes it to disk.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One post-mortem of the scheduler's BPF objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureDump {
    /// What prompted it: `scheduler exited`, `test failed`, `payload hung`.
    pub taken: String,
    /// Milliseconds into the payload when it was taken.
    pub at_ms: u64,
    pub maps: Vec<MapDump>,
    pub progs: Vec<ProgStats>,
    /// Objects that could not be held or read, and why.
    pub problems: Vec<String>,
}

/// One of the scheduler's maps and what it held.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MapDump {
    pub id: u32,
    pub name: String,
    /// The kernel's map type, as libbpf names it (`Array`, `Hash`, ...).
    pub map_type: String,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// Whether keys and values were named by the map's BTF types.
    pub typed: bool,
    pub entries: Vec<MapEntry>,
    /// Entries present but not read (past the per-map cap).
    pub omitted: u64,
    /// Why the contents are missing or partial, when they are.
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapEntry {
    pub key: Value,
    /// For per-CPU maps, one value per CPU.
    pub value: Value,
}

/// A BPF program's counters from the kernel (`bpf_prog_info`). Run counts
/// and times need `kernel.bpf_stats_enabled`, which the guest turns on at
/// boot (`guest::mounts`).
/// Also the monitor's figures over the workload (`monitor::wire::BpfStats`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgStats {
    pub id: u32,
    /// The kernel's name for it: the function name cut to 15 bytes.
    pub name: String,
    /// The program type, as libbpf names it (`StructOps`, ...).
    pub prog_type: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub recursion_misses: u64,
    pub verified_insns: u32,
}

impl ProgStats {
    pub fn ns_per_call(&self) -> Option<u64> {
        self.run_time_ns.checked_div(self.run_cnt)
    }
}
