//! `cargo ktstr sched ...`: released sched_ext schedulers from the crates
//! registry, built into ktstr's cache, where `Scheduler::discover` finds
//! them by name.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ktstr::cache::schedulers::{self, SchedSpec};

#[derive(Args)]
pub struct SchedArgs {
    #[command(subcommand)]
    cmd: SchedCmd,
}

#[derive(Subcommand)]
enum SchedCmd {
    /// Build schedulers from the crates registry into ktstr's cache
    ///
    /// Each is `cargo install --locked` of the crate (newest version, or
    /// the one after `@`) with the BPF toolchain ktstr's set-up installs
    /// (BPF_CLANG=clang-19), into `<cache>/schedulers/<name>/<version>`.
    /// All builds share one target directory, so the second scheduler
    /// reuses the first's dependencies. A test then names it with
    /// `Scheduler::discover("scx_lavd")` (the newest installed) or
    /// `Scheduler::discover("scx_lavd@1.1.4")`.
    ///
    /// Examples:
    ///   cargo ktstr sched install scx_lavd
    ///   cargo ktstr sched install scx_bpfland@1.1.4 scx_cosmos
    ///   cargo ktstr sched install --matrix            the 11 schedulers of the scx-matrix
    #[command(verbatim_doc_comment)]
    Install {
        /// `name` or `name@version`.
        #[arg(required_unless_present = "matrix")]
        specs: Vec<String>,
        /// Also every scheduler of scx's release check, which `scx-matrix` runs.
        #[arg(long)]
        matrix: bool,
        /// Build again even if that version is installed.
        #[arg(long)]
        force: bool,
    },
    /// List the installed schedulers: name, version, binary.
    List,
}

pub fn run(args: SchedArgs) -> Result<()> {
    match args.cmd {
        SchedCmd::Install { mut specs, matrix, force } => {
            if matrix {
                specs.extend(ktstr::report::matrix::SCHEDULERS.iter().map(|s| s.to_string()));
            }
            let specs: Vec<SchedSpec> = specs.iter().map(|s| SchedSpec::parse(s)).collect::<Result<_>>()?;
            let root = schedulers::root();
            for spec in &specs {
                install(&root, spec, force)?;
            }
            Ok(())
        }
        SchedCmd::List => {
            let root = schedulers::root();
            let all = schedulers::installed_in(&root);
            if all.is_empty() {
                println!("no schedulers installed in {} (cargo ktstr sched install scx_lavd)", root.display());
            }
            for i in all {
                println!("{:<16} {:<10} {}", i.name, i.version, i.path.display());
            }
            Ok(())
        }
    }
}

/// The clang the scheduler's BPF is built with: `$BPF_CLANG`, else the
/// clang-19 set-up installs (scx_utils' build runs plain `clang` otherwise).
fn bpf_clang() -> Result<String> {
    if let Ok(c) = std::env::var("BPF_CLANG") {
        return Ok(c);
    }
    let found =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("clang-19").is_file()));
    anyhow::ensure!(found, "clang-19 is not installed: run `cargo ktstr setup` (or set $BPF_CLANG to a clang >= 18)");
    Ok("clang-19".into())
}

fn install(root: &Path, spec: &SchedSpec, force: bool) -> Result<()> {
    if let (false, Some(i)) = (force, spec.version.as_ref().and_then(|_| schedulers::find_in(root, spec))) {
        println!("{} {} is installed: {}", i.name, i.version, i.path.display());
        return Ok(());
    }
    let clang = bpf_clang()?;
    std::fs::create_dir_all(root).with_context(|| format!("creating ktstr's scheduler cache {}", root.display()))?;
    let staging = root.join(format!(".staging-{}-{}", spec.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let started = Instant::now();
    eprintln!("sched: building {spec} (cargo install, BPF_CLANG={clang}) ...");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["install", "--locked", "--root"])
        .arg(&staging)
        .arg("--target-dir")
        .arg(root.join(".target"))
        .arg(spec.to_string())
        .env("BPF_CLANG", &clang)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo install")?;
    let mut tail: Vec<String> = Vec::new();
    for line in BufReader::new(child.stderr.take().expect("piped")).lines().map_while(Result::ok) {
        eprintln!("  {line}");
        tail.push(line);
    }
    let status = child.wait()?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        bail!("building {spec} failed ({status}){}", hint(&tail.join("\n")));
    }
    let result = place(root, &staging, &spec.name);
    let _ = std::fs::remove_dir_all(&staging);
    let (dest, fresh) = result?;
    let how = if fresh { "installed" } else { "was already installed" };
    println!("{} {how} in {:.0}s: {}", spec.name, started.elapsed().as_secs_f64(), dest.display());
    Ok(())
}

