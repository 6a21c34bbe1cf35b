use std::path::{Path, PathBuf};

use crate::check::Checks;

/// A scheduler under test: a user-space binary that loads and attaches a
/// sched_ext BPF scheduler.
#[derive(Debug)]
pub struct Scheduler {
    /// Name shown in reports (`[sched=...]`).
    pub name: &'static str,
    pub binary: SchedulerBinary,
    /// The `sched_ext_ops.name` the kernel reports once attached
    /// (`/sys/kernel/sched_ext/root/ops`), matched whole or as the prefix
    /// before scx_utils' `_<version>` suffix; `None` accepts any.
    pub ops_name: Option<&'static str>,
    /// Arguments always passed (a test's `extra_sched_args` follow).
    pub args: &'static [&'static str],
    /// Thresholds for tests under this scheduler, below each test's own.
    pub checks: Checks,
}

#[derive(Debug)]
pub enum SchedulerBinary {
    /// Found by name: `$KTSTR_SCHEDULER_<NAME>` (upper case, `-` as `_`),
    /// then beside the test binary's cargo target directory, then `$PATH`.
    Discover(&'static str),
    /// An explicit path on the host.
    Path(&'static str),
}

/// The fixture scheduler built from this workspace (`scx-ktstr`).
pub const SCX_KTSTR: Scheduler = Scheduler {
    name: "scx-ktstr",
    binary: SchedulerBinary::Discover("scx-ktstr"),
    ops_name: Some("ktstr"),
    args: &[],
    checks: Checks::NONE,
};

impl Scheduler {
    /// Finds the scheduler binary on the host, or says where it looked.
    pub fn resolve_binary(&self) -> anyhow::Result<PathBuf> {
        match self.binary {
            SchedulerBinary::Path(p) => {
                let p = PathBuf::from(p);
                anyhow::ensure!(p.is_file(), "scheduler binary {} does not exist", p.display());
                Ok(p)
            }
            SchedulerBinary::Discover(name) => discover(name),
        }
    }
}

fn discover(name: &str) -> anyhow::Result<PathBuf> {
    let var = format!("KTSTR_SCHEDULER_{}", name.to_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(&var) {
        let p = PathBuf::from(p);
        anyhow::ensure!(p.is_file(), "{var}={} is not a file", p.display());
        return Ok(p);
    }
    let mut tried = Vec::new();
    // target/<profile>/deps/<test binary> → target/<profile>/<name>
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            let cand = dir.join(name);
            if is_executable(&cand) {
                return Ok(cand);
            }
            tried.push(cand);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let cand = dir.join(name);
            if is_executable(&cand) {
                return Ok(cand);
            }
        }
    }
    anyhow::bail!(
        "scheduler binary `{name}` not found (looked in ${var}, {}, and $PATH): build it with \
         `cargo build -p {name}` or point ${var} at it",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}
