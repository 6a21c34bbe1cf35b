//! Turning a kernel spec (`--kernel`, `KTSTR_KERNEL`) into a [`KernelImage`].
//! No network and no subprocesses: directory listings, a header read, and at
//! most a few config files.

use std::path::{Path, PathBuf};

use super::store::KernelStore;
use super::version::{looks_like_version, sort_newest_first, spec_matches};
use super::{bzimage, KernelError, KernelImage, SchedExtSupport};

/// Environment variable naming the kernel when `--kernel` is not given.
pub const KERNEL_ENV: &str = "KTSTR_KERNEL";

/// The spec to use: `explicit`, else a non-empty `KTSTR_KERNEL`, with where
/// it came from (for messages).
pub(crate) fn pick_spec(explicit: Option<&str>) -> Option<(String, &'static str)> {
    if let Some(s) = explicit.filter(|s| !s.trim().is_empty()) {
        return Some((s.trim().to_string(), "--kernel"));
    }
    std::env::var(KERNEL_ENV).ok().filter(|s| !s.trim().is_empty()).map(|s| (s.trim().to_string(), KERNEL_ENV))
}

/// Resolves `spec` against `store`; `None` means the newest cached kernel
/// with sched_ext (or, if none has it, the newest cached kernel).
pub fn resolve_in(store: &KernelStore, spec: Option<(&str, &str)>) -> Result<KernelImage, KernelError> {
    let Some((spec, origin)) = spec else {
        let cached = store.list();
        return match cached.iter().position(|k| k.sched_ext() == SchedExtSupport::Yes) {
            Some(i) => Ok(cached[i].clone()),
            None => {
                cached.into_iter().next().ok_or_else(|| KernelError::NotFound { cache_dir: store.dir().to_path_buf() })
            }
        };
    };
    let bad = |reason: String| KernelError::BadSpec {
        spec: spec.to_string(),
        origin: origin.to_string(),
        reason,
        cached: store.list().into_iter().map(|k| k.release).collect(),
        cache_dir: store.dir().to_path_buf(),
    };
    let path = expand_home(spec);
    if looks_like_version(spec) && !path.exists() {
        let mut matches: Vec<KernelImage> =
            store.list().into_iter().filter(|k| spec_matches(spec, &k.release)).collect();
        sort_newest_first(&mut matches, |k| &k.release);
        return matches.into_iter().next().ok_or_else(|| bad("matches no cached kernel".into()));
    }
    if !path.exists() {
        return Err(bad("is neither a cached kernel version nor an existing file or directory".into()));
    }
    from_path(&path).map_err(|e| match e {
        PathError::Layout(reason) => bad(reason),
        PathError::Image(path, reason) => KernelError::BadImage { path, reason },
    })
}

enum PathError {
    /// The path is not laid out like a kernel.
    Layout(String),
    /// The image is there but unreadable or not a bzImage.
    Image(PathBuf, String),
}

/// A kernel from a path: a bzImage/vmlinuz file, a kernel build tree, or a
/// directory holding `vmlinuz` (such as a cache entry).
fn from_path(path: &Path) -> Result<KernelImage, PathError> {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let (image, tree_config) = if path.is_dir() {
        let built = path.join("arch/x86/boot/bzImage");
        if built.is_file() {
            (built, Some(path.join(".config")))
        } else if path.join("vmlinuz").is_file() {
            (path.join("vmlinuz"), None)
        } else {
            return Err(PathError::Layout(
                "is a directory without arch/x86/boot/bzImage (a built kernel tree) or vmlinuz; \
                 build the kernel first (`make bzImage`) or point at the image file"
                    .to_string(),
            ));
        }
    } else {
        (path.clone(), None)
    };
    let release = bzimage::read_release(&image).map_err(|reason| PathError::Image(image.clone(), reason))?;
    let config = match tree_config {
        Some(c) => Some(c),
        None => image.parent().and_then(|dir| config_beside(dir, &release)),
    }
    .filter(|c| c.is_file());
    Ok(KernelImage { release, vmlinuz: image, config })
}

