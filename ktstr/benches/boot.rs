//! Boot overhead benchmark. Measures, alternating, on the same kernel:
//!   (a) QEMU booting a trivial static init that powers off at once, with
//!       the exact QEMU options ktstr uses;
//!   (b) an empty `#[ktstr_test]` end to end (process start, kernel lookup,
//!       cached initramfs, VM, report) with a warm cache;
//!   (c) the same test started from a snapshot of a booted guest
//!       (`KTSTR_SNAPSHOT=1`, the snapshot made before the rounds),
//! for 2 vCPUs and for a 32-vCPU topology, and prints medians, the b/a
//! ratio against its 1.15 target, c/a against 0.3, and the peak host
//! memory of (b).
//! Ratios, not absolute times, are the point: the machine is shared.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, RunOptions};
use ktstr::vm::{self, initramfs::ImageSpec, VmSpec};

const ROUNDS: usize = 5;
const CHILD_FLAG: &str = "--ktstr-bench-run";

#[ktstr_test(llcs = 1, cores = 2, threads = 1)]
fn bench_empty(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

#[ktstr_test(llcs = 2, cores = 8, threads = 2)]
fn bench_empty_32(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == CHILD_FLAG) {
        let entry = find_test(&args[i + 1]).expect("bench test registered");
        if let Err(f) = run_ktstr_test_with(entry, &RunOptions::default()) {
            eprintln!("{}", f.report);
            std::process::exit(1);
        }
        return Ok(());
    }
    let kernel = ktstr::kernel::ensure(None)?;
    println!("kernel: {} ({})", kernel.release, kernel.vmlinuz.display());
    let trivial = trivial_initramfs()?;
    let guest_hz = kernel.read_config().and_then(|c| c.get("CONFIG_HZ")?.parse().ok());
    for (test, topo) in [("bench_empty", "1n1l2c1t"), ("bench_empty_32", "1n2l8c2t")] {
        let topology = Topology::parse(topo).map_err(anyhow::Error::msg)?;
        let accel = vm::choose_accel(topology.cpus(), &kernel.vmlinuz)?;
        println!("\n{topo} ({} vCPUs, accel {})", topology.cpus(), accel.qemu_arg());
        // Warm up both paths (page cache, initramfs cache).
        // The same boot image ktstr uses (PVH vmlinux when available).
        let image = ktstr::kernel::pvh::boot_image(&kernel.vmlinuz);
        println!("  boot image: {}", image.display());
        boot_trivial(&image, &trivial, topology, accel, guest_hz)?;
        run_test_process(test, false)?;
        // The first start from a snapshot makes it (boot, settle, save).
        let made = run_test_process(test, true)?.0;
        println!("  first run with KTSTR_SNAPSHOT=1 (makes the snapshot): {:.2}s", made.as_secs_f64());
        let (mut a, mut b, mut c, mut peak_kb) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for _ in 0..ROUNDS {
            a.push(boot_trivial(&image, &trivial, topology, accel, guest_hz)?);
            let (t, kb) = run_test_process(test, false)?;
            b.push(t);
            peak_kb = peak_kb.max(kb);
            c.push(run_test_process(test, true)?.0);
        }
        let (ma, mb, mc) = (median(&mut a), median(&mut b), median(&mut c));
        let ratio = mb.as_secs_f64() / ma.as_secs_f64();
        let snap = mc.as_secs_f64() / ma.as_secs_f64();
        println!("  (a) trivial init boot   median {:>6.2}s  runs {}", ma.as_secs_f64(), list(&a));
        println!("  (b) empty #[ktstr_test] median {:>6.2}s  runs {}", mb.as_secs_f64(), list(&b));
        println!("  (c) (b) from a snapshot median {:>6.2}s  runs {}", mc.as_secs_f64(), list(&c));
        println!("  b/a = {ratio:.3} (target <= 1.15: {})", if ratio <= 1.15 { "met" } else { "NOT met" });
        println!("  c/a = {snap:.3} (target <= 0.3: {})", if snap <= 0.3 { "met" } else { "NOT met" });
        println!("  peak host memory of (b): {} MiB (max RSS of the test process and QEMU)", peak_kb / 1024);
        if topology.cpus() == 32 {
            println!(
                "  32-vCPU boot: {:.2}s trivial, {:.2}s as a ktstr test (target < 10s: {})",
                ma.as_secs_f64(),
                mb.as_secs_f64(),
                if mb < Duration::from_secs(10) { "met" } else { "NOT met" }
            );
        }
    }
    Ok(())
}

/// A static C init that powers the machine off: the floor for any init.
fn trivial_initramfs() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ktstr-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let src = dir.join("init.c");
    std::fs::write(
        &src,
        "#include <sys/reboot.h>\n#include <unistd.h>\nint main(void){sync();reboot(RB_POWER_OFF);return 0;}\n",
    )?;
    let bin = dir.join("init");
    let st = Command::new("cc").args(["-static", "-Os", "-o"]).arg(&bin).arg(&src).status()?;
    anyhow::ensure!(st.success(), "cc -static failed: install gcc and libc6-dev");
    let mut img = ImageSpec::default();
    img.add_executable(&bin, "/init")?;
    let path = img.build_cached()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(path)
}

fn boot_trivial(
    kernel: &Path,
    initrd: &Path,
    topology: Topology,
    accel: vm::Accel,
    guest_hz: Option<u32>,
) -> anyhow::Result<Duration> {
    let run_dir = std::env::temp_dir().join(format!("ktstr-bench-vm-{}", std::process::id()));
    let spec = VmSpec {
        kernel: kernel.to_path_buf(),
        initrd: initrd.to_path_buf(),
        topology,
        memory_mb: 2048,
        accel,
        guest_hz,
        cmdline_extra: Vec::new(),
        verbose: ktstr::report::verbose_requested(),
        time_limit: Duration::from_secs(120),
        boot_deadline: None,
        run_dir: run_dir.clone(),
        interactive: false,
        snapshot: vm::SnapshotUse::Off("a benchmark's own boot".into()),
    };
    let out = vm::run(&spec)?;
    let _ = std::fs::remove_dir_all(&run_dir);
    anyhow::ensure!(matches!(out.exit, vm::VmExit::Exited { .. }), "trivial boot did not power off: {:?}", out.exit);
    Ok(out.wall)
}

/// Runs one registered test in a child process; returns wall time and the
/// peak RSS (KiB) over the child and everything it waited for (QEMU).
fn run_test_process(test: &str, snapshot: bool) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let child = Command::new(std::env::current_exe()?)
        .args([CHILD_FLAG, test])
        .env("KTSTR_SNAPSHOT", if snapshot { "1" } else { "0" })
        .spawn()?;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; status and usage are valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    anyhow::ensure!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{test} failed");
    Ok((wall, usage.ru_maxrss as u64))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn list(v: &[Duration]) -> String {
    v.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect::<Vec<_>>().join(" ")
}
