//! Without `scheduler`, a test runs under the kernel's default scheduler.

use ktstr::prelude::*;

#[ktstr_test(llcs = 1, cores = 2)]
fn runs_under_eevdf(ctx: &Ctx) -> Result<AssertResult> {
    let mut r = AssertResult::pass();
    r.check(ctx.scheduler.is_none(), || format!("ctx.scheduler = {:?}, want None", ctx.scheduler));
    // The default kernel has sched_ext built in, but nothing attached.
    let state = std::fs::read_to_string("/sys/kernel/sched_ext/state").unwrap_or_default();
    r.check(state.trim() == "disabled", || format!("sched_ext state `{}`, want `disabled`", state.trim()));
    // PID 1 is this binary: the guest runtime.
    let comm = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    r.check(comm.trim() == "init", || format!("/proc/1/comm is `{}`, want `init`", comm.trim()));
    Ok(r)
}

/// The empty test the benchmark measures end to end.
#[ktstr_test(llcs = 1, cores = 2)]
fn empty(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

/// `include_files`: a directory from the package's tree is in the guest
/// under /include, its contents and modes as on the host.
#[ktstr_test(llcs = 1, cores = 1, include_files = ["tests/fixtures/guest-files"])]
fn include_files_are_in_the_guest(_ctx: &Ctx) -> Result<AssertResult> {
    use std::os::unix::fs::PermissionsExt;
    let mut r = AssertResult::pass();
    let marker = std::fs::read_to_string("/include/guest-files/marker.txt").unwrap_or_else(|e| format!("error: {e}"));
    r.check(marker == "ktstr include marker 7f3a\n", || format!("/include/guest-files/marker.txt: {marker:?}"));
    let mode = std::fs::metadata("/include/guest-files/sub/hello.sh").map(|m| m.permissions().mode() & 0o777);
    r.check(matches!(mode, Ok(0o755)), || format!("/include/guest-files/sub/hello.sh mode: {mode:?}, want 0755"));
    Ok(r)
}
