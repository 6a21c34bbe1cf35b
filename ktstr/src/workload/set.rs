//! The parent side: fork the workers, release them, drain their slots
//! into reports, spot stuck ones, stop and reap them.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::shm::{futex_wake, now_ns, unpack_gap, Region, AWAKE, PAIR_STOP, RELEASE_GO, RELEASE_STOP, UNTIL_WOKEN};
use super::worker::{self, Pair, WorkerSpec};
use super::{read_schedstat, SpawnOptions, WorkType, WorkerReport};

/// How long `stop` waits for workers to exit by themselves before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// How a worker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerExit {
    /// Exited by itself with this code (0 after a clean stop).
    Exited(i32),
    /// Died of this signal before the set had to kill it.
    Signaled(i32),
    /// Still running after the grace period (or at drop): the set killed it.
    Forced,
    /// Already reaped by someone else (waitpid said ECHILD): a process
    /// that reaps every child, e.g. a PID 1 `waitpid(-1)` loop, took it.
    Lost,
}

/// A group of forked workers sharing one telemetry region.
///
/// Workers die with the *thread* that spawned the set (PR_SET_PDEATHSIG
/// follows the forking thread, not the process): keep that thread alive
/// while the set is in use.
pub struct WorkerSet {
    region: Region,
    workers: Vec<Worker>,
    telemetry: bool,
    /// CLOCK_MONOTONIC of `release()`; 0 before.
    released_ns: AtomicU64,
    /// Baselines of the current interval; `release` (a `&self` method)
    /// starts the first one, hence the lock.
    interval: Mutex<Interval>,
}

struct Worker {
    pid: Pid,
    work_type: WorkType,
    exit: Option<WorkerExit>,
}

#[derive(Default)]
struct Interval {
    start_ns: u64,
    /// Per worker: cumulative iterations, migrations and schedstat at the start.
    last: Vec<(u64, u64, (u64, u64, u64))>,
}

