//! Auto-repro's probes in the repro VM: discover the scheduler's
//! callbacks, resolve what to read from BTF, attach, record while the
//! scenario replays, and hand back the trail of the task that triggered
//! the scheduler's exit.
//!
//! Nothing here fails the run: each step that cannot be done is counted
//! in the [`Pipeline`] with its reason, so the report says how far the
//! probes got.

mod attach;
mod btf;
mod discover;
mod event;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::probe::{Dropped, FuncKind, Pipeline, ProbeEvent, ProbeFunc, ProbePlan, ProbeTrail, Trigger, TriggerStatus};
use btf::{Resolver, Signature};

/// Events held while the scenario runs: the crash is at the end, so the
/// oldest go first.
const RING: usize = 50_000;
/// Events of the triggering task sent to the host.
const SENT: usize = 256;
/// Of those, returns that come after the exit (of calls in flight).
const AFTER: usize = 32;

/// One thing to probe, with its signature.
pub(crate) struct Target {
    pub func: ProbeFunc,
    pub sig: Signature,
    /// For a callback: its program id (fentry/fexit attach to it).
    pub prog_id: Option<u32>,
}

pub(crate) struct Probes {
    targets: Vec<Target>,
    pipeline: Pipeline,
    attached: Option<attach::Attached>,
    buffer: Arc<Mutex<VecDeque<event::Raw>>>,
    stop: Arc<AtomicBool>,
    collector: Option<std::thread::JoinHandle<()>>,
}

/// What is loaded while the scheduler starts: vmlinux BTF and the probe
/// object's base with the trigger (see [`attach::Base`]).
pub(crate) struct Preload(std::thread::JoinHandle<Preloaded>);

struct Preloaded {
    resolver: anyhow::Result<Resolver>,
    base: anyhow::Result<attach::Base>,
}

// SAFETY: the BTF handle and libbpf objects are not tied to a thread; they
// are built on the preload thread and handed over once, through the join.
unsafe impl Send for Preloaded {}

/// Starts loading what does not depend on the scheduler's programs.
pub(crate) fn preload(plan: &ProbePlan) -> Preload {
    let broken = plan.break_trigger;
    Preload(std::thread::spawn(move || {
        probe_trace("preload start");
        let resolver = Resolver::vmlinux();
        probe_trace("vmlinux BTF read");
        let base = if resolver.is_ok() { attach::load_base(broken) } else { Err(anyhow::anyhow!("no vmlinux BTF")) };
        Preloaded { resolver, base }
    }))
}

/// Once the scheduler attached: discovers its callbacks, resolves and
/// attaches; returns with the probes recording.
pub fn start(plan: &ProbePlan, preload: Preload) -> Probes {
    let t0 = std::time::Instant::now();
    let mut probes = start_inner(plan, preload);
    probes.pipeline.setup_ms = t0.elapsed().as_millis() as u64;
    probes
}

fn start_inner(plan: &ProbePlan, preload: Preload) -> Probes {
    probe_trace("start");
    let mut pipeline = Pipeline {
        extracted: plan.stack.len(),
        traceable: 0,
        dropped: Vec::new(),
        bpf_discovered: 0,
        after_expand: 0,
        kprobes_attached: 0,
        fentry_attached: 0,
        fexit_attached: 0,
        attach_failed: Vec::new(),
        trigger: TriggerStatus::AttachFailed("not attempted".into()),
        probe_keys: 0,
        unmatched: 0,
        events_captured: 0,
        events_lost: 0,
        events_held: 0,
        setup_ms: 0,
    };
    let mut probes = Probes {
        targets: Vec::new(),
        pipeline: pipeline.clone(),
        attached: None,
        buffer: Arc::new(Mutex::new(VecDeque::new())),
        stop: Arc::new(AtomicBool::new(false)),
        collector: None,
    };
    let loaded = preload.0.join().map_err(|_| anyhow::anyhow!("the probe preload thread panicked"));
    let (resolver, base) = match loaded {
        Ok(Preloaded { resolver: Ok(r), base }) => (r, base),
        Ok(Preloaded { resolver: Err(e), .. }) | Err(e) => {
            pipeline.trigger = TriggerStatus::AttachFailed(format!("{e:#}"));
            probes.pipeline = pipeline;
            return probes;
        }
    };
    probes.targets = targets(plan, &resolver, &mut pipeline);
    probe_trace("targets resolved");
    match base.and_then(|b| attach::attach(b, &probes.targets, &mut pipeline)) {
        Ok(a) => {
            probes.collector = Some(event::collect(&a, probes.buffer.clone(), probes.stop.clone(), RING));
            probes.attached = Some(a);
        }
        Err(e) => pipeline.attach_failed.push(("probe object".into(), format!("{e:#}"))),
    }
    probes.pipeline = pipeline;
    probes
}

