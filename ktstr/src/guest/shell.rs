//! `cargo ktstr shell` inside the guest: busybox's shell on the host's
//! terminal (the virtio console the plan names), with the filesystems
//! mounted and the scheduler running as in a test run. When the shell
//! exits, the scheduler is stopped and the guest powers off.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use super::reporter::Reporter;
use super::scheduler::RunningScheduler;
use crate::channel::GuestStep;
use crate::wire::paths::BUSYBOX;
use crate::wire::plan::{GuestPlan, ShellPlan};

/// Where the shell looks for commands: busybox's applet links, then the
/// scheduler binaries, so the user can run one by name.
const PATH: &str = "/bin:/sbin:/usr/bin:/usr/sbin:/ktstr/bin";

/// Runs the shell session to its end and returns the exit code to power
/// off with: 0 once a shell ran, whatever its last status (that is how
/// the user ended it), else the reason reported on the channel.
///
/// `sched` is the scheduler as started, or why it did not start (then
/// the shell runs anyway, under the kernel's default scheduler: a
/// scheduler that fails to attach is one more thing to poke at).
pub fn session(
    plan: &GuestPlan,
    shell: &ShellPlan,
    sched: Result<Option<RunningScheduler>, String>,
    reporter: Reporter,
) -> i32 {
    // The host hears of a scheduler that dies under the user's hands.
    let watch = sched.as_ref().ok().and_then(Option::as_ref).map(|s| s.watch(reporter, Instant::now()));
    let code = match run(plan, shell, &sched) {
        Ok(()) => 0,
        Err(e) => reporter.fail(GuestStep::Shell, format!("{e:#}")),
    };
    if let Some(w) = watch {
        w.finish();
    }
    if let Ok(Some(s)) = sched {
        s.stop();
    }
    code
}

fn run(plan: &GuestPlan, shell: &ShellPlan, sched: &Result<Option<RunningScheduler>, String>) -> anyhow::Result<()> {
    let tty = open_tty(&shell.tty)?;
    if shell.rows > 0 && shell.cols > 0 {
        set_window_size(&tty, shell.rows, shell.cols);
    }
    let pid = sched.as_ref().ok().and_then(Option::as_ref).map(|s| s.pid());
    (&tty).write_all(banner(plan, sched.as_ref().map(|s| s.is_some()).map_err(|e| e.as_str()), pid).as_bytes())?;
    let _ = std::fs::create_dir_all("/root");
    let mut cmd = Command::new(BUSYBOX);
    cmd.arg("sh")
        .env_clear()
        .envs([("PATH", PATH), ("HOME", "/root"), ("SHELL", "/bin/sh")])
        .env("TERM", shell.term.as_deref().unwrap_or("vt100"))
        .env("PS1", format!("[ktstr {}] \\w # ", plan.test_name))
        .env("KTSTR_TEST", &plan.test_name)
        .current_dir("/")
        .stdin(tty.try_clone()?)
        .stdout(tty.try_clone()?)
        .stderr(tty.try_clone()?);
    if let Some(pid) = pid {
        cmd.env("KTSTR_SCHEDULER_PID", pid.to_string());
    }
    // SAFETY: runs in the forked child before exec and calls only
    // async-signal-safe functions (setsid, ioctl). A session of its own
    // with the tty as its controlling terminal gives the shell job
    // control, and Ctrl-C reaches the foreground command, not PID 1.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status =
        cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start {} sh on {}: {e}", BUSYBOX, shell.tty))?.wait()?;
    drop(tty);
    // The shell's exit hung its terminal up: a fresh open writes again.
    if let Ok(tty) = open_tty(&shell.tty) {
        let _ = writeln!(&tty, "ktstr shell: the shell ended ({status}); powering off");
    }
    Ok(())
}

/// The console appears when its driver probes, before init as a rule;
/// waited for briefly all the same.
fn open_tty(path: &str) -> anyhow::Result<File> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => return Ok(f),
            Err(e) if Instant::now() >= deadline => anyhow::bail!("cannot open the shell's console {path}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Without a size a console is 0x0 and line editing guesses 80 columns.
fn set_window_size(tty: &File, rows: u16, cols: u16) {
    let ws = nix::libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    unsafe { nix::libc::ioctl(tty.as_raw_fd(), nix::libc::TIOCSWINSZ, &ws) };
}

/// What the user is looking at, before the first prompt. `attached`:
/// whether a scheduler runs, or why the one asked for did not start.
fn banner(plan: &GuestPlan, attached: Result<bool, &str>, pid: Option<u32>) -> String {
    let cpus = plan.topology.cpus();
    let mut s = format!("\nktstr shell: test {}, topology {} ({cpus} CPUs)\n", plan.test_name, plan.topology);
    let name = plan.scheduler.as_ref().map_or("", |l| l.name.as_str());
    s += &match (attached, pid) {
        (Ok(true), Some(pid)) => format!(
            "scheduler: {name}, attached, pid {pid} ($KTSTR_SCHEDULER_PID); see /sys/kernel/sched_ext/root/ops\n"
        ),
        (Err(why), _) => format!("scheduler: {name} did not start ({why}); the kernel's default scheduler runs\n"),
        _ => "scheduler: none (the test has none): the kernel's default scheduler (EEVDF) runs\n".to_string(),
    };
    s += "mounted: /proc /sys /sys/fs/cgroup (cgroup2) /sys/kernel/tracing /sys/kernel/debug /sys/fs/bpf\n";
    if !plan.include.is_empty() {
        s += &format!("include files: {}\n", plan.include.join(" "));
    }
    s += "`exit` or Ctrl-D powers the VM off.\n\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::plan::SchedulerLaunch;
    use crate::wire::topology::Topology;

    fn plan(scheduler: bool) -> GuestPlan {
        GuestPlan {
            test_name: "t".into(),
            topology: Topology::parse("1n1l2c1t").unwrap(),
            scheduler: scheduler.then(|| SchedulerLaunch {
                name: "scx-ktstr".into(),
                path: "/ktstr/bin/scx-ktstr".into(),
                args: vec![],
                ops_name: None,
            }),
            duration_s: 1,
            attach_timeout_s: 30,
            repro: false,
            hang_dump_after_s: 0,
            map_writes: vec![],
            probes: None,
            monitor: false,
            shell: Some(ShellPlan::default()),
            include: Vec::new(),
        }
    }

    #[test]
    fn banner_says_what_runs() {
        let b = banner(&plan(true), Ok(true), Some(42));
        assert!(b.starts_with("\nktstr shell: test t, topology 1n1l2c1t (2 CPUs)\n"), "{b}");
        assert!(b.contains("scheduler: scx-ktstr, attached, pid 42 ($KTSTR_SCHEDULER_PID)"), "{b}");
        let b = banner(&plan(true), Err("exited before attaching"), None);
        assert!(b.contains("scheduler: scx-ktstr did not start (exited before attaching)"), "{b}");
        let b = banner(&plan(false), Ok(false), None);
        assert!(b.contains("scheduler: none (the test has none)"), "{b}");
    }
}
