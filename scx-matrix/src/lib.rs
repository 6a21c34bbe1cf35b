//! The scheduler × scenario matrix lives in `tests/matrix.rs`: one
//! ignored `#[ktstr_test]` per scheduler of scx's release check, canned
//! scenario and topology. Run it, then print its table:
//!
//! ```sh
//! cargo ktstr sched install --matrix    # once: the builds are cached
//! cargo ktstr test -- --run-ignored ignored-only -E 'package(scx-matrix)'
//! cargo ktstr matrix --markdown docs/scx-matrix.md
//! ```
