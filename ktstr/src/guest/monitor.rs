//! The guest's small part in the host-side monitor, only when the plan
//! asks for it: find the kernel symbols the host samples through, switch
//! on the kernel's optional counters before the workload, and read the
//! scheduler's BPF program figures before and after it (the one thing
//! the host cannot read from guest RAM simply).

use std::mem::MaybeUninit;
use std::time::Instant;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::ProgramType;

use crate::dump::ProgStats;
use crate::wire::monitor::{BpfStats, KernelSymbols, SYMBOLS};

#[allow(clippy::all, dead_code, non_camel_case_types, non_snake_case, unused_qualifications)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/ksym_skel.rs"));
}

/// ksym.bpf.c's array sizes.
const KSYM_MAX: usize = 16;
const KSYM_NAME_LEN: usize = 64;

/// Counters the kernel keeps only when asked: the schedstat counters
/// behind `ttwu` and `goidle` (context switches and run delay are kept
/// regardless). They cost a little per event, so only monitored runs pay
/// it. (BPF run counts and times, `bpf_stats_enabled`, are on in every
/// guest from boot: see `mounts`.)
const SYSCTLS: &[&str] = &["/proc/sys/kernel/sched_schedstats"];
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Looks [`SYMBOLS`] up with the kernel's own kallsyms lookup.
pub(crate) fn lookup_symbols() -> KernelSymbols {
    let started = Instant::now();
    let mut out = KernelSymbols::default();
    match lookup() {
        Ok(res) => {
            for (name, res) in SYMBOLS.iter().zip(res) {
                match res {
                    Ok(addr) if addr != 0 => out.found.push((name.to_string(), addr)),
                    _ => out.missing.push(name.to_string()),
                }
            }
        }
        Err(e) => out.error = Some(format!("kernel symbol lookup (ksym.bpf.c): {e:#}")),
    }
    out.lookup_ms = started.elapsed().as_millis() as u64;
    out
}

fn lookup() -> anyhow::Result<Vec<Result<u64, i64>>> {
    anyhow::ensure!(SYMBOLS.len() <= KSYM_MAX, "more symbols than ksym.bpf.c holds");
    let mut storage = MaybeUninit::uninit();
    let open = skel::KsymSkelBuilder::default().open(&mut storage)?;
    let mut skel = open.load()?;
    let bss = skel.maps.bss_data.as_deref_mut().ok_or_else(|| anyhow::anyhow!("ksym .bss is not mmapped"))?;
    for (i, name) in SYMBOLS.iter().enumerate() {
        anyhow::ensure!(name.len() < KSYM_NAME_LEN, "symbol {name} too long");
        for (d, s) in bss.names[i].iter_mut().zip(name.bytes()) {
            *d = s as _;
        }
        bss.name_lens[i] = name.len() as u32 + 1;
    }
    bss.nr_names = SYMBOLS.len() as u32;
    skel.progs.lookup.test_run(libbpf_rs::ProgramInput::default())?;
    let bss = skel.maps.bss_data.as_deref().ok_or_else(|| anyhow::anyhow!("ksym .bss is not mmapped"))?;
    Ok((0..SYMBOLS.len()).map(|i| if bss.errs[i] == 0 { Ok(bss.addrs[i]) } else { Err(bss.errs[i]) }).collect())
}

/// Switches the optional counters on; says which could not be.
pub(crate) fn enable_counters() -> Vec<String> {
    SYSCTLS.iter().filter_map(|p| std::fs::write(p, "1").err().map(|e| format!("{p}: {e}"))).collect()
}

/// The struct_ops programs loaded now (the scheduler's: nothing else in
/// a ktstr guest registers struct_ops), with their counts so far.
pub(crate) fn bpf_snapshot() -> Vec<ProgStats> {
    super::bpf_state::read_prog_stats(|p| p.ty == ProgramType::StructOps)
}

/// The scheduler's programs after the workload, counted over it: less
/// what each had done by `before` (its load and attach, when it ran
/// `init` and `enable` for every task already there).
pub(crate) fn bpf_stats(before: &[ProgStats]) -> BpfStats {
    let stats_on = std::fs::read_to_string(BPF_STATS).is_ok_and(|s| s.trim() == "1");
    let mut progs = bpf_snapshot();
    for p in &mut progs {
        if let Some(b) = before.iter().find(|b| b.id == p.id) {
            p.run_cnt = p.run_cnt.saturating_sub(b.run_cnt);
            p.run_time_ns = p.run_time_ns.saturating_sub(b.run_time_ns);
        }
    }
    let error = if progs.is_empty() {
        Some("no struct_ops programs loaded after the workload (scheduler gone?)".into())
    } else if !stats_on {
        Some(format!("{BPF_STATS} is not 1: no run counts"))
    } else {
        None
    };
    BpfStats { progs, error }
}
