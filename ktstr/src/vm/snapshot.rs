//! Test VMs started from a snapshot of a booted guest instead of a boot.
//!
//! A snapshot is a guest booted once to a small agent (busybox sh as PID 1,
//! blocked reading a virtio-serial port), saved with QEMU's migration to a
//! file: its RAM stays in the memory-backend files it ran on
//! (`x-ignore-shared`), only device state (~350 KB) is written. A run
//! restores it (`-incoming defer`, RAM from a sparse copy of those files,
//! so the host monitor can read it and the snapshot stays pristine), and
//! feeds the agent in steps: a line (the wall clock, an RNG seed, how many
//! cpio archives follow, whether it is the last step), then the archives,
//! which the agent unpacks over its root. After the last it execs `/init`,
//! the test binary, as PID 1: from there the run is a cold boot's.
//!
//! Two levels. A *booted* snapshot (the agent waiting for its first step)
//! is keyed by everything the guest saw at boot: the kernel image,
//! topology, memory, accelerator, kernel command line, the agent image and
//! QEMU. QEMU accepts a different topology of the same vCPU count,
//! `-append` or `-initrd` silently on restore and ignores them, so the key
//! must hold them. The first step is the run's cached base image (the test
//! binary, its libraries, the scheduler): after it the agent says
//! `unpacked` and waits, and the host saves that guest too, an *unpacked*
//! snapshot keyed by the booted one and the base image's content. Later
//! runs of the same test binary restore that one and send only their own
//! segment: under emulation every byte the guest copies is slow (~40 MB/s
//! over the port), and a debug test binary is tens of MB.
//!
//! Each is made on first use under a lock, in a staging directory renamed
//! into place whole.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::memory::RamFiles;
use super::{initramfs, qemu, qmp, VmSpec};

/// Bump when the agent or the device list changes.
const FORMAT: &str = "ktstr-snapshot-v2";
/// The agent's virtio-serial port (`/dev/vport0p1` in the guest).
pub(crate) const AGENT_SOCKET: &str = "agent.sock";
/// What the agent prints on the console once it waits on its port.
const READY: &str = "ktstr-agent: ready";
/// Deferred boot work (TSC refinement, ~2.1 s after boot) would otherwise
/// run after every restore: the save waits it out.
const SETTLE: Duration = Duration::from_millis(2500);
const STATE: &str = "state";
/// Booted snapshots kept (one per topology and kernel, ~130 MB each);
/// older ones are removed.
const KEEP_BOOTED: usize = 16;
/// Unpacked snapshots kept (one per test binary, scheduler and topology,
/// each the pages that differ from its booted one, ~20-60 MB): a suite's
/// worth.
const KEEP_UNPACKED: usize = 40;
/// An unpacked snapshot is only made with this much free in the cache.
const MIN_FREE: u64 = 4 << 30;

/// PID 1 of the snapshot: mounts what it needs, says it is ready, and
/// blocks on its port. Each step: set the clock, seed the RNG, unpack the
/// step's archives, and, unless it was the last, answer `unpacked` and
/// wait for the next (the host may save the guest there). A read with no
/// host on the port returns at once (end of file): the agent waits on.
const AGENT: &str = r#"#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
busybox mkdir -p /dev /proc /sys
busybox mount -t devtmpfs dev /dev
busybox mount -t proc proc /proc
busybox mount -t sysfs sys /sys
while [ ! -e /dev/vport0p1 ]; do busybox sleep 0.01; done
exec 3<>/dev/vport0p1
echo "ktstr-agent: ready" > /dev/ttyS0
cd /
while :; do
    until read -r now seed archives last <&3 && [ -n "$last" ]; do busybox usleep 10000; done
    busybox date -s "@$now" > /dev/null
    echo "$seed" > /dev/urandom
    i=0
    while [ "$i" -lt "$archives" ]; do
        busybox cpio -idmu <&3 2> /dev/null || echo "ktstr-agent: cpio failed" > /dev/ttyS0
        i=$((i + 1))
    done
    [ "$last" = 1 ] && break
    echo unpacked >&3
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
    /// For a snapshot with a base image unpacked: the booted snapshot it
    /// was made from, whose RAM its own lies over (only the pages that
    /// differ are its own: a few tens of MB rather than ~130).
    pub over: Option<PathBuf>,
}

