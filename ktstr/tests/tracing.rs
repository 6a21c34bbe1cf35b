//! `RUST_LOG=ktstr=debug` traces a run on the host's stderr (the kernel
//! chosen, the accelerator and why, the initramfs, QEMU's command line),
//! and without `RUST_LOG` none of it is printed.

use std::process::{Command, Output};

use ktstr::prelude::*;

#[ktstr_test(cores = 1, duration_s = 1)]
#[ignore = "the VM half of rust_log_traces_the_run_and_is_silent_without_it"]
fn traced_boot(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn run_traced_boot(rust_log: Option<&str>) -> (Output, String) {
    let mut cmd = Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args(["--exact", "traced_boot", "--ignored", "--nocapture"]);
    match rust_log {
        Some(v) => cmd.env("RUST_LOG", v),
        None => cmd.env_remove("RUST_LOG"),
    };
    let out = cmd.output().expect("running this test binary again");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

#[test]
fn rust_log_traces_the_run_and_is_silent_without_it() {
    let (out, traced) = run_traced_boot(Some("ktstr=debug"));
    assert!(out.status.success(), "{traced}");
    // The slots' event is INFO when the wait was long (other tests held them).
    let traced_line = |l: &str| l.contains(" DEBUG ") || l.contains(" INFO ");
    for want in ["kernel", "accelerator: ", "initramfs: ", "starting QEMU", "host CPU slots"] {
        assert!(traced.lines().any(|l| traced_line(l) && l.contains(want)), "no {want:?} event in:\n{traced}");
    }
    let (out, quiet) = run_traced_boot(None);
    assert!(out.status.success(), "{quiet}");
    assert!(!quiet.contains(" DEBUG ") && !quiet.contains("starting QEMU"), "traced without RUST_LOG:\n{quiet}");
    assert!(quiet.contains("ktstr_test 'traced_boot' [topo=1n1l1c1t] passed"), "{quiet}");
}
