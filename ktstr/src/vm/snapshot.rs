//! Test VMs started from a snapshot of a booted guest instead of a boot.
//!
//! A snapshot is a guest booted once to a small agent (busybox sh as PID 1,
//! blocked reading a virtio-serial port), saved with QEMU's migration to a
//! file: its RAM stays in the memory-backend files it ran on
//! (`x-ignore-shared`), only device state (~350 KB) is written. A run
//! restores it (`-incoming defer`, RAM from a sparse copy of those files,
//! so the host monitor can read it and the snapshot stays pristine), and
//! streams the agent one line (the wall clock, an RNG seed, how many cpio
//! archives follow) and the run's initramfs (the cached base image and the
//! run's own segment). The agent unpacks them over its root and execs
//! `/init`, the test binary, as PID 1: from there the run is a cold boot's.
//!
//! Keyed by everything the guest saw at boot: the kernel image, topology,
//! memory, accelerator, kernel command line, the agent image and QEMU.
//! QEMU accepts a different topology of the same vCPU count, `-append` or
//! `-initrd` silently on restore and ignores them, so the key must hold
//! them. Made on first use under a lock, in a staging directory renamed
//! into place whole.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::memory::RamFiles;
use super::{initramfs, qemu, qmp, VmSpec};

/// Bump when the agent or the device list changes.
const FORMAT: &str = "ktstr-snapshot-v1";
/// The agent's virtio-serial port (`/dev/vport0p1` in the guest).
pub(crate) const AGENT_SOCKET: &str = "agent.sock";
/// What the agent prints on the console once it waits on its port.
const READY: &str = "ktstr-agent: ready";
/// Deferred boot work (TSC refinement, ~2.1 s after boot) would otherwise
/// run after every restore: the save waits it out.
const SETTLE: Duration = Duration::from_millis(2500);
const STATE: &str = "state";
/// Snapshots kept; older ones are removed.
const KEEP: usize = 16;

/// PID 1 of the snapshot: mounts what it needs, says it is ready, and
/// blocks on its port; after a restore it sets the clock, seeds the RNG,
/// unpacks the run's archives over the root and execs the test binary.
const AGENT: &str = r#"#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
busybox mount -t devtmpfs dev /dev
busybox mount -t proc proc /proc
busybox mount -t sysfs sys /sys
while [ ! -e /dev/vport0p1 ]; do busybox sleep 0.01; done
exec 3</dev/vport0p1
echo "ktstr-agent: ready" > /dev/ttyS0
read -r now seed archives <&3
busybox date -s "@$now" > /dev/null
echo "$seed" > /dev/urandom
cd /
i=0
while [ "$i" -lt "$archives" ]; do
    busybox cpio -idmu <&3 2> /dev/null || echo "ktstr-agent: cpio $i failed" > /dev/ttyS0
    i=$((i + 1))
done
exec 3<&-
busybox umount /sys
busybox umount /proc
busybox umount /dev
exec /init
"#;

/// A saved guest: its RAM files (one per NUMA node) and device state.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub key: String,
    pub dir: PathBuf,
    pub nodes: usize,
}

impl Snapshot {
    fn ram(&self) -> Vec<PathBuf> {
        (0..self.nodes).map(|n| self.dir.join(format!("ram-node{n}"))).collect()
    }

    fn state(&self) -> PathBuf {
        self.dir.join(STATE)
    }
}

/// Whether runs start from snapshots: yes, unless `KTSTR_SNAPSHOT=0`.
pub fn wanted() -> bool {
    std::env::var("KTSTR_SNAPSHOT").map_or(true, |v| v != "0")
}

/// The agent's image: busybox and the agent as `/init`.
fn agent_image() -> Result<PathBuf> {
    let busybox = super::busybox::find()?;
    let mut img = initramfs::ImageSpec::default();
    img.add_busybox(&busybox)?;
    img.add_bytes("/init", AGENT.as_bytes().to_vec());
    img.build_cached()
}

/// The snapshot's key: everything the guest saw at boot.
fn key(spec: &VmSpec, agent: &Path) -> Result<String> {
    let k = std::fs::metadata(&spec.kernel).with_context(|| format!("kernel {}", spec.kernel.display()))?;
    let qemu_bin = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(qemu::QEMU)).find(|p| p.is_file()))
        .context("QEMU not found")?;
    let q = std::fs::metadata(&qemu_bin)?;
    let mtime = |m: &std::fs::Metadata| m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let text = format!(
        "{FORMAT}\n{}\n{}\n{:?}\n{}\n{}\n{}\n{}\n{}\n{:?}",
        spec.kernel.display(),
        k.len(),
        mtime(&k),
        spec.topology,
        spec.memory_mb,
        spec.accel.qemu_arg(),
        spec.cmdline(),
        agent.display(),
        (qemu_bin, q.len(), mtime(&q)),
    );
    Ok(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes())))
}

