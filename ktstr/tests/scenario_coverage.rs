//! The spec's crash tests, by the spec's names and in the file it names
//! (spec 000, 001, 002, 004): a scheduler crash end to end. The host asks
//! the guest to write the fixture scheduler's `crash` knob into its `.bss`
//! once the workload runs, the scheduler calls scx_bpf_error, the report
//! leads with a BUG SUMMARY, and auto-repro replays it with probes.
//!
//! These run under scx-ktstr, the workspace's fixture scheduler, found
//! beside this test binary in the cargo target directory (`cargo ktstr
//! test` and `./run` build the whole workspace).

use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test, run_ktstr_test_with, RunOptions};

// spec 001's regression test, as written there.
// Host writes 1 into the scheduler's `crash` .bss global after
// load; the scheduler's dispatch path reads it and calls
// scx_bpf_error(...) — the crash this test pins.
static BPF_CRASH: BpfMapWrite = BpfMapWrite::new(".bss", "crash", 1);

#[ktstr_test(
    scheduler = SCX_KTSTR,
    bpf_map_write = BPF_CRASH,
    expect_err = true,
    expect_scx_bpf_error_contains = "host-triggered crash",
    expect_scx_bpf_error_matches = r"src/bpf/main\.bpf\.c:\d+",
)]
fn crash_regression(ctx: &Ctx) -> Result<AssertResult> {
    ktstr::scenario::basic::custom_crash_light(ctx)
}

/// spec 002's demo: the same crash, not expected, under a yield-heavy
/// workload; what `./run demo` shows a new user, and what the spec's
/// command runs:
///
/// ```sh
/// cargo ktstr test --kernel 7.3 -- --run-ignored ignored-only -E 'test(demo_host_crash_auto_repro)'
/// ```
#[ktstr_test(scheduler = SCX_KTSTR, cores = 2, duration_s = 4, bpf_map_write = BPF_CRASH)]
#[ignore = "a demo of a crash report and its auto-repro trail (./run demo); auto_repro_without_the_trigger_says_why runs it"]
fn demo_host_crash_auto_repro(ctx: &Ctx) -> Result<AssertResult> {
    scenario_yield_heavy(ctx)
}

/// spec 002's scenario: four yield-heavy workers in one cgroup, which keep
/// the dispatch path (where the crash knob is read) busy.
fn scenario_yield_heavy(ctx: &Ctx) -> Result<AssertResult> {
    let steps = vec![Step::with_defs(
        vec![CgroupDef::named("demo_workers").work_type(WorkType::YieldHeavy).workers(4)],
        HoldSpec::FULL,
    )];
    execute_steps(ctx, steps)
}

/// A regression test whose matcher no longer fits the error text.
#[ktstr_test(
    scheduler = SCX_KTSTR,
    cores = 2,
    duration_s = 4,
    bpf_map_write = BPF_CRASH,
    expect_err = true,
    expect_scx_bpf_error_contains = "a message the scheduler never printed",
)]
#[ignore = "guest half of a_drifted_matcher_fails_with_the_pattern_and_an_excerpt"]
fn crash_regression_drifted(ctx: &Ctx) -> Result<AssertResult> {
    ktstr::scenario::basic::custom_crash_light(ctx)
}

/// spec 000's end-to-end auto-repro test: the host-written crash, not
/// expected, on 1n1l4c1t.
#[ktstr_test(scheduler = SCX_KTSTR, llcs = 1, cores = 4, duration_s = 4, bpf_map_write = BPF_CRASH)]
#[ignore = "guest half of bpf_crash_auto_repro_e2e_trail"]
fn bpf_crash_auto_repro_e2e(ctx: &Ctx) -> Result<AssertResult> {
    ktstr::scenario::basic::custom_crash_light(ctx)
}

