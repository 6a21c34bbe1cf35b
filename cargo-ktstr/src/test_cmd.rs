//! `cargo ktstr test [--kernel K] [-- nextest args]`: makes sure a kernel
//! is there, hands over to `cargo nextest run`, then says where the failed
//! tests' outputs are (`cargo ktstr: test outputs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::Context;

#[derive(clap::Args)]
pub struct TestArgs {
    /// Kernel for every test: a cached version (`7.3`), a vmlinuz/bzImage
    /// path, or a kernel build tree. Default: the newest cached kernel,
    /// fetched first if the cache is empty.
    #[arg(long)]
    kernel: Option<String>,
    /// Arguments passed to `cargo nextest run` (after `--`).
    #[arg(last = true)]
    nextest_args: Vec<String>,
}

pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let kernel = match &args.kernel {
        Some(spec) => ktstr::kernel::resolve(Some(spec))?,
        None => ktstr::kernel::ensure_default()?,
    };
    eprintln!("cargo ktstr: kernel {} ({})", kernel.release, kernel.vmlinuz.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = SystemTime::now();
    let status = Command::new(&cargo)
        .args(["nextest", "run", "--workspace"])
        .args(&args.nextest_args)
        .env("KTSTR_KERNEL", &kernel.vmlinuz)
        .status()
        .context("running `cargo nextest run` (install it with `cargo install cargo-nextest --locked`)")?;
    if let Some(root) = output_root(&cargo) {
        print_outputs(&root.join(&kernel.release), started);
    }
    std::process::exit(status.code().unwrap_or(1));
}

/// Where the tests write their artifacts (see `ktstr::artifacts`).
fn output_root(cargo: &std::ffi::OsStr) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(ktstr::artifacts::OUTPUT_DIR_ENV) {
        return Some(d.into());
    }
    let out = Command::new(cargo).args(["metadata", "--format-version", "1", "--no-deps"]).output().ok()?;
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(PathBuf::from(meta.get("target_directory")?.as_str()?).join("ktstr"))
}

/// The failed tests of this run (their stats sidecars are newer than
/// `since`), not counting failures a test pins with expect_err.
fn print_outputs(dir: &Path, since: SystemTime) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut failed: Vec<(String, String, PathBuf, PathBuf)> = Vec::new();
    for path in rd.flatten().map(|e| e.path()) {
        let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ktstr.json")) else {
            continue;
        };
        let fresh = path.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since);
        let doc: serde_json::Value = match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            Some(d) if fresh => d,
            _ => continue,
        };
        if doc["passed"].as_bool() != Some(false) || doc["expected_failure"].as_bool() == Some(true) {
            continue;
        }
        let test = doc["test"].as_str().unwrap_or(stem).to_string();
        let what =
            format!("{} {}", doc["scheduler"].as_str().unwrap_or("eevdf"), doc["topology"].as_str().unwrap_or("?"));
        failed.push((test, what, dir.join(format!("{stem}.failure-dump.json")), path.clone()));
    }
    if failed.is_empty() {
        return;
    }
    failed.sort();
    eprintln!("\ncargo ktstr: test outputs\n  {}", dir.display());
    for (test, what, dump, stats) in failed {
        eprintln!("  FAILED {test} [{what}]");
        eprintln!("    failure dump {}", dump.display());
        eprintln!("    stats {}", stats.display());
    }
}