impl WorkerSet {
    /// Forks one worker per entry. Each blocks until `release`, then names
    /// itself `ktstr-worker`. PingPong entries pair up in the order they
    /// appear (1st with 2nd, 3rd with 4th, ...); an odd one out sleeps
    /// ~100 µs per iteration instead.
    pub fn spawn(work_types: &[WorkType], opts: &SpawnOptions) -> anyhow::Result<WorkerSet> {
        // (pair index, side, partner's worker index) per worker.
        let mut pair_of = vec![None; work_types.len()];
        let mut waiting = None;
        let mut pairs = 0;
        for (i, _) in work_types.iter().enumerate().filter(|(_, t)| **t == WorkType::PingPong) {
            match waiting.take() {
                None => waiting = Some(i),
                Some(j) => {
                    pair_of[j] = Some((pairs, 0, i));
                    pair_of[i] = Some((pairs, 1, j));
                    pairs += 1;
                }
            }
        }
        let mut set = WorkerSet {
            region: Region::new(pairs, work_types.len())?,
            workers: Vec::with_capacity(work_types.len()),
            telemetry: opts.telemetry,
            released_ns: AtomicU64::new(0),
            interval: Mutex::new(Interval::default()),
        };
        let parent = nix::unistd::getpid();
        for (i, &kind) in work_types.iter().enumerate() {
            let region = &set.region;
            let spec = WorkerSpec {
                header: region.header(),
                slot: region.slot(i),
                kind,
                pair: pair_of[i].map(|(p, side, partner)| Pair {
                    word: region.pair(p),
                    side,
                    partner: region.slot(partner),
                }),
                telemetry: opts.telemetry,
                epoch_ns: opts.epoch_ns,
                parent,
            };
            // SAFETY: the child only runs `worker::run`, which allocates
            // nothing, takes no lock and ends in `_exit`.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => worker::run(spec),
                Ok(ForkResult::Parent { child }) => {
                    set.workers.push(Worker { pid: child, work_type: kind, exit: None })
                }
                // Dropping `set` kills and reaps the ones already forked.
                Err(e) => anyhow::bail!(
                    "fork of worker {} of {} failed: {e} (process limit? check pids.max of the cgroup and ulimit -u)",
                    i + 1,
                    work_types.len()
                ),
            }
        }
        Ok(set)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.pid.as_raw() as u32).collect()
    }

    /// Starts every worker at once. Later calls do nothing.
    pub fn release(&self) {
        let header = self.region.header();
        let mut interval = self.interval.lock().unwrap_or_else(|e| e.into_inner());
        if header.release.load(Acquire) != 0 {
            return;
        }
        interval.last = self.workers.iter().map(|w| (0, 0, read_schedstat(raw(w.pid)).unwrap_or_default())).collect();
        let now = now_ns();
        interval.start_ns = now;
        self.released_ns.store(now, Release);
        // From now on a worker still blocked is due to run (see `stuck`).
        for slot in self.region.slots() {
            let _ = slot.sleep_until.compare_exchange(UNTIL_WOKEN, now, Relaxed, Relaxed);
        }
        if header.release.compare_exchange(0, RELEASE_GO, AcqRel, Acquire).is_ok() {
            futex_wake(&header.release, i32::MAX);
        }
    }

    /// One report per worker (in spawn order) covering the time since the
    /// previous call, or since `release`. A gap is reported in the interval
    /// in which it ended. Before `release` every report is empty.
    pub fn take_reports(&mut self) -> Vec<WorkerReport> {
        let now = now_ns();
        let interval = self.interval.get_mut().unwrap_or_else(|e| e.into_inner());
        let released = self.released_ns.load(Acquire) != 0;
        let mut reports = Vec::with_capacity(self.workers.len());
        for (i, w) in self.workers.iter().enumerate() {
            let mut r = WorkerReport { pid: raw(w.pid), work_type: w.work_type, ..Default::default() };
            if released {
                let slot = self.region.slot(i);
                let (last_iters, last_migr, last_ss) = interval.last[i];
                let iters = slot.iterations.load(Relaxed);
                let migr = slot.migrations.load(Relaxed);
                let (gap, gap_cpu) = unpack_gap(slot.max_gap.swap(0, Acquire));
                let gap_at = slot.max_gap_at_ns.load(Relaxed);
                // A reaped worker has no schedstat: nothing more ran.
                let ss = read_schedstat(r.pid).unwrap_or(last_ss);
                r.iterations = iters.saturating_sub(last_iters);
                r.wall_ns = now.saturating_sub(interval.start_ns);
                r.cpus = slot.drain_cpus();
                r.migrations = migr.saturating_sub(last_migr);
                if gap > 0 {
                    (r.max_gap_ns, r.max_gap_cpu, r.max_gap_at_ns) = (gap, gap_cpu, gap_at);
                }
                r.run_ns = ss.0.saturating_sub(last_ss.0);
                r.run_delay_ns = ss.1.saturating_sub(last_ss.1);
                r.timeslices = ss.2.saturating_sub(last_ss.2);
                interval.last[i] = (iters, migr, ss);
            }
            reports.push(r);
        }
        if released {
            interval.start_ns = now;
        }
        reports
    }

    /// Workers that should be running but have not completed an iteration
    /// for longer than `threshold`, with how long. A worker blocked until
    /// its partner wakes it is not stuck; one whose timed sleep ended, or
    /// whose partner woke it, counts from that moment; one that never ran
    /// after release counts from the release. Empty before release and
    /// when telemetry is off (no heartbeats then).
    pub fn stuck(&self, threshold: Duration) -> Vec<(u32, Duration)> {
        let released = self.released_ns.load(Acquire);
        if !self.telemetry || released == 0 {
            return Vec::new();
        }
        let now = now_ns();
        let mut stuck = Vec::new();
        for (w, slot) in self.workers.iter().zip(self.region.slots()) {
            let heartbeat = slot.heartbeat_ns.load(Relaxed);
            let sleep_until = slot.sleep_until.load(Relaxed);
            // heartbeat 0: never ran since release, so not in a sleep of its own.
            let since = match sleep_until {
                UNTIL_WOKEN if heartbeat != 0 => continue,
                AWAKE | UNTIL_WOKEN => heartbeat.max(released),
                deadline => heartbeat.max(released).max(deadline),
            };
            let age = Duration::from_nanos(now.saturating_sub(since));
            if age > threshold {
                stuck.push((raw(w.pid), age));
            }
        }
        stuck
    }

    /// CLOCK_MONOTONIC at which the last worker finished its first
    /// iteration; None until every worker has (and for an empty set).
    pub(crate) fn first_iteration_ns(&self) -> Option<u64> {
        let mut last = None;
        for slot in self.region.slots() {
            match slot.first_iter_ns.load(Relaxed) {
                0 => return None,
                t => last = last.max(Some(t)),
            }
        }
        last
    }

    /// Final reports, then asks every worker to exit and reaps it;
    /// stragglers are killed after a second.
    pub fn stop(self) -> Vec<WorkerReport> {
        self.stop_with_exits().0
    }

    /// `stop`, also saying how each worker ended (in spawn order).
    pub(crate) fn stop_with_exits(mut self) -> (Vec<WorkerReport>, Vec<WorkerExit>) {
        let reports = self.take_reports();
        self.shutdown(STOP_GRACE);
        let exits = self.workers.iter().map(|w| w.exit.unwrap_or(WorkerExit::Lost)).collect();
        (reports, exits)
    }

    /// Tells the workers to exit, waits up to `grace`, kills the rest and
    /// reaps everything.
    fn shutdown(&mut self, grace: Duration) {
        let header = self.region.header();
        header.stop.store(1, Release);
        // Wake workers blocked on a word by changing it: a waiter that
        // checked `stop` just before it was set would otherwise sleep on.
        let _ = header.release.compare_exchange(0, RELEASE_STOP, AcqRel, Acquire);
        futex_wake(&header.release, i32::MAX);
        for pair in self.region.pairs() {
            pair.turn.store(PAIR_STOP, Release);
            futex_wake(&pair.turn, i32::MAX);
        }
        let deadline = Instant::now() + grace;
        loop {
            for w in self.workers.iter_mut().filter(|w| w.exit.is_none()) {
                w.exit = reap(w.pid, true);
            }
            if self.workers.iter().all(|w| w.exit.is_some()) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        for w in self.workers.iter_mut().filter(|w| w.exit.is_none()) {
            let _ = kill(w.pid, Signal::SIGKILL);
            w.exit = Some(match reap(w.pid, false) {
                Some(WorkerExit::Signaled(9)) => WorkerExit::Forced,
                other => other.unwrap_or(WorkerExit::Lost),
            });
        }
    }
}

impl Drop for WorkerSet {
    /// No worker outlives its set: kill and reap whatever `stop` did not.
    fn drop(&mut self) {
        if self.workers.iter().any(|w| w.exit.is_none()) {
            self.shutdown(Duration::ZERO);
        }
    }
}

/// `waitpid` for one worker; None while it is still running (only when
/// `nohang`).
fn reap(pid: Pid, nohang: bool) -> Option<WorkerExit> {
    let flags = nohang.then_some(WaitPidFlag::WNOHANG);
    loop {
        return match waitpid(pid, flags) {
            Ok(WaitStatus::Exited(_, code)) => Some(WorkerExit::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(WorkerExit::Signaled(sig as i32)),
            Ok(WaitStatus::StillAlive) => None,
            // Stop/continue reports are not asked for; wait on.
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => Some(WorkerExit::Lost),
        };
    }
}

fn raw(pid: Pid) -> u32 {
    pid.as_raw() as u32
}
