use std::path::PathBuf;

use anyhow::Context;

use crate::cache::is_executable;
use crate::cache::schedulers::{self, SchedSpec};
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
    /// Host files copied into the guest at `/include/<name>` for every test
    /// under this scheduler: its config (scx_layered's layer spec), which
    /// `args` then name.
    pub include_files: &'static [&'static str],
}

#[derive(Debug)]
pub enum SchedulerBinary {
    /// Found by name: `$KTSTR_SCHEDULER_<NAME>` (upper case, `-` as `_`),
    /// then beside the test binary's cargo target directory, then the
    /// newest `cargo ktstr sched install` of it, then `$PATH`. As
    /// `name@1.1.4`, only that installed version.
    Discover(&'static str),
    /// An explicit path on the host.
    Path(&'static str),
}

/// The fixture scheduler built from this workspace (`scx-ktstr`).
pub const SCX_KTSTR: Scheduler = Scheduler::discover("scx-ktstr").ops_name("ktstr");

impl Scheduler {
    /// A scheduler binary found by name ([`SchedulerBinary::Discover`]:
    /// `$KTSTR_SCHEDULER_<NAME>`, the cargo target directory, ktstr's
    /// scheduler cache, `$PATH`; `scx_lavd@1.1.4` pins an installed
    /// version), shown in reports under that name, with no fixed
    /// arguments or checks:
    ///
    /// ```
    /// # use ktstr::prelude::*;
    /// const MY_SCHED: Scheduler = Scheduler::discover("scx_mine");
    /// ```
    pub const fn discover(binary: &'static str) -> Scheduler {
        Scheduler {
            name: binary,
            binary: SchedulerBinary::Discover(binary),
            ops_name: None,
            args: &[],
            checks: Checks::NONE,
            include_files: &[],
        }
    }

    /// A scheduler binary at a fixed host path, shown in reports under
    /// `name`:
    ///
    /// ```
    /// # use ktstr::prelude::*;
    /// const MY_SCHED: Scheduler = Scheduler::path("scx_mine", "/opt/scx/bin/scx_mine");
    /// ```
    pub const fn path(name: &'static str, path: &'static str) -> Scheduler {
        Scheduler {
            name,
            binary: SchedulerBinary::Path(path),
            ops_name: None,
            args: &[],
            checks: Checks::NONE,
            include_files: &[],
        }
    }

    /// Require the kernel to report this `sched_ext_ops.name` once
    /// attached (a scx_utils `_<version>` suffix is allowed).
    pub const fn ops_name(mut self, ops_name: &'static str) -> Scheduler {
        self.ops_name = Some(ops_name);
        self
    }

    /// Arguments always passed to the scheduler (a test's
    /// `extra_sched_args` come after them).
    pub const fn args(mut self, args: &'static [&'static str]) -> Scheduler {
        self.args = args;
        self
    }

    /// Thresholds for every test under this scheduler (a test's own
    /// attributes win):
    ///
    /// ```
    /// # use ktstr::prelude::*;
    /// const MY_SCHED: Scheduler =
    ///     Scheduler::discover("scx_mine").args(&["--slice-us", "5000"]).checks(Checks { max_gap_ms: Some(500), ..Checks::NONE });
    /// ```
    pub const fn checks(mut self, checks: Checks) -> Scheduler {
        self.checks = checks;
        self
    }

    /// Config files for the scheduler, at `/include/<name>` in the guest
    /// (relative paths start at the test's package directory):
    ///
    /// ```
    /// # use ktstr::prelude::*;
    /// const LAYERED: Scheduler = Scheduler::discover("scx_layered")
    ///     .include_files(&["layered.json"])
    ///     .args(&["f:/include/layered.json"]);
    /// ```
    pub const fn include_files(mut self, files: &'static [&'static str]) -> Scheduler {
        self.include_files = files;
        self
    }

    /// Finds the scheduler binary on the host, or says where it looked.
    pub(crate) fn resolve_binary(&self) -> anyhow::Result<PathBuf> {
        match self.binary {
            SchedulerBinary::Path(p) => {
                let p = PathBuf::from(p);
                anyhow::ensure!(
                    p.is_file(),
                    "scheduler binary {} does not exist: build it there, or fix the path given to `Scheduler::path`",
                    p.display()
                );
                anyhow::ensure!(
                    is_executable(&p),
                    "scheduler binary {} is not executable: `chmod +x` it, or point `Scheduler::path` at the \
                     built binary",
                    p.display()
                );
                Ok(p)
            }
            SchedulerBinary::Discover(name) => discover(name),
        }
    }
}

/// `binary` is a name, or `name@version` for one installed version.
fn discover(binary: &str) -> anyhow::Result<PathBuf> {
    let spec = SchedSpec::parse(binary)?;
    let name = spec.name.as_str();
    let var = format!("KTSTR_SCHEDULER_{}", name.to_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(&var) {
        let p = PathBuf::from(p);
        anyhow::ensure!(p.is_file(), "{var}={} is not a file", p.display());
        return Ok(p);
    }
    let cache = schedulers::root();
    if spec.version.is_some() {
        // A pinned version is only ever an install of ktstr's.
        return schedulers::find_in(&cache, &spec).map(|i| i.path).with_context(|| {
            format!(
                "scheduler {spec} is not installed in {}: install it with `cargo ktstr sched install {spec}` \
                 (`cargo ktstr sched list` shows what is)",
                cache.display()
            )
        });
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
    if let Some(i) = schedulers::find_in(&cache, &spec) {
        return Ok(i.path);
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
        "scheduler binary `{name}` not found (looked in ${var}, {}, ktstr's scheduler cache {}, and $PATH): \
         install a released one with `cargo ktstr sched install {name}`, build it with `cargo build -p {name}`, \
         or point ${var} at it",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        cache.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The spec's user scheduler, one line each (nextest runs no doctests).
    const MY_SCHED: Scheduler = Scheduler::discover("scx_mine");
    const AT_PATH: Scheduler = Scheduler::path("scx_mine", "/opt/scx/bin/scx_mine")
        .ops_name("mine")
        .args(&["--slice-us", "5000"])
        .checks(Checks { max_gap_ms: Some(500), ..Checks::NONE });

    #[test]
    fn const_constructors_fill_every_field() {
        assert_eq!(MY_SCHED.name, "scx_mine");
        assert!(matches!(MY_SCHED.binary, SchedulerBinary::Discover("scx_mine")));
        assert_eq!((MY_SCHED.ops_name, MY_SCHED.args.len(), MY_SCHED.checks.max_gap_ms), (None, 0, None));
        assert!(matches!(AT_PATH.binary, SchedulerBinary::Path("/opt/scx/bin/scx_mine")));
        assert_eq!(
            (AT_PATH.ops_name, AT_PATH.args, AT_PATH.checks.max_gap_ms),
            (Some("mine"), &["--slice-us", "5000"][..], Some(500))
        );
        assert_eq!((SCX_KTSTR.name, SCX_KTSTR.ops_name), ("scx-ktstr", Some("ktstr")));
    }

    #[test]
    fn a_path_that_is_not_there_is_named() {
        let e = Scheduler::path("scx_mine", "/nonexistent/scx_mine").resolve_binary().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/scx_mine does not exist"), "{e}");
    }
}
