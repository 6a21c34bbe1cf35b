//! `cargo ktstr flake --runs N FILTERSET [-- nextest args]`: runs the tests
//! a nextest filterset picks N times each (nextest's stress mode, with the
//! `ci` profile's one retry) and prints, per test, how many runs passed at
//! once, passed only on their retry, and failed. A flaky harness shows up
//! as retries; a false result as a failure of a test that should pass.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, Stdio};

use anyhow::Context;

#[derive(clap::Args)]
pub struct FlakeArgs {
    /// Runs of each test.
    #[arg(long, default_value_t = 10)]
    runs: u32,
    /// The tests, as a nextest filterset: e.g.
    /// `test(=boots_and_schedules) | test(=crash_regression)`.
    filterset: String,
    /// Kernel, as `cargo ktstr test --kernel` takes it.
    #[arg(long)]
    kernel: Option<String>,
    /// More arguments for `cargo nextest run` (after `--`), e.g.
    /// `--run-ignored all`.
    #[arg(last = true)]
    nextest_args: Vec<String>,
}

/// One test's runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    pub runs: u32,
    /// Passed on the first attempt.
    pub passed: u32,
    /// Failed first, passed on a retry.
    pub retried: u32,
    pub failed: u32,
}

/// Tallies nextest's `libtest-json-plus` lines. A test's name there is
/// `<crate>::<binary>@stress-<i>$<test>`, with `#<attempt>` appended when
/// it was retried; each run of a test ends with one `ok` or `failed`
/// event, its last attempt's.
pub fn tally(lines: impl Iterator<Item = String>) -> BTreeMap<String, Tally> {
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for line in lines {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        let field = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let (event, name) = (field("event"), field("name"));
        if field("type") != "test" || !matches!(event, "ok" | "failed") {
            continue;
        }
        let (binary, test) = name.split_once('$').unwrap_or(("", name));
        let binary = binary.rsplit_once("@stress-").map_or(binary, |(b, _)| b);
        let (test, attempt) = match test.rsplit_once('#') {
            Some((t, n)) => (t, n.parse().unwrap_or(1)),
            None => (test, 1u32),
        };
        let t = tallies.entry(format!("{binary} {test}")).or_default();
        t.runs += 1;
        match (event, attempt) {
            ("ok", 1) => t.passed += 1,
            ("ok", _) => t.retried += 1,
            _ => t.failed += 1,
        }
    }
    tallies
}

/// The table: one row per test and a total.
pub fn render(tallies: &BTreeMap<String, Tally>) -> String {
    let width = tallies.keys().map(String::len).max().unwrap_or(4).max(5);
    let mut s = format!("{:<width$}  {:>5}  {:>6}  {:>7}  {:>6}\n", "test", "runs", "passed", "retried", "failed");
    let mut total = Tally::default();
    for (test, t) in tallies {
        s += &format!("{test:<width$}  {:>5}  {:>6}  {:>7}  {:>6}\n", t.runs, t.passed, t.retried, t.failed);
        total.runs += t.runs;
        total.passed += t.passed;
        total.retried += t.retried;
        total.failed += t.failed;
    }
    s += &format!(
        "{:<width$}  {:>5}  {:>6}  {:>7}  {:>6}\n",
        "total", total.runs, total.passed, total.retried, total.failed
    );
    s
}

pub fn run(args: FlakeArgs) -> anyhow::Result<()> {
    let kernel = ktstr::kernel::ensure(args.kernel.as_deref())?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("cargo ktstr flake: {} runs of each test in `{}`", args.runs, args.filterset);
    let mut child = Command::new(&cargo)
        .args(["nextest", "run", "--workspace", "--profile", "ci", "--no-fail-fast"])
        .args(["--stress-count", &args.runs.to_string(), "-E", &args.filterset])
        .args(["--message-format", "libtest-json-plus"])
        .args(&args.nextest_args)
        // nextest's machine-readable output is marked experimental.
        .env("NEXTEST_EXPERIMENTAL_LIBTEST_JSON", "1")
        .env("KTSTR_KERNEL", &kernel.vmlinuz)
        .stdout(Stdio::piped())
        .spawn()
        .context("running `cargo nextest run` (install it with `cargo install cargo-nextest --locked`)")?;
    let out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let tallies = tally(out.lines().map_while(Result::ok));
    let status = child.wait()?;
    anyhow::ensure!(!tallies.is_empty(), "no test ran: check the filterset `{}` ({status})", args.filterset);
    print!("{}", render(&tallies));
    let bad = tallies.values().any(|t| t.failed > 0 || t.retried > 0);
    std::process::exit(if bad { 1 } else { 0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_retries_and_failures_are_counted_per_test() {
        // Real nextest output: a passing test run twice, then (with the
        // `ci` profile's one retry) one that always fails and one that
        // fails on every first attempt.
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/flake.jsonl")).unwrap();
        let t = tally(text.lines().map(String::from));
        let row = |name: &str| t.iter().find(|(k, _)| k.ends_with(name)).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(
            row("::only_what_dead_processes_left_is_removed"),
            Tally { runs: 2, passed: 2, retried: 0, failed: 0 }
        );
        assert_eq!(row("::tmp_fails"), Tally { runs: 2, passed: 0, retried: 0, failed: 2 });
        assert_eq!(row("::tmp_flips"), Tally { runs: 2, passed: 0, retried: 2, failed: 0 });
        let table = render(&t);
        assert!(table.lines().last().unwrap().split_whitespace().eq(["total", "6", "2", "2", "2"]), "{table}");
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let t = tally(["garbage".to_string(), "{}".into(), r#"{"type":"test","event":"ok"}"#.into()].into_iter());
        assert_eq!(t.values().map(|t| t.runs).sum::<u32>(), 1);
    }
}
