//! What host and guest exchange, and what tools read back: the lowest
//! layer. Every record that crosses the channel or lands on disk for a tool
//! is defined here, as plain serde data with no behaviour beyond small
//! accessors; every other module imports it, and it imports nothing else of
//! ktstr (as nextest keeps its schemas in nextest-metadata).
//!
//! - [`topology`]: the CPU topology a test asks for, and the gauntlet presets
//! - [`plan`], [`paths`]: the host's instructions to the guest
//!   ([`plan::GuestPlan`]) and the paths both sides agree on
//! - [`message`]: what the guest sends ([`message::GuestMessage`]), its
//!   stages and error steps as enums
//! - [`stats`], [`verdict`]: what a scenario measured and a test's verdict
//! - [`checks`]: the thresholds a test is held to
//! - [`dump`], [`probe`], [`monitor`]: the failure dump, auto-repro's plan
//!   and trail, the monitor's guest-side figures
//! - [`records`]: the files tools read back (the stats sidecar, the run record)

pub mod checks;
pub mod dump;
pub mod message;
pub mod monitor;
pub mod paths;
pub mod plan;
pub mod probe;
pub mod records;
pub mod stats;
pub mod topology;
pub mod verdict;

pub use message::{GuestMessage, GuestStep, LogStream, Stage};
pub use plan::GuestPlan;
pub use stats::{CgroupStats, PhaseStats, ScenarioStats, WatchdogTrip, WorkType, WorkerReport};
pub use topology::Topology;
pub use verdict::AssertResult;
