//! The guest kernel: find it, fetch it, cache it.
//!
//! A kernel is chosen by [`resolve()`] from a spec (`--kernel`, else
//! `KTSTR_KERNEL`, else the newest cached kernel with sched_ext). When
//! nothing suitable is cached, [`ensure`] downloads Debian's cloud
//! kernel from `trixie-backports` (the newest one at fetch time) into
//! `<cache>/kernels/<release>/` (see [`store`] for the layout).
//!
//! - [`version`]: release ordering and version-prefix matching
//! - [`bzimage`]: the release string from a bzImage's setup header
//! - [`config`]: kernel `.config` parsing, sched_ext detection
//! - [`store`]: the on-disk cache
//! - [`resolve`](mod@resolve): specs → [`KernelImage`], no network
//! - [`apt`], [`fetch`](mod@fetch): the Debian download (private apt state)

pub mod apt;
pub(crate) mod bzimage;
pub mod config;
pub mod debuginfo;
pub mod fetch;
pub mod lines;
pub mod pvh;
pub mod resolve;
pub mod store;
pub mod version;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use config::{KernelConfig, SchedExtSupport};
pub use fetch::{FetchOptions, DEFAULT_FLAVOUR, DEFAULT_SUITE};
pub use resolve::KERNEL_ENV;
pub use store::{KernelMeta, KernelStore};

/// A bootable kernel image and what is known about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImage {
    /// `uname -r` of the kernel, e.g. `7.3.4+deb13-cloud-amd64`.
    pub release: String,
    /// The bzImage to hand to QEMU's `-kernel`.
    pub vmlinuz: PathBuf,
    /// Its `.config` text file, if known. The guest needs it at
    /// `/boot/config-<release>` for libbpf's `__kconfig` externs.
    pub config: Option<PathBuf>,
}

impl KernelImage {
    /// A vmlinux with DWARF for this image, if one is at hand: cached
    /// beside it, or at the top of the build tree it came from.
    pub fn debug_vmlinux(&self) -> Option<PathBuf> {
        lines::debug_vmlinux_for(&self.vmlinuz)
    }

    /// Whether the config enables sched_ext (`Unknown` without a config).
    pub fn sched_ext(&self) -> SchedExtSupport {
        config::sched_ext_support(self.config.as_deref())
    }

    /// The parsed config, if there is a readable one.
    pub fn read_config(&self) -> Option<KernelConfig> {
        KernelConfig::read(self.config.as_deref()?).ok()
    }

    /// `meta.json` of a cached kernel (None for kernels given by path).
    pub fn cached_meta(&self) -> Option<KernelMeta> {
        let text = std::fs::read_to_string(self.vmlinuz.parent()?.join(store::META)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Why no kernel could be chosen; each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "no kernel found: pass --kernel / set {KERNEL_ENV}, or run `cargo ktstr kernel fetch` \
         to download Debian's sched_ext kernel into {}",
        cache_dir.display()
    )]
    NotFound { cache_dir: PathBuf },

    #[error(
        "kernel `{spec}` (from {origin}) {reason}. {}\nA kernel spec is a cached version \
         (`7.3`, `7.3.4`), a bzImage/vmlinuz file, or a built kernel tree; \
         `cargo ktstr kernel fetch` downloads Debian's sched_ext kernel.",
        cached_list(cached, cache_dir)
    )]
    BadSpec {
        spec: String,
        /// `--kernel` or `KTSTR_KERNEL`.
        origin: String,
        reason: String,
        /// Releases in the cache.
        cached: Vec<String>,
        cache_dir: PathBuf,
    },

    #[error(
        "{}: not a bootable x86 kernel image: {reason}. Pass a bzImage (a kernel tree's arch/x86/boot/bzImage), \
         the tree itself, or a cached version (`cargo ktstr kernel list`)",
        path.display()
    )]
    BadImage { path: PathBuf, reason: String },
}

fn cached_list(cached: &[String], dir: &Path) -> String {
    if cached.is_empty() {
        format!("No kernels are cached in {}.", dir.display())
    } else {
        format!("Cached in {}: {}.", dir.display(), cached.join(", "))
    }
}

/// The kernel cache directory (`<cache>/kernels`).
pub fn cache_dir() -> PathBuf {
    KernelStore::default_location().dir().to_path_buf()
}

/// Finds the kernel for a test: `explicit` (from `--kernel`), else
/// `KTSTR_KERNEL`, else the newest cached kernel with sched_ext (or the
/// newest cached at all). A spec is a version prefix matched against cached
/// releases (`7.3` picks the newest 7.3.x), a path to a bzImage/vmlinuz
/// (config looked up beside it as `config`, `config-<release>` or `.config`),
/// or a kernel build tree with `arch/x86/boot/bzImage` and `.config`.
///
/// Fast: no network, no subprocess.
pub fn resolve(explicit: Option<&str>) -> Result<KernelImage, KernelError> {
    let spec = resolve::pick_spec(explicit);
    let k = resolve::resolve_in(&KernelStore::default_location(), spec.as_ref().map(|(s, o)| (s.as_str(), *o)))?;
    match &spec {
        Some((s, origin)) => {
            tracing::debug!(release = %k.release, image = %k.vmlinuz.display(), "kernel `{s}` from {origin}")
        }
        None => {
            tracing::debug!(release = %k.release, image = %k.vmlinuz.display(), "kernel: the newest cached with sched_ext")
        }
    }
    Ok(k)
}

