//! What a run leaves on disk for tooling: per kernel, a run directory
//! `<target>/ktstr/<kernel release>/`; per test variant, a stats sidecar
//! `{test}-{variant:016x}.ktstr.json` and, when it failed, a
//! `{test}-{variant:016x}.failure-dump.json` (and `.repro.failure-dump.json`
//! for its auto-repro VM); and the run as a picture, its Chrome trace
//! (`.trace.json`, for ui.perfetto.dev) and its HTML page (`.html`), drawn
//! by `report`. The dump and picture paths are cleared
//! before each run, so a passing rerun leaves no stale dump; every file is
//! written whole (temporary file, then rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use crate::dump::FailureDump;
use crate::judge::Verdict;
use crate::outcome::RunOutcome;
use crate::report::{self, Picture};
use crate::vm::qmp::VcpuRegisters;
use crate::wire::records::{self, StatsSidecar};

/// Lines of the scheduler's output the sidecar keeps.
const SCHED_LOG_TAIL: usize = 30;

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
    /// The kernel image booted (not part of the variant's identity: the
    /// same release from another path is the same variant), so a replay
    /// boots the same file.
    pub kernel_image: Option<&'a Path>,
}

impl Artifacts {
    pub fn new(v: &Variant) -> Artifacts {
        let key = format!("{}\0{:?}\0{:?}\0{}\0{}", v.test, v.scheduler, v.sched_args, v.topology, v.kernel_release);
        let hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
        // A gauntlet variant's name has slashes: not in a file name.
        let name = v.test.replace('/', "-");
        Artifacts { dir: output_root().join(v.kernel_release), stem: format!("{name}-{hash:016x}") }
    }

    pub fn dump_path(&self) -> PathBuf {
        records::dump_path(&self.dir, &self.stem)
    }

    /// The auto-repro VM's own dump, beside the primary's.
    pub fn repro_dump_path(&self) -> PathBuf {
        records::repro_dump_path(&self.dir, &self.stem)
    }

    pub(crate) fn stats_path(&self) -> PathBuf {
        records::stats_path(&self.dir, &self.stem)
    }

    /// The run's Chrome trace, for ui.perfetto.dev.
    pub fn trace_path(&self) -> PathBuf {
        records::trace_path(&self.dir, &self.stem)
    }

    /// The run's self-contained HTML page: its report and plots.
    pub fn html_path(&self) -> PathBuf {
        records::html_path(&self.dir, &self.stem)
    }

    /// Before a run: no dump from an earlier one may survive it.
    pub(crate) fn clear(&self) {
        let _ = std::fs::remove_file(self.dump_path());
        let _ = std::fs::remove_file(self.repro_dump_path());
        self.clear_picture();
    }

    /// Nor a picture of an earlier run.
    pub(crate) fn clear_picture(&self) {
        let _ = std::fs::remove_file(self.trace_path());
        let _ = std::fs::remove_file(self.html_path());
    }

    /// The stats sidecar of any run that reached a VM; returns what it wrote.
    pub(crate) fn write_stats(
        &self,
        v: &Variant,
        o: &RunOutcome,
        verdict: &Verdict,
        expect_err: bool,
    ) -> Result<StatsSidecar> {
        let doc = sidecar(v, o, verdict, expect_err);
        write_atomic(&self.stats_path(), &serde_json::to_vec_pretty(&doc)?)?;
        Ok(doc)
    }

    /// The run as a picture: its trace and its HTML page, each whole.
    pub(crate) fn write_picture(&self, pic: &Picture) -> Result<()> {
        write_atomic(&self.trace_path(), &report::trace::render(pic))?;
        write_atomic(&self.html_path(), &report::html::render(pic))
    }

    /// The failure dump of the run (`repro`: of its auto-repro VM): the
    /// guest's post-mortem of the scheduler's BPF state when it sent one,
    /// else the spec's placeholder, saying at which stage the run failed
    /// and why no state is there.
    pub(crate) fn write_failure_dump(&self, v: &Variant, run: &DumpSource, repro: bool) -> Result<()> {
        let mut doc = json!({
            "schema": "single",
            "test": v.test,
            "scheduler": v.scheduler,
            "topology": v.topology,
            "kernel": v.kernel_release,
            "stage": run.stage,
        });
        let fields = match run.dump {
            Some(d) => json!({
                "taken": d.taken,
                "at_ms": d.at_ms,
                "maps": d.maps,
                "progs": d.progs,
                "problems": d.problems,
                "is_placeholder": false,
            }),
            None => {
                let why = if run.attached {
                    "the scheduler attached, but the guest ended before it read the scheduler's BPF state"
                } else {
                    "probe did not attach before failure"
                };
                json!({
                    "maps": [],
                    "sdt_alloc_unavailable":
                        format!("test failed at stage `{}`; no BPF state captured ({why})", run.stage),
                    "is_placeholder": true,
                })
            }
        };
        let vcpus = match run.vcpus {
            Some(Ok(cpus)) => json!({ "vcpus": cpus }),
            Some(Err(e)) => json!({ "vcpus": [], "vcpus_unavailable": e }),
            None => json!({
                "vcpus": [],
                "vcpus_unavailable": "read only when the wall-clock limit stops a hung guest; this VM ended by itself",
            }),
        };
        if let Some(d) = doc.as_object_mut() {
            for f in [fields, vcpus] {
                d.extend(f.as_object().cloned().unwrap_or_default());
            }
        }
        let path = if repro { self.repro_dump_path() } else { self.dump_path() };
        write_atomic(&path, &serde_json::to_vec_pretty(&doc)?)
    }
}

