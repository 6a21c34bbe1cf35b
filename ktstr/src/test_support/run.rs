//! Host side of one `#[ktstr_test]`: kernel → initramfs → VM → outcome →
//! report. Each step's result is handed to the next; any failure becomes a
//! [`KtstrFailure`] that says how far the run got.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::entry::KtstrTestEntry;
use super::prepare::{keep_run_dir, prepare, Purpose};
use crate::artifacts::{self, Artifacts, DumpSource, Variant};
use crate::judge::{judge, Verdict};
use crate::kernel::{self, KernelImage};
use crate::monitor::Monitor;
use crate::outcome::{RunOutcome, StageReached};
use crate::probe::ProbePlan;
use crate::report::{self, Picture, ReportHeader};
use crate::repro;
use crate::vm::{self, Accel, VmSpec};

pub use super::options::RunOptions;

/// Where a failed run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailedAt {
    /// A host step before any VM booted (`kernel lookup`, `scheduler
    /// binary`, `initramfs`, ...).
    Setup(&'static str),
    /// The furthest stage the guest reached.
    Vm(StageReached),
}

impl std::fmt::Display for FailedAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailedAt::Setup(step) => write!(f, "{step} (no VM was booted)"),
            FailedAt::Vm(stage) => write!(f, "{stage}"),
        }
    }
}

/// Compares with the words of the report's `stage:` line.
impl PartialEq<&str> for FailedAt {
    fn eq(&self, other: &&str) -> bool {
        match self {
            FailedAt::Setup(step) => other.strip_suffix(" (no VM was booted)") == Some(*step),
            FailedAt::Vm(stage) => stage.to_string().as_str() == *other,
        }
    }
}

/// A failed run: where it stopped, why, and the rendered report.
#[derive(Debug)]
pub struct KtstrFailure {
    /// Where the run stopped; in words, the report's `stage:` line.
    pub stage: FailedAt,
    /// The report's detail lines (the verdict's reasons, or the set-up
    /// step's error).
    pub reasons: Vec<String>,
    pub report: String,
    /// The VM's outcome, when a VM booted, and its verdict.
    pub outcome: Option<Box<RunOutcome>>,
    pub verdict: Option<Box<Verdict>>,
    /// Run directory kept for inspection (console log, channel, initrd).
    pub run_dir: Option<PathBuf>,
    /// The auto-repro VM's outcome, when one ran.
    pub repro: Option<Box<RunOutcome>>,
}

/// Runs a test in a VM and panics with the full report if it fails (or,
/// for `expect_err` tests, if it does not fail as pinned).
pub fn run_ktstr_test(entry: &KtstrTestEntry) {
    // The kernel is looked up once: the artifacts are named after the
    // release the run boots.
    let kernel = kernel::resolve(None);
    let artifacts = kernel.as_ref().ok().map(|k| artifacts_for(entry, &RunOptions::default(), k));
    if let Some((a, _)) = &artifacts {
        a.clear();
    }
    let res = run_on(entry, &RunOptions::default(), kernel);
    if let Some((a, v)) = &artifacts {
        record(a, &v.borrow(), entry, &res);
    }
    if entry.expect_err {
        return expect_failure(entry, res);
    }
    if let Ok(o) = &res {
        // One line per pass, shown by `--no-capture` runs.
        eprintln!("{}", report::render_pass(&header(entry), o));
    }
    if let Err(f) = res {
        eprintln!("{}", f.report);
        if let Some(dir) = &f.run_dir {
            eprintln!("run directory kept: {}", dir.display());
        }
        if let Some((a, _)) = &artifacts {
            for p in [a.dump_path(), a.repro_dump_path()].iter().filter(|p| p.exists()) {
                eprintln!("failure dump: {}", p.display());
            }
        }
        panic!(
            "ktstr_test '{}' failed: {}",
            entry.full_name(),
            f.reasons.first().map(String::as_str).unwrap_or("see report")
        );
    }
}

/// The variant of `entry` as `opts` run it, on the kernel it will get.
fn artifacts_for(entry: &KtstrTestEntry, opts: &RunOptions, kernel: &KernelImage) -> (Artifacts, OwnedVariant) {
    let extra: Vec<String> = match &opts.extra_sched_args {
        Some(args) => args.clone(),
        None => entry.extra_sched_args.iter().map(|a| a.to_string()).collect(),
    };
    let v = OwnedVariant {
        test: entry.full_name(),
        scheduler: entry.scheduler.map(|s| s.name),
        sched_args: entry
            .scheduler
            .map(|s| s.args.iter().map(|a| a.to_string()).chain(extra).collect())
            .unwrap_or_default(),
        topology: entry.topology.to_string(),
        kernel_release: kernel.release.clone(),
        kernel_image: kernel.vmlinuz.clone(),
    };
    (Artifacts::new(&v.borrow()), v)
}

