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
