//! Where ktstr keeps things between runs (kernels, initramfs images, locks,
//! schedulers installed from the crates registry).

use std::path::{Path, PathBuf};

/// Root of ktstr's cache: `$KTSTR_CACHE_DIR`, else `$XDG_CACHE_HOME/ktstr`,
/// else `~/.cache/ktstr`.
pub(crate) fn cache_root() -> PathBuf {
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
pub(crate) fn cache_subdir(name: &str) -> PathBuf {
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

/// A regular file anyone may execute.
pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

pub mod schedulers;