struct OwnedVariant {
    test: String,
    scheduler: Option<&'static str>,
    sched_args: Vec<String>,
    topology: String,
    kernel_release: String,
    kernel_image: PathBuf,
}

impl OwnedVariant {
    fn borrow(&self) -> Variant<'_> {
        Variant {
            test: &self.test,
            scheduler: self.scheduler,
            sched_args: &self.sched_args,
            topology: &self.topology,
            kernel_release: &self.kernel_release,
            kernel_image: Some(&self.kernel_image),
        }
    }
}

/// Writes the stats sidecar of a run that reached a VM, its picture (trace
/// and HTML page) and, if it failed, its failure dump. A test that pins a
/// failure still gets them (the sidecar says it was expected). Trouble
/// writing is a warning: the verdict stands.
fn record(a: &Artifacts, v: &Variant, entry: &KtstrTestEntry, res: &Result<RunOutcome, KtstrFailure>) {
    let Some((outcome, verdict, stage)) = judged(res) else { return };
    let verdict = verdict.cloned().unwrap_or_default();
    let mut written =
        a.write_stats(v, outcome, &verdict, entry.expect_err).and_then(|doc| picture(a, entry, &doc, res));
    if !verdict.passed() {
        written = written.and_then(|_| a.write_failure_dump(v, &DumpSource::of(outcome, &stage), false));
    }
    if let Err(KtstrFailure { repro: Some(r), .. }) = res {
        let stage = r.stage.to_string();
        written = written.and_then(|_| a.write_failure_dump(v, &DumpSource::of(r, &stage), true));
    }
    if let Err(e) = written {
        eprintln!("ktstr: warning: writing artifacts under {}: {e:#}", a.dir.display());
    }
}

/// The outcome of a run that reached a VM, its verdict (`None`: it passed)
/// and the stage it failed at.
fn judged(res: &Result<RunOutcome, KtstrFailure>) -> Option<(&RunOutcome, Option<&Verdict>, String)> {
    match res {
        Ok(o) => Some((o, None, String::new())),
        Err(KtstrFailure { outcome: Some(o), verdict: Some(v), stage, .. }) => {
            Some((o.as_ref(), Some(v.as_ref()), stage.to_string()))
        }
        Err(_) => None,
    }
}

/// The run's trace and HTML page, drawn from its sidecar, the report as
/// printed and auto-repro's trail.
fn picture(
    a: &Artifacts,
    entry: &KtstrTestEntry,
    doc: &crate::wire::records::StatsSidecar,
    res: &Result<RunOutcome, KtstrFailure>,
) -> anyhow::Result<()> {
    let h = header(entry);
    let (text, trail) = match res {
        Ok(o) => (report::render_pass(&h, o), None),
        Err(f) => (f.report.clone(), f.repro.as_ref().and_then(|r| r.probe_trail.as_ref())),
    };
    a.write_picture(&Picture { title: &h.id(), run: doc, report: &text, trail })
}

/// A regression test passes when the run fails the way it pins: in a VM
/// (a failure before boot is not the pinned bug) and, with matchers, with
/// the scheduler error text they describe.
fn expect_failure(entry: &KtstrTestEntry, res: Result<RunOutcome, KtstrFailure>) {
    let f = match res {
        Ok(o) => panic!(
            "ktstr_test '{}' passed, but it has expect_err = true: the failure it pins did not happen \
             (kernel {}). If the bug was fixed, delete or update the regression test.",
            entry.full_name(),
            o.kernel_release.as_deref().unwrap_or("?")
        ),
        Err(f) => f,
    };
    let Some(outcome) = &f.outcome else {
        eprintln!("{}", f.report);
        panic!(
            "ktstr_test '{}' expects a failure, but it failed before any VM ran: {}",
            entry.full_name(),
            f.reasons.join("; ")
        );
    };
    let misses = entry.expect_scx_bpf_error.misses(&outcome.error_corpus());
    if !misses.is_empty() {
        eprintln!("{}", f.report);
        panic!("ktstr_test '{}' failed, but not as pinned:\n{}", entry.full_name(), misses.join("\n"));
    }
    eprintln!(
        "{} failed as expected (expect_err): {}",
        header(entry).id(),
        f.reasons.first().map(String::as_str).unwrap_or("")
    );
}

