//! The guest runtime: the test binary running as PID 1 inside the VM.
//!
//! Stages, each reported to the host as it is reached: mount the
//! filesystems, open the channel, read the plan, start the scheduler and
//! wait for it to attach, run the test function, report, power off.

mod bpf_state;
pub mod map_write;
mod monitor;
mod mounts;
mod probe;
mod reporter;
mod scheduler;
mod shell;

use std::time::Duration;

use crate::channel::{GuestMessage, GuestStep, Stage};
use crate::scenario::Ctx;
use crate::wire::plan::GuestPlan;
use crate::wire::AssertResult;
use reporter::Reporter;

/// A test function, as `#[ktstr_test]` registers it.
pub(crate) type TestFn = fn(&Ctx) -> anyhow::Result<AssertResult>;

/// Called before `main` by every `#[ktstr_test]` binary. On the host it
/// returns at once; as PID 1 in a ktstr guest it runs the plan and never
/// returns. `find` looks the plan's test up in the binary's registry (the
/// registry is the test harness's, above this runtime: it is handed down).
pub(crate) fn maybe_run_as_init(find: fn(&str) -> Option<TestFn>) {
    if std::process::id() != 1 || !std::path::Path::new(GuestPlan::PATH).exists() {
        return;
    }
    let code = run(find);
    power_off(code)
}

