//! The fixture scheduler attaches in a real guest and schedules work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ktstr::prelude::*;

/// Spins `threads` workers for `for_ms` and returns each one's iterations.
fn spin_workers(threads: usize, for_ms: u64) -> Vec<u64> {
    let stop = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while stop.load(Ordering::Relaxed) == 0 {
                    n += 1;
                    if n.is_multiple_of(1024) {
                        std::thread::yield_now();
                    }
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(for_ms));
    stop.store(1, Ordering::Relaxed);
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[ktstr_test(llcs = 2, cores = 2, threads = 1, scheduler = SCX_KTSTR)]
fn boots_and_schedules(ctx: &Ctx) -> Result<AssertResult> {
    let mut r = AssertResult::pass();
    let state = std::fs::read_to_string("/sys/kernel/sched_ext/state")?;
    r.check(state.trim() == "enabled", || format!("sched_ext state `{}`, want `enabled`", state.trim()));
    let ops = std::fs::read_to_string("/sys/kernel/sched_ext/root/ops")?;
    r.check(ops.starts_with("ktstr"), || format!("attached ops `{}`, want ktstr", ops.trim()));
    r.check(ctx.scheduler.as_deref() == Some("scx-ktstr"), || format!("ctx.scheduler {:?}", ctx.scheduler));
    // Every worker must make progress under the scheduler.
    for (i, iters) in spin_workers(ctx.topology.cpus() as usize, 500).into_iter().enumerate() {
        r.check(iters > 0, || format!("worker {i} starved (0 work units)"));
    }
    Ok(r)
}
