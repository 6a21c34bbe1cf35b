//! `cargo ktstr test [--kernel K] [-- nextest args]`: makes sure a kernel
//! is there, hands over to `cargo nextest run`, then says where the failed
//! tests' outputs are (`cargo ktstr: test outputs`) and records the run
//! for `cargo ktstr replay`.

use std::process::Command;
use std::time::SystemTime;

use anyhow::Context;

use crate::runs;

#[derive(clap::Args)]
pub struct TestArgs {
    /// Kernel for every test: a version (`7.3`: the newest cached 7.3.x,
    /// else fetched from Debian's archive), a vmlinuz/bzImage path, or a
    /// kernel build tree. Default: KTSTR_KERNEL, else the newest cached
    /// kernel, fetched first if the cache is empty.
    #[arg(long)]
    kernel: Option<String>,
    /// Run the tests of a bundle `cargo ktstr archive` wrote (the tar, or
    /// the directory it was unpacked to) instead of building: no Rust
    /// toolchain or source tree needed. Its kernel is the default.
    #[arg(long, value_name = "BUNDLE")]
    archive: Option<std::path::PathBuf>,
    /// One share of the tests, as nextest's `--partition`: `hash:K/N`
    /// (stable across machines and runs) or `count:K/N`.
    #[arg(long, value_name = "hash:K/N")]
    partition: Option<String>,
    /// Arguments passed to `cargo nextest run` (after `--`), e.g.
    /// `-E 'test(=my_test)'`, `--partition count:1/2`, `--no-capture`.
    #[arg(last = true)]
    nextest_args: Vec<String>,
}

pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let mut nextest_args = args.nextest_args;
    if let Some(p) = args.partition {
        nextest_args.splice(0..0, ["--partition".to_string(), p]);
    }
    let code = match &args.archive {
        Some(bundle) => crate::archive::run::run(bundle, args.kernel.as_deref(), &nextest_args)?,
        None => run_nextest(&ktstr::kernel::ensure(args.kernel.as_deref())?, &nextest_args)?,
    };
    std::process::exit(code);
}

/// `cargo nextest run --workspace <args>` on `kernel`, then the outputs
/// block and the run's record; the exit code nextest gave.
pub fn run_nextest(kernel: &ktstr::kernel::KernelImage, args: &[String]) -> anyhow::Result<i32> {
    eprintln!("cargo ktstr: kernel {} ({})", kernel.release, kernel.vmlinuz.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let nextest = Command::new(&cargo).args(["nextest", "--version"]).output();
    anyhow::ensure!(
        nextest.is_ok_and(|o| o.status.success()),
        "cargo-nextest is not installed: `cargo ktstr test` runs the tests through it. Install it with \
         `cargo install cargo-nextest --locked`"
    );
    let started = SystemTime::now();
    let status = Command::new(&cargo)
        .args(["nextest", "run", "--workspace"])
        .args(args)
        .env("KTSTR_KERNEL", &kernel.vmlinuz)
        .status()
        .context("running `cargo nextest run` (install it with `cargo install cargo-nextest --locked`)")?;
    if let Some(root) = runs::output_root(&cargo) {
        let dir = root.join(&kernel.release);
        let failed = runs::failed_since(&dir, started);
        runs::print_outputs(&dir, &failed);
        if let Err(e) = runs::record(&root, kernel, &failed) {
            eprintln!("cargo ktstr: warning: cannot record this run for `cargo ktstr replay`: {e:#}");
        }
    }
    Ok(status.code().unwrap_or(1))
}
