//! Helpers shared by the VM tests of this crate: guest-side ones, and
//! running a payload from the host.
#![allow(dead_code)] // each test file uses some of them

use std::ffi::CStr;

use ktstr::outcome::RunOutcome;
use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, RunOptions};

/// Runs a payload (auto-repro off) and returns its outcome; a failed run
/// fails the calling test with its report.
pub fn run_passing(payload: &str) -> RunOutcome {
    let entry = find_test(payload).expect("payload registered");
    let opts = RunOptions { auto_repro: Some(false), ..Default::default() };
    match run_ktstr_test_with(entry, &opts) {
        Ok(o) => o,
        Err(f) => panic!("{payload} failed:\n{}", f.report),
    }
}

/// The pid of the guest's only `scx-ktstr` process.
pub fn scheduler_pid() -> Result<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if let (true, Ok(pid)) = (comm.trim() == "scx-ktstr", entry.file_name().to_string_lossy().parse()) {
            pids.push(pid);
        }
    }
    ensure!(pids.len() == 1, "found scx-ktstr processes {pids:?}, want exactly one");
    Ok(pids[0])
}

/// Nanoseconds `pid` has spent on a CPU (first field of schedstat).
pub fn run_ns(pid: i32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))?;
    Ok(stat.split_whitespace().next().unwrap_or_default().parse()?)
}

/// Forks a child that names itself `comm` and spins until killed.
pub fn spawn_spinner(comm: &CStr) -> Result<i32> {
    // SAFETY: the child only calls prctl(2) and spins: nothing that the
    // other threads of this process could have left locked.
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => unsafe {
            libc::prctl(libc::PR_SET_NAME, comm.as_ptr());
            loop {
                std::hint::spin_loop();
            }
        },
        pid => Ok(pid),
    }
}

/// Forks a `ktstr-worker` and a `spin-other` spinner, lets the scheduler
/// settle (1.5 s: time for a first slice to run out), then returns how
/// many ns each ran in the next second. Both are killed afterwards (a
/// stalled one dies once the scheduler detaches).
pub fn spinners_run_ns() -> Result<(u64, u64)> {
    let worker = spawn_spinner(c"ktstr-worker")?;
    let other = spawn_spinner(c"spin-other")?;
    std::thread::sleep(Duration::from_millis(1500));
    let before = (run_ns(worker)?, run_ns(other)?);
    std::thread::sleep(Duration::from_secs(1));
    let after = (run_ns(worker)?, run_ns(other)?);
    for pid in [worker, other] {
        // SAFETY: plain kill(2) on our own children.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    Ok((after.0 - before.0, after.1 - before.1))
}
