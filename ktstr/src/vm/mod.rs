//! Booting one VM: QEMU with the test's topology, the kernel console on
//! COM1, the guest channel on COM2, and a wall-clock limit. Takes a
//! [`VmSpec`], returns a [`VmOutput`]; knows nothing about tests.
//!
//! Someone may watch the VM while it runs through a [`VmObserver`] (the
//! monitor does): it sees each channel message as it arrives and, on
//! every tick of the wait loop, the guest's RAM.

mod accel;
pub mod busybox;
mod follow;
pub mod initramfs;
mod memory;
mod qemu;
pub mod qmp;
mod slots;
mod snapshot;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

pub use accel::{choose as choose_accel, decide as decide_accel, host_cpus, Accel};
pub use follow::{follow_console, follow_console_into, ConsoleFollower};
pub use memory::GuestMemory;
pub use qemu::QEMU;
pub use snapshot::wanted as snapshots_wanted;

use crate::channel::{Decoder, GuestMessage};
use crate::wire::topology::Topology;

#[derive(Clone, Debug)]
pub struct VmSpec {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub topology: Topology,
    pub memory_mb: u32,
    pub accel: Accel,
    /// The guest kernel's CONFIG_HZ, when known (for TCG boot tuning).
    pub guest_hz: Option<u32>,
    /// Extra kernel command-line words.
    pub cmdline_extra: Vec<String>,
    pub verbose: bool,
    /// QEMU is killed when this runs out.
    pub time_limit: Duration,
    /// QEMU is killed when the guest has sent nothing on the channel by
    /// then: the boot stalled before init (an emulator or early-boot
    /// hang, before any scheduler is involved).
    pub boot_deadline: Option<Duration>,
    /// Where the console and channel logs are written.
    pub run_dir: PathBuf,
    /// A virtio console (the guest's [`SHELL_TTY`]) wired to QEMU's
    /// stdin and stdout, which QEMU then inherits from this process: the
    /// terminal of `cargo ktstr shell`. Otherwise QEMU's stdio is null.
    pub interactive: bool,
    /// Whether the VM may start from a snapshot of a booted guest
    /// (by default yes; `KTSTR_SNAPSHOT=0` boots).
    pub snapshot: SnapshotUse,
}

/// Whether a VM may start from a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub enum SnapshotUse {
    /// It boots: why (the diagnostics say it).
    Off(String),
    /// It may: its `initrd` is the cached image `base` (one cpio archive,
    /// named by its content) followed by the run's own segment. The agent
    /// is fed both, or, restored from a snapshot that has `base` unpacked
    /// already, the segment alone.
    On { base: std::path::PathBuf },
}

/// The guest's end of [`VmSpec::interactive`]'s console.
pub(crate) const SHELL_TTY: &str = crate::wire::paths::SHELL_TTY;

impl VmSpec {
    pub fn cmdline(&self) -> String {
        // panic=-1 + -no-reboot: a guest panic ends QEMU at once.
        let mut words = vec!["console=ttyS0,115200", "panic=-1", "rdinit=/init", "reboot=t"];
        // Every console byte is an emulated UART exit: under TCG a chatty
        // boot costs seconds. Quiet still shows errors and panics.
        words.push(if self.verbose { "loglevel=7" } else { "loglevel=4" });
        // Kernel-image and direct-map addresses at their link-time bases,
        // so the host can turn kernel addresses into guest-physical ones.
        words.push("nokaslr");
        let mut s = words.join(" ");
        for w in self.accel.cmdline_words(self.guest_hz).iter().chain(&self.cmdline_extra) {
            s.push(' ');
            s.push_str(w);
        }
        s
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum VmExit {
    /// QEMU exited by itself (the guest powered off, or panicked).
    Exited { code: Option<i32> },
    /// QEMU died of a signal ktstr did not send (the host's OOM killer, a
    /// user): a host fault, never the scheduler's.
    Killed { signal: i32 },
    /// The wall-clock limit ran out and QEMU was killed.
    TimedOut { limit: Duration },
    /// No channel output by the boot deadline; QEMU was killed.
    BootStalled { deadline: Duration },
}

impl std::fmt::Display for VmExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmExit::Exited { code: Some(c) } => write!(f, "QEMU exited with code {c}"),
            VmExit::Exited { code: None } => write!(f, "QEMU was killed by a signal"),
            VmExit::Killed { signal } => write!(f, "QEMU was killed by signal {signal} ({})", signal_name(*signal)),
            VmExit::TimedOut { limit } => write!(f, "QEMU killed at the {}s wall-clock limit", limit.as_secs()),
            VmExit::BootStalled { deadline } => {
                write!(f, "QEMU killed: no word from init within {:.1}s", deadline.as_secs_f64())
            }
        }
    }
}

