//! `cargo ktstr`: runs ktstr tests and manages guest kernels.

use cargo_ktstr::{archive, doctor_cmd, flake_cmd, kernel_cmd, matrix_cmd, replay_cmd, sched_cmd, shell_cmd, test_cmd};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo", bin_name = "cargo")]
enum Cargo {
    Ktstr(Cli),
}

#[derive(clap::Args)]
#[command(
    version,
    about = "Test harness for Linux sched_ext schedulers",
    after_help = "\
Start here:
  cargo ktstr doctor                     what this host has and lacks, with fixes
  cargo ktstr test                       every #[ktstr_test] in the workspace, each in its own VM
  cargo ktstr replay                     the tests that failed last time, again

Environment:
  KTSTR_KERNEL=7.3|PATH      the guest kernel (as --kernel)
  KTSTR_ACCEL=kvm|tcg        force an accelerator (default: KVM when usable, else TCG)
  RUST_BACKTRACE=1           verbose failures: the guest console in diagnostics, loglevel=7,
                             the auto-repro VM's console live
  KTSTR_VERBOSE=1            the same verbose reports without Rust backtraces
  RUST_LOG=ktstr=debug       host-side tracing: kernel and image choices, QEMU's command line
  KTSTR_CACHE_DIR=DIR        kernels and initramfs images (default ~/.cache/ktstr)
  KTSTR_OUTPUT_DIR=DIR       stats sidecars and failure dumps (default <target>/ktstr)
  KTSTR_SNAPSHOT=0           boot every VM instead of starting it from a snapshot of a booted guest
  KTSTR_SLOT_WAIT_S=SECS     how long a VM waits for free host CPU slots (default 3600)

