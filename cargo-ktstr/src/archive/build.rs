//! `cargo ktstr archive FILE`: the build machine's half. Runs `cargo
//! nextest archive`, then writes the bundle (see the module above) as one
//! plain tar, whole or not at all.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use ktstr::cache::schedulers;
use ktstr::kernel::{store, KernelImage};

use super::{Manifest, DEBUG_ZST, FORMAT, MANIFEST, NEXTEST_ARCHIVE, TOP, WRAPPER};

#[derive(clap::Args)]
pub struct ArchiveArgs {
    /// The bundle to write (a plain tar; `.ktstr.tar` by convention).
    file: PathBuf,
    /// The kernel the tests boot on the runners: a version or a path, as
    /// for `cargo ktstr test` (default: KTSTR_KERNEL, else the newest cached).
    #[arg(long)]
    kernel: Option<String>,
    /// Leave the kernel's debug vmlinux out (about 80 MB compressed): the
    /// runners' crash trails then have no kernel source lines.
    #[arg(long)]
    no_debug_info: bool,
    /// Leave out the schedulers installed with `cargo ktstr sched install`
    /// (for suites that only run the workspace's own schedulers).
    #[arg(long)]
    no_installed_schedulers: bool,
    /// Arguments for `cargo nextest archive` (after `--`), e.g. `-p my-sched`
    /// or `--test vm_tests` to bundle only those tests (without `-p`, the
    /// whole workspace is selected, as `cargo ktstr test` builds it).
    #[arg(last = true)]
    nextest_args: Vec<String>,
}

/// The wrapper a runner starts: the bundled cargo-ktstr, with the bundled
/// libraries found before the system's (a runner may lack libelf).
const WRAPPER_SH: &str = r#"#!/bin/sh
# cargo ktstr, from this bundle (`cargo ktstr archive`): the bundled
# libraries come first, then the system's.
here=$(dirname "$(readlink -f "$0")")
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/bin/cargo-ktstr" ktstr "$@"
"#;

/// Libraries every runner has (glibc's own): never bundled, and the
/// runner's must be at least as new as the build machine's.
const GLIBC: &[&str] = &["libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "ld-linux", "libresolv.so"];

pub fn run(args: ArchiveArgs) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let kernel = ktstr::kernel::ensure(args.kernel.as_deref())?;
    let dir = args.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let staging = tempdir_in(dir)?;
    let result = build(&args, &cargo, &kernel, &staging.0);
    if let Err(e) = &result {
        eprintln!("cargo ktstr archive: nothing written to {}", args.file.display());
        return Err(anyhow::anyhow!("{e:#}"));
    }
    Ok(())
}

