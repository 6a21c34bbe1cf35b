//! The host-side monitor in real VMs: its figures, read from guest RAM by
//! the host, against the kernel's own counters read inside the guest.
//! The `payload_*` tests are the guest halves (ignored on their own): they
//! pass their readings back as detail lines of a passing result.

use std::time::Instant;

use ktstr::monitor::MonitorReport;
use ktstr::outcome::RunOutcome;
use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, RunOptions};

mod common;
use common::{run_passing, spawn_spinner};

const EVENTS: &str = "/sys/kernel/sched_ext/root/events";
/// Spinners on the 2-CPU guest: more than CPUs, so queues form.
const SPINNERS: usize = 3;

/// `running` of /proc/loadavg: the kernel's sum of every CPU's
/// `rq->nr_running` (the reader itself included: it is running).
fn loadavg_running() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/loadavg")?;
    let field = s.split_whitespace().nth(3).unwrap_or_default();
    Ok(field.split('/').next().unwrap_or_default().parse()?)
}

#[ktstr_test(scheduler = SCX_KTSTR, duration_s = 4)]
#[ignore = "guest half of monitor_figures_match_the_kernels_own"]
fn payload_monitor_crosscheck(_ctx: &Ctx) -> Result<AssertResult> {
    let pids: Vec<i32> = (0..SPINNERS).map(|_| spawn_spinner(c"ktstr-worker")).collect::<Result<_>>()?;
    let mut r = AssertResult::pass();
    std::thread::sleep(Duration::from_millis(1000));
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        r.details.push(format!("running {}", loadavg_running()?));
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in pids {
        // SAFETY: plain kill(2) on our own children.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // A quiet moment on each side of the reading, so host samples taken
    // before and after it bracket the same counter values.
    std::thread::sleep(Duration::from_millis(500));
    for line in std::fs::read_to_string(EVENTS)?.lines() {
        r.details.push(format!("event {line}"));
    }
    // cpu<N> yld_count 0 sched_count sched_goidle ttwu_count ttwu_local
    // rq_cpu_time run_delay pcount (schedstat version 17).
    for line in std::fs::read_to_string("/proc/schedstat")?.lines().filter(|l| l.starts_with("cpu")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 9 {
            r.details.push(format!("schedstat {} goidle={} ttwu={} run_delay={}", &f[0][3..], f[4], f[5], f[8]));
        }
    }
    let stat = std::fs::read_to_string("/proc/stat")?;
    let ctxt = stat.lines().find_map(|l| l.strip_prefix("ctxt ")).unwrap_or_default();
    r.details.push(format!("ctxt {ctxt}"));
    std::thread::sleep(Duration::from_millis(500));
    Ok(r)
}

/// Two NUMA nodes, 4 GiB: node 1's RAM (and with it CPU 1's per-CPU
/// area and run queue) lies partly above 4 GiB, where `-M pc` moves what
/// does not fit below 3 GiB. No scheduler: EEVDF.
#[ktstr_test(numa_nodes = 2, llcs = 2, cores = 1, memory_mb = 4096, duration_s = 2)]
#[ignore = "guest half of monitor_reads_numa_nodes_and_high_memory"]
fn payload_monitor_numa(_ctx: &Ctx) -> Result<AssertResult> {
    let pids: Vec<i32> = (0..2).map(|_| spawn_spinner(c"spin")).collect::<Result<_>>()?;
    std::thread::sleep(Duration::from_millis(1500));
    for pid in pids {
        // SAFETY: plain kill(2) on our own children.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    Ok(AssertResult::pass())
}

fn monitor(o: &RunOutcome) -> &MonitorReport {
    let m = o.monitor.as_ref().expect("the monitor watched the run");
    assert_eq!(m.unavailable, None, "monitor unavailable; notes {:?}", m.notes);
    m
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Cross-checks, with their tolerances:
/// - nr_running, while SPINNERS spinners run: the fewest tasks the guest
///   saw (/proc/loadavg, less the reader, running while it reads) is
///   SPINNERS; the host's sum over CPUs of `rq.nr_running` is SPINNERS
///   at least in its median, and never fewer than SPINNERS - 1: the host
///   reads one CPU's run queue after another while the guest runs, so a
///   spinner moving between CPUs (off one queue, not yet on the other)
///   can be missed in one sample (one CI run saw a 2 among 3s and 4s).
///   Other guest threads (the reader between readings, the scheduler's
///   loader, init's watchers) wake now and then and wait behind the
///   spinners: the medians agree within 1 task.
/// - cumulative counters, read by the guest once after the workload in
///   a quiet second: SCX events (/sys/kernel/sched_ext/root/events),
///   schedstat per CPU (/proc/schedstat: sched_goidle, ttwu_count,
///   run_delay) and context switches (/proc/stat `ctxt`). Counters only
///   grow, so each guest value must lie between the host's sample taken
///   800 ms before the run's end (before the reading) and its last one
///   (after it): exact, no tolerance.
#[test]
fn monitor_figures_match_the_kernels_own() {
    let o = run_passing("payload_monitor_crosscheck");
    let m = monitor(&o);
    let details = &o.result.as_ref().unwrap().details;
    eprintln!("{} samples, symbols looked up in {:?} ms, notes {:?}", m.samples.len(), m.symbols_ms, m.notes);
    assert!(m.samples.len() >= 25, "{} samples in a ~4 s workload at 100 ms", m.samples.len());
    assert!(m.samples.iter().all(|s| s.cpus.len() == 2 && s.cpus.iter().all(Option::is_some)), "every rq read");

    // nr_running, while the spinners ran (1.0-2.5 s into the payload).
    let guest: Vec<u64> = details.iter().filter_map(|d| d.strip_prefix("running ")?.parse().ok()).collect::<Vec<_>>();
    let window = m.samples.iter().filter(|s| (1100..2400).contains(&s.at_ms));
    let host: Vec<u64> =
        window.map(|s| s.cpus.iter().flatten().map(|c| u64::from(c.nr_running)).sum()).collect::<Vec<_>>();
    eprintln!("nr_running sums: host {host:?}\nguest /proc/loadavg: {guest:?}");
    assert!(!host.is_empty() && !guest.is_empty());
    let n = SPINNERS as u64;
    assert!(host.iter().min() >= Some(&(n - 1)), "host: fewest tasks over CPUs, less one in flight: {host:?}");
    assert!(median(host.clone()) >= n, "host: median tasks over CPUs: {host:?}");
    assert_eq!(guest.iter().min().map(|g| g - 1), Some(n), "guest: fewest in /proc/loadavg less its reader");
    let (mh, mg) = (median(host.clone()), median(guest.clone()) - 1);
    assert!(mh.abs_diff(mg) <= 1, "medians: host {mh}, guest less its reader {mg}");
    assert!(m.samples.iter().all(|s| s.cpus.iter().flatten().all(|c| c.scx_nr_running <= c.nr_running)));

    // Events: names from BTF, values bracketing the kernel's own.
    let guest_events: Vec<(&str, u64)> = details
        .iter()
        .filter_map(|d| {
            let (name, v) = d.strip_prefix("event ")?.split_once(' ')?;
            Some((name, v.trim().parse().ok()?))
        })
        .collect();
    assert!(guest_events.len() >= 5, "{details:?}");
    let (before, after) = bracket(m);
    let (eb, ea) = (before.events.as_ref().expect("events before"), after.events.as_ref().expect("events after"));
    for (name, guest) in &guest_events {
        let Some(i) = m.event_names.iter().position(|n| n == name) else {
            panic!("the guest's events file has {name}, the host's BTF does not: {:?}", m.event_names)
        };
        within(name, eb[i], *guest, ea[i]);
    }
    assert!(ea.iter().sum::<u64>() > 0, "the spinners caused no SCX event at all: {:?}", m.event_names);

    // Schedstat, per CPU, and context switches summed.
    let mut cpus_seen = 0;
    for d in details.iter().filter_map(|d| d.strip_prefix("schedstat ")) {
        let mut f = d.split([' ', '=']);
        let cpu: usize = f.next().unwrap().parse().unwrap();
        let vals: Vec<u64> = f.skip(1).step_by(2).map(|v| v.parse().unwrap()).collect();
        let (b, a) = (before.cpus[cpu].as_ref().unwrap(), after.cpus[cpu].as_ref().unwrap());
        within(&format!("cpu{cpu} goidle"), b.goidle.unwrap(), vals[0], a.goidle.unwrap());
        within(&format!("cpu{cpu} ttwu"), b.ttwu.unwrap(), vals[1], a.ttwu.unwrap());
        within(&format!("cpu{cpu} run_delay"), b.run_delay_ns.unwrap(), vals[2], a.run_delay_ns.unwrap());
        cpus_seen += 1;
    }
    assert_eq!(cpus_seen, 2, "{details:?}");
    let ctxt: u64 = details.iter().find_map(|d| d.strip_prefix("ctxt ")?.parse().ok()).expect("ctxt");
    let csw = |s: &ktstr::monitor::sample::Sample| s.cpus.iter().flatten().map(|c| c.nr_switches.unwrap()).sum();
    within("context switches", csw(before), ctxt, csw(after));
}

/// The host's samples just before and just after the guest's reading.
fn bracket(m: &MonitorReport) -> (&ktstr::monitor::sample::Sample, &ktstr::monitor::sample::Sample) {
    let after = m.samples.last().unwrap();
    let before = m.samples.iter().rev().find(|s| s.at_ms + 800 <= after.at_ms).unwrap();
    (before, after)
}

fn within(what: &str, lo: u64, guest: u64, hi: u64) {
    eprintln!("{what}: host {lo} .. {hi}, guest {guest}");
    assert!(lo <= guest && guest <= hi, "{what}: guest {guest} outside the host's {lo}..{hi}");
}

/// The per-CPU translation holds on every node (the sampler checks each
/// CPU's `this_cpu_off` before trusting anything), and without a
/// sched_ext scheduler there are run queues but no event counters.
#[test]
fn monitor_reads_numa_nodes_and_high_memory() {
    let o = run_passing("payload_monitor_numa");
    let m = monitor(&o);
    assert!(m.samples.len() >= 10, "{} samples", m.samples.len());
    assert!(m.samples.iter().all(|s| s.cpus.len() == 2 && s.cpus.iter().all(Option::is_some)), "every rq read");
    assert!(m.samples.iter().all(|s| s.events.is_none()), "no scheduler, no events");
    // Both spinners ran on their own CPUs most of the time.
    let busy = m.samples.iter().filter(|s| s.cpus.iter().flatten().all(|c| c.nr_running >= 1)).count();
    assert!(busy * 2 >= m.samples.len(), "{busy} of {} samples with both CPUs busy", m.samples.len());
    assert!(m.bpf.is_none(), "no scheduler, no BPF figures");
}

/// Four spinning workers on the guest's two CPUs.
#[ktstr_test(scheduler = SCX_KTSTR, duration_s = 3, max_local_dsq_depth = 1, fail_on_stall = true)]
#[ignore = "guest half of piled_tasks_trip_max_local_dsq_depth and spread_tasks_pass_it"]
fn payload_monitor_dsq(ctx: &Ctx) -> Result<AssertResult> {
    execute_defs(ctx, vec![CgroupDef::named("cg").workers(4)])
}

/// Two workers the stall knob parks: runnable, never run.
#[ktstr_test(scheduler = SCX_KTSTR, duration_s = 4, fail_on_stall = true)]
#[ignore = "guest half of the_stall_knob_trips_stall_detection_before_any_watchdog"]
fn payload_monitor_stall(ctx: &Ctx) -> Result<AssertResult> {
    execute_defs(ctx, vec![CgroupDef::named("cg").workers(2)])
}

fn run_with(payload: &str, sched_args: &[&str]) -> Result<RunOutcome, ktstr::test_support::KtstrFailure> {
    let entry = find_test(payload).expect("payload registered");
    let opts = RunOptions {
        auto_repro: Some(false),
        extra_sched_args: Some(sched_args.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    run_ktstr_test_with(entry, &opts)
}

/// `--pile` queues every worker on CPU 0's local DSQ: 4 workers, one
/// running, 3 waiting, for the whole workload; max_local_dsq_depth = 1
/// fails, and nothing else does (the workers still all progress).
#[test]
fn piled_tasks_trip_max_local_dsq_depth() {
    let f =
        run_with("payload_monitor_dsq", &["--pile"]).expect_err("a 3-deep local DSQ must fail max_local_dsq_depth 1");
    eprintln!("{}", f.report);
    let line = regex::Regex::new(
        r"^monitor: cpu0 local DSQ depth ([2-9]) for (\d+) samples from \+\d+ms \(max_local_dsq_depth 1, sustained_samples 3\)$",
    )
    .unwrap();
    assert_eq!(f.reasons.len(), 1, "only the monitor fails: {:?}", f.reasons);
    let c = line.captures(&f.reasons[0]).unwrap_or_else(|| panic!("{:?}", f.reasons));
    assert!(c[2].parse::<usize>().unwrap() >= 15, "the pile lasts most of the 3 s workload: {}", &f.reasons[0]);
    // The block says it too, and its figures agree.
    let block = f.report.split("\n--- monitor ---\n").nth(1).expect("monitor block");
    assert!(block.contains(&format!("\nverdict: {}\n", f.reasons[0])), "{block}");
    let max = regex::Regex::new(r"max_dsq_depth=(\d+) ").unwrap().captures(block).unwrap()[1].parse::<u32>().unwrap();
    assert!(max >= 3, "{block}");
    // The timeline's phase carries the samples that fell in it, and their
    // figures: CPU 0 holding every worker (3 waiting), CPU 1 idle.
    let phase = regex::Regex::new(
        r"(?m)^Phase 1: StepStart\[0\] ops=0 \(\d+ms, (\d+) samples\):\nimbalance: avg=(\d+\.\d) max=\d+\.\d \| dsq: avg=(\d+) max=(\d+) \| nr_run: avg=\d+\.\d \| fallback: \d+/s \| keep_last: \d+/s \| throughput: [1-9]\d* iter/s \(stimulus-derived\)\nper-cgroup:$",
    )
    .unwrap();
    let c = phase.captures(&f.report).unwrap_or_else(|| panic!("{}", f.report));
    let figure = |i: usize| c[i].parse::<f64>().unwrap();
    assert!(figure(1) >= 20.0 && figure(2) >= 3.0 && figure(3) >= 1.0 && figure(4) >= 3.0, "{}", &c[0]);
}

/// The same workload spread by the scheduler as usual passes the same
/// threshold: the knob, not the threshold, made the difference.
#[test]
fn spread_tasks_pass_max_local_dsq_depth() {
    match run_with("payload_monitor_dsq", &[]) {
        Ok(o) => assert!(monitor(&o).samples.len() >= 20),
        Err(f) => panic!("{}", f.report),
    }
}

/// `--stall` parks the workers where nothing dispatches them. The
/// monitor names the stalled CPU once 3 samples in a row show it (~300 ms
/// after the workers are parked); ktstr's work-conservation watchdog ends
/// the scheduler after 2 s, the kernel's own sched_ext watchdog would
/// after 30 s (its default timeout).
#[test]
fn the_stall_knob_trips_stall_detection_before_any_watchdog() {
    let f = run_with("payload_monitor_stall", &["--stall"]).expect_err("a stall fails the run");
    let o = f.outcome.as_ref().unwrap();
    let line = regex::Regex::new(
        r"^monitor: cpu(\d) stalled: runnable tasks not run \(cpu idle or rq clock still\) for (\d+) samples from \+(\d+)ms \(fail_on_stall, sustained_samples 3\)$",
    )
    .unwrap();
    // Each of the 2 parked workers waits on a CPU: one line per stalled CPU.
    let from: Vec<u64> = f.reasons.iter().filter_map(|r| line.captures(r)).map(|c| c[3].parse().unwrap()).collect();
    assert!(!from.is_empty(), "{}", f.report);
    // The third sample in a row is when it counts.
    let detected_ms = from.iter().min().unwrap() + 2 * o.monitor.as_ref().unwrap().interval_ms;
    let died_ms = o.sched_exit_at_ms.expect("ktstr's watchdog ended the scheduler");
    eprintln!("stall detected by +{detected_ms}ms; scheduler ended at +{died_ms}ms; kernel watchdog: 30000ms");
    // How soon after the workers were parked depends on how long forking
    // them took (seconds on a loaded host): what matters is the order.
    assert!(detected_ms < died_ms, "the monitor saw it before the watchdog acted: {}", f.report);
    assert!(detected_ms < 30_000, "and before the kernel's watchdog would");
    // The other failures are the watchdog's and the scheduler's death,
    // reported independently.
    assert!(f.reasons.iter().any(|r| r.starts_with("work-conservation watchdog:")), "{}", f.report);
    let stuck = format!(" stuck={}\n", from.len());
    assert!(f.report.contains("\n--- monitor ---\n") && f.report.contains(&stuck), "{}", f.report);
}
