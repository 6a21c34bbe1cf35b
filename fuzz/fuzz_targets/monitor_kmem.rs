//! The monitor's guest-RAM readers: kernel virtual addresses translated
//! through the guest's own page tables (`monitor::kmem::Kmem`: `new`,
//! `phys`, `read`, `field`) and the sampler that reads every CPU's run
//! queue and the SCX event counters at the addresses the guest sent
//! (`monitor::sample::Sampler`), then the figures, stall detection and
//! thresholds over its samples. RAM is the input's tail, from
//! guest-physical 0 (`fuzz_api::Kmem` reads a buffer: a `GuestMemory`
//! needs backing files, see docs/fuzzing.md).
//!
//! Input: a header (see `fuzz_target!` below), then RAM.

#![no_main]

use ktstr::monitor::layout::{EventsLayout, EventsPath, Field, Layout};
use ktstr::monitor::summary::{stalls, Figures};
use ktstr::monitor::MonitorReport;
use ktstr::wire::monitor::{KernelSymbols, SYMBOLS};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
use common::Header;

const KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
const DIRECT_MAP: u64 = 0xffff_8880_0000_0000;
const VMALLOC: u64 = 0xffff_c900_0000_0000;

/// An address in one of the kernel's ranges, or anywhere.
fn addr(h: &mut Header, mode: u8) -> u64 {
    match mode % 4 {
        0 => h.u64(),
        1 => KERNEL_MAP.wrapping_add(u64::from(h.u32())),
        2 => DIRECT_MAP + u64::from(h.u32()),
        _ => VMALLOC + u64::from(h.u32()),
    }
}

fn field(h: &mut Header) -> Field {
    Field { off: u64::from(h.u16()), size: h.u8() }
}

fuzz_target!(|data: &[u8]| {
    let mut h = Header::new(data);
    let flags = h.u8();
    let pgt = addr(&mut h, flags);
    let pgt = (flags & 4 != 0).then_some(pgt);
    let virt = addr(&mut h, flags >> 3);
    let len = usize::from(h.u16() % 8192);
    let f = field(&mut h);
    let cpus = u32::from(h.u8() % 5);
    let present = h.u8();
    let found: Vec<(String, u64)> = SYMBOLS
        .iter()
        .enumerate()
        .filter(|(i, _)| present & (1 << i) != 0)
        .map(|(_, name)| (name.to_string(), KERNEL_MAP.wrapping_add(u64::from(h.u32()))))
        .collect();
    let error = (present & 0x80 != 0).then(|| "lookup failed".to_string());
    let syms = KernelSymbols { found, error, ..Default::default() };
    let optional = h.u8();
    let opt = |bit: u8, h: &mut Header| {
        let f = field(h);
        (optional & (1 << bit) != 0).then_some(f)
    };
    let (nr_switches, run_delay, ttwu_count, sched_goidle) =
        (opt(0, &mut h), opt(1, &mut h), opt(2, &mut h), opt(3, &mut h));
    let (curr, idle) = (opt(4, &mut h), opt(5, &mut h));
    let events_mode = h.u8();
    let path = match events_mode % 2 {
        0 => EventsPath::Pcpu { pcpu: field(&mut h), stats_off: u64::from(h.u16()) },
        _ => EventsPath::Direct { stats_cpu: field(&mut h) },
    };
    let counters: Vec<(String, Field)> =
        (0..(events_mode >> 1) % 5).map(|i| (format!("SCX_EV_{i}"), field(&mut h))).collect();
    let events = match events_mode & 0x80 {
        0 => Ok(EventsLayout { path, counters }),
        _ => Err("no events".to_string()),
    };
    let layout = Layout {
        nr_running: field(&mut h),
        clock: field(&mut h),
        scx_nr_running: field(&mut h),
        local_dsq_nr: field(&mut h),
        nr_switches,
        run_delay,
        ttwu_count,
        sched_goidle,
        curr,
        idle,
        events,
    };
    let ram = h.rest;

    let k = ktstr::fuzz_api::Kmem::new(ram, pgt);
    if let Some(p) = k.phys(virt) {
        let _ = k.read(virt, &mut [0u8; 8]);
        assert!(p < 1 << 52, "a physical address past 52 bits: {p:#x}");
    }
    let mut buf = vec![0u8; len];
    let _ = k.read(virt, &mut buf);
    let _ = k.u64(virt);
    let _ = k.field(virt, f);
    let _ = ktstr::fuzz_api::field_in(ram, f);

    let mut report = MonitorReport { interval_ms: 100, ..Default::default() };
    for at_ms in [0, 100, 200, 300] {
        match ktstr::fuzz_api::sample(ram, layout.clone(), &syms, cpus, at_ms) {
            Ok((s, names)) => {
                assert_eq!(s.cpus.len(), cpus as usize);
                report.event_names = names;
                report.samples.push(s);
            }
            Err(e) => {
                report.unavailable = Some(e);
                break;
            }
        }
    }
    let figures = Figures::of(&report.samples, &report.event_names);
    assert_eq!(figures.samples, report.samples.len());
    let _ = stalls(&report.samples, 3);
    let _ = ktstr::fuzz_api::monitor_verdict(&report, &common::checks(flags | 1, u32::from(flags)));
});
