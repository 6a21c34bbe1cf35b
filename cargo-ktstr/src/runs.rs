//! What `cargo ktstr test` leaves for the commands after it: the failed
//! tests of a run, read from the stats sidecars in the run directory
//! (`ktstr::artifacts`), and a record of the last run (`last-run.json`
//! beside the per-kernel directories) that `cargo ktstr replay` reads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::Context;
use serde_json::{json, Value};

/// The last run's record, in the output root.
const LAST_RUN: &str = "last-run.json";

/// One failed test variant, as its sidecar tells it.
#[derive(Clone, Debug, PartialEq)]
pub struct Failed {
    pub test: String,
    /// `scx-ktstr 1n1l2c1t` (`eevdf` without a scheduler).
    pub what: String,
    /// nextest's binary id, when the test ran under nextest.
    pub binary_id: Option<String>,
    pub stats: PathBuf,
    pub dump: PathBuf,
    pub repro_dump: PathBuf,
}

impl Failed {
    /// The nextest filter that selects exactly this test.
    pub fn filter(&self) -> String {
        match &self.binary_id {
            Some(b) => format!("(binary_id({b}) & test(={}))", self.test),
            None => format!("test(={})", self.test),
        }
    }
}

/// The last run: its kernel and what failed in it.
pub struct LastRun {
    pub kernel_release: String,
    pub kernel_image: PathBuf,
    pub dir: PathBuf,
    pub failed: Vec<Failed>,
}

/// Where the tests write their artifacts (see `ktstr::artifacts`).
pub fn output_root(cargo: &std::ffi::OsStr) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(ktstr::artifacts::OUTPUT_DIR_ENV) {
        return Some(d.into());
    }
    let out = Command::new(cargo).args(["metadata", "--format-version", "1", "--no-deps"]).output().ok()?;
    let meta: Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(PathBuf::from(meta.get("target_directory")?.as_str()?).join("ktstr"))
}

/// The failed tests whose sidecars in `dir` are newer than `since`, not
/// counting failures a test pins with expect_err; sorted by name.
pub fn failed_since(dir: &Path, since: SystemTime) -> Vec<Failed> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut failed = Vec::new();
    for path in rd.flatten().map(|e| e.path()) {
        let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ktstr.json")) else {
            continue;
        };
        let fresh = path.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since);
        let doc: Value = match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            Some(d) if fresh => d,
            _ => continue,
        };
        if doc["passed"].as_bool() != Some(false) || doc["expected_failure"].as_bool() == Some(true) {
            continue;
        }
        failed.push(Failed {
            test: doc["test"].as_str().unwrap_or(stem).to_string(),
            what: format!(
                "{} {}",
                doc["scheduler"].as_str().unwrap_or("eevdf"),
                doc["topology"].as_str().unwrap_or("?")
            ),
            binary_id: doc["binary_id"].as_str().map(str::to_string),
            stats: path.clone(),
            dump: dir.join(format!("{stem}.failure-dump.json")),
            repro_dump: dir.join(format!("{stem}.repro.failure-dump.json")),
        });
    }
    failed.sort_by(|a, b| (&a.test, &a.what).cmp(&(&b.test, &b.what)));
    failed
}

/// The spec's `cargo ktstr: test outputs` block, when something failed.
pub fn print_outputs(dir: &Path, failed: &[Failed]) {
    if failed.is_empty() {
        return;
    }
    eprintln!("\ncargo ktstr: test outputs\n  {}", dir.display());
    for f in failed {
        eprintln!("  FAILED {} [{}]", f.test, f.what);
        eprintln!("    failure dump {}", f.dump.display());
        if f.repro_dump.exists() {
            eprintln!("    repro dump {}", f.repro_dump.display());
        }
        eprintln!("    stats {}", f.stats.display());
        eprintln!("    replay cargo ktstr replay --filter {} --exec", f.test);
    }
}

/// Records the run for `cargo ktstr replay`, whole or not at all.
pub fn record(root: &Path, kernel: &ktstr::kernel::KernelImage, failed: &[Failed]) -> anyhow::Result<()> {
    let doc = json!({
        "kernel_release": kernel.release,
        "kernel_image": kernel.vmlinuz,
        "dir": root.join(&kernel.release),
        "failed": failed.iter().map(|f| json!({
            "test": f.test,
            "what": f.what,
            "binary_id": f.binary_id,
            "stats": f.stats,
            "dump": f.dump,
            "repro_dump": f.repro_dump,
        })).collect::<Vec<_>>(),
    });
    ktstr::artifacts::write_atomic(&root.join(LAST_RUN), &serde_json::to_vec_pretty(&doc)?)
}

/// The last recorded run under `root`.
pub fn last(root: &Path) -> anyhow::Result<LastRun> {
    let path = root.join(LAST_RUN);
    let bytes = std::fs::read(&path).with_context(|| {
        format!("no run recorded at {}: `cargo ktstr test` records each run there; run it first", path.display())
    })?;
    let doc: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a run record (delete it and run `cargo ktstr test`)", path.display()))?;
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let failed = doc["failed"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| Failed {
                    test: s(&f["test"]),
                    what: s(&f["what"]),
                    binary_id: f["binary_id"].as_str().map(str::to_string),
                    stats: s(&f["stats"]).into(),
                    dump: s(&f["dump"]).into(),
                    repro_dump: s(&f["repro_dump"]).into(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(LastRun {
        kernel_release: s(&doc["kernel_release"]),
        kernel_image: s(&doc["kernel_image"]).into(),
        dir: s(&doc["dir"]).into(),
        failed,
    })
}