/// Cached kernels, newest release first.
pub fn list_cached() -> Vec<KernelImage> {
    KernelStore::default_location().list()
}

/// Downloads the newest kernel of `opts.suite` into the cache (quick when
/// that release is already cached: one `apt-cache` lookup, plus an index
/// refresh if the index is over 10 minutes old).
pub fn fetch(opts: &FetchOptions) -> anyhow::Result<KernelImage> {
    fetch::fetch_into(&KernelStore::default_location(), opts)
}

/// The cached kernel `release`'s debug vmlinux, downloaded from Debian's
/// `-dbg` package now if it is not cached (hundreds of MB, with progress).
pub fn fetch_debug_vmlinux(release: &str) -> anyhow::Result<PathBuf> {
    debuginfo::fetch_debug_vmlinux(&KernelStore::default_location(), release)
}

/// The Debian suites a kernel is looked for in when a version asked for is
/// not cached: those `cargo ktstr kernel fetch` reads (the default, with
/// sched_ext, then trixie's own 6.12, without).
pub(crate) const FETCH_SUITES: &[&str] = &[DEFAULT_SUITE, "trixie"];

/// The kernel for a host command (`cargo ktstr test`, `shell`): `explicit`
/// or `KTSTR_KERNEL` as [`resolve()`] finds it, except that a version that
/// matches no cached kernel is looked for in Debian's archive
/// ([`FETCH_SUITES`]) and fetched from there; if it is not there either,
/// the error lists what is cached and what can be fetched. With no spec,
/// the newest cached kernel with sched_ext, fetched first if there is none.
pub fn ensure(explicit: Option<&str>) -> anyhow::Result<KernelImage> {
    let Some((spec, origin)) = resolve::pick_spec(explicit) else { return newest_or_fetched() };
    let store = KernelStore::default_location();
    let err = match resolve::resolve_in(&store, Some((&spec, origin))) {
        Ok(k) => return Ok(k),
        Err(e @ KernelError::BadSpec { .. }) if version::looks_like_version(&spec) => e,
        Err(e) => return Err(e.into()),
    };
    let mut offered = Vec::new();
    for suite in FETCH_SUITES {
        let releases = match fetch::available_releases(&store, suite, DEFAULT_FLAVOUR) {
            Ok(r) => r,
            Err(e) => {
                offered.push(format!("  {suite}: cannot be read ({})", format!("{e:#}").lines().next().unwrap_or("")));
                continue;
            }
        };
        if let Some(release) = releases.iter().find(|r| version::spec_matches(&spec, r)) {
            eprintln!("ktstr: kernel {spec} ({origin}) is not cached; fetching {release} from Debian's {suite}");
            let opts = FetchOptions { suite: suite.to_string(), release: Some(release.clone()), ..Default::default() };
            let k = fetch(&opts).with_context(|| format!("fetching {release}, which {spec} ({origin}) names"))?;
            eprintln!("ktstr: kernel {} at {}", k.release, k.vmlinuz.display());
            return Ok(k);
        }
        let note = if *suite == DEFAULT_SUITE { "" } else { ", without sched_ext" };
        offered.push(match releases.is_empty() {
            true => format!("  {suite}: none"),
            false => format!("  {suite}{note}: {}", releases.join(", ")),
        });
    }
    anyhow::bail!(
        "{err}\nNor is it in Debian's archive. Kernels that can be fetched (`cargo ktstr kernel fetch`, or \
         name one with --kernel):\n{}\nFor any other version, build the kernel with CONFIG_SCHED_CLASS_EXT=y \
         and pass its tree: --kernel ../linux",
        offered.join("\n")
    )
}

/// The kernel when none is named: the newest cached kernel with
/// sched_ext; otherwise Debian's default kernel, fetched now.
fn newest_or_fetched() -> anyhow::Result<KernelImage> {
    match resolve(None) {
        Ok(k) if k.sched_ext() == SchedExtSupport::Yes => Ok(k),
        _ => {
            eprintln!(
                "ktstr: no sched_ext kernel cached; fetching Debian's {DEFAULT_SUITE} kernel into {} (once)",
                cache_dir().display()
            );
            let k = fetch(&FetchOptions::default())?;
            eprintln!("ktstr: kernel {} at {}", k.release, k.vmlinuz.display());
            Ok(k)
        }
    }
}
