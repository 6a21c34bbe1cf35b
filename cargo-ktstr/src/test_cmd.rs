//! `cargo ktstr test [--kernel K] [-- nextest args]`: makes sure a kernel
//! is there, then hands over to `cargo nextest run`.

use std::process::Command;

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
    let status = Command::new(cargo)
        .args(["nextest", "run", "--workspace"])
        .args(&args.nextest_args)
        .env("KTSTR_KERNEL", &kernel.vmlinuz)
        .status()
        .context("running `cargo nextest run` (install it with `cargo install cargo-nextest --locked`)")?;
    std::process::exit(status.code().unwrap_or(1));
}
