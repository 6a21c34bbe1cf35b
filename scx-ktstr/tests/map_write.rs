//! `ktstr::guest::map_write` changes a running scheduler's globals from
//! inside the guest: found by name through the map's BTF, at the right
//! offset, with errors that list what exists.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ktstr::guest::map_write::{apply, read, MapWrite};
use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, RunOptions};
use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType};

mod common;
use common::spinners_run_ns;

fn bss(var: &str, value: u64) -> MapWrite {
    MapWrite { map: ".bss".into(), var: var.into(), value }
}

/// Polls `done` every 20 ms; fails with `what` after `limit`.
fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) -> Result<()> {
    let start = Instant::now();
    while !done() {
        ensure!(start.elapsed() < limit, "{what} after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Runs `f` while four threads keep yielding, so every CPU keeps calling
/// ops.dispatch (where the knobs are read).
fn with_busy_cpus<T>(f: impl FnOnce() -> T) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::yield_now();
                }
            })
        })
        .collect();
    let out = f();
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        let _ = s.join();
    }
    out
}

#[ktstr_test(scheduler = SCX_KTSTR)]
#[ignore = "guest half of writing_crash_ends_the_scheduler"]
fn payload_write_crash(_ctx: &Ctx) -> Result<AssertResult> {
    // Busy CPUs keep ops.dispatch running, where the crash knob is read.
    let (written, ended) = with_busy_cpus(|| {
        let written = apply(&bss("crash", 1));
        let ended = written.as_ref().map_err(|e| anyhow::anyhow!("{e:#}")).and_then(|_| {
            wait_until("sched_ext was still enabled", Duration::from_secs(5), || {
                std::fs::read_to_string("/sys/kernel/sched_ext/state").is_ok_and(|s| s.trim() != "enabled")
            })
        });
        (written, ended)
    });
    println!("{}", written?);
    ended?;
    // The function passes: the harness must report the scheduler's death.
    Ok(AssertResult::pass())
}

#[test]
fn writing_crash_ends_the_scheduler() {
    let entry = find_test("payload_write_crash").expect("payload registered");
    let f = run_ktstr_test_with(entry, &RunOptions { auto_repro: Some(false), ..Default::default() })
        .expect_err("the crash must fail the run");
    eprintln!("{}", f.report);
    if let Some(dir) = &f.run_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    assert_eq!(f.stage, "result received");
    assert_eq!(f.reasons.len(), 1, "{:?}", f.reasons);
    assert!(f.reasons[0].starts_with("scheduler process died unexpectedly during workload"), "{:?}", f.reasons);
    let log = f.outcome.as_ref().unwrap().sched_log.join("\n");
    assert!(log.contains("host-triggered crash"), "scheduler log lacks `host-triggered crash`:\n{log}");
}

#[ktstr_test(scheduler = SCX_KTSTR)]
fn bad_writes_name_what_exists(_ctx: &Ctx) -> Result<AssertResult> {
    let mut r = AssertResult::pass();
    let mut expect_err = |w: MapWrite, wants: &[&str]| {
        let msg = match apply(&w) {
            Ok(done) => format!("succeeded: {done}"),
            Err(e) => format!("{e:#}"),
        };
        println!("{w:?}: {msg}");
        for want in wants {
            r.check(msg.contains(want), || format!("writing {w:?}: `{msg}` lacks `{want}`"));
        }
    };
    // The fixture's knobs are listed among the variables that do exist.
    expect_err(
        bss("no_such_var", 1),
        &[
            "has no variable `no_such_var`; its variables: ",
            " stall,",
            " pile,",
            " crash,",
            " degrade_rt,",
            " watchdog_exit,",
        ],
    );
    expect_err(
        MapWrite { map: ".nosuchmap".into(), var: "crash".into(), value: 1 },
        &["no loaded BPF map's name ends with `.nosuchmap`", ".bss (id", ".rodata (id"],
    );
    expect_err(MapWrite { map: ".rodata".into(), var: "slice_ns".into(), value: 1 }, &["is read-only after load"]);
    expect_err(bss("crash", 1 << 32), &["does not fit variable crash (u32)"]);
    // None of these may have reached the scheduler.
    r.check(read(".bss", "crash")? == 0, || "a failed write changed `crash`".into());
    Ok(r)
}

#[ktstr_test(scheduler = SCX_KTSTR)]
fn writing_stall_lands_on_stall(_ctx: &Ctx) -> Result<AssertResult> {
    let mut r = AssertResult::pass();
    // A newer map that also ends in .bss, of no scheduler: the attached
    // scheduler's map must still be the one written.
    let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    let decoy = MapHandle::create(MapType::Array, Some("decoy.bss"), 4, 64, 1, &opts)?;
    let done = apply(&bss("stall", 1))?;
    println!("{done}");
    r.check(
        done.contains("2 maps matched `.bss`") && done.contains("took the one of the attached struct_ops scheduler"),
        || format!("with a decoy .bss map loaded: `{done}`"),
    );
    let decoy_bytes = decoy.lookup(&0u32.to_ne_bytes(), MapFlags::ANY)?.unwrap_or_default();
    r.check(decoy_bytes.iter().all(|b| *b == 0), || format!("the decoy map was written: {decoy_bytes:?}"));
    drop(decoy);
    // Read back through the same BTF lookup: only `stall` changed.
    for (var, want) in [("stall", 1), ("crash", 0), ("degrade_rt", 0), ("watchdog_exit", 0)] {
        let got = read(".bss", var)?;
        r.check(got == want, || format!("after writing stall = 1, {var} reads {got}, want {want}"));
    }
    // The scheduler itself reads the byte it calls `stall`: a ktstr-worker
    // is parked, any other task runs.
    let (worker_ns, other_ns) = spinners_run_ns()?;
    println!("in 1 s: ktstr-worker ran {} ns, spin-other {} ns", worker_ns, other_ns);
    r.check(worker_ns == 0, || format!("ktstr-worker ran {} ns in 1 s with stall = 1", worker_ns));
    r.check(other_ns >= 250_000_000, || format!("spin-other ran only {} ns in 1 s", other_ns));
    Ok(r)
}

/// The `degrade_rt` knob degrades the running scheduler and is undone by
/// writing 0: every ops.dispatch burns its microseconds while it is set
/// (counted in `degrade_cnt`), none after.
#[ktstr_test(scheduler = SCX_KTSTR)]
fn degrade_rt_slows_dispatch_until_set_back(_ctx: &Ctx) -> Result<AssertResult> {
    let checked = with_busy_cpus(|| -> Result<u64> {
        ensure!(read(".bss", "degrade_cnt")? == 0, "degrade_cnt counts before degrade_rt was set");
        apply(&bss("degrade_rt", 500))?;
        wait_until("no dispatch burned degrade_rt", Duration::from_secs(5), || {
            read(".bss", "degrade_cnt").is_ok_and(|n| n > 0)
        })?;
        apply(&bss("degrade_rt", 0))?;
        // A dispatch already burning finishes; after that, none.
        std::thread::sleep(Duration::from_millis(100));
        let after = read(".bss", "degrade_cnt")?;
        std::thread::sleep(Duration::from_millis(500));
        ensure!(read(".bss", "degrade_cnt")? == after, "dispatches still burned after degrade_rt was set back to 0");
        Ok(after)
    });
    println!("degrade_rt = 500 burned {} dispatches", checked?);
    Ok(AssertResult::pass())
}
