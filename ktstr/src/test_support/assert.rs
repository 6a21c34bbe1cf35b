use serde::{Deserialize, Serialize};

/// A test's verdict: passed, or failed with one detail line per violated
/// check (the lines printed under the report header).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AssertResult {
    pub passed: bool,
    pub details: Vec<String>,
}

impl AssertResult {
    pub fn pass() -> Self {
        AssertResult { passed: true, details: Vec::new() }
    }

    pub fn fail(detail: impl Into<String>) -> Self {
        AssertResult { passed: false, details: vec![detail.into()] }
    }

    /// Records a check: a false `ok` fails the result with `detail`.
    pub fn check(&mut self, ok: bool, detail: impl FnOnce() -> String) -> &mut Self {
        if !ok {
            self.passed = false;
            self.details.push(detail());
        }
        self
    }

    /// Combines two verdicts: failed if either failed, details of both.
    pub fn merge(mut self, other: AssertResult) -> Self {
        self.passed &= other.passed;
        self.details.extend(other.details);
        self
    }
}
