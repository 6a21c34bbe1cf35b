//! The files tools read back: the stats sidecar each test variant leaves in
//! its run directory, the names of the files beside it, and the record of
//! the last `cargo ktstr test` run that `cargo ktstr replay` reads. Written
//! by `artifacts` and `cargo ktstr test`, read by `cargo ktstr`'s commands
//! (and by anything else that walks a run directory).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::monitor::MonitorReport;
use super::stats::ScenarioStats;

/// The stats sidecar: `{stem}.ktstr.json`, `stem` being `{test}-{variant:016x}`.
pub const STATS_SUFFIX: &str = ".ktstr.json";
/// The failure dump beside it, when the run failed.
pub const DUMP_SUFFIX: &str = ".failure-dump.json";
/// The auto-repro VM's own failure dump.
pub const REPRO_DUMP_SUFFIX: &str = ".repro.failure-dump.json";
/// The run as a Chrome trace event file, for ui.perfetto.dev.
pub const TRACE_SUFFIX: &str = ".trace.json";
/// The run as a self-contained HTML page: the report and its plots.
pub const HTML_SUFFIX: &str = ".html";
/// The last run's record, in the root of the run directories.
pub const LAST_RUN: &str = "last-run.json";

/// The files of one test variant in `dir`, by its stem.
pub fn stats_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}{STATS_SUFFIX}"))
}

pub fn dump_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}{DUMP_SUFFIX}"))
}

pub fn repro_dump_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}{REPRO_DUMP_SUFFIX}"))
}

pub fn trace_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}{TRACE_SUFFIX}"))
}

pub fn html_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}{HTML_SUFFIX}"))
}

/// One run of a test variant that reached a VM, as its sidecar keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSidecar {
    pub test: String,
    /// `None`: the kernel's default scheduler (EEVDF).
    pub scheduler: Option<String>,
    /// `1n2l2c1t`.
    pub topology: String,
    /// The kernel release.
    pub kernel: String,
    /// The kernel image booted, so a replay boots the same file.
    pub kernel_image: Option<PathBuf>,
    /// nextest's name for the test binary, so a replay selects this test in
    /// this binary only.
    pub binary_id: Option<String>,
    pub passed: bool,
    /// The failure is what the test pins (`expect_err`): not news.
    pub expected_failure: bool,
    /// The stage reached, as the report's `stage:` line says it.
    pub stage: String,
    /// The report's detail lines.
    pub reasons: Vec<String>,
    pub bug_summary: Option<String>,
    pub stats: Option<ScenarioStats>,
    /// Every sample, for plotting; `unavailable` says why there are none.
    pub monitor: Option<MonitorReport>,
    #[serde(default)]
    pub monitor_failures: Vec<String>,
    /// The VM's wall time, QEMU start to exit (ms).
    #[serde(default)]
    pub vm_ms: Option<u64>,
    /// When the scheduler process died during the workload, in ms since
    /// the payload started (the guest's clock), if it did.
    #[serde(default)]
    pub sched_exit_at_ms: Option<u64>,
    /// The last lines the scheduler printed (its stderr and stdout), so a
    /// tool can tell a scheduler's complaint about its config from a bug.
    #[serde(default)]
    pub scheduler_log_tail: Vec<String>,
}

impl StatsSidecar {
    /// A failure the user should hear of (not one the test pins).
    pub fn is_news(&self) -> bool {
        !self.passed && !self.expected_failure
    }

    /// `scx-ktstr 1n1l2c1t` (`eevdf` without a scheduler), as the outputs
    /// block and replay name a variant.
    pub fn what(&self) -> String {
        format!("{} {}", self.scheduler.as_deref().unwrap_or("eevdf"), self.topology)
    }
}

/// The record of a `cargo ktstr test` run ([`LAST_RUN`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub kernel_release: String,
    pub kernel_image: PathBuf,
    /// The run directory of that kernel.
    pub dir: PathBuf,
    pub failed: Vec<FailedTest>,
}

/// One failed test variant of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FailedTest {
    pub test: String,
    /// See [`StatsSidecar::what`].
    pub what: String,
    /// nextest's binary id, when the test ran under nextest.
    pub binary_id: Option<String>,
    pub stats: PathBuf,
    pub dump: PathBuf,
    pub repro_dump: PathBuf,
    /// The run's trace and HTML report (absent in records of older runs).
    #[serde(default)]
    pub trace: PathBuf,
    #[serde(default)]
    pub html: PathBuf,
}

impl FailedTest {
    /// The nextest filter that selects exactly this test.
    pub fn filter(&self) -> String {
        match &self.binary_id {
            Some(b) => format!("(binary_id({b}) & test(={}))", self.test),
            None => format!("test(={})", self.test),
        }
    }
}