/// What the report says of a QEMU that died of `signal` (see
/// [`VmExit::Killed`]): the one wording the rerun and the verdict share.
pub fn killed_from_outside(signal: i32) -> String {
    format!("QEMU was killed by {} from outside ktstr", signal_name(signal))
}

/// A signal's name (`SIGKILL`), or `signal N`.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_string())
}

/// Everything a VM run produced.
#[derive(Debug)]
pub struct VmOutput {
    pub console: String,
    pub messages: Vec<GuestMessage>,
    /// Bytes and frames of the channel that did not decode.
    pub channel_damage: (usize, usize),
    pub exit: VmExit,
    /// QEMU's own stderr (bad options, missing files).
    pub qemu_log: String,
    pub wall: Duration,
    /// Boots retried after stalling before init (see [`VmExit::BootStalled`]).
    pub boot_retries: u32,
    /// The vCPUs' registers, read through QMP when the wall-clock limit
    /// stopped a hung guest (`Err`: why they could not be read; `None`:
    /// the VM ended by itself).
    pub vcpu_registers: Option<Result<Vec<qmp::VcpuRegisters>, String>>,
    /// The fault a first run hit that was not the guest's (QEMU killed
    /// from outside, an emulator fault), when this is its rerun (see
    /// [`run_retrying`]).
    pub retried_after: Option<String>,
    /// How the VM started: `started from snapshot <key>`, or `booted
    /// cold: <why>`.
    pub start: String,
}

/// Watches a running VM. Called from the wait loop's thread, between its
/// 10 ms polls: implementations must return quickly.
pub(crate) trait VmObserver {
    /// Whether it reads guest RAM: then RAM is backed by shared files.
    fn wants_guest_memory(&self) -> bool {
        false
    }
    /// A channel message, decoded as it arrived, `at` after QEMU started.
    fn on_message(&mut self, _msg: &GuestMessage, _at: Duration) {}
    /// One tick of the wait loop: the guest's RAM, or why it cannot be read.
    fn on_tick(&mut self, _mem: Result<&GuestMemory, &str>, _at: Duration) {}
}

/// Removes what test runs killed mid-run left behind (their RAM files in
/// /dev/shm, an image or a snapshot half made) and returns it. Their QEMU
/// died with them (see [`qemu::command`]); their locks died with them too
/// (flock).
pub fn sweep_killed_runs() -> Vec<std::path::PathBuf> {
    let mut removed = memory::remove_stale();
    removed.extend(initramfs::remove_stale());
    removed.extend(snapshot::remove_stale());
    removed
}

/// A fault of the host, not of the guest or the test: the cause, in words
/// (the report labels it so).
#[derive(Debug)]
pub struct HostFault(pub String);

impl std::fmt::Display for HostFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostFault {}

/// The host's fault in `err`, if it is one: a [`HostFault`], or the host
/// out of disk space or memory somewhere in its chain.
pub fn host_fault(err: &anyhow::Error) -> Option<String> {
    if let Some(h) = err.downcast_ref::<HostFault>() {
        return Some(h.0.clone());
    }
    err.chain().filter_map(|e| e.downcast_ref::<std::io::Error>()).find_map(|io| match io.raw_os_error()? {
        libc::ENOSPC | libc::EDQUOT => Some(format!("the host is out of disk space ({io})")),
        libc::ENOMEM => Some(format!("the host is out of memory ({io})")),
        _ => None,
    })
}

/// How long a VM waits for host CPU slots: `KTSTR_SLOT_WAIT_S`, else an hour.
fn slot_wait() -> Duration {
    Duration::from_secs(std::env::var("KTSTR_SLOT_WAIT_S").ok().and_then(|v| v.parse().ok()).unwrap_or(3600))
}

/// Watches nothing.
pub(crate) struct NoObserver;
impl VmObserver for NoObserver {}

