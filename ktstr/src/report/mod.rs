//! The failure report: a header naming test, scheduler and topology, one
//! detail line per reason, then sections in the order of the spec:
//! `--- stats ---`, `--- diagnostics ---`, `--- timeline ---`,
//! `--- scheduler log ---`, `--- monitor ---`, `--- sched_ext dump ---`,
//! each only when it has something to say.

pub mod html;
pub mod matrix;
mod monitor;
mod picture;
mod stats;
mod timeline;
pub mod trace;

use std::fmt::Write;

use crate::judge::Verdict;
use crate::outcome::RunOutcome;
use crate::wire::topology::Topology;

pub use picture::Picture;

/// Lines of kernel console shown under `--- diagnostics ---`.
const CONSOLE_TAIL: usize = 20;

/// Identifies the run in the header line.
pub struct ReportHeader<'a> {
    /// As nextest names it: `gauntlet/<test>/<preset>` for a variant.
    pub test: String,
    pub scheduler: Option<&'a str>,
    pub topology: Topology,
    /// A gauntlet variant's preset, shown with its topology.
    pub preset: Option<&'a str>,
}

impl ReportHeader<'_> {
    pub fn line(&self) -> String {
        format!("{} failed:", self.id())
    }

    /// `ktstr_test 'name' [sched=...] [topo=...]`
    pub fn id(&self) -> String {
        let mut s = format!("ktstr_test '{}'", self.test);
        if let Some(sched) = self.scheduler {
            let _ = write!(s, " [sched={sched}]");
        }
        match self.preset {
            Some(p) => write!(s, " [topo={p} {}]", self.topology),
            None => write!(s, " [topo={}]", self.topology),
        }
        .ok();
        s
    }
}

/// The one line a passing run prints.
pub(crate) fn render_pass(header: &ReportHeader, o: &RunOutcome) -> String {
    let mut s = format!("{} passed: kernel {}", header.id(), o.kernel_release.as_deref().unwrap_or("?"));
    if let Some(ms) = o.sched_attach_ms {
        let _ = write!(s, ", scheduler attached after {:.1}s", ms as f64 / 1000.0);
    }
    let _ = write!(s, ", VM {:.1}s", o.vm.wall.as_secs_f64());
    if o.vm.boot_retries > 0 {
        let _ = write!(s, " (boot retried after a stall before init)");
    }
    s
}

/// A failure before any VM booted (kernel lookup, scheduler binary,
/// initramfs): header, reason, and the host stage it stopped at.
pub(crate) fn render_setup_failure(header: &ReportHeader, stage: &str, reason: &str) -> String {
    let mut s = header.line();
    for line in reason.lines() {
        let _ = write!(s, "\n  {line}");
    }
    let _ = write!(s, "\n\n--- diagnostics ---\nstage: {stage} (no VM was booted)\n");
    s
}

