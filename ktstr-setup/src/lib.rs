//! ktstr's host set-up, the first thing that runs on a new machine.
//!
//! `scripts/setup` builds this crate before anything else, so it must
//! build with Rust alone: no libbpf, no BPF, no build script that needs a
//! system tool or library (`tests/bootstrap.rs` holds it to that). It
//! answers, from files only, what the machine is ([`debian`]), decides
//! what is missing and from which archive ([`plan`]), and installs it
//! ([`apply`]). `ktstr-setup` (this crate's binary) and `cargo ktstr
//! setup` are the same code; `ktstr` asks [`debian`] where its kernel
//! fetches come from.

pub mod apply;
pub mod debian;
pub mod plan;

pub use apply::{run, SetupArgs};