/// `config`, `config-<release>` or `.config` in `dir`, first found.
fn config_beside(dir: &Path, release: &str) -> Option<PathBuf> {
    ["config".to_string(), format!("config-{release}"), ".config".to_string()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

fn expand_home(spec: &str) -> PathBuf {
    match (spec.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(spec),
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::tests::{fake_entry, TempDir};
    use super::*;
    use std::fs;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/7.3.4+deb13-cloud-amd64.bzImage-head");

    fn store_with_kernels(tmp: &TempDir) -> KernelStore {
        let store = KernelStore::new(tmp.0.join("kernels"));
        fake_entry(&store, "6.12.107+deb13-cloud-amd64", Some(false));
        fake_entry(&store, "7.2.12+deb13-cloud-amd64", Some(true));
        fake_entry(&store, "7.3.4+deb13-cloud-amd64", Some(true));
        fake_entry(&store, "7.3.10+deb13-cloud-amd64", None);
        store
    }

    fn release(r: Result<KernelImage, KernelError>) -> String {
        r.unwrap().release
    }

    #[test]
    fn default_prefers_newest_with_sched_ext() {
        let tmp = TempDir::new("default");
        let store = store_with_kernels(&tmp);
        // 7.3.10 is newer but has no config: sched_ext unknown.
        assert_eq!(release(resolve_in(&store, None)), "7.3.4+deb13-cloud-amd64");
        let only_old = KernelStore::new(tmp.0.join("other"));
        fake_entry(&only_old, "6.12.107+deb13-cloud-amd64", Some(false));
        assert_eq!(release(resolve_in(&only_old, None)), "6.12.107+deb13-cloud-amd64");
    }

    #[test]
    fn empty_cache_is_not_found() {
        let tmp = TempDir::new("empty");
        let err = resolve_in(&KernelStore::new(tmp.0.join("kernels")), None).unwrap_err();
        assert!(matches!(err, KernelError::NotFound { .. }));
        let msg = err.to_string();
        assert!(msg.contains("cargo ktstr kernel fetch") && msg.contains("KTSTR_KERNEL"), "{msg}");
    }

    #[test]
    fn version_specs() {
        let tmp = TempDir::new("versions");
        let store = store_with_kernels(&tmp);
        let r = |s| release(resolve_in(&store, Some((s, "--kernel"))));
        assert_eq!(r("7"), "7.3.10+deb13-cloud-amd64");
        assert_eq!(r("7.3"), "7.3.10+deb13-cloud-amd64");
        assert_eq!(r("7.3.4"), "7.3.4+deb13-cloud-amd64");
        assert_eq!(r("7.2"), "7.2.12+deb13-cloud-amd64");
        assert_eq!(r("6.12.107+deb13-cloud-amd64"), "6.12.107+deb13-cloud-amd64");
        let err = resolve_in(&store, Some(("7.30", KERNEL_ENV))).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, KernelError::BadSpec { .. }));
        assert!(msg.contains("7.30") && msg.contains(KERNEL_ENV) && msg.contains("7.3.4+deb13-cloud-amd64"), "{msg}");
    }

    #[test]
    fn path_specs() {
        let tmp = TempDir::new("paths");
        let store = KernelStore::new(tmp.0.join("kernels"));
        // A /boot-style layout: vmlinuz-<release> with config-<release>.
        let boot = tmp.0.join("boot");
        fs::create_dir_all(&boot).unwrap();
        fs::copy(FIXTURE, boot.join("vmlinuz-7.3.4+deb13-cloud-amd64")).unwrap();
        fs::write(boot.join("config-7.3.4+deb13-cloud-amd64"), "CONFIG_SCHED_CLASS_EXT=y\n").unwrap();
        let spec = boot.join("vmlinuz-7.3.4+deb13-cloud-amd64");
        let k = resolve_in(&store, Some((spec.to_str().unwrap(), "--kernel"))).unwrap();
        assert_eq!(k.release, "7.3.4+deb13-cloud-amd64");
        assert_eq!(k.sched_ext(), SchedExtSupport::Yes);

        // A built tree: arch/x86/boot/bzImage and .config at the top.
        let tree = tmp.0.join("linux");
        fs::create_dir_all(tree.join("arch/x86/boot")).unwrap();
        fs::copy(FIXTURE, tree.join("arch/x86/boot/bzImage")).unwrap();
        fs::write(tree.join(".config"), "# CONFIG_SCHED_CLASS_EXT is not set\n").unwrap();
        let k = resolve_in(&store, Some((tree.to_str().unwrap(), "--kernel"))).unwrap();
        assert!(k.vmlinuz.ends_with("arch/x86/boot/bzImage"));
        assert_eq!(k.sched_ext(), SchedExtSupport::No);

        // A bare image with no config anywhere near.
        let bare = tmp.0.join("bare");
        fs::create_dir_all(&bare).unwrap();
        fs::copy(FIXTURE, bare.join("bzImage")).unwrap();
        let k = resolve_in(&store, Some((bare.join("bzImage").to_str().unwrap(), "--kernel"))).unwrap();
        assert_eq!((k.sched_ext(), k.config), (SchedExtSupport::Unknown, None));

        // An unbuilt tree, a missing path and a non-kernel file.
        fs::create_dir_all(tmp.0.join("src")).unwrap();
        let e = resolve_in(&store, Some((tmp.0.join("src").to_str().unwrap(), "--kernel"))).unwrap_err();
        assert!(e.to_string().contains("arch/x86/boot/bzImage"), "{e}");
        let e = resolve_in(&store, Some(("/nonexistent/bzImage", "--kernel"))).unwrap_err();
        assert!(matches!(e, KernelError::BadSpec { .. }), "{e}");
        fs::write(tmp.0.join("notes.txt"), "hello").unwrap();
        let e = resolve_in(&store, Some((tmp.0.join("notes.txt").to_str().unwrap(), "--kernel"))).unwrap_err();
        assert!(matches!(e, KernelError::BadImage { .. }), "{e}");
    }
}