/// The crash report, every section in order, and auto-repro's trail: a
/// scx-ktstr callback and a kernel function with decoded task fields, a
/// field changed between entry and exit, the trigger attached.
#[test]
fn bpf_crash_auto_repro_e2e_trail() {
    let entry = find_test("bpf_crash_auto_repro_e2e").expect("registered");
    let f = run_ktstr_test_with(entry, &RunOptions::default()).expect_err("the crash knob must crash the scheduler");
    eprintln!("{}", f.report);
    // How ktstr/tests/fixtures/repro/ was captured: the trail as the guest
    // sent it, and the report rendered from it.
    if let Some(dir) = std::env::var_os("KTSTR_CRASH_CAPTURE_DIR") {
        let trail = f.repro.as_ref().and_then(|r| r.probe_trail.as_ref()).expect("a probe trail");
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join("probe_trail.json"), serde_json::to_vec_pretty(trail).unwrap()).unwrap();
        let dump = f.outcome.as_ref().and_then(|o| o.failure_dump.as_ref()).expect("a failure dump");
        std::fs::write(dir.join("failure_dump.json"), serde_json::to_vec_pretty(dump).unwrap()).unwrap();
    }
    assert_post_mortem(f.outcome.as_ref().and_then(|o| o.failure_dump.as_ref()), "primary");
    assert_post_mortem(f.repro.as_ref().and_then(|o| o.failure_dump.as_ref()), "repro");
    let r = &f.report;
    let lines: Vec<&str> = r.lines().collect();
    let summary =
        regex::Regex::new(r"^BUG SUMMARY: scx_bpf_error \(src/bpf/main\.bpf\.c:\d+: ktstr: host-triggered crash\)$")
            .unwrap();
    assert!(summary.is_match(lines[0]), "{r}");
    assert_eq!(lines[1], "ktstr_test 'bpf_crash_auto_repro_e2e' [sched=scx-ktstr] [topo=1n1l4c1t] failed:");
    let died =
        regex::Regex::new(r"^  scheduler process died unexpectedly during workload \(\d+\.\ds into test\)$").unwrap();
    assert!(died.is_match(lines[2]), "{r}");
    let at = |h: &str| lines.iter().position(|l| *l == h).unwrap_or_else(|| panic!("no {h} in\n{r}"));
    let order = [
        "--- stats ---",
        "--- diagnostics ---",
        "--- timeline ---",
        "--- scheduler log ---",
        "--- sched_ext dump ---",
        "--- auto-repro ---",
        "--- probe pipeline ---",
    ]
    .map(at);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "sections out of order: {order:?}\n{r}");
    let log = &r[r.find("--- scheduler log ---").unwrap()..r.find("--- sched_ext dump ---").unwrap()];
    for want in ["DEBUG DUMP", "ktstr: host-triggered crash", "ktstr scheduler state:", "crash=1"] {
        assert!(log.contains(want), "scheduler log lacks {want:?}:\n{log}");
    }
    let byte_at = |h: &str| r.find(&format!("\n{h}\n")).unwrap();
    assert!(r[byte_at("--- sched_ext dump ---")..].contains("triggered exit kind 1025"), "{r}");

    let trail = &r[byte_at("--- auto-repro ---")..byte_at("--- probe pipeline ---")];
    assert!(trail.contains("=== AUTO-PROBE: scx_exit fired ===\n"), "{trail}");
    let callback = regex::Regex::new(r"(?m)^  ktstr_\w+ +main\.bpf\.c:\d+$").unwrap();
    assert!(callback.is_match(trail), "no scx-ktstr callback with its source line:\n{trail}");
    let kernel = regex::Regex::new(r"(?m)^  (\w+_scx|do_pick_task_scx|scx_\w+)( +\S+:\d+)?$").unwrap();
    assert!(kernel.is_match(trail), "no kernel function:\n{trail}");
    // Kernel functions' source lines come from the debug vmlinux that
    // set-up caches (`cargo ktstr kernel fetch --debug-info`); without
    // one, the trail says so.
    let booted = ktstr::kernel::resolve(None).expect("the kernel this test booted");
    if let Some(debug) = booted.debug_vmlinux() {
        let line = regex::Regex::new(r"(?m)^  \w+ +kernel/sched/[\w/]+\.c:\d+$").unwrap();
        assert!(line.is_match(trail), "no kernel function with its line from {}:\n{trail}", debug.display());
    } else {
        assert!(trail.contains("no debug vmlinux cached; `cargo ktstr kernel fetch --debug-info`"), "{trail}");
    }
    for field in ["    task_struct *p\n", "      pid         ", "      cpus_ptr    0x", "      scx_flags   "] {
        assert!(trail.contains(field), "no {field:?}:\n{trail}");
    }
    assert!(trail.lines().any(|l| l.starts_with("      ") && l.contains(" →  ")), "no entry-to-exit change:\n{trail}");
    let pipeline = &r[byte_at("--- probe pipeline ---")..];
    assert!(pipeline.contains("\ntrigger: attached (tp_btf/sched_ext_exit)\n"), "{pipeline}");
    let events = regex::Regex::new(r"\nevents: (\d+) captured, (\d+) after stitch").unwrap();
    let c = events.captures(pipeline).unwrap_or_else(|| panic!("no events line:\n{pipeline}"));
    assert!(c[1].parse::<u64>().unwrap() > 0 && c[2].parse::<u64>().unwrap() > 0, "{pipeline}");
    assert!(pipeline.contains("\nrepro VM duration: "), "{pipeline}");
    assert!(pipeline.contains("\ncrash reproduced: scx_bpf_error (src/bpf/main.bpf.c:"), "{pipeline}");
}

