//! Loading and attaching probe.bpf.c's programs.
//!
//! The object is opened several times: a base instance owns the maps and
//! the kprobe program (one program, one link per kernel function, the
//! function id as the attach cookie); fentry/fexit programs need their
//! target before load, so each batch of [`SLOTS`] targets is one more
//! instance reusing the base's maps; the trigger gets an instance of its
//! own, so a kernel without `sched_ext_exit` costs only the trigger. A
//! batch that fails to load is retried one target at a time, so one bad
//! target is named and dropped rather than taking its batch with it.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{KprobeOpts, Link, MapCore, MapFlags, MapHandle, OpenObject, ProgramHandle};

use super::btf::{MAX_ARGS, MAX_FIELDS};
use super::Target;
use crate::probe::{FuncKind, Pipeline, TriggerStatus};

#[allow(clippy::all, dead_code, non_camel_case_types, non_snake_case, unused_qualifications)]
pub(super) mod skel {
    include!(concat!(env!("OUT_DIR"), "/probe_skel.rs"));
}
use skel::{OpenProbeSkel, ProbeSkel, ProbeSkelBuilder};

/// fentry/fexit slots per instance (probe.h's KTSTR_PROBE_SLOTS). Each
/// instance loads vmlinux BTF again to resolve its targets: fewer, larger
/// batches are quicker under TCG.
const SLOTS: usize = 16;
/// The tracepoint the trigger attaches to.
const TRIGGER_TP: &str = "sched_ext_exit";

/// Indices into the `stats` map (probe.h's `enum ktstr_probe_stat`).
const STAT_EVENTS: u32 = 0;
const STAT_LOST: u32 = 1;
const STAT_UNMATCHED: u32 = 2;

#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub events: u64,
    pub lost: u64,
    pub unmatched: u64,
}

/// Everything attached; dropping it detaches (slow under TCG: each
/// trampoline is rebuilt).
pub(crate) struct Attached {
    // Kept for the programs' lifetime: links reference them.
    _skels: Vec<ProbeSkel<'static>>,
    // Held, never read: dropping a link detaches its probe.
    _links: Vec<Link>,
    pub events: MapHandle,
    stats: MapHandle,
}

impl Attached {
    pub fn counters(&self) -> Counters {
        let read = |k: u32| {
            self.stats
                .lookup(&k.to_ne_bytes(), MapFlags::ANY)
                .ok()
                .flatten()
                .and_then(|v| v.get(..8).map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default())))
                .unwrap_or(0)
        };
        Counters { events: read(STAT_EVENTS), lost: read(STAT_LOST), unmatched: read(STAT_UNMATCHED) }
    }
}

/// The open object's storage: libbpf-rs skeletons borrow it for their
/// lifetime, and these live until the guest powers off.
fn storage() -> &'static mut MaybeUninit<OpenObject> {
    Box::leak(Box::new(MaybeUninit::uninit()))
}

