//! The thresholds a test is held to, as data: set by `#[ktstr_test]`
//! attributes, a scheduler, or a canned scenario of the catalogue, and
//! judged by `check` on the host. Here, below everything, so that the
//! scenario catalogue can carry the gates that fit each scenario.

/// Declares [`Checks`] with [`Checks::NONE`] and [`Checks::or`] from one
/// list of its thresholds, so a new threshold is one line here (and one row
/// in the `#[ktstr_test]` macro's `THRESHOLDS` table, which
/// `tests/attributes.rs` holds to this list).
macro_rules! thresholds {
    ($($(#[$doc:meta])* $name:ident: $ty:ty,)*) => {
        /// Thresholds, each `None` when not set at that level. A test's
        /// attributes override its scheduler's [`Checks`], which override
        /// [`Checks::DEFAULT`].
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct Checks {
            $($(#[$doc])* pub $name: Option<$ty>,)*
        }

        impl Checks {
            /// Nothing set: defer to the next level.
            pub const NONE: Checks = Checks { $($name: None,)* };

            /// The attribute names of the thresholds, in field order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name),)*];

            /// `self`, with unset thresholds taken from `fallback`.
            pub const fn or(self, fallback: Checks) -> Checks {
                // `Option::or` is not const.
                Checks { $($name: if self.$name.is_some() { self.$name } else { fallback.$name },)* }
            }
        }
    };
}

thresholds! {
    /// Every worker must make progress (`tid N starved (0 work units)`).
    not_starved: bool,
    /// Longest off-CPU gap a worker may see, in ms.
    max_gap_ms: u64,
    /// Largest spread of off-CPU % between the workers of one cgroup.
    max_spread_pct: f64,
    /// Slowest iteration rate a worker may have, per second.
    min_iteration_rate: f64,
    /// The host-side monitor's thresholds (see `monitor::verdict`): each
    /// must be violated for `sustained_samples` samples in a row.
    max_imbalance_ratio: f64,
    max_local_dsq_depth: u32,
    /// A CPU holding runnable tasks that it does not run (idle, or its
    /// run-queue clock standing still).
    fail_on_stall: bool,
    sustained_samples: u32,
    /// SCX events per second (`select_cpu_fallback`, `dispatch_keep_last`).
    max_fallback_rate: f64,
    max_keep_last_rate: f64,
}
