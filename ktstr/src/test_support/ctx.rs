use std::time::Duration;

use crate::topology::Topology;

/// What a test body knows about the VM it runs in.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub test_name: String,
    pub topology: Topology,
    /// Name of the scheduler under test, or `None` under the kernel's
    /// default scheduler (EEVDF).
    pub scheduler: Option<String>,
    /// How long the scenario should run (`duration_s`).
    pub duration: Duration,
}
