//! These fork real workers on the host. The host is small and shared, so
//! the assertions lean on things a busy machine cannot fake: a SIGSTOPped
//! worker does nothing, a stalled partner blocks its peer, a PingPong pair
//! alternates exactly.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::shm::{unpack_gap, Slot, UNTIL_WOKEN};
use super::worker::Tracker;
use super::*;

const MS: u64 = 1_000_000;

fn spawn(types: &[WorkType]) -> WorkerSet {
    WorkerSet::spawn(types, &SpawnOptions::default()).expect("spawn workers")
}

fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).unwrap_or_else(|e| panic!("{sig} to {pid}: {e}"));
}

/// SIGSTOP and wait until the kernel shows the process stopped, so nothing
/// it does afterwards can land in a counter.
fn stop_process(pid: u32) {
    signal(pid, Signal::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat.rsplit_once(')').unwrap().1.split_whitespace().next().unwrap();
        if state == "T" {
            // Let it finish switching out, so its schedstat is final.
            std::thread::sleep(Duration::from_millis(10));
            return;
        }
        assert!(Instant::now() < deadline, "worker {pid} not stopped after 2 s (state {state})");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Waits until every worker has done an iteration. On an idle host that
/// is immediate; on a loaded one a late-forked worker can wait its turn
/// for a while, and that is not what these tests are about.
fn wait_all_iterated(set: &WorkerSet) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while set.first_iteration_ns().is_none() {
        assert!(Instant::now() < deadline, "not every worker iterated within 5 s of release");
        sleep_ms(1);
    }
}

/// The child names itself once released, possibly after `release` returned.
fn wait_comm(pid: u32) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        if comm.trim() == "ktstr-worker" || Instant::now() >= deadline {
            return comm.trim().to_string();
        }
        sleep_ms(1);
    }
}

#[test]
fn spin_workers_report_progress() {
    let mut set = spawn(&[WorkType::SpinWait, WorkType::SpinWait]);
    assert_eq!(set.first_iteration_ns(), None, "nothing runs before release");
    let before = monotonic_ns();
    set.release();
    let after = monotonic_ns();
    for pid in set.pids() {
        assert_eq!(wait_comm(pid), "ktstr-worker");
    }
    wait_all_iterated(&set);
    sleep_ms(100);
    let inner = monotonic_ns() - after;
    let reports = set.take_reports();
    let outer = monotonic_ns() - before;
    let first = set.first_iteration_ns().expect("both workers iterated");
    assert!(first >= before, "first iteration {first} before release {before}");
    for r in &reports {
        assert!(r.iterations > 0 && r.iteration_rate() > 0.0, "{r:?}");
        assert!(!r.cpus.is_empty(), "{r:?}");
        assert!((inner..=outer).contains(&r.wall_ns), "wall {} not within [{inner}, {outer}]", r.wall_ns);
        assert!(r.max_gap_ns > 0, "{r:?}");
        assert!(r.cpus.windows(2).all(|w| w[0] < w[1]), "cpus not sorted and distinct: {r:?}");
        if read_schedstat(std::process::id()).is_some() {
            assert!(r.run_ns > 0 && r.timeslices > 0, "{r:?}");
        }
    }
    let (last, exits) = set.stop_with_exits();
    assert_eq!(last.len(), 2);
    assert_eq!(exits, vec![WorkerExit::Exited(0); 2], "workers must exit by themselves on stop");
}

