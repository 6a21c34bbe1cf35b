//! `use ktstr::prelude::*;` brings what a test file needs.

pub use std::time::Duration;

pub use anyhow::{bail, ensure, Result};

pub use crate::ktstr_test;
pub use crate::test_support::{AssertResult, Ctx, Scheduler, SchedulerBinary, SCX_KTSTR};
pub use crate::topology::Topology;
