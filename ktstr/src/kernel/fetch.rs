//! Downloading Debian's cloud kernel into the cache.
//!
//! The chain, resolved at fetch time (no version is pinned here):
//! `linux-image-<flavour>` (meta package, newest in the suite) depends on
//! `linux-image-<release>`. In trixie-backports that package is empty and
//! depends on `linux-binary-<release>` (holds `usr/lib/modules/<release>/vmlinuz`)
//! and `linux-base-<release>` (holds `usr/lib/modules/<release>/config`); in
//! trixie (6.12) it holds `boot/vmlinuz-<release>` and `boot/config-<release>`
//! itself. We download the image package plus its `-<release>` dependencies
//! except modules and headers, extract them, and look for the two files.
//!
//! A fetch works in a staging directory inside the cache and installs by
//! renaming a complete entry, so a fetch killed mid-way leaves only its
//! staging directory; the next fetch removes it (saying so) and downloads
//! whole. It cannot resume: `apt-get download` (apt 2.6) restarts a half
//! file from byte 0 (no Range request; its `partial/` mechanism is not
//! used for downloads into a directory of one's choosing), and it reuses a
//! complete-looking file by its size alone, without checking its hash, so
//! keeping files across an interruption would let an unverified package
//! through. Every fetch therefore starts from an empty directory and apt
//! verifies every byte against Debian's signed index.

use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::apt::{self, Apt, Stanza};
use super::store::{KernelMeta, KernelStore};
use super::{bzimage, KernelImage, SchedExtSupport};

pub const DEFAULT_SUITE: &str = "trixie-backports";
pub const DEFAULT_FLAVOUR: &str = "cloud-amd64";
/// A package index younger than this is reused without `apt-get update`.
const INDEX_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// What to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Debian suite: `trixie-backports` (default, has sched_ext) or `trixie`
    /// (6.12, no sched_ext).
    pub suite: String,
    /// Kernel flavour: the `<flavour>` in `linux-image-<flavour>`.
    pub flavour: String,
    /// Cache the kernel even if its config lacks `CONFIG_SCHED_CLASS_EXT=y`
    /// (for tests of the "no sched_ext" path).
    pub allow_without_sched_ext: bool,
    /// This release (`7.3.4+deb13-cloud-amd64`, see [`available_releases`])
    /// instead of the newest the suite's `linux-image-<flavour>` points at.
    pub release: Option<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            suite: DEFAULT_SUITE.to_string(),
            flavour: DEFAULT_FLAVOUR.to_string(),
            allow_without_sched_ext: false,
            release: None,
        }
    }
}