/// The second interval is a difference, not a running total: with the
/// worker stopped throughout it, everything in it is zero.
#[test]
fn second_take_is_a_delta() {
    let epoch = monotonic_ns();
    let mut set = WorkerSet::spawn(&[WorkType::SpinWait], &SpawnOptions { epoch_ns: epoch, telemetry: true }).unwrap();
    let pid = set.pids()[0];
    let released = monotonic_ns();
    set.release();
    wait_all_iterated(&set);
    sleep_ms(50);
    stop_process(pid);
    let stopped = monotonic_ns();
    let first = set.take_reports().remove(0);
    assert!(first.iterations > 0 && !first.cpus.is_empty(), "{first:?}");
    sleep_ms(150);
    let during = set.take_reports().remove(0);
    let second_end = monotonic_ns();
    assert_eq!(during.iterations, 0, "{during:?}");
    assert_eq!((during.migrations, during.max_gap_ns, during.run_ns, during.timeslices), (0, 0, 0, 0), "{during:?}");
    assert!(during.cpus.is_empty(), "CPU set not reset: {during:?}");
    assert!((150 * MS..=second_end - stopped).contains(&during.wall_ns), "{during:?}");
    signal(pid, Signal::SIGCONT);
    sleep_ms(100);
    let resumed = set.stop().remove(0);
    assert!(resumed.iterations > 0, "{resumed:?}");
    // The stop is a gap (the worker was not sleeping), reported when it
    // ended, and it began before the stop took hold.
    assert!(resumed.max_gap_ns >= 150 * MS, "stop not seen as a gap: {resumed:?}");
    let gap_start = epoch + resumed.max_gap_at_ns;
    assert!((released..=stopped).contains(&gap_start), "gap began at {gap_start}, outside [{released}, {stopped}]");
}

/// A pair alternates exactly, and a partner's long stall does not show up
/// as a gap in the worker blocked waiting for it.
#[test]
fn pingpong_pair_alternates_and_sleeps_are_not_gaps() {
    let mut set = spawn(&[WorkType::PingPong, WorkType::PingPong]);
    let (a, b) = (set.pids()[0], set.pids()[1]);
    set.release();
    wait_all_iterated(&set);
    sleep_ms(50);
    stop_process(a);
    sleep_ms(20); // b finishes its turn, if it had one, and blocks
    let r = set.take_reports();
    assert!(r[0].iterations > 0 && r[1].iterations > 0, "{r:?}");
    assert!(r[0].iterations.abs_diff(r[1].iterations) <= 1, "a pair must alternate: {r:?}");
    sleep_ms(300);
    assert!(!set.stuck(Duration::from_millis(50)).iter().any(|&(p, _)| p == b), "a blocked partner is not stuck");
    signal(a, Signal::SIGCONT);
    sleep_ms(50);
    let r = set.stop();
    assert!(r[1].iterations > 0, "b did not resume: {r:?}");
    // Blocked > 320 ms; its own gaps are microseconds.
    assert!(r[1].max_gap_ns < 250 * MS, "b's wait for a counted as a gap: {:?}", r[1]);
}

#[test]
fn stuck_names_only_the_stopped_worker() {
    let set = spawn(&[WorkType::SpinWait, WorkType::SpinWait]);
    assert!(set.stuck(Duration::ZERO).is_empty(), "nothing is stuck before release");
    let (victim, other) = (set.pids()[0], set.pids()[1]);
    set.release();
    wait_all_iterated(&set);
    stop_process(victim);
    sleep_ms(300);
    let stuck = set.stuck(Duration::from_millis(200));
    assert!(stuck.iter().any(|&(p, d)| p == victim && d >= Duration::from_millis(290)), "{stuck:?}");
    assert!(!stuck.iter().any(|&(p, _)| p == other), "{stuck:?}");
    signal(victim, Signal::SIGCONT);
    let (_, exits) = set.stop_with_exits();
    assert_eq!(exits, vec![WorkerExit::Exited(0); 2]);
}

/// Every kind runs, and every kind, including a PingPong worker blocked in
/// FUTEX_WAIT, exits by itself when asked.
#[test]
fn stop_reaps_every_kind() {
    use WorkType::*;
    let types = [SpinWait, YieldHeavy, PingPong, PingPong, PingPong, Bursty, Mixed, AffinityChurn, ForkExit, IdleBurst];
    let mut set = spawn(&types);
    let pids = set.pids();
    set.release();
    wait_all_iterated(&set);
    sleep_ms(50);
    let during = set.take_reports();
    let (last, exits) = set.stop_with_exits();
    for (r, t) in during.iter().zip(types) {
        assert_eq!(r.work_type, t);
        assert!(r.iterations > 0, "{t:?} made no progress: {r:?}");
    }
    assert_eq!(last.len(), types.len());
    assert_eq!(exits, vec![WorkerExit::Exited(0); types.len()], "a worker had to be killed");
    for pid in pids {
        assert!(!alive(pid), "worker {pid} outlived stop");
    }
}