fn run(find_test: fn(&str) -> Option<TestFn>) -> i32 {
    let mount_errors = mounts::mount_all();
    let reporter = match Reporter::open() {
        Ok(r) => r,
        Err(e) => {
            // Without a channel the host can only read the console.
            eprintln!("ktstr-init: cannot open channel: {e:#}");
            return 70;
        }
    };
    reporter.send(&GuestMessage::Stage(Stage::InitStarted { kernel_release: kernel_release() }));
    for e in mount_errors {
        reporter.error(GuestStep::Mounts, e);
    }
    let plan: GuestPlan = match std::fs::read(GuestPlan::PATH)
        .map_err(anyhow::Error::from)
        .and_then(|b| serde_json::from_slice(&b).map_err(Into::into))
    {
        Ok(p) => p,
        Err(e) => return reporter.fail(GuestStep::Plan, format!("cannot read {}: {e:#}", GuestPlan::PATH)),
    };
    let Some(func) = find_test(&plan.test_name) else {
        return reporter.fail(GuestStep::Plan, format!("test `{}` is not registered in this binary", plan.test_name));
    };

    // The symbol lookup loads a BPF program: done while the scheduler
    // starts, off the path to the workload.
    let symbols = plan.monitor.then(|| std::thread::spawn(monitor::lookup_symbols));
    // Likewise the parts of auto-repro's probes that do not depend on the
    // scheduler's programs.
    let preload = plan.probes.as_ref().filter(|_| plan.scheduler.is_some()).map(probe::preload);
    let mut sched = None;
    if let Some(launch) = &plan.scheduler {
        match scheduler::start(launch, &reporter, Duration::from_secs(plan.attach_timeout_s)) {
            Ok(s) => sched = Some(s),
            Err(e) => match &plan.shell {
                // A shell goes on without it: the failure is worth poking at.
                Some(shell) => {
                    reporter.error(GuestStep::Scheduler, format!("{e:#}"));
                    return shell::session(&plan, shell, Err(format!("{e:#}")), reporter);
                }
                None => return reporter.fail(GuestStep::Scheduler, format!("{e:#}")),
            },
        }
    }
    // `cargo ktstr shell`: the user's commands instead of the test function.
    if let Some(shell) = &plan.shell {
        return shell::session(&plan, shell, Ok(sched), reporter);
    }

    // Held before anything can fail, so a post-mortem outlives the scheduler.
    let held = sched.as_ref().map(|s| std::sync::Arc::new(bpf_state::hold(s.pid())));
    // Auto-repro's probes go on before the workload, so the path to the
    // crash is recorded from its start.
    let probes = plan.probes.as_ref().zip(preload).filter(|_| sched.is_some()).map(|(p, pre)| probe::start(p, pre));
    if let Some(t) = symbols {
        let mut syms = t.join().unwrap_or_else(|_| crate::wire::monitor::KernelSymbols {
            error: Some("the symbol lookup thread panicked".into()),
            ..Default::default()
        });
        syms.counters_off = monitor::enable_counters();
        reporter.send(&GuestMessage::KernelSymbols(syms));
    }
    let bpf_before = (plan.monitor && sched.is_some()).then(monitor::bpf_snapshot);
    reporter.send(&GuestMessage::Stage(Stage::PayloadStarted));
    let payload_start = std::time::Instant::now();
    let watch = sched.as_ref().map(|s| s.watch(reporter, payload_start));
    let payload_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if sched.is_some() && plan.hang_dump_after_s > 0 {
        let (done, after) = (payload_done.clone(), Duration::from_secs(plan.hang_dump_after_s));
        let held = held.clone();
        std::thread::spawn(move || {
            if scheduler::dump_if_hung(&reporter, &done, after) {
                if let Some(h) = held {
                    reporter
                        .send(&GuestMessage::FailureDump(Box::new(h.dump("payload hung", after.as_millis() as u64))));
                }
            }
        });
    }
    if !plan.map_writes.is_empty() {
        let writes = plan.map_writes.clone();
        std::thread::spawn(move || apply_map_writes(&writes, reporter));
    }
    let ctx = Ctx {
        test_name: plan.test_name.clone(),
        topology: plan.topology,
        scheduler: plan.scheduler.as_ref().map(|s| s.name.clone()),
        scheduler_pid: sched.as_ref().map(|s| s.pid()),
        duration: Duration::from_secs(plan.duration_s),
        payload_start_ns: crate::workload::monotonic_ns(),
        repro: plan.repro,
    };
    let verdict = match std::thread::spawn(move || func(&ctx)).join() {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => AssertResult::fail(format!("test returned an error: {e:#}")),
        Err(p) => AssertResult::fail(format!("test panicked: {}", panic_text(&p))),
    };
    payload_done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(before) = &bpf_before {
        reporter.send(&GuestMessage::BpfStats(monitor::bpf_stats(before)));
    }
    // A scheduler that died under the workload fails the test, whatever
    // the function said.
    let died = match (sched.as_mut(), watch) {
        (Some(s), Some(w)) => s.check_alive_after_payload(&reporter, w, payload_start),
        _ => false,
    };
    if let Some(h) = held.as_ref().filter(|_| died || !verdict.passed) {
        let taken = if died { "scheduler exited" } else { "test failed" };
        let at = payload_start.elapsed().as_millis() as u64;
        reporter.send(&GuestMessage::FailureDump(Box::new(h.dump(taken, at))));
    }
    if let Some(p) = probes {
        reporter.send(&GuestMessage::ProbeTrail(Box::new(p.finish())));
    }
    reporter.send(&GuestMessage::TestResult(verdict));
    if let Some(s) = sched {
        s.stop();
    }
    0
}

/// Once the workload runs (or, for a body that starts no scenario, after
/// a few seconds at most), writes each value into the scheduler's maps; a
/// write that cannot be made fails the test with the reason.
fn apply_map_writes(writes: &[crate::wire::plan::MapWrite], reporter: Reporter) {
    use std::sync::atomic::Ordering;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !crate::scenario::WORKLOAD_RUNNING.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the workers reach the scheduler's paths first.
    std::thread::sleep(Duration::from_millis(300));
    for w in writes {
        if let Err(e) = map_write::apply(w) {
            reporter.error(GuestStep::MapWrite, format!("bpf_map_write {} {} = {}: {e:#}", w.map, w.var, w.value));
        }
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

fn kernel_release() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

fn power_off(code: i32) -> ! {
    reporter::send_exit(code);
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // reboot() only returns on failure; PID 1 exiting panics the kernel,
    // which (panic=-1, -no-reboot) also ends the VM.
    std::process::exit(code)
}
