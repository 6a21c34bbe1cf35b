//! `cargo ktstr replay [--filter NAME] [--list]`: the tests that failed in
//! the last `cargo ktstr test` run, run again on the same kernel image,
//! each selected in its own test binary; with `--list`, only what failed
//! and where its outputs are. `--exec` (the spec's outputs block writes
//! it) is the default, and kept.

use anyhow::{bail, Context};

use crate::{runs, test_cmd};

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Only the failed tests whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// List them, with their outputs, instead of running them again.
    #[arg(long, conflicts_with = "exec")]
    list: bool,
    /// Run them again, ignored tests included (the default).
    #[arg(long)]
    exec: bool,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = runs::output_root(&cargo).context("cannot find the cargo target directory (`cargo metadata` failed)")?;
    let last = runs::last(&root)?;
    let picked: Vec<&runs::Failed> =
        last.failed.iter().filter(|f| args.filter.as_deref().is_none_or(|n| f.test.contains(n))).collect();
    if picked.is_empty() {
        let which = args.filter.as_deref().map(|n| format!(" matching `{n}`")).unwrap_or_default();
        // Nothing to run is not an error, but a name that matched nothing
        // may be a typo: say what did fail, and where to see it.
        let hint = match (args.filter.is_some(), last.failed.is_empty()) {
            (true, false) => "; `cargo ktstr replay --list` lists them",
            _ => "",
        };
        eprintln!(
            "cargo ktstr replay: no failed test{which} in the last run (kernel {}, {} failed in all{hint})",
            last.kernel_release,
            last.failed.len()
        );
        return Ok(());
    }
    if args.list {
        eprintln!(
            "cargo ktstr replay: {} failed in the last run (kernel {}, {})",
            picked.len(),
            last.kernel_release,
            last.dir.display()
        );
        for f in &picked {
            eprintln!("  FAILED {} [{}]", f.test, f.what);
            eprintln!("    rerun: cargo ktstr replay --filter {}", f.test);
        }
        return Ok(());
    }
    if !last.kernel_image.exists() {
        bail!(
            "the last run's kernel image {} is gone: fetch it again (`cargo ktstr kernel fetch`) or run `cargo ktstr test`",
            last.kernel_image.display()
        );
    }
    let kernel = ktstr::kernel::resolve(Some(&last.kernel_image.display().to_string()))?;
    let filter = picked.iter().map(|f| f.filter()).collect::<Vec<_>>().join(" | ");
    eprintln!("cargo ktstr replay: running {} again: {filter}", picked.len());
    let args = ["--run-ignored".to_string(), "all".into(), "-E".into(), filter];
    let code = test_cmd::run_nextest(&kernel, &args)?;
    std::process::exit(code);
}
