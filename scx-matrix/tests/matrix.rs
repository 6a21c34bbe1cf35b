#![allow(non_snake_case)] // `matrix__<scheduler>__<scenario>__<topology>`: `__` separates the parts
//! scx's release check, done by ktstr: the 11 schedulers it runs
//! (`ktstr::report::matrix::SCHEDULERS`), each installed from the crates
//! registry (`cargo ktstr sched install`), against every canned scenario
//! of the catalogue, on the matrix's two topologies (SMT with two LLCs;
//! two NUMA nodes), each scenario with its own gates. Every test is
//! ignored: the matrix is too long for CI. Run it with
//! `cargo ktstr test -- --run-ignored ignored-only -E 'package(scx-matrix)'`
//! and print the table with `cargo ktstr matrix`.
//!
//! Auto-repro is off: a crash here is found, explained by its report, and
//! replayed with probes by `cargo ktstr replay`, not on the matrix's clock.

use ktstr::prelude::*;
use ktstr::report::matrix;

const SCX_RUSTY: Scheduler = Scheduler::discover("scx_rusty");
const SCX_LAVD: Scheduler = Scheduler::discover("scx_lavd");
const SCX_BPFLAND: Scheduler = Scheduler::discover("scx_bpfland");
/// scx_layered needs a layer spec: ktstr's workers in one layer, the rest
/// in another.
const SCX_LAYERED: Scheduler =
    Scheduler::discover("scx_layered").include_files(&["config/layered.json"]).args(&["f:/include/layered.json"]);
const SCX_RUSTLAND: Scheduler = Scheduler::discover("scx_rustland");
const SCX_RLFIFO: Scheduler = Scheduler::discover("scx_rlfifo");
const SCX_P2DQ: Scheduler = Scheduler::discover("scx_p2dq");
const SCX_COSMOS: Scheduler = Scheduler::discover("scx_cosmos");
const SCX_FLASH: Scheduler = Scheduler::discover("scx_flash");
const SCX_BEERLAND: Scheduler = Scheduler::discover("scx_beerland");
const SCX_TICKLESS: Scheduler = Scheduler::discover("scx_tickless");

/// One cell: `matrix__<scheduler>__<scenario>__<topology>`.
macro_rules! cell {
    ($sched:ident, $const:ident, $scen:ident, $canned:ident, $topo:ident, $n:literal, $l:literal, $c:literal, $t:literal) => {
        paste::paste! {
            #[ktstr_test(
                scheduler = $const,
                numa_nodes = $n, llcs = $l, cores = $c, threads = $t,
                duration_s = 3,
                auto_repro = false,
                checks = catalogue::$canned.checks
            )]
            #[ignore = "scx-matrix: run with --run-ignored ignored-only -E 'package(scx-matrix)'"]
            fn [<matrix__ $sched __ $scen __ $topo>](ctx: &Ctx) -> Result<AssertResult> {
                (catalogue::$canned.run)(ctx)
            }
        }
    };
}

/// A scheduler's row: every scenario on both topologies (the two of
/// `matrix::TOPOLOGIES`; `every_cell_is_generated` holds them equal).
macro_rules! row {
    ($sched:ident, $const:ident) => {
        row!(@scen $sched, $const,
            steady STEADY, custom_crash_light CUSTOM_CRASH_LIGHT, oversubscribed OVERSUBSCRIBED,
            sleep_wake_pairs SLEEP_WAKE_PAIRS, idle_bursts IDLE_BURSTS, disjoint_halves DISJOINT_HALVES,
            cpuset_shrink_grow CPUSET_SHRINK_GROW, affinity_churn AFFINITY_CHURN, cpu_hotplug CPU_HOTPLUG,
            nice_churn NICE_CHURN, rt_hog RT_HOG, batch_idle_mix BATCH_IDLE_MIX,
            fork_exit_churn FORK_EXIT_CHURN, cgroup_move CGROUP_MOVE);
    };
    (@scen $sched:ident, $const:ident, $($scen:ident $canned:ident),*) => {
        $(
            cell!($sched, $const, $scen, $canned, smt, 1, 2, 1, 2);
            cell!($sched, $const, $scen, $canned, numa, 2, 2, 1, 1);
        )*
    };
}

row!(scx_rusty, SCX_RUSTY);
row!(scx_lavd, SCX_LAVD);
row!(scx_bpfland, SCX_BPFLAND);
row!(scx_layered, SCX_LAYERED);
row!(scx_rustland, SCX_RUSTLAND);
row!(scx_rlfifo, SCX_RLFIFO);
row!(scx_p2dq, SCX_P2DQ);
row!(scx_cosmos, SCX_COSMOS);
row!(scx_flash, SCX_FLASH);
row!(scx_beerland, SCX_BEERLAND);
row!(scx_tickless, SCX_TICKLESS);

/// The generated tests are exactly the grid the table reads: every
/// scheduler of scx's release check × every canned scenario × both
/// topologies, by name and by topology.
#[test]
fn every_cell_is_generated() {
    for sched in matrix::SCHEDULERS {
        for c in catalogue::CATALOGUE {
            for (topo, t) in matrix::TOPOLOGIES {
                let name = matrix::test_name(sched, c.name, topo);
                let entry = ktstr::test_support::find_test(&name).unwrap_or_else(|| panic!("no test {name}"));
                assert_eq!(entry.topology, *t, "{name}");
                assert_eq!(entry.checks, c.checks, "{name}: the scenario's gates");
            }
        }
    }
    let cells = matrix::SCHEDULERS.len() * catalogue::CATALOGUE.len() * matrix::TOPOLOGIES.len();
    let generated = ktstr::test_support::KTSTR_TESTS.iter().filter(|e| e.name.starts_with("matrix__")).count();
    assert_eq!(generated, cells);
}
