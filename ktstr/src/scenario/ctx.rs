use std::time::Duration;

use crate::wire::topology::Topology;

/// What a test body knows about the VM it runs in.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub test_name: String,
    pub topology: Topology,
    /// Name of the scheduler under test, or `None` under the kernel's
    /// default scheduler (EEVDF).
    pub scheduler: Option<String>,
    /// Its process, which the work-conservation watchdog signals.
    pub scheduler_pid: Option<u32>,
    /// How long the scenario should run (`duration_s`).
    pub duration: Duration,
    /// CLOCK_MONOTONIC ns when the test body was started: scenario set-up
    /// cost is measured from here.
    pub payload_start_ns: u64,
    /// Repro mode (the auto-repro VM): the watchdog only watches, so the
    /// scheduler stays alive for the probes.
    pub repro: bool,
}

impl Ctx {
    /// All CPUs of the VM.
    pub fn cpus(&self) -> Vec<u32> {
        (0..self.topology.cpus()).collect()
    }
}
