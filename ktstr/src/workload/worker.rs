//! The worker side: what a forked child runs until it is told to stop.
//!
//! The child is a copy of one thread of a possibly multi-threaded parent,
//! so locks other threads held at fork stay held forever. Everything
//! reachable from `run` therefore avoids the allocator, stdio and any
//! other lock: only atomics on the shared region, vDSO clock reads and
//! plain syscalls, then `_exit`.

use std::hint::black_box;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Duration;

use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::shm::{
    futex_wait, futex_wake, now_ns, pack_gap, unpack_gap, Header, PairWord, Slot, AWAKE, PAIR_STOP, RELEASE_GO,
    UNTIL_WOKEN,
};
use super::WorkType;

/// xorshift steps in one spin unit: about 19 µs on a current x86 core in
/// an optimised build. The absolute length matters little; it only has to
/// dwarf the telemetry (two vDSO reads and a few stores).
pub(crate) const SPIN_STEPS: u32 = 10_000;
/// The "small compute unit" of YieldHeavy and PingPong.
pub(crate) const SMALL_STEPS: u32 = SPIN_STEPS / 10;

const BURST: u64 = 2_000_000;
const BURST_SLEEP: Duration = Duration::from_millis(1);
const MIXED_SLEEP: Duration = Duration::from_micros(200);
const UNPAIRED_SLEEP: Duration = Duration::from_micros(100);
const IDLE_SLEEP: Duration = Duration::from_millis(20);
const IDLE_BURST: u64 = 2_000_000;
/// AffinityChurn changes its mask every this many iterations.
const AFFINITY_EVERY: u64 = 8;

/// A fixed amount of dependent integer work the compiler cannot fold away.
#[inline(never)]
pub(crate) fn spin_unit(steps: u32) -> u64 {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..black_box(steps) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

/// One PingPong worker's side of its pair.
#[derive(Clone, Copy)]
pub(crate) struct Pair<'a> {
    pub word: &'a PairWord,
    /// 0 or 1; side 0 has the first turn.
    pub side: u32,
    pub partner: &'a Slot,
}

/// Everything a child needs, built by the parent before `fork` so the
/// child allocates nothing.
pub(crate) struct WorkerSpec<'a> {
    pub header: &'a Header,
    pub slot: &'a Slot,
    pub kind: WorkType,
    pub pair: Option<Pair<'a>>,
    pub telemetry: bool,
    pub epoch_ns: u64,
    pub parent: Pid,
}

/// The child's whole life. Never returns.
pub fn run(spec: WorkerSpec) -> ! {
    // Die with the parent. The signal fires when the forking *thread*
    // exits, and a parent that died before this call is caught by getppid.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != spec.parent {
        exit(0);
    }
    if !wait_for_release(spec.header, spec.slot) {
        exit(0);
    }
    // Named only now, in user space: a scheduler that singles out
    // ktstr-worker tasks (a stall knob) then catches them here, not inside
    // a syscall of their start-up, where a stalled task preempted in an RCU
    // read-side section would hold up every grace period, and with it the
    // parent's cgroup moves.
    let _ = prctl::set_name(c"ktstr-worker");
    let mut t = Tracker::start(spec.slot, spec.telemetry, spec.epoch_ns);
    let mut burst_start = now_ns();
    let mut affinity = Affinity::current();
    let mut i: u64 = 0;
    while spec.header.stop.load(Relaxed) == 0 {
        match spec.kind {
            WorkType::SpinWait => {
                spin_unit(SPIN_STEPS);
            }
            WorkType::YieldHeavy => {
                spin_unit(SMALL_STEPS);
                let _ = nix::sched::sched_yield();
            }
            WorkType::Mixed => match i % 3 {
                0 => {
                    spin_unit(SPIN_STEPS);
                }
                1 => {
                    let _ = nix::sched::sched_yield();
                }
                _ => t.sleep_for(MIXED_SLEEP),
            },
            WorkType::Bursty => {
                spin_unit(SPIN_STEPS);
                if now_ns().saturating_sub(burst_start) >= BURST {
                    t.sleep_for(BURST_SLEEP);
                    burst_start = now_ns();
                }
            }
            WorkType::PingPong => match spec.pair {
                Some(pair) => {
                    if !t.take_turn(pair) {
                        break;
                    }
                    spin_unit(SMALL_STEPS);
                    if !t.pass_turn(pair) {
                        break;
                    }
                }
                None => t.sleep_for(UNPAIRED_SLEEP),
            },
            WorkType::AffinityChurn => {
                spin_unit(SPIN_STEPS);
                if i % AFFINITY_EVERY == AFFINITY_EVERY - 1 {
                    affinity.churn(i / AFFINITY_EVERY);
                }
            }
            WorkType::ForkExit => {
                t.begin_sleep(None);
                if i.is_multiple_of(2) {
                    fork_and_reap();
                } else {
                    spawn_and_join_thread();
                }
                t.end_sleep();
            }
            WorkType::IdleBurst => {
                t.sleep_for(IDLE_SLEEP);
                let start = now_ns();
                while now_ns().saturating_sub(start) < IDLE_BURST {
                    spin_unit(SMALL_STEPS);
                }
            }
        }
        i += 1;
        t.iteration_done();
    }
    exit(0)
}

