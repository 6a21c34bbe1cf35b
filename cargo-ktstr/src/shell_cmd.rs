//! `cargo ktstr shell --test NAME [--dmesg] [--kernel K] [-p PKG]
//! [--include PATH]...` (and `ktstr shell`, the same): boots a VM the way
//! that test would (topology, memory, scheduler attached, include files)
//! and gives the user a shell in it.
//!
//! A `#[ktstr_test]` is registered only inside its own test binary, so
//! this command builds and lists the test binaries (`cargo nextest list`,
//! the same build `cargo ktstr test` runs), finds the one that holds NAME,
//! and runs it with the hidden argument of
//! [`ktstr::test_support::shell`], which boots the VM from that binary's
//! registry and wires the guest's shell to this terminal.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use ktstr::test_support::shell::{has_ktstr_tests, DMESG_ARG, INCLUDE_ARG, SHELL_ARG};
use serde_json::Value;

#[derive(clap::Args)]
pub struct ShellArgs {
    /// The #[ktstr_test] whose VM to boot: its function name, or its name
    /// as `cargo nextest list` shows it (with the module path).
    #[arg(long = "test", value_name = "NAME")]
    test: String,
    /// Also stream the guest kernel's console (dmesg) to the terminal, as
    /// it is written: boot messages, then whatever the kernel logs while
    /// you work. Without it only errors and the shell are shown.
    #[arg(long)]
    dmesg: bool,
    /// Kernel: a version (`7.3`: the newest cached 7.3.x, else fetched
    /// from Debian's archive), a vmlinuz/bzImage path, or a kernel build
    /// tree. Default: KTSTR_KERNEL, else the newest cached kernel, fetched
    /// first if the cache is empty.
    #[arg(long)]
    kernel: Option<String>,
    /// Build and search only this package's test binaries (default: the
    /// whole workspace).
    #[arg(short = 'p', long, value_name = "PACKAGE")]
    package: Option<String>,
    /// A host file or directory to copy into the guest, at
    /// /include/<its name> (a directory with its tree); may be repeated.
    /// Added to the test's own `include_files`.
    #[arg(long, value_name = "PATH")]
    include: Vec<PathBuf>,
}

