//! Snapshots shared by concurrent runs: several test processes that start
//! at once with no snapshot for their key make exactly one (the others
//! wait for it), the first to feed its base image saves exactly one with
//! it unpacked (the others do not wait), every run passes, and nothing is
//! left half-made. Runs after that start with the base image unpacked.
//!
//! The payload's memory size is its own, so its key is no other test's:
//! the test may remove that key's snapshots to start from none.

use std::path::PathBuf;
use std::process::{Command, Output};

use ktstr::prelude::*;

#[ktstr_test(cores = 1, memory_mb = 1792)]
#[ignore = "the VM half of concurrent_runs_share_one_snapshot_and_leave_nothing_half_made"]
fn snapshot_payload(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

/// Runs the payload in a new process of this binary, tracing the VM's
/// start (`RUST_LOG`): how it started is in its diagnostics line.
fn spawn() -> std::process::Child {
    Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "snapshot_payload", "--ignored", "--nocapture"])
        .env("RUST_LOG", "ktstr::vm=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running this test binary again")
}

/// The snapshot each run started from (its key, as the trace says), after
/// checking that it passed.
fn started_from(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the payload failed:\n{err}");
    let line =
        err.lines().find(|l| l.contains("restore: guest running")).unwrap_or_else(|| panic!("not restored:\n{err}"));
    let key = line.split("snapshot=\"").nth(1).and_then(|r| r.split('"').next());
    key.unwrap_or_else(|| panic!("no key in {line}")).to_string()
}

fn run_concurrently(n: usize) -> Vec<String> {
    let children: Vec<_> = (0..n).map(|_| spawn()).collect();
    children.into_iter().map(|c| started_from(c.wait_with_output().expect("waiting for a run"))).collect()
}

fn snapshots_dir() -> PathBuf {
    ktstr::cache::cache_subdir("snapshots")
}

/// The entries of the snapshot directory that belong to booted key `key`.
fn entries_of(key: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(snapshots_dir())
        .expect("the snapshot directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.trim_start_matches('.').starts_with(key))
        .collect();
    names.sort();
    names
}

#[test]
fn concurrent_runs_share_one_snapshot_and_leave_nothing_half_made() {
    // One run to learn this payload's key, then none of its snapshots.
    let first = run_concurrently(1).remove(0);
    let booted = first.split('-').next().unwrap().to_string();
    for name in entries_of(&booted).iter().filter(|n| !n.ends_with(".lock")) {
        std::fs::remove_dir_all(snapshots_dir().join(name)).expect("removing the payload's snapshots");
    }
    assert!(entries_of(&booted).iter().all(|n| n.ends_with(".lock")), "{:?}", entries_of(&booted));

    let keys = run_concurrently(3);
    eprintln!("three at once started from: {keys:?}");
    assert!(keys.iter().all(|k| k.starts_with(&booted)), "{keys:?}");
    let names = entries_of(&booted);
    let made: Vec<&String> = names.iter().filter(|n| !n.ends_with(".lock")).collect();
    assert!(made.iter().all(|n| !n.starts_with('.')), "a staging directory was left: {names:?}");
    let unpacked: Vec<&&String> = made.iter().filter(|n| n.contains('-')).collect();
    assert_eq!(made.iter().filter(|n| !n.contains('-')).count(), 1, "one booted snapshot: {names:?}");
    assert_eq!(unpacked.len(), 1, "one snapshot with the base image unpacked: {names:?}");
    for name in &made {
        assert!(snapshots_dir().join(name).join("state").is_file(), "{name} has no state");
    }

    let again = run_concurrently(2);
    eprintln!("two more started from: {again:?}");
    assert!(again.iter().all(|k| k == *unpacked[0]), "{again:?}, not {}", unpacked[0]);
}
