//! `cargo ktstr shell`, the test binary's half. A `#[ktstr_test]` is
//! registered only inside its own test binary, so `cargo ktstr shell`
//! finds the binary that holds the test and runs it as
//!
//! ```text
//! <test binary> --ktstr-shell <test name> [--dmesg] [--include PATH]...   (KTSTR_KERNEL: the kernel)
//! ```
//!
//! Every `#[ktstr_test]` binary checks for that argument before `main`
//! (see [`maybe_run_shell`]), so the test harness never sees it: the
//! binary boots the test's VM (its topology, memory and scheduler, as
//! [`super::run`] prepares it for a test run) with busybox in the image,
//! the guest runs a shell on a console wired to this terminal instead of
//! the test function, and the process exits when the VM has powered off.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use super::entry::{find_test, KtstrTestEntry};
use super::options::RunOptions;
use super::prepare::{keep_run_dir, prepare, Purpose};
use crate::channel::GuestMessage;
use crate::kernel;
use crate::vm::{self, VmExit, VmObserver};
use crate::wire::plan::ShellPlan;

/// The hidden first argument that makes a test binary a shell.
pub const SHELL_ARG: &str = "--ktstr-shell";
/// After the test name: stream the guest kernel's console to the terminal.
pub const DMESG_ARG: &str = "--dmesg";
/// After the test name, with a path: a host file or directory copied into
/// the guest under `/include` (any number of times).
pub const INCLUDE_ARG: &str = "--include";
/// The section linkme fills with a binary's `#[ktstr_test]` entries.
const REGISTRY_SECTION: &str = "linkme_KTSTR_TESTS";

/// How `cargo ktstr shell` asks for a shell.
#[derive(Clone, Debug, Default)]
pub(crate) struct ShellOptions {
    /// Stream the guest kernel's console (dmesg) to the terminal live.
    pub dmesg: bool,
    /// Kernel spec as `--kernel` takes it; default `KTSTR_KERNEL`, then
    /// the newest cached kernel.
    pub kernel: Option<String>,
    /// Host files or directories copied into the guest under `/include`,
    /// beside the test's own `include_files`.
    pub include: Vec<std::path::PathBuf>,
}

/// Called before `main` by every `#[ktstr_test]` binary: with
/// [`SHELL_ARG`] first, runs the shell session and exits with its code
/// (0: the shell ended and the VM powered off; 1: it could not run, and
/// stderr says why; 2: a bad invocation). Otherwise returns at once.
pub(crate) fn maybe_run_shell() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_none_or(|a| a != SHELL_ARG) {
        return;
    }
    let code = match parse_args(&args[1..]) {
        Err(usage) => {
            eprintln!("error: {usage}");
            2
        }
        Ok((name, opts)) => match find_test(&name) {
            None => {
                eprintln!(
                    "error: `{name}` in {} is a plain #[test], not a #[ktstr_test]: \
                     the shell boots a #[ktstr_test]'s VM",
                    std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default()
                );
                2
            }
            Some(entry) => match run_shell(entry, &opts) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            },
        },
    };
    std::process::exit(code)
}

fn parse_args(args: &[OsString]) -> Result<(String, ShellOptions), String> {
    let usage = format!("usage: <test binary> {SHELL_ARG} <test name> [{DMESG_ARG}] [{INCLUDE_ARG} PATH]...");
    let name = args.first().and_then(|a| a.to_str()).ok_or_else(|| usage.clone())?;
    let mut opts = ShellOptions::default();
    let mut rest = args[1..].iter();
    while let Some(a) = rest.next() {
        match a.to_str() {
            Some(DMESG_ARG) => opts.dmesg = true,
            Some(INCLUDE_ARG) => {
                let path = rest.next().ok_or_else(|| format!("{INCLUDE_ARG} needs a path; {usage}"))?;
                opts.include.push(path.into());
            }
            _ => return Err(format!("unexpected argument {a:?}; {usage}")),
        }
    }
    Ok((name.to_string(), opts))
}

/// Whether `binary` has `#[ktstr_test]`s linked in (and so understands
/// [`SHELL_ARG`]); a plain test binary would run its tests instead.
pub fn has_ktstr_tests(binary: &Path) -> anyhow::Result<bool> {
    use object::{Object, ObjectSection};
    let data = std::fs::read(binary)?;
    let elf = object::File::parse(&*data)?;
    Ok(elf.section_by_name(REGISTRY_SECTION).is_some_and(|s| s.size() > 0))
}