fn build(args: &ArchiveArgs, cargo: &std::ffi::OsStr, kernel: &KernelImage, staging: &Path) -> Result<()> {
    // 1. nextest's own archive: the test binaries and the workspace's
    //    binaries (the fixture schedulers among them).
    let nextest_archive = staging.join(NEXTEST_ARCHIVE);
    let status = Command::new(cargo)
        .args(["nextest", "archive", "--archive-file"])
        .arg(&nextest_archive)
        .args(selection(&args.nextest_args))
        .status()
        .context("running `cargo nextest archive`")?;
    anyhow::ensure!(status.success(), "`cargo nextest archive` failed (its messages are above)");
    let meta = cargo_metadata(cargo)?;
    let workspace = PathBuf::from(meta["workspace_root"].as_str().unwrap_or_default());

    // 2. What cargo does not know about, gathered before anything is written.
    let nextest_bin = on_path("cargo-nextest").context("cargo-nextest is not on PATH: install it first")?;
    // The running binary itself: /proc/self/exe reads it even if a build
    // has since replaced the file at its path.
    let me = PathBuf::from("/proc/self/exe");
    let installed = if args.no_installed_schedulers { Vec::new() } else { newest_installed() };
    let mut elves: Vec<PathBuf> = vec![me.clone(), nextest_bin.clone()];
    elves.extend(test_binaries(cargo, &args.nextest_args)?);
    elves.extend(installed.iter().map(|i| i.path.clone()));
    let libs = libraries(&elves)?;
    let debug = if args.no_debug_info { None } else { kernel.debug_vmlinux() };
    let manifest = Manifest {
        format: FORMAT,
        kernel: kernel.release.clone(),
        kernels: vec![kernel.release.clone()],
        schedulers: installed.iter().map(|i| format!("{}@{}", i.name, i.version)).collect(),
        libs: libs.keys().cloned().collect(),
        nextest: version_line(&nextest_bin),
        workspace: workspace.clone(),
    };

    // 3. The tar, beside FILE, renamed onto it once complete.
    let partial = staging.join("bundle.tar");
    let mut tar = tar::Builder::new(BufWriter::new(File::create(&partial)?));
    tar.mode(tar::HeaderMode::Deterministic);
    let at = |rel: &str| format!("{TOP}/{rel}");
    add_bytes(&mut tar, &at(MANIFEST), &serde_json::to_vec_pretty(&manifest)?, 0o644)?;
    add_bytes(&mut tar, &at(WRAPPER), WRAPPER_SH.as_bytes(), 0o755)?;
    tar.append_path_with_name(&me, at("bin/cargo-ktstr"))?;
    tar.append_path_with_name(&nextest_bin, at("bin/cargo-nextest"))?;
    tar.append_path_with_name(&nextest_archive, at(NEXTEST_ARCHIVE))?;
    workspace_view(&mut tar, &meta, &workspace, &at("workspace"))?;
    let entry = at(&format!("kernels/{}", kernel.release));
    tar.append_path_with_name(&kernel.vmlinuz, format!("{entry}/{}", store::VMLINUZ))?;
    if let Some(config) = &kernel.config {
        tar.append_path_with_name(config, format!("{entry}/{}", store::CONFIG))?;
    }
    let meta_json = kernel.vmlinuz.with_file_name(store::META);
    if meta_json.is_file() {
        tar.append_path_with_name(&meta_json, format!("{entry}/{}", store::META))?;
    }
    if let Some(debug) = &debug {
        eprintln!("cargo ktstr archive: compressing {} ({} MB)", debug.display(), size(debug) >> 20);
        let zst = staging.join(DEBUG_ZST);
        compress(debug, &zst)?;
        tar.append_path_with_name(&zst, format!("{entry}/{DEBUG_ZST}"))?;
    }
    for i in &installed {
        tar.append_path_with_name(&i.path, at(&format!("schedulers/{}/{}/bin/{}", i.name, i.version, i.name)))?;
    }
    for (name, host) in &libs {
        tar.append_path_with_name(host, at(&format!("lib/{name}")))?;
    }
    tar.into_inner()?.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, &args.file).with_context(|| format!("writing {}", args.file.display()))?;

    let mb = |p: &Path| size(p) as f64 / 1e6;
    eprintln!(
        "cargo ktstr archive: wrote {} ({:.0} MB): the tests ({:.0} MB, nextest {}), kernel {}{}, {} installed \
         schedulers, {} libraries",
        args.file.display(),
        mb(&args.file),
        mb(&nextest_archive),
        manifest.nextest.trim_start_matches("cargo-nextest "),
        kernel.release,
        if debug.is_some() { " with its debug vmlinux" } else { "" },
        installed.len(),
        libs.len()
    );
    eprintln!(
        "  on a runner: tar -xf {f} && {TOP}/{WRAPPER} test --archive {TOP} --partition hash:1/2",
        f = args.file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    );
    Ok(())
}