/// The CPU mask a worker started with, and turns to narrow it.
struct Affinity {
    all: libc::cpu_set_t,
}

impl Affinity {
    fn current() -> Affinity {
        // SAFETY: cpu_set_t is plain bits; sched_getaffinity fills it.
        let mut all: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut all) };
        Affinity { all }
    }

    /// Turn `n`: odd turns widen back to every CPU, even turns narrow to
    /// the (n/2)th allowed CPU, round the set. Errors are ignored: a CPU
    /// that went offline meanwhile only makes this turn a no-op.
    fn churn(&mut self, n: u64) {
        let mut mask = self.all;
        if n.is_multiple_of(2) {
            // SAFETY: CPU_COUNT/CPU_ISSET/CPU_SET only read and write the bits.
            let allowed = unsafe { libc::CPU_COUNT(&self.all) } as u64;
            if allowed == 0 {
                return;
            }
            let want = (n / 2) % allowed;
            let cpu = (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| unsafe { libc::CPU_ISSET(c, &self.all) })
                .nth(want as usize);
            let Some(cpu) = cpu else { return };
            unsafe { libc::CPU_ZERO(&mut mask) };
            unsafe { libc::CPU_SET(cpu, &mut mask) };
        }
        // SAFETY: a valid mask of the right size for the calling thread.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mask) };
    }
}

