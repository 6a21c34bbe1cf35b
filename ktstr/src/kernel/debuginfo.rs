//! Debian's debug vmlinux for a cached kernel: the one file of
//! `linux-image-<release>-dbg` that gives kernel functions their source
//! lines (see [`super::lines`]).
//!
//! The package is large (about 350 MB, 2 GB unpacked, mostly module debug
//! info), so it is fetched only on request (`cargo ktstr kernel fetch
//! --debug-info`), with progress, and only the vmlinux is taken out of it:
//! `usr/lib/debug/lib/modules/<release>/vmlinux` (which
//! `usr/lib/debug/boot/vmlinux-<release>` links to). The package is then
//! deleted. The file lands beside the kernel as [`DEBUG_VMLINUX`], renamed
//! into place so a reader never sees half of it.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::fetch::{download, first, open_index, sweep_killed_fetches, Progress, Staging, DEFAULT_SUITE};
use super::lines::{SourceLines, DEBUG_VMLINUX};
use super::store::KernelStore;

/// The debug vmlinux of the cached kernel `release`, fetched now if it is
/// not cached yet. One fetch runs at a time per cache (the kernel fetch
/// lock).
pub fn fetch_debug_vmlinux(store: &KernelStore, release: &str) -> Result<PathBuf> {
    let Some(kernel) = store.get(release) else {
        bail!(
            "kernel {release} is not in the cache ({}): debug info is fetched for a cached Debian kernel; \
             run `cargo ktstr kernel fetch` first",
            store.dir().display()
        );
    };
    let entry = kernel.vmlinuz.parent().context("cached kernel has no directory")?.to_path_buf();
    let dest = entry.join(DEBUG_VMLINUX);
    if dest.is_file() {
        return Ok(dest);
    }
    let Some(meta) = store.meta(release) else {
        bail!(
            "kernel {release} was not fetched from Debian (no meta.json beside it), so there is no -dbg \
             package to take its debug info from; for a kernel you built, keep the build tree's \
             `vmlinux` next to `arch/x86/boot/bzImage`: ktstr reads it there"
        );
    };
    let progress = Progress::new();
    let _lock = store
        .lock(|| progress.step("waiting for another ktstr kernel fetch to finish"))
        .with_context(|| format!("locking {}", store.dir().display()))?;
    if dest.is_file() {
        return Ok(dest);
    }
    sweep_killed_fetches(store);
    let suite = if meta.suite.is_empty() { DEFAULT_SUITE } else { meta.suite.as_str() };
    let apt = open_index(store, suite, &progress)?;
    let package = format!("linux-image-{release}-dbg");
    let stanza = first(apt.show(&[&package])?, &package)
        .with_context(|| format!("Debian's {suite} has no debug package for {release}"))?;
    let size: u64 = stanza.get("Size").and_then(|s| s.parse().ok()).unwrap_or(0);

    let staging = Staging(store.new_staging()?);
    let debs = staging.0.join("debs");
    fs::create_dir_all(&debs)?;
    download(
        &apt,
        std::slice::from_ref(&package),
        &debs,
        size,
        &progress,
        &format!("fetching debug info of {release}"),
    )?;
    let deb = fs::read_dir(&debs)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb in {}", debs.display()))?;

    // `usr/lib/debug/boot/vmlinux-<release>` is a symlink to this file.
    let member = format!("./usr/lib/debug/lib/modules/{release}/vmlinux");
    progress.step(&format!("extracting {} from {package}", &member[2..]));
    let out = staging.0.join("root");
    fs::create_dir_all(&out)?;
    extract_member(&deb, &member, &out)?;
    let vmlinux = out.join(&member[2..]);
    if !vmlinux.is_file() {
        bail!("{package} holds no {}; Debian may have changed its layout", &member[2..]);
    }
    // Refuse a file the line lookup cannot use, before it is cached.
    SourceLines::open(&vmlinux)?;
    // Staging is inside the cache: one rename, atomic, of a complete file.
    fs::rename(&vmlinux, &dest).with_context(|| format!("installing {}", dest.display()))?;
    progress.finish();
    tracing::info!(release, bytes = size, path = %dest.display(), "fetched debug vmlinux");
    Ok(dest)
}

/// Unpacks one member of a .deb's data archive into `out`. GNU tar's
/// `--occurrence` stops reading once the member is found, so the rest of
/// the package (its module debug info) is not decompressed to disk.
fn extract_member(deb: &std::path::Path, member: &str, out: &std::path::Path) -> Result<()> {
    let mut data = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running dpkg-deb (package dpkg)")?;
    let tar = Command::new("tar")
        .args(["-x", "--occurrence=1", "-C"])
        .arg(out)
        .args(["-f", "-", member])
        .stdin(data.stdout.take().context("dpkg-deb stdout")?)
        .output()
        .context("running tar")?;
    // tar closing the pipe early makes dpkg-deb fail with EPIPE: expected.
    let _ = data.kill();
    let _ = data.wait();
    if !tar.status.success() {
        bail!("extracting {member} from {} failed: {}", deb.display(), String::from_utf8_lossy(&tar.stderr).trim_end());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::store::tests::TempDir;
    use super::*;

    #[test]
    fn debug_info_needs_a_cached_debian_kernel_and_says_so() {
        let tmp = TempDir::new("debuginfo");
        let store = KernelStore::new(tmp.0.join("kernels"));
        let err = fetch_debug_vmlinux(&store, "7.3.4+deb13-cloud-amd64").unwrap_err().to_string();
        assert!(err.contains("is not in the cache") && err.contains("`cargo ktstr kernel fetch` first"), "{err}");

        // A kernel put in the cache by hand has no Debian origin.
        let entry = store.dir().join("7.3.4-custom");
        fs::create_dir_all(&entry).unwrap();
        fs::write(entry.join(super::super::store::VMLINUZ), b"k").unwrap();
        let err = fetch_debug_vmlinux(&store, "7.3.4-custom").unwrap_err().to_string();
        assert!(err.contains("was not fetched from Debian") && err.contains("`vmlinux`"), "{err}");
    }
}
