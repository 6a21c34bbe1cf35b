//! Scheduler lifecycle in the guest: spawn, forward its output, wait for
//! the kernel to report it attached, notice if it dies, stop it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::reporter::Reporter;
use crate::channel::{GuestMessage, GuestStep, LogStream, Stage};
use crate::wire::message::NO_SCHED_EXT;
use crate::wire::plan::SchedulerLaunch;

const SCHED_EXT_STATE: &str = "/sys/kernel/sched_ext/state";
const SCHED_EXT_OPS: &str = "/sys/kernel/sched_ext/root/ops";
/// The kernel's debug dump, as trace lines, whenever it ends a scheduler
/// (or sysrq `D` asks): switched on before the scheduler starts.
const SCHED_EXT_DUMP_EVENT: &str = "/sys/kernel/tracing/events/sched_ext/sched_ext_dump/enable";
const TRACE: &str = "/sys/kernel/tracing/trace";
/// The most of the trace buffer sent to the host.
const TRACE_MAX: u64 = 8 << 20;
/// How long a scheduler the kernel has ended may take to print its exit
/// report and exit before it is reported as ended anyway.
const EXIT_GRACE: Duration = Duration::from_secs(5);

pub(crate) struct RunningScheduler {
    child: Arc<Mutex<Child>>,
    pid: u32,
    forwarders: Vec<std::thread::JoinHandle<()>>,
}

pub fn start(launch: &SchedulerLaunch, reporter: &Reporter, timeout: Duration) -> anyhow::Result<RunningScheduler> {
    anyhow::ensure!(
        std::path::Path::new("/sys/kernel/sched_ext").exists(),
        "{NO_SCHED_EXT} (/sys/kernel/sched_ext is missing): boot a kernel built with CONFIG_SCHED_CLASS_EXT=y, \
         e.g. the one `cargo ktstr kernel fetch` downloads"
    );
    if let Err(e) = std::fs::write(SCHED_EXT_DUMP_EVENT, "1") {
        reporter
            .error(GuestStep::Trace, format!("enabling the sched_ext_dump trace event ({SCHED_EXT_DUMP_EVENT}): {e}"));
    }
    let started = Instant::now();
    let mut child = Command::new(&launch.path)
        .args(&launch.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start scheduler {}: {e}", launch.path))?;
    reporter.send(&GuestMessage::Stage(Stage::SchedulerStarted { pid: child.id() }));
    let forwarders = vec![
        forward(child.stdout.take().unwrap(), LogStream::Stdout, *reporter),
        forward(child.stderr.take().unwrap(), LogStream::Stderr, *reporter),
    ];
    let pid = child.id();
    let mut sched = RunningScheduler { child: Arc::new(Mutex::new(child)), pid, forwarders };
    loop {
        if let Some(ops) = attached_ops(launch.ops_name.as_deref()) {
            let after_ms = started.elapsed().as_millis() as u64;
            reporter.send(&GuestMessage::Stage(Stage::SchedulerAttached { ops, after_ms }));
            return Ok(sched);
        }
        let exited = sched.child().try_wait()?;
        if let Some(status) = exited {
            sched.join_forwarders();
            reporter.send(&GuestMessage::SchedulerExited {
                status: status.to_string(),
                during_payload: false,
                at_ms: None,
            });
            anyhow::bail!("scheduler {} exited before attaching ({status})", launch.name);
        }
        if started.elapsed() > timeout {
            let state = std::fs::read_to_string(SCHED_EXT_STATE).unwrap_or_default();
            sched.stop();
            anyhow::bail!(
                "scheduler {} did not attach within {}s (sched_ext state: `{}`)",
                launch.name,
                timeout.as_secs(),
                state.trim()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `Some(ops name)` once sched_ext is enabled with the expected ops.
fn attached_ops(want: Option<&str>) -> Option<String> {
    let state = std::fs::read_to_string(SCHED_EXT_STATE).ok()?;
    if state.trim() != "enabled" {
        return None;
    }
    let ops = std::fs::read_to_string(SCHED_EXT_OPS).ok()?.trim().to_string();
    // scx_utils registers `<name>_<version>_<target>...`: match the name.
    let matches = |w: &str| ops == w || ops.strip_prefix(w).is_some_and(|rest| rest.starts_with('_'));
    want.is_none_or(matches).then_some(ops)
}

fn forward(pipe: impl Read + Send + 'static, stream: LogStream, reporter: Reporter) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf).map(|n| n > 0).unwrap_or(false) {
            let line = String::from_utf8_lossy(&buf).trim_end_matches('\n').to_string();
            reporter.send(&GuestMessage::SchedulerOutput { stream, line });
            buf.clear();
        }
    })
}

impl RunningScheduler {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches the scheduler while the payload runs, so that its death is
    /// reported when it happens, timed from `payload_start`.
    pub fn watch(&self, reporter: Reporter, payload_start: Instant) -> DeathWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let (child, flag) = (self.child.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut left_at: Option<Instant> = None;
            while !flag.load(Ordering::Relaxed) {
                let exited = child.lock().unwrap_or_else(|e| e.into_inner()).try_wait().ok().flatten();
                if left_at.is_none() && attached_ops(None).is_none() {
                    left_at = Some(Instant::now());
                }
                let status = match (exited, left_at) {
                    (Some(status), _) => status.to_string(),
                    (None, Some(t)) if t.elapsed() > EXIT_GRACE => {
                        format!(
                            "still running {}s after the kernel ended its sched_ext scheduler",
                            EXIT_GRACE.as_secs()
                        )
                    }
                    _ => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                };
                let at = left_at.unwrap_or_else(Instant::now).saturating_duration_since(payload_start);
                report_death(&reporter, status, at);
                return true;
            }
            false
        });
        DeathWatch { stop, handle }
    }

    /// After the payload: reports a death the watch did not (it stopped
    /// first, or there was none), giving a scheduler the kernel has
    /// already ended a moment to exit.
    /// True if the scheduler died.
    pub(crate) fn check_alive_after_payload(
        &mut self,
        reporter: &Reporter,
        watch: DeathWatch,
        payload_start: Instant,
    ) -> bool {
        if watch.finish() {
            return true;
        }
        let deadline = Instant::now() + EXIT_GRACE;
        while attached_ops(None).is_none() && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child().try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let exited = self.child().try_wait().ok().flatten();
        if let Some(status) = &exited {
            report_death(reporter, status.to_string(), payload_start.elapsed());
        }
        exited.is_some()
    }

    /// SIGTERM, a grace period for its exit report, then SIGKILL.
    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child().try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child().kill();
        let _ = self.child().wait();
        self.join_forwarders();
    }

    fn join_forwarders(&mut self) {
        for f in self.forwarders.drain(..) {
            let _ = f.join();
        }
    }
}

