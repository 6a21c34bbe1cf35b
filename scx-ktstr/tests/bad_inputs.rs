//! The bad inputs a user can hand ktstr at run time, each refused with a
//! message that names the problem, the fix and the stage reached
//! (docs/troubleshooting.md quotes them). The attribute forms of the same
//! mistakes (0 cores, 300 vCPUs) are refused at compile time instead
//! (ktstr/tests/ui/); these are the ways around the macro: a test entry
//! changed at run time, a file in place of a kernel or a scheduler.

use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, KtstrFailure, KtstrTestEntry, RunOptions};
use ktstr::topology::Topology;

#[ktstr_test(scheduler = SCX_KTSTR, duration_s = 1)]
#[ignore = "guest half of the bad-input tests below"]
fn payload_bad_input(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

/// A scheduler "binary" that is a file without the executable bit.
const NOT_EXECUTABLE: Scheduler = Scheduler::path("scx-not-executable", env!("CARGO_MANIFEST_PATH"));

#[ktstr_test(scheduler = NOT_EXECUTABLE)]
#[ignore = "guest half of a_scheduler_that_is_not_executable_is_refused"]
fn payload_not_executable(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

/// Runs `entry` (auto-repro off), which must fail; its run directory is
/// removed (the failure is the expectation, not one to inspect).
fn must_fail(entry: &KtstrTestEntry, opts: RunOptions) -> KtstrFailure {
    let opts = RunOptions { auto_repro: Some(false), ..opts };
    match run_ktstr_test_with(entry, &opts) {
        Ok(_) => panic!("{} passed, but this run must fail", entry.name),
        Err(f) => {
            eprintln!("{}", f.report);
            if let Some(dir) = &f.run_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            f
        }
    }
}

fn payload() -> KtstrTestEntry {
    *find_test("payload_bad_input").expect("payload registered")
}

#[test]
fn a_scheduler_that_is_not_executable_is_refused() {
    let f = must_fail(find_test("payload_not_executable").unwrap(), RunOptions::default());
    assert_eq!(f.stage.to_string(), "scheduler binary (no VM was booted)");
    assert_eq!(
        f.reasons,
        [format!(
            "scheduler binary {} is not executable: `chmod +x` it, or point `Scheduler::path` at the built binary",
            env!("CARGO_MANIFEST_PATH")
        )]
    );
}

#[test]
fn a_kernel_path_that_is_not_a_kernel_is_refused() {
    let f =
        must_fail(&payload(), RunOptions { kernel: Some(env!("CARGO_MANIFEST_PATH").into()), ..Default::default() });
    assert_eq!(f.stage.to_string(), "kernel lookup (no VM was booted)");
    assert_eq!(
        f.reasons,
        [format!(
            "{}: not a bootable x86 kernel image: no x86 boot setup header (not a bzImage). Pass a bzImage (a \
             kernel tree's arch/x86/boot/bzImage), the tree itself, or a cached version (`cargo ktstr kernel list`)",
            env!("CARGO_MANIFEST_PATH")
        )]
    );
}

#[test]
fn a_topology_with_no_cores_is_refused_before_boot() {
    let entry = KtstrTestEntry { topology: Topology::new(1, 1, 0, 1), ..payload() };
    let f = must_fail(&entry, RunOptions::default());
    assert_eq!(f.stage.to_string(), "topology (no VM was booted)");
    assert_eq!(
        f.reasons,
        ["topology 1n1l0c1t: every count must be at least 1: give numa_nodes, llcs, cores and threads that QEMU can build"]
    );
}

#[test]
fn more_vcpus_than_a_vm_can_have_are_refused_before_boot() {
    let entry = KtstrTestEntry { topology: Topology::new(1, 4, 64, 2), ..payload() };
    let f = must_fail(&entry, RunOptions::default());
    assert_eq!(f.stage.to_string(), "topology (no VM was booted)");
    assert_eq!(
        f.reasons,
        ["topology 1n4l64c2t: 512 vCPUs is more than the 255 ktstr supports: give numa_nodes, llcs, cores and \
          threads that QEMU can build"]
    );
}

#[test]
fn too_little_memory_is_refused_before_boot() {
    let entry = KtstrTestEntry { memory_mb: 64, ..payload() };
    let f = must_fail(&entry, RunOptions::default());
    assert_eq!(f.stage.to_string(), "memory (no VM was booted)");
    assert!(
        f.reasons[0].starts_with("memory_mb = 64 is too little for this VM: it needs at least "),
        "{:?}",
        f.reasons
    );
    assert!(f.reasons[0].contains("raise `memory_mb`"), "{:?}", f.reasons);
    // The floor it names is enough: the same test passes there (booted,
    // not from a snapshot: one per memory size is not worth keeping).
    let floor: u32 = f.reasons[0]["memory_mb = 64 is too little for this VM: it needs at least ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the floor in MB");
    let entry = KtstrTestEntry { memory_mb: floor, ..payload() };
    let opts = RunOptions { auto_repro: Some(false), snapshot: Some(false), ..Default::default() };
    if let Err(f) = run_ktstr_test_with(&entry, &opts) {
        panic!("the floor, {floor} MB, did not boot the test:\n{}", f.report);
    }
}

/// A tmpfs mounted with `options` at a fresh directory, unmounted on drop.
struct Mount(std::path::PathBuf);
impl Mount {
    fn tmpfs(name: &str, options: &str) -> Mount {
        let dir = std::env::temp_dir().join(format!("ktstr-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, &format!("ktstr-{name}")])
            .arg(&dir)
            .status()
            .expect("running mount(8)");
        assert!(mounted.success(), "this test mounts a tmpfs: run it as root (or in CI's container)");
        Mount(dir)
    }
}
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The cache at `dir` for this test process (nextest runs each test in a
/// process of its own); the kernel is looked up first, in the real cache.
fn run_with_cache_at(dir: &std::path::Path) -> KtstrFailure {
    let kernel = ktstr::kernel::resolve(None).expect("the default kernel (cargo ktstr kernel fetch)");
    // SAFETY: one test per process, and no other thread reads the
    // environment yet.
    unsafe { std::env::set_var("KTSTR_CACHE_DIR", dir) };
    must_fail(&payload(), RunOptions { kernel: Some(kernel.vmlinuz.display().to_string()), ..Default::default() })
}

#[test]
fn a_read_only_cache_is_named_before_boot() {
    let ro = Mount::tmpfs("ro-cache", "ro,size=1m");
    let f = run_with_cache_at(&ro.0);
    assert_eq!(f.stage.to_string(), "cache (no VM was booted)");
    let want =
        format!("the ktstr cache {} is not writable: point KTSTR_CACHE_DIR at a writable directory", ro.0.display());
    assert!(f.reasons[0].starts_with(&want), "{:?}", f.reasons);
    assert!(f.reasons[0].contains("Read-only file system"), "{:?}", f.reasons);
}

#[test]
fn a_full_cache_is_the_hosts_fault() {
    // Room for the write check, not for the run's image.
    let full = Mount::tmpfs("full-cache", "size=1m");
    let f = run_with_cache_at(&full.0);
    assert!(
        f.reasons[0].starts_with("harness or host fault, not the scheduler's: the host is out of disk space"),
        "{:?}",
        f.reasons
    );
    assert_eq!(f.stage.to_string(), "initramfs (no VM was booted)");
    // Where, for the user; and nothing half-written is left there.
    assert!(
        f.reasons.iter().any(|r| r.contains(&format!("writing the initramfs image {}", full.0.display()))),
        "{:?}",
        f.reasons
    );
    let left: Vec<_> = std::fs::read_dir(full.0.join("initramfs")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left in the full cache: {left:?}");
}
