//! Each way a run can go wrong is told apart, in words, with the stage it
//! reached. The `payload_*` tests are the guest halves: ignored on their
//! own, run here with overrides through `run_ktstr_test_with`.

use ktstr::kernel::{self, FetchOptions};
use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, KtstrFailure, RunOptions};
use ktstr::vm::VmExit;

#[ktstr_test(scheduler = SCX_KTSTR)]
#[ignore = "guest half of the error-path tests below"]
fn payload_under_scx_ktstr(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

/// A scheduler binary that is not there.
const MISSING_SCHED: Scheduler = Scheduler::path("scx-missing", "/nonexistent/scx-missing");

/// A real program that runs but never attaches a sched_ext scheduler.
const NEVER_ATTACHES: Scheduler = Scheduler::path("sleep-not-a-scheduler", "/bin/sleep").args(&["3600"]);

#[ktstr_test(scheduler = MISSING_SCHED)]
#[ignore = "guest half of missing_scheduler_binary_is_reported"]
fn payload_missing_sched(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

#[ktstr_test(scheduler = NEVER_ATTACHES)]
#[ignore = "guest half of scheduler_that_never_attaches_is_reported"]
fn payload_never_attaches(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

#[ktstr_test(scheduler = SCX_KTSTR)]
#[ignore = "guest half of scheduler_death_during_the_workload_fails_the_test"]
fn payload_kills_scheduler(_ctx: &Ctx) -> Result<AssertResult> {
    // Finds the scheduler among the guest's processes and SIGKILLs it.
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if let (true, Ok(pid)) = (comm.trim() == "scx-ktstr", entry.file_name().to_string_lossy().parse::<i32>()) {
            // SAFETY: plain kill(2) on a pid we just read.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed += 1;
        }
    }
    ensure!(killed == 1, "found {killed} scx-ktstr processes, want 1");
    std::thread::sleep(Duration::from_secs(1));
    // The function itself passes: the harness must notice the death.
    Ok(AssertResult::pass())
}

#[ktstr_test(scheduler = SCX_KTSTR, duration_s = 1)]
#[ignore = "guest half of guest_that_never_powers_off_hits_the_limit: never returns"]
fn payload_hangs(_ctx: &Ctx) -> Result<AssertResult> {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[ktstr_test]
#[ignore = "guest half of kernel_panic_is_reported: crashes the guest kernel"]
fn payload_panics_kernel(_ctx: &Ctx) -> Result<AssertResult> {
    std::fs::write("/proc/sysrq-trigger", "c")?;
    std::thread::sleep(Duration::from_secs(60));
    Ok(AssertResult::fail("the kernel survived sysrq-c"))
}

/// Writes, through the kernel's log, the lines of an oops QEMU's TCG can
/// cause (`int3` trapped on bytes that hold none; see
/// `KernelCrash::stale_int3`), as a real one reads on the console.
#[ktstr_test]
#[ignore = "guest half of an_emulator_fault_reruns_the_vm_once"]
fn payload_logs_a_stale_int3(_ctx: &Ctx) -> Result<AssertResult> {
    for line in [
        "Oops: int3: 0000 [#1] SMP NOPTI",
        "RIP: 0010:sched_tick+0xbc/0x250",
        "Code: 48 89 df e8 25 f4 03 00 0f <1f> 44 00 00 4c 89 ef",
        "Call Trace:",
        "---[ end trace 0000000000000000 ]---",
    ] {
        // <2>: critical, so the quiet console prints it.
        std::fs::write("/dev/kmsg", format!("<2>{line}\n"))?;
    }
    Ok(AssertResult::pass())
}

fn run_expect_failure(payload: &str, opts: RunOptions) -> KtstrFailure {
    // These pin how failures are reported; replaying them is auto-repro's
    // own tests' business (crash.rs), and a second VM each would double them.
    let opts = RunOptions { auto_repro: opts.auto_repro.or(Some(false)), ..opts };
    let entry = find_test(payload).expect("payload registered");
    match run_ktstr_test_with(entry, &opts) {
        Ok(_) => panic!("{payload} passed, but this run must fail"),
        Err(f) => {
            eprintln!("{}", f.report);
            // Kept for a real failure; here the failure is the expectation.
            if let Some(dir) = &f.run_dir {
                // How ktstr/tests/fixtures/qmp/ was captured.
                if let Some(to) = std::env::var_os("KTSTR_CRASH_CAPTURE_DIR") {
                    let _ = std::fs::copy(
                        dir.join("vcpu-registers.txt"),
                        std::path::PathBuf::from(to).join("info_registers.txt"),
                    );
                }
                let _ = std::fs::remove_dir_all(dir);
            }
            f
        }
    }
}

/// Debian's 6.12 cloud kernel: built without sched_ext.
fn kernel_without_sched_ext() -> kernel::KernelImage {
    let opts = FetchOptions { suite: "trixie".into(), allow_without_sched_ext: true, ..Default::default() };
    kernel::fetch(&opts).expect("fetching Debian's 6.12 kernel (needs apt-get and the Debian archive)")
}

#[test]
fn kernel_without_sched_ext_is_refused_before_boot() {
    let k = kernel_without_sched_ext();
    let f = run_expect_failure(
        "payload_under_scx_ktstr",
        RunOptions { kernel: Some(k.vmlinuz.display().to_string()), ..Default::default() },
    );
    assert_eq!(f.stage, "kernel check (no VM was booted)");
    // Not the scheduler's fault: labelled so, in one line.
    assert!(
        f.reasons[0].starts_with(&format!(
            "{}kernel {} has no sched_ext (CONFIG_SCHED_CLASS_EXT is not set",
            ktstr::judge::HARNESS_FAULT,
            k.release
        )),
        "{:?}",
        f.reasons
    );
    assert_eq!(f.reasons.len(), 1, "{:?}", f.reasons);
    assert!(f.report.contains("ktstr_test 'payload_under_scx_ktstr' [sched=scx-ktstr] [topo=1n1l2c1t] failed:"));
}

#[test]
fn kernel_without_sched_ext_is_reported_by_the_guest() {
    // Without its config beside it the host cannot tell; the guest must.
    let k = kernel_without_sched_ext();
    let dir = std::env::temp_dir().join(format!("ktstr-bare-kernel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bare = dir.join("bzImage");
    std::fs::copy(&k.vmlinuz, &bare).unwrap();
    let f = run_expect_failure(
        "payload_under_scx_ktstr",
        RunOptions { kernel: Some(bare.display().to_string()), ..Default::default() },
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(f.stage, "scheduler did not attach");
    assert_eq!(
        f.reasons[0],
        format!(
            "{}the guest kernel has no sched_ext, so no scheduler can run on it (stage reached: scheduler did not attach)",
            ktstr::judge::HARNESS_FAULT
        )
    );
    assert!(f.reasons.iter().any(|r| r.contains("this kernel has no sched_ext")), "{:?}", f.reasons);
    assert_eq!(f.outcome.unwrap().kernel_release.as_deref(), Some(k.release.as_str()));
}

#[test]
fn scheduler_that_exits_at_once_is_reported() {
    let f = run_expect_failure(
        "payload_under_scx_ktstr",
        RunOptions { extra_sched_args: Some(vec!["--no-such-flag".into()]), ..Default::default() },
    );
    assert_eq!(f.stage, "scheduler did not attach");
    assert!(
        f.reasons.iter().any(|r| r == "scheduler scx-ktstr exited before attaching (exit status: 2)"),
        "{:?}",
        f.reasons
    );
    // Its own words reach the report's scheduler log.
    assert!(f.report.contains("--- scheduler log ---"), "{}", f.report);
    assert!(f.report.contains("unexpected argument '--no-such-flag'"), "{}", f.report);
}

#[test]
fn guest_that_never_powers_off_hits_the_limit() {
    let f = run_expect_failure("payload_hangs", RunOptions::default());
    let outcome = f.outcome.as_ref().unwrap();
    assert!(matches!(outcome.vm.exit, VmExit::TimedOut { .. }), "{:?}", outcome.vm.exit);
    assert_eq!(f.stage, "payload started but produced no test result");
    assert!(f.reasons[0].contains("wall-clock limit"), "{:?}", f.reasons);
    assert!(f.report.contains("--- diagnostics ---\nstage: payload started but produced no test result"));
    // Before the kill, the guest took a dump on demand.
    assert!(f.reasons.iter().any(|r| r.contains("took a sched_ext dump on demand")), "{:?}", f.reasons);
    assert!(
        outcome.sched_ext_dump.iter().any(|l| l.contains("ktstr scheduler state:")),
        "{:?}",
        outcome.sched_ext_dump
    );
    assert!(f.report.contains("\n--- sched_ext dump ---\n"), "{}", f.report);
    // Where each vCPU was when the limit stopped it, from QEMU's monitor.
    let cpus = match &outcome.vm.vcpu_registers {
        Some(Ok(cpus)) => cpus,
        other => panic!("no vCPU registers at the limit: {other:?}"),
    };
    assert_eq!(cpus.len(), 2, "{cpus:?}");
    assert!(cpus.iter().all(|c| c.regs.get("RIP").is_some_and(|r| r.len() == 16)), "{cpus:?}");
    let vcpus = regex::Regex::new(r"\nvcpus at the limit \(QMP\):\n  cpu0: RIP=[0-9a-f]{16} RSP=").unwrap();
    assert!(vcpus.is_match(&f.report), "{}", f.report);
    // And the guest's post-mortem of the hung scheduler, taken before it.
    let dump = outcome.failure_dump.as_ref().expect("a failure dump for the hang");
    assert_eq!(dump.taken, "payload hung");
    assert!(dump.maps.iter().any(|m| m.name.ends_with(".bss") && m.typed), "{dump:?}");
}

#[test]
fn kernel_panic_is_reported() {
    let f = run_expect_failure("payload_panics_kernel", RunOptions::default());
    let outcome = f.outcome.as_ref().unwrap();
    assert!(matches!(outcome.vm.exit, VmExit::Exited { .. }), "QEMU must exit on panic, not time out");
    assert_eq!(f.stage, "payload started but produced no test result");
    assert!(f.reasons.iter().any(|r| r.starts_with("guest kernel panicked: sysrq triggered crash")), "{:?}", f.reasons);
    // The panic leads the report, and its call trace is shown whatever
    // the console tail holds.
    assert!(f.report.starts_with("BUG SUMMARY: kernel panic (sysrq triggered crash)\n"), "{}", f.report);
    let crash = &f.report[f.report.find("\nkernel crash:\n").expect("a kernel crash excerpt")..];
    assert!(crash.contains(" sysrq_handle_crash+0x"), "{}", f.report);
}

#[test]
fn missing_scheduler_binary_is_reported() {
    let f = run_expect_failure("payload_missing_sched", RunOptions::default());
    assert_eq!(f.stage, "scheduler binary (no VM was booted)");
    assert_eq!(
        f.reasons,
        ["scheduler binary /nonexistent/scx-missing does not exist: build it there, or fix the path given to `Scheduler::path`"]
    );
}

#[test]
fn scheduler_that_never_attaches_is_reported() {
    let f = run_expect_failure("payload_never_attaches", RunOptions::default());
    assert_eq!(f.stage, "scheduler did not attach");
    assert!(
        f.reasons.iter().any(|r| r.starts_with("scheduler sleep-not-a-scheduler did not attach within 30s")),
        "{:?}",
        f.reasons
    );
    let outcome = f.outcome.unwrap();
    assert!(matches!(outcome.vm.exit, VmExit::Exited { .. }), "the guest reports and powers off by itself");
}

#[test]
fn boot_that_stalls_before_init_is_retried_once_then_reported() {
    // A deadline no boot can meet stands in for an early-boot hang: the
    // watchdog must kill the VM, retry once, and say what happened.
    let opts = RunOptions { boot_deadline: Some(Duration::from_millis(300)), ..Default::default() };
    let f = run_expect_failure("payload_under_scx_ktstr", opts);
    let outcome = f.outcome.as_ref().unwrap();
    assert!(matches!(outcome.vm.exit, VmExit::BootStalled { .. }), "{:?}", outcome.vm.exit);
    assert_eq!(outcome.vm.boot_retries, 1);
    // Not the scheduler's: the guest never spoke, so the harness is blamed first.
    assert!(
        f.reasons[0].starts_with("harness or host fault, not the scheduler's: the guest said nothing within 0.3s"),
        "{:?}",
        f.reasons
    );
    assert!(f.reasons[1].starts_with("guest boot stalled: init sent nothing within 0.3s"), "{:?}", f.reasons);
    assert!(f.report.contains("boot retried 1 time(s) after stalling before init"), "{}", f.report);
}

#[test]
fn an_emulator_fault_reruns_the_vm_once() {
    // An oops the kernel survives does not fail a test by itself: the
    // rerun logs the same lines and passes, saying it was a rerun.
    let entry = find_test("payload_logs_a_stale_int3").expect("payload registered");
    let outcome = run_ktstr_test_with(entry, &RunOptions::default()).expect("the payload passes");
    let want = "the guest kernel hit QEMU TCG's stale-code fault: kernel oops (int3 at sched_tick+0xbc/0x250)";
    assert_eq!(outcome.vm.retried_after.as_deref(), Some(want));
}

#[test]
fn scheduler_death_during_the_workload_fails_the_test() {
    let f = run_expect_failure("payload_kills_scheduler", RunOptions::default());
    assert_eq!(f.stage, "result received");
    // The death is timed while the payload runs; its status is a diagnostic.
    assert_eq!(f.reasons.len(), 1, "{:?}", f.reasons);
    let died =
        regex::Regex::new(r"^scheduler process died unexpectedly during workload \(\d+\.\ds into test\)$").unwrap();
    assert!(died.is_match(&f.reasons[0]), "{:?}", f.reasons);
    assert!(f.report.contains("\nscheduler: signal: 9 (SIGKILL)\n"), "{}", f.report);
    // A scheduler death always gets its diagnostics.
    assert!(f.report.contains("--- diagnostics ---\nstage: result received\n"), "{}", f.report);
}
