//! The monitor: watches the scheduler from the host while the workload
//! runs, by reading the guest's RAM through QEMU's shared backing file.
//! Nothing runs in the guest while it samples, so it does not change what
//! it measures.
//!
//! Where each figure comes from:
//! - run queues, local DSQs, rq clocks, schedstat counters and the SCX
//!   event counters: sampled from guest RAM by the host every
//!   [`INTERVAL`], at addresses from the guest's kallsyms
//!   ([`KernelSymbols`], sent before the workload) and offsets from
//!   the kernel's BTF ([`layout`]);
//! - BPF program run counts and times: read in the guest before and after
//!   the workload and sent once ([`BpfStats`], counts over the
//!   workload); the kernel keeps them behind per-CPU pointers of each
//!   program, which the host does not chase.
//!
//! Not sampled: per-sched_domain load-balance rates. They live in each
//! CPU's RCU-managed chain of `struct sched_domain`s (arrays per idle
//! type, reached through `rq->sd`), and say little here: with a sched_ext
//! scheduler owning every task, the fair class's balancer has nothing to
//! move.
//!
//! It plugs into the VM's wait loop as a [`VmObserver`]; the run's host
//! flow builds it and takes a [`MonitorReport`] back.

pub(crate) mod kmem;
pub mod layout;
pub mod sample;
pub mod summary;
pub mod verdict;

use std::time::Duration;

use crate::channel::{GuestMessage, Stage};
use crate::vm::{GuestMemory, VmObserver};
use crate::wire::monitor::KernelSymbols;
pub use crate::wire::monitor::MonitorReport;
use layout::Layout;
use sample::Sampler;

/// Time between two samples.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// The [`VmObserver`] that samples.
pub(crate) struct Monitor {
    cpus: u32,
    layout: Option<Result<Layout, String>>,
    symbols: Option<KernelSymbols>,
    sampler: Option<Sampler>,
    /// When the workload started and ended, in VM time.
    payload_at: Option<Duration>,
    done: bool,
    next: Duration,
    report: MonitorReport,
}

impl Monitor {
    /// A monitor for a guest with `cpus` CPUs booting `vmlinux` (whose
    /// BTF gives the struct layouts).
    pub fn new(vmlinux: &std::path::Path, cpus: u32) -> Monitor {
        Monitor {
            cpus,
            layout: Some(Layout::from_vmlinux(vmlinux)),
            symbols: None,
            sampler: None,
            payload_at: None,
            done: false,
            next: Duration::ZERO,
            report: MonitorReport { interval_ms: INTERVAL.as_millis() as u64, ..Default::default() },
        }
    }

    /// The samples and what stood in their way.
    pub fn finish(mut self) -> MonitorReport {
        if self.report.unavailable.is_none() && self.sampler.is_none() {
            self.report.unavailable = Some(match (&self.layout, &self.symbols, self.payload_at) {
                (Some(Err(e)), _, _) => e.clone(),
                (_, None, _) => "the guest sent no kernel symbols (it never got to the workload)".into(),
                (_, _, None) => "the workload never started".into(),
                _ => "the workload ended before the first sample".into(),
            });
        }
        self.report
    }

    fn fail(&mut self, why: String) {
        self.report.unavailable.get_or_insert(why);
        self.done = true;
    }

    /// Builds the sampler once symbols, RAM and the workload are there.
    fn start(&mut self, mem: &GuestMemory) {
        let Some(layout) = self.layout.take() else { return };
        let syms = self.symbols.as_ref().expect("checked by the caller");
        match layout.and_then(|l| Sampler::new(mem, l, syms, self.cpus)) {
            Ok(s) => {
                self.report.event_names = s.event_names();
                self.report.notes.extend(s.events_unavailable().map(|e| format!("events: {e}")));
                self.sampler = Some(s);
            }
            Err(e) => self.fail(e),
        }
    }
}

impl VmObserver for Monitor {
    fn wants_guest_memory(&self) -> bool {
        true
    }

    fn on_message(&mut self, msg: &GuestMessage, at: Duration) {
        match msg {
            GuestMessage::KernelSymbols(s) => {
                self.report.symbols_ms = Some(s.lookup_ms);
                if !s.missing.is_empty() {
                    self.report.notes.push(format!("symbols not found in the guest: {}", s.missing.join(", ")));
                }
                for off in &s.counters_off {
                    self.report.notes.push(format!("could not switch on {off}"));
                }
                self.symbols = Some(s.clone());
            }
            GuestMessage::Stage(Stage::PayloadStarted) => {
                self.payload_at = Some(at);
                self.next = at;
            }
            // The workload is over once the guest reports on it.
            GuestMessage::BpfStats(b) => {
                self.report.bpf = Some(b.clone());
                self.done = true;
            }
            GuestMessage::TestResult(_) | GuestMessage::SchedulerExited { during_payload: true, .. } => {
                self.done = true
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, mem: Result<&GuestMemory, &str>, at: Duration) {
        let Some(start) = self.payload_at else { return };
        if self.done || self.symbols.is_none() || at < self.next {
            return;
        }
        let mem = match mem {
            Ok(m) => m,
            Err(why) => return self.fail(format!("guest RAM cannot be read: {why}")),
        };
        if self.sampler.is_none() {
            self.start(mem);
        }
        let Some(s) = &self.sampler else { return };
        let t0 = std::time::Instant::now();
        self.report.samples.push(s.sample(mem, (at - start).as_millis() as u64));
        self.report.sampling_us += t0.elapsed().as_micros() as u64;
        // On the interval's grid, skipping ticks the loop missed.
        while self.next <= at {
            self.next += INTERVAL;
        }
    }
}
