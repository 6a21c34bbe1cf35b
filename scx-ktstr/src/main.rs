//! scx-ktstr: loader for ktstr's fixture sched_ext scheduler
//! (src/bpf/main.bpf.c).
//!
//! Opens, loads and attaches the BPF scheduler, prints `scx-ktstr: attached`,
//! then waits until the kernel ends the scheduler or SIGINT/SIGTERM arrives.
//! On the way out it prints the kernel's exit reason (and the debug dump after
//! an error exit) to stderr, and exits nonzero if the exit was an error.
//!
//! SIGUSR2 means ktstr's work-conservation watchdog saw a stuck task: the
//! loader asks the BPF side to call scx_bpf_error(), so the kernel ends the
//! scheduler with an error exit and a debug dump for the failure report.

mod bpf_skel {
    include!(concat!(env!("OUT_DIR"), "/bpf_skel.rs"));
}

#[allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
mod bpf_intf {
    include!(concat!(env!("OUT_DIR"), "/bpf_intf.rs"));
}

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use libbpf_rs::libbpf_sys::bpf_object_open_opts;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use scx_utils::{scx_ops_attach, scx_ops_load, scx_ops_open, uei_exited, uei_report};

use bpf_intf::{
    ktstr_consts_KTSTR_NSEC_PER_USEC as NSEC_PER_USEC, ktstr_consts_KTSTR_SLICE_US_DFL,
    ktstr_consts_KTSTR_SLOW_SLICE_US as SLOW_SLICE_US,
};
use bpf_skel::BpfSkelBuilder;

/// How long the kernel gets to end the scheduler after SIGUSR2 before the
/// loader gives up waiting and detaches.
const WATCHDOG_EXIT_WAIT: Duration = Duration::from_secs(2);

/// Fixture scheduler of the ktstr test harness: one shared DSQ,
/// weighted-fair (vtime) ordering.
#[derive(Debug, Parser)]
#[command(name = "scx-ktstr", version)]
struct Opts {
    /// Time slice in microseconds.
    #[arg(long, default_value_t = ktstr_consts_KTSTR_SLICE_US_DFL as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    slice_us: u64,

    /// Make dispatch deliberately slow so CPU-bound tasks lose throughput:
    /// every ops.dispatch busy-waits ~3 ms and the slice is capped at 200 µs.
    #[arg(long)]
    slow: bool,

    /// Start with the stall knob on: tasks named `ktstr-worker*` are never
    /// run; everything else is scheduled normally.
    #[arg(long)]
    stall: bool,

    /// Make ops.init fail with an error: the scheduler never attaches (a
    /// crash before the workload).
    #[arg(long)]
    fail_init: bool,

    /// Start with the pile knob on: tasks named `ktstr-worker*` all queue
    /// on CPU 0's local DSQ, however idle the other CPUs are.
    #[arg(long)]
    pile: bool,

    /// The kernel's sched_ext watchdog: a runnable task not run for this
    /// long ends the scheduler ("runnable task stall"). 0 keeps the
    /// kernel's default (30 s).
    #[arg(long, default_value_t = 0)]
    timeout_ms: u32,

    /// Print libbpf's debug output (including verifier logs).
    #[arg(short, long)]
    verbose: bool,
}

impl Opts {
    /// The slice the BPF side uses: --slow wants frequent dispatches.
    fn slice_us(&self) -> u64 {
        if self.slow {
            self.slice_us.min(SLOW_SLICE_US as u64)
        } else {
            self.slice_us
        }
    }
}

/// Set by the SIGUSR2 handler, consumed by the main loop.
static WATCHDOG_SIGNAL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigusr2(_: nix::libc::c_int) {
    WATCHDOG_SIGNAL.store(true, Ordering::Relaxed);
}

