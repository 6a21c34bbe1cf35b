//! The CPU topology a test asks for, written `{n}n{l}l{c}c{t}t`
//! (NUMA nodes, LLCs in total, cores per LLC, threads per core).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub numa_nodes: u32,
    /// Last-level caches in the whole machine (each gets its own socket).
    pub llcs: u32,
    /// Cores per LLC.
    pub cores: u32,
    /// Hardware threads per core.
    pub threads: u32,
}

impl Default for Topology {
    fn default() -> Self {
        Topology { numa_nodes: 1, llcs: 1, cores: 2, threads: 1 }
    }
}

impl Topology {
    pub const fn new(numa_nodes: u32, llcs: u32, cores: u32, threads: u32) -> Self {
        Topology { numa_nodes, llcs, cores, threads }
    }

    pub fn cpus(&self) -> u32 {
        self.llcs * self.cores * self.threads
    }

    pub fn cpus_per_llc(&self) -> u32 {
        self.cores * self.threads
    }

    pub fn llcs_per_node(&self) -> u32 {
        self.llcs / self.numa_nodes
    }

    /// Checks the shape is one QEMU can build: every count at least 1,
    /// the LLCs split evenly across NUMA nodes, at most 255 vCPUs.
    pub fn validate(&self) -> Result<(), String> {
        let Topology { numa_nodes, llcs, cores, threads } = *self;
        const FIX: &str = "give numa_nodes, llcs, cores and threads that QEMU can build";
        if numa_nodes == 0 || llcs == 0 || cores == 0 || threads == 0 {
            return Err(format!("topology {self}: every count must be at least 1: {FIX}"));
        }
        if llcs % numa_nodes != 0 {
            return Err(format!(
                "topology {self}: {llcs} LLCs cannot be split evenly over {numa_nodes} NUMA nodes: {FIX}"
            ));
        }
        if self.cpus() > 255 {
            return Err(format!("topology {self}: {} vCPUs is more than the 255 ktstr supports: {FIX}", self.cpus()));
        }
        Ok(())
    }

    /// CPU ids (as the guest numbers them) sharing LLC `llc`. QEMU numbers
    /// vCPUs socket-major, and ktstr gives every LLC its own socket.
    pub fn llc_cpus(&self, llc: u32) -> std::ops::Range<u32> {
        let per = self.cpus_per_llc();
        llc * per..(llc + 1) * per
    }

    /// CPU ids on NUMA node `node`.
    pub fn node_cpus(&self, node: u32) -> std::ops::Range<u32> {
        let per = self.cpus_per_llc() * self.llcs_per_node();
        node * per..(node + 1) * per
    }

    /// CPU ids that are SMT siblings of `cpu` (including itself).
    pub fn core_cpus(&self, cpu: u32) -> std::ops::Range<u32> {
        let first = cpu - cpu % self.threads;
        first..first + self.threads
    }

    /// Parses the `1n2l2c1t` form.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut vals = [0u32; 4];
        let mut rest = s;
        for (i, suffix) in ['n', 'l', 'c', 't'].into_iter().enumerate() {
            let end = rest.find(suffix).ok_or_else(|| format!("topology `{s}`: expected the form 1n2l2c1t"))?;
            vals[i] = rest[..end].parse().map_err(|_| format!("topology `{s}`: `{}` is not a number", &rest[..end]))?;
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("topology `{s}`: trailing `{rest}`"));
        }
        let t = Topology::new(vals[0], vals[1], vals[2], vals[3]);
        t.validate()?;
        Ok(t)
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}n{}l{}c{}t", self.numa_nodes, self.llcs, self.cores, self.threads)
    }
}

/// Formats a CPU list the way sysfs does (`0-3,8-11`).
pub fn format_cpu_list(cpus: impl IntoIterator<Item = u32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    for c in cpus {
        run = match run {
            Some((a, b)) if c == b + 1 => Some((a, c)),
            Some((a, b)) => {
                out.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
                Some((c, c))
            }
            None => Some((c, c)),
        };
    }
    if let Some((a, b)) = run {
        out.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
    }
    out.join(",")
}

/// A named topology a test opts into with `#[ktstr_test(gauntlet = [...])]`:
/// each runs as its own test, `gauntlet/<test>/<preset>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub topology: Topology,
    /// What the shape exercises, for `--help`-style listings and docs.
    pub about: &'static str,
}

/// The gauntlet's presets. The attribute takes their names; the macro
/// refers to these consts by name (`smt-2llc` is [`gauntlet::SMT_2LLC`]).
pub mod gauntlet {
    use super::{Preset, Topology};

    pub const TINY_1LLC: Preset =
        Preset { name: "tiny-1llc", topology: Topology::new(1, 1, 2, 1), about: "two CPUs sharing one LLC" };
    pub const SMT_2LLC: Preset = Preset {
        name: "smt-2llc",
        topology: Topology::new(1, 2, 2, 2),
        about: "two LLCs of two SMT-2 cores: sibling and cross-LLC placement",
    };
    pub const ODD_3LLC: Preset = Preset {
        name: "odd-3llc",
        topology: Topology::new(1, 3, 3, 1),
        about: "three LLCs of three cores: no power of two anywhere",
    };
    pub const NUMA_2N: Preset = Preset {
        name: "numa-2n",
        topology: Topology::new(2, 2, 2, 1),
        about: "two NUMA nodes, one LLC of two cores each",
    };
    pub const BIG_32: Preset =
        Preset { name: "big-32", topology: Topology::new(1, 4, 4, 2), about: "32 CPUs: four LLCs of four SMT-2 cores" };

    /// Every preset, smallest first.
    pub const ALL: &[&Preset] = &[&TINY_1LLC, &SMT_2LLC, &ODD_3LLC, &NUMA_2N, &BIG_32];

    pub fn find(name: &str) -> Option<&'static Preset> {
        ALL.iter().copied().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["1n1l4c1t", "1n2l2c1t", "2n2l2c1t", "1n1l2c2t", "1n2l8c2t"] {
            assert_eq!(Topology::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Topology::parse("1n2l8c2t").unwrap().cpus(), 32);
    }

    #[test]
    fn parse_rejects_bad_shapes() {
        assert!(Topology::parse("2n3l1c1t").unwrap_err().contains("split evenly"));
        assert!(Topology::parse("1n0l1c1t").unwrap_err().contains("at least 1"));
        assert!(Topology::parse("1n2l").unwrap_err().contains("form"));
    }

    #[test]
    fn cpu_ranges_follow_socket_major_numbering() {
        let t = Topology::parse("2n4l2c2t").unwrap();
        assert_eq!(t.llc_cpus(1), 4..8);
        assert_eq!(t.node_cpus(1), 8..16);
        assert_eq!(t.core_cpus(5), 4..6);
        assert_eq!(format_cpu_list([0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }

    #[test]
    fn every_gauntlet_preset_is_a_valid_topology_with_a_unique_name() {
        for p in gauntlet::ALL {
            p.topology.validate().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(gauntlet::find(p.name), Some(*p));
            assert!(p.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{}", p.name);
        }
        assert_eq!(gauntlet::SMT_2LLC.topology.to_string(), "1n2l2c2t");
        assert_eq!(gauntlet::BIG_32.topology.cpus(), 32);
        assert_eq!(gauntlet::find("no-such"), None);
    }
}
