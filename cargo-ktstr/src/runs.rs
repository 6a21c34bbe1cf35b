//! What `cargo ktstr test` leaves for the commands after it: the failed
//! tests of a run, read from the stats sidecars in the run directory
//! (`ktstr::artifacts`), and a record of the last run (`last-run.json`
//! beside the per-kernel directories) that `cargo ktstr replay` reads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::Context;
use ktstr::wire::records::{self, FailedTest, RunRecord, StatsSidecar, LAST_RUN};
use serde_json::Value;

/// One failed test variant, as its sidecar tells it.
pub type Failed = FailedTest;

/// The last run: its kernel and what failed in it.
pub type LastRun = RunRecord;

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
/// counting failures a test pins with expect_err; sorted by name. A
/// sidecar that cannot be read as one is skipped.
pub fn failed_since(dir: &Path, since: SystemTime) -> Vec<Failed> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut failed = Vec::new();
    for path in rd.flatten().map(|e| e.path()) {
        let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(records::STATS_SUFFIX))
        else {
            continue;
        };
        let fresh = path.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since);
        let sidecar: StatsSidecar = match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            Some(d) if fresh => d,
            _ => continue,
        };
        if !sidecar.is_news() {
            continue;
        }
        failed.push(Failed {
            what: sidecar.what(),
            test: sidecar.test,
            binary_id: sidecar.binary_id,
            stats: path.clone(),
            dump: records::dump_path(dir, stem),
            repro_dump: records::repro_dump_path(dir, stem),
            trace: records::trace_path(dir, stem),
            html: records::html_path(dir, stem),
        });
    }
    failed.sort_by(|a, b| (&a.test, &a.what).cmp(&(&b.test, &b.what)));
    failed
}

/// The spec's `cargo ktstr: test outputs` block, when something failed.
pub fn print_outputs(dir: &Path, failed: &[Failed]) {
    print_outputs_with(dir, failed, |test| format!("cargo ktstr replay --filter {test} --exec"));
}

/// [`print_outputs`], each failure's `replay` line from `rerun` (a
/// runner of a bundle has no cargo: it reruns through the bundle).
pub fn print_outputs_with(dir: &Path, failed: &[Failed], rerun: impl Fn(&str) -> String) {
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
        // The run as a picture: a Chrome trace for ui.perfetto.dev and a
        // self-contained page with the report and its plots.
        for (what, path) in [("trace", &f.trace), ("html", &f.html)] {
            if path.exists() {
                eprintln!("    {what} {}", path.display());
            }
        }
        eprintln!("    replay {}", rerun(&f.test));
    }
}

/// Records the run for `cargo ktstr replay`, whole or not at all.
pub fn record(root: &Path, kernel: &ktstr::kernel::KernelImage, failed: &[Failed]) -> anyhow::Result<()> {
    let doc = RunRecord {
        kernel_release: kernel.release.clone(),
        kernel_image: kernel.vmlinuz.clone(),
        dir: root.join(&kernel.release),
        failed: failed.to_vec(),
    };
    ktstr::artifacts::write_atomic(&root.join(LAST_RUN), &serde_json::to_vec_pretty(&doc)?)
}

/// The last recorded run under `root`.
pub fn last(root: &Path) -> anyhow::Result<LastRun> {
    let path = root.join(LAST_RUN);
    let bytes = std::fs::read(&path).with_context(|| {
        format!("no run recorded at {}: `cargo ktstr test` records each run there; run it first", path.display())
    })?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a run record (delete it and run `cargo ktstr test`)", path.display()))
}
