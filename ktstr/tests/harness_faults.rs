//! Faults of the harness or the host, produced for real, are labelled as
//! such in the report's first detail line with their cause, rerun once
//! where a rerun can help, and never reported as the scheduler's: QEMU
//! killed from outside, no free host CPU slot, a host out of disk space,
//! a guest kernel that panics before init (a corrupt initramfs).

use std::time::{Duration, Instant};

use ktstr::judge::{judge, HARNESS_FAULT};
use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, KtstrFailure, RunOptions};

#[ktstr_test(cores = 1)]
#[ignore = "the VM half of the QEMU-killed tests"]
fn payload_waits(_ctx: &Ctx) -> Result<AssertResult> {
    std::thread::sleep(Duration::from_secs(3));
    Ok(AssertResult::pass())
}

mod common;

/// Kills the next `times` QEMUs this process starts, each once its guest
/// has run for a moment.
fn kill_qemus(times: usize) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let (mut killed, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(120));
        while killed.len() < times && Instant::now() < deadline {
            let fresh: Vec<i32> =
                common::qemu_children_of(std::process::id()).into_iter().filter(|p| !killed.contains(p)).collect();
            for pid in fresh {
                std::thread::sleep(Duration::from_millis(500));
                // SAFETY: a plain kill(2) of our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed.push(pid);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        killed.len()
    })
}

fn run_payload() -> Result<ktstr::outcome::RunOutcome, KtstrFailure> {
    run_ktstr_test_with(find_test("payload_waits").expect("registered"), &RunOptions::default())
}

#[test]
fn qemu_killed_from_outside_is_rerun_once() {
    let killer = kill_qemus(1);
    let outcome = run_payload().unwrap_or_else(|f| panic!("the rerun should pass:\n{}", f.report));
    assert_eq!(killer.join().unwrap(), 1, "QEMU was not killed");
    assert_eq!(outcome.vm.retried_after.as_deref(), Some("QEMU was killed by SIGKILL from outside ktstr"));
}

#[test]
fn qemu_killed_twice_is_a_harness_fault_not_the_schedulers() {
    let killer = kill_qemus(2);
    let f = run_payload().expect_err("both runs were killed");
    assert_eq!(killer.join().unwrap(), 2, "QEMU was not killed twice");
    eprintln!("{}", f.report);
    let first = f.report.lines().nth(1).unwrap_or_default().trim();
    assert!(
        first.starts_with(&format!("{HARNESS_FAULT}QEMU was killed by SIGKILL from outside ktstr")),
        "{}",
        f.report
    );
    assert_eq!(f.reasons.len(), 1, "nothing else is blamed: {:?}", f.reasons);
    assert!(f.report.contains("rerun once: QEMU was killed by SIGKILL from outside ktstr"), "{}", f.report);
}

/// The cache's slot locks (see `vm::slots`): held here, no VM can start.
fn hold_all_slots() -> Vec<std::fs::File> {
    let dir = ktstr::cache::cache_subdir("locks");
    std::fs::create_dir_all(&dir).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let names = std::iter::once("turnstile.lock".to_string()).chain((0..cpus).map(|i| format!("cpu-{i}.lock")));
    names
        .map(|n| {
            let f = std::fs::File::create(dir.join(n)).unwrap();
            // SAFETY: flock on a descriptor we own; blocks until it is ours.
            assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) }, 0);
            f
        })
        .collect()
}

#[test]
fn no_free_cpu_slot_is_a_host_fault() {
    let held = hold_all_slots();
    // SAFETY: this test's process runs this one test (nextest); no other
    // thread reads the environment now.
    unsafe { std::env::set_var("KTSTR_SLOT_WAIT_S", "2") };
    let f = run_payload().expect_err("no slot was free");
    drop(held);
    eprintln!("{}", f.report);
    assert_eq!(f.stage, "starting QEMU (no VM was booted)");
    let first = f.report.lines().nth(1).unwrap_or_default().trim();
    assert!(first.starts_with(&format!("{HARNESS_FAULT}waited 2s for 1 of ")), "{}", f.report);
}

#[test]
fn a_full_disk_is_a_host_fault() {
    // A 1 MiB tmpfs for the run directory: the run's image does not fit.
    let dir = std::env::temp_dir().join(format!("ktstr-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "ktstr-full"])
        .arg(&dir)
        .status()
        .expect("running mount(8)");
    assert!(mounted.success(), "this test mounts a small tmpfs: run it as root (or in CI's container)");
    // SAFETY: as above, one test per process.
    unsafe { std::env::set_var("KTSTR_RUN_DIR", &dir) };
    let f = run_payload().expect_err("the image does not fit");
    let _ = std::process::Command::new("umount").arg(&dir).status();
    let _ = std::fs::remove_dir(&dir);
    eprintln!("{}", f.report);
    let first = f.report.lines().nth(1).unwrap_or_default().trim();
    assert!(first.starts_with(&format!("{HARNESS_FAULT}the host is out of disk space")), "{}", f.report);
}

#[test]
fn a_kernel_panic_before_init_is_a_harness_fault() {
    // A real boot of the default kernel on an initramfs of garbage: the
    // kernel finds no init and panics before anything of ktstr's ran.
    let kernel = ktstr::kernel::ensure(None).expect("a kernel (cargo ktstr kernel fetch)");
    let run_dir = std::env::temp_dir().join(format!("ktstr-garbage-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).unwrap();
    let initrd = run_dir.join("garbage.cpio");
    std::fs::write(&initrd, b"070701 this is not a cpio archive".repeat(64)).unwrap();
    let topology = Topology::parse("1n1l1c1t").unwrap();
    let spec = ktstr::vm::VmSpec {
        kernel: ktstr::kernel::pvh::boot_image(&kernel.vmlinuz),
        initrd,
        topology,
        memory_mb: 1024,
        accel: ktstr::vm::choose_accel(1, &kernel.vmlinuz).unwrap(),
        guest_hz: None,
        cmdline_extra: Vec::new(),
        verbose: false,
        time_limit: Duration::from_secs(60),
        boot_deadline: None,
        run_dir: run_dir.clone(),
        interactive: false,
        snapshot: ktstr::vm::SnapshotUse::Off("this test boots its own initramfs".into()),
    };
    let out = ktstr::vm::run(&spec).expect("QEMU ran");
    let o = ktstr::outcome::RunOutcome::from_vm(out);
    let verdict = judge(&o, &Default::default());
    let _ = std::fs::remove_dir_all(&run_dir);
    let lines = verdict.lines();
    eprintln!("{lines:#?}");
    assert!(
        lines[0].starts_with(&format!("{HARNESS_FAULT}the guest kernel panicked before init started")),
        "{lines:?}"
    );
}
