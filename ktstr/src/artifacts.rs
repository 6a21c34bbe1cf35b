//! What a run leaves on disk for tooling: per kernel, a run directory
//! `<target>/ktstr/<kernel release>/`; per test variant, a stats sidecar
//! `{test}-{variant:016x}.ktstr.json` and, when it failed, a
//! `{test}-{variant:016x}.failure-dump.json`. The dump path is cleared
//! before each run, so a passing rerun leaves no stale dump; every file is
//! written whole (temporary file, then rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use crate::outcome::RunOutcome;

/// Overrides `<target>/ktstr` as the root of the run directories.
pub const OUTPUT_DIR_ENV: &str = "KTSTR_OUTPUT_DIR";

#[derive(Clone, Debug)]
pub struct Artifacts {
    pub dir: PathBuf,
    /// `{test}-{variant:016x}`.
    pub stem: String,
}

/// What makes one variant of a test: its name and everything that changes
/// what runs.
pub struct Variant<'a> {
    pub test: &'a str,
    pub scheduler: Option<&'a str>,
    pub sched_args: &'a [String],
    pub topology: &'a str,
    pub kernel_release: &'a str,
}

impl Artifacts {
    pub fn new(v: &Variant) -> Artifacts {
        let key = format!("{}\0{:?}\0{:?}\0{}\0{}", v.test, v.scheduler, v.sched_args, v.topology, v.kernel_release);
        let hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
        Artifacts { dir: output_root().join(v.kernel_release), stem: format!("{}-{hash:016x}", v.test) }
    }

    pub fn dump_path(&self) -> PathBuf {
        self.dir.join(format!("{}.failure-dump.json", self.stem))
    }

    pub fn stats_path(&self) -> PathBuf {
        self.dir.join(format!("{}.ktstr.json", self.stem))
    }

    /// Before a run: no dump from an earlier one may survive it.
    pub fn clear(&self) {
        let _ = std::fs::remove_file(self.dump_path());
    }

    /// The stats sidecar of any run that reached a VM.
    pub fn write_stats(&self, v: &Variant, o: &RunOutcome, reasons: &[String], expect_err: bool) -> Result<()> {
        let doc = json!({
            "test": v.test,
            "scheduler": v.scheduler,
            "topology": v.topology,
            "kernel": v.kernel_release,
            "passed": reasons.is_empty(),
            // The failure is what the test pins (expect_err): not news.
            "expected_failure": expect_err,
            "stage": o.stage.to_string(),
            "reasons": reasons,
            "bug_summary": o.bug_summary,
            "stats": o.result.as_ref().and_then(|r| r.stats.as_ref()),
            // Every sample, for plotting; `unavailable` says why there are none.
            "monitor": o.monitor,
            "monitor_failures": o.monitor_verdict.failures,
        });
        write_atomic(&self.stats_path(), &serde_json::to_vec_pretty(&doc)?)
    }

    /// The failure dump. No post-mortem of the scheduler's BPF state is
    /// captured yet, so every dump is the spec's placeholder shape, saying
    /// at which stage the run failed and why no state is there.
    pub fn write_failure_dump(&self, v: &Variant, stage: &str, attached: bool) -> Result<()> {
        let why = if attached {
            "the scheduler attached, but ktstr does not capture its BPF state yet"
        } else {
            "probe did not attach before failure"
        };
        let doc = json!({
            "schema": "single",
            "test": v.test,
            "scheduler": v.scheduler,
            "topology": v.topology,
            "kernel": v.kernel_release,
            "maps": [],
            "sdt_alloc_unavailable": format!("test failed at stage `{stage}`; no BPF state captured ({why})"),
            "is_placeholder": true,
        });
        write_atomic(&self.dump_path(), &serde_json::to_vec_pretty(&doc)?)
    }
}

/// `$KTSTR_OUTPUT_DIR`, else `<cargo target dir>/ktstr`: the test binary
/// lives in `<target>/<profile>/deps/`.
fn output_root() -> PathBuf {
    if let Some(d) = std::env::var_os(OUTPUT_DIR_ENV) {
        return PathBuf::from(d);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("ktstr");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().find(|a| a.file_name().is_some_and(|n| n == "target")).map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
        .join("ktstr")
}

/// Whole or not at all: a temporary file beside `path`, synced, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("artifact path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp =
        dir.join(format!(".{}.tmp-{}", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("ktstr-artifacts-{}", std::process::id()));
        let p = dir.join("t.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["t.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The placeholder's fields, as spec 004 shows them.
    #[test]
    fn placeholder_dump_has_the_spec_fields() {
        let dir = std::env::temp_dir().join(format!("ktstr-dump-{}", std::process::id()));
        let a = Artifacts { dir: dir.clone(), stem: "t-0000000000000001".into() };
        let v = Variant {
            test: "t",
            scheduler: Some("scx-ktstr"),
            sched_args: &[],
            topology: "1n1l2c1t",
            kernel_release: "7.3.4",
        };
        a.write_failure_dump(&v, "payload started but produced no test result", false).unwrap();
        let d: serde_json::Value = serde_json::from_slice(&std::fs::read(a.dump_path()).unwrap()).unwrap();
        assert_eq!(d["schema"], "single");
        assert_eq!(d["maps"], serde_json::json!([]));
        assert_eq!(
            d["sdt_alloc_unavailable"],
            "test failed at stage `payload started but produced no test result`; no BPF state captured \
             (probe did not attach before failure)"
        );
        assert_eq!(d["is_placeholder"], true);
        a.clear();
        assert!(!a.dump_path().exists(), "clear removes the dump");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The monitor's samples go into the sidecar, for tools to plot.
    #[test]
    fn sidecar_carries_the_monitor_samples() {
        use crate::outcome::fixtures::{fixture, EXITED};
        let dir = std::env::temp_dir().join(format!("ktstr-sidecar-{}", std::process::id()));
        let a = Artifacts { dir: dir.clone(), stem: "t-0000000000000002".into() };
        let v = Variant { test: "t", scheduler: None, sched_args: &[], topology: "1n1l2c1t", kernel_release: "7.3.4" };
        let mut o = fixture("topology_mismatch", EXITED);
        let m = crate::report::monitor_fixture("fair_two_cgroups");
        o.attach_monitor(m.clone(), &crate::check::Checks::DEFAULT);
        a.write_stats(&v, &o, &[], false).unwrap();
        let d: serde_json::Value = serde_json::from_slice(&std::fs::read(a.stats_path()).unwrap()).unwrap();
        let back: crate::monitor::MonitorReport = serde_json::from_value(d["monitor"].clone()).unwrap();
        assert_eq!(back, m);
        assert_eq!(d["monitor"]["samples"][2]["cpus"][0]["nr_running"], 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn variants_differ_by_what_runs() {
        let v = |sched: Option<&'static str>| Variant {
            test: "t",
            scheduler: sched,
            sched_args: &[],
            topology: "1n1l2c1t",
            kernel_release: "7.3.4",
        };
        let (a, b) = (Artifacts::new(&v(None)), Artifacts::new(&v(Some("scx-ktstr"))));
        assert_ne!(a.stem, b.stem);
        assert!(a.stem.starts_with("t-") && a.stem.len() == 2 + 16, "{}", a.stem);
        assert_eq!(a.dump_path().file_name().unwrap(), format!("{}.failure-dump.json", a.stem).as_str());
        assert!(a.dir.ends_with("ktstr/7.3.4"), "{}", a.dir.display());
    }
}