impl Snapshot {
    fn ram_in(dir: &Path, nodes: usize) -> Vec<PathBuf> {
        (0..nodes).map(|n| dir.join(format!("ram-node{n}"))).collect()
    }

    fn ram(&self) -> Vec<PathBuf> {
        Snapshot::ram_in(&self.dir, self.nodes)
    }

    /// Its RAM as layers to copy in order.
    fn ram_layers(&self) -> Vec<Vec<PathBuf>> {
        self.over.iter().map(|d| Snapshot::ram_in(d, self.nodes)).chain([self.ram()]).collect()
    }

    fn state(&self) -> PathBuf {
        self.dir.join(STATE)
    }

    /// Whether the agent has a base image unpacked (and waits for the
    /// run's segment) rather than waiting for its first step.
    pub fn unpacked(&self) -> bool {
        self.over.is_some()
    }

    /// The snapshot of this booted guest with `base` unpacked (which may
    /// not exist yet): base images are named by their content.
    fn with_base(&self, base: &Path) -> Snapshot {
        let content = base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let key = format!("{}-{content}", self.key);
        let dir = self.dir.with_file_name(&key);
        Snapshot { key, dir, nodes: self.nodes, over: Some(self.dir.clone()) }
    }

    /// Marks it (and what it lies over) used now: eviction keeps the newest.
    fn touch(&self) {
        for d in [Some(&self.dir), self.over.as_ref()].into_iter().flatten() {
            let _ = File::open(d).and_then(|d| d.set_modified(std::time::SystemTime::now()));
        }
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

/// The snapshot to start `spec` from: the one with `base` unpacked if
/// there is one, else the booted one, made now if there is none.
pub(crate) fn ensure(spec: &VmSpec, base: &Path) -> Result<Snapshot> {
    let booted = ensure_booted(spec)?;
    let unpacked = booted.with_base(base);
    let snap = if unpacked.state().is_file() { unpacked } else { booted };
    snap.touch();
    Ok(snap)
}

/// The booted snapshot for `spec`, made now if there is none.
fn ensure_booted(spec: &VmSpec) -> Result<Snapshot> {
    let agent = agent_image().context("the agent's image")?;
    let key = key(spec, &agent)?;
    let root = crate::cache::cache_subdir("snapshots");
    std::fs::create_dir_all(&root)?;
    let nodes = spec.topology.numa_nodes.max(1) as usize;
    let snap = Snapshot { key: key.clone(), dir: root.join(&key), nodes, over: None };
    if snap.state().is_file() {
        return Ok(snap);
    }
    // One maker per key; the others wait and then find it made.
    let _lock = lock(&root, &key, true)?;
    if snap.state().is_file() {
        return Ok(snap);
    }
    let staging = staging_dir(&root, &key)?;
    let made = save(spec, &agent, &Snapshot { dir: staging.clone(), ..snap.clone() });
    // Layers over an earlier guest of this key (evicted since) would lie
    // over the wrong RAM now.
    for child in std::fs::read_dir(&root)?.flatten() {
        if child.file_name().to_string_lossy().starts_with(&format!("{key}-")) {
            let _ = std::fs::remove_dir_all(child.path());
        }
    }
    place(made, &staging, &snap)?;
    Ok(snap)
}

/// The lock of snapshot `key`, held while it is made: waited for
/// (`wait`), or `None` if another process holds it. Eviction removes the
/// lock files of snapshots that are gone, holding them: a lock taken on a
/// file that is no longer at its path is taken again.
fn lock(root: &Path, key: &str, wait: bool) -> Result<Option<File>> {
    use std::os::unix::fs::MetadataExt;
    let path = root.join(format!("{key}.lock"));
    loop {
        let lock = File::create(&path)?;
        let op = if wait { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
        // SAFETY: flock on our own descriptor; released when `lock` closes.
        if unsafe { libc::flock(lock.as_raw_fd(), op) } != 0 {
            let e = std::io::Error::last_os_error();
            if !wait && e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            bail!("locking snapshot {key}: {e}");
        }
        if std::fs::metadata(&path).is_ok_and(|m| m.ino() == lock.metadata().map_or(0, |l| l.ino())) {
            return Ok(Some(lock));
        }
    }
}

/// A fresh staging directory for snapshot `key`, named by this process
/// (so a dead maker's is recognised and removed).
fn staging_dir(root: &Path, key: &str) -> Result<PathBuf> {
    let staging = root.join(format!(".{key}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    Ok(staging)
}

/// Renames a made snapshot into place, or removes what a failed making
/// left; then keeps the cache within its bounds.
fn place(made: Result<()>, staging: &Path, snap: &Snapshot) -> Result<()> {
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(staging);
        return Err(e);
    }
    std::fs::rename(staging, &snap.dir).with_context(|| format!("placing snapshot {}", snap.dir.display()))?;
    if let Some(root) = snap.dir.parent() {
        evict(root);
    }
    Ok(())
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
    for p in snap.ram() {
        super::memory::punch_zero_pages(&p).with_context(|| format!("compacting {}", p.display()))?;
    }
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

/// Restores `snap` for `spec` and starts feeding the agent `spec.initrd`,
/// which is the image `base` followed by the run's segment.
pub(crate) fn restore(spec: &VmSpec, snap: &Snapshot, base: &Path) -> Result<Restored> {
    let started = Instant::now();
    let ram = RamFiles::copy_of(&snap.ram_layers()).map_err(anyhow::Error::msg)?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "restore: RAM copied");
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
    tracing::debug!(ms = restore_ms, snapshot = snap.key, "restore: guest running");
    let feed = Feed {
        run_dir: spec.run_dir.clone(),
        initrd: spec.initrd.clone(),
        base_len: std::fs::metadata(base).with_context(|| format!("reading {}", base.display()))?.len(),
        // Fed the base, the guest is saved with it unpacked for later runs.
        save_unpacked: (!snap.unpacked()).then(|| (snap.with_base(base), ram.paths.clone())),
    };
    let (done, wait) = std::sync::mpsc::channel();
    let feeder = std::thread::spawn(move || feed.run(wait));
    Ok(Restored { child, ram, done, feeder, restore_ms })
}

/// What the feeding thread needs.
struct Feed {
    run_dir: PathBuf,
    initrd: PathBuf,
    /// Where in `initrd` the base image ends and the run's segment begins.
    base_len: u64,
    /// For a booted snapshot: the unpacked one to make, and the RAM files
    /// the restored guest runs on.
    save_unpacked: Option<(Snapshot, Vec<PathBuf>)>,
}

impl Feed {
    /// The steps on the agent's port: the base image unless the snapshot
    /// has it (then, while the agent waits, the guest may be saved with
    /// it), then the run's segment. The port is held open until `done` is
    /// dropped (the VM has ended): a socket closed early could drop what
    /// QEMU has not yet read from it.
    fn run(self, done: std::sync::mpsc::Receiver<()>) -> Result<()> {
        let sock = self.run_dir.join(AGENT_SOCKET);
        let mut s = std::os::unix::net::UnixStream::connect(&sock)
            .with_context(|| format!("connecting to the agent's port {}", sock.display()))?;
        let mut img = File::open(&self.initrd).with_context(|| format!("reading {}", self.initrd.display()))?;
        let started = Instant::now();
        if let Some((unpacked, ram)) = &self.save_unpacked {
            step(&mut s, (&mut img).take(self.base_len), false).context("feeding the agent the base image")?;
            wait_unpacked(&s)?;
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "restore: base image unpacked");
            if let Err(e) = save_unpacked(&self.run_dir, unpacked, ram) {
                tracing::warn!("the guest with its base image unpacked was not saved: {e:#}");
            }
        } else {
            std::io::Seek::seek(&mut img, std::io::SeekFrom::Start(self.base_len))?;
        }
        step(&mut s, img, true).context("feeding the agent the run's segment")?;
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "restore: image fed");
        let _ = done.recv();
        Ok(())
    }
}

/// One step: the agent's line (the clock, an RNG seed, one archive,
/// whether it is the last step), then the archive.
fn step(s: &mut std::os::unix::net::UnixStream, mut archive: impl std::io::Read, last: bool) -> Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let mut seed = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut seed)?;
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(s, "{now} {hex} 1 {}", u8::from(last))?;
    std::io::copy(&mut archive, s)?;
    s.flush()?;
    Ok(())
}

