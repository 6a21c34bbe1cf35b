//! ktstr: a test harness for Linux sched_ext schedulers.
//!
//! A test is a Rust function marked `#[ktstr_test]`. On the host the
//! generated `#[test]` boots a real kernel under QEMU with the topology the
//! test asks for; inside the guest the same binary runs as `/init`, starts
//! the scheduler, runs the function and reports back over a framed channel.
//!
//! The modules follow the stages of one run, in order:
//! `kernel` (find the guest kernel) → `vm` (topology, initramfs, QEMU,
//! channel) → `guest` (PID 1 inside the VM) → `scenario` (cgroups and
//! steps) over `workload` (forked workers that record, in shared memory,
//! how they were scheduled) → `check` (verdicts and thresholds) →
//! `outcome` (what the host learned; with `monitor`'s samples, taken from
//! the guest's RAM while the VM ran) → `crash` (the cause, read from the
//! text a crash leaves; `dump`, the guest's post-mortem of the scheduler's
//! BPF state) → `repro` (auto-repro: the crash replayed in a
//! second VM whose guest probes the crash path, `guest::probe`, and sends
//! back a `probe::ProbeTrail`) → `report` → `test_support` (the glue
//! `#[ktstr_test]` expands to).
//!
//! The records that cross the channel or land on disk for tools
//! (`GuestPlan`, `GuestMessage`, `AssertResult` and the scenario stats, the
//! failure dump, the probe trail, the monitor's samples, the stats
//! sidecar) live in one low layer, [`wire`], that imports nothing else of
//! ktstr; every stage imports it, and no stage imports one above it.

pub mod artifacts;
pub mod cache;
pub mod channel;
pub mod check;
pub mod crash;
pub mod dump;
pub mod guest;
pub mod judge;
pub mod kernel;
pub mod monitor;
pub mod outcome;
pub mod prelude;
pub mod probe;
pub mod report;
pub mod repro;
pub mod scenario;
pub mod test_support;
pub mod vm;
pub mod wire;
pub mod workload;

/// `ktstr::topology`, as tests and the `#[ktstr_test]` expansion name it.
pub use wire::topology;

pub use ktstr_macros::ktstr_test;
/// The host's Debian, from the set-up crate (which builds before any
/// system package is installed); kernel fetches ask it for the archive.
pub use ktstr_setup::debian;

/// Host-side tracing to stderr when `RUST_LOG` asks for it
/// (`RUST_LOG=ktstr=debug`): which kernel and image a run uses and why,
/// QEMU's command line, CPU slot waits, auto-repro's decisions and why a
/// probe did not attach. Silent without `RUST_LOG`; a second call is a
/// no-op.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Entry points for the fuzz targets under `fuzz/` (see docs/fuzzing.md)
/// that the public API keeps crate-private; not a stable API. Each is a
/// thin wrapper: the targets exercise the code the host really runs.
#[doc(hidden)]
pub mod fuzz_api;

/// Used by `#[ktstr_test]` expansions; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use linkme;

    /// Runs before `main` in every `#[ktstr_test]` binary: as PID 1 in a
    /// ktstr guest it is the guest runtime; run by `cargo ktstr shell` it
    /// boots a shell VM; either way it never returns then. Otherwise
    /// (a test run on the host) it returns at once.
    ///
    /// On the host it also answers for gauntlet variants, which libtest
    /// cannot name (see `test_support::gauntlet`).
    pub fn before_main() {
        // Every #[ktstr_test] registers this hook: act on the first call.
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            crate::guest::maybe_run_as_init(|name| crate::test_support::find_test(name).map(|e| e.func));
            crate::init_tracing();
            crate::test_support::shell::maybe_run_shell();
            crate::test_support::gauntlet::maybe_handle_args();
        });
    }
}
