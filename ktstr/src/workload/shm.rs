//! The memory a worker set shares with its forked workers: one anonymous
//! `MAP_SHARED` region holding a header (release and stop words), one futex
//! word per PingPong pair and one slot per worker. Everything in it is an
//! atomic, so the all-zero pages `mmap` hands out are a valid initial state.

use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};

/// CPUs the per-interval CPU set can name; higher ones still count
/// migrations but are left out of `cpus`.
pub const MAX_CPUS: usize = 256;

/// `Slot::sleep_until` while awake.
pub(crate) const AWAKE: u64 = 0;
/// `Slot::sleep_until` while blocked until another process wakes it.
pub(crate) const UNTIL_WOKEN: u64 = u64::MAX;

/// Release word values.
pub(crate) const RELEASE_GO: u32 = 1;
pub(crate) const RELEASE_STOP: u32 = 2;
/// Pair word value that tells both sides to exit; otherwise it holds the
/// side (0 or 1) whose turn it is.
pub(crate) const PAIR_STOP: u32 = 2;

/// Bits of `Slot::max_gap` below the gap length that hold the CPU.
const GAP_CPU_BITS: u32 = 16;
const GAP_CPU_MASK: u64 = (1 << GAP_CPU_BITS) - 1;
const GAP_NS_MAX: u64 = u64::MAX >> GAP_CPU_BITS;

#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct Header {
    pub release: AtomicU32,
    pub stop: AtomicU32,
}

/// A futex word on its own cache line so two pairs never share one.
#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct PairWord {
    pub turn: AtomicU32,
}

/// One worker's telemetry. Only that worker writes the cumulative fields;
/// the parent drains the per-interval ones (`max_gap`, `cpus`) by swapping
/// in zero. 128-byte alignment keeps neighbours off the adjacent line the
/// hardware prefetcher pairs with this one.
#[repr(C, align(128))]
#[derive(Default)]
pub(crate) struct Slot {
    pub iterations: AtomicU64,
    pub migrations: AtomicU64,
    /// CLOCK_MONOTONIC of the last iteration (or wake-up).
    pub heartbeat_ns: AtomicU64,
    /// CLOCK_MONOTONIC of the first iteration; 0 until then.
    pub first_iter_ns: AtomicU64,
    /// `AWAKE`, `UNTIL_WOKEN`, or the CLOCK_MONOTONIC deadline of a timed
    /// sleep: lets `stuck()` tell a blocked worker from a starved one.
    pub sleep_until: AtomicU64,
    /// Longest gap this interval, packed with its CPU (see `pack_gap`) so
    /// the parent's swap takes both at once.
    pub max_gap: AtomicU64,
    /// Offset from the epoch at which that gap began.
    pub max_gap_at_ns: AtomicU64,
    /// CPUs run on this interval, one bit each.
    pub cpus: [AtomicU64; MAX_CPUS / 64],
}

pub(crate) fn pack_gap(gap_ns: u64, cpu: u32) -> u64 {
    (gap_ns.min(GAP_NS_MAX) << GAP_CPU_BITS) | (u64::from(cpu) & GAP_CPU_MASK)
}

/// (gap_ns, cpu)
pub(crate) fn unpack_gap(packed: u64) -> (u64, u32) {
    (packed >> GAP_CPU_BITS, (packed & GAP_CPU_MASK) as u32)
}

impl Slot {
    /// Marks `cpu` in this interval's set. The load first keeps the common
    /// case (bit already set) a read of our own line.
    #[inline]
    pub(crate) fn mark_cpu(&self, cpu: u32) {
        let Some(word) = self.cpus.get(cpu as usize / 64) else { return };
        let bit = 1u64 << (cpu % 64);
        if word.load(Ordering::Relaxed) & bit == 0 {
            word.fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// Takes and clears the interval's CPU set, as a sorted list.
    pub(crate) fn drain_cpus(&self) -> Vec<u32> {
        let mut cpus = Vec::new();
        for (i, word) in self.cpus.iter().enumerate() {
            let mut bits = word.swap(0, Ordering::Relaxed);
            while bits != 0 {
                cpus.push(i as u32 * 64 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
        cpus
    }
}

/// The mapped region. Dropping it unmaps it; the owner must make sure no
/// worker is still using it (workers have their own mapping, so only the
/// parent's view goes away).
pub(crate) struct Region {
    base: NonNull<u8>,
    len: usize,
    pairs: usize,
    slots: usize,
}

// The region holds only atomics.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    pub fn new(pairs: usize, slots: usize) -> anyhow::Result<Region> {
        let len = Self::slots_offset(pairs) + slots * size_of::<Slot>();
        let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        // SAFETY: a fresh anonymous mapping aliases nothing.
        let base = unsafe { mmap_anonymous(None, NonZeroUsize::new(len).unwrap(), prot, MapFlags::MAP_SHARED) }
            .map_err(|e| anyhow::anyhow!("mmap of {len} bytes of shared worker telemetry failed: {e}"))?;
        Ok(Region { base: base.cast(), len, pairs, slots })
    }

    fn slots_offset(pairs: usize) -> usize {
        (size_of::<Header>() + pairs * size_of::<PairWord>()).next_multiple_of(align_of::<Slot>())
    }

    pub fn header(&self) -> &Header {
        // SAFETY: offset 0 is in bounds and page-aligned; zeroed atomics are valid.
        unsafe { &*self.base.as_ptr().cast::<Header>() }
    }

    pub fn pair(&self, i: usize) -> &PairWord {
        assert!(i < self.pairs);
        let off = size_of::<Header>() + i * size_of::<PairWord>();
        // SAFETY: in bounds (asserted), aligned (64-byte strides from a page).
        unsafe { &*self.base.as_ptr().add(off).cast::<PairWord>() }
    }

    pub(crate) fn slot(&self, i: usize) -> &Slot {
        assert!(i < self.slots);
        let off = Self::slots_offset(self.pairs) + i * size_of::<Slot>();
        // SAFETY: in bounds (asserted) and aligned (`slots_offset` rounds
        // up to the slot alignment; the base is page-aligned).
        unsafe { &*self.base.as_ptr().add(off).cast::<Slot>() }
    }

    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        (0..self.slots).map(|i| self.slot(i))
    }

    pub fn pairs(&self) -> impl Iterator<Item = &PairWord> {
        (0..self.pairs).map(|i| self.pair(i))
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range and hand out no references
        // that outlive `self`.
        let _ = unsafe { munmap(self.base.cast(), self.len) };
    }
}

/// Blocks while `*word == expected`. Returns on a wake, a signal, or at
/// once if the value already differs; callers re-check in a loop. Not
/// FUTEX_PRIVATE: the word is shared between processes.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a valid, aligned u32 for the call's duration.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, std::ptr::null::<libc::timespec>());
    }
}

/// Wakes up to `n` waiters on `word`.
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: as above; FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n);
    }
}

/// CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall on the usual clocksources).
#[inline]
pub(crate) fn now_ns() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_MONOTONIC).map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64).unwrap_or(0)
}
