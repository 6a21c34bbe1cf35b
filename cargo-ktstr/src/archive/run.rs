//! `cargo ktstr test --archive BUNDLE`: the runner's half. Unpacks the
//! bundle if given as a file, adopts its kernels and schedulers into this
//! machine's cache, and runs nextest from the archive inside it, with the
//! outputs block and the run record a local run has.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result};
use ktstr::cache::schedulers;
use ktstr::kernel::{lines::DEBUG_VMLINUX, store, KernelImage, KernelStore};

use super::{read_manifest, Layout, Manifest, DEBUG_ZST, TOP};
use crate::runs;

/// Runs the bundle at `archive` (its tar, or the directory it unpacked
/// to) on `kernel` (default: the bundle's), nextest's `args` after ours.
/// Returns nextest's exit code.
pub fn run(archive: &Path, kernel: Option<&str>, args: &[String]) -> Result<i32> {
    let layout = open(archive)?;
    let manifest = read_manifest(&layout)?;
    adopt_kernels(&layout, &manifest)?;
    adopt_schedulers(&layout, &manifest)?;
    let kernel = ktstr::kernel::resolve(Some(kernel.unwrap_or(&manifest.kernel)))
        .with_context(|| format!("the kernel for the bundle's tests (it holds {})", manifest.kernels.join(", ")))?;
    eprintln!(
        "cargo ktstr: kernel {} ({}), tests from {}",
        kernel.release,
        kernel.vmlinuz.display(),
        layout.0.display()
    );
    run_nextest(&layout, &kernel, args)
}

/// The unpacked bundle `path` names: a directory holding its manifest (or
/// holding `ktstr-archive/`), else a tar unpacked beside it into
/// `<file>.d/` (replaced whole: a half-unpacked one from a killed run
/// is never used).
fn open(path: &Path) -> Result<Layout> {
    if path.is_dir() {
        let inner = path.join(TOP);
        return Ok(Layout(if inner.is_dir() { inner } else { path.to_path_buf() }));
    }
    let file = File::open(path).with_context(|| {
        format!(
            "cannot open the bundle {}: give the file `cargo ktstr archive` wrote, or the directory it was unpacked to",
            path.display()
        )
    })?;
    let dest = PathBuf::from(format!("{}.d", path.display()));
    let partial = PathBuf::from(format!("{}.d.partial-{}", path.display(), std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    eprintln!("cargo ktstr: unpacking {} into {}", path.display(), dest.display());
    let mut tar = tar::Archive::new(BufReader::new(file));
    tar.set_preserve_permissions(true);
    if let Err(e) = tar.unpack(&partial) {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(
            anyhow::anyhow!(e).context(format!("unpacking {} (a damaged or partial download?)", path.display()))
        );
    }
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&partial, &dest)?;
    Ok(Layout(dest.join(TOP)))
}

/// Each bundled kernel into this machine's kernel cache, whole (its debug
/// vmlinux decompressed), unless a kernel of that release is cached.
fn adopt_kernels(layout: &Layout, manifest: &Manifest) -> Result<()> {
    let kernels = KernelStore::new(ktstr::kernel::cache_dir());
    for release in &manifest.kernels {
        let from = layout.kernel(release);
        let (k, new) = kernels
            .adopt(release, |entry| {
                for name in [store::VMLINUZ, store::CONFIG, store::META] {
                    if from.join(name).is_file() {
                        std::fs::copy(from.join(name), entry.join(name))?;
                    }
                }
                let zst = from.join(DEBUG_ZST);
                if zst.is_file() {
                    decompress(&zst, &entry.join(DEBUG_VMLINUX))?;
                }
                Ok(())
            })
            .with_context(|| format!("adding kernel {release} from the bundle to {}", kernels.dir().display()))?;
        if new {
            eprintln!("cargo ktstr: kernel {release} from the bundle, now cached at {}", k.vmlinuz.display());
        }
    }
    Ok(())
}

fn decompress(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(File::create(to)?);
    zstd::stream::copy_decode(BufReader::new(File::open(from)?), &mut out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Each bundled scheduler into ktstr's scheduler cache, as `cargo ktstr
/// sched install` lays it out (staging renamed into place), unless there.
fn adopt_schedulers(layout: &Layout, manifest: &Manifest) -> Result<()> {
    let root = schedulers::root();
    for spec in &manifest.schedulers {
        let Some((name, version)) = spec.split_once('@') else { continue };
        let Ok(version) = schedulers::Version::parse(version) else { continue };
        let target = schedulers::install_dir(&root, name, &version);
        if target.join("bin").join(name).is_file() {
            continue;
        }
        let staging = root.join(format!(".adopt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(staging.join("bin"))?;
        let from = layout.schedulers().join(name).join(version.to_string()).join("bin").join(name);
        let placed = std::fs::copy(&from, staging.join("bin").join(name))
            .and_then(|_| std::fs::create_dir_all(target.parent().unwrap_or(&root)))
            .and_then(|()| std::fs::rename(&staging, &target));
        let _ = std::fs::remove_dir_all(&staging);
        placed.with_context(|| format!("adding scheduler {spec} from the bundle to {}", root.display()))?;
        eprintln!("cargo ktstr: scheduler {spec} from the bundle, now installed in {}", target.display());
    }
    Ok(())
}

/// nextest from the archive, extracted into the bundle's `run/` (which
/// holds the tests' outputs afterwards), then the outputs block.
fn run_nextest(layout: &Layout, kernel: &KernelImage, args: &[String]) -> Result<i32> {
    let out_root = layout.output_root();
    let libs = layout.lib();
    let ld_path = match std::env::var_os("LD_LIBRARY_PATH") {
        Some(old) => std::env::join_paths(std::iter::once(libs.clone()).chain(std::env::split_paths(&old)))?,
        None => libs.clone().into_os_string(),
    };
    std::fs::create_dir_all(layout.run_dir())?;
    let started = SystemTime::now();
    let status = Command::new(layout.bin("cargo-nextest"))
        .args(["nextest", "run", "--archive-file"])
        .arg(layout.nextest_archive())
        .arg("--workspace-remap")
        .arg(layout.workspace())
        .arg("--extract-to")
        .arg(layout.run_dir())
        .arg("--extract-overwrite")
        .args(args)
        .env("KTSTR_KERNEL", &kernel.vmlinuz)
        .env(ktstr::artifacts::OUTPUT_DIR_ENV, &out_root)
        .env("LD_LIBRARY_PATH", ld_path)
        .status()
        .with_context(|| format!("running the bundle's nextest ({})", layout.bin("cargo-nextest").display()))?;
    let dir = out_root.join(&kernel.release);
    let failed = runs::failed_since(&dir, started);
    let bundle = layout.0.display().to_string();
    runs::print_outputs_with(&dir, &failed, |test| {
        format!("{bundle}/ktstr test --archive {bundle} -- --run-ignored all -E 'test(={test})'")
    });
    if let Err(e) = runs::record(&out_root, kernel, &failed) {
        eprintln!("cargo ktstr: warning: cannot record this run: {e:#}");
    }
    Ok(status.code().unwrap_or(1))
}
