//! `use ktstr::prelude::*;` brings what a test file needs.

pub use std::time::Duration;

pub use anyhow::{bail, ensure, Result};

pub use crate::check::{AssertResult, Checks};
pub use crate::ktstr_test;
pub use crate::scenario::{
    catalogue, execute_defs, execute_steps, CgroupDef, CpusetSpec, Ctx, HoldSpec, Op, SchedPolicy, Step, WorkType,
};
pub use crate::test_support::{BpfMapWrite, Scheduler, SchedulerBinary, SCX_KTSTR};
pub use crate::wire::topology::Topology;
