//! One sample: every CPU's run queue figures and the SCX event counters,
//! read from guest RAM at one moment.

use super::kmem::{field_in, Kmem, PhysMem, DIRECT_MAP_4LEVEL};
use super::layout::{EventsPath, Layout};
use crate::wire::monitor::KernelSymbols;
pub use crate::wire::monitor::{CpuSample, Sample};

/// Addresses resolved once, checked, then read at every sample.
pub(crate) struct Sampler {
    layout: Layout,
    /// `__per_cpu_offset[n]` for each CPU.
    offsets: Vec<u64>,
    /// Each CPU's `struct rq`.
    rqs: Vec<u64>,
    scx_root: Option<u64>,
    pgd: Option<u64>,
    /// Bytes of `struct scx_event_stats` that hold counters.
    events_len: usize,
}

impl Sampler {
    /// Resolves the per-CPU addresses and checks the translation end to
    /// end: each CPU's `this_cpu_off` must read back as its own offset.
    pub fn new<M: PhysMem + ?Sized>(
        mem: &M,
        layout: Layout,
        syms: &KernelSymbols,
        cpus: u32,
    ) -> Result<Sampler, String> {
        if let Some(e) = &syms.error {
            return Err(e.clone());
        }
        let sym = |n: &str| syms.get(n).ok_or_else(|| format!("the guest kernel has no symbol {n}"));
        let (runqueues, offsets_at) = (sym("runqueues")?, sym("__per_cpu_offset")?);
        let kmem = Kmem::new(mem, syms.get("init_top_pgt"));
        if let Some(pob) = syms.get("page_offset_base") {
            match kmem.u64(pob) {
                Some(DIRECT_MAP_4LEVEL) => {}
                other => {
                    return Err(format!(
                        "the direct map is at {other:x?}, not {DIRECT_MAP_4LEVEL:#x}: KASLR or 5-level paging \
                         (booted without nokaslr?)"
                    ))
                }
            }
        }
        let mut offsets = Vec::new();
        for cpu in 0..u64::from(cpus) {
            let off = kmem
                .u64(offsets_at.wrapping_add(cpu * 8))
                .ok_or_else(|| format!("__per_cpu_offset[{cpu}] is outside guest RAM"))?;
            offsets.push(off);
        }
        if let Some(tco) = syms.get("this_cpu_off") {
            for (cpu, &off) in offsets.iter().enumerate() {
                let got = kmem.u64(tco.wrapping_add(off));
                if got != Some(off) {
                    return Err(format!(
                        "address check failed: cpu{cpu}'s this_cpu_off reads {got:x?}, want {off:#x} (guest RAM \
                         layout not as expected)"
                    ));
                }
            }
        }
        let events_len = layout
            .events
            .as_ref()
            .map_or(0, |e| e.counters.iter().map(|(_, f)| f.off as usize + usize::from(f.size)).max().unwrap_or(0));
        Ok(Sampler {
            rqs: offsets.iter().map(|o| runqueues.wrapping_add(*o)).collect(),
            offsets,
            scx_root: syms.get("scx_root"),
            pgd: syms.get("init_top_pgt"),
            layout,
            events_len,
        })
    }

    pub fn event_names(&self) -> Vec<String> {
        self.layout.events.as_ref().map(|e| e.counters.iter().map(|(n, _)| n.clone()).collect()).unwrap_or_default()
    }

    /// Why there are no event counters, if there are none.
    pub(crate) fn events_unavailable(&self) -> Option<String> {
        match (&self.layout.events, self.scx_root) {
            (Err(e), _) => Some(e.clone()),
            (Ok(_), None) => Some("the guest kernel has no symbol scx_root".into()),
            _ => None,
        }
    }

    pub fn sample<M: PhysMem + ?Sized>(&self, mem: &M, at_ms: u64) -> Sample {
        let kmem = Kmem::new(mem, self.pgd);
        Sample { at_ms, cpus: self.rqs.iter().map(|&rq| self.cpu(&kmem, rq)).collect(), events: self.events(&kmem) }
    }

    fn cpu<M: PhysMem + ?Sized>(&self, k: &Kmem<M>, rq: u64) -> Option<CpuSample> {
        let l = &self.layout;
        let opt = |f: Option<super::layout::Field>| f.and_then(|f| k.field(rq, f));
        let idle = match (opt(l.curr), opt(l.idle)) {
            (Some(c), Some(i)) => Some(c == i),
            _ => None,
        };
        Some(CpuSample {
            nr_running: k.field(rq, l.nr_running)? as u32,
            scx_nr_running: k.field(rq, l.scx_nr_running)? as u32,
            local_dsq: k.field(rq, l.local_dsq_nr)? as u32,
            clock: k.field(rq, l.clock)?,
            idle,
            nr_switches: opt(l.nr_switches),
            run_delay_ns: opt(l.run_delay),
            ttwu: opt(l.ttwu_count),
            goidle: opt(l.sched_goidle),
        })
    }

    /// The counters summed over CPUs, as the kernel's own
    /// `/sys/kernel/sched_ext/root/events` sums them.
    fn events<M: PhysMem + ?Sized>(&self, k: &Kmem<M>) -> Option<Vec<u64>> {
        let ev = self.layout.events.as_ref().ok()?;
        let sch = k.u64(self.scx_root?).filter(|&p| p != 0)?;
        let mut sums = vec![0u64; ev.counters.len()];
        let mut bytes = vec![0u8; self.events_len];
        for &off in &self.offsets {
            // A per-CPU pointer plus the CPU's offset is that CPU's copy.
            let stats = match ev.path {
                EventsPath::Pcpu { pcpu, stats_off } => k.field(sch, pcpu)?.wrapping_add(off).wrapping_add(stats_off),
                EventsPath::Direct { stats_cpu } => k.field(sch, stats_cpu)?.wrapping_add(off),
            };
            k.read(stats, &mut bytes)?;
            for (sum, (_, f)) in sums.iter_mut().zip(&ev.counters) {
                *sum = sum.wrapping_add(field_in(&bytes, *f)?);
            }
        }
        Some(sums)
    }
}
