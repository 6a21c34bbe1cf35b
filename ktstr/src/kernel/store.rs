//! The kernel cache on disk:
//!
//! ```text
//! <cache>/kernels/<release>/vmlinuz      the bzImage
//! <cache>/kernels/<release>/config       its .config (absent if unknown)
//! <cache>/kernels/<release>/meta.json    where it came from (KernelMeta)
//! <cache>/kernels/.apt/<suite>/          private apt state used by fetch
//! <cache>/kernels/.staging-*/            fetches in progress
//! <cache>/kernels/.lock                  held by the one fetch running
//! ```
//!
//! An entry appears by renaming a complete staging directory, so readers
//! never see half a kernel. Names starting with `.` are never entries.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::version::sort_newest_first;
use super::KernelImage;

pub const VMLINUZ: &str = "vmlinuz";
pub const CONFIG: &str = "config";
pub const META: &str = "meta.json";
const STAGING_PREFIX: &str = ".staging-";

/// Where a cached kernel came from, stored as `meta.json` beside it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KernelMeta {
    pub release: String,
    /// Debian suite it was fetched from (`trixie-backports`).
    pub suite: String,
    /// Kernel flavour (`cloud-amd64`).
    pub flavour: String,
    /// Debian package version (`7.3.4-1~bpo13+1`).
    pub debian_version: String,
    /// Packages downloaded to assemble it.
    pub packages: Vec<String>,
    /// Archive URI it came from.
    pub mirror: String,
    /// Whether its config has `CONFIG_SCHED_CLASS_EXT=y`.
    pub sched_ext: bool,
    /// Seconds since the Unix epoch.
    pub fetched_at: u64,
}

/// A kernel cache rooted at one directory (`<cache>/kernels`).
#[derive(Debug, Clone)]
pub struct KernelStore {
    dir: PathBuf,
}

impl KernelStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        KernelStore { dir: dir.into() }
    }

    /// `cache_subdir("kernels")`: honours `KTSTR_CACHE_DIR`.
    pub(crate) fn default_location() -> Self {
        Self::new(crate::cache::cache_subdir("kernels"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry for `release`, if complete.
    pub fn get(&self, release: &str) -> Option<KernelImage> {
        if release.starts_with('.') || release.contains('/') {
            return None;
        }
        let entry = self.dir.join(release);
        let vmlinuz = entry.join(VMLINUZ);
        if !vmlinuz.is_file() {
            return None;
        }
        let config = entry.join(CONFIG);
        Some(KernelImage { release: release.to_string(), vmlinuz, config: config.is_file().then_some(config) })
    }

    /// All complete entries, newest release first. Reads directory names
    /// only (plus two `stat`s each): no file contents, no subprocesses.
    pub fn list(&self) -> Vec<KernelImage> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<KernelImage> = rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|name| self.get(&name))
            .collect();
        sort_newest_first(&mut out, |k| &k.release);
        out
    }

    pub fn meta(&self, release: &str) -> Option<KernelMeta> {
        let text = fs::read_to_string(self.dir.join(release).join(META)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Takes the fetch lock (blocking), creating the cache directory.
    /// `on_wait` runs once if another process holds it.
    pub fn lock(&self, on_wait: impl FnOnce()) -> io::Result<nix::fcntl::Flock<File>> {
        use nix::fcntl::{Flock, FlockArg};
        fs::create_dir_all(&self.dir)?;
        let file = File::options().create(true).truncate(false).write(true).open(self.dir.join(".lock"))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(lock),
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                on_wait();
                Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))
            }
            Err((_, e)) => Err(io::Error::from(e)),
        }
    }

    /// Private apt state for one suite.
    pub(crate) fn apt_dir(&self, suite: &str) -> PathBuf {
        self.dir.join(".apt").join(suite)
    }

    /// Removes staging directories left by interrupted fetches and returns
    /// them. Call only while holding the lock: it guarantees no fetch is
    /// using one (a stronger test than the owner's pid, which a new process
    /// may have taken).
    pub(crate) fn clean_staging(&self) -> Vec<PathBuf> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(STAGING_PREFIX))
            .map(|e| e.path())
            .filter(|p| fs::remove_dir_all(p).is_ok())
            .collect()
    }

    /// A fresh, empty staging directory inside the cache (same filesystem,
    /// so installing is a rename).
    pub(crate) fn new_staging(&self) -> io::Result<PathBuf> {
        fs::create_dir_all(&self.dir)?;
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = self.dir.join(format!("{STAGING_PREFIX}{}-{nanos}", std::process::id()));
        fs::create_dir(&dir)?;
        Ok(dir)
    }

    /// Writes `vmlinuz`, `config` and `meta.json` into `entry_dir` (which
    /// must be inside a staging directory), then renames it into place as
    /// the entry for `meta.release`. If that entry already exists it is kept.
    pub fn install(
        &self,
        entry_dir: &Path,
        vmlinuz: &Path,
        config: Option<&Path>,
        meta: &KernelMeta,
    ) -> io::Result<KernelImage> {
        fs::create_dir_all(entry_dir)?;
        move_file(vmlinuz, &entry_dir.join(VMLINUZ))?;
        if let Some(config) = config {
            move_file(config, &entry_dir.join(CONFIG))?;
        }
        let json = serde_json::to_string_pretty(meta).map_err(io::Error::other)?;
        fs::write(entry_dir.join(META), json + "\n")?;
        for name in [VMLINUZ, CONFIG, META] {
            if let Ok(f) = File::open(entry_dir.join(name)) {
                f.sync_all()?;
            }
        }
        let target = self.dir.join(&meta.release);
        if self.get(&meta.release).is_none() {
            if target.exists() {
                // A broken entry (no vmlinuz): replace it.
                fs::remove_dir_all(&target)?;
            }
            fs::rename(entry_dir, &target)?;
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        self.get(&meta.release).ok_or_else(|| io::Error::other(format!("{} vanished after install", target.display())))
    }
}

