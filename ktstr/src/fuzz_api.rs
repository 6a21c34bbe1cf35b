//! Entry points for the fuzz targets under `fuzz/` (see docs/fuzzing.md)
//! that the public API keeps crate-private; not a stable API. Each is a
//! thin wrapper: the targets exercise the code the host really runs.

use crate::channel::{Decoder, GuestMessage};
use crate::monitor::layout::{Field, Layout};
use crate::monitor::verdict::Verdict as MonitorVerdict;
use crate::monitor::{sample::Sample, MonitorReport};
use crate::outcome::RunOutcome;
use crate::probe::ProbePlan;
use crate::wire::monitor::KernelSymbols;

/// [`Decoder`]'s `feed`: what the VM's reader calls as bytes arrive.
pub fn feed(d: &mut Decoder, bytes: &[u8]) -> Vec<GuestMessage> {
    d.feed(bytes)
}

/// The run's outcome folded from what the VM left (console, messages).
pub fn outcome(vm: crate::vm::VmOutput) -> RunOutcome {
    RunOutcome::from_vm(vm)
}

/// Auto-repro's probe plan for a failed run (its stack extraction).
pub fn plan_for(primary: &RunOutcome) -> Option<ProbePlan> {
    crate::repro::plan_for(primary)
}

/// The stack functions auto-repro would probe, and the frames it drops.
pub fn stack_functions(sched_log: &[String], sched_ext_dump: &[String], console: &str) -> (Vec<String>, Vec<String>) {
    let e = crate::repro::extract::stack_functions(sched_log, sched_ext_dump, console);
    (e.functions, e.filtered)
}

/// A probed value as the trail shows it (`probe::decode::value`:
/// DSQ ids, enqueue and task flags, cpumasks, enums, integers).
pub fn probe_value(kind: &crate::probe::ValueKind, raw: u64) -> String {
    crate::probe::decode::value(kind, raw)
}

/// The monitor's thresholds held to a report's samples.
pub fn monitor_verdict(m: &MonitorReport, checks: &crate::check::Checks) -> MonitorVerdict {
    crate::monitor::verdict::evaluate(m, checks)
}

/// The release a `linux-image-<flavour>` meta package's stanza points
/// at, and the packages a kernel fetch would download for it.
pub fn apt_release(meta: &crate::kernel::apt::Stanza, flavour: &str) -> Option<(String, Vec<String>)> {
    let release = crate::kernel::fetch::release_from_meta(meta, flavour).ok()?;
    let pkgs = crate::kernel::fetch::packages_to_download(&format!("linux-image-{release}"), meta, &release);
    Some((release, pkgs))
}

/// Kernel virtual memory over guest RAM held in a buffer (RAM from
/// guest-physical 0): the monitor's page-table walk and reads.
pub struct Kmem<'m>(crate::monitor::kmem::Kmem<'m, [u8]>);

impl<'m> Kmem<'m> {
    pub fn new(ram: &'m [u8], init_top_pgt: Option<u64>) -> Kmem<'m> {
        Kmem(crate::monitor::kmem::Kmem::new(ram, init_top_pgt))
    }

    pub fn phys(&self, virt: u64) -> Option<u64> {
        self.0.phys(virt)
    }

    pub fn read(&self, virt: u64, buf: &mut [u8]) -> Option<()> {
        self.0.read(virt, buf)
    }

    pub fn u64(&self, virt: u64) -> Option<u64> {
        self.0.u64(virt)
    }

    pub fn field(&self, base: u64, f: Field) -> Option<u64> {
        self.0.field(base, f)
    }
}

/// A field out of bytes already read.
pub fn field_in(bytes: &[u8], f: Field) -> Option<u64> {
    crate::monitor::kmem::field_in(bytes, f)
}

/// One monitor sample of `cpus` CPUs over buffer RAM, at the addresses
/// `syms` give (the guest sends them) and offsets `layout` gives, with
/// the sampler's event names; `Err` where the sampler refuses to start.
pub fn sample(
    ram: &[u8],
    layout: Layout,
    syms: &KernelSymbols,
    cpus: u32,
    at_ms: u64,
) -> Result<(Sample, Vec<String>), String> {
    let s = crate::monitor::sample::Sampler::new(ram, layout, syms, cpus)?;
    Ok((s.sample(ram, at_ms), s.event_names()))
}
