//! Stitching auto-repro's probe events into calls: each entry paired with
//! its own exit. Read by the `--- auto-repro ---` section (`repro`) and by
//! the run's trace (`report::trace`), which stand side by side above this.

use std::collections::{HashMap, VecDeque};

use super::{ProbeEvent, ProbeFunc, ProbeTrail};

/// One call: its entry and its exit, when both were seen.
pub(crate) struct Call<'a> {
    pub func: &'a ProbeFunc,
    pub entry: Option<&'a ProbeEvent>,
    pub exit: Option<&'a ProbeEvent>,
}

/// The triggering task's calls up to the exit, in time order, each entry
/// paired with the next exit of the same function on the same CPU.
///
/// The trail is the guest's, of any size: functions are looked up in a
/// map and each (function, CPU) keeps its exits in a queue, so stitching
/// takes O(n log n), not a scan of the rest of the trail per event.
pub(crate) fn stitch(trail: &ProbeTrail, until_ns: u64) -> Vec<Call<'_>> {
    let mut events: Vec<&ProbeEvent> = trail.events.iter().collect();
    events.sort_by_key(|e| e.ts_ns);
    let mut funcs: HashMap<u32, &ProbeFunc> = HashMap::new();
    for f in &trail.funcs {
        funcs.entry(f.id).or_insert(f); // the first of a repeated id, as before
    }
    let mut exits: HashMap<(u32, u32), VecDeque<usize>> = HashMap::new();
    for (j, x) in events.iter().enumerate().filter(|(_, x)| x.exit) {
        exits.entry((x.func, x.cpu)).or_default().push_back(j);
    }
    let mut calls: Vec<Call> = Vec::new();
    let mut used = vec![false; events.len()];
    for (i, e) in events.iter().enumerate() {
        if used[i] || e.ts_ns > until_ns {
            continue;
        }
        let Some(&f) = funcs.get(&e.func) else { continue };
        used[i] = true;
        if e.exit {
            calls.push(Call { func: f, entry: None, exit: Some(e) });
            continue;
        }
        // The first exit after this entry not taken yet: exits before it
        // were all taken, paired or shown on their own.
        let queue = exits.get_mut(&(e.func, e.cpu));
        let exit = queue.and_then(|q| {
            while q.front().is_some_and(|&j| j < i || used[j]) {
                q.pop_front();
            }
            q.pop_front()
        });
        if let Some(j) = exit {
            used[j] = true;
        }
        calls.push(Call { func: f, entry: Some(e), exit: exit.map(|j| events[j]) });
    }
    calls
}

#[cfg(test)]
pub(crate) mod tests {
    //! On a real trail: `probe_trail.json` is what a repro VM's guest sent
    //! for spec 000's crash demo (captured by scx-ktstr's
    //! `bpf_crash_auto_repro_e2e_trail` with `KTSTR_CRASH_CAPTURE_DIR`).

    use super::*;

    /// The real trail, for the tests of its readers too.
    pub(crate) fn trail() -> ProbeTrail {
        serde_json::from_str(include_str!("../../tests/fixtures/repro/probe_trail.json")).unwrap()
    }

    /// Found reviewing the repro_trail fuzz target (docs/fuzzing.md): every
    /// entry scanned the rest of the trail for its exit and every event
    /// the function list for its function: 100k events and 20k functions
    /// (a few MiB, within one channel frame) took 9 s of host CPU in a
    /// release build, growing with the square of the trail. Stitching is
    /// now O(n log n).
    #[test]
    fn a_huge_trail_stitches_quickly() {
        let mut t = trail();
        let proto = t.events[0].clone();
        let f0 = t.funcs[0].clone();
        t.funcs = (0..20_000).map(|i| ProbeFunc { id: 1_000_000 + i, ..f0.clone() }).chain([f0.clone()]).collect();
        t.events = (0..100_000u64)
            .map(|i| ProbeEvent { func: f0.id, exit: i % 1000 == 999, ts_ns: i, cpu: (i % 2) as u32, ..proto.clone() })
            .collect();
        // No clock here (the machines are shared): a quadratic stitch
        // makes this test run for minutes, which nextest's slow-timeout
        // in .config/nextest.toml ends; the counts check the pairing.
        let calls = stitch(&t, u64::MAX);
        // The exits (every 1000th event, all on CPU 1) close the first
        // hundred entries of CPU 1; every other entry stays open.
        let paired = calls.iter().filter(|c| c.entry.is_some() && c.exit.is_some()).count();
        assert_eq!(paired, 100, "one pairing per exit");
        assert_eq!(calls.len(), 100_000 - 100);
    }

    /// The queues choose exactly what the scan did: the first exit after
    /// each entry, of its function and CPU, not taken by an earlier entry.
    #[test]
    fn stitching_matches_the_scan_it_replaced() {
        let t = trail();
        let mut events: Vec<&ProbeEvent> = t.events.iter().collect();
        events.sort_by_key(|e| e.ts_ns);
        let mut used = vec![false; events.len()];
        let mut want = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if used[i] || !t.funcs.iter().any(|f| f.id == e.func) {
                continue;
            }
            used[i] = true;
            if e.exit {
                want.push((None, Some(*e)));
                continue;
            }
            let j = (i + 1..events.len())
                .find(|&j| !used[j] && events[j].exit && events[j].func == e.func && events[j].cpu == e.cpu);
            if let Some(j) = j {
                used[j] = true;
            }
            want.push((Some(*e), j.map(|j| events[j])));
        }
        let got: Vec<_> = stitch(&t, u64::MAX).iter().map(|c| (c.entry, c.exit)).collect();
        assert_eq!(got, want);
    }
}
