//! The filesystems a scheduler test needs, mounted by PID 1.

use nix::mount::{mount, MsFlags};

/// (source, target, fstype) in mount order.
const MOUNTS: &[(&str, &str, &str)] = &[
    ("proc", "/proc", "proc"),
    ("sysfs", "/sys", "sysfs"),
    ("devtmpfs", "/dev", "devtmpfs"),
    ("tmpfs", "/tmp", "tmpfs"),
    ("tmpfs", "/run", "tmpfs"),
    ("cgroup2", "/sys/fs/cgroup", "cgroup2"),
    ("tracefs", "/sys/kernel/tracing", "tracefs"),
    ("debugfs", "/sys/kernel/debug", "debugfs"),
    ("bpf", "/sys/fs/bpf", "bpf"),
];

/// Mounts everything it can and returns what failed, in words; the caller
/// reports them once the channel is open.
pub(crate) fn mount_all() -> Vec<String> {
    let mut errors = Vec::new();
    for &(src, target, fstype) in MOUNTS {
        let _ = std::fs::create_dir_all(target);
        match mount(Some(src), target, Some(fstype), MsFlags::empty(), None::<&str>) {
            // Mounted already: a snapshot's agent may leave some mounted.
            Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
            Err(e) => errors.push(format!("mount {fstype} on {target}: {e}")),
        }
    }
    // Let child cgroups use every controller the kernel offers.
    if let Ok(ctrls) = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers") {
        let enable: String = ctrls.split_whitespace().map(|c| format!("+{c} ")).collect();
        if let Err(e) = std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", enable.trim()) {
            errors.push(format!("enable cgroup controllers `{}`: {e}", enable.trim()));
        }
    }
    // Per-program run time and counts, read later by the monitor.
    if let Err(e) = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1") {
        errors.push(format!("enable BPF run-time stats: {e}"));
    }
    errors
}
