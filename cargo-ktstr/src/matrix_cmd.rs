//! `cargo ktstr matrix`: the last run of the scheduler × scenario matrix
//! (the `scx-matrix` package's tests) as a table, on the terminal and,
//! with `--markdown`, as a file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ktstr::report::matrix::Matrix;
use ktstr::scenario::catalogue::CATALOGUE;

use crate::runs;

#[derive(Args)]
pub struct MatrixArgs {
    /// Also write the table as markdown to this file (written whole, or not at all).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// The run directory to read (default: the last `cargo ktstr test` run's).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Prints the matrix: per topology, each scheduler × scenario as pass,
/// FAIL / config / harness with a numbered note holding the report's first
/// detail line, or skip with why.
pub fn run(args: MatrixArgs) -> Result<()> {
    let dir = match args.dir {
        Some(d) => d,
        None => {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let root = runs::output_root(&cargo)
                .context("cannot find the cargo target directory (`cargo metadata` failed)")?;
            runs::last(&root)?.dir
        }
    };
    let scenarios: Vec<&str> = CATALOGUE.iter().map(|c| c.name).collect();
    let m = Matrix::read(&dir, &scenarios);
    let table = m.markdown(&scenarios);
    let (vm_ms, runs) = m.vm_time();
    let kernels = if m.kernels.is_empty() { "none recorded".to_string() } else { m.kernels.join(", ") };
    let head = format!(
        "scheduler × scenario matrix from {}\nkernel: {kernels}; {runs} VM runs, {:.0}s of VM time, {:.1}s per run\n",
        dir.display(),
        vm_ms as f64 / 1000.0,
        if runs > 0 { vm_ms as f64 / 1000.0 / runs as f64 } else { 0.0 }
    );
    println!("{head}\n{table}");
    if let Some(path) = args.markdown {
        ktstr::artifacts::write_atomic(&path, format!("{head}\n{table}").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("matrix: written to {}", path.display());
    }
    Ok(())
}