/// Renames the staging root into `<name>/<version>` (the version from
/// cargo's own record), whole; an install already there is kept.
fn place(root: &Path, staging: &Path, name: &str) -> Result<(PathBuf, bool)> {
    let record = std::fs::read_to_string(staging.join(".crates2.json")).context("cargo left no .crates2.json")?;
    let version = schedulers::version_from_crates2(&record, name)?;
    let dest = schedulers::install_dir(root, name, &version);
    let bin = dest.join("bin").join(name);
    if bin.is_file() {
        return Ok((bin, false));
    }
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(dest.parent().expect("under root"))?;
    std::fs::rename(staging, &dest).with_context(|| format!("moving the build into {}", dest.display()))?;
    Ok((bin, true))
}

/// What a failed build's output says to do.
pub fn hint(log: &str) -> &'static str {
    if log.contains("seccomp") {
        "\n  it needs libseccomp (scx_rustland_core schedulers link it): apt-get install libseccomp-dev"
    } else if log.contains("could not find `") || log.contains("no matching package named") {
        "\n  no such crate in the registry: check the name (`scx_lavd`, `scx_bpfland`, ...)"
    } else if log.contains("clang") && log.contains("not found") {
        "\n  no clang for the BPF build: run `cargo ktstr setup`, or set $BPF_CLANG"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A staging root as `cargo install --root` leaves it: moved whole into
    /// `<name>/<version>` by cargo's own record; a second install of the
    /// same version keeps the first.
    #[test]
    fn staging_is_placed_by_cargos_record() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("ktstr-sched-place-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let stage = |n: u32| {
            let staging = root.join(format!(".staging-scx_cosmos-{n}"));
            std::fs::create_dir_all(staging.join("bin")).unwrap();
            let record = include_str!("../../ktstr/tests/fixtures/sched/crates2.json");
            std::fs::write(staging.join(".crates2.json"), record).unwrap();
            let bin = staging.join("bin/scx_cosmos");
            std::fs::write(&bin, format!("build {n}")).unwrap();
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
            staging
        };
        let (bin, fresh) = place(&root, &stage(1), "scx_cosmos").unwrap();
        assert_eq!((bin.clone(), fresh), (root.join("scx_cosmos/1.1.7/bin/scx_cosmos"), true));
        let (again, fresh) = place(&root, &stage(2), "scx_cosmos").unwrap();
        assert_eq!((again, fresh), (bin.clone(), false));
        assert_eq!(std::fs::read_to_string(&bin).unwrap(), "build 1");
        let found = schedulers::find_in(&root, &SchedSpec::parse("scx_cosmos").unwrap()).unwrap();
        assert_eq!(found.path, bin);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// cargo's words for the failures seen here, and what to do about each.
    #[test]
    fn failed_builds_get_a_hint() {
        let no_crate = "error: could not find `scx_nosuch` in registry `crates-io` with version `*`";
        assert!(hint(no_crate).contains("no such crate"));
        let seccomp = "  = note: /usr/bin/ld: cannot find -lseccomp: No such file or directory";
        assert!(hint(seccomp).contains("apt-get install libseccomp-dev"));
        assert_eq!(hint("error: something else"), "");
    }
}
