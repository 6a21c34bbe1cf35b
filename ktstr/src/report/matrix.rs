//! The scheduler × scenario matrix: scx's release check (its 11 schedulers)
//! against the canned scenario catalogue on two topologies, read back from
//! the stats sidecars the matrix's tests leave, as a table whose every cell
//! says pass, fail with the first line that explains it (and whose fault:
//! the scheduler's, its configuration's, or the harness's), or why it was
//! skipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::cache::schedulers::{self, SchedSpec};
use crate::wire::records::{StatsSidecar, STATS_SUFFIX};
use crate::wire::topology::Topology;

/// The schedulers of scx's own release check (scx 1.1.1's smoke test).
pub const SCHEDULERS: &[&str] = &[
    "scx_rusty",
    "scx_lavd",
    "scx_bpfland",
    "scx_layered",
    "scx_rustland",
    "scx_rlfifo",
    "scx_p2dq",
    "scx_cosmos",
    "scx_flash",
    "scx_beerland",
    "scx_tickless",
];

/// The matrix's topologies, small enough for a 2-core host under TCG:
/// SMT siblings and two LLCs; two NUMA nodes.
pub const TOPOLOGIES: &[(&str, Topology)] = &[("smt", Topology::new(1, 2, 1, 2)), ("numa", Topology::new(2, 2, 1, 1))];

/// A matrix test's name: `matrix__<scheduler>__<scenario>__<topology>`.
pub fn test_name(scheduler: &str, scenario: &str, topology: &str) -> String {
    format!("matrix__{scheduler}__{scenario}__{topology}")
}

/// (scheduler, scenario, topology) of a matrix test's name.
pub fn parse_test_name(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.strip_prefix("matrix__")?.split("__");
    let cell = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some(cell)
}

/// Whose fault a failure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The scheduler misbehaved: it crashed, stalled or starved a task,
    /// or a check gate failed under it.
    Scheduler,
    /// The scheduler refused its arguments or configuration before it
    /// attached: a config need, not a bug.
    Config,
    /// The harness or host failed (boot, QEMU, the channel): not counted
    /// against the scheduler.
    Harness,
}

/// One cell of the table.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Pass { vm_ms: Option<u64> },
    Fail { fault: Fault, detail: String, vm_ms: Option<u64> },
    Skipped(String),
}

/// Reads a failed sidecar: whose fault, and the line that says why.
pub fn classify(s: &StatsSidecar) -> Cell {
    if s.passed {
        return Cell::Pass { vm_ms: s.vm_ms };
    }
    let first = s.reasons.first().cloned().unwrap_or_else(|| format!("failed at stage `{}`", s.stage));
    let harness = ["wall-clock limit", "guest boot stalled", "guest channel damaged", "QEMU"];
    let complaint = config_complaint(&s.scheduler_log_tail);
    let fault = if s.bug_summary.is_some() {
        Fault::Scheduler
    } else if first.starts_with(crate::judge::HARNESS_FAULT) {
        Fault::Harness
    } else if s.stage == "scheduler did not attach" && complaint.is_some() {
        Fault::Config
    } else if s.stage == "scheduler did not attach" || s.stats.is_some() {
        Fault::Scheduler
    } else if harness.iter().any(|h| first.contains(h)) || first.starts_with("guest kernel panicked") {
        Fault::Harness
    } else {
        Fault::Scheduler
    };
    let detail = match (fault, complaint) {
        (Fault::Config, Some(line)) => format!("{first}: {line}"),
        _ => explanation(s).unwrap_or(first),
    };
    Cell::Fail { fault, detail, vm_ms: s.vm_ms }
}

/// The line that says why, when the first does not: "the scheduler died"
/// is often ktstr's watchdog ending it (SIGUSR2) or the kernel's own; the
/// stuck task, or the kernel's exit reason, is the cause.
fn explanation(s: &StatsSidecar) -> Option<String> {
    let stuck = s.reasons.iter().find(|r| r.contains("watchdog") || r.contains(" stuck ") || r.contains("starved"));
    match (&s.bug_summary, stuck) {
        (Some(bug), Some(line)) => Some(format!("{bug}; {line}")),
        (Some(bug), None) => Some(bug.clone()),
        (None, Some(line)) => Some(line.clone()),
        (None, None) => None,
    }
}

