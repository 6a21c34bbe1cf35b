//! Gauntlet variants: a test with `gauntlet = ["smt-2llc", ...]` also runs
//! on each named topology preset, each as a test of its own named
//! `gauntlet/<test>/<preset>`, so nextest lists, filters, retries and
//! re-runs one variant like any test:
//! `cargo ktstr test -- -E 'test(=gauntlet/my_test/smt-2llc)'`.
//!
//! libtest cannot hold such names (a `#[test]` is a Rust path), so the
//! binary answers for them before libtest starts, in the two shapes
//! nextest uses: `--list --format terse [--ignored]` prints the variants
//! ahead of libtest's own lines, and `<name> --exact` runs the named
//! variants and exits. A plain `cargo test` run does not see them.

pub use super::entry::GAUNTLET_PREFIX as PREFIX;
use super::entry::{KtstrTestEntry, KTSTR_TESTS};
use crate::wire::topology::Preset;

/// libtest's arguments, as far as variants are concerned.
#[derive(Debug, Default, PartialEq)]
struct Args {
    list: bool,
    /// `--ignored`: only ignored tests; `--include-ignored`: all.
    ignored_only: bool,
    include_ignored: bool,
    exact: bool,
    filters: Vec<String>,
    skip: Vec<String>,
}

/// libtest options that take a value (the value is not a filter).
const WITH_VALUE: &[&str] = &["--format", "--test-threads", "--color", "--logfile", "--shuffle-seed", "-Z"];

fn parse(args: &[String]) -> Args {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--list" => a.list = true,
            "--ignored" => a.ignored_only = true,
            "--include-ignored" => a.include_ignored = true,
            "--exact" => a.exact = true,
            "--skip" => a.skip.extend(it.next().cloned()),
            opt if WITH_VALUE.contains(&opt) => {
                it.next();
            }
            opt if opt.starts_with('-') => {}
            filter => a.filters.push(filter.to_string()),
        }
    }
    a
}

impl Args {
    /// Whether the variant `name` (of a test ignored or not) is selected.
    fn selects(&self, name: &str, ignored: bool) -> bool {
        let by_ignore = self.include_ignored || ignored == self.ignored_only;
        let hit = |f: &String| if self.exact { name == f } else { name.contains(f.as_str()) };
        let skipped = self.skip.iter().any(|s| if self.exact { name == s } else { name.contains(s.as_str()) });
        by_ignore && !skipped && (self.filters.is_empty() || self.filters.iter().any(hit))
    }

    /// A run that names variants (as nextest does, one at a time): the
    /// binary runs those instead of libtest.
    fn runs_variants(&self) -> bool {
        !self.list && self.filters.iter().any(|f| f.starts_with(PREFIX))
    }
}

