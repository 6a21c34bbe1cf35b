//! scx-ktstr: loader for ktstr's fixture sched_ext scheduler
//! (src/bpf/main.bpf.c).
//!
//! Opens, loads and attaches the BPF scheduler, prints `scx-ktstr: attached`,
//! then waits until the kernel ends the scheduler or SIGINT/SIGTERM arrives.
//! On the way out it prints the kernel's exit reason (and the debug dump after
//! an error exit) to stderr, and exits nonzero if the exit was an error.

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
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use libbpf_rs::libbpf_sys::bpf_object_open_opts;
use scx_utils::{scx_ops_attach, scx_ops_load, scx_ops_open, uei_exited, uei_report};

use bpf_intf::{ktstr_consts_KTSTR_NSEC_PER_USEC as NSEC_PER_USEC, ktstr_consts_KTSTR_SLICE_US_DFL};
use bpf_skel::BpfSkelBuilder;

/// Fixture sched_ext scheduler of the ktstr test harness: one shared DSQ,
/// weighted-fair (vtime) ordering.
#[derive(Debug, Parser)]
#[command(name = "scx-ktstr", version)]
struct Opts {
    /// Time slice in microseconds.
    #[arg(long, default_value_t = ktstr_consts_KTSTR_SLICE_US_DFL as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    slice_us: u64,

    /// Print libbpf's debug output (including verifier logs).
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> Result<()> {
    let opts = Opts::parse();

    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("failed to install the SIGINT/SIGTERM handler")?;

    let mut builder = BpfSkelBuilder::default();
    builder.obj_builder.debug(opts.verbose);
    let mut open_object = MaybeUninit::uninit();
    let mut skel = scx_ops_open!(builder, &mut open_object, ktstr_ops, None::<bpf_object_open_opts>)?;
    skel.maps.rodata_data.as_mut().unwrap().slice_ns = opts.slice_us * NSEC_PER_USEC as u64;

    let mut skel = scx_ops_load!(skel, ktstr_ops, uei)?;
    let link = scx_ops_attach!(skel, ktstr_ops)?;
    println!("scx-ktstr: attached");

    while !shutdown.load(Ordering::Relaxed) && !uei_exited!(&skel, uei) {
        std::thread::sleep(Duration::from_millis(100));
    }

    // Detaching unregisters the scheduler (if the kernel has not already
    // ended it), which runs ops.exit and fills in the exit info.
    drop(link);
    // Prints "EXIT: <reason> (<msg>)" and, after an error, the DEBUG DUMP;
    // returns an error (so a nonzero exit status) for error exits.
    uei_report!(&skel, uei)?;
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
        assert!(!opts.verbose);

        let opts = Opts::try_parse_from(["scx-ktstr", "--slice-us", "5000", "-v"]).unwrap();
        assert_eq!(opts.slice_us, 5000);
        assert!(opts.verbose);
        assert!(Opts::try_parse_from(["scx-ktstr", "--slice-us", "0"]).is_err());
    }
}
