//! Carrying out a [`SetupPlan`]: installs the Debian packages ktstr needs
//! on the host (QEMU 10, clang-19, libelf, ...), adding bookworm-backports
//! from the machine's own mirror when QEMU must come from there.
//! `--dry-run` prints the decisions only; `--root` decides for a sample
//! tree instead of `/` (the tests use it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::debian::HostDebian;
use crate::plan::{plan, Install, SetupPlan};
use anyhow::{bail, Context, Result};

/// The arguments of `ktstr-setup` and `cargo ktstr setup`.
#[derive(clap::Args, Debug)]
pub struct SetupArgs {
    /// Print what would be installed, and from where, without doing it.
    #[arg(long)]
    dry_run: bool,
    /// Decide for the machine whose files are under this directory
    /// (`etc/os-release`, `etc/apt`, `var/lib/dpkg/status`). Only with --dry-run.
    #[arg(long, default_value = "/", requires = "dry_run")]
    root: PathBuf,
    /// Also what the whole test suite needs (`./run test`): shellcheck, g++,
    /// chromium.
    #[arg(long)]
    test_tools: bool,
}

/// Decides, prints the decisions, and (unless `--dry-run`) installs.
pub fn run(args: SetupArgs) -> Result<()> {
    let host = HostDebian::read(&args.root);
    let plan = plan(&host, args.test_tools)?;
    print!("{plan}");
    if args.dry_run || plan.is_empty() {
        return Ok(());
    }
    apply(&plan)?;
    // Check the result the same way it was decided.
    let after = self::plan(&HostDebian::read(&args.root), args.test_tools)?;
    if !after.is_empty() {
        bail!("apt-get finished, but these are still missing or too old:\n{after}");
    }
    println!("setup: packages ready");
    Ok(())
}

fn apply(plan: &SetupPlan) -> Result<()> {
    let root = Root::detect()?;
    if let Some((path, text)) = &plan.add_source {
        root.write_file(path, text)?;
    }
    // Always refresh the lists: a fresh machine has none, and a source may
    // have just been added.
    let mut update = Command::new("apt-get");
    update.args(["update", "-q"]);
    root.run("updating apt's package lists", &update)?;
    for Install { packages, suite } in &plan.installs {
        let mut cmd = Command::new("apt-get");
        cmd.args(["install", "-y", "-q", "--no-install-recommends"]);
        if let Some(s) = suite {
            cmd.args(["-t", s]);
        }
        cmd.args(packages);
        let what = format!("installing {} from {}", packages.join(" "), suite.as_deref().unwrap_or(&plan.codename));
        root.run(&what, &cmd)?;
    }
    Ok(())
}

/// Runs commands as root: directly when we are root, else through sudo.
struct Root {
    sudo: bool,
}

impl Root {
    fn detect() -> Result<Root> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            return Ok(Root { sudo: false });
        }
        if which("sudo") {
            return Ok(Root { sudo: true });
        }
        bail!("installing packages needs root: rerun as root, or install sudo")
    }

    /// `cmd` as root, non-interactive (sudo resets the environment, so
    /// the variable goes through `env`).
    fn command(&self, cmd: &Command) -> Command {
        let mut c = if self.sudo { Command::new("sudo") } else { Command::new("env") };
        if self.sudo {
            c.arg("env");
        }
        c.arg("DEBIAN_FRONTEND=noninteractive").arg(cmd.get_program()).args(cmd.get_args());
        c
    }

    fn run(&self, what: &str, cmd: &Command) -> Result<()> {
        let mut c = self.command(cmd);
        println!("setup: {what}");
        let status = c.status().with_context(|| format!("{what}: cannot run {:?}", c.get_program()))?;
        if !status.success() {
            bail!(
                "{what} failed: `{}` exited with {status}. apt's messages above say why; \
                 fix that (network, a broken source, a held package) and rerun",
                render(&c)
            );
        }
        Ok(())
    }

    /// Writes a root-owned file whole: a temporary beside it, then rename.
    fn write_file(&self, path: &Path, text: &str) -> Result<()> {
        println!("setup: writing {}", path.display());
        let tmp = path.with_extension("ktstr-tmp");
        if !self.sudo {
            let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            f.write_all(text.as_bytes()).and_then(|_| f.sync_all())?;
            return std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()));
        }
        let mut child = Command::new("sudo")
            .arg("sh")
            .arg("-c")
            .arg(r#"cat > "$1" && mv "$1" "$2""#)
            .arg("sh")
            .arg(&tmp)
            .arg(path)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("running sudo")?;
        child.stdin.take().expect("piped").write_all(text.as_bytes())?;
        let status = child.wait()?;
        anyhow::ensure!(status.success(), "writing {} through sudo failed ({status})", path.display());
        Ok(())
    }
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
}

fn render(c: &Command) -> String {
    std::iter::once(c.get_program()).chain(c.get_args()).map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
}
