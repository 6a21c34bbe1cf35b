//! What `#[ktstr_test]` expands to, and the types a test body sees.
//!
//! The macro registers a [`KtstrTestEntry`] in [`KTSTR_TESTS`] and emits a
//! `#[test]` that calls [`run_ktstr_test`] on the host. Inside the guest the
//! same binary finds the entry by name and runs its function. Run by
//! `cargo ktstr shell`, it boots the test's VM with a shell ([`shell`]).
//! A test's topology presets run as `gauntlet/<test>/<preset>` ([`gauntlet`]).

mod entry;
pub mod gauntlet;
mod map_write;
mod options;
mod prepare;
mod run;
mod scheduler;
pub mod shell;

pub use crate::check::{AssertResult, Checks};
pub use crate::scenario::Ctx;
pub use entry::{find_test, KtstrTestEntry, KTSTR_TESTS};
pub use map_write::BpfMapWrite;
pub use prepare::sweep_killed_runs;
pub use run::{artifacts_of, run_ktstr_test, run_ktstr_test_with, FailedAt, KtstrFailure, RunOptions};
pub use scheduler::{Scheduler, SchedulerBinary, SCX_KTSTR};