/// Boots `entry`'s VM with a shell on this terminal and returns once it
/// has powered off; an error says what went wrong and what to do.
pub(crate) fn run_shell(entry: &KtstrTestEntry, opts: &ShellOptions) -> anyhow::Result<()> {
    entry.topology.validate().map_err(|e| anyhow::anyhow!("topology: {e}"))?;
    let busybox = vm::busybox::find()?;
    let kernel = kernel::resolve(opts.kernel.as_deref())?;
    let (rows, cols) = terminal_size();
    let plan = ShellPlan { tty: vm::SHELL_TTY.into(), rows, cols, term: std::env::var("TERM").ok() };
    let run_opts =
        RunOptions { kernel: opts.kernel.clone(), include_files: opts.include.clone(), ..Default::default() };
    let mut spec = prepare(entry, &run_opts, &kernel, Purpose::Shell { plan, busybox })
        .map_err(|(stage, e)| e.context(format!("preparing the VM ({stage})")))?;
    // Asked for, the console carries everything the kernel logs (sched_ext
    // says `enabled`/`disabled` at info level), at some cost in boot time.
    spec.verbose |= opts.dmesg;
    eprintln!(
        "ktstr shell: booting {} [sched={}] [topo={}] with {} MB on kernel {} ({}){}",
        entry.name,
        entry.scheduler.map_or("eevdf", |s| s.name),
        entry.topology,
        entry.memory_mb,
        kernel.release,
        spec.accel.qemu_arg(),
        if opts.dmesg { "; kernel console follows" } else { "" }
    );
    let out = {
        // QEMU puts the terminal in raw mode and restores it when it
        // exits, but not when it is killed (the wall-clock limit).
        let _terminal = SavedTerminal::save();
        let _dmesg = opts.dmesg.then(|| vm::follow_console_into(&spec.run_dir, "", Box::new(CrLf(std::io::stderr()))));
        vm::run_observed(&spec, &mut SessionWatch::default())?
    };
    let clean = out.messages.iter().any(|m| matches!(m, GuestMessage::Exit { code: 0 }));
    if clean {
        let _ = std::fs::remove_dir_all(&spec.run_dir);
        eprintln!("ktstr shell: VM powered off");
        return Ok(());
    }
    let errors: Vec<String> = out
        .messages
        .iter()
        .filter_map(|m| match m {
            GuestMessage::Error { stage, message } => Some(format!("{stage}: {message}")),
            _ => None,
        })
        .collect();
    let why = match (&out.exit, errors.is_empty()) {
        (VmExit::Exited { .. }, false) => format!("the guest could not run the shell: {}", errors.join("; ")),
        (exit, _) => {
            let tail: Vec<&str> = out.console.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("the VM ended without powering off ({exit}); the kernel console's last lines:\n{}", tail.join("\n"))
        }
    };
    keep_run_dir(&spec.run_dir);
    anyhow::bail!("{why}\nrun directory kept: {}", spec.run_dir.display())
}

/// The terminal's rows and columns, 0 when stdout is not a terminal.
fn terminal_size() -> (u16, u16) {
    let mut ws = nix::libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize to a valid pointer.
    let ok = unsafe { nix::libc::ioctl(nix::libc::STDOUT_FILENO, nix::libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok {
        (ws.ws_row, ws.ws_col)
    } else {
        (0, 0)
    }
}

/// The terminal's settings, put back when dropped.
struct SavedTerminal(Option<nix::sys::termios::Termios>);

impl SavedTerminal {
    fn save() -> SavedTerminal {
        SavedTerminal(nix::sys::termios::tcgetattr(std::io::stdin()).ok())
    }
}

impl Drop for SavedTerminal {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, t);
        }
    }
}

/// Writes `\n` as `\r\n`: while QEMU holds the terminal in raw mode, a
/// bare newline would not return the cursor to the first column.
struct CrLf<W: Write>(W);

impl<W: Write> Write for CrLf<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 8);
        for &b in buf {
            if b == b'\n' {
                out.push(b'\r');
            }
            out.push(b);
        }
        self.0.write_all(&out)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// What the guest says during the session that the user should see at
/// once: its errors, and a scheduler that exits, with the end of its log.
#[derive(Default)]
struct SessionWatch {
    /// The scheduler's last lines of output, for when it exits.
    log: std::collections::VecDeque<String>,
}

/// Lines of the scheduler's log shown when it exits.
const LOG_TAIL: usize = 15;

impl SessionWatch {
    fn say(&self, text: &str) {
        let _ = write!(CrLf(std::io::stderr()), "\nktstr shell: {text}\n");
    }
}

impl VmObserver for SessionWatch {
    fn on_message(&mut self, msg: &GuestMessage, _at: std::time::Duration) {
        match msg {
            GuestMessage::SchedulerOutput { line, .. } => {
                if self.log.len() == LOG_TAIL {
                    self.log.pop_front();
                }
                self.log.push_back(line.clone());
            }
            GuestMessage::Error { stage, message } => self.say(&format!("guest: {stage}: {message}")),
            GuestMessage::SchedulerExited { status, .. } => {
                let log: Vec<&str> = self.log.iter().map(|l| l.as_str()).collect();
                self.say(&format!(
                    "the scheduler exited ({status}); the kernel's default scheduler runs now. Its last lines:\n  {}",
                    log.join("\n  ")
                ));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_name_the_test_and_the_dmesg_flag() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let (name, o) = parse_args(&a(&["my_test", "--dmesg"])).unwrap();
        assert_eq!((name.as_str(), o.dmesg), ("my_test", true));
        assert!(!parse_args(&a(&["my_test"])).unwrap().1.dmesg);
        assert!(parse_args(&a(&[])).unwrap_err().starts_with("usage: "));
        assert!(parse_args(&a(&["t", "--x"])).unwrap_err().contains("unexpected argument \"--x\""));
        let (_, o) = parse_args(&a(&["t", "--include", "/a", "--dmesg", "--include", "b"])).unwrap();
        assert_eq!(o.include, [std::path::PathBuf::from("/a"), "b".into()]);
        assert!(parse_args(&a(&["t", "--include"])).unwrap_err().starts_with("--include needs a path"));
    }

    #[test]
    fn crlf_returns_the_carriage() {
        let mut w = CrLf(Vec::new());
        write!(w, "a\nb\n").unwrap();
        assert_eq!(w.0, b"a\r\nb\r\n");
    }

    #[test]
    fn a_binary_without_ktstr_tests_is_told_apart() {
        // The library's unit tests register no #[ktstr_test].
        assert!(!has_ktstr_tests(&std::env::current_exe().unwrap()).unwrap());
    }
}
