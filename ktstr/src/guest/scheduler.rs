//! Scheduler lifecycle in the guest: spawn, forward its output, wait for
//! the kernel to report it attached, notice if it dies, stop it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::reporter::Reporter;
use crate::channel::{GuestMessage, LogStream, Stage};
use crate::plan::SchedulerLaunch;

const SCHED_EXT_STATE: &str = "/sys/kernel/sched_ext/state";
const SCHED_EXT_OPS: &str = "/sys/kernel/sched_ext/root/ops";

pub struct RunningScheduler {
    child: Child,
    forwarders: Vec<std::thread::JoinHandle<()>>,
}

pub fn start(launch: &SchedulerLaunch, reporter: &Reporter, timeout: Duration) -> anyhow::Result<RunningScheduler> {
    anyhow::ensure!(
        std::path::Path::new("/sys/kernel/sched_ext").exists(),
        "this kernel has no sched_ext (/sys/kernel/sched_ext is missing): boot a kernel built with \
         CONFIG_SCHED_CLASS_EXT=y, e.g. the one `cargo ktstr kernel fetch` downloads"
    );
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
    let mut sched = RunningScheduler { child, forwarders };
    loop {
        if let Some(ops) = attached_ops(launch.ops_name.as_deref()) {
            let after_ms = started.elapsed().as_millis() as u64;
            reporter.send(&GuestMessage::Stage(Stage::SchedulerAttached { ops, after_ms }));
            return Ok(sched);
        }
        if let Some(status) = sched.child.try_wait()? {
            sched.join_forwarders();
            reporter.send(&GuestMessage::SchedulerExited { status: status.to_string(), during_payload: false });
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
        self.child.id()
    }

    /// Reports the scheduler's death if it happened during the payload.
    /// A scheduler the kernel has already ended (sched_ext no longer
    /// `enabled`) is given a moment to print its exit report and go.
    pub fn check_alive_after_payload(&mut self, reporter: &Reporter) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while attached_ops(None).is_none() && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            self.join_forwarders();
            reporter.send(&GuestMessage::SchedulerExited { status: status.to_string(), during_payload: true });
        }
    }

    /// SIGTERM, a grace period for its exit report, then SIGKILL.
    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_forwarders();
    }

    fn join_forwarders(&mut self) {
        for f in self.forwarders.drain(..) {
            let _ = f.join();
        }
    }
}
