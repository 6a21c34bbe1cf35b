//! Paths and device names inside the guest that host and guest agree on:
//! the host puts files there (initramfs) or wires devices (QEMU), the guest
//! finds them there.

/// The plan the host writes into the initramfs ([`super::plan::GuestPlan::PATH`]).
pub const PLAN: &str = "/ktstr/plan.json";
/// Where scheduler binaries live in the guest, besides `/init`.
pub const SCHED_DIR: &str = "/ktstr/bin";
/// Include files: `/include/<file or directory name>`.
pub const INCLUDE_DIR: &str = "/include";
/// Busybox, for `cargo ktstr shell` (its applets are linked beside it).
pub const BUSYBOX: &str = "/bin/busybox";
/// The guest's console wired to the user's terminal in `cargo ktstr shell`
/// (a virtio console on QEMU's stdio).
pub const SHELL_TTY: &str = "/dev/hvc0";
