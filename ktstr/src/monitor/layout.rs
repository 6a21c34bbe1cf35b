//! Where the sampled figures sit inside the kernel's structs, from the
//! BTF of the very kernel the guest boots (the vmlinux the PVH boot path
//! extracts carries a `.BTF` section). No offset is kept by hand: a
//! kernel whose structs moved still reads right, and one that lacks a
//! field says so instead of yielding zeros.
//!
//! (The probe code in `guest::probe::btf` walks members the same way on
//! the guest's BTF; this is the host's copy, kept small.)

use libbpf_rs::btf::types::{Composite, Enum, Int, MemberAttr};
use libbpf_rs::btf::{BtfKind, BtfType, HasSize};
use libbpf_rs::Btf;

/// A scalar member: byte offset inside its struct and size (1-8 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub off: u64,
    pub size: u8,
}

/// How to reach CPU n's `struct scx_event_stats` from `scx_root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventsPath {
    /// Newer kernels: `scx_sched.pcpu` (per-CPU `struct scx_sched_pcpu`)
    /// holds `event_stats` at `stats_off`.
    Pcpu { pcpu: Field, stats_off: u64 },
    /// Older ones: `scx_sched.event_stats_cpu` points at them directly.
    Direct { stats_cpu: Field },
}

/// Every figure's place in `struct rq` and below.
#[derive(Clone, Debug)]
pub struct Layout {
    pub nr_running: Field,
    pub clock: Field,
    pub scx_nr_running: Field,
    pub local_dsq_nr: Field,
    pub nr_switches: Option<Field>,
    pub run_delay: Option<Field>,
    pub ttwu_count: Option<Field>,
    pub sched_goidle: Option<Field>,
    pub curr: Option<Field>,
    pub idle: Option<Field>,
    /// `None`, with the reason, on a kernel without readable SCX events.
    pub events: Result<EventsLayout, String>,
}

#[derive(Clone, Debug)]
pub struct EventsLayout {
    pub path: EventsPath,
    /// `struct scx_event_stats` members, as the kernel names them
    /// (`SCX_EV_SELECT_CPU_FALLBACK`).
    pub counters: Vec<(String, Field)>,
}

impl Layout {
    /// Reads the layout from `vmlinux`'s BTF; fails with the reason when
    /// the BTF or one of the figures every sample needs is missing.
    pub(crate) fn from_vmlinux(vmlinux: &std::path::Path) -> Result<Layout, String> {
        let btf = Btf::from_path(vmlinux).map_err(|e| format!("no BTF in {}: {e}", vmlinux.display()))?;
        Layout::from_btf(&btf)
    }

    pub(crate) fn from_btf(btf: &Btf<'_>) -> Result<Layout, String> {
        let rq = |path: &str| field(btf, "rq", path);
        let need = |path: &str| rq(path).ok_or_else(|| format!("the kernel's BTF has no rq.{path}"));
        Ok(Layout {
            nr_running: need("nr_running")?,
            clock: need("clock")?,
            scx_nr_running: need("scx.nr_running")?,
            local_dsq_nr: need("scx.local_dsq.nr")?,
            nr_switches: rq("nr_switches"),
            run_delay: rq("rq_sched_info.run_delay"),
            ttwu_count: rq("ttwu_count"),
            sched_goidle: rq("sched_goidle"),
            curr: rq("curr"),
            idle: rq("idle"),
            events: events(btf),
        })
    }
}

fn events(btf: &Btf<'_>) -> Result<EventsLayout, String> {
    let path = if let Some(pcpu) = field(btf, "scx_sched", "pcpu") {
        let stats_off = offset(btf, "scx_sched_pcpu", "event_stats")
            .ok_or("the kernel's BTF has scx_sched.pcpu but no scx_sched_pcpu.event_stats")?;
        EventsPath::Pcpu { pcpu, stats_off }
    } else if let Some(stats_cpu) = field(btf, "scx_sched", "event_stats_cpu") {
        EventsPath::Direct { stats_cpu }
    } else {
        return Err("the kernel's BTF has no per-CPU SCX event counters (scx_sched.pcpu or .event_stats_cpu)".into());
    };
    let st = composite(btf, "scx_event_stats").ok_or("the kernel's BTF has no struct scx_event_stats")?;
    let counters: Vec<(String, Field)> = st
        .iter()
        .filter_map(|m| {
            let name = m.name?.to_string_lossy().into_owned();
            let ty = btf.type_by_id::<BtfType>(m.ty)?;
            Some((name, Field { off: byte_offset(m.attr)?, size: scalar_size(ty)? }))
        })
        .collect();
    if counters.is_empty() {
        return Err("struct scx_event_stats has no counters".into());
    }
    Ok(EventsLayout { path, counters })
}

fn composite<'b>(btf: &'b Btf<'_>, name: &str) -> Option<Composite<'b>> {
    let t = btf.type_by_name::<BtfType>(name)?;
    Composite::try_from(t.skip_mods_and_typedefs()).ok()
}

/// `a.b.c` in struct `st`: a scalar's offset and size.
fn field(btf: &Btf<'_>, st: &str, path: &str) -> Option<Field> {
    let (off, ty) = member_path(btf, composite(btf, st)?, path)?;
    Some(Field { off, size: scalar_size(ty)? })
}

/// `a.b.c` in struct `st`: the offset of a member of any type.
fn offset(btf: &Btf<'_>, st: &str, path: &str) -> Option<u64> {
    member_path(btf, composite(btf, st)?, path).map(|(off, _)| off)
}

fn member_path<'b>(btf: &'b Btf<'_>, st: Composite<'b>, path: &str) -> Option<(u64, BtfType<'b>)> {
    let (mut cur, mut off) = (st, 0u64);
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let (o, ty) = find_member(btf, cur, part, 0)?;
        off += o;
        if parts.peek().is_none() {
            return Some((off, ty));
        }
        cur = Composite::try_from(ty.skip_mods_and_typedefs()).ok()?;
    }
    None
}

/// A named member, looking inside anonymous structs and unions.
fn find_member<'b>(btf: &'b Btf<'_>, st: Composite<'b>, name: &str, depth: u8) -> Option<(u64, BtfType<'b>)> {
    for m in st.iter() {
        let ty = btf.type_by_id::<BtfType>(m.ty)?;
        match m.name {
            Some(n) if n == name => return Some((byte_offset(m.attr)?, ty)),
            None if depth < 4 => {
                let Ok(inner) = Composite::try_from(ty.skip_mods_and_typedefs()) else { continue };
                if let Some((o, t)) = find_member(btf, inner, name, depth + 1) {
                    return Some((byte_offset(m.attr)? + o, t));
                }
            }
            _ => {}
        }
    }
    None
}

/// Bitfields are not read.
fn byte_offset(attr: MemberAttr) -> Option<u64> {
    match attr {
        MemberAttr::Normal { offset } if offset % 8 == 0 => Some(u64::from(offset / 8)),
        _ => None,
    }
}

/// Size of an integer, enum or pointer; `None` for anything else.
fn scalar_size(ty: BtfType<'_>) -> Option<u8> {
    let t = ty.skip_mods_and_typedefs();
    let size = match t.kind() {
        BtfKind::Int => Int::try_from(t).ok()?.size(),
        BtfKind::Enum => Enum::try_from(t).ok()?.size(),
        BtfKind::Ptr => 8,
        _ => return None,
    };
    (1..=8).contains(&size).then_some(size as u8)
}
