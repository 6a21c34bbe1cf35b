//! Pinning a crash: matchers over the text a scheduler error leaves behind
//! (its log, the kernel's debug dump in it, the traced sched_ext dump).

/// `expect_scx_bpf_error_contains` / `_matches`; both must hit (AND).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorMatchers {
    /// A substring of the corpus.
    pub contains: Option<&'static str>,
    /// A regex (the regex crate's syntax) over the whole corpus: `^`/`$`
    /// are its start and end unless `(?m)` says otherwise.
    pub matches: Option<&'static str>,
}

/// Lines of corpus quoted in a miss.
const EXCERPT_LINES: usize = 12;

impl ErrorMatchers {
    pub fn is_empty(&self) -> bool {
        self.contains.is_none() && self.matches.is_none()
    }

    /// One line per matcher that misses `corpus`, with an excerpt of it.
    pub fn misses(&self, corpus: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = self.contains.filter(|s| !corpus.contains(s)) {
            out.push(format!("expect_scx_bpf_error_contains {s:?} not found in the scheduler error text"));
        }
        if let Some(p) = self.matches {
            match regex::Regex::new(p) {
                Ok(re) if re.is_match(corpus) => {}
                Ok(_) => out.push(format!("expect_scx_bpf_error_matches {p:?} did not match the scheduler error text")),
                Err(e) => out.push(format!("expect_scx_bpf_error_matches {p:?} is not a valid regex: {e}")),
            }
        }
        if !out.is_empty() {
            out.push(excerpt(corpus));
        }
        out
    }
}

/// The lines around the error, or the corpus's tail.
fn excerpt(corpus: &str) -> String {
    let lines: Vec<&str> = corpus.lines().collect();
    if lines.is_empty() {
        return "the scheduler left no error text (no log, no sched_ext dump)".into();
    }
    let at = lines
        .iter()
        .position(|l| l.contains("triggered exit kind") || l.contains("EXIT:"))
        .unwrap_or(lines.len().saturating_sub(EXCERPT_LINES));
    let end = (at + EXCERPT_LINES).min(lines.len());
    let mut s = format!("scheduler error text (lines {}-{} of {}):", at + 1, end, lines.len());
    for l in &lines[at..end] {
        s.push_str("\n  | ");
        s.push_str(l);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crash/scx_bpf_error_sigusr2.log");
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn both_must_hit() {
        let c = corpus();
        let hit = ErrorMatchers { contains: Some("a task was stuck"), matches: Some(r"src/bpf/main\.bpf\.c:\d+") };
        assert!(hit.misses(&c).is_empty());
        let miss = ErrorMatchers { contains: Some("host-triggered crash"), ..hit };
        let why = miss.misses(&c);
        assert_eq!(
            why[0],
            "expect_scx_bpf_error_contains \"host-triggered crash\" not found in the scheduler error text"
        );
        assert!(why[1].contains("triggered exit kind 1025"), "{why:?}");
    }

    #[test]
    fn anchors_are_the_corpus_ends() {
        let c = corpus();
        let start = ErrorMatchers { matches: Some("^scx-ktstr: attached"), ..Default::default() };
        assert!(start.misses(&c).is_empty());
        let line_start = ErrorMatchers { matches: Some("^DEBUG DUMP"), ..Default::default() };
        assert!(!line_start.misses(&c).is_empty(), "^ is the corpus start without (?m)");
        let multi = ErrorMatchers { matches: Some("(?m)^DEBUG DUMP$"), ..Default::default() };
        assert!(multi.misses(&c).is_empty());
    }

    #[test]
    fn empty_corpus_says_so() {
        let m = ErrorMatchers { contains: Some("x"), ..Default::default() };
        assert_eq!(m.misses("")[1], "the scheduler left no error text (no log, no sched_ext dump)");
    }
}
