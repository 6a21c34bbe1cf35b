//! The canned scenarios, as one table: what any scheduler can be run
//! against, each with the sched_ext callbacks it drives (the `Drives:`
//! line of its doc) and the check gates that fit it.
//!
//! ```no_run
//! # use ktstr::prelude::*;
//! use ktstr::scenario::catalogue;
//!
//! #[ktstr_test(scheduler = SCX_KTSTR, checks = catalogue::RT_HOG.checks)]
//! fn rt_hog(ctx: &Ctx) -> Result<AssertResult> {
//!     (catalogue::RT_HOG.run)(ctx)
//! }
//! ```

use anyhow::Result;

use super::{basic, churn, cpuset, policy, Ctx};
use crate::wire::checks::Checks;
use crate::wire::verdict::AssertResult;

/// One canned scenario.
#[derive(Clone, Copy, Debug)]
pub struct Canned {
    /// Its function's name, as tests and the matrix name it.
    pub name: &'static str,
    pub run: fn(&Ctx) -> Result<AssertResult>,
    /// The sched_ext ops it drives (`struct sched_ext_ops` member names),
    /// as its doc's `Drives:` line names them. The coverage test on
    /// scx-ktstr holds each to a non-zero BPF run count.
    pub drives: &'static [&'static str],
    /// The gates that fit it, below a test's own attributes.
    pub checks: Checks,
    /// Fewest CPUs it makes sense on.
    pub min_cpus: u32,
}

macro_rules! canned {
    ($const:ident, $module:ident::$func:ident, [$($op:literal),*] $(, $field:ident: $value:expr)*) => {
        pub const $const: Canned = Canned {
            name: stringify!($func),
            run: $module::$func,
            drives: &[$($op),*],
            checks: Checks { $($field: Some($value),)* ..Checks::NONE },
            min_cpus: 1,
        };
    };
}

canned!(STEADY, basic::steady, ["enqueue", "dispatch", "running", "stopping", "tick"]);
canned!(CUSTOM_CRASH_LIGHT, basic::custom_crash_light, ["select_cpu", "enqueue", "dispatch", "yield", "runnable"]);
// Every CPU has a queue: a CPU idle while tasks wait is a bug.
canned!(OVERSUBSCRIBED, basic::oversubscribed, ["enqueue", "dispatch", "tick", "running", "stopping"], fail_on_stall: true);
canned!(SLEEP_WAKE_PAIRS, basic::sleep_wake_pairs, ["select_cpu", "runnable", "quiescent", "enqueue"]);
canned!(IDLE_BURSTS, basic::idle_bursts, ["select_cpu", "update_idle", "runnable", "quiescent"]);
canned!(DISJOINT_HALVES, cpuset::disjoint_halves, ["set_cpumask", "enqueue", "dispatch"]);
canned!(CPUSET_SHRINK_GROW, cpuset::cpuset_shrink_grow, ["set_cpumask", "enqueue", "dispatch"]);
canned!(AFFINITY_CHURN, cpuset::affinity_churn, ["set_cpumask", "select_cpu", "enqueue", "dispatch"]);
canned!(CPU_HOTPLUG, cpuset::cpu_hotplug, ["cpu_offline", "cpu_online", "enqueue", "dispatch"]);
canned!(NICE_CHURN, policy::nice_churn, ["set_weight", "cgroup_set_weight", "enqueue", "dispatch"]);
canned!(RT_HOG, policy::rt_hog, ["cpu_release", "cpu_acquire", "enqueue", "dispatch"]);
canned!(BATCH_IDLE_MIX, policy::batch_idle_mix, ["set_weight", "enable", "enqueue", "dispatch"]);
canned!(FORK_EXIT_CHURN, churn::fork_exit_churn, ["init_task", "enable", "exit_task", "disable", "select_cpu"]);
canned!(CGROUP_MOVE, churn::cgroup_move, ["cgroup_prep_move", "cgroup_move", "enqueue", "dispatch"]);

/// Every canned scenario, in the order the matrix shows them.
pub const CATALOGUE: &[Canned] = &[
    STEADY,
    CUSTOM_CRASH_LIGHT,
    OVERSUBSCRIBED,
    SLEEP_WAKE_PAIRS,
    IDLE_BURSTS,
    DISJOINT_HALVES,
    CPUSET_SHRINK_GROW,
    AFFINITY_CHURN,
    Canned { min_cpus: 2, ..CPU_HOTPLUG },
    NICE_CHURN,
    RT_HOG,
    BATCH_IDLE_MIX,
    FORK_EXIT_CHURN,
    CGROUP_MOVE,
];

/// The canned scenario of that name.
pub fn find(name: &str) -> Option<&'static Canned> {
    CATALOGUE.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each scenario's doc names exactly the ops its entry lists.
    #[test]
    fn drives_lines_match_the_table() {
        let sources =
            [include_str!("basic.rs"), include_str!("cpuset.rs"), include_str!("policy.rs"), include_str!("churn.rs")];
        for c in CATALOGUE {
            let src = sources.iter().find(|s| s.contains(&format!("pub fn {}(", c.name))).expect(c.name);
            let before = &src[..src.find(&format!("pub fn {}(", c.name)).unwrap()];
            let line = before.lines().rev().find(|l| l.starts_with("/// Drives:")).expect("a Drives: line");
            let named: Vec<&str> = line
                .trim_start_matches("/// Drives:")
                .trim_end_matches('.')
                .split(", ")
                .map(|s| s.trim().trim_start_matches("ops."))
                .collect();
            assert_eq!(named, c.drives, "{}", c.name);
        }
    }

    #[test]
    fn names_are_unique_and_at_least_twelve() {
        let mut names: Vec<&str> = CATALOGUE.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
        assert!(names.len() >= 12);
        assert_eq!(find("rt_hog").map(|c| c.name), Some("rt_hog"));
    }
}