/// Waits for the agent's `unpacked` (it waits for its next step then).
fn wait_unpacked(s: &std::os::unix::net::UnixStream) -> Result<()> {
    // Generous: unpacking is the guest copying the image, slow under TCG.
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(s).take(64), &mut line)
        .context("waiting for the agent to unpack the base image")?;
    anyhow::ensure!(line.trim() == "unpacked", "the agent answered {line:?}, not `unpacked`");
    Ok(())
}

/// Saves the running guest as `snap` (its agent waiting with the base
/// image unpacked): device state through QMP, RAM copied from `ram` while
/// the guest is stopped; then it runs on. Made by one process at a time;
/// if another is making it, this one does not wait.
fn save_unpacked(run_dir: &Path, snap: &Snapshot, ram: &[PathBuf]) -> Result<()> {
    let started = Instant::now();
    let root = snap.dir.parent().context("snapshot directory")?;
    let free = free_bytes(root);
    if free < MIN_FREE {
        bail!("{} has {} MiB free, fewer than the {} MiB kept spare", root.display(), free >> 20, MIN_FREE >> 20);
    }
    let Some(_lock) = lock(root, &snap.key, false)? else { return Ok(()) };
    if snap.state().is_file() {
        return Ok(());
    }
    let staging = staging_dir(root, &snap.key)?;
    let target = Snapshot { dir: staging.clone(), ..snap.clone() };
    let under = snap.ram_layers().remove(0);
    let made = qmp::save_state_then_continue(&run_dir.join(qmp::SOCKET), &target.state(), || {
        for ((from, to), under) in ram.iter().zip(target.ram()).zip(&under) {
            File::create(&to)?.set_len(std::fs::metadata(from)?.len())?;
            super::memory::sparse_copy(from, &to, Some(under))
                .with_context(|| format!("copying {}", from.display()))?;
        }
        Ok(())
    });
    place(made, &staging, snap)?;
    tracing::debug!(key = snap.key, ms = started.elapsed().as_millis() as u64, "snapshot saved, base unpacked");
    Ok(())
}

