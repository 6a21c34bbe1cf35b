//! Where ktstr keeps things between runs (kernels, initramfs images, locks,
//! schedulers installed from the crates registry).

use std::path::{Path, PathBuf};

/// Root of ktstr's cache: `$KTSTR_CACHE_DIR`, else `$XDG_CACHE_HOME/ktstr`,
/// else `~/.cache/ktstr`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("KTSTR_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("ktstr");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache").join("ktstr")
}

/// A named subdirectory of the cache root (not created).
pub fn cache_subdir(name: &str) -> PathBuf {
    cache_root().join(name)
}

/// Keeps the `keep` newest of `entries` (by modification time) and hands
/// the rest to `remove`: the one eviction rule of every cache directory.
pub(crate) fn keep_newest(entries: impl Iterator<Item = PathBuf>, keep: usize, remove: fn(&Path)) {
    let mut dated: Vec<_> = entries.filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p))).collect();
    dated.sort();
    let excess = dated.len().saturating_sub(keep);
    for (_, p) in dated.into_iter().take(excess) {
        remove(&p);
    }
}

/// Whether process `pid` exists (the owner of a lock, a staging
/// directory or a RAM file left behind).
pub(crate) fn process_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
        .map_or_else(|e| e != nix::errno::Errno::ESRCH, |_| true)
}

/// Removes the entries of `dir` that a process which died without
/// cleaning up (a killed test run) left: those whose name `owner` maps to
/// a process that no longer exists. Returns what it removed.
pub(crate) fn remove_dead_owned(dir: &Path, owner: impl Fn(&str) -> Option<i32>) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in rd.flatten() {
        let Some(pid) = owner(&entry.file_name().to_string_lossy()) else { continue };
        if pid == std::process::id() as i32 || process_alive(pid) {
            continue;
        }
        let path = entry.path();
        let gone = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// The cache root, made if missing, once a file could be written in it:
/// a read-only or full cache is named up front, with the fix, instead of
/// failing later in whichever of its users writes first (the images, the
/// snapshots, the CPU-slot locks). The io error stays in the chain, so a
/// full disk is still told apart as the host's (`vm::host_fault`).
pub fn writable_root() -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    let root = cache_root();
    let probe = root.join(format!(".write-check-{}", std::process::id()));
    let written = std::fs::create_dir_all(&root).and_then(|()| std::fs::write(&probe, b"ktstr\n"));
    let _ = std::fs::remove_file(&probe);
    written.with_context(|| {
        format!(
            "the ktstr cache {} is not writable: point KTSTR_CACHE_DIR at a writable directory with space (ktstr \
             keeps kernels, images, snapshots and CPU-slot locks there)",
            root.display()
        )
    })?;
    Ok(root)
}

/// A regular file anyone may execute.
pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

pub mod schedulers;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_dead_processes_left_is_removed() {
        let dir = std::env::temp_dir().join(format!("ktstr-dead-owned-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A process that has ended: its pid is free.
        let mut done = std::process::Command::new("true").spawn().unwrap();
        let dead = done.id();
        done.wait().unwrap();
        let me = std::process::id();
        for name in [format!("f-{dead}"), format!("f-{me}"), "f-x".to_string()] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        std::fs::create_dir_all(dir.join(format!("d-{dead}")).join("inner")).unwrap();
        let removed = remove_dead_owned(&dir, |n| n.split('-').nth(1)?.parse().ok());
        let mut names: Vec<String> =
            removed.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, [format!("d-{dead}"), format!("f-{dead}")]);
        assert!(dir.join(format!("f-{me}")).exists() && dir.join("f-x").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