/// Every variant of `tests`, in registration order.
fn variants(tests: &[KtstrTestEntry]) -> Vec<KtstrTestEntry> {
    tests.iter().flat_map(|e| e.gauntlet.iter().map(move |p: &&'static Preset| e.on_preset(p))).collect()
}

/// Called before libtest: lists variants ahead of libtest's list, or runs
/// the variants named and exits. Otherwise returns at once.
pub(crate) fn maybe_handle_args() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = parse(&args);
    if !a.list && !a.runs_variants() {
        return;
    }
    let chosen: Vec<KtstrTestEntry> =
        variants(&KTSTR_TESTS).into_iter().filter(|v| a.selects(&v.full_name(), v.ignored)).collect();
    if a.list {
        for v in &chosen {
            println!("{}: test", v.full_name());
        }
        return;
    }
    std::process::exit(run_all(&chosen));
}

/// Runs each variant as libtest would run a test; 101 if any failed.
fn run_all(chosen: &[KtstrTestEntry]) -> i32 {
    println!("\nrunning {} test{}", chosen.len(), if chosen.len() == 1 { "" } else { "s" });
    let mut failed = Vec::new();
    for v in chosen {
        let name = v.full_name();
        let ok = std::panic::catch_unwind(|| super::run::run_ktstr_test(v)).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(name);
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!("\ntest result: {verdict}. {} passed; {} failed", chosen.len() - failed.len(), failed.len());
    if failed.is_empty() {
        0
    } else {
        101
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::topology::gauntlet::{NUMA_2N, SMT_2LLC};

    fn args(s: &str) -> Args {
        parse(&s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    }

    #[test]
    fn nextest_listing_selects_by_ignored_status() {
        let list = args("--list --format terse");
        assert!(list.list && !list.runs_variants());
        assert!(list.selects("gauntlet/t/smt-2llc", false));
        assert!(!list.selects("gauntlet/t/smt-2llc", true), "an ignored test's variants are listed with --ignored");
        let ignored = args("--list --format terse --ignored");
        assert!(ignored.selects("gauntlet/t/smt-2llc", true) && !ignored.selects("gauntlet/t/smt-2llc", false));
        let all = args("--list --include-ignored");
        assert!(all.selects("gauntlet/t/a", true) && all.selects("gauntlet/t/a", false));
    }

    #[test]
    fn nextest_runs_one_variant_by_its_exact_name() {
        let run = args("gauntlet/t/smt-2llc --exact --nocapture");
        assert!(run.runs_variants());
        assert_eq!(run.filters, ["gauntlet/t/smt-2llc"]);
        assert!(run.selects("gauntlet/t/smt-2llc", false));
        assert!(!run.selects("gauntlet/t/smt-2llc-x", false) && !run.selects("gauntlet/u/smt-2llc", false));
        // Ignored variants run when asked for, as nextest does.
        assert!(args("gauntlet/t/a --exact --nocapture --ignored").selects("gauntlet/t/a", true));
        // libtest's own runs are left to libtest.
        assert!(!args("my_test --exact --nocapture").runs_variants());
        assert!(!args("--test-threads 1 --format pretty").runs_variants());
        // Values of options are not filters, and --skip skips.
        let sub = args("--format terse gauntlet/ --skip numa");
        assert_eq!(sub.filters, ["gauntlet/"]);
        assert!(sub.selects("gauntlet/t/smt-2llc", false) && !sub.selects("gauntlet/t/numa-2n", false));
    }

    /// A registration as the macro writes it, for an ignored test with
    /// two presets (built by hand: a #[ktstr_test] here would make this
    /// library's test binary one that holds ktstr tests).
    fn registered() -> KtstrTestEntry {
        KtstrTestEntry {
            name: "gauntlet_unit_probe",
            func: |_| Ok(crate::check::AssertResult::pass()),
            topology: crate::wire::topology::Topology::new(1, 1, 2, 1),
            memory_mb: 1024,
            scheduler: None,
            extra_sched_args: &[],
            include_files: &[],
            duration_s: 1,
            checks: crate::check::Checks::default(),
            bpf_map_writes: &[],
            expect_err: false,
            auto_repro: true,
            expect_scx_bpf_error: crate::check::ErrorMatchers::default(),
            ignored: true,
            gauntlet: &[&SMT_2LLC, &NUMA_2N],
            preset: None,
        }
    }

    #[test]
    fn variants_take_the_presets_topology_and_name() {
        let base = registered();
        let v = variants(std::slice::from_ref(&base));
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].full_name(), "gauntlet/gauntlet_unit_probe/smt-2llc");
        assert_eq!(v[0].topology, SMT_2LLC.topology);
        assert_eq!(v[1].topology, NUMA_2N.topology);
        assert_eq!(v[0].name, "gauntlet_unit_probe", "the guest finds the function by its own name");
        assert!(v.iter().all(|v| v.gauntlet.is_empty() && v.memory_mb == base.memory_mb));
        assert!(base.ignored && v.iter().all(|v| v.ignored));
        assert_eq!(base.full_name(), "gauntlet_unit_probe");
    }
}
