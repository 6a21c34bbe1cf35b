//! The canned scenario catalogue on the fixture scheduler, in real VMs:
//! each scenario passes its own gates, and really drives the sched_ext
//! callbacks its doc names. scx-ktstr implements every callback the
//! catalogue names; the kernel counts each BPF program's runs
//! (`kernel.bpf_stats_enabled`, on in every guest), and the monitor's
//! report carries those counts over the workload. The `payload_*` tests
//! are the guest halves (ignored on their own).

use ktstr::outcome::RunOutcome;
use ktstr::prelude::*;
use ktstr::scenario::catalogue::{self, Canned};

mod common;
use common::run_passing;

/// Every op the scenario names ran at least once during its workload.
/// BPF program names are cut to 15 bytes by the kernel: `ktstr_<op>` is
/// matched on that prefix.
fn assert_drives(c: &Canned, o: &RunOutcome) {
    let bpf = o.monitor.as_ref().and_then(|m| m.bpf.as_ref()).expect("the monitor read the BPF programs");
    assert_eq!(bpf.error, None, "BPF run counts unavailable");
    let counts: Vec<(String, u64)> = bpf.progs.iter().map(|p| (p.name.clone(), p.run_cnt)).collect();
    for op in c.drives {
        let full = format!("ktstr_{op}");
        let prog = &full[..full.len().min(15)];
        let runs = counts.iter().find(|(n, _)| n == prog).map(|(_, r)| *r);
        assert!(
            runs.is_some_and(|r| r > 0),
            "{}: ops.{op} ({prog}) ran {runs:?} times; every count: {counts:?}",
            c.name
        );
    }
    eprintln!("{}: {counts:?}", c.name);
}

/// For each canned scenario: its guest half, on 2 CPUs for 3 s with the
/// scenario's own gates, and the host test that runs it and reads the counts.
macro_rules! coverage {
    ($($canned:ident => $payload:ident, $test:ident;)*) => {$(
        #[ktstr_test(scheduler = SCX_KTSTR, duration_s = 3, checks = catalogue::$canned.checks)]
        #[ignore = "guest half of the catalogue's coverage test"]
        fn $payload(ctx: &Ctx) -> Result<AssertResult> {
            (catalogue::$canned.run)(ctx)
        }

        #[test]
        fn $test() {
            let o = run_passing(stringify!($payload));
            assert_drives(&catalogue::$canned, &o);
        }
    )*

        /// Every scenario of the catalogue has its pair here.
        #[test]
        fn every_canned_scenario_is_covered() {
            let covered = [$(catalogue::$canned.name),*];
            for c in catalogue::CATALOGUE {
                assert!(covered.contains(&c.name), "{} has no coverage test", c.name);
            }
        }
    };
}

coverage! {
    STEADY => payload_steady, steady_drives_its_callbacks;
    CUSTOM_CRASH_LIGHT => payload_custom_crash_light, custom_crash_light_drives_its_callbacks;
    OVERSUBSCRIBED => payload_oversubscribed, oversubscribed_drives_its_callbacks;
    SLEEP_WAKE_PAIRS => payload_sleep_wake_pairs, sleep_wake_pairs_drives_its_callbacks;
    IDLE_BURSTS => payload_idle_bursts, idle_bursts_drives_its_callbacks;
    DISJOINT_HALVES => payload_disjoint_halves, disjoint_halves_drives_its_callbacks;
    CPUSET_SHRINK_GROW => payload_cpuset_shrink_grow, cpuset_shrink_grow_drives_its_callbacks;
    AFFINITY_CHURN => payload_affinity_churn, affinity_churn_drives_its_callbacks;
    CPU_HOTPLUG => payload_cpu_hotplug, cpu_hotplug_drives_its_callbacks;
    NICE_CHURN => payload_nice_churn, nice_churn_drives_its_callbacks;
    RT_HOG => payload_rt_hog, rt_hog_drives_its_callbacks;
    BATCH_IDLE_MIX => payload_batch_idle_mix, batch_idle_mix_drives_its_callbacks;
    FORK_EXIT_CHURN => payload_fork_exit_churn, fork_exit_churn_drives_its_callbacks;
    CGROUP_MOVE => payload_cgroup_move, cgroup_move_drives_its_callbacks;
}
