//! Where ktstr keeps things between runs (kernels, initramfs images, locks,
//! schedulers installed from the crates registry).

use std::path::PathBuf;

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

pub mod schedulers;