/// The probe list: the stack's functions that can be traced, the
/// scheduler's callbacks, and the kernel functions that call them.
fn targets(plan: &ProbePlan, btf: &Resolver, pipeline: &mut Pipeline) -> Vec<Target> {
    let callbacks = match discover::callbacks(btf) {
        Ok(c) => c,
        Err(e) => {
            pipeline.attach_failed.push(("bpf_discover".into(), format!("{e:#}")));
            Vec::new()
        }
    };
    pipeline.bpf_discovered = callbacks.len();
    probe_trace("callbacks discovered");
    let mut out: Vec<Target> = Vec::new();
    let add_kernel = |name: &str, out: &mut Vec<Target>| -> Result<(), String> {
        if out.iter().any(|t| t.func.name == name) {
            return Ok(());
        }
        // Whether it is in kallsyms (not inlined away) shows when its
        // kprobe attaches: reading /proc/kallsyms costs seconds under TCG.
        let sig = btf.kernel_func(name).ok_or("no BTF signature (not a kernel function of this build)")?;
        out.push(target(out.len(), name, FuncKind::Kernel, None, sig, None));
        Ok(())
    };
    for name in &plan.stack {
        // A BPF frame's short name is one of the callbacks, probed below.
        if callbacks.iter().any(|c| &c.func == name) {
            pipeline.traceable += 1;
            continue;
        }
        match add_kernel(name, &mut out) {
            Ok(()) => pipeline.traceable += 1,
            Err(why) => pipeline.dropped.push(Dropped { name: name.clone(), caller_of: None, why }),
        }
    }
    for cb in &callbacks {
        let sig = btf.ops_member(&cb.member).unwrap_or_default();
        let kind = FuncKind::BpfCallback { member: cb.member.clone() };
        out.push(target(out.len(), &cb.func, kind, cb.source.clone(), sig, Some(cb.prog_id)));
        for caller in discover::callers(&cb.member) {
            if let Err(why) = add_kernel(caller, &mut out) {
                if !pipeline.dropped.iter().any(|d| d.name == *caller) {
                    let caller_of = Some(cb.member.clone());
                    pipeline.dropped.push(Dropped { name: caller.to_string(), caller_of, why });
                }
            }
        }
    }
    pipeline.after_expand = out.len();
    out
}

fn target(id: usize, name: &str, kind: FuncKind, source: Option<String>, sig: Signature, prog: Option<u32>) -> Target {
    let func = ProbeFunc { id: id as u32, name: name.to_string(), kind, source, params: sig.params.clone() };
    Target { func, sig, prog_id: prog }
}