/// The scheduler's own words about its arguments or config, if it said
/// any: clap's usage errors, a missing or malformed config file.
fn config_complaint(log: &[String]) -> Option<String> {
    let needles = ["error: ", "Usage:", "invalid value", "required", "config", "spec"];
    log.iter().map(|l| l.trim()).find(|l| needles.iter().any(|n| l.contains(n))).map(str::to_string)
}

/// The number of `text` among `notes`, added if new.
fn note(notes: &mut Vec<String>, text: String) -> usize {
    match notes.iter().position(|n| *n == text) {
        Some(i) => i + 1,
        None => {
            notes.push(text);
            notes.len()
        }
    }
}

/// The matrix as run: cells by (scheduler, scenario, topology).
#[derive(Debug, Default)]
pub struct Matrix {
    pub cells: BTreeMap<(String, String, String), Cell>,
    /// Kernel releases the sidecars name.
    pub kernels: Vec<String>,
    /// The installed version of each scheduler (the newest, which
    /// `Scheduler::discover` runs).
    pub versions: BTreeMap<String, String>,
}

impl Matrix {
    /// Every matrix sidecar in `dir` (the newest per test); then, for
    /// each scheduler × scenario × topology of the grid with none, why:
    /// the scheduler is not installed, or the test did not run.
    pub fn read(dir: &Path, scenarios: &[&str]) -> Matrix {
        Matrix::read_with(dir, scenarios, &schedulers::root())
    }