/// A directory removed when dropped.
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir_in(dir: &Path) -> Result<TempDir> {
    let p = dir.join(format!(".ktstr-archive-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok(TempDir(p))
}

fn size(p: &Path) -> u64 {
    p.metadata().map(|m| m.len()).unwrap_or(0)
}

fn add_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(mode);
    h.set_cksum();
    Ok(tar.append_data(&mut h, name, bytes)?)
}

fn cargo_metadata(cargo: &std::ffi::OsStr) -> Result<serde_json::Value> {
    let out = Command::new(cargo).args(["metadata", "--format-version", "1", "--no-deps"]).output()?;
    anyhow::ensure!(out.status.success(), "`cargo metadata` failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// nextest's view of the workspace: its config and the manifests of the
/// workspace and its packages, each in its directory. nextest checks the
/// root manifest is there, runs each test in its package's directory
/// under `--workspace-remap`, and reads its profiles from
/// `.config/nextest.toml`. (Tests that read files of the source tree need
/// the tree itself, as nextest's own docs say.)
fn workspace_view<W: Write>(tar: &mut tar::Builder<W>, meta: &serde_json::Value, root: &Path, at: &str) -> Result<()> {
    add_dir(tar, at)?;
    for rel in [".config/nextest.toml", "Cargo.toml"] {
        if root.join(rel).is_file() {
            tar.append_path_with_name(root.join(rel), format!("{at}/{rel}"))?;
        }
    }
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let manifest = Path::new(pkg["manifest_path"].as_str().unwrap_or_default());
        if let Ok(rel) = manifest.strip_prefix(root) {
            if rel != Path::new("Cargo.toml") {
                if let Some(dir) = rel.parent() {
                    add_dir(tar, &format!("{at}/{}", dir.display()))?;
                }
                tar.append_path_with_name(manifest, format!("{at}/{}", rel.display()))?;
            }
        }
    }
    Ok(())
}

fn add_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_cksum();
    Ok(tar.append_data(&mut h, format!("{name}/"), std::io::empty())?)
}

/// The user's nextest arguments, with `--workspace` first unless they pick
/// packages: the selection `cargo ktstr test` builds, so the same features
/// resolve and nothing is rebuilt.
fn selection(nextest_args: &[String]) -> Vec<String> {
    let picks_packages = nextest_args.iter().any(|a| a == "-p" || a.starts_with("--package"));
    let workspace = (!picks_packages).then(|| "--workspace".to_string());
    workspace.into_iter().chain(nextest_args.iter().cloned()).collect()
}

/// The test binaries `cargo nextest archive` took (the same selection).
fn test_binaries(cargo: &std::ffi::OsStr, nextest_args: &[String]) -> Result<Vec<PathBuf>> {
    let mut cmd = Command::new(cargo);
    cmd.args(["nextest", "list", "--list-type", "binaries-only", "--message-format", "json"]);
    let out = cmd.args(selection(nextest_args)).output().context("running `cargo nextest list`")?;
    if !out.status.success() {
        bail!("`cargo nextest list` failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let list: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let suites = list["rust-binaries"].as_object().into_iter().flatten();
    Ok(suites.filter_map(|(_, b)| Some(PathBuf::from(b["binary-path"].as_str()?))).collect())
}

/// Name → host path of every shared library `elves` load, beyond glibc.
fn libraries(elves: &[PathBuf]) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for elf in elves {
        let closure = match ktstr::vm::initramfs::library_closure(elf) {
            Ok(c) => c,
            // A proc-macro crate's tests load the Rust standard library
            // from the toolchain: nextest's archive carries that one.
            Err(e) if format!("{e:#}").contains(" needs libstd-") => continue,
            Err(e) => return Err(e.context(format!("finding the shared libraries of {}", elf.display()))),
        };
        for (guest, host) in closure {
            let name = guest.rsplit('/').next().unwrap_or_default().to_string();
            if !GLIBC.iter().any(|g| name.starts_with(g)) {
                out.insert(name, host);
            }
        }
    }
    Ok(out)
}

/// The newest install of each scheduler in ktstr's cache.
fn newest_installed() -> Vec<schedulers::Installed> {
    let mut out: Vec<schedulers::Installed> = Vec::new();
    for i in schedulers::installed_in(&schedulers::root()) {
        if out.last().is_none_or(|l| l.name != i.name) {
            out.push(i);
        }
    }
    out
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

fn version_line(bin: &Path) -> String {
    let out = Command::new(bin).args(["nextest", "--version"]).output();
    out.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string)).unwrap_or_default()
}

/// zstd at its default level: a debug vmlinux shrinks about 4x in a few
/// seconds (pure-Rust ruzstd's only level managed 1.5x).
fn compress(from: &Path, to: &Path) -> Result<()> {
    let input = std::io::BufReader::new(File::open(from)?);
    let mut out = BufWriter::new(File::create(to)?);
    zstd::stream::copy_encode(input, &mut out, 0).with_context(|| format!("compressing {}", from.display()))?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}