/// The full report for a VM run that failed. `verbose` (see
/// [`verbose_requested`]) adds diagnostics to every failure and shows the
/// whole console instead of its tail.
pub fn render(header: &ReportHeader, o: &RunOutcome, verdict: &Verdict, verbose: bool) -> String {
    // A crash leads with its cause, before the header.
    let mut s = o.bug_summary.as_ref().map(|b| format!("BUG SUMMARY: {b}\n")).unwrap_or_default();
    s.push_str(&header.line());
    for r in verdict.lines() {
        for line in r.lines() {
            let _ = write!(s, "\n  {line}");
        }
    }
    s.push('\n');
    let scenario = o.result.as_ref().and_then(|r| r.stats.as_ref()).filter(|st| !st.phases.is_empty());
    if let Some(st) = scenario {
        let _ = write!(s, "\n--- stats ---\n{}", stats::render(st));
    }
    // A test's own failing checks (its details, or thresholds its stats
    // violate) are explained by their detail lines; any other failure
    // needs to know how far the VM got.
    let vm_level = !verdict.checks_failed() || o.sched_exit.is_some();
    if vm_level || verbose {
        let _ = write!(s, "\n--- diagnostics ---\nstage: {}\n", o.stage);
        if let Some(code) = o.guest_exit_code {
            let _ = writeln!(s, "exit_code={code}");
        }
        // A death during the workload is told by time in the header; how
        // the process ended is told here.
        if let Some((status, true)) = &o.sched_exit {
            let _ = writeln!(s, "scheduler: {status}");
        }
        let _ = writeln!(s, "vm: {} after {:.1}s", o.vm.exit, o.vm.wall.as_secs_f64());
        if !o.vm.start.is_empty() {
            let _ = writeln!(s, "vm start: {}", o.vm.start);
        }
        match &o.vm.vcpu_registers {
            Some(Ok(cpus)) => {
                let _ = writeln!(s, "vcpus at the limit (QMP):");
                for c in cpus {
                    let r = |n: &str| c.regs.get(n).map_or("?", String::as_str);
                    let _ = writeln!(
                        s,
                        "  cpu{}: RIP={} RSP={} CPL={} HLT={}",
                        c.cpu,
                        r("RIP"),
                        r("RSP"),
                        r("CPL"),
                        r("HLT")
                    );
                }
            }
            Some(Err(e)) => {
                let _ = writeln!(s, "vcpus at the limit: not read ({e})");
            }
            None => {}
        }
        if let Some(fault) = &o.vm.retried_after {
            let _ = writeln!(s, "rerun once: {fault}");
        }
        if o.vm.boot_retries > 0 {
            let _ = writeln!(s, "boot retried {} time(s) after stalling before init", o.vm.boot_retries);
        }
        if let Some(rel) = &o.kernel_release {
            let _ = writeln!(s, "kernel: {rel}");
        }
        if !o.vm.qemu_log.trim().is_empty() {
            let _ = writeln!(s, "qemu: {}", o.vm.qemu_log.trim());
        }
        // The crash itself, wherever it is in the console: a tail may have
        // scrolled past it (nested faults, a long call trace).
        if let Some(k) = &o.kernel_crash {
            let _ = writeln!(s, "kernel crash:");
            for l in &k.excerpt {
                let _ = writeln!(s, "  {l}");
            }
        }
        let tail = if verbose { usize::MAX } else { CONSOLE_TAIL };
        let lines: Vec<&str> = o.vm.console.lines().collect();
        let from = lines.len().saturating_sub(tail);
        let _ = writeln!(s, "kernel console (last {} of {} lines):", lines.len() - from, lines.len());
        for l in &lines[from..] {
            let _ = writeln!(s, "  {}", l.trim_end_matches('\r'));
        }
    }
    if let Some(st) = scenario {
        let h =
            timeline::TimelineHeader { topology: header.topology, scheduler: header.scheduler, scenario: &header.test };
        let _ = write!(s, "\n--- timeline ---\n{}", timeline::render(&h, st, o.monitor.as_ref()));
    }
    if !o.sched_log.is_empty() {
        s.push_str("\n--- scheduler log ---\n");
        for l in &crate::crash::collapse_cycles(&o.sched_log) {
            let _ = writeln!(s, "{l}");
        }
    }
    if let Some(m) = &o.monitor {
        let _ = write!(s, "\n--- monitor ---\n{}", monitor::render(m, &verdict.monitor));
    }
    if !o.sched_ext_dump.is_empty() {
        s.push_str("\n--- sched_ext dump ---\n");
        for l in &o.sched_ext_dump {
            let _ = writeln!(s, "{l}");
        }
    }
    s
}

#[cfg(test)]
pub(crate) use monitor::tests::fixture as monitor_fixture;

/// `RUST_BACKTRACE=1|full` asks for diagnostics on every failure.
pub fn verbose_requested() -> bool {
    matches!(std::env::var("RUST_BACKTRACE").as_deref(), Ok("1") | Ok("full")) || env_flag("KTSTR_VERBOSE")
}

