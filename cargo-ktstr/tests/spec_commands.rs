//! The spec's own commands, typed as the spec writes them, for real.

mod common;
use common::{cargo_ktstr, cargo_ktstr_env};

/// The cached kernel's `major.minor`, as a user would type it after `--kernel`.
fn cached_version() -> String {
    let k = ktstr::kernel::resolve(None).unwrap_or_else(|e| panic!("this test needs a cached kernel: {e:#}"));
    k.release.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Spec 002: `cargo ktstr test --kernel ../linux -- --run-ignored
/// ignored-only -E 'test(demo_host_crash_auto_repro)'` runs the demo crash
/// (here `--kernel` names the cached kernel: no tree at ../linux) and
/// prints its report with the auto-repro trail.
#[test]
fn spec_002_demo_command_runs_the_crash_and_its_auto_repro() {
    let out = std::env::temp_dir().join(format!("ktstr-spec-002-{}", std::process::id()));
    let version = cached_version();
    let run = cargo_ktstr(
        &out,
        &[
            "test",
            "--kernel",
            &version,
            "--",
            "--run-ignored",
            "ignored-only",
            "-E",
            "test(demo_host_crash_auto_repro)",
        ],
    );
    let text = String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    let _ = std::fs::remove_dir_all(&out);
    assert!(!run.status.success(), "the demo's scheduler crashes, so its test fails:\n{text}");
    assert!(text.contains("1 test run: 0 passed, 1 failed"), "the filter selects the one demo:\n{text}");
    // nextest indents a failed test's captured stderr: match within lines.
    for want in [
        "BUG SUMMARY: scx_bpf_error (src/bpf/main.bpf.c:",
        "ktstr_test 'demo_host_crash_auto_repro' [sched=scx-ktstr] [topo=1n1l2c1t] failed:",
        "--- auto-repro ---",
        "=== AUTO-PROBE: scx_exit fired ===",
        "trigger: attached (tp_btf/sched_ext_exit)",
        "FAILED demo_host_crash_auto_repro [scx-ktstr 1n1l2c1t]",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // A probed call with its decoded task fields, after the section header.
    let trail = &text[text.find("--- auto-repro ---").unwrap()..];
    let task = regex::Regex::new(r"\n *task_struct \*p\n *pid +\d+\n").unwrap();
    assert!(task.is_match(trail), "no decoded task_struct in the trail:\n{trail}");
}

/// Specs 001 and 004: `cargo ktstr test --kernel 7.0 -- -E 'test(my_test)'`.
/// No 7.0 is cached and Debian's archive has none: the error says so, and
/// lists what is cached and what can be fetched, before anything builds.
#[test]
fn spec_001_kernel_7_0_names_what_is_cached_and_what_can_be_fetched() {
    let cached: Vec<String> = ktstr::kernel::list_cached().into_iter().map(|k| k.release).collect();
    assert!(!cached.is_empty(), "this test needs a cached kernel (`cargo ktstr kernel fetch`)");
    assert!(!cached.iter().any(|r| r.starts_with("7.0.")), "this test needs a cache without 7.0.x: {cached:?}");
    let out = std::env::temp_dir().join(format!("ktstr-spec-001-{}", std::process::id()));
    let run = cargo_ktstr(&out, &["test", "--kernel", "7.0", "--", "-E", "test(my_test)"]);
    let text = String::from_utf8_lossy(&run.stderr);
    let _ = std::fs::remove_dir_all(&out);
    assert!(!run.status.success(), "{text}");
    assert!(text.contains("kernel `7.0` (from --kernel) matches no cached kernel."), "{text}");
    assert!(text.contains(&format!("{}.", cached.join(", "))), "the cached kernels are listed:\n{text}");
    let fetchable = regex::Regex::new(r"\n  trixie-backports: 7\.\d+\.\d+\S*-cloud-amd64").unwrap();
    assert!(text.contains("Nor is it in Debian's archive.") && fetchable.is_match(&text), "{text}");
    assert!(!text.contains("Compiling") && !text.contains("Starting"), "nothing built or ran:\n{text}");
}

/// A version that is not cached but is in Debian's archive is fetched, then
/// the tests run on it: `--kernel <major.minor>` into an empty cache.
#[test]
fn an_uncached_version_is_fetched_from_the_archive() {
    let version = cached_version();
    let cache = std::env::temp_dir().join(format!("ktstr-uncached-kernel-{}", std::process::id()));
    let out = cache.join("out");
    let args = ["test", "--kernel", &version, "--", "-E", "binary_id(ktstr::eevdf) & test(=runs_under_eevdf)"];
    let run = cargo_ktstr_env(&out, &args, &[("KTSTR_CACHE_DIR", &cache)]);
    let text = String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    let cached: Vec<String> = std::fs::read_dir(cache.join("kernels"))
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&cache);
    assert!(run.status.success(), "{text}");
    let fetching = regex::Regex::new(&format!(
        r"ktstr: kernel {} \(--kernel\) is not cached; fetching {}\.\d+\S* from Debian's trixie-backports",
        regex::escape(&version),
        regex::escape(&version)
    ))
    .unwrap();
    assert!(fetching.is_match(&text), "{text}");
    assert!(cached.iter().any(|r| r.starts_with(&format!("{version}."))), "the kernel is cached now: {cached:?}");
    assert!(text.contains("1 test run: 1 passed"), "the test ran on it:\n{text}");
}
