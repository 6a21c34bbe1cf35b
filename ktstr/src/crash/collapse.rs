//! Repeats collapsed for display: a scheduler that loops on one error, or a
//! dump that lists a hundred identical tasks, would otherwise bury the
//! lines that differ.

/// Longest repeating block looked for. Longer cycles are rare in logs and
/// every extra length costs a pass over the candidate run.
const MAX_CYCLE: usize = 8;

/// Copies a block must appear in a row to be collapsed: two copies
/// collapsed would save nothing (one copy plus a marker line).
const MIN_COPIES: usize = 3;

/// Collapses repeats: a line seen 3 or more times in a row becomes one copy
/// plus `  [previous line repeated N times]`, and a block of 2..=8 lines
/// seen 3 or more times in a row becomes one copy plus
/// `  [previous K lines repeated N times]`, N counting the copies left
/// out. Blocks are found greedily from the top, preferring at each line
/// the block length that covers the most lines (then the shortest).
pub fn collapse_cycles(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        match best_cycle(lines, i) {
            Some((k, copies)) => {
                out.extend_from_slice(&lines[i..i + k]);
                let repeats = copies - 1;
                out.push(match k {
                    1 => format!("  [previous line repeated {repeats} times]"),
                    _ => format!("  [previous {k} lines repeated {repeats} times]"),
                });
                i += k * copies;
            }
            None => {
                out.push(lines[i].clone());
                i += 1;
            }
        }
    }
    out
}

/// The block `(length, copies)` starting at `i` that repeats at least
/// [`MIN_COPIES`] times and covers the most lines.
///
/// Linear overall: a candidate that falls short stops within
/// `MIN_COPIES * k` lines, and one that qualifies scans at most the lines
/// the chosen (widest) block then consumes, plus `k`.
fn best_cycle(lines: &[String], i: usize) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    for k in 1..=MAX_CYCLE.min(lines.len() - i) {
        // Lines from i + k on that equal the line k earlier.
        let matched = lines[i + k..].iter().zip(&lines[i..]).take_while(|(a, b)| a == b).count();
        let copies = 1 + matched / k;
        let covers = k * copies;
        if copies >= MIN_COPIES && best.is_none_or(|(bk, bc)| covers > bk * bc) {
            best = Some((k, copies));
        }
    }
    best
}