/// AffinityChurn narrows itself to single CPUs and widens back: over a
/// while it runs on more than one CPU, and ends with its whole mask.
/// ForkExit's children and threads are all reaped: none is left behind.
#[test]
fn churn_kinds_do_what_they_say() {
    let mut set = spawn(&[WorkType::AffinityChurn, WorkType::ForkExit]);
    set.release();
    wait_all_iterated(&set);
    sleep_ms(300);
    let r = set.take_reports();
    let fork_pid = set.pids()[1];
    assert!(r[1].iterations >= 2, "ForkExit made {} iterations", r[1].iterations);
    let children = std::fs::read_to_string(format!("/proc/{fork_pid}/task/{fork_pid}/children")).unwrap_or_default();
    assert!(children.split_whitespace().count() <= 1, "ForkExit left children: {children}");
    set.stop();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        assert!(r[0].cpus.len() > 1, "AffinityChurn ran only on {:?}", r[0].cpus);
    }
}

/// A worker blocked in FUTEX_WAIT whose partner will never pass the turn
/// back (it was killed) still exits by itself on stop.
#[test]
fn stop_wakes_a_blocked_pingpong_worker() {
    let set = spawn(&[WorkType::PingPong, WorkType::PingPong]);
    let a = set.pids()[0];
    set.release();
    wait_all_iterated(&set);
    signal(a, Signal::SIGKILL);
    sleep_ms(20);
    let (_, exits) = set.stop_with_exits();
    assert_eq!(exits, vec![WorkerExit::Signaled(9), WorkerExit::Exited(0)]);
}

#[test]
fn stop_before_release_and_drop_reap() {
    let set = spawn(&[WorkType::PingPong, WorkType::PingPong, WorkType::SpinWait]);
    let pids = set.pids();
    let (reports, exits) = set.stop_with_exits();
    assert!(reports.iter().all(|r| r.iterations == 0 && r.wall_ns == 0), "{reports:?}");
    assert_eq!(exits, vec![WorkerExit::Exited(0); 3]);
    assert!(!pids.iter().any(|&p| alive(p)));

    let set = spawn(&[WorkType::SpinWait, WorkType::PingPong, WorkType::PingPong]);
    let pids = set.pids();
    set.release();
    sleep_ms(20);
    stop_process(pids[0]); // even a stopped worker must not survive the drop
    drop(set);
    for pid in pids {
        assert!(!alive(pid), "worker {pid} outlived its dropped set");
    }
}

#[test]
fn telemetry_off_counts_only() {
    let opts = SpawnOptions { epoch_ns: monotonic_ns(), telemetry: false };
    let mut set = WorkerSet::spawn(&[WorkType::SpinWait], &opts).unwrap();
    set.release();
    wait_all_iterated(&set);
    let r = set.take_reports().remove(0);
    assert!(r.iterations > 0, "{r:?}");
    assert!(r.cpus.is_empty() && r.max_gap_ns == 0 && r.migrations == 0, "{r:?}");
    assert!(set.first_iteration_ns().is_some());
    assert!(set.stuck(Duration::ZERO).is_empty());
}

