//! The fixture scheduler's fault knobs do what they claim, in a real guest
//! under the real scheduler. The `payload_*` tests are the guest halves:
//! ignored on their own, run here with the knob's flag through
//! `run_ktstr_test_with`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ktstr::outcome::RunOutcome;
use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, KtstrFailure, RunOptions};

mod common;
use common::{scheduler_pid, spinners_run_ns};

/// A spinner must run at least this much of a 1 s window to count as running.
const RUNNING_NS: u64 = 250_000_000;

#[ktstr_test(scheduler = SCX_KTSTR)]
#[ignore = "guest half of stall_parks_only_ktstr_workers and stall_off_runs_ktstr_workers"]
fn payload_stall_probe(_ctx: &Ctx) -> Result<AssertResult> {
    // What to expect follows from what the scheduler was actually told.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", scheduler_pid()?))?;
    let stall = cmdline.split(|b| *b == 0).any(|arg| arg == b"--stall");
    let (worker_ns, other_ns) = spinners_run_ns()?;
    let (worker_ms, other_ms) = (worker_ns / 1_000_000, other_ns / 1_000_000);
    let mut r = AssertResult::pass();
    r.check(other_ns >= RUNNING_NS, || {
        format!("the spin-other child ran {other_ms} ms in 1 s, want >= 250 (stall={stall} must not stop it)")
    });
    if stall {
        r.check(worker_ns == 0, || format!("with --stall the ktstr-worker child ran {worker_ms} ms in 1 s, want 0"));
    } else {
        r.check(worker_ns >= RUNNING_NS, || {
            format!("without --stall the ktstr-worker child ran {worker_ms} ms in 1 s, want >= 250")
        });
    }
    Ok(r)
}

#[ktstr_test(scheduler = SCX_KTSTR)]
#[ignore = "guest half of sigusr2_ends_the_scheduler_with_a_debug_dump"]
fn payload_sigusr2(_ctx: &Ctx) -> Result<AssertResult> {
    let pid = scheduler_pid()?;
    // SAFETY: plain kill(2) on a pid we just read.
    unsafe { libc::kill(pid, libc::SIGUSR2) };
    let wait_until = |what: &str, done: &dyn Fn() -> bool| -> Result<()> {
        let start = Instant::now();
        while !done() {
            ensure!(start.elapsed() < Duration::from_secs(5), "{what} within 5 s of SIGUSR2");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    };
    wait_until("sched_ext was still enabled", &|| {
        std::fs::read_to_string("/sys/kernel/sched_ext/state").is_ok_and(|s| s.trim() != "enabled")
    })?;
    // Its exit report must be complete before the harness looks: wait
    // until the process is gone (a zombie: PID 1 reaps it later).
    wait_until("scx-ktstr had not exited", &|| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
            .unwrap_or(true)
    })?;
    // The function passes: the harness must report the scheduler's death.
    Ok(AssertResult::pass())
}

/// The failure detail `payload_spin_rate` carries its figure out in.
const RATE_PREFIX: &str = "spin rate: ";

#[ktstr_test(scheduler = SCX_KTSTR)]
#[ignore = "guest half of slow_dispatch_cuts_a_spinners_throughput: always fails, carrying its figure"]
fn payload_spin_rate(_ctx: &Ctx) -> Result<AssertResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let spinner = std::thread::spawn(move || {
        let mut n = 0u64;
        while !flag.load(Ordering::Relaxed) {
            n += 1;
        }
        n
    });
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let iters = spinner.join().unwrap();
    let rate = iters as f64 / start.elapsed().as_secs_f64();
    // AssertResult has no place for a measurement: a failure detail does.
    Ok(AssertResult::fail(format!("{RATE_PREFIX}{rate:.0} iterations/s")))
}

fn run(payload: &str, sched_args: &[&str]) -> Result<RunOutcome, KtstrFailure> {
    let entry = find_test(payload).expect("payload registered");
    let opts = RunOptions {
        extra_sched_args: Some(sched_args.iter().map(|s| s.to_string()).collect()),
        auto_repro: Some(false),
        ..Default::default()
    };
    let res = run_ktstr_test_with(entry, &opts);
    if let Err(f) = &res {
        eprintln!("{}", f.report);
        if let Some(dir) = &f.run_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    res
}

#[test]
fn stall_parks_only_ktstr_workers() {
    if let Err(f) = run("payload_stall_probe", &["--stall"]) {
        panic!("--stall: {:?}", f.reasons);
    }
}

#[test]
fn stall_off_runs_ktstr_workers() {
    if let Err(f) = run("payload_stall_probe", &[]) {
        panic!("without --stall: {:?}", f.reasons);
    }
}

#[test]
fn sigusr2_ends_the_scheduler_with_a_debug_dump() {
    let f = run("payload_sigusr2", &[]).expect_err("the scheduler's death must fail the run");
    assert_eq!(f.stage, "result received");
    // The death is timed while the payload runs; its status is a diagnostic.
    assert_eq!(f.reasons.len(), 1, "{:?}", f.reasons);
    let died =
        regex::Regex::new(r"^scheduler process died unexpectedly during workload \(\d+\.\ds into test\)$").unwrap();
    assert!(died.is_match(&f.reasons[0]), "{:?}", f.reasons);
    assert!(f.report.contains("\nscheduler: exit status: 1\n"), "{}", f.report);
    let log = f.outcome.as_ref().unwrap().sched_log.join("\n");
    for want in [
        "scx-ktstr: SIGUSR2 from ktstr's watchdog: a task was stuck; ending the scheduler with a debug dump",
        "DEBUG DUMP",
        "ktstr watchdog: a task was stuck (scx-ktstr got SIGUSR2)",
        // The kernel ended it (not the loader's fallback detach).
        "EXIT: scx_bpf_error (",
        "ktstr scheduler state:",
        "stall=0 crash=0 degrade_rt=0 watchdog_exit=1",
        "rodata: slow=0 fail_init=0 slice_us=20000",
    ] {
        assert!(log.contains(want), "scheduler log lacks `{want}`:\n{log}");
    }
}

/// Runs `payload_spin_rate` and reads its figure from the failure detail.
fn spin_rate(sched_args: &[&str]) -> f64 {
    let f = run("payload_spin_rate", sched_args).expect_err("payload_spin_rate always fails");
    // Only the figure: anything else (a dead scheduler) is a real failure.
    assert_eq!(f.reasons.len(), 1, "{:?}", f.reasons);
    let figure = f.reasons[0].strip_prefix(RATE_PREFIX).and_then(|r| r.strip_suffix(" iterations/s"));
    figure.and_then(|r| r.parse().ok()).unwrap_or_else(|| panic!("no spin rate in {:?}", f.reasons))
}

#[test]
fn slow_dispatch_cuts_a_spinners_throughput() {
    let normal = spin_rate(&[]);
    let slow = spin_rate(&["--slow"]);
    eprintln!("spin rate: {normal:.0}/s normally, {slow:.0}/s with --slow: {:.1}x slower", normal / slow);
    assert!(normal > 0.0, "the spinner made no progress even without --slow");
    assert!(slow < normal / 2.0, "--slow cut the spin rate only from {normal:.0}/s to {slow:.0}/s, want < half");
}