/// The guest's post-mortem of the crashed scheduler: its `.bss` with the
/// knob that crashed it, by variable name, and its callbacks' counters.
fn assert_post_mortem(dump: Option<&ktstr::dump::FailureDump>, run: &str) {
    let d = dump.unwrap_or_else(|| panic!("the {run} run sent no failure dump"));
    let text = serde_json::to_string_pretty(d).unwrap();
    assert_eq!(d.taken, "scheduler exited", "{run}: {text}");
    let bss = d.maps.iter().find(|m| m.name.ends_with(".bss")).unwrap_or_else(|| panic!("{run}: no .bss map: {text}"));
    assert!(bss.typed, "{run}: .bss not typed: {text}");
    assert_eq!(bss.entries[0].value["crash"], 1, "{run}: {text}");
    let dispatch = d.progs.iter().find(|p| p.name.starts_with("ktstr_dispatch"));
    let dispatch = dispatch.unwrap_or_else(|| panic!("{run}: no ktstr_dispatch program: {text}"));
    assert!(dispatch.run_cnt > 0 && dispatch.verified_insns > 0, "{run}: {text}");
}

/// The pipeline without its trigger: said so in the spec's shape, nothing
/// captured, and the repro VM's tails still there.
#[test]
fn auto_repro_without_the_trigger_says_why() {
    let entry = find_test("demo_host_crash_auto_repro").expect("registered");
    let opts = RunOptions { break_repro_trigger: true, ..Default::default() };
    let f = run_ktstr_test_with(entry, &opts).expect_err("the crash knob must crash the scheduler");
    eprintln!("{}", f.report);
    let r = &f.report[f.report.find("--- auto-repro ---").expect("an auto-repro section")..];
    let failed = regex::Regex::new(r"\ntrigger: attach failed \(.*ktstr_no_such_tracepoint.*\)\n").unwrap();
    assert!(failed.is_match(r), "{r}");
    for want in ["\nkprobes: 0 attached\n", "\nevents: 0 captured, 0 after stitch\n", "\nrepro VM duration: "] {
        assert!(r.contains(want), "no {want:?}:\n{r}");
    }
    assert!(r.contains("\nrepro scheduler log (last ") && r.contains("\nrepro dmesg (last "), "{r}");
    assert!(r.contains("\ncrash reproduced: scx_bpf_error"), "{r}");
}

#[test]
fn a_drifted_matcher_fails_with_the_pattern_and_an_excerpt() {
    let entry = find_test("crash_regression_drifted").expect("registered");
    // This test process's own artifact directory (nextest runs each test
    // in a process of its own).
    let out = std::env::temp_dir().join(format!("ktstr-artifacts-test-{}", std::process::id()));
    std::env::set_var(ktstr::artifacts::OUTPUT_DIR_ENV, &out);
    let panic = std::panic::catch_unwind(|| run_ktstr_test(entry)).expect_err("a missed matcher fails the test");
    // Artifacts: the stats sidecar and the failure dump, side by side.
    let kernel_dir = std::fs::read_dir(&out).unwrap().next().expect("a run directory per kernel").unwrap().path();
    let files: Vec<String> = std::fs::read_dir(&kernel_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let stem = files.iter().find_map(|f| f.strip_suffix(".ktstr.json")).expect("stats sidecar");
    assert!(regex::Regex::new(r"^crash_regression_drifted-[0-9a-f]{16}$").unwrap().is_match(stem), "{files:?}");
    assert!(files.contains(&format!("{stem}.failure-dump.json")), "{files:?}");
    let read = |f: String| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(kernel_dir.join(f)).unwrap()).unwrap()
    };
    let stats = read(format!("{stem}.ktstr.json"));
    assert_eq!((stats["passed"].as_bool(), stats["expected_failure"].as_bool()), (Some(false), Some(true)));
    assert!(stats["bug_summary"].as_str().unwrap_or("").contains("host-triggered crash"), "{stats}");
    // The scheduler attached, so the dump is the guest's post-mortem: its
    // `.bss` by variable name, with the knob that crashed it.
    let dump = read(format!("{stem}.failure-dump.json"));
    assert_eq!((dump["schema"].as_str(), dump["is_placeholder"].as_bool()), (Some("single"), Some(false)), "{dump}");
    assert_eq!(dump["stage"], "result received", "{dump}");
    let maps = dump["maps"].as_array().unwrap_or_else(|| panic!("no maps: {dump}"));
    let bss = maps.iter().find(|m| m["name"].as_str().is_some_and(|n| n.ends_with(".bss")));
    assert_eq!(bss.map(|m| &m["entries"][0]["value"]["crash"]), Some(&serde_json::json!(1)), "{dump}");
    std::fs::remove_dir_all(&out).unwrap();
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("failed, but not as pinned"), "{msg}");
    assert!(msg.contains("expect_scx_bpf_error_contains \"a message the scheduler never printed\" not found"), "{msg}");
    assert!(msg.contains("triggered exit kind"), "the excerpt shows the real error: {msg}");
}

