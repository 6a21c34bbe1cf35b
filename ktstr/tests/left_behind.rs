//! A test process killed mid-run (SIGKILL: a CI timeout, a user) leaves
//! nothing behind: its QEMU dies with it, and a sweep (each run does one,
//! naming what it removes on stderr) removes its RAM files from /dev/shm
//! and its run directory. Checked here: the QEMU's death and the removals;
//! the stderr line is not (another test process of the suite may sweep
//! first).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ktstr::prelude::*;

#[ktstr_test(cores = 1)]
#[ignore = "the VM half of a_killed_run_leaves_nothing_behind"]
fn payload_long(_ctx: &Ctx) -> Result<AssertResult> {
    std::thread::sleep(Duration::from_secs(30));
    Ok(AssertResult::pass())
}

fn this_binary(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args(["--exact", test, "--ignored", "--nocapture"]);
    cmd
}

mod common;

fn ram_files_of(pid: u32) -> Vec<String> {
    let prefix = format!("ktstr-ram-{pid}-");
    let names = std::fs::read_dir("/dev/shm").map(|rd| rd.flatten().collect::<Vec<_>>()).unwrap_or_default();
    names.iter().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with(&prefix)).collect()
}

#[test]
fn a_killed_run_leaves_nothing_behind() {
    // Its run directory under a base of its own, to find it.
    let runs = std::env::temp_dir().join(format!("ktstr-left-behind-{}", std::process::id()));
    std::fs::create_dir_all(&runs).unwrap();
    let mut child = this_binary("payload_long")
        .env("KTSTR_RUN_DIR", &runs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let qemu = loop {
        if let Some(&q) = common::qemu_children_of(child.id()).first() {
            break q;
        }
        assert!(Instant::now() < deadline, "the payload's QEMU never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(1));
    let left = ram_files_of(child.id());
    let run_dirs = || std::fs::read_dir(&runs).unwrap().flatten().map(|e| e.path()).collect::<Vec<_>>();
    child.kill().unwrap();
    child.wait().unwrap();

    // Its QEMU dies with it.
    let gone = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{qemu}")).exists() {
        assert!(Instant::now() < gone, "QEMU {qemu} outlived its killed test process");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("the killed run left in /dev/shm: {left:?}");
    assert!(!left.is_empty(), "the killed run had no RAM files (the monitor reads guest RAM from them)");

    // The next run's sweep (each run does it once, and says what it
    // removed) leaves none of it; another test process of the suite may
    // have swept first.
    let dirs = run_dirs();
    assert_eq!(dirs.len(), 1, "the killed run's directory: {dirs:?}");
    // SAFETY: one test per process; the sweep reads it on this thread.
    unsafe { std::env::set_var("KTSTR_RUN_DIR", &runs) };
    let next = ktstr::test_support::sweep_killed_runs();
    eprintln!("swept: {next:?}");
    assert!(ram_files_of(child.id()).is_empty(), "left behind: {:?}", ram_files_of(child.id()));
    assert!(next.contains(&dirs[0]), "its run directory {} was not swept: {next:?}", dirs[0].display());
    assert!(run_dirs().is_empty(), "left behind: {:?}", run_dirs());
    std::fs::remove_dir(&runs).unwrap();
}
