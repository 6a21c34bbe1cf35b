//! `cargo ktstr shell` and `ktstr shell`, for real, through a
//! pseudo-terminal as a user would have it: the VM of a #[ktstr_test] with
//! a scheduler boots, the shell's prompt comes, an `--include`d file is in
//! the guest, commands run there and their output comes back, and `exit`
//! (or Ctrl-D) powers the VM off with status 0.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ktstr::prelude::*;

/// The VM the shells boot: 3 CPUs (not the host's 2) and 1 GiB, so that
/// what the guest reports can only have come from the test's attributes.
#[ktstr_test(scheduler = SCX_KTSTR, llcs = 1, cores = 3, threads = 1, memory_mb = 1024)]
#[ignore = "booted by cargo ktstr shell in shell_runs_commands_in_the_tests_vm"]
fn shell_target(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

/// The shell's prompt (PS1 `[ktstr <test>] \w # `).
const PROMPT: &str = "[ktstr shell_target] / # ";
/// Building the workspace's tests may come first, when they are stale.
const BUILD_LIMIT: Duration = Duration::from_secs(480);
/// Boot, and before it the wait for host CPU slots: other VMs (this
/// file's other test, a parallel suite) may hold them for a while.
const BOOT_LIMIT: Duration = Duration::from_secs(300);
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// `cargo ktstr <args>` on the slave side of a new pty, as its
/// controlling terminal; everything it writes is collected.
struct Session {
    child: Child,
    master: File,
    out: Arc<Mutex<Vec<u8>>>,
    /// How much of `out` the expectations have consumed.
    seen: usize,
    reader: Option<std::thread::JoinHandle<()>>,
    finished: bool,
    started: Instant,
}

impl Drop for Session {
    /// A failed expectation leaves the session running: end all of it
    /// (its process group: cargo-ktstr, the test binary, QEMU), or a
    /// stray VM would keep its CPU slots from the runs after it.
    fn drop(&mut self) {
        if !self.finished {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = self.child.wait();
        }
    }
}

impl Session {
    /// `cargo ktstr <args>` on the slave side of a new pty, as its
    /// controlling terminal; everything it writes is collected.
    fn start(args: &[&str]) -> Session {
        Session::start_bin(env!("CARGO_BIN_EXE_cargo-ktstr"), &[&["ktstr"][..], args].concat())
    }

    /// `<bin> <args>` (`cargo-ktstr ktstr ...` or `ktstr ...`) on a new pty.
    fn start_bin(bin: &str, args: &[&str]) -> Session {
        if let Err(e) = ktstr::vm::busybox::find() {
            panic!("the shell test needs busybox on this host: {e:#}");
        }
        let ws = nix::pty::Winsize { ws_row: 40, ws_col: 160, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
        // Not inherited: a session's processes holding the master would
        // keep it from ever hanging up, and the reader from ending.
        nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).unwrap();
        let slave = File::from(pty.slave);
        let mut cmd = Command::new(bin);
        cmd.args(args);
        cmd.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave);
        // SAFETY: between fork and exec; setsid and ioctl only. The pty
        // becomes the session's controlling terminal, as in a real login.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("running cargo-ktstr");
        drop(cmd); // our copies of the slave: reads end once the session's are closed
        let master = File::from(pty.master);
        let out = Arc::new(Mutex::new(Vec::new()));
        let (mut r, sink) = (master.try_clone().unwrap(), out.clone());
        // Ends when no process holds the terminal any more (EIO): the VM too.
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = r.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Session { child, master, out, seen: 0, reader: Some(reader), finished: false, started: Instant::now() }
    }

    fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).replace('\r', "")
    }

    /// Waits for `want` in what came after the last match; returns the
    /// text up to and including it.
    fn expect(&mut self, want: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            {
                let out = self.out.lock().unwrap();
                let text = String::from_utf8_lossy(&out[self.seen..]).into_owned();
                if let Some(at) = text.find(want) {
                    self.seen += at + want.len();
                    eprintln!("[{:5.1}s] {want:?}", self.started.elapsed().as_secs_f64());
                    return text[..at + want.len()].to_string();
                }
            }
            if Instant::now() >= deadline || self.child.try_wait().unwrap().is_some() {
                panic!(
                    "no {want:?} from `cargo ktstr shell` within {limit:?}; the terminal showed:\n{}",
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// Runs `cmd` at the prompt; its output (the lines before the next prompt).
    fn run(&mut self, cmd: &str) -> String {
        self.send(&format!("{cmd}\r"));
        let text = self.expect(PROMPT, COMMAND_LIMIT);
        text.replace('\r', "")
    }

    /// QEMU, the grandchild (cargo-ktstr or ktstr → test binary → QEMU).
    fn qemu_pid(&self) -> u32 {
        let parent_of = |pid: u32| -> Option<(u32, String)> {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            Some((rest.split_whitespace().nth(1)?.parse().ok()?, comm.to_string()))
        };
        let pids = std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok());
        let qemu = pids.into_iter().find(|&pid| match parent_of(pid) {
            Some((ppid, comm)) => {
                comm.starts_with("qemu-system") && parent_of(ppid).map(|p| p.0) == Some(self.child.id())
            }
            None => false,
        });
        qemu.unwrap_or_else(|| panic!("no QEMU under the shell command (pid {})", self.child.id()))
    }

    /// Waits for cargo-ktstr to end and the terminal to be let go of.
    fn finish(mut self) -> std::process::ExitStatus {
        self.finished = true;
        let deadline = Instant::now() + COMMAND_LIMIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                panic!("cargo ktstr shell still running after the shell exited:\n{}", self.transcript());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.reader.take().unwrap().join().unwrap();
        status
    }
}

/// `ktstr shell` (spec 004: "a flag on `cargo ktstr shell` / `ktstr
/// shell`"), with an include file given on the command line.
#[test]
fn shell_runs_commands_in_the_tests_vm() {
    let dir = std::env::temp_dir().join(format!("ktstr-shell-include-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sched-notes.txt");
    std::fs::write(&file, "included from the host: 6c1e\n").unwrap();
    let mut s = Session::start_bin(
        env!("CARGO_BIN_EXE_ktstr"),
        &["shell", "--test", "shell_target", "--include", file.to_str().unwrap()],
    );
    s.expect("ktstr shell: booting shell_target [sched=scx-ktstr] [topo=1n1l3c1t] with 1024 MB", BUILD_LIMIT);
    let banner = s.expect(PROMPT, BOOT_LIMIT).replace('\r', "");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(banner.contains("scheduler: scx-ktstr, attached, pid "), "{banner}");
    assert!(banner.contains("\ninclude files: /include/sched-notes.txt\n"), "{banner}");
    let qemu = s.qemu_pid();

    // The include file, as it was on the host.
    let out = s.run("cat /include/sched-notes.txt");
    assert!(out.contains("\nincluded from the host: 6c1e\n"), "{out}");

    // The scheduler attached, the topology's CPUs, the test's memory.
    let out = s.run(
        "echo \"state=$(cat /sys/kernel/sched_ext/state) cpus=$(nproc) ops=$(cat /sys/kernel/sched_ext/root/ops)\"",
    );
    assert!(out.contains("\nstate=enabled cpus=3 ops=ktstr_"), "{out}");
    let out = s.run("awk '/MemTotal/ {print \"mem_mb=\" int($2/1024)}' /proc/meminfo");
    let mem: u32 = out.split("\nmem_mb=").nth(1).and_then(|m| m.lines().next()?.trim().parse().ok()).expect(&out);
    assert!((800..=1024).contains(&mem), "MemTotal {mem} MB for memory_mb = 1024:\n{out}");
    // The mounts of a test run.
    let out = s.run("awk '$2 == \"/sys/fs/cgroup\" || $2 == \"/sys/kernel/tracing\" {printf \"fs:%s \", $3} END {print \"\"}' /proc/mounts");
    assert!(out.contains("fs:cgroup2 fs:tracefs"), "{out}");
    // The kernel console stays off the terminal without --dmesg.
    s.run("echo ktstr-quiet-marker > /dev/kmsg");

    s.send("exit\r");
    s.expect("ktstr shell: the shell ended (exit status: 0); powering off", COMMAND_LIMIT);
    s.expect("ktstr shell: VM powered off", COMMAND_LIMIT);
    let transcript = s.transcript();
    let status = s.finish();
    assert!(status.success(), "ktstr shell ended with {status}:\n{transcript}");
    assert!(!transcript.contains("] ktstr-quiet-marker"), "kernel console shown without --dmesg:\n{transcript}");
    assert!(!std::path::Path::new(&format!("/proc/{qemu}")).exists(), "QEMU (pid {qemu}) is still running");
}

#[test]
fn shell_dmesg_streams_the_kernel_console_and_ctrl_d_powers_off() {
    let mut s = Session::start(&["shell", "--test", "shell_target", "--dmesg"]);
    s.expect("; kernel console follows", BUILD_LIMIT);
    s.expect("] Run /init as init process", BOOT_LIMIT);
    s.expect(PROMPT, BOOT_LIMIT);
    let qemu = s.qemu_pid();
    // $((6*7)): the typed line (echoed) is not the kernel's line.
    s.send("echo ktstr-marker-$((6*7)) > /dev/kmsg\r");
    s.expect("] ktstr-marker-42", COMMAND_LIMIT);
    s.send("\x04"); // Ctrl-D
    s.expect("ktstr shell: VM powered off", COMMAND_LIMIT);
    let transcript = s.transcript();
    let status = s.finish();
    assert!(status.success(), "cargo ktstr shell ended with {status}:\n{transcript}");
    assert!(transcript.contains("sched_ext: BPF scheduler \"ktstr_"), "no sched_ext lines in:\n{transcript}");
    assert!(!std::path::Path::new(&format!("/proc/{qemu}")).exists(), "QEMU (pid {qemu}) is still running");
}

/// A test name that is in no test binary: refused before any VM, with the
/// command that lists the names.
#[test]
fn shell_refuses_a_test_name_it_cannot_find() {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-ktstr"))
        .args(["ktstr", "shell", "--test", "no_such_test", "-p", "cargo-ktstr"])
        .output()
        .expect("running cargo-ktstr");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "no test named `no_such_test` in cargo-ktstr's test binaries: `cargo nextest list -p cargo-ktstr` lists \
             them (a #[ktstr_test] is listed by its function name)"
        ),
        "{stderr}"
    );
}