/// The snapshot for `spec`, made now if there is none.
pub(crate) fn ensure(spec: &VmSpec) -> Result<Snapshot> {
    let agent = agent_image().context("the agent's image")?;
    let key = key(spec, &agent)?;
    let root = crate::cache::cache_subdir("snapshots");
    std::fs::create_dir_all(&root)?;
    let nodes = spec.topology.numa_nodes.max(1) as usize;
    let snap = Snapshot { key: key.clone(), dir: root.join(&key), nodes };
    if snap.state().is_file() {
        return Ok(snap);
    }
    // One maker per key; the others wait and then find it made.
    let lock = File::create(root.join(format!("{key}.lock")))?;
    // SAFETY: flock on our own descriptor; released when `lock` closes.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!("locking snapshot {key}: {}", std::io::Error::last_os_error());
    }
    if snap.state().is_file() {
        return Ok(snap);
    }
    let staging = root.join(format!(".{key}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let made = save(spec, &agent, &Snapshot { dir: staging.clone(), ..snap.clone() });
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    std::fs::rename(&staging, &snap.dir).with_context(|| format!("placing snapshot {}", snap.dir.display()))?;
    evict(&root);
    Ok(snap)
}

/// The QEMU command of a snapshot's VM, saving (`incoming` false) or
/// restoring: the spec's own devices plus the agent's port.
fn command(spec: &VmSpec, ram: &RamFiles, incoming: bool) -> std::process::Command {
    let mut cmd = qemu::command(spec, Some(ram));
    let sock = spec.run_dir.join(AGENT_SOCKET);
    cmd.args(["-device", "virtio-serial-pci,id=agentser"]);
    cmd.arg("-chardev").arg(format!("socket,id=agent,path={},server=on,wait=off", sock.display()));
    cmd.args(["-device", "virtserialport,bus=agentser.0,nr=1,chardev=agent,name=ktstr.agent"]);
    if incoming {
        cmd.args(["-incoming", "defer"]);
    }
    cmd
}

/// Boots the agent on the snapshot's own RAM files and saves it.
fn save(spec: &VmSpec, agent: &Path, snap: &Snapshot) -> Result<()> {
    let started = Instant::now();
    let boot = VmSpec { initrd: agent.to_path_buf(), run_dir: snap.dir.join("boot"), ..spec.clone() };
    std::fs::create_dir_all(&boot.run_dir)?;
    let ram =
        RamFiles::at(&snap.ram(), &qemu::node_sizes_mb(&spec.topology, spec.memory_mb)).map_err(anyhow::Error::msg)?;
    let mut child = command(&boot, &ram, false)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(File::create(boot.run_dir.join(qemu::QEMU_LOG))?)
        .spawn()
        .with_context(|| format!("starting {}", qemu::QEMU))?;
    let console = boot.run_dir.join(qemu::CONSOLE_LOG);
    let result = (|| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&console).is_ok_and(|c| c.contains(READY)) {
            if let Some(status) = child.try_wait()? {
                bail!("the agent's VM ended before it was ready ({status})");
            }
            anyhow::ensure!(Instant::now() < deadline, "the agent did not get ready within 60s");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(SETTLE);
        qmp::save_state(&boot.run_dir.join(qmp::SOCKET), &snap.state())
    })();
    let _ = child.kill();
    let _ = child.wait();
    drop(ram);
    result?;
    tracing::debug!(key = snap.key, ms = started.elapsed().as_millis() as u64, "snapshot saved");
    Ok(())
}

/// A VM restored from `snap` and fed the run's image: QEMU running, its
/// RAM in `ram` (a copy the monitor may read), the agent's port held open
/// by the feeding thread until the guest has read everything.
pub(crate) struct Restored {
    pub child: std::process::Child,
    pub ram: RamFiles,
    /// Dropped when the VM has ended: the feeder lets the port go.
    pub done: std::sync::mpsc::Sender<()>,
    /// Joined after the VM ended (its socket is gone then, so a write
    /// still in progress fails rather than hangs).
    pub feeder: std::thread::JoinHandle<Result<()>>,
    pub restore_ms: u64,
}

/// Restores `snap` for `spec` and starts streaming `spec.initrd` (whose
/// cpio archives number `archives`) to the agent.
pub(crate) fn restore(spec: &VmSpec, snap: &Snapshot, archives: u32) -> Result<Restored> {
    let started = Instant::now();
    let ram = RamFiles::copy_of(&snap.ram()).map_err(anyhow::Error::msg)?;
    let mut cmd = command(spec, &ram, true);
    tracing::debug!(?cmd, snapshot = snap.key, "starting QEMU to restore a snapshot");
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(File::create(spec.run_dir.join(qemu::QEMU_LOG))?)
        .spawn()
        .with_context(|| format!("starting {}", qemu::QEMU))?;
    if let Err(e) = qmp::load_state(&spec.run_dir.join(qmp::SOCKET), &snap.state()) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e.context(format!("restoring snapshot {}", snap.key)));
    }
    let restore_ms = started.elapsed().as_millis() as u64;
    let sock = spec.run_dir.join(AGENT_SOCKET);
    let initrd = spec.initrd.clone();
    let (done, wait) = std::sync::mpsc::channel();
    let feeder = std::thread::spawn(move || feed(&sock, &initrd, archives, wait));
    Ok(Restored { child, ram, done, feeder, restore_ms })
}

/// The agent's line, then the run's image, on its port; the port is held
/// open until `done` is dropped (the VM has ended): a socket closed early
/// could drop what QEMU has not yet read from it.
fn feed(sock: &Path, initrd: &Path, archives: u32, done: std::sync::mpsc::Receiver<()>) -> Result<()> {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(sock)
        .with_context(|| format!("connecting to the agent's port {}", sock.display()))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let mut seed = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut seed)?;
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(s, "{now} {hex} {archives}")?;
    let mut img = File::open(initrd).with_context(|| format!("reading {}", initrd.display()))?;
    std::io::copy(&mut img, &mut s).context("streaming the image to the agent")?;
    s.flush()?;
    let _ = done.recv();
    Ok(())
}

/// Keeps the newest [`KEEP`] snapshots.
fn evict(root: &Path) {
    let Ok(rd) = std::fs::read_dir(root) else { return };
    let snapshots = rd.flatten().map(|e| e.path()).filter(|p| p.join(STATE).is_file());
    crate::cache::keep_newest(snapshots, KEEP, |d| {
        let _ = std::fs::remove_dir_all(d);
    });
}