/// A short-lived child: one small compute unit, then `_exit`. Waits for it.
fn fork_and_reap() {
    // SAFETY: the child computes and `_exit`s; it touches no lock.
    match unsafe { libc::fork() } {
        0 => {
            spin_unit(SMALL_STEPS);
            exit(0)
        }
        pid if pid > 0 => {
            let mut status = 0;
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
        _ => {}
    }
}

extern "C" fn thread_body(_: *mut libc::c_void) -> *mut libc::c_void {
    spin_unit(SMALL_STEPS);
    std::ptr::null_mut()
}

/// A short-lived thread: one small compute unit. Joins it. pthread_create
/// (not std::thread) keeps Rust's thread bookkeeping out of a forked
/// child; glibc resets its own locks in the child of a fork.
fn spawn_and_join_thread() {
    // SAFETY: a plain pthread with a function that touches only the stack.
    unsafe {
        let mut th: libc::pthread_t = std::mem::zeroed();
        if libc::pthread_create(&mut th, std::ptr::null(), thread_body, std::ptr::null_mut()) == 0 {
            libc::pthread_join(th, std::ptr::null_mut());
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit runs no destructors or atexit handlers, which is the point.
    unsafe { libc::_exit(code) }
}

/// Blocks until the parent releases the set. False: it stopped it instead.
fn wait_for_release(header: &Header, slot: &Slot) -> bool {
    slot.sleep_until.store(UNTIL_WOKEN, Relaxed);
    loop {
        match header.release.load(Acquire) {
            0 => futex_wait(&header.release, 0),
            r => return r == RELEASE_GO,
        }
    }
}

/// Per-iteration telemetry: the worker's private state plus its slot.
pub(crate) struct Tracker<'a> {
    slot: &'a Slot,
    on: bool,
    epoch_ns: u64,
    prev_ns: u64,
    prev_cpu: u32,
    iterations: u64,
    migrations: u64,
}

#[inline]
fn current_cpu() -> u32 {
    nix::sched::sched_getcpu().map(|c| c as u32).unwrap_or(0)
}

impl<'a> Tracker<'a> {
    /// Called once, right after release.
    pub fn start(slot: &'a Slot, on: bool, epoch_ns: u64) -> Self {
        let (now, cpu) = if on { (now_ns(), current_cpu()) } else { (0, 0) };
        Self::start_at(slot, on, epoch_ns, now, cpu)
    }

    pub(crate) fn start_at(slot: &'a Slot, on: bool, epoch_ns: u64, now: u64, cpu: u32) -> Self {
        let t = Tracker { slot, on, epoch_ns, prev_ns: now, prev_cpu: cpu, iterations: 0, migrations: 0 };
        if on {
            t.slot.heartbeat_ns.store(now, Relaxed);
        }
        t.slot.sleep_until.store(AWAKE, Relaxed);
        t
    }

    /// End of one iteration: count it and, with telemetry, observe it.
    #[inline]
    pub(crate) fn iteration_done(&mut self) {
        if self.on {
            self.iteration_at(now_ns(), current_cpu());
        } else {
            self.iterations += 1;
            self.slot.iterations.store(self.iterations, Relaxed);
            if self.iterations == 1 {
                // The set-up benchmark needs this even without telemetry.
                self.slot.first_iter_ns.store(now_ns(), Relaxed);
            }
        }
    }

    /// Records one iteration ending at `now` on `cpu`.
    #[inline]
    pub(crate) fn iteration_at(&mut self, now: u64, cpu: u32) {
        self.iterations += 1;
        self.slot.iterations.store(self.iterations, Relaxed);
        if self.iterations == 1 {
            self.slot.first_iter_ns.store(now, Relaxed);
        }
        self.observe(now, cpu);
    }

    /// The time since the previous observation (or wake-up) is a candidate
    /// gap; `cpu` is where it resumed.
    #[inline]
    fn observe(&mut self, now: u64, cpu: u32) {
        let slot = self.slot;
        slot.heartbeat_ns.store(now, Relaxed);
        let gap = now.saturating_sub(self.prev_ns);
        if gap > unpack_gap(slot.max_gap.load(Relaxed)).0 {
            // `at` first: the parent swaps `max_gap` and then reads `at`.
            slot.max_gap_at_ns.store(self.prev_ns.saturating_sub(self.epoch_ns), Relaxed);
            slot.max_gap.store(pack_gap(gap, cpu), Release);
        }
        if cpu != self.prev_cpu {
            self.migrations += 1;
            slot.migrations.store(self.migrations, Relaxed);
        }
        slot.mark_cpu(cpu);
        self.prev_ns = now;
        self.prev_cpu = cpu;
    }

    /// About to sleep at `now` on `cpu`, for `dur` or (None) until woken.
    /// The run up to here is observed, so no running time escapes the gap
    /// check; the slot then says asleep until when.
    pub(crate) fn begin_sleep_at(&mut self, now: u64, cpu: u32, dur: Option<Duration>) {
        if self.on {
            self.observe(now, cpu);
            let until = dur.map_or(UNTIL_WOKEN, |d| now + d.as_nanos() as u64);
            self.slot.sleep_until.store(until, Relaxed);
        }
    }

    fn begin_sleep(&mut self, dur: Option<Duration>) {
        if self.on {
            self.begin_sleep_at(now_ns(), current_cpu(), dur);
        }
    }

    /// Awake again at `now`: the sleep is not a gap, so timing restarts here.
    pub(crate) fn end_sleep_at(&mut self, now: u64) {
        if self.on {
            self.slot.heartbeat_ns.store(now, Relaxed);
            self.slot.sleep_until.store(AWAKE, Relaxed);
            self.prev_ns = now;
        }
    }

    fn end_sleep(&mut self) {
        if self.on {
            self.end_sleep_at(now_ns());
        }
    }

    fn sleep_for(&mut self, d: Duration) {
        self.begin_sleep(Some(d));
        std::thread::sleep(d);
        self.end_sleep();
    }

    /// Waits for this side's turn. False: the set is stopping.
    fn take_turn(&mut self, pair: Pair) -> bool {
        match pair.word.turn.load(Acquire) {
            t if t == pair.side => return true,
            PAIR_STOP => return false,
            _ => {}
        }
        self.begin_sleep(None);
        let go = loop {
            match pair.word.turn.load(Acquire) {
                t if t == pair.side => break true,
                PAIR_STOP => break false,
                t => futex_wait(&pair.word.turn, t),
            }
        };
        self.end_sleep();
        go
    }

    /// Hands the turn to the partner and wakes it. False: the set is stopping.
    fn pass_turn(&mut self, pair: Pair) -> bool {
        if pair.word.turn.compare_exchange(pair.side, 1 - pair.side, Release, Relaxed).is_err() {
            return false;
        }
        if self.on {
            // From here the partner is due to run: `stuck()` counts from now.
            let _ = pair.partner.sleep_until.compare_exchange(UNTIL_WOKEN, self.prev_ns, Relaxed, Relaxed);
        }
        futex_wake(&pair.word.turn, 1);
        true
    }
}