/// The watcher of [`RunningScheduler::watch`].
pub(crate) struct DeathWatch {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<bool>,
}

impl DeathWatch {
    /// Stops watching; true if it reported a death.
    pub fn finish(self) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(false)
    }
}

/// The death, then the kernel's dump as traced (the dump is complete by
/// the time sched_ext has left `enabled`).
fn report_death(reporter: &Reporter, status: String, at: Duration) {
    reporter.send(&GuestMessage::SchedulerExited { status, during_payload: true, at_ms: Some(at.as_millis() as u64) });
    send_sched_ext_dump(reporter);
}

/// The trace buffer (only the sched_ext_dump event is on) to the host.
pub(crate) fn send_sched_ext_dump(reporter: &Reporter) {
    use std::io::Read as _;
    let mut text = String::new();
    if let Ok(f) = std::fs::File::open(TRACE) {
        let _ = f.take(TRACE_MAX).read_to_string(&mut text);
    }
    if text.lines().any(|l| !l.starts_with('#')) {
        reporter.send(&GuestMessage::SchedExtDumpTrace { text });
    }
}

/// Before the VM's wall-clock limit kills a payload that never returns,
/// asks the kernel for a dump on demand (sysrq `D`: the scheduler keeps
/// running) and sends it, so a hang comes with the scheduler's state.
/// True if the payload was still running.
pub(crate) fn dump_if_hung(reporter: &Reporter, done: &AtomicBool, after: Duration) -> bool {
    std::thread::sleep(after);
    if done.load(Ordering::Relaxed) {
        return false;
    }
    if let Err(e) = std::fs::write("/proc/sysrq-trigger", "D") {
        reporter.error(
            GuestStep::Hang,
            format!("payload still running after {}s; sysrq D for a sched_ext dump failed: {e}", after.as_secs()),
        );
        return true;
    }
    // The dump is written from a work item; give it a moment.
    std::thread::sleep(Duration::from_secs(1));
    reporter.error(
        GuestStep::Hang,
        format!(
            "payload still running {}s after it started: took a sched_ext dump on demand (sysrq D) before the VM limit",
            after.as_secs()
        ),
    );
    send_sched_ext_dump(reporter);
    true
}