/// Boots the VM and waits for it to end or hit its limit. Holds host CPU
/// slots for the VM's lifetime so parallel runs don't starve each other.
///
/// A boot that stalls before init (nothing of the guest's work has run:
/// an emulator or early-boot hang) is retried once; its console is kept
/// beside the new one and the output counts the retry.
pub fn run(spec: &VmSpec) -> anyhow::Result<VmOutput> {
    run_observed(spec, &mut NoObserver)
}

/// [`run`], with `observer` watching.
pub(crate) fn run_observed(spec: &VmSpec, observer: &mut dyn VmObserver) -> anyhow::Result<VmOutput> {
    std::fs::create_dir_all(&spec.run_dir)?;
    let want = spec.accel.host_threads(spec.topology.cpus());
    let _slots = slots::acquire(want, host_cpus(), slot_wait())?;
    let mut start = StartFrom::new(spec);
    let (mut exit, mut wall, mut regs) = boot_once(spec, observer, &mut start)?;
    let mut boot_retries = 0;
    if let VmExit::BootStalled { .. } = exit {
        eprintln!("ktstr: guest boot stalled before init ({}); retrying once", spec.run_dir.display());
        let console = spec.run_dir.join(qemu::CONSOLE_LOG);
        let _ = std::fs::rename(&console, console.with_extension("stalled-boot.log"));
        boot_retries = 1;
        // A stalled start from a snapshot is retried as a cold boot.
        start = StartFrom::Cold(format!("the start from a snapshot stalled ({})", start.words()));
        (exit, wall, regs) = boot_once(spec, observer, &mut start)?;
    }
    let mut out = VmOutput::collect(&spec.run_dir, exit, wall);
    out.boot_retries = boot_retries;
    out.vcpu_registers = regs;
    out.start = start.words();
    Ok(out)
}

/// The vCPUs' registers of a run stopped at its limit (see [`VmOutput`]).
type Registers = Option<Result<Vec<qmp::VcpuRegisters>, String>>;

/// [`run`], and once more when `rerun_for` finds in the output a fault
/// of the emulator or the host rather than of the guest (the caller knows
/// what such a fault looks like); the first console is kept beside the new one
/// and the output says what was retried.
pub(crate) fn run_retrying(
    spec: &VmSpec,
    observer: &mut dyn VmObserver,
    rerun_for: impl Fn(&VmOutput) -> Option<String>,
) -> anyhow::Result<VmOutput> {
    let first = run_observed(spec, observer)?;
    let Some(fault) = rerun_for(&first) else { return Ok(first) };
    eprintln!("ktstr: {fault}; rerunning the VM once ({})", spec.run_dir.display());
    let console = spec.run_dir.join(qemu::CONSOLE_LOG);
    let _ = std::fs::rename(&console, console.with_extension("first-run.log"));
    let mut again = run_observed(spec, observer)?;
    again.retried_after = Some(fault);
    Ok(again)
}

/// How a VM starts: from a snapshot of a booted guest, or with a boot.
enum StartFrom {
    /// Booted cold, and why not from a snapshot.
    Cold(String),
    /// Restored from this snapshot in this many ms.
    Snapshot(snapshot::Snapshot, Option<u64>),
    /// Restored, but the agent was not fed the run's image: these words.
    Unfed(String),
}

impl StartFrom {
    /// A snapshot if the spec may use one and one can be had (made now if
    /// needed); otherwise a cold boot, with why.
    fn new(spec: &VmSpec) -> StartFrom {
        let base = match &spec.snapshot {
            SnapshotUse::Off(why) => return StartFrom::Cold(why.clone()),
            SnapshotUse::On { base } => base,
        };
        if spec.interactive {
            return StartFrom::Cold("a shell's VM always boots".into());
        }
        let t = Instant::now();
        match snapshot::ensure(spec, base) {
            Ok(s) => {
                tracing::debug!(ms = t.elapsed().as_millis() as u64, "snapshot found");
                StartFrom::Snapshot(s, None)
            }
            Err(e) => StartFrom::Cold(format!("no snapshot: {e:#}")),
        }
    }

    /// The diagnostics' words.
    fn words(&self) -> String {
        match self {
            StartFrom::Cold(why) => format!("booted cold: {why}"),
            StartFrom::Snapshot(s, ms) => {
                let unpacked = if s.unpacked() { " with the base image unpacked" } else { "" };
                let ms = ms.map(|ms| format!(" (restored in {ms} ms)")).unwrap_or_default();
                format!("started from snapshot {}{unpacked}{ms}", s.key)
            }
            StartFrom::Unfed(words) => words.clone(),
        }
    }
}

