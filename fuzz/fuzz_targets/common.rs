//! Shared by the fuzz targets (each includes it with `#[path]`): the
//! host's report pipeline over whatever a target decoded, and a reader for
//! the small binary headers some targets put before their payload.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use ktstr::channel::GuestMessage;
use ktstr::check::Checks;
use ktstr::outcome::RunOutcome;
use ktstr::report::ReportHeader;
use ktstr::topology::Topology;
use ktstr::vm::{VmExit, VmOutput};

/// Reads fixed-size fields off the front of the input; past its end every
/// field reads as zero, so any input is a valid header.
pub struct Header<'a> {
    pub rest: &'a [u8],
}

impl<'a> Header<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Header { rest: data }
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        let n = N.min(self.rest.len());
        b[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        b
    }

    pub fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
}

/// What the VM left: `console` and the decoded `messages`. Built by
/// `VmOutput::collect` over a directory that does not exist (every file
/// reads as empty), so new fields of `VmOutput` need no change here.
pub fn vm_output(console: String, messages: Vec<GuestMessage>, exit: u8) -> VmOutput {
    let exit = match exit % 4 {
        0 => VmExit::Exited { code: Some(i32::from(exit)) },
        1 => VmExit::Killed { signal: 9 },
        2 => VmExit::TimedOut { limit: Duration::from_secs(39) },
        _ => VmExit::BootStalled { deadline: Duration::from_secs(20) },
    };
    let mut vm = VmOutput::collect(Path::new("/nonexistent/ktstr-fuzz"), exit, Duration::from_millis(4321));
    vm.console = console;
    vm.messages = messages;
    vm
}

/// Thresholds chosen by the input: every check on when `sel` says so.
pub fn checks(sel: u8, n: u32) -> Checks {
    if sel & 1 == 0 {
        return Checks { not_starved: Some(true), max_gap_ms: Some(2000), sustained_samples: Some(3), ..Checks::NONE };
    }
    Checks {
        not_starved: Some(true),
        max_gap_ms: Some(u64::from(n)),
        max_spread_pct: Some(f64::from(n % 100)),
        min_iteration_rate: Some(f64::from(n)),
        max_imbalance_ratio: Some(1.0 + f64::from(n % 7)),
        max_local_dsq_depth: Some(n % 16),
        fail_on_stall: Some(sel & 2 != 0),
        sustained_samples: Some(n % 5),
        max_fallback_rate: Some(f64::from(n % 1000)),
        max_keep_last_rate: Some(f64::from(n % 997)),
    }
}

/// The host's pipeline after a run: judge, the failure report (plain and
/// verbose), auto-repro's plan.
pub fn report(o: &RunOutcome, checks: &Checks) -> usize {
    let header = ReportHeader {
        test: "fuzz".into(),
        scheduler: Some("scx-ktstr"),
        topology: Topology::new(1, 2, 1, 2),
        preset: None,
    };
    let verdict = ktstr::judge::judge(o, checks);
    let mut n = ktstr::report::render(&header, o, &verdict, false).len();
    n += ktstr::report::render(&header, o, &verdict, true).len();
    if let Some(m) = &o.monitor {
        n += ktstr::fuzz_api::monitor_verdict(m, checks).failures.len();
    }
    n += ktstr::fuzz_api::plan_for(o).map_or(0, |p| p.stack.len());
    n
}