fn main() -> Result<()> {
    let opts = Opts::parse();

    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("failed to install the SIGINT/SIGTERM handler")?;
    let usr2 = SigAction::new(SigHandler::Handler(on_sigusr2), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler only stores to an atomic, which is signal-safe.
    unsafe { sigaction(Signal::SIGUSR2, &usr2) }.context("failed to install the SIGUSR2 handler")?;

    let mut builder = BpfSkelBuilder::default();
    builder.obj_builder.debug(opts.verbose);
    let mut open_object = MaybeUninit::uninit();
    let mut skel = scx_ops_open!(builder, &mut open_object, ktstr_ops, None::<bpf_object_open_opts>)?;
    let rodata = skel.maps.rodata_data.as_mut().unwrap();
    rodata.slice_ns = opts.slice_us() * NSEC_PER_USEC as u64;
    rodata.slow = opts.slow;
    rodata.fail_init = opts.fail_init;
    if opts.timeout_ms > 0 {
        skel.struct_ops.ktstr_ops_mut().timeout_ms = opts.timeout_ms;
    }

    let mut skel = scx_ops_load!(skel, ktstr_ops, uei)?;
    let bss = skel.maps.bss_data.as_mut().unwrap();
    if opts.stall {
        bss.stall = 1;
    }
    if opts.pile {
        bss.pile = 1;
    }
    let link = scx_ops_attach!(skel, ktstr_ops)?;
    println!("scx-ktstr: attached");

    let mut watchdog_deadline = None;
    let mut watchdog_timed_out = false;
    while !shutdown.load(Ordering::Relaxed) && !uei_exited!(&skel, uei) {
        if watchdog_deadline.is_none() && WATCHDOG_SIGNAL.load(Ordering::Relaxed) {
            eprintln!(
                "scx-ktstr: SIGUSR2 from ktstr's watchdog: a task was stuck; ending the scheduler with a debug dump"
            );
            // Read by the BPF side's frequent callbacks through the mmapped .bss.
            skel.maps.bss_data.as_mut().unwrap().watchdog_exit = 1;
            watchdog_deadline = Some(Instant::now() + WATCHDOG_EXIT_WAIT);
        }
        if watchdog_deadline.is_some_and(|d| Instant::now() >= d) {
            watchdog_timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // Detaching unregisters the scheduler (if the kernel has not already
    // ended it), which runs ops.exit and fills in the exit info.
    drop(link);
    // Prints "EXIT: <reason> (<msg>)" and, after an error, the DEBUG DUMP;
    // returns an error (so a nonzero exit status) for error exits.
    uei_report!(&skel, uei)?;
    anyhow::ensure!(
        !watchdog_timed_out,
        "after SIGUSR2 the kernel did not end the scheduler within {}s, so there is no debug dump; detached \
         instead. The BPF side checks `watchdog_exit` in select_cpu, enqueue, dispatch and tick: check that \
         they still run",
        WATCHDOG_EXIT_WAIT.as_secs()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_defaults() {
        Opts::command().debug_assert();
        let opts = Opts::try_parse_from(["scx-ktstr"]).unwrap();
        assert_eq!(opts.slice_us, 20_000);
        assert_eq!(opts.slice_us(), 20_000);
        assert!(!opts.verbose && !opts.slow && !opts.stall && !opts.pile);
        assert!(Opts::try_parse_from(["scx-ktstr", "--pile"]).unwrap().pile);

        let opts = Opts::try_parse_from(["scx-ktstr", "--slice-us", "5000", "-v"]).unwrap();
        assert_eq!(opts.slice_us, 5000);
        assert!(opts.verbose);
        assert!(Opts::try_parse_from(["scx-ktstr", "--slice-us", "0"]).is_err());

        // --slow caps the slice so dispatches are frequent; a shorter one stays.
        let opts = Opts::try_parse_from(["scx-ktstr", "--slow", "--stall"]).unwrap();
        assert!(opts.slow && opts.stall);
        assert_eq!(opts.slice_us(), 200);
        let opts = Opts::try_parse_from(["scx-ktstr", "--slow", "--slice-us", "50"]).unwrap();
        assert_eq!(opts.slice_us(), 50);
        assert!(Opts::try_parse_from(["scx-ktstr", "--stall=1"]).is_err());
        assert_eq!(Opts::try_parse_from(["scx-ktstr"]).unwrap().timeout_ms, 0);
        assert_eq!(Opts::try_parse_from(["scx-ktstr", "--timeout-ms", "1000"]).unwrap().timeout_ms, 1000);
    }
}