Troubleshooting: docs/troubleshooting.md (every environment error, with its fix)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bundle the test suite to run on other machines (with `test --archive`)
    ///
    /// Runs `cargo nextest archive` and writes one plain tar holding it and
    /// what a runner needs that cargo does not know about: the kernel the
    /// tests boot (with its debug vmlinux when cached, for kernel source
    /// lines in crash trails), the schedulers installed with `cargo ktstr
    /// sched install`, the shared libraries the binaries load beyond glibc,
    /// this cargo-ktstr and cargo-nextest. A runner needs QEMU and nothing
    /// else of a build machine's: no Rust toolchain, no source tree, no
    /// kernel cache. See docs/ci.md for a CI workflow.
    ///
    /// Examples:
    ///   cargo ktstr archive suite.ktstr.tar
    ///   cargo ktstr archive vm.ktstr.tar -- -p my-sched --test vm_tests
    ///   (on a runner) tar -xf suite.ktstr.tar && ktstr-archive/ktstr test --archive ktstr-archive --partition hash:1/3
    #[command(verbatim_doc_comment)]
    Archive(archive::build::ArchiveArgs),
    /// Check this host (QEMU, KVM or TCG and why, clang, nextest, kernel, disk) and say what to fix.
    Doctor(doctor_cmd::DoctorArgs),
    /// Run chosen tests N times each and count passes, retried passes and failures
    ///
    /// Runs the tests a nextest filterset picks through `cargo nextest run
    /// --stress-count N` with the `ci` profile (one retry), and prints per
    /// test how many runs passed at once, passed only on their retry, and
    /// failed. Exits non-zero if any run needed a retry or failed.
    ///
    /// Examples:
    ///   cargo ktstr flake --runs 100 'test(=boots_and_schedules) | test(=crash_regression)'
    ///   cargo ktstr flake --runs 20 'package(scx-ktstr) & test(/gate/)'
    #[command(verbatim_doc_comment)]
    Flake(flake_cmd::FlakeArgs),
    /// Download, list and inspect guest kernels.
    Kernel(kernel_cmd::KernelArgs),
    /// Print the last scheduler × scenario matrix run as a table (--markdown FILE: also write it)
    ///
    /// Reads the stats sidecars the `scx-matrix` package's tests left in the
    /// last run's directory: scx's release-check schedulers × the canned
    /// scenario catalogue × two topologies. Each cell is pass; FAIL (the
    /// scheduler's fault), config (it refused its arguments or config before
    /// attaching) or harness (boot, QEMU, the channel: not counted against
    /// the scheduler), each with a numbered note holding the report's first
    /// detail line; or skip, with why (not installed, not run).
    ///
    /// Examples:
    ///   cargo ktstr sched install --matrix
    ///   cargo ktstr test -- --run-ignored ignored-only -E 'package(scx-matrix)'
    ///   cargo ktstr matrix --markdown docs/scx-matrix.md
    #[command(verbatim_doc_comment)]
    Matrix(matrix_cmd::MatrixArgs),
    /// Run the tests that failed in the last `cargo ktstr test` again (--list: only list them)
    ///
    /// Reads the record `cargo ktstr test` leaves in the run directory:
    /// each failed test with its nextest binary, its variant (scheduler,
    /// topology) and the kernel it booted, and runs exactly those tests
    /// again through cargo nextest, on the same kernel, ignored tests
    /// included (a failing demo stays reachable). With --list it only
    /// lists them with their failure dumps and stats files. --exec, as
    /// the test outputs block writes it, is the default.
    ///
    /// Examples:
    ///   cargo ktstr replay                            everything that failed last time, again
    ///   cargo ktstr replay --filter crash             only the failures whose name has `crash`
    ///   cargo ktstr replay --list                     what failed, and where its outputs are
    #[command(verbatim_doc_comment)]
    Replay(replay_cmd::ReplayArgs),
    /// Install released sched_ext schedulers by name (from the crates registry) and list them.
    Sched(sched_cmd::SchedArgs),
    /// Install the Debian packages ktstr needs on this host (QEMU 10, clang-19, ...).
    Setup(ktstr_setup::SetupArgs),
    /// Boot a test's VM (topology, memory, scheduler) and get a shell in it
    ///
    /// Builds the workspace's test binaries, finds the #[ktstr_test] named
    /// by --test, and boots a VM exactly as that test would: its CPU
    /// topology and memory, the guest kernel, /proc, /sys, cgroup2 and
    /// tracefs mounted, and its scheduler started and attached. Instead of
    /// running the test function (and its workload and map writes), the
    /// guest gives you a busybox shell on this terminal, so you can poke
    /// at the scheduler: `cat /sys/kernel/sched_ext/state`,
    /// `cat /sys/kernel/sched_ext/root/ops`, `nproc`, the scheduler's
    /// process ($KTSTR_SCHEDULER_PID), tracefs under /sys/kernel/tracing.
    /// If the scheduler fails to start you still get the shell, under the
    /// kernel's default scheduler, with its error printed.
    ///
    /// `exit` or Ctrl-D ends the shell: the scheduler is stopped, the VM
    /// powers off and this command returns 0. Ctrl-C goes to the command
    /// running in the guest, not to this command.
    ///
    /// The guest kernel's console (dmesg) is not shown unless --dmesg is
    /// given; errors the guest reports are. Needs busybox on the host
    /// (Debian's busybox-static, which `cargo ktstr setup` installs) and
    /// cargo-nextest (to find the test).
    ///
    /// Examples:
    ///   cargo ktstr shell --test boots_and_schedules
    ///   cargo ktstr shell --test boots_and_schedules --dmesg --kernel 7.3
    ///   cargo ktstr shell --test boots_and_schedules --include sched.json   (at /include/sched.json)
    ///
    /// `ktstr shell` is the same command.
    #[command(verbatim_doc_comment)]
    Shell(shell_cmd::ShellArgs),
    /// Run ktstr tests with cargo nextest (fetching a kernel if none is cached)
    ///
    /// Builds the workspace, makes sure a guest kernel is there (Debian's
    /// sched_ext kernel is fetched once if the cache is empty), and runs
    /// `cargo nextest run --workspace` with every test on that kernel.
    /// Each #[ktstr_test] boots its own VM. At the end, the
    /// `cargo ktstr: test outputs` block lists each failed test with its
    /// failure dump, stats file and the `cargo ktstr replay` line that
    /// re-runs it. nextest's own arguments go after `--`, untouched.
    ///
    /// Examples:
    ///   cargo ktstr test
    ///   cargo ktstr test --kernel 7.3 -- -E 'test(=my_test)' --no-capture
    ///   cargo ktstr test --partition hash:1/2          (half the suite, e.g. on one CI machine)
    ///   cargo ktstr test --archive suite.ktstr.tar --partition hash:2/2   (a share of a bundle: `cargo ktstr archive`)
    ///   RUST_BACKTRACE=1 cargo ktstr test -- -E 'test(=my_test)'   (verbose failure reports)
    #[command(verbatim_doc_comment)]
    Test(test_cmd::TestArgs),
}

fn main() {
    ktstr::init_tracing();
    let Cargo::Ktstr(cli) = Cargo::parse();
    let res = match cli.cmd {
        Cmd::Archive(args) => archive::build::run(args),
        Cmd::Doctor(args) => doctor_cmd::run(args),
        Cmd::Kernel(args) => kernel_cmd::run(args),
        Cmd::Matrix(args) => matrix_cmd::run(args),
        Cmd::Replay(args) => replay_cmd::run(args),
        Cmd::Flake(args) => flake_cmd::run(args),
        Cmd::Sched(args) => sched_cmd::run(args),
        Cmd::Setup(args) => ktstr_setup::run(args),
        Cmd::Shell(args) => shell_cmd::run(args),
        Cmd::Test(args) => test_cmd::run(args),
    };
    // The chain of causes in words; a stack backtrace (RUST_BACKTRACE)
    // would bury them, and says nothing a user can act on.
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