static BPF_STALL: BpfMapWrite = BpfMapWrite::new(".bss", "stall", 1);

/// Workers never dispatched, and the kernel's own sched_ext watchdog set to
/// 1 s (before ktstr's 2 s work-conservation watchdog would step in).
#[ktstr_test(
    scheduler = SCX_KTSTR,
    cores = 2,
    duration_s = 6,
    extra_sched_args = ["--timeout-ms", "1000"],
    bpf_map_write = BPF_STALL,
)]
#[ignore = "guest half of a_stall_is_summarized_with_the_kernel_watchdog_reason"]
fn payload_kernel_watchdog_stall(ctx: &Ctx) -> Result<AssertResult> {
    execute_defs(ctx, vec![CgroupDef::named("cg_stall").workers(2)])
}

#[test]
fn a_stall_is_summarized_with_the_kernel_watchdog_reason() {
    let entry = find_test("payload_kernel_watchdog_stall").expect("registered");
    let f = run_ktstr_test_with(entry, &RunOptions::default()).expect_err("a stalled worker must end the scheduler");
    eprintln!("{}", f.report);
    let first = f.report.lines().next().unwrap_or("");
    let summary =
        regex::Regex::new(r"^BUG SUMMARY: runnable task stall \(ktstr-worker\[\d+\] failed to run for \d+\.\d+s\)$")
            .unwrap();
    assert!(summary.is_match(first), "{}", f.report);
    assert!(f.reasons[0].starts_with("scheduler process died unexpectedly during workload ("), "{:?}", f.reasons);
    // Auto-repro replays the stall: the trigger fires when the watchdog
    // ends the scheduler, and the trail of that task comes back.
    let r = &f.report[f.report.find("--- auto-repro ---").expect("an auto-repro section")..];
    assert!(r.contains("=== AUTO-PROBE: scx_exit fired ===\n"), "{r}");
    assert!(r.contains("\ntrigger: attached (tp_btf/sched_ext_exit)\n"), "{r}");
    assert!(r.contains("\ncrash reproduced: runnable task stall ("), "{r}");
}

/// A scheduler whose ops.init fails never attaches: auto-repro still
/// replays it, and says the primary never reached the workload, so the
/// reader chases the startup failure instead of the repro's trail.
#[test]
fn a_crash_before_the_workload_is_labelled_in_the_repro() {
    let entry = find_test("demo_host_crash_auto_repro").expect("registered");
    let opts = RunOptions { extra_sched_args: Some(vec!["--fail-init".into()]), ..Default::default() };
    let f = run_ktstr_test_with(entry, &opts).expect_err("--fail-init must keep the scheduler from attaching");
    eprintln!("{}", f.report);
    assert!(
        f.report.starts_with("BUG SUMMARY: scx_bpf_error (")
            && f.report.lines().next().unwrap().contains("--fail-init"),
        "{}",
        f.report
    );
    let r = &f.report[f.report.find("--- auto-repro ---").expect("an auto-repro section")..];
    let label = r.find("\nPRIMARY DID NOT REACH WORKLOAD\n").unwrap_or_else(|| panic!("no label:\n{r}"));
    let verdict = r.rfind("\ncrash reproduced: ").unwrap_or_else(|| panic!("no verdict:\n{r}"));
    assert!(label < verdict, "the label comes before the verdict:\n{r}");
}
