//! `ktstr`: ktstr's commands outside cargo's namespace. Its `shell` is
//! `cargo ktstr shell`, flags and all (spec 004 names both).

use cargo_ktstr::shell_cmd;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ktstr", version, about = "Test harness for Linux sched_ext schedulers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a test's VM (topology, memory, scheduler, include files) and get a shell in it
    ///
    /// The same command as `cargo ktstr shell` (see its --help): builds
    /// the workspace's test binaries, finds the #[ktstr_test] named by
    /// --test, boots its VM with the scheduler attached, and gives you a
    /// busybox shell in it. `exit` or Ctrl-D powers it off.
    ///
    /// Examples:
    ///   ktstr shell --test boots_and_schedules
    ///   ktstr shell --test boots_and_schedules --dmesg
    ///   ktstr shell --test boots_and_schedules --include sched.json   (at /include/sched.json)
    #[command(verbatim_doc_comment)]
    Shell(shell_cmd::ShellArgs),
}

fn main() {
    ktstr::init_tracing();
    let res = match Cli::parse().cmd {
        Cmd::Shell(args) => shell_cmd::run(args),
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
