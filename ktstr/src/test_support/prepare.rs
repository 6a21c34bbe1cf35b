//! Everything up to the QEMU command, in its concerns: the scheduler's
//! launch (after checking the kernel can run it), the include files, the
//! guest's plan, the image (the cached base plus the run's own segment) and
//! the VM's spec with its limits. A failure names its step, which the report
//! prints as the stage (`scheduler binary (no VM was booted)`).

use std::path::PathBuf;
use std::time::Duration;

use super::entry::KtstrTestEntry;
use super::options::RunOptions;
use crate::kernel::{self, KernelImage, SchedExtSupport};
use crate::probe::ProbePlan;
use crate::report;
use crate::vm::{self, initramfs, Accel, VmSpec};
use crate::wire::plan::{GuestPlan, SchedulerLaunch, ShellPlan};

/// What a VM is booted for.
pub(super) enum Purpose {
    /// The test itself.
    Test,
    /// Auto-repro's second VM: repro mode, probes attached.
    Repro(ProbePlan),
    /// `cargo ktstr shell`: busybox (from this host path) in the image, an
    /// interactive shell instead of the test function, on QEMU's stdio.
    Shell { plan: ShellPlan, busybox: PathBuf },
}

/// How long a shell's VM may run. Every VM has a wall-clock limit; a
/// shell's only guards against one left behind, forgotten.
const SHELL_TIME_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// How long the scheduler may take to attach.
const ATTACH_TIMEOUT_S: u64 = 30;

/// A step that failed, and why.
type StepError = (&'static str, anyhow::Error);

/// The scheduler as the guest starts it, and its binary on the host with
/// its path in the guest.
struct SchedulerImage {
    launch: SchedulerLaunch,
    host: PathBuf,
    guest: String,
}

/// Everything up to the QEMU command: checks, initramfs, plan, limits.
pub(super) fn prepare(
    entry: &KtstrTestEntry,
    opts: &RunOptions,
    kernel: &KernelImage,
    purpose: Purpose,
) -> Result<VmSpec, StepError> {
    // Once per process: what killed runs left is removed, and said.
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        for path in sweep_killed_runs() {
            eprintln!("ktstr: removed what a killed run left: {}", path.display());
        }
    });
    // The macro refuses these shapes at compile time; an entry made or
    // changed at run time comes here, before anything is built.
    entry.topology.validate().map_err(|e| ("topology", anyhow::anyhow!(e)))?;
    crate::cache::writable_root().map_err(|e| ("cache", e))?;
    let sched = scheduler(entry, opts, kernel)?;
    let (probes, shell, busybox) = match purpose {
        Purpose::Test => (None, None, None),
        Purpose::Repro(p) => (Some(p), None, None),
        Purpose::Shell { plan, busybox } => (None, Some(plan), Some(busybox)),
    };
    let exe = std::env::current_exe().map_err(|e| ("initramfs", e.into()))?;
    let config = kernel.config.as_deref().map(|c| (c, kernel.release.as_str()));
    let in_image = sched.as_ref().map(|s| (s.host.as_path(), s.guest.as_str()));
    let base = vm::base_initramfs(&exe, in_image, config, busybox.as_deref()).map_err(|e| ("initramfs", e))?;
    let (include_files, include) = includes(entry, opts)?;

    let interactive = shell.is_some();
    let attach_timeout_s = if sched.is_some() { ATTACH_TIMEOUT_S } else { 0 };
    let plan = GuestPlan {
        // The guest finds the function by its own name, variant or not.
        test_name: entry.name.to_string(),
        topology: entry.topology,
        scheduler: sched.map(|s| s.launch),
        duration_s: entry.duration_s,
        attach_timeout_s,
        repro: probes.is_some(),
        // Within the limit below: the payload starts after boot and attach.
        hang_dump_after_s: if entry.scheduler.is_some() && !interactive { 2 * entry.duration_s + 5 } else { 0 },
        map_writes: entry.bpf_map_writes.iter().map(|w| w.to_plan()).collect(),
        // A shell has no workload to watch.
        monitor: !interactive && opts.monitored(probes.is_some()),
        probes,
        shell,
        include,
    };
    let run_dir = new_run_dir(entry.name).map_err(|e| ("run directory", e))?;
    let initrd = run_dir.join("initrd.cpio");
    let plan_json = serde_json::to_vec_pretty(&plan).expect("plan serialises");
    let mut extra = vec![initramfs::extra_file(GuestPlan::PATH, plan_json)];
    extra.extend(include_files);
    let checked = initramfs::with_extra_files(&base, &extra, &initrd).map_err(|e| ("initramfs", e)).and_then(|()| {
        let image_bytes = std::fs::metadata(&initrd).map(|m| m.len()).unwrap_or(0);
        enough_memory(entry, image_bytes).map_err(|e| ("memory", e))
    });
    if let Err(e) = checked {
        // No VM will use it, and nothing in it is worth keeping.
        let _ = std::fs::remove_dir_all(&run_dir);
        return Err(e);
    }
    vm_spec(entry, opts, kernel, (base, initrd), run_dir, attach_timeout_s, interactive)
}