/// Fetches the newest kernel of `opts` into `store`, or returns the cached
/// one if that release is already there. One fetch runs at a time per cache.
pub(crate) fn fetch_into(store: &KernelStore, opts: &FetchOptions) -> Result<KernelImage> {
    for (what, value) in [("suite", &opts.suite), ("flavour", &opts.flavour)] {
        if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || "-+._".contains(c)) {
            bail!("invalid {what} `{value}`");
        }
    }
    let progress = Progress::new();
    let _lock = store
        .lock(|| progress.step("waiting for another ktstr kernel fetch to finish"))
        .with_context(|| format!("locking {}", store.dir().display()))?;
    sweep_killed_fetches(store);

    let apt = open_index(store, &opts.suite, &progress)?;
    let release = match &opts.release {
        Some(r) => r.clone(),
        None => {
            let meta_pkg = format!("linux-image-{}", opts.flavour);
            release_from_meta(&first(apt.show(&[&meta_pkg])?, &meta_pkg)?, &opts.flavour)?
        }
    };

    if let Some(cached) = store.get(&release) {
        progress.finish();
        check_sched_ext(&cached, opts)?;
        return Ok(cached);
    }

    let image_pkg = format!("linux-image-{release}");
    let image = first(apt.show(&[&image_pkg])?, &image_pkg)?;
    let debian_version = image.get("Version").unwrap_or("").to_string();
    let packages = packages_to_download(&image_pkg, &image, &release);
    let names: Vec<&str> = packages.iter().map(String::as_str).collect();
    let total: u64 = apt.show(&names)?.iter().filter_map(|s| s.get("Size")?.parse::<u64>().ok()).sum();

    let staging = Staging(store.new_staging()?);
    let debs = staging.0.join("debs");
    fs::create_dir_all(&debs)?;
    let started = Instant::now();
    download(&apt, &packages, &debs, total, &progress, &format!("fetching kernel {release}"))?;
    let download_time = started.elapsed();

    progress.step(&format!("extracting {}", packages.join(", ")));
    let root = staging.0.join("root");
    for deb in fs::read_dir(&debs)?.filter_map(Result::ok).map(|e| e.path()) {
        if deb.extension().is_some_and(|e| e == "deb") {
            let out = apt::run(std::process::Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
            if !out.status.success() {
                bail!("`dpkg-deb -x {}` failed:\n{}", deb.display(), apt::output_text(&out));
            }
        }
    }
    let (vmlinuz, config) = find_kernel_files(&root, &release)?;
    let header_release = bzimage::read_release(&vmlinuz).map_err(|e| anyhow::anyhow!("{}: {e}", vmlinuz.display()))?;
    if header_release != release {
        bail!("{} says it is {header_release}, but the package is {release}", vmlinuz.display());
    }
    let sched_ext = super::config::sched_ext_support(config.as_deref());
    let candidate = KernelImage { release: release.clone(), vmlinuz: vmlinuz.clone(), config: config.clone() };
    check_sched_ext(&candidate, opts)?;

    let meta = KernelMeta {
        release: release.clone(),
        suite: opts.suite.clone(),
        flavour: opts.flavour.clone(),
        debian_version,
        packages,
        mirror: apt.mirror.clone(),
        sched_ext: sched_ext == SchedExtSupport::Yes,
        fetched_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let kernel = store
        .install(&staging.0.join("entry"), &vmlinuz, config.as_deref(), &meta)
        .with_context(|| format!("installing {release} into {}", store.dir().display()))?;
    progress.finish();
    tracing::info!(
        release = %kernel.release,
        bytes = total,
        download_secs = download_time.as_secs_f64(),
        total_secs = started.elapsed().as_secs_f64(),
        "fetched kernel"
    );
    Ok(kernel)
}

/// The suite's private apt state, its package index refreshed when older
/// than [`INDEX_MAX_AGE`] (an earlier index is used if the refresh fails).
pub(super) fn open_index(store: &KernelStore, suite: &str, progress: &Progress) -> Result<Apt> {
    let apt = Apt::prepare(&store.apt_dir(suite), suite)?;
    if !apt.index_fresh(INDEX_MAX_AGE) {
        progress.step(&format!("updating the {suite} package index from {}", apt.mirror));
        if let Err(e) = apt.update() {
            if !apt.has_index() {
                return Err(e);
            }
            let err = e.to_string();
            let first_line = err.lines().next().unwrap_or("").trim_end_matches(':');
            eprintln!("ktstr: warning: {first_line}; using the package index from an earlier fetch");
        }
    }
    Ok(apt)
}

/// The kernel releases of `flavour` that can be fetched from `suite`,
/// newest first. An archive keeps `linux-image-<release>` packages of
/// releases whose other packages (`linux-binary-`, `linux-base-`) are gone,
/// so a release counts only when every package a fetch downloads is there.
/// Refreshes the suite's private package index when it is stale, as a fetch
/// would.
pub(crate) fn available_releases(store: &KernelStore, suite: &str, flavour: &str) -> Result<Vec<String>> {
    let progress = Progress::new();
    let apt = open_index(store, suite, &progress)?;
    progress.finish();
    // Packages with a version in the index (`pkgnames` also lists names
    // that are only referenced).
    let out = apt::run(apt.command("apt-cache").args(["search", "--names-only", "^linux-(image|binary|base)-[0-9]"]))?;
    if !out.status.success() {
        bail!("`apt-cache search` in {suite} failed:\n{}", apt::output_text(&out));
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    let present: std::collections::BTreeSet<&str> = listing.lines().filter_map(|l| l.split(' ').next()).collect();
    let images: Vec<String> = releases_in(&listing, flavour).iter().map(|r| format!("linux-image-{r}")).collect();
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = images.iter().map(String::as_str).collect();
    let mut releases: Vec<String> = apt
        .show(&names)?
        .iter()
        .filter_map(|image| {
            let pkg = image.get("Package")?;
            let release = pkg.strip_prefix("linux-image-")?;
            let all_there = packages_to_download(pkg, image, release).iter().all(|p| present.contains(p.as_str()));
            all_there.then(|| release.to_string())
        })
        .collect();
    releases.dedup();
    super::version::sort_newest_first(&mut releases, |r| r);
    Ok(releases)
}

/// Releases named by `linux-image-<release>` packages in a list of package
/// names, one a line (anything after a space is ignored, as in `apt-cache
/// search` output): a release starts with a digit and ends in `-<flavour>`
/// (the meta package, `-dbg` and `-unsigned` builds are not kernels to boot).
pub(crate) fn releases_in(pkgnames: &str, flavour: &str) -> Vec<String> {
    let suffix = format!("-{flavour}");
    let mut out: Vec<String> = pkgnames
        .lines()
        .filter_map(|l| l.split(' ').next()?.strip_prefix("linux-image-"))
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()) && r.ends_with(&suffix))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(super) fn first(stanzas: Vec<Stanza>, package: &str) -> Result<Stanza> {
    stanzas.into_iter().next().with_context(|| format!("apt-cache knows no {package}"))
}

/// The release a `linux-image-<flavour>` meta package points at.
pub(crate) fn release_from_meta(meta: &Stanza, flavour: &str) -> Result<String> {
    let suffix = format!("-{flavour}");
    meta.depends()
        .into_iter()
        .filter_map(|d| d.strip_prefix("linux-image-").map(str::to_string))
        .find(|r| r.ends_with(&suffix) && r.starts_with(|c: char| c.is_ascii_digit()))
        .with_context(|| {
            format!(
                "cannot tell the kernel release from linux-image-{flavour} (Depends: {})",
                meta.get("Depends").unwrap_or("none")
            )
        })
}

/// The image package and those of its dependencies built for `release`,
/// leaving out modules and headers (the guest needs neither).
pub(crate) fn packages_to_download(image_pkg: &str, image: &Stanza, release: &str) -> Vec<String> {
    let suffix = format!("-{release}");
    let mut out = vec![image_pkg.to_string()];
    out.extend(
        image
            .depends()
            .into_iter()
            .filter(|d| d.ends_with(&suffix) && !d.starts_with("linux-modules-") && !d.starts_with("linux-headers-")),
    );
    out.dedup();
    out
}

fn check_sched_ext(kernel: &KernelImage, opts: &FetchOptions) -> Result<()> {
    let support = kernel.sched_ext();
    if support != SchedExtSupport::Yes && !opts.allow_without_sched_ext {
        bail!(
            "refusing Debian's {suite} kernel {release}: its config {what}, so it cannot run \
             sched_ext schedulers. Fetch from a suite that has a sched_ext kernel (the default, \
             `{DEFAULT_SUITE}`), build one with CONFIG_SCHED_CLASS_EXT=y and pass it with --kernel, \
             or pass --allow-without-sched-ext to cache it anyway (for error-path tests).",
            suite = opts.suite,
            release = kernel.release,
            what = match support {
                SchedExtSupport::Unknown => "is missing",
                _ => "lacks CONFIG_SCHED_CLASS_EXT=y",
            },
        );
    }
    Ok(())
}

/// Removes the staging directories of fetches that were killed, saying so.
/// Call only while holding the fetch lock: then no other fetch is running
/// in this cache, so every staging directory is a dead one's.
pub(super) fn sweep_killed_fetches(store: &KernelStore) {
    stop_orphaned_downloads(store.dir());
    for path in store.clean_staging() {
        eprintln!("ktstr: removed what a killed run left: {}", path.display());
    }
}

/// Kills the `apt-get download` (and its transport method) a killed fetch
/// left running in its staging directory: it would go on downloading into
/// a directory about to be removed. PR_SET_PDEATHSIG cannot do this: apt
/// clears it when it changes its credentials (measured: an apt-get started
/// with `setpriv --pdeathsig KILL` outlives its parent). Only apt's own
/// executables are touched, and only those working in a staging directory.
fn stop_orphaned_downloads(cache: &Path) {
    let Ok(procs) = fs::read_dir("/proc") else { return };
    for p in procs.filter_map(Result::ok) {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else { continue };
        let in_staging = fs::read_link(p.path().join("cwd")).is_ok_and(|cwd| {
            cwd.strip_prefix(cache).is_ok_and(|rel| {
                rel.components().next().is_some_and(|c| c.as_os_str().to_string_lossy().starts_with(".staging-"))
            })
        });
        let is_apt = fs::read_link(p.path().join("exe")).is_ok_and(|exe| {
            exe.file_name().is_some_and(|n| n == "apt-get") || exe.starts_with("/usr/lib/apt/methods")
        });
        if in_staging && is_apt {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// `apt-get download` into `dir`, showing bytes received against `total`.
/// `what` names the fetch for errors (`fetching kernel <release>`).
pub(super) fn download(
    apt: &Apt,
    packages: &[String],
    dir: &Path,
    total: u64,
    progress: &Progress,
    what: &str,
) -> Result<()> {
    let log_path = dir.with_extension("log");
    let log = fs::File::create(&log_path)?;
    let mut child = apt
        .command("apt-get")
        .args(["-q", "download"])
        .args(packages)
        .current_dir(dir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("running apt-get download")?;
    progress.bytes(&format!("downloading {}", packages.join(", ")), total);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        progress.set_position(dir_size(dir));
        std::thread::sleep(Duration::from_millis(100));
    };
    progress.set_position(dir_size(dir));
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let stage = format!("{what}: downloading {}", packages.join(", "));
    // apt leaves a file that failed its check as `<name>.FAILED`, never
    // as a `.deb`; the staging directory goes with it.
    if let Some(err) = apt.tampered(&stage, "a package does not match Debian's signed package index", text.trim_end()) {
        return Err(err);
    }
    if !status.success() {
        bail!("{stage}: `apt-get download` failed:\n{}", text.trim_end());
    }
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Finds the bzImage and config for `release` in an extracted package tree:
/// `usr/lib/modules/<release>/{vmlinuz,config}` or
/// `boot/{vmlinuz,config}-<release>`.
pub(crate) fn find_kernel_files(root: &Path, release: &str) -> Result<(PathBuf, Option<PathBuf>)> {
    let mut files = Vec::new();
    walk(root, &mut files);
    files.sort();
    let is_release_dir = |p: &Path| p.parent().and_then(Path::file_name).is_some_and(|d| d == release);
    let find = |base: &str| {
        let versioned = format!("{base}-{release}");
        files
            .iter()
            .find(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name == versioned || (name == base && is_release_dir(p))
            })
            .cloned()
    };
    let vmlinuz = find("vmlinuz").with_context(|| {
        format!(
            "the packages hold no vmlinuz for {release} (looked for usr/lib/modules/{release}/vmlinuz \
             and boot/vmlinuz-{release}); Debian may have changed its package layout"
        )
    })?;
    Ok((vmlinuz, find("config")))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.filter_map(Result::ok) {
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&e.path(), out),
            Ok(t) if t.is_file() => out.push(e.path()),
            _ => {}
        }
    }
}

/// Removes a staging directory when dropped (success or failure).
pub(super) struct Staging(pub(super) PathBuf);
impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A spinner/bar on a terminal, plain lines on stderr otherwise.
pub(super) struct Progress(Option<ProgressBar>);

impl Progress {
    pub(super) fn new() -> Self {
        Progress(std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        }))
    }

    pub(super) fn step(&self, msg: &str) {
        match &self.0 {
            Some(bar) => {
                bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").unwrap());
                bar.set_message(msg.to_string());
            }
            None => eprintln!("ktstr: {msg}"),
        }
    }

    pub(super) fn bytes(&self, msg: &str, total: u64) {
        match &self.0 {
            Some(bar) => {
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg}\n  {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}")
                        .unwrap(),
                );
                bar.set_length(total);
                bar.set_position(0);
                bar.set_message(msg.to_string());
            }
            None => eprintln!("ktstr: {msg} ({:.1} MB)", total as f64 / 1e6),
        }
    }

    pub(super) fn set_position(&self, pos: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(pos);
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
#[path = "tamper_tests.rs"]
mod tamper_tests;

#[cfg(test)]
mod tests {
    use super::super::store::tests::TempDir;
    use super::*;

    fn stanza(depends: &str) -> Stanza {
        Stanza(vec![("Depends".into(), depends.into())])
    }

    #[test]
    fn release_from_meta_packages() {
        // trixie-backports 7.x layout
        let m = stanza(
            "linux-base-cloud-amd64 (= 7.3.4-1~bpo13+1), linux-image-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), \
             linux-modules-cloud-amd64 (= 7.3.4-1~bpo13+1)",
        );
        assert_eq!(release_from_meta(&m, "cloud-amd64").unwrap(), "7.3.4+deb13-cloud-amd64");
        // trixie 6.12 layout
        let m = stanza("linux-image-6.12.107+deb13-cloud-amd64 (= 6.12.107-1)");
        assert_eq!(release_from_meta(&m, "cloud-amd64").unwrap(), "6.12.107+deb13-cloud-amd64");
        assert!(release_from_meta(&stanza("foo"), "cloud-amd64").is_err());
    }

    #[test]
    fn releases_from_package_names() {
        let names = "linux-image-cloud-amd64\nlinux-image-7.3.4+deb13-cloud-amd64 - Linux 7.3.4 for x86-64 cloud\n\
                     linux-image-7.3.4+deb13-cloud-amd64-dbg\nlinux-image-7.2.12+deb13-cloud-amd64\n\
                     linux-image-7.3.4+deb13-amd64\nlinux-image-7.3.4+deb13-amd64-unsigned\nlinux-image-amd64\n";
        assert_eq!(releases_in(names, "cloud-amd64"), ["7.2.12+deb13-cloud-amd64", "7.3.4+deb13-cloud-amd64"]);
    }

    #[test]
    fn download_set() {
        let r = "7.3.4+deb13-cloud-amd64";
        let image = stanza(&format!(
            "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-{r} (= 1), \
             linux-binary-{r} (= 1), linux-modules-{r} (= 1)"
        ));
        let pkgs = packages_to_download(&format!("linux-image-{r}"), &image, r);
        assert_eq!(pkgs, [format!("linux-image-{r}"), format!("linux-base-{r}"), format!("linux-binary-{r}")]);
        let image = stanza("kmod, initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool");
        assert_eq!(
            packages_to_download("linux-image-6.12.107+deb13-cloud-amd64", &image, "6.12.107+deb13-cloud-amd64").len(),
            1
        );
    }

    #[test]
    fn finds_files_in_both_layouts() {
        let tmp = TempDir::new("layouts");
        let r = "7.3.4+deb13-cloud-amd64";
        let split = tmp.0.join("split");
        let m = split.join("usr/lib/modules").join(r);
        fs::create_dir_all(&m).unwrap();
        fs::write(m.join("vmlinuz"), "k").unwrap();
        fs::write(m.join("config"), "c").unwrap();
        fs::write(m.join("modules.order"), "").unwrap();
        let (v, c) = find_kernel_files(&split, r).unwrap();
        assert_eq!((v, c), (m.join("vmlinuz"), Some(m.join("config"))));

        let r = "6.12.107+deb13-cloud-amd64";
        let boot = tmp.0.join("boot-layout");
        fs::create_dir_all(boot.join("boot")).unwrap();
        fs::create_dir_all(boot.join("usr/lib/modules").join(r).join("kernel")).unwrap();
        fs::write(boot.join("boot").join(format!("vmlinuz-{r}")), "k").unwrap();
        fs::write(boot.join("boot").join(format!("config-{r}")), "c").unwrap();
        fs::write(boot.join("boot").join(format!("System.map-{r}")), "").unwrap();
        let (v, c) = find_kernel_files(&boot, r).unwrap();
        assert!(v.ends_with(format!("boot/vmlinuz-{r}")));
        assert!(c.unwrap().ends_with(format!("boot/config-{r}")));

        assert!(find_kernel_files(&boot, "7.0.0").is_err());
    }

    /// Downloads both Debian kernels into a temporary cache (network, ~50 MB):
    /// `cargo test -p ktstr --lib kernel::fetch -- --ignored`.
    #[test]
    #[ignore = "downloads from the Debian archive"]
    fn real_fetch_into_temp_cache() {
        let tmp = TempDir::new("real-fetch");
        let store = KernelStore::new(tmp.0.join("kernels"));
        let k = fetch_into(&store, &FetchOptions::default()).unwrap();
        assert_eq!(k.sched_ext(), SchedExtSupport::Yes);
        assert_eq!(bzimage::read_release(&k.vmlinuz).unwrap(), k.release);
        let again = fetch_into(&store, &FetchOptions::default()).unwrap();
        assert_eq!(again, k, "second fetch reuses the cache");

        let old = FetchOptions { suite: "trixie".into(), ..FetchOptions::default() };
        let err = fetch_into(&store, &old).unwrap_err().to_string();
        assert!(err.contains("CONFIG_SCHED_CLASS_EXT"), "{err}");
        assert_eq!(store.list().len(), 1, "refused kernel is not cached");
        let old = FetchOptions { allow_without_sched_ext: true, ..old };
        let k612 = fetch_into(&store, &old).unwrap();
        assert_eq!(k612.sched_ext(), SchedExtSupport::No);
        assert_eq!(store.list()[0], k, "newest first");
    }
}
