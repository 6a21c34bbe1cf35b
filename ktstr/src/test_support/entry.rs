use linkme::distributed_slice;

use super::map_write::BpfMapWrite;
use super::scheduler::Scheduler;
use crate::check::Checks;
use crate::check::ErrorMatchers;
use crate::scenario::Ctx;
use crate::wire::topology::{Preset, Topology};
use crate::wire::AssertResult;

/// One `#[ktstr_test]`: everything the host needs to build its VM and the
/// guest needs to find its function.
#[derive(Clone, Copy, Debug)]
pub struct KtstrTestEntry {
    pub name: &'static str,
    pub func: fn(&Ctx) -> anyhow::Result<AssertResult>,
    pub topology: Topology,
    pub memory_mb: u32,
    /// `None` runs under the kernel's default scheduler (EEVDF).
    pub scheduler: Option<&'static Scheduler>,
    pub extra_sched_args: &'static [&'static str],
    /// Host files or directories copied into the guest under `/include`
    /// (relative paths start at the package's directory).
    pub include_files: &'static [&'static str],
    pub duration_s: u64,
    /// Thresholds the test sets; unset ones come from the scheduler's
    /// `checks`, then [`Checks::DEFAULT`].
    pub checks: Checks,
    /// Written into the scheduler's maps once the workload runs.
    pub bpf_map_writes: &'static [&'static BpfMapWrite],
    /// The test pins a failure: it passes only if the run fails (and the
    /// matchers, if any, hit).
    pub expect_err: bool,
    /// A scheduler crash is replayed in a second VM with probes on its
    /// path (never for `expect_err` tests: the crash is known).
    pub auto_repro: bool,
    pub expect_scx_bpf_error: ErrorMatchers,
    /// The test carries `#[ignore]`: so do its gauntlet variants.
    pub ignored: bool,
    /// Topology presets it also runs on, each as `gauntlet/<name>/<preset>`.
    pub gauntlet: &'static [&'static Preset],
    /// Set on a gauntlet variant (never on a registered entry): the preset
    /// whose topology replaced the test's.
    pub preset: Option<&'static Preset>,
}

impl KtstrTestEntry {
    /// Defaults of `memory_mb` and `duration_s`: the `#[ktstr_test]`
    /// expansion names these when the attributes are not given.
    pub const DEFAULT_MEMORY_MB: u32 = 2048;
    pub const DEFAULT_DURATION_S: u64 = 10;

    /// The name nextest knows this run by: the function's name, or
    /// `gauntlet/<name>/<preset>` for a variant.
    pub(crate) fn full_name(&self) -> String {
        match self.preset {
            Some(p) => format!("{GAUNTLET_PREFIX}{}/{}", self.name, p.name),
            None => self.name.to_string(),
        }
    }

    /// This test on `preset`'s topology.
    pub(crate) fn on_preset(&self, preset: &'static Preset) -> KtstrTestEntry {
        KtstrTestEntry { topology: preset.topology, preset: Some(preset), gauntlet: &[], ..*self }
    }

    /// The thresholds in force: the test's, then its scheduler's, then
    /// the defaults.
    pub fn checks(&self) -> Checks {
        self.checks.or(self.scheduler.map_or(Checks::NONE, |s| s.checks)).or(Checks::DEFAULT)
    }
}

/// What every gauntlet variant's name starts with (`gauntlet/<test>/<preset>`).
pub const GAUNTLET_PREFIX: &str = "gauntlet/";

/// Every `#[ktstr_test]` linked into this binary.
#[distributed_slice]
pub static KTSTR_TESTS: [KtstrTestEntry];

/// Looks a registered test up by its function name.
pub fn find_test(name: &str) -> Option<&'static KtstrTestEntry> {
    KTSTR_TESTS.iter().find(|e| e.name == name)
}