/// Runs a test in a VM and returns its outcome or its failure, leaving the
/// run's picture (trace and HTML page, see [`Artifacts::html_path`]) in its
/// run directory. Its stats sidecar and failure dump are `#[test]` runs'
/// only: they are what `cargo ktstr test` lists as failed and replays, and
/// a caller of this judges the outcome itself (often a failure it wants).
pub fn run_ktstr_test_with(entry: &KtstrTestEntry, opts: &RunOptions) -> Result<RunOutcome, KtstrFailure> {
    let kernel = kernel::resolve(opts.kernel.as_deref());
    let artifacts = kernel.as_ref().ok().map(|k| artifacts_for(entry, opts, k));
    if let Some((a, _)) = &artifacts {
        a.clear_picture();
    }
    let res = run_on(entry, opts, kernel);
    if let (Some((a, v)), Some((o, verdict, _))) = (&artifacts, judged(&res)) {
        let doc = artifacts::sidecar(&v.borrow(), o, &verdict.cloned().unwrap_or_default(), entry.expect_err);
        if let Err(e) = picture(a, entry, &doc, &res) {
            eprintln!("ktstr: warning: writing the run's picture under {}: {e:#}", a.dir.display());
        }
    }
    res
}

/// Where [`run_ktstr_test_with`] leaves the picture of `entry` run with
/// `opts` (on the kernel `opts` names): the trace is beside the page,
/// [`Artifacts::trace_path`].
pub fn artifacts_of(entry: &KtstrTestEntry, opts: &RunOptions) -> anyhow::Result<Artifacts> {
    let k = kernel::resolve(opts.kernel.as_deref())?;
    Ok(artifacts_for(entry, opts, &k).0)
}

/// The run on `kernel`, as looked up by the caller: resolve, prepare, run
/// the VM, fold, judge, render; each once, in that order.
fn run_on(
    entry: &KtstrTestEntry,
    opts: &RunOptions,
    kernel: Result<KernelImage, kernel::KernelError>,
) -> Result<RunOutcome, KtstrFailure> {
    let header = header(entry);
    let setup_fail = |stage: &'static str, err: anyhow::Error| {
        // The host's own trouble leads, labelled, before the error itself
        // (unless the error is nothing but that trouble).
        let fault = vm::host_fault(&err).map(|cause| format!("{}{cause}", crate::judge::HARNESS_FAULT));
        let only_fault = fault.is_some() && err.downcast_ref::<vm::HostFault>().is_some();
        let reasons: Vec<String> = fault.into_iter().chain((!only_fault).then(|| format!("{err:#}"))).collect();
        KtstrFailure {
            stage: FailedAt::Setup(stage),
            report: report::render_setup_failure(&header, stage, &reasons.join("\n")),
            reasons,
            outcome: None,
            verdict: None,
            run_dir: None,
            repro: None,
        }
    };
    let kernel = kernel.map_err(|e| setup_fail("kernel lookup", e.into()))?;
    let spec = prepare(entry, opts, &kernel, Purpose::Test).map_err(|(stage, e)| setup_fail(stage, e))?;
    // The monitor reads struct layouts from the BTF of the image booted.
    let mut monitor = opts.monitored(false).then(|| Monitor::new(&spec.kernel, entry.topology.cpus()));
    let vm_out = match monitor.as_mut() {
        Some(m) => run_vm(&spec, m),
        None => run_vm(&spec, &mut vm::NoObserver),
    }
    .map_err(|e| setup_fail("starting QEMU", e))?;
    // Fold what the VM left, then judge it once against the thresholds in
    // force; everything after reads the verdict.
    let mut outcome = RunOutcome::from_vm(vm_out);
    outcome.monitor = monitor.map(Monitor::finish);
    let verdict = judge(&outcome, &entry.checks());
    if verdict.passed() {
        if report::env_flag("KTSTR_KEEP_RUN_DIR") {
            keep_run_dir(&spec.run_dir);
            eprintln!("ktstr: run directory kept: {}", spec.run_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&spec.run_dir);
        }
        return Ok(outcome);
    }
    let wanted = opts.auto_repro.unwrap_or(entry.auto_repro) && !entry.expect_err;
    let plan = repro::plan_for(&outcome);
    match (&plan, wanted) {
        (None, _) => tracing::debug!("auto-repro: not a scheduler crash or exit, nothing to replay"),
        (Some(_), false) if entry.expect_err => tracing::debug!("auto-repro: skipped, the test pins this failure"),
        (Some(_), false) => tracing::debug!("auto-repro: off for this test (auto_repro = false)"),
        (Some(p), true) => tracing::debug!(stack = ?p.stack, "auto-repro: replaying in a second VM"),
    }
    let repro = plan.filter(|_| wanted).map(|mut plan| {
        plan.break_trigger = opts.break_repro_trigger;
        run_repro(entry, opts, &kernel, plan)
    });
    // Rendered once, at the end, from the typed results of every stage.
    let mut report = report::render(&header, &outcome, &verdict, report::verbose_requested());
    if let Some(r) = &repro {
        let run = r.outcome.as_ref().map_err(String::as_str);
        report.push_str(&repro::render(&outcome, run, r.wall, r.kernel_lines.as_deref()));
    }
    let repro_outcome = repro.and_then(|r| r.outcome.ok());
    keep_run_dir(&spec.run_dir);
    Err(KtstrFailure {
        stage: FailedAt::Vm(outcome.stage),
        report,
        reasons: verdict.lines(),
        outcome: Some(Box::new(outcome)),
        verdict: Some(Box::new(verdict)),
        run_dir: Some(spec.run_dir),
        repro: repro_outcome.map(Box::new),
    })
}

