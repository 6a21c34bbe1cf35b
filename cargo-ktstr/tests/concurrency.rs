//! Two `cargo ktstr test` runs at once on one host, from an empty cache:
//! both fetch the default kernel (one waits on the fetch lock and uses
//! what the other fetched), build their initramfs images and boot their
//! VMs side by side. Afterwards the kernel cache has one complete entry
//! and no staging leftovers, the initramfs cache only complete images, and
//! both runs' stats sidecars and the run record parse.
//!
//! Downloads Debian's kernel once (about 15 MB, plus the package index).

use std::path::Path;
use std::process::{Command, Stdio};

use ktstr::prelude::*;

#[ktstr_test(cores = 1, duration_s = 1)]
#[ignore = "run by two_test_runs_at_once_from_an_empty_cache"]
fn concurrent_a(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

#[ktstr_test(cores = 1, duration_s = 1)]
#[ignore = "run by two_test_runs_at_once_from_an_empty_cache"]
fn concurrent_b(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn two_test_runs_at_once_from_an_empty_cache() {
    let root = std::env::temp_dir().join(format!("ktstr-concurrency-{}", std::process::id()));
    let (cache, out) = (root.join("cache"), root.join("out"));
    std::fs::create_dir_all(&cache).unwrap();
    let start = |test: &str| {
        Command::new(env!("CARGO_BIN_EXE_cargo-ktstr"))
            .args(["ktstr", "test", "--", "--run-ignored", "all", "-E"])
            .arg(format!("binary_id(cargo-ktstr::concurrency) & test(={test})"))
            .env("KTSTR_CACHE_DIR", &cache)
            .env(ktstr::artifacts::OUTPUT_DIR_ENV, &out)
            .env_remove("KTSTR_KERNEL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting cargo-ktstr")
    };
    let (a, b) = (start("concurrent_a"), start("concurrent_b"));
    for (name, child) in [("concurrent_a", a), ("concurrent_b", b)] {
        let o = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&o.stderr);
        eprintln!("--- cargo ktstr test ({name})\n{text}");
        assert!(o.status.success(), "{name} failed:\n{text}");
        assert!(text.contains("1 test run: 1 passed"), "{name} did not run exactly its test:\n{text}");
    }

    let kernels = cache.join("kernels");
    let entries: Vec<String> =
        names(&kernels).into_iter().filter(|n| !n.starts_with('.') || n.starts_with(".staging")).collect();
    assert_eq!(entries.len(), 1, "one kernel entry and no staging leftovers: {entries:?}");
    let entry = kernels.join(&entries[0]);
    for f in ["vmlinuz", "config", "meta.json"] {
        assert!(entry.join(f).is_file(), "{} lacks {f}", entry.display());
    }
    serde_json::from_slice::<serde_json::Value>(&std::fs::read(entry.join("meta.json")).unwrap()).expect("meta.json");

    let images = names(&cache.join("initramfs"));
    assert!(!images.is_empty(), "no initramfs image cached");
    for i in &images {
        assert!(i.ends_with(".cpio") && !i.starts_with('.'), "a partial initramfs image left: {i}");
        let bytes = std::fs::read(cache.join("initramfs").join(i)).unwrap();
        assert!(
            bytes.starts_with(b"070701") && bytes.windows(10).any(|w| w == b"TRAILER!!!"),
            "{i} is not a whole cpio"
        );
    }

    let run_dir = out.join(&entries[0]);
    for test in ["concurrent_a", "concurrent_b"] {
        let sidecar =
            names(&run_dir).into_iter().find(|n| n.starts_with(&format!("{test}-")) && n.ends_with(".ktstr.json"));
        let sidecar = sidecar.unwrap_or_else(|| panic!("no sidecar for {test} in {}", run_dir.display()));
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(run_dir.join(&sidecar)).unwrap())
            .expect("sidecar parses");
    }
    assert!(names(&run_dir).iter().all(|n| !n.contains(".tmp")), "a half-written file in {}", run_dir.display());
    serde_json::from_slice::<serde_json::Value>(&std::fs::read(out.join("last-run.json")).unwrap())
        .expect("run record");
    let _ = std::fs::remove_dir_all(&root);
}