    /// [`Matrix::read`], with the scheduler cache at `cache`.
    pub fn read_with(dir: &Path, scenarios: &[&str], cache: &Path) -> Matrix {
        let mut m = Matrix::default();
        let mut newest: BTreeMap<String, (std::time::SystemTime, StatsSidecar)> = BTreeMap::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("matrix__") || !name.ends_with(STATS_SUFFIX) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
            let Ok(s) = serde_json::from_str::<StatsSidecar>(&text) else { continue };
            let at = e.metadata().and_then(|md| md.modified()).unwrap_or(std::time::UNIX_EPOCH);
            if newest.get(&s.test).is_none_or(|(t, _)| *t < at) {
                newest.insert(s.test.clone(), (at, s));
            }
        }
        for (_, s) in newest.into_values() {
            let Some((sched, scen, topo)) = parse_test_name(&s.test) else { continue };
            if !m.kernels.contains(&s.kernel) {
                m.kernels.push(s.kernel.clone());
            }
            m.cells.insert((sched.into(), scen.into(), topo.into()), classify(&s));
        }
        for sched in SCHEDULERS {
            let found = SchedSpec::parse(sched).ok().and_then(|s| schedulers::find_in(cache, &s));
            if let Some(i) = &found {
                m.versions.insert(sched.to_string(), i.version.to_string());
            }
            let installed = found.is_some();
            for scen in scenarios {
                for (topo, _) in TOPOLOGIES {
                    let why = if installed {
                        "no record: the test did not run".to_string()
                    } else {
                        format!("not installed (cargo ktstr sched install {sched})")
                    };
                    m.cells
                        .entry((sched.to_string(), scen.to_string(), topo.to_string()))
                        .or_insert(Cell::Skipped(why));
                }
            }
        }
        m
    }

    fn count(&self, f: impl Fn(&Cell) -> bool) -> usize {
        self.cells.values().filter(|c| f(c)).count()
    }

    /// The table as markdown: per topology, schedulers by scenario, each
    /// failure and skip numbered and explained below its table.
    pub fn markdown(&self, scenarios: &[&str]) -> String {
        let mut out = String::new();
        let pass = self.count(|c| matches!(c, Cell::Pass { .. }));
        let fail = |f: Fault| self.count(|c| matches!(c, Cell::Fail { fault, .. } if *fault == f));
        let skip = self.count(|c| matches!(c, Cell::Skipped(_)));
        let _ = writeln!(
            out,
            "{} cells: {pass} pass, {} scheduler failures, {} config, {} harness, {skip} skipped\n",
            self.cells.len(),
            fail(Fault::Scheduler),
            fail(Fault::Config),
            fail(Fault::Harness)
        );
        let mut notes = Vec::new();
        for (topo, t) in TOPOLOGIES {
            let _ = writeln!(out, "### {topo} (`{t}`, {} CPUs)\n", t.cpus());
            let _ = writeln!(out, "| scheduler | {} |", scenarios.join(" | "));
            let _ = writeln!(out, "| --- |{}", " --- |".repeat(scenarios.len()));
            for sched in self.schedulers() {
                let mut row = match self.versions.get(&sched) {
                    Some(v) => format!("| {sched} {v} |"),
                    None => format!("| {sched} |"),
                };
                for scen in scenarios {
                    let key = (sched.clone(), scen.to_string(), topo.to_string());
                    let text = match self.cells.get(&key) {
                        Some(Cell::Pass { .. }) => "pass".to_string(),
                        Some(Cell::Fail { fault, detail, .. }) => {
                            let n = note(&mut notes, format!("{sched} × {scen} on {topo}: {detail}"));
                            let word = match fault {
                                Fault::Scheduler => "FAIL",
                                Fault::Config => "config",
                                Fault::Harness => "harness",
                            };
                            format!("**{word}** [{n}]")
                        }
                        // One note per scheduler and reason: a missing
                        // scheduler skips its whole row.
                        Some(Cell::Skipped(why)) => format!("skip [{}]", note(&mut notes, format!("{sched}: {why}"))),
                        None => "-".to_string(),
                    };
                    let _ = write!(row, " {text} |");
                }
                let _ = writeln!(out, "{row}");
            }
            out.push('\n');
        }
        if !notes.is_empty() {
            out.push_str("Notes:\n\n");
            for (i, n) in notes.iter().enumerate() {
                let _ = writeln!(out, "{}. {n}", i + 1);
            }
        }
        out
    }

    fn schedulers(&self) -> Vec<String> {
        let mut s: Vec<String> = SCHEDULERS.iter().map(|s| s.to_string()).collect();
        for (sched, _, _) in self.cells.keys() {
            if !s.contains(sched) {
                s.push(sched.clone());
            }
        }
        s
    }

    /// Total VM time of the cells that ran, and how many ran.
    pub fn vm_time(&self) -> (u64, usize) {
        let ms: Vec<u64> = self
            .cells
            .values()
            .filter_map(|c| match c {
                Cell::Pass { vm_ms } | Cell::Fail { vm_ms, .. } => *vm_ms,
                Cell::Skipped(_) => None,
            })
            .collect();
        // Saturating: the times come from sidecars on disk, and a damaged
        // or hand-made one must not panic the sum (found by fuzzing:
        // fuzz/regressions/sidecar_dump/matrix-vm-time-overflow).
        (ms.iter().fold(0u64, |a, m| a.saturating_add(*m)), ms.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/matrix")
    }

    fn sidecar(prefix: &str) -> StatsSidecar {
        let dir = fixtures();
        let e =
            std::fs::read_dir(&dir).unwrap().flatten().find(|e| e.file_name().to_string_lossy().starts_with(prefix));
        serde_json::from_str(&std::fs::read_to_string(e.expect(prefix).path()).unwrap()).unwrap()
    }

    #[test]
    fn names_round_trip() {
        let n = test_name("scx_lavd", "rt_hog", "smt");
        assert_eq!(n, "matrix__scx_lavd__rt_hog__smt");
        assert_eq!(parse_test_name(&n), Some(("scx_lavd", "rt_hog", "smt")));
        assert_eq!(parse_test_name("matrix__a__b"), None);
        assert_eq!(parse_test_name("steady"), None);
    }

    /// Real sidecars of the matrix's run on this machine: scx_beerland
    /// passing `steady`, scx_bpfland stalling a task under CPU hotplug
    /// (the kernel's watchdog ended it: the scheduler's fault).
    #[test]
    fn real_sidecars_are_classified() {
        assert!(matches!(classify(&sidecar("matrix__scx_beerland__steady__smt")), Cell::Pass { vm_ms: Some(_) }));
        match classify(&sidecar("matrix__scx_bpfland__cpu_hotplug__smt")) {
            Cell::Fail { fault, detail, .. } => {
                assert_eq!(fault, Fault::Scheduler);
                assert_eq!(
                    detail,
                    "runnable task stall (ktstr-worker[139] failed to run for 6.528s); \
                     tid 139 stuck 6545ms on cpu0 at +1105ms (threshold 2000ms)"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// A scheduler that refused its config before attaching: its own words
    /// make it a config need, not a bug; a boot that stalled is the harness's.
    #[test]
    fn config_and_harness_faults_are_told_apart() {
        let config = StatsSidecar {
            stage: "scheduler did not attach".into(),
            reasons: vec!["scheduler scx_layered exited before attaching (exit status: 1)".into()],
            scheduler_log_tail: vec!["Error: no layer spec given: pass one or more specs or f:FILE".into()],
            ..Default::default()
        };
        match classify(&config) {
            Cell::Fail { fault: Fault::Config, detail, .. } => {
                assert!(detail.ends_with("no layer spec given: pass one or more specs or f:FILE"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        let boot = StatsSidecar {
            stage: "no word from init".into(),
            reasons: vec![
                "guest boot stalled: init sent nothing within 20.0s (stage reached: booting); QEMU was killed".into(),
            ],
            ..Default::default()
        };
        assert!(matches!(classify(&boot), Cell::Fail { fault: Fault::Harness, .. }));
    }

    /// The table from the two real sidecars: their cells, a numbered note
    /// with the failure's first line, and every other cell skipped with why
    /// (the scheduler cache here is empty: not installed).
    #[test]
    fn the_table_reads_a_run_directory() {
        let cache = std::env::temp_dir().join(format!("ktstr-matrix-empty-cache-{}", std::process::id()));
        let m = Matrix::read_with(&fixtures(), &["steady", "cpu_hotplug"], &cache);
        let md = m.markdown(&["steady", "cpu_hotplug"]);
        assert!(md.starts_with("44 cells: 1 pass, 1 scheduler failures, 0 config, 0 harness, 42 skipped"), "{md}");
        assert!(md.contains("| scx_beerland | pass | skip ["), "{md}");
        assert!(md.contains("| scx_bpfland | skip [") && md.contains("**FAIL** ["), "{md}");
        assert!(md.contains("scx_bpfland × cpu_hotplug on smt: runnable task stall (ktstr-worker[139]"), "{md}");
        assert!(md.contains("scx_rusty: not installed (cargo ktstr sched install scx_rusty)"), "{md}");
        assert_eq!(m.kernels, ["7.3.4+deb13-cloud-amd64"]);
        assert_eq!(m.vm_time().1, 2);
    }

    /// Found by the sidecar_dump fuzz target: two sidecars whose VM times
    /// add past u64::MAX panicked `cargo ktstr matrix` in a debug build.
    /// The input is the fuzzer's own, kept in fuzz/regressions/.
    #[test]
    fn vm_times_past_u64_saturate() {
        let input =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/sidecar_dump/matrix-vm-time-overflow");
        let bytes = std::fs::read(&input).unwrap();
        // The target's input is a selector byte, then the JSON.
        let text = std::str::from_utf8(&bytes[1..]).unwrap();
        let mut m = Matrix::default();
        for s in serde_json::Deserializer::from_str(text).into_iter::<StatsSidecar>() {
            let s = s.unwrap();
            let (sched, scen, topo) = parse_test_name(&s.test).unwrap();
            m.cells.insert((sched.into(), scen.into(), topo.into()), classify(&s));
        }
        assert_eq!(m.vm_time(), (u64::MAX, 2));
    }
}
