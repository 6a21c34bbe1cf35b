//! Build once, run on many machines: `cargo ktstr archive` bundles this
//! file's VM tests, and two "machines" (two directories, each with its
//! own empty ktstr cache, a PATH without cargo or rustc, no source tree)
//! unpack it and each run one hash partition of it with
//! `ktstr-archive/ktstr test --archive ... --partition hash:K/2`. The
//! union of what they ran is the whole suite, no test ran twice, and the
//! failing test's report and failure dump are on the machine that ran it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ktstr::prelude::*;

/// The suite the machines share: quick VM tests without a scheduler, one
/// of them failing on purpose.
macro_rules! passing {
    ($($name:ident),*) => {$(
        #[ktstr_test(cores = 1, duration_s = 1)]
        #[ignore = "part of the bundled suite of the_partitions_of_a_bundle_run_the_whole_suite_once"]
        fn $name(_ctx: &Ctx) -> Result<AssertResult> {
            Ok(AssertResult::pass())
        }
    )*};
}
passing!(archived_alpha, archived_bravo, archived_charlie, archived_delta);

#[ktstr_test(cores = 1, duration_s = 1)]
#[ignore = "part of the bundled suite of the_partitions_of_a_bundle_run_the_whole_suite_once"]
fn archived_failing(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::fail("failing on purpose, on whichever machine runs it"))
}

const SUITE: [&str; 5] = ["archived_alpha", "archived_bravo", "archived_charlie", "archived_delta", "archived_failing"];

/// One machine's run: its exit status, its stderr, and the tests it ran
/// with their result (nextest's `PASS`/`FAIL` lines).
struct Machine {
    root: PathBuf,
    ok: bool,
    stderr: String,
    ran: BTreeMap<String, String>,
}

fn run_share(bundle: &Path, root: &Path, k: u32) -> Machine {
    std::fs::create_dir_all(root.join("cache")).unwrap();
    let untar = Command::new("tar").arg("-xf").arg(bundle).arg("-C").arg(root).status().expect("running tar");
    assert!(untar.success(), "unpacking the bundle into {}", root.display());
    let top = root.join("ktstr-archive");
    let mut cmd = Command::new(top.join("ktstr"));
    cmd.args(["test", "--archive"]).arg(&top).args(["--partition", &format!("hash:{k}/2")]);
    cmd.args(["--", "--run-ignored", "ignored-only", "--no-fail-fast"]);
    // A machine with QEMU and nothing of this one's: no cargo or rustc on
    // PATH, its own empty cache, none of this run's cargo or nextest state.
    for (var, _) in std::env::vars_os() {
        let v = var.to_string_lossy();
        if v.starts_with("CARGO") || v.starts_with("NEXTEST") || v.starts_with("KTSTR") || v == "RUSTUP_TOOLCHAIN" {
            cmd.env_remove(&var);
        }
    }
    cmd.env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    cmd.env("KTSTR_CACHE_DIR", root.join("cache"));
    let out = cmd.output().expect("running the bundle's ktstr");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("--- machine {k} ({}) ---\n{stderr}", root.display());
    let line = regex::Regex::new(r"^\s+(PASS|FAIL) \[[^\]]*\] (?:\(\s*\d+/\d+\) )?\S+ (\S+)$").unwrap();
    let ran = stderr.lines().filter_map(|l| line.captures(l)).map(|c| (c[2].to_string(), c[1].to_string())).collect();
    Machine { root: root.to_path_buf(), ok: out.status.success(), stderr, ran }
}

#[test]
fn the_partitions_of_a_bundle_run_the_whole_suite_once() {
    let dir = std::env::temp_dir().join(format!("ktstr-archive-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("suite.ktstr.tar");
    let built = Command::new(env!("CARGO_BIN_EXE_cargo-ktstr"))
        .args(["ktstr", "archive"])
        .arg(&bundle)
        // The workspace's selection, narrowed to this file's test target:
        // `-p cargo-ktstr` alone would resolve other features than the
        // suite's build, rebuilding (and replacing) binaries in use.
        .args(["--no-installed-schedulers", "--", "--test", "archive"])
        .output()
        .expect("running cargo ktstr archive");
    let text = String::from_utf8_lossy(&built.stderr);
    eprintln!("{text}");
    assert!(built.status.success(), "cargo ktstr archive failed");
    assert!(text.contains(" with its debug vmlinux"), "the cached debug vmlinux is bundled: {text}");

    let machines = [run_share(&bundle, &dir.join("machine-1"), 1), run_share(&bundle, &dir.join("machine-2"), 2)];
    let mut union: Vec<&str> = machines.iter().flat_map(|m| m.ran.keys().map(String::as_str)).collect();
    union.sort();
    assert_eq!(union, SUITE, "each test ran exactly once, on one machine or the other");
    assert!(machines.iter().all(|m| !m.ran.is_empty()), "both machines had a share");

    for m in &machines {
        // Each machine adopted the bundle's kernel (with its debug vmlinux).
        let kernels: Vec<PathBuf> = std::fs::read_dir(m.root.join("cache/kernels"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("vmlinuz").is_file())
            .collect();
        assert_eq!(kernels.len(), 1, "{kernels:?}");
        assert!(kernels[0].join("vmlinux.debug").is_file(), "no debug vmlinux in {}", kernels[0].display());
        let failing = m.ran.get("archived_failing");
        assert_eq!(m.ok, failing.is_none(), "a machine fails exactly when it ran the failing test");
        if failing.is_none() {
            assert!(!m.stderr.contains("failing on purpose"), "{}", m.stderr);
            continue;
        }
        assert_eq!(failing.map(String::as_str), Some("FAIL"));
        // The report, and the outputs block naming a dump on this machine.
        assert!(m.stderr.contains("ktstr_test 'archived_failing' [topo=1n1l1c1t] failed:"), "{}", m.stderr);
        assert!(m.stderr.contains("failing on purpose, on whichever machine runs it"), "{}", m.stderr);
        let dump_line = m.stderr.lines().find(|l| l.trim_start().starts_with("failure dump ")).expect("outputs block");
        let dump = PathBuf::from(dump_line.trim_start().trim_start_matches("failure dump "));
        assert!(dump.starts_with(&m.root), "the dump {} is on the machine that ran the test", dump.display());
        assert!(dump.is_file(), "{} was not written", dump.display());
        let stats = dump
            .with_file_name(dump.file_name().unwrap().to_string_lossy().replace(".failure-dump.json", ".ktstr.json"));
        assert!(stats.is_file(), "its stats sidecar {} is beside it", stats.display());
        // Rerun through the bundle: the runner has no cargo.
        let top = m.root.join("ktstr-archive").display().to_string();
        let rerun =
            format!("    replay {top}/ktstr test --archive {top} -- --run-ignored all -E 'test(=archived_failing)'");
        assert!(m.stderr.lines().any(|l| l == rerun), "{}", m.stderr);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