/// The gap arithmetic, with made-up clocks.
#[test]
fn tracker_excludes_sleeps_and_tracks_cpus() {
    let slot = Slot::default();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let epoch = 1_000;
    let mut t = Tracker::start_at(&slot, true, epoch, 10_000, 0);
    t.iteration_at(10_010, 0); // gap 10
    t.iteration_at(10_030, 1); // gap 20, migration
    t.begin_sleep_at(10_040, 1, None); // gap 10 up to the sleep
    assert_eq!(load(&slot.sleep_until), UNTIL_WOKEN);
    t.end_sleep_at(50_000); // a 40 µs sleep: not a gap
    assert_eq!(load(&slot.sleep_until), 0);
    t.iteration_at(50_005, 200); // gap 5, migration
    t.iteration_at(50_015, 300); // beyond MAX_CPUS: a migration, not in the set
    assert_eq!(unpack_gap(load(&slot.max_gap)), (20, 1));
    assert_eq!(load(&slot.max_gap_at_ns), 10_010 - epoch);
    assert_eq!(load(&slot.iterations), 4);
    assert_eq!(load(&slot.migrations), 3);
    assert_eq!(load(&slot.first_iter_ns), 10_010);
    assert_eq!(load(&slot.heartbeat_ns), 50_015);
    assert_eq!(slot.drain_cpus(), vec![0, 1, 200]);
    assert!(slot.drain_cpus().is_empty(), "draining clears the set");

    // Running time just before a sleep is still checked, and a timed sleep
    // records its deadline.
    t.begin_sleep_at(50_115, 300, Some(Duration::from_nanos(1_000)));
    assert_eq!(load(&slot.sleep_until), 51_115);
    assert_eq!(unpack_gap(load(&slot.max_gap)), (100, 300));
    assert_eq!(load(&slot.max_gap_at_ns), 50_015 - epoch);
}

#[test]
fn schedstat_parses_real_lines() {
    // Captured from /proc/self/schedstat on a 6.18 kernel.
    assert_eq!(parse_schedstat("111979 3455621 2\n"), Some((111979, 3455621, 2)));
    assert_eq!(parse_schedstat("37747869 2797580 95"), Some((37747869, 2797580, 95)));
    assert_eq!(parse_schedstat("1 2"), None);
    assert_eq!(parse_schedstat("1 2 x"), None);
    assert_eq!(parse_schedstat("1 2 3 4"), None);
    let (run, _, slices) = read_schedstat(std::process::id()).expect("own schedstat");
    assert!(run > 0 && slices > 0);
    assert_eq!(read_schedstat(u32::MAX), None);
}

#[test]
fn merge_and_derived_figures() {
    let a = WorkerReport {
        pid: 7,
        work_type: WorkType::Bursty,
        iterations: 100,
        wall_ns: 1_000_000_000,
        cpus: vec![0, 3],
        migrations: 2,
        max_gap_ns: 50,
        max_gap_cpu: 3,
        max_gap_at_ns: 10,
        run_ns: 250_000_000,
        run_delay_ns: 5,
        timeslices: 4,
    };
    assert_eq!(a.iteration_rate(), 100.0);
    assert_eq!(a.off_cpu_pct(), 75.0);
    let b = WorkerReport {
        pid: 7,
        work_type: WorkType::Bursty,
        iterations: 50,
        wall_ns: 500_000_000,
        cpus: vec![1, 3],
        migrations: 1,
        max_gap_ns: 80,
        max_gap_cpu: 1,
        max_gap_at_ns: 900,
        run_ns: 750_000_000, // more than wall: clamps to 0 % off CPU
        run_delay_ns: 6,
        timeslices: 1,
    };
    assert_eq!(b.off_cpu_pct(), 0.0);
    let mut m = a.clone();
    m.merge(&b);
    assert_eq!((m.iterations, m.wall_ns, m.migrations), (150, 1_500_000_000, 3));
    assert_eq!(m.cpus, vec![0, 1, 3]);
    assert_eq!((m.max_gap_ns, m.max_gap_cpu, m.max_gap_at_ns), (80, 1, 900));
    assert_eq!((m.run_ns, m.run_delay_ns, m.timeslices), (1_000_000_000, 11, 5));
    assert_eq!(m.iteration_rate(), 100.0);
    // A smaller later gap leaves the larger one and its place alone.
    let mut m2 = b.clone();
    m2.merge(&a);
    assert_eq!((m2.max_gap_ns, m2.max_gap_cpu, m2.max_gap_at_ns), (80, 1, 900));
    // Folding into an empty report adopts the worker's identity.
    let mut acc = WorkerReport::default();
    acc.merge(&a);
    assert_eq!(acc, a);
    assert_eq!(WorkerReport::default().iteration_rate(), 0.0);
    assert_eq!(WorkerReport::default().off_cpu_pct(), 0.0);
}