/// What can be loaded before the scheduler starts, since it does not
/// depend on the scheduler's programs: the base instance with the maps and
/// the kprobe program, and the trigger. Loading it while the scheduler
/// starts takes it off the path to the workload.
pub(crate) struct Base {
    base: ProbeSkel<'static>,
    specs: MapHandle,
    events: MapHandle,
    stats: MapHandle,
    trigger: std::result::Result<(ProbeSkel<'static>, Link), String>,
}

// SAFETY: libbpf objects are not tied to the thread that loaded them; a
// `Base` is built on one thread and handed over once, through a join.
unsafe impl Send for Base {}

pub(crate) fn load_base(break_trigger: bool) -> Result<Base> {
    let mut open = ProbeSkelBuilder::default().open(storage()).context("opening the probe object")?;
    only(&mut open, &["kprobe_entry"]);
    let base = open.load().context("loading the probe object")?;
    super::probe_trace("base loaded");
    let specs = MapHandle::try_from(&base.maps.specs)?;
    let events = MapHandle::try_from(&base.maps.events)?;
    let stats = MapHandle::try_from(&base.maps.stats)?;
    let maps = Shared { specs: &specs, events: &events, stats: &stats };
    let trigger = trigger(&maps, break_trigger).map_err(|e| format!("{e:#}"));
    super::probe_trace("trigger attached");
    Ok(Base { base, specs, events, stats, trigger })
}

pub fn attach(loaded: Base, targets: &[Target], pipeline: &mut Pipeline) -> Result<Attached> {
    let Base { base, specs, events, stats, trigger } = loaded;
    for t in targets {
        specs
            .update(&t.func.id.to_ne_bytes(), &spec_bytes(t), MapFlags::ANY)
            .with_context(|| format!("writing the probe spec of {}", t.func.name))?;
    }
    pipeline.probe_keys = targets.len();
    let maps = Shared { specs: &specs, events: &events, stats: &stats };
    let mut links = Vec::new();
    // Without the trigger nothing can be stitched, so the other probes
    // would only slow the replay down.
    let trigger_skel = match trigger {
        Ok((skel, link)) => {
            links.push(link);
            pipeline.trigger = TriggerStatus::Attached;
            skel
        }
        Err(e) => {
            pipeline.trigger = TriggerStatus::AttachFailed(e);
            return Ok(Attached { _skels: vec![base], _links: links, events, stats });
        }
    };
    // A kernel function's kprobe goes first: one that does not attach
    // (inlined, notrace) gets no fexit either.
    let mut tracing: Vec<&Target> = Vec::new();
    for t in targets {
        if t.func.kind != FuncKind::Kernel {
            tracing.push(t);
            continue;
        }
        let opts = KprobeOpts { cookie: u64::from(t.func.id), ..Default::default() };
        match base.progs.kprobe_entry.attach_kprobe_with_opts(false, &t.func.name, opts) {
            Ok(l) => {
                links.push(l);
                pipeline.kprobes_attached += 1;
                tracing.push(t);
            }
            Err(e) => pipeline.attach_failed.push((t.func.name.clone(), kprobe_failure(&e))),
        }
    }
    super::probe_trace("kprobes attached");
    let mut skels = vec![base, trigger_skel];
    // Batches of even size, loaded side by side: verifying them is most
    // of the set-up, and a guest has more than one vCPU.
    let nbatches = tracing.len().div_ceil(SLOTS).max(1);
    let size = tracing.len().div_ceil(nbatches).max(1);
    let outs: Vec<Loaded> = std::thread::scope(|scope| {
        let threads: Vec<_> = tracing
            .chunks(size)
            .map(|batch| {
                let maps = &maps;
                scope.spawn(move || {
                    let mut out = Loaded::default();
                    load_split(batch, maps, &mut out);
                    out
                })
            })
            .collect();
        threads.into_iter().filter_map(|t| t.join().ok()).collect()
    });
    for out in outs {
        skels.extend(out.skels);
        links.extend(out.links);
        pipeline.fentry_attached += out.fentry;
        pipeline.fexit_attached += out.fexit;
        pipeline.attach_failed.extend(out.failed);
    }
    super::probe_trace("tracing batches attached");
    Ok(Attached { _skels: skels, _links: links, events, stats })
}

/// What one loading thread attached, and what it could not.
#[derive(Default)]
struct Loaded {
    skels: Vec<ProbeSkel<'static>>,
    links: Vec<Link>,
    fentry: usize,
    fexit: usize,
    failed: Vec<(String, String)>,
}

// SAFETY: libbpf objects and links are not tied to a thread; each is
// built by one loading thread and handed over once, through the join.
unsafe impl Send for Loaded {}

/// Loads a batch; one that fails is split in halves until the targets
/// that fail are alone and named.
fn load_split(batch: &[&Target], maps: &Shared, out: &mut Loaded) {
    match tracing_batch(batch, maps) {
        Ok((skel, l, fentry, fexit)) => {
            out.skels.push(skel);
            out.links.extend(l);
            out.fentry += fentry;
            out.fexit += fexit;
        }
        Err(e) if batch.len() == 1 => out.failed.push((batch[0].func.name.clone(), format!("{e:#}"))),
        Err(_) => {
            let (a, b) = batch.split_at(batch.len() / 2);
            load_split(a, maps, out);
            load_split(b, maps, out);
        }
    }
}

/// Why a kprobe did not attach, in a scheduler author's words.
fn kprobe_failure(e: &libbpf_rs::Error) -> String {
    let raw = format!("{e:#}");
    match e.kind() {
        libbpf_rs::ErrorKind::NotFound => format!("not in kallsyms: inlined or not built ({raw})"),
        libbpf_rs::ErrorKind::InvalidInput => format!("cannot be kprobed: notrace or on the kprobe blocklist ({raw})"),
        _ => raw,
    }
}

struct Shared<'a> {
    specs: &'a MapHandle,
    events: &'a MapHandle,
    stats: &'a MapHandle,
}

/// A new instance reusing the base's maps, with only `progs` loaded.
fn instance(maps: &Shared, progs: &[&str]) -> Result<OpenProbeSkel<'static>> {
    let mut open = ProbeSkelBuilder::default().open(storage()).context("opening the probe object")?;
    open.maps.specs.reuse_fd(maps.specs.as_fd())?;
    open.maps.events.reuse_fd(maps.events.as_fd())?;
    open.maps.stats.reuse_fd(maps.stats.as_fd())?;
    only(&mut open, progs);
    Ok(open)
}

/// Autoload exactly the named programs.
fn only(open: &mut OpenProbeSkel<'static>, progs: &[&str]) {
    for mut p in open.open_object_mut().progs_mut() {
        let keep = progs.iter().any(|n| p.name() == *n);
        p.set_autoload(keep);
    }
}