pub fn env_flag(name: &str) -> bool {
    matches!(std::env::var(name).as_deref(), Ok(v) if !v.is_empty() && v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Checks;
    use crate::judge::judge;
    use crate::outcome::fixtures::{fixture, EXITED};

    fn header(sched: Option<&'static str>, topo: &str) -> ReportHeader<'static> {
        ReportHeader { test: "t".into(), scheduler: sched, topology: Topology::parse(topo).unwrap(), preset: None }
    }

    #[test]
    fn scheduler_failure_report_has_stage_exit_code_and_log() {
        let o = fixture("sched_exits_at_once", EXITED);
        let text = render(&header(Some("scx-ktstr"), "1n1l2c1t"), &o, &judge(&o, &Checks::DEFAULT), false);
        let expected_head = "ktstr_test 't' [sched=scx-ktstr] [topo=1n1l2c1t] failed:\n  \
             scheduler scx-ktstr exited before attaching (exit status: 2)\n\n--- diagnostics ---\n\
             stage: scheduler did not attach\nexit_code=1\nvm: QEMU exited with code 0 after 5.0s\n";
        assert!(text.starts_with(expected_head), "{text}");
        let log = text.split_once("\n--- scheduler log ---\n").expect("scheduler log section").1;
        assert!(log.starts_with("error: unexpected argument '--no-such-flag' found\n"), "{log}");
        // Quiet: the console's tail, not all of it.
        assert!(text.contains(&format!("kernel console (last {CONSOLE_TAIL} of ")), "{text}");
    }

    #[test]
    fn failed_checks_skip_diagnostics_unless_verbose() {
        let o = fixture("topology_mismatch", EXITED);
        let quiet = render(&header(None, "1n2l2c1t"), &o, &judge(&o, &Checks::DEFAULT), false);
        assert!(quiet.starts_with("ktstr_test 't' [topo=1n2l2c1t] failed:\n  cpu0: thread_siblings_list 0, want 0-1\n"));
        assert!(!quiet.contains("--- diagnostics ---"), "{quiet}");
        let verbose = render(&header(None, "1n2l2c1t"), &o, &judge(&o, &Checks::DEFAULT), true);
        assert!(verbose.contains("\n--- diagnostics ---\nstage: result received\nexit_code=0\n"), "{verbose}");
    }

    #[test]
    fn pass_line_names_kernel_attach_and_vm_time() {
        let o = fixture("topology_mismatch", EXITED);
        assert_eq!(
            render_pass(&header(None, "1n2l2c1t"), &o),
            "ktstr_test 't' [topo=1n2l2c1t] passed: kernel 7.3.4+deb13-cloud-amd64, VM 5.0s"
        );
    }

    /// A real two-step scenario (captured), failing a rate floor: the
    /// spec's sections in the spec's order and line shapes.
    #[test]
    fn scenario_failure_has_stats_and_timeline_in_spec_shapes() {
        let floor = Checks { min_iteration_rate: Some(1e9), ..Checks::DEFAULT };
        let o = fixture("scenario_rate_floor", EXITED);
        let text = render(&header(None, "1n1l2c1t"), &o, &judge(&o, &floor), false);
        let lines: Vec<&str> = text.lines().collect();
        let re = |p: &str| regex::Regex::new(p).unwrap();
        assert_eq!(lines[0], "ktstr_test 't' [topo=1n1l2c1t] failed:");
        let detail = re(r"^  worker \d+ iteration rate \d+\.\d/s below floor 1000000000\.0/s$");
        let details = lines[1..].iter().take_while(|l| l.starts_with("  ")).count();
        assert_eq!(details, 4, "one rate line per worker (cg_a 1, cg_b 1, cg_c 2):\n{text}");
        assert!(lines[1..=details].iter().all(|l| detail.is_match(l)), "{text}");
        // Sections, in order; no diagnostics for a failed check unless asked.
        let at = |h: &str| lines.iter().position(|l| *l == h);
        let (stats, timeline) = (at("--- stats ---").unwrap(), at("--- timeline ---").unwrap());
        assert!(stats < timeline && at("--- diagnostics ---").is_none(), "{text}");
        assert!(re(r"^4 workers, \d+ cpus, \d+ migrations, worst_spread=\d+\.\d%, worst_gap=\d+ms$")
            .is_match(lines[stats + 1]));
        let cg = re(r"^cg[0-2]: workers=[12] cpus=\d+ spread=\d+\.\d% gap=\d+ms migrations=\d+ iter=[1-9]\d*$");
        for l in &lines[stats + 2..stats + 5] {
            assert!(cg.is_match(l), "{l}\n{text}");
        }
        assert!(
            re(r"^topology: 1n1l2c1t \(2 cpus\) scheduler: eevdf scenario: t duration: \d+\.\ds$")
                .is_match(lines[timeline + 1]),
            "{text}"
        );
        let phase = re(r"^Phase ([12]): StepStart\[([01])\] ops=([02]) \(\d+ms\):$");
        let phases: Vec<(String, String, String)> = lines
            .iter()
            .filter_map(|l| phase.captures(l))
            .map(|c| (c[1].to_string(), c[2].to_string(), c[3].to_string()))
            .collect();
        assert_eq!(phases, [("1".into(), "0".into(), "0".into()), ("2".into(), "1".into(), "2".into())], "{text}");
        let per_cg = re(
            r"^cg_[abc]: off-cpu avg=\d+\.\d% min=\d+\.\d% max=\d+\.\d% spread=\d+\.\d% \| run-delay mean=\d+µs worst=\d+µs \| iters=\d+ migrations=\d+ \| gap=\d+ms@cpu\d+$",
        );
        let names: Vec<&str> = lines.iter().filter(|l| per_cg.is_match(l)).map(|l| &l[..4]).collect();
        assert_eq!(names, ["cg_a", "cg_b", "cg_a", "cg_c"], "{text}");
        assert!(
            text.contains(
                ">>> StepStart[0]: ops=0 (2 cgroups, 2 workers)\n>>> StepStart[1]: ops=2 (2 cgroups, 3 workers)\n"
            ),
            "{text}"
        );
        // Without a floor, the same run passes: the verdict is the host's.
        assert!(judge(&o, &Checks::DEFAULT).passed());
    }

    /// `--- monitor ---` sits between the scheduler log and the sched_ext
    /// dump (spec 003's order), and its violations are detail lines.
    #[test]
    fn monitor_block_follows_the_scheduler_log() {
        let mut o = fixture("sched_exits_at_once", EXITED);
        o.sched_ext_dump = vec!["sched_ext_dump: (a line)".into()];
        let m = monitor::tests::fixture("fair_two_cgroups");
        // The real samples' imbalance is above 1.0 for at most 2 samples in
        // a row (+3101 and +3209 ms; 2 both times).
        let checks = Checks { max_imbalance_ratio: Some(1.0), sustained_samples: Some(2), ..Checks::DEFAULT };
        o.monitor = Some(m);
        let three = judge(&o, &Checks { sustained_samples: Some(3), ..checks });
        assert!(three.monitor.failures.is_empty(), "3 in a row never happened");
        let text = render(&header(Some("scx-ktstr"), "1n1l2c1t"), &o, &judge(&o, &checks), false);
        let at = |h: &str| text.find(h).unwrap_or_else(|| panic!("no {h} in {text}"));
        assert!(at("\n--- scheduler log ---\n") < at("\n--- monitor ---\nsamples=33 "), "{text}");
        assert!(at("\n--- monitor ---\n") < at("\n--- sched_ext dump ---\n"), "{text}");
        let detail = "  monitor: imbalance (max/min nr_running over CPUs) 2 for 2 samples from +3101ms \
                      (max_imbalance_ratio 1.00, sustained_samples 2)";
        assert!(text.lines().any(|l| l == detail), "{text}");
        assert!(text.contains(&format!("\nverdict: {}\n", detail.trim())), "{text}");
    }

    /// The guest is untrusted: absurd figures render, they do not panic.
    #[test]
    fn hostile_stats_do_not_panic() {
        use crate::scenario::{CgroupStats, PhaseStats, ScenarioStats};
        use crate::workload::WorkerReport;
        let w = WorkerReport {
            pid: 1,
            iterations: u64::MAX,
            wall_ns: u64::MAX,
            run_ns: u64::MAX,
            run_delay_ns: u64::MAX,
            timeslices: 1,
            migrations: u64::MAX,
            max_gap_ns: u64::MAX,
            max_gap_at_ns: u64::MAX,
            cpus: vec![u32::MAX],
            ..Default::default()
        };
        let cg = CgroupStats { name: "cg".into(), cpuset: Some(vec![]), workers: vec![w.clone(), w] };
        let phase = PhaseStats { step: usize::MAX, ops: usize::MAX, duration_ms: u64::MAX, cgroups: vec![cg] };
        let stats = ScenarioStats {
            phases: vec![phase.clone(), phase],
            setup_ms: None,
            watchdog: None,
            scheduler_gone: Some((7, 1)),
        };
        let all = Checks {
            not_starved: Some(true),
            max_gap_ms: Some(u64::MAX),
            max_spread_pct: Some(0.0),
            min_iteration_rate: Some(f64::MAX),
            ..Checks::NONE
        };
        let _ = crate::check::evaluate(&stats, &all);
        let text = stats::render(&stats);
        assert!(text.starts_with("1 workers, 1 cpus, 18446744073709551615 migrations"), "{text}");
        let h = timeline::TimelineHeader { topology: Topology::new(1, 1, 1, 1), scheduler: None, scenario: "s" };
        assert!(timeline::render(&h, &stats, None).contains(">>> scheduler left sched_ext"));
        let m = monitor::tests::fixture("fair_two_cgroups");
        assert!(timeline::render(&h, &stats, Some(&m)).contains(", 0 samples):\nimbalance: avg=0.0 max=0.0 "));
    }
}