/// The stats sidecar of a run that reached a VM.
pub(crate) fn sidecar(v: &Variant, o: &RunOutcome, verdict: &Verdict, expect_err: bool) -> StatsSidecar {
    StatsSidecar {
        test: v.test.to_string(),
        scheduler: v.scheduler.map(str::to_string),
        topology: v.topology.to_string(),
        kernel: v.kernel_release.to_string(),
        kernel_image: v.kernel_image.map(Path::to_path_buf),
        binary_id: std::env::var("NEXTEST_BINARY_ID").ok(),
        passed: verdict.passed(),
        expected_failure: expect_err,
        stage: o.stage.to_string(),
        reasons: verdict.lines(),
        bug_summary: o.bug_summary.clone(),
        stats: o.result.as_ref().and_then(|r| r.stats.clone()),
        monitor: o.monitor.clone(),
        monitor_failures: verdict.monitor.failures.clone(),
        vm_ms: Some(o.vm.wall.as_millis() as u64),
        sched_exit_at_ms: o.sched_exit.as_ref().filter(|(_, during)| *during).and(o.sched_exit_at_ms),
        scheduler_log_tail: o.sched_log.iter().rev().take(SCHED_LOG_TAIL).rev().cloned().collect(),
    }
}

/// What a failure dump is written from: one VM run.
pub(crate) struct DumpSource<'a> {
    /// The stage reached, in the report's words.
    pub stage: &'a str,
    /// Whether the scheduler had attached.
    pub attached: bool,
    pub dump: Option<&'a FailureDump>,
    /// The vCPUs' registers, when QEMU's monitor was asked (a hang).
    pub vcpus: Option<&'a Result<Vec<VcpuRegisters>, String>>,
}

impl<'a> DumpSource<'a> {
    pub fn of(o: &'a RunOutcome, stage: &'a str) -> Self {
        DumpSource {
            stage,
            attached: o.sched_attach_ms.is_some(),
            dump: o.failure_dump.as_ref(),
            vcpus: o.vm.vcpu_registers.as_ref(),
        }
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
            kernel_image: None,
        };
        let run = DumpSource {
            stage: "payload started but produced no test result",
            attached: false,
            dump: None,
            vcpus: None,
        };
        a.write_failure_dump(&v, &run, false).unwrap();
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
        let v = Variant {
            test: "t",
            scheduler: None,
            sched_args: &[],
            topology: "1n1l2c1t",
            kernel_release: "7.3.4",
            kernel_image: None,
        };
        let mut o = fixture("topology_mismatch", EXITED);
        let m = crate::report::monitor_fixture("fair_two_cgroups");
        o.monitor = Some(m.clone());
        a.write_stats(&v, &o, &Verdict::default(), false).unwrap();
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
            kernel_image: None,
        };
        let (a, b) = (Artifacts::new(&v(None)), Artifacts::new(&v(Some("scx-ktstr"))));
        assert_ne!(a.stem, b.stem);
        assert!(a.stem.starts_with("t-") && a.stem.len() == 2 + 16, "{}", a.stem);
        assert_eq!(a.dump_path().file_name().unwrap(), format!("{}.failure-dump.json", a.stem).as_str());
        assert!(a.dir.ends_with("ktstr/7.3.4"), "{}", a.dir.display());
    }

    /// A full post-mortem, from a real crash's dump (scx-ktstr's `crash`
    /// knob; captured by `bpf_crash_auto_repro_e2e_trail`), written as the
    /// repro's sibling file.
    #[test]
    fn full_dump_keeps_the_guest_post_mortem() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dump/failure_dump.json");
        let dump: FailureDump = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!("ktstr-full-dump-{}", std::process::id()));
        let a = Artifacts { dir: dir.clone(), stem: "t-0000000000000002".into() };
        let v = Variant {
            test: "t",
            scheduler: Some("scx-ktstr"),
            sched_args: &[],
            topology: "1n1l4c1t",
            kernel_release: "7.3.4",
            kernel_image: None,
        };
        let run = DumpSource {
            stage: "payload started but produced no test result",
            attached: true,
            dump: Some(&dump),
            vcpus: None,
        };
        a.write_failure_dump(&v, &run, true).unwrap();
        assert!(!a.dump_path().exists());
        let d: serde_json::Value = serde_json::from_slice(&std::fs::read(a.repro_dump_path()).unwrap()).unwrap();
        assert_eq!(d["schema"], "single");
        assert_eq!(d["is_placeholder"], false);
        assert_eq!(d["taken"], "scheduler exited");
        let bss = d["maps"].as_array().unwrap().iter().find(|m| m["name"].as_str().unwrap().ends_with(".bss")).unwrap();
        assert_eq!(bss["entries"][0]["value"]["crash"], 1);
        assert!(d["progs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "ktstr_dispatch" && p["run_cnt"].as_u64() > Some(0)));
        a.clear();
        assert!(!a.repro_dump_path().exists(), "clear() removes the repro dump too");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