impl KernelStore {
    /// Adopts an entry brought from elsewhere (`cargo ktstr archive`):
    /// `fill` writes its files (`vmlinuz`, `config`, `meta.json`, maybe
    /// the debug vmlinux) into a fresh directory inside a staging one,
    /// which is renamed into place, whole, unless `release` is already
    /// cached (then the cached one stays). Returns the entry, and whether
    /// it was new.
    pub fn adopt(&self, release: &str, fill: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<(KernelImage, bool)> {
        if let Some(k) = self.get(release) {
            return Ok((k, false));
        }
        let staging = self.new_staging()?;
        let entry = staging.join("entry");
        let done = fs::create_dir(&entry).and_then(|()| fill(&entry)).and_then(|()| {
            if self.get(release).is_none() {
                let target = self.dir.join(release);
                if target.exists() {
                    fs::remove_dir_all(&target)?;
                }
                fs::rename(&entry, &target)?;
            }
            Ok(())
        });
        let _ = fs::remove_dir_all(&staging);
        done?;
        let k =
            self.get(release).ok_or_else(|| io::Error::other(format!("{release} has no vmlinuz after adoption")))?;
        Ok((k, true))
    }
}

fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    if fs::rename(from, to).is_err() {
        fs::copy(from, to)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throwaway directory under the system temp dir.
    pub struct TempDir(pub PathBuf);
    impl TempDir {
        pub fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "ktstr-kernel-test-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Makes a fake cache entry; `sched_ext` None means no config file.
    pub fn fake_entry(store: &KernelStore, release: &str, sched_ext: Option<bool>) {
        let dir = store.dir().join(release);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(VMLINUZ), b"not really a kernel").unwrap();
        match sched_ext {
            Some(true) => fs::write(dir.join(CONFIG), "CONFIG_SCHED_CLASS_EXT=y\n").unwrap(),
            Some(false) => fs::write(dir.join(CONFIG), "# CONFIG_SCHED_CLASS_EXT is not set\n").unwrap(),
            None => {}
        }
    }

    #[test]
    fn lists_complete_entries_newest_first() {
        let tmp = TempDir::new("list");
        let store = KernelStore::new(tmp.0.join("kernels"));
        assert!(store.list().is_empty(), "missing dir is an empty cache");
        fake_entry(&store, "6.12.9+deb13-cloud-amd64", Some(false));
        fake_entry(&store, "6.12.107+deb13-cloud-amd64", Some(false));
        fake_entry(&store, "7.3.4+deb13-cloud-amd64", Some(true));
        fs::create_dir_all(store.dir().join("7.9.9-half-written")).unwrap();
        fs::create_dir_all(store.dir().join(".staging-1-2/8.0.0")).unwrap();
        fs::create_dir_all(store.apt_dir("trixie")).unwrap();
        let releases: Vec<_> = store.list().into_iter().map(|k| k.release).collect();
        assert_eq!(releases, ["7.3.4+deb13-cloud-amd64", "6.12.107+deb13-cloud-amd64", "6.12.9+deb13-cloud-amd64"]);
    }

    #[test]
    fn install_is_a_rename_and_keeps_existing() {
        let tmp = TempDir::new("install");
        let store = KernelStore::new(tmp.0.join("kernels"));
        let staging = store.new_staging().unwrap();
        fs::write(staging.join("vmlinuz-x"), b"kernel").unwrap();
        fs::write(staging.join("config-x"), b"CONFIG_SCHED_CLASS_EXT=y\n").unwrap();
        let meta = KernelMeta {
            release: "7.3.4+deb13-cloud-amd64".into(),
            suite: "trixie-backports".into(),
            flavour: "cloud-amd64".into(),
            debian_version: "7.3.4-1~bpo13+1".into(),
            packages: vec![],
            mirror: "http://example.invalid/debian".into(),
            sched_ext: true,
            fetched_at: 0,
        };
        let k = store
            .install(&staging.join("entry"), &staging.join("vmlinuz-x"), Some(&staging.join("config-x")), &meta)
            .unwrap();
        assert_eq!(k.vmlinuz, store.dir().join("7.3.4+deb13-cloud-amd64/vmlinuz"));
        assert_eq!(store.meta(&meta.release), Some(meta.clone()));
        assert_eq!(k.sched_ext(), super::super::SchedExtSupport::Yes);
        // A second install of the same release keeps the first.
        let staging2 = store.new_staging().unwrap();
        fs::write(staging2.join("v"), b"other").unwrap();
        store.install(&staging2.join("entry"), &staging2.join("v"), None, &meta).unwrap();
        assert_eq!(fs::read(&k.vmlinuz).unwrap(), b"kernel");
        let mut removed = store.clean_staging();
        removed.sort();
        let mut expected = vec![staging.clone(), staging2.clone()];
        expected.sort();
        assert_eq!(removed, expected, "both staging directories removed and named");
        assert!(!staging.exists() && !staging2.exists());
        assert_eq!(store.list().len(), 1);
    }
}
