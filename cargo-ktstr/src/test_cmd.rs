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
    /// Arguments passed to `cargo nextest run` (after `--`), e.g.
    /// `-E 'test(=my_test)'`, `--partition count:1/2`, `--no-capture`.
    #[arg(last = true)]
    nextest_args: Vec<String>,
}

pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let kernel = ktstr::kernel::ensure(args.kernel.as_deref())?;
    let code = run_nextest(&kernel, &args.nextest_args)?;
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