/// fentry (callbacks) and fexit (callbacks and kernel functions) for up to
/// [`SLOTS`] targets: the instance, its links, and how many of each.
fn tracing_batch(batch: &[&Target], maps: &Shared) -> Result<(ProbeSkel<'static>, Vec<Link>, usize, usize)> {
    let mut names = Vec::new();
    for (slot, t) in batch.iter().enumerate() {
        if t.prog_id.is_some() {
            names.push(format!("fentry_{slot}"));
        }
        names.push(format!("fexit_{slot}"));
    }
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut open = instance(maps, &name_refs)?;
    if let Some(ro) = open.maps.rodata_data.as_deref_mut() {
        for (slot, t) in batch.iter().enumerate() {
            ro.slot_func[slot] = t.func.id;
        }
    }
    // The attach target's program must stay open until load.
    let mut handles = Vec::new();
    for mut p in open.open_object_mut().progs_mut() {
        let name = p.name().to_string_lossy().into_owned();
        let Some(slot) = name.rsplit('_').next().and_then(|s| s.parse::<usize>().ok()) else { continue };
        let Some(t) = batch.get(slot) else { continue };
        if !names.contains(&name) {
            continue;
        }
        let fd = match t.prog_id {
            Some(id) => {
                let h = ProgramHandle::from_prog_id(id).with_context(|| format!("opening program id {id}"))?;
                let fd = h.as_fd().as_raw_fd();
                handles.push(h);
                fd
            }
            None => 0,
        };
        p.set_attach_target(fd, Some(t.func.name.clone()))
            .with_context(|| format!("setting {name}'s target to {}", t.func.name))?;
    }
    let mut skel = open.load().with_context(|| {
        let list: Vec<&str> = batch.iter().map(|t| t.func.name.as_str()).collect();
        format!("loading fentry/fexit for {}", list.join(", "))
    })?;
    drop(handles);
    let (mut links, mut fentry, mut fexit) = (Vec::new(), 0, 0);
    for p in skel.object_mut().progs_mut() {
        let name = p.name().to_string_lossy().into_owned();
        if !names.contains(&name) {
            continue;
        }
        links.push(p.attach_trace().with_context(|| format!("attaching {name}"))?);
        if name.starts_with("fentry") {
            fentry += 1;
        } else {
            fexit += 1;
        }
    }
    Ok((skel, links, fentry, fexit))
}

fn trigger(maps: &Shared, broken: bool) -> Result<(ProbeSkel<'static>, Link)> {
    let mut open = instance(maps, &["trigger"])?;
    // A name no kernel has: the path a kernel without the tracepoint takes.
    let tp = if broken { "ktstr_no_such_tracepoint" } else { TRIGGER_TP };
    for mut p in open.open_object_mut().progs_mut() {
        if p.name() == "trigger" {
            // libbpf resolves the target here: ESRCH when this kernel
            // has no such tracepoint.
            p.set_attach_target(0, Some(tp.to_string()))
                .with_context(|| format!("tp_btf/{tp}: no such tracepoint in vmlinux BTF?"))?;
        }
    }
    let skel = open.load().with_context(|| format!("loading tp_btf/{tp}"))?;
    let link = skel.progs.trigger.attach().with_context(|| format!("attaching tp_btf/{tp}"))?;
    Ok((skel, link))
}

/// probe.h's `struct ktstr_func_spec` for `t`, as the map stores it.
fn spec_bytes(t: &Target) -> Vec<u8> {
    use skel::types::{ktstr_field_spec, ktstr_func_spec};
    let mut spec = ktstr_func_spec {
        live: 1,
        nargs: t.func.params.len().min(MAX_ARGS) as u32,
        nfields: t.sig.reads.len().min(MAX_FIELDS) as u32,
        args_via_ctx: u32::from(t.prog_id.is_some()),
        ..Default::default()
    };
    for (slot, r) in spec.fields.iter_mut().zip(&t.sig.reads) {
        *slot = ktstr_field_spec { off: r.off, arg: r.arg, size: r.size, deref: u8::from(r.deref), pad: 0 };
    }
    // SAFETY: a #[repr(C)] struct of integers, Copy, with no padding
    // (four u32s, then 8-byte field specs): every byte is initialized.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&spec as *const ktstr_func_spec).cast::<u8>(),
            std::mem::size_of::<ktstr_func_spec>(),
        )
    };
    bytes.to_vec()
}

// The limits in btf.rs are probe.h's: a change there fails to build here.
const _: fn(skel::types::ktstr_func_spec) -> [skel::types::ktstr_field_spec; MAX_FIELDS] = |s| s.fields;
const _: fn(skel::types::ktstr_probe_event) -> [u64; MAX_ARGS] = |e| e.args;