/// What auto-repro's second VM gave: its outcome (or why it could not
/// run), how long it took, and the note on kernel source lines.
struct ReproRun {
    outcome: Result<RunOutcome, String>,
    wall: Duration,
    kernel_lines: Option<String>,
}

/// The second VM: the same test, kernel and map writes, in repro mode
/// with probes.
fn run_repro(entry: &KtstrTestEntry, opts: &RunOptions, kernel: &KernelImage, plan: ProbePlan) -> ReproRun {
    let started = Instant::now();
    let run = prepare(entry, opts, kernel, Purpose::Repro(plan))
        .map_err(|(stage, e)| format!("{stage}: {e:#}"))
        .and_then(|spec| {
            // Verbose mode shows the repro VM as it runs: it takes a while.
            let live = report::verbose_requested().then(|| {
                eprintln!("ktstr: auto-repro VM console (live):");
                vm::follow_console(&spec.run_dir, "  repro console | ")
            });
            let out = run_vm(&spec, &mut vm::NoObserver).map_err(|e| format!("starting QEMU: {e:#}"));
            drop(live);
            let _ = std::fs::remove_dir_all(&spec.run_dir);
            out
        })
        .map(RunOutcome::from_vm);
    match run {
        Ok(mut r) => {
            let wall = started.elapsed();
            if let Some(p) = r.probe_trail.as_ref().map(|t| &t.pipeline) {
                for d in &p.dropped {
                    tracing::debug!("auto-repro: probe target {} dropped: {}", d.name, d.reason());
                }
                for (name, why) in &p.attach_failed {
                    tracing::debug!("auto-repro: {name} not attached: {why}");
                }
                tracing::debug!(
                    trigger = ?p.trigger,
                    kprobes = p.kprobes_attached,
                    fentry = p.fentry_attached,
                    fexit = p.fexit_attached,
                    events = p.events_captured,
                    setup_ms = p.setup_ms,
                    "auto-repro: probes"
                );
            }
            let debug_vmlinux = kernel.debug_vmlinux();
            let note = r.probe_trail.as_mut().and_then(|t| repro::add_kernel_sources(t, debug_vmlinux.as_deref()));
            ReproRun { outcome: Ok(r), wall, kernel_lines: note }
        }
        Err(why) => ReproRun { outcome: Err(why), wall: started.elapsed(), kernel_lines: None },
    }
}

/// A VM run, rerun once after a fault that is not the guest's and that a
/// rerun can get past: QEMU killed from outside (the host's OOM killer, a
/// user), or QEMU's TCG running stale code (see
/// [`crate::crash::KernelCrash::stale_int3`]), which would otherwise fail
/// a test at random.
fn run_vm(spec: &VmSpec, observer: &mut dyn vm::VmObserver) -> anyhow::Result<vm::VmOutput> {
    let tcg = spec.accel != Accel::Kvm;
    vm::run_retrying(spec, observer, |out| {
        if let vm::VmExit::Killed { signal } = out.exit {
            return Some(vm::killed_from_outside(signal));
        }
        let k = crate::crash::kernel_crash(&out.console).filter(|_| tcg)?;
        k.stale_int3().map(|s| format!("the guest kernel hit QEMU TCG's stale-code fault: {s}"))
    })
}

fn header(entry: &KtstrTestEntry) -> ReportHeader<'static> {
    ReportHeader {
        test: entry.full_name(),
        scheduler: entry.scheduler.map(|s| s.name),
        topology: entry.topology,
        preset: entry.preset.map(|p| p.name),
    }
}