/// A started QEMU: its process, RAM files (if any), and, restored, the
/// thread feeding the agent.
struct Started {
    child: std::process::Child,
    ram: Option<Result<(memory::RamFiles, GuestMemory), String>>,
    feeding: Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<anyhow::Result<()>>)>,
}

/// Restores the snapshot `start` names, or (none, or the restore failed:
/// `start` then says why) boots cold.
fn start_qemu(spec: &VmSpec, observer: &dyn VmObserver, start: &mut StartFrom) -> anyhow::Result<Started> {
    if let (StartFrom::Snapshot(snap, restore_ms), SnapshotUse::On { base }) = (&mut *start, &spec.snapshot) {
        match snapshot::restore(spec, snap, base) {
            Ok(r) => {
                *restore_ms = Some(r.restore_ms);
                let ram = observer.wants_guest_memory().then(|| r.ram.map().map(|m| (r.ram, m)));
                return Ok(Started { child: r.child, ram, feeding: Some((r.done, r.feeder)) });
            }
            Err(e) => *start = StartFrom::Cold(format!("restoring snapshot {} failed: {e:#}", snap.key)),
        }
    }
    // Files and mapping live until this boot ends; dropping them removes
    // the files. Without them the VM runs on anonymous RAM as usual.
    let ram = observer.wants_guest_memory().then(|| {
        let files = memory::RamFiles::create(&qemu::node_sizes_mb(&spec.topology, spec.memory_mb))?;
        let mem = files.map()?;
        Ok::<_, String>((files, mem))
    });
    let mut cmd = qemu::command(spec, ram.as_ref().and_then(|r| r.as_ref().ok()).map(|(f, _)| f));
    if !spec.interactive {
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
    }
    cmd.stderr(std::fs::File::create(spec.run_dir.join(qemu::QEMU_LOG))?);
    tracing::debug!(?cmd, "starting QEMU");
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!(
            "{QEMU} not found: install QEMU (Debian: `apt-get install -t bookworm-backports qemu-system-x86`)"
        ),
        _ => anyhow::anyhow!("cannot start {QEMU}: {e}"),
    })?;
    Ok(Started { child, ram, feeding: None })
}

