//! Host CPU slots: every VM holds one flock'ed slot per host thread it
//! keeps busy, so parallel tests (nextest, cargo test) never oversubscribe
//! the machine and hit their wall-clock limits for want of CPU.

use std::fs::File;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

pub struct CpuSlots {
    _held: Vec<Flock<File>>,
}

/// Waits until `want` of the host's slots are free and takes them.
pub fn acquire(want: u32, total: u32, wait_limit: Duration) -> anyhow::Result<CpuSlots> {
    let dir = crate::cache::cache_subdir("locks");
    std::fs::create_dir_all(&dir)?;
    let want = want.clamp(1, total.max(1));
    let started = Instant::now();
    loop {
        let mut held = Vec::new();
        for i in 0..total {
            let f = File::options().create(true).truncate(false).write(true).open(dir.join(format!("cpu-{i}.lock")))?;
            if let Ok(lock) = Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                held.push(lock);
                if held.len() as u32 == want {
                    return Ok(CpuSlots { _held: held });
                }
            }
        }
        drop(held);
        anyhow::ensure!(
            started.elapsed() < wait_limit,
            "waited {}s for {want} of {total} host CPU slots in {}: other ktstr VMs hold them \
             (a stuck qemu? see `ps -C qemu-system-x86_64`)",
            wait_limit.as_secs(),
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50 + (std::process::id() % 50) as u64));
    }
}
