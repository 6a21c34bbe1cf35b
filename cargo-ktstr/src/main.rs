//! `cargo ktstr`: runs ktstr tests and manages guest kernels.

mod doctor_cmd;
mod kernel_cmd;
mod replay_cmd;
mod runs;
mod setup_cmd;
mod setup_plan;
mod test_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo", bin_name = "cargo")]
enum Cargo {
    Ktstr(Cli),
}

#[derive(clap::Args)]
#[command(version, about = "Test harness for Linux sched_ext schedulers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check this host (QEMU, KVM or TCG and why, clang, nextest, kernel, disk) and say what to fix.
    Doctor(doctor_cmd::DoctorArgs),
    /// Download, list and inspect guest kernels.
    Kernel(kernel_cmd::KernelArgs),
    /// List what failed in the last `cargo ktstr test` run, or run it again (--exec).
    Replay(replay_cmd::ReplayArgs),
    /// Install the Debian packages ktstr needs on this host (QEMU 10, clang-19, ...).
    Setup(setup_cmd::SetupArgs),
    /// Run ktstr tests with cargo nextest (fetching a kernel if none is cached).
    Test(test_cmd::TestArgs),
}

fn main() {
    let Cargo::Ktstr(cli) = Cargo::parse();
    let res = match cli.cmd {
        Cmd::Doctor(args) => doctor_cmd::run(args),
        Cmd::Kernel(args) => kernel_cmd::run(args),
        Cmd::Replay(args) => replay_cmd::run(args),
        Cmd::Setup(args) => setup_cmd::run(args),
        Cmd::Test(args) => test_cmd::run(args),
    };
    // The chain of causes in words; a stack backtrace (RUST_BACKTRACE)
    // would bury them, and says nothing a user can act on.
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
