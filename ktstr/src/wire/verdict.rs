use serde::{Deserialize, Serialize};

use super::stats::ScenarioStats;

/// A test's verdict: passed, or failed with one detail line per violated
/// check (the lines printed under the report header), plus what the
/// scenario measured, so that the host can check thresholds and render the
/// stats and timeline from the same figures, and a test body can add checks
/// of its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AssertResult {
    pub passed: bool,
    pub details: Vec<String>,
    /// Per phase, per cgroup, per worker reports; `None` when the test ran
    /// no scenario.
    #[serde(default)]
    pub stats: Option<ScenarioStats>,
}

impl AssertResult {
    pub fn pass() -> Self {
        AssertResult { passed: true, ..Default::default() }
    }

    pub fn fail(detail: impl Into<String>) -> Self {
        AssertResult { passed: false, details: vec![detail.into()], stats: None }
    }

    /// Records a check: a false `ok` fails the result with `detail`.
    pub fn check(&mut self, ok: bool, detail: impl FnOnce() -> String) -> &mut Self {
        if !ok {
            self.passed = false;
            self.details.push(detail());
        }
        self
    }

    /// Combines two verdicts: failed if either failed, details of both,
    /// and the first one's stats unless it has none.
    pub fn merge(mut self, other: AssertResult) -> Self {
        self.passed &= other.passed;
        self.details.extend(other.details);
        if self.stats.is_none() {
            self.stats = other.stats;
        }
        self
    }
}
