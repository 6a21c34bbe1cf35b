//! Host CPU slots: every VM holds one flock'ed slot per host thread it
//! keeps busy, so parallel tests (nextest, cargo test) never oversubscribe
//! the machine and hit their wall-clock limits for want of CPU.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

pub(crate) struct CpuSlots {
    _held: Vec<Flock<File>>,
}

/// Waits until `want` of the host's `total` slots are free and takes them.
///
/// A waiter first takes the turnstile and keeps it until its slots are
/// free, so a VM that needs several slots is not starved by a stream of
/// VMs that need one.
pub(crate) fn acquire(want: u32, total: u32, wait_limit: Duration) -> anyhow::Result<CpuSlots> {
    acquire_in(&crate::cache::cache_subdir("locks"), want, total, wait_limit)
}

fn acquire_in(dir: &Path, want: u32, total: u32, wait_limit: Duration) -> anyhow::Result<CpuSlots> {
    std::fs::create_dir_all(dir)?;
    let want = want.clamp(1, total.max(1));
    let started = Instant::now();
    let _waited = Waited { started, want, total };
    let timed_out = || {
        anyhow::Error::new(super::HostFault(format!(
            "waited {}s for {want} of {total} host CPU slots in {}: other ktstr VMs hold them \
             (a stuck qemu? see `ps -C qemu-system-x86_64`; KTSTR_SLOT_WAIT_S sets the wait)",
            wait_limit.as_secs(),
            dir.display()
        )))
    };
    let _turnstile = loop {
        if let Some(lock) = try_lock(&dir.join("turnstile.lock"))? {
            break lock;
        }
        anyhow::ensure!(started.elapsed() < wait_limit, timed_out());
        std::thread::sleep(backoff());
    };
    loop {
        let mut held = Vec::new();
        for i in 0..total {
            if let Some(lock) = try_lock(&dir.join(format!("cpu-{i}.lock")))? {
                held.push(lock);
                if held.len() as u32 == want {
                    return Ok(CpuSlots { _held: held });
                }
            }
        }
        drop(held);
        anyhow::ensure!(started.elapsed() < wait_limit, timed_out());
        std::thread::sleep(backoff());
    }
}

/// Says how long the slots took, when they were not free at once: a run
/// that seems slow may have queued behind other VMs.
struct Waited {
    started: Instant,
    want: u32,
    total: u32,
}

impl Drop for Waited {
    fn drop(&mut self) {
        let waited = self.started.elapsed();
        if waited > Duration::from_millis(500) {
            tracing::info!(
                want = self.want,
                total = self.total,
                "waited {:.1}s for host CPU slots",
                waited.as_secs_f64()
            );
        } else {
            tracing::debug!(want = self.want, total = self.total, "host CPU slots taken");
        }
    }
}

fn try_lock(path: &Path) -> anyhow::Result<Option<Flock<File>>> {
    let f = File::options().create(true).truncate(false).write(true).open(path)?;
    Ok(Flock::lock(f, FlockArg::LockExclusiveNonblock).ok())
}

/// 50-100 ms, varied per process so pollers don't move in lockstep.
fn backoff() -> Duration {
    Duration::from_millis(50 + (std::process::id() % 50) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("ktstr-slots-{}", std::process::id()));
        let all = acquire_in(&dir, 2, 2, Duration::from_secs(1)).unwrap();
        let err = acquire_in(&dir, 1, 2, Duration::from_millis(200)).err().expect("no slot may be free");
        assert!(err.to_string().starts_with("waited 0s for 1 of 2 host CPU slots"), "{err}");
        drop(all);
        let one = acquire_in(&dir, 1, 2, Duration::from_secs(1)).unwrap();
        // One slot left: a second single-slot VM fits, a two-slot one waits.
        let _other = acquire_in(&dir, 1, 2, Duration::from_secs(1)).unwrap();
        drop(one);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