impl Probes {
    /// Detaches, drains what is left, and picks the triggering task's
    /// events.
    pub fn finish(mut self) -> ProbeTrail {
        let counters = self.attached.as_ref().map(|a| a.counters()).unwrap_or_default();
        // Returns of calls in flight at the exit may still come: a moment,
        // then the last drain (the collector keeps only returns by now).
        std::thread::sleep(std::time::Duration::from_millis(100));
        self.stop.store(true, Ordering::Relaxed);
        if let Some(c) = self.collector.take() {
            let _ = c.join();
        }
        // The probes stay attached: the guest powers off next, and
        // detaching some thirty trampolines one by one cost 1.4 s under
        // TCG, most of the repro VM's extra time after the crash.
        std::mem::forget(self.attached.take());
        let buffer = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|e| e.into_inner()));
        self.pipeline.events_captured = counters.events;
        self.pipeline.unmatched = counters.unmatched;
        self.pipeline.events_lost = counters.lost;
        self.pipeline.events_held = buffer.len() as u64;
        let trigger = buffer.iter().find(|e| e.kind == event::TRIGGER).map(|e| Trigger {
            ts_ns: e.ts,
            cpu: e.cpu,
            task: e.task,
            pid: e.pid,
            comm: e.comm.clone(),
        });
        let (mut events, mut by_cpu) = (Vec::new(), false);
        if let Some(t) = &trigger {
            events = self.select(&buffer, t.ts_ns, |e| self.about(e, t.task));
            // Nothing names the task: the path its CPU took to the exit is
            // the next best thing, and the report says which.
            if events.is_empty() {
                events = self.select(&buffer, t.ts_ns, |e| e.cpu == t.cpu);
                by_cpu = true;
            }
        }
        let funcs = self.targets.into_iter().map(|t| t.func).collect();
        ProbeTrail { pipeline: self.pipeline, funcs, trigger, events, by_cpu }
    }

    /// Whether an event is about `task`: through a `task_struct *`
    /// argument when the function has one, else by the task current when
    /// it fired.
    fn about(&self, e: &event::Raw, task: u64) -> bool {
        let Some(t) = self.targets.get(e.func as usize) else { return false };
        let mut task_args = t.func.params.iter().enumerate().filter(|(_, p)| p.is_task()).map(|(i, _)| i).peekable();
        if task_args.peek().is_none() {
            e.task == task
        } else {
            task_args.any(|i| e.args.get(i) == Some(&task))
        }
    }

    /// The last [`SENT`] probe events `keep` picks.
    /// The events `keep` picks up to the exit (the last [`SENT`] less
    /// [`AFTER`]), then the returns after it of calls still in flight.
    /// Not simply the latest: once the exit is claimed, the kernel's
    /// disable path calls the scheduler's callbacks for every task
    /// (bypass, exit_task), so a task's latest events all postdate the
    /// crash.
    fn select(
        &self,
        buffer: &VecDeque<event::Raw>,
        exit_ns: u64,
        keep: impl Fn(&event::Raw) -> bool,
    ) -> Vec<ProbeEvent> {
        let kept = |e: &&event::Raw| e.kind != event::TRIGGER && keep(e);
        let before: Vec<&event::Raw> = buffer.iter().filter(|e| e.ts <= exit_ns).filter(kept).collect();
        let after = buffer.iter().filter(|e| e.ts > exit_ns && e.kind == event::EXIT).filter(kept).take(AFTER);
        let from = before.len().saturating_sub(SENT - AFTER);
        before[from..]
            .iter()
            .copied()
            .chain(after)
            .map(|e| {
                let nfields = self.targets.get(e.func as usize).map_or(0, |t| t.sig.reads.len());
                let nargs = self.targets.get(e.func as usize).map_or(0, |t| t.func.params.len());
                ProbeEvent {
                    func: e.func,
                    exit: e.kind == event::EXIT,
                    ts_ns: e.ts,
                    cpu: e.cpu,
                    task: e.task,
                    args: e.args[..nargs.min(e.args.len())].to_vec(),
                    fields: e.fields[..nfields.min(e.fields.len())].to_vec(),
                }
            })
            .collect()
    }
}

pub(crate) fn probe_trace(what: &str) {
    static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let t0 = T0.get_or_init(std::time::Instant::now);
    eprintln!("ktstr-probe: {what} at {} ms", t0.elapsed().as_millis());
}