/// One QEMU run to its end, its wall-clock limit or its boot deadline.
fn boot_once(
    spec: &VmSpec,
    observer: &mut dyn VmObserver,
    start: &mut StartFrom,
) -> anyhow::Result<(VmExit, Duration, Registers)> {
    let started = Instant::now();
    let Started { mut child, ram, feeding } = start_qemu(spec, observer, start)?;
    let mem: Result<&GuestMemory, &str> = match &ram {
        Some(Ok((_, mem))) => Ok(mem),
        Some(Err(why)) => Err(why.as_str()),
        None => Err("guest memory not requested"),
    };
    let channel = spec.run_dir.join(qemu::CHANNEL_LOG);
    let mut guest_spoke = false;
    let mut regs = None;
    let mut tail = ChannelTail::default();
    let exit = loop {
        if let Some(status) = child.try_wait()? {
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "QEMU exited");
            use std::os::unix::process::ExitStatusExt;
            break match status.signal() {
                Some(signal) => VmExit::Killed { signal },
                None => VmExit::Exited { code: status.code() },
            };
        }
        let elapsed = started.elapsed();
        for msg in tail.poll(&channel) {
            if !guest_spoke {
                tracing::debug!(ms = elapsed.as_millis() as u64, "the guest's first message");
                guest_spoke = true;
            }
            observer.on_message(&msg, elapsed);
        }
        observer.on_tick(mem, elapsed);
        let stalled = match spec.boot_deadline {
            Some(deadline) if !guest_spoke && elapsed >= deadline => {
                guest_spoke = std::fs::metadata(&channel).is_ok_and(|m| m.len() > 0);
                (!guest_spoke).then_some(VmExit::BootStalled { deadline })
            }
            _ => None,
        };
        if let Some(exit) =
            stalled.or((elapsed >= spec.time_limit).then_some(VmExit::TimedOut { limit: spec.time_limit }))
        {
            // A hang: where each vCPU was is worth the few ms before the kill.
            if let VmExit::TimedOut { .. } = exit {
                regs = Some(qmp::stop_and_read_registers(&spec.run_dir).map_err(|e| format!("{e:#}")));
            }
            let _ = child.kill();
            let _ = child.wait();
            break exit;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // What the guest wrote last, right before powering off.
    for msg in tail.poll(&channel).into_iter().chain(tail.decoder.finish()) {
        observer.on_message(&msg, started.elapsed());
    }
    if let Some((done, feeder)) = feeding {
        drop(done);
        if let Ok(Err(e)) = feeder.join() {
            *start = StartFrom::Unfed(format!("{}, but feeding its agent failed: {e:#}", start.words()));
        }
    }
    Ok((exit, started.elapsed(), regs))
}

/// The channel file decoded as it grows, for the observer. What
/// [`VmOutput::collect`] decodes after the run stays the record.
#[derive(Default)]
struct ChannelTail {
    file: Option<std::fs::File>,
    read: u64,
    decoder: Decoder,
}

impl ChannelTail {
    fn poll(&mut self, path: &std::path::Path) -> Vec<GuestMessage> {
        use std::io::Read;
        if self.file.is_none() {
            self.file = std::fs::File::open(path).ok();
        }
        let Some(f) = self.file.as_mut() else { return Vec::new() };
        let mut buf = Vec::new();
        // Bounded like the final read: a flooding guest cannot make the
        // loop buffer without end.
        let room = MAX_CHANNEL_BYTES.saturating_sub(self.read);
        let n = f.take(room.min(1 << 20)).read_to_end(&mut buf).unwrap_or(0);
        self.read += n as u64;
        self.decoder.feed(&buf[..n])
    }
}

impl VmOutput {
    /// Reads what a finished VM left in its run directory. Never fails:
    /// missing files read as empty, damaged channel bytes are counted.
    pub fn collect(run_dir: &std::path::Path, exit: VmExit, wall: Duration) -> VmOutput {
        let channel = read_tail(&run_dir.join(qemu::CHANNEL_LOG), MAX_CHANNEL_BYTES, false);
        let mut decoder = Decoder::new();
        let mut messages = decoder.feed(&channel);
        messages.extend(decoder.finish());
        VmOutput {
            console: String::from_utf8_lossy(&read_tail(&run_dir.join(qemu::CONSOLE_LOG), MAX_CONSOLE_BYTES, true))
                .into_owned(),
            messages,
            channel_damage: (decoder.damaged_bytes, decoder.damaged_frames),
            exit,
            qemu_log: String::from_utf8_lossy(&read_tail(&run_dir.join(qemu::QEMU_LOG), MAX_CONSOLE_BYTES, true))
                .into_owned(),
            wall,
            boot_retries: 0,
            vcpu_registers: None,
            retried_after: None,
            start: String::new(),
        }
    }
}

/// The guest decides how much it writes: the host reads at most this much.
const MAX_CHANNEL_BYTES: u64 = 256 << 20;
const MAX_CONSOLE_BYTES: u64 = 8 << 20;

/// Reads at most `max` bytes of `p`: its start, or its end when `tail`
/// (a console's last lines matter most). Missing files read as empty.
fn read_tail(p: &std::path::Path, max: u64, tail: bool) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(p) else { return Vec::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if tail && len > max {
        let _ = f.seek(SeekFrom::Start(len - max));
    }
    let mut out = Vec::new();
    let _ = f.take(max).read_to_end(&mut out);
    out
}

/// Builds the cached base image for a test binary and optional scheduler
/// (and, for a shell, busybox).
pub(crate) fn base_initramfs(
    test_binary: &std::path::Path,
    scheduler: Option<(&std::path::Path, &str)>,
    kernel_config: Option<(&std::path::Path, &str)>,
    busybox: Option<&std::path::Path>,
) -> anyhow::Result<PathBuf> {
    let mut img = initramfs::ImageSpec::default();
    img.add_executable(test_binary, "/init").context("adding the test binary")?;
    if let Some(b) = busybox {
        img.add_busybox(b).context("adding busybox")?;
    }
    if let Some((host, guest)) = scheduler {
        img.add_executable(host, guest).context("adding the scheduler binary")?;
    }
    if let Some((config, release)) = kernel_config {
        let bytes = std::fs::read(config).with_context(|| format!("reading {}", config.display()))?;
        img.add_bytes(&format!("/boot/config-{release}"), bytes);
    }
    img.build_cached()
}