/// Keeps the newest [`KEEP_BOOTED`] booted and [`KEEP_UNPACKED`] unpacked
/// snapshots, and removes the staging directories of makers that died.
fn evict(root: &Path) {
    let Ok(rd) = std::fs::read_dir(root) else { return };
    let (mut booted, mut unpacked) = (Vec::new(), Vec::new());
    for path in rd.flatten().map(|e| e.path()) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path.join(STATE).is_file() {
            if name.contains('-') { &mut unpacked } else { &mut booted }.push(path);
        }
    }
    let _ = remove_stale();
    let remove = |d: &Path| {
        let _ = std::fs::remove_dir_all(d);
    };
    crate::cache::keep_newest(booted.into_iter(), KEEP_BOOTED, remove);
    // One whose booted snapshot is gone is of no use: its RAM is a layer.
    let (orphans, unpacked): (Vec<_>, Vec<_>) = unpacked.into_iter().partition(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let booted = name.split('-').next().unwrap_or_default();
        !root.join(booted).join(STATE).is_file()
    });
    orphans.iter().for_each(|p| remove(p));
    crate::cache::keep_newest(unpacked.into_iter(), KEEP_UNPACKED, remove);
    remove_unused_locks(root);
}

/// Removes the lock files of snapshots that are gone, each while holding
/// it (nobody is making that snapshot then).
fn remove_unused_locks(root: &Path) {
    let Ok(rd) = std::fs::read_dir(root) else { return };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(key) = name.strip_suffix(".lock") else { continue };
        if root.join(key).exists() {
            continue;
        }
        if let Ok(Some(_held)) = lock(root, key, false) {
            if !root.join(key).exists() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The staging directories (`.<key>.<pid>`) of makers that died.
pub(crate) fn remove_stale() -> Vec<PathBuf> {
    let root = crate::cache::cache_subdir("snapshots");
    crate::cache::remove_dead_owned(&root, |n| n.strip_prefix('.')?.rsplit('.').next()?.parse().ok())
}

/// Free bytes on the file system holding `dir`.
fn free_bytes(dir: &Path) -> u64 {
    nix::sys::statvfs::statvfs(dir).map_or(0, |s| s.blocks_available() * s.fragment_size())
}