pub fn run(args: ShellArgs) -> anyhow::Result<()> {
    // The cheap checks first: each names its fix before a long build.
    ktstr::vm::busybox::find()?;
    // Absolute: the test binary runs in its package's directory.
    let include: Vec<PathBuf> = args
        .include
        .iter()
        .map(|p| {
            std::path::absolute(p)
                .ok()
                .filter(|a| a.exists())
                .with_context(|| format!("--include {}: no such file or directory", p.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let kernel = ktstr::kernel::ensure(args.kernel.as_deref())?;
    let name = args.test.rsplit("::").next().unwrap_or(&args.test).to_string();
    let suites = list_tests(args.package.as_deref())?;
    let found = find_suites(&suites, &args.test);
    let suite = match found.as_slice() {
        [] => bail!(
            "no test named `{}` in {}'s test binaries: `cargo nextest list{}` lists them \
             (a #[ktstr_test] is listed by its function name)",
            args.test,
            args.package.as_deref().unwrap_or("this workspace"),
            args.package.as_deref().map(|p| format!(" -p {p}")).unwrap_or_default()
        ),
        [one] => one,
        many => bail!(
            "`{}` is a test of several test binaries ({}): choose with --package, or give its module path",
            args.test,
            many.iter().map(|s| s.binary_id.as_str()).collect::<Vec<_>>().join(", ")
        ),
    };
    let is_ktstr = has_ktstr_tests(&suite.binary).with_context(|| format!("reading {}", suite.binary.display()))?;
    if !is_ktstr {
        bail!(
            "`{}` in {} is a plain #[test], not a #[ktstr_test]: the shell boots a #[ktstr_test]'s VM",
            args.test,
            suite.binary_id
        );
    }
    let mut cmd = Command::new(&suite.binary);
    cmd.args([SHELL_ARG, &name]).env("KTSTR_KERNEL", &kernel.vmlinuz);
    if args.dmesg {
        cmd.arg(DMESG_ARG);
    }
    for p in &include {
        cmd.arg(INCLUDE_ARG).arg(p);
    }
    if let Some(cwd) = &suite.cwd {
        // Where cargo and nextest run this binary's tests.
        cmd.current_dir(cwd);
    }
    let status = cmd.status().with_context(|| format!("running {}", suite.binary.display()))?;
    // The test binary has said what went wrong, if anything.
    std::process::exit(status.code().unwrap_or(1));
}

/// One test binary as `cargo nextest list` describes it.
#[derive(Debug, PartialEq)]
struct Suite {
    binary_id: String,
    binary: PathBuf,
    cwd: Option<PathBuf>,
    tests: Vec<String>,
}

/// Builds the test binaries and lists their tests (ignored ones too).
fn list_tests(package: Option<&str>) -> anyhow::Result<Vec<Suite>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["nextest", "list", "--message-format", "json", "--run-ignored", "all"]);
    match package {
        Some(p) => cmd.args(["--package", p]),
        None => cmd.arg("--workspace"),
    };
    // cargo's build messages go to the terminal; the list comes on stdout.
    let out = cmd.stderr(Stdio::inherit()).output().context("running `cargo nextest list`")?;
    if !out.status.success() {
        bail!(
            "`cargo nextest list` failed ({}; its messages are above). If cargo says there is no \
             `nextest` command, install it: `cargo install cargo-nextest --locked`",
            out.status
        );
    }
    parse_list(&out.stdout)
}

fn parse_list(json: &[u8]) -> anyhow::Result<Vec<Suite>> {
    let doc: Value = serde_json::from_slice(json).context("reading `cargo nextest list`'s JSON")?;
    let suites = doc["rust-suites"].as_object().context("`cargo nextest list` gave no rust-suites")?;
    Ok(suites
        .iter()
        .map(|(id, s)| Suite {
            binary_id: id.clone(),
            binary: PathBuf::from(s["binary-path"].as_str().unwrap_or_default()),
            cwd: s["cwd"].as_str().map(PathBuf::from),
            tests: s["testcases"].as_object().map(|t| t.keys().cloned().collect()).unwrap_or_default(),
        })
        .collect())
}

/// The suites holding a test called `name`, or `name` in some module.
fn find_suites<'a>(suites: &'a [Suite], name: &str) -> Vec<&'a Suite> {
    let suffix = format!("::{name}");
    suites.iter().filter(|s| s.tests.iter().any(|t| t == name || t.ends_with(&suffix))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"rust-build-meta": {}, "test-count": 3, "rust-suites": {
        "cargo-ktstr::shell": {"binary-id": "cargo-ktstr::shell", "binary-path": "/t/deps/shell-1",
            "cwd": "/w/cargo-ktstr", "testcases": {"shell_target": {"ignored": true}, "a::b": {}}},
        "ktstr": {"binary-path": "/t/deps/ktstr-2", "cwd": "/w/ktstr",
            "testcases": {"vm::tests::b": {}}}}}"#;

    #[test]
    fn finds_tests_by_name_or_module_path() {
        let suites = parse_list(LIST.as_bytes()).unwrap();
        assert_eq!(suites.len(), 2);
        let ids = |name| find_suites(&suites, name).iter().map(|s| s.binary_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids("shell_target"), ["cargo-ktstr::shell"]);
        assert_eq!(ids("b"), ["cargo-ktstr::shell", "ktstr"]);
        assert_eq!(ids("vm::tests::b"), ["ktstr"]);
        assert!(ids("shell").is_empty());
        let s = find_suites(&suites, "shell_target")[0];
        assert_eq!(s.binary, PathBuf::from("/t/deps/shell-1"));
        assert_eq!(s.cwd.as_deref(), Some(std::path::Path::new("/w/cargo-ktstr")));
    }
}