/// The scheduler to start in the guest, if the test has one; refused on a
/// kernel without sched_ext before anything boots.
fn scheduler(
    entry: &KtstrTestEntry,
    opts: &RunOptions,
    kernel: &KernelImage,
) -> Result<Option<SchedulerImage>, StepError> {
    let Some(sched) = entry.scheduler else { return Ok(None) };
    if kernel.sched_ext() == SchedExtSupport::No {
        // The harness's environment, not the scheduler: labelled so.
        return Err((
            "kernel check",
            anyhow::Error::new(vm::HostFault(format!(
                "kernel {} has no sched_ext (CONFIG_SCHED_CLASS_EXT is not set in {}): use a sched_ext \
                 kernel, e.g. `cargo ktstr kernel fetch`",
                kernel.release,
                kernel.config.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            ))),
        ));
    }
    let host = sched.resolve_binary().map_err(|e| ("scheduler binary", e))?;
    let file_name = host.file_name().unwrap().to_string_lossy().into_owned();
    let guest = format!("{}/{file_name}", initramfs::SCHED_DIR);
    let extra: Vec<String> = match &opts.extra_sched_args {
        Some(args) => args.clone(),
        None => entry.extra_sched_args.iter().map(|s| s.to_string()).collect(),
    };
    let launch = SchedulerLaunch {
        name: sched.name.to_string(),
        path: guest.clone(),
        args: sched.args.iter().map(|s| s.to_string()).chain(extra).collect(),
        ops_name: sched.ops_name.map(str::to_string),
    };
    Ok(Some(SchedulerImage { launch, host, guest }))
}

/// The scheduler's, the test's and the run's `include_files`, as files of
/// the run's image segment, and their top-level guest paths for the plan.
fn includes(entry: &KtstrTestEntry, opts: &RunOptions) -> Result<(Vec<initramfs::ExtraFile>, Vec<String>), StepError> {
    let sched = entry.scheduler.map_or(&[][..], |s| s.include_files);
    let paths: Vec<PathBuf> =
        sched.iter().chain(entry.include_files).map(PathBuf::from).chain(opts.include_files.iter().cloned()).collect();
    initramfs::include_files(&paths).map_err(|e| ("include files", e))
}

/// The VM: accelerator, boot image, limits.
fn vm_spec(
    entry: &KtstrTestEntry,
    opts: &RunOptions,
    kernel: &KernelImage,
    (base, initrd): (PathBuf, PathBuf),
    run_dir: PathBuf,
    attach_timeout_s: u64,
    interactive: bool,
) -> Result<VmSpec, StepError> {
    let vcpus = entry.topology.cpus();
    let accel = vm::choose_accel(vcpus, &kernel.vmlinuz).map_err(|e| ("accelerator", e))?;
    let boot = boot_allowance(accel, vcpus);
    Ok(VmSpec {
        kernel: kernel::pvh::boot_image(&kernel.vmlinuz),
        initrd,
        topology: entry.topology,
        memory_mb: entry.memory_mb,
        accel,
        guest_hz: kernel.read_config().and_then(|c| c.get("CONFIG_HZ")?.parse().ok()),
        cmdline_extra: Vec::new(),
        verbose: report::verbose_requested(),
        time_limit: match interactive {
            true => SHELL_TIME_LIMIT,
            false => boot + Duration::from_secs(attach_timeout_s + 2 * entry.duration_s + 15),
        },
        boot_deadline: Some(opts.boot_deadline.unwrap_or(boot)),
        run_dir,
        interactive,
        snapshot: match opts.snapshot.unwrap_or_else(vm::snapshots_wanted) {
            true => vm::SnapshotUse::On { base },
            false => vm::SnapshotUse::Off("snapshots are off (KTSTR_SNAPSHOT=0, or the run asked to boot)".into()),
        },
    })
}

/// RAM the guest kernel takes beyond its image before init, with room for
/// init and the test to start: Debian's cloud kernel with 2 vCPUs keeps
/// ~57 MB for itself (its `Memory:` line); a 45 MB image failed to unpack
/// in 156 and 188 MB, panicked ("System is deadlocked on memory") in 128
/// MB and never reached init in 48-96 MB; it booted in 192 MB. The floor
/// keeps a margin over that edge: a floor that fails is worse than none.
const KERNEL_BOOT_MB: u64 = 128;

/// Refuses, before anything boots, a VM too small for its own image: the
/// initramfs sits in guest RAM while its files are unpacked into RAM, so
/// it counts twice. Below that the guest dies before init in ways that
/// look like the host's fault (stalls, panics); above it the test's own
/// workload is the test's business.
fn enough_memory(entry: &KtstrTestEntry, image_bytes: u64) -> anyhow::Result<()> {
    let image_mb = image_bytes.div_ceil(1 << 20);
    let floor = KERNEL_BOOT_MB + u64::from(entry.topology.cpus()) + 2 * image_mb;
    anyhow::ensure!(
        u64::from(entry.memory_mb) >= floor,
        "memory_mb = {} is too little for this VM: it needs at least {floor} MB to boot ({KERNEL_BOOT_MB} MB for \
         the kernel, 1 MB per vCPU, twice the {image_mb} MB image, which is unpacked in RAM): raise `memory_mb` \
         (the default, {})",
        entry.memory_mb,
        KtstrTestEntry::DEFAULT_MEMORY_MB
    );
    Ok(())
}

/// How long a boot may take to reach init. The VM's wall-clock limit adds
/// the attach wait, twice the scenario and a margin for power-off.
/// Generous: limits detect hangs; they are not performance checks.
fn boot_allowance(accel: Accel, vcpus: u32) -> Duration {
    Duration::from_secs(match accel {
        Accel::Kvm => 10,
        Accel::Tcg { .. } => 20 + vcpus as u64,
    })
}

/// Written into a run directory kept on purpose (a failed run's, or one
/// `KTSTR_KEEP_RUN_DIR` asked for): the sweep leaves those alone.
const KEPT_MARKER: &str = "kept-by-ktstr";

fn run_dir_base() -> PathBuf {
    std::env::var_os("KTSTR_RUN_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

/// `<base>/ktstr-<test>-<pid>-<8 hex digits>`: the pid tells the sweep
/// whose it is.
fn new_run_dir(test: &str) -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
    let dir = run_dir_base().join(format!("ktstr-{test}-{}-{nanos:08x}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Marks `dir` as kept on purpose, for the user to read.
pub(super) fn keep_run_dir(dir: &std::path::Path) {
    let _ = std::fs::write(dir.join(KEPT_MARKER), "this run's directory is kept for inspection\n");
}

/// What killed runs left: the VM's own leftovers (RAM files, half-written
/// images, snapshot staging) and run directories whose process is gone
/// without having removed or kept them (each holds a copy of the image).
pub fn sweep_killed_runs() -> Vec<PathBuf> {
    let mut removed = vm::sweep_killed_runs();
    removed.extend(remove_killed_run_dirs(&run_dir_base()));
    removed
}

fn remove_killed_run_dirs(base: &std::path::Path) -> Vec<PathBuf> {
    crate::cache::remove_dead_owned(base, |name| {
        let (rest, nanos) = name.strip_prefix("ktstr-")?.rsplit_once('-')?;
        let (_test, pid) = rest.rsplit_once('-')?;
        let ours = nanos.len() == 8 && nanos.bytes().all(|b| b.is_ascii_hexdigit());
        let dir = base.join(name);
        (ours && dir.is_dir() && !dir.join(KEPT_MARKER).exists()).then(|| pid.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only directories named as runs name theirs, of a process that is
    /// gone, and not kept on purpose, are removed.
    #[test]
    fn the_sweep_takes_killed_runs_dirs_only() {
        let base = std::env::temp_dir().join(format!("ktstr-sweep-test-{}", std::process::id()));
        let dead = 999_999_999; // above any pid_max
        let killed = base.join(format!("ktstr-some_test-{dead}-0badcafe"));
        let kept = base.join(format!("ktstr-failed_test-{dead}-0badcafe"));
        let live = base.join(format!("ktstr-running_test-{}-0badcafe", std::process::id()));
        let other = base.join(format!("ktstr-ro-cache-{dead}"));
        for d in [&killed, &kept, &live, &other] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("initrd.cpio"), "image").unwrap();
        }
        keep_run_dir(&kept);
        assert_eq!(remove_killed_run_dirs(&base), vec![killed.clone()]);
        assert!(!killed.exists() && kept.exists() && live.exists() && other.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
