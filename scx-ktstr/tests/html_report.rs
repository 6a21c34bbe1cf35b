//! The run's HTML page in a real browser: spec 004's check-gate failure
//! (scx-ktstr slowed with `--slow` under a 350/s iteration floor, as in
//! gates.rs) runs in its VM; its page, found where the runner leaves it,
//! is opened by headless Chromium, whose DOM must hold the plots with the
//! run's own data and the failure's mark, and whose screenshot must be a
//! real picture. Its trace beside it must be a valid Chrome trace of the
//! same samples.

use std::path::{Path, PathBuf};
use std::process::Command;

use ktstr::prelude::*;
use ktstr::test_support::{artifacts_of, find_test, run_ktstr_test_with, RunOptions};

/// gates.rs's guest half, repeated: a test binary runs only the
/// `#[ktstr_test]`s it registers.
#[ktstr_test(scheduler = SCX_KTSTR, cores = 2, duration_s = 3, min_iteration_rate = 350.0)]
#[ignore = "guest half of the html_report test below"]
fn throughput_gate(ctx: &Ctx) -> Result<AssertResult> {
    execute_defs(ctx, vec![CgroupDef::named("cg_a").workers(1), CgroupDef::named("cg_b").workers(1)])
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium on `page` with `args`; its stdout.
fn chromium(profile: &Path, args: &[&str], page: &Path) -> String {
    assert!(Path::new(CHROMIUM).exists(), "no {CHROMIUM}: install chromium (apt-get install chromium)");
    let out = Command::new(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("running chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed ({}): {stderr}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PNG's width and height, from its header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR", "not a PNG");
    let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (be(16), be(20))
}

/// `svg#plot-<id>` of the DOM: its `(data-series, data-points, points
/// counted)` per polyline.
fn polylines(dom: &str, id: &str) -> Vec<(String, usize, usize)> {
    let start = dom.find(&format!("<svg id=\"plot-{id}\"")).unwrap_or_else(|| panic!("no plot-{id} in the DOM"));
    let svg = &dom[start..start + dom[start..].find("</svg>").expect("svg closed")];
    let re =
        regex::Regex::new(r#"<polyline class="series" data-series="([^"]*)" data-points="(\d+)" points="([^"]*)""#)
            .unwrap();
    re.captures_iter(svg).map(|c| (c[1].to_string(), c[2].parse().unwrap(), c[3].split_whitespace().count())).collect()
}

#[test]
fn the_gate_failure_page_renders_in_a_browser() {
    // This process's own run directory (nextest runs each test in a
    // process of its own).
    let out = std::env::temp_dir().join(format!("ktstr-html-report-{}", std::process::id()));
    std::env::set_var(ktstr::artifacts::OUTPUT_DIR_ENV, &out);
    let entry = find_test("throughput_gate").expect("guest half registered");
    let opts =
        RunOptions { extra_sched_args: Some(vec!["--slow".into()]), auto_repro: Some(false), ..Default::default() };
    let f = run_ktstr_test_with(entry, &opts).expect_err("a slowed scheduler must miss the floor");
    let a = artifacts_of(entry, &opts).expect("the kernel the run booted");
    let (html, trace) = (a.html_path(), a.trace_path());
    assert!(html.exists() && trace.exists(), "no page or trace in {}: {:?}", a.dir.display(), ls(&a.dir));
    let o = f.outcome.as_ref().expect("the VM ran");
    let samples = &o.monitor.as_ref().expect("the monitor watched").samples;
    assert!(samples.len() > 10, "about 30 samples over 3 s: {}", samples.len());
    let read = |cpu: usize| samples.iter().filter(|s| s.cpus.get(cpu).is_some_and(Option::is_some)).count();

    let profile = out.join("chromium-profile");
    let dom = chromium(&profile, &["--dump-dom"], &html);
    let lines = polylines(&dom, "nr_running");
    assert_eq!(lines.len(), 2, "one line per CPU: {lines:?}");
    for (cpu, (name, n, counted)) in lines.iter().enumerate() {
        assert_eq!((name.as_str(), *n, *counted), (format!("cpu{cpu}").as_str(), read(cpu), read(cpu)));
    }
    assert_eq!(polylines(&dom, "local_dsq").iter().map(|l| l.1).collect::<Vec<_>>(), [read(0), read(1)]);
    let rates = polylines(&dom, "iteration_rate");
    assert_eq!(rates.len(), 2, "one line per worker: {rates:?}");
    // A failed check is judged on the whole run: its mark is at the end of
    // the scenario, on every plot.
    let end_ms = o.result.as_ref().and_then(|r| r.stats.as_ref()).expect("stats").duration_ms();
    let mark = format!("<line class=\"failure-mark\" data-kind=\"checks\" data-at-ms=\"{end_ms}\"");
    assert_eq!(dom.matches(&mark).count(), dom.matches("<svg id=\"plot-").count(), "{dom}");
    assert!(dom.contains("judged at the end of the run: worker "), "the mark is labelled");
    let report = &dom[dom.find("<pre id=\"report-text\">").expect("the report")..];
    assert!(report.contains("ktstr_test 'throughput_gate' [sched=scx-ktstr] [topo=1n1l2c1t] failed:"), "{report}");
    assert!(report.contains("below floor 350.0/s") && report.contains("--- timeline ---"), "{report}");

    // The screenshot is a picture of the page at the size asked, more than
    // an empty page's.
    let png = out.join("report.png");
    chromium(&profile, &[&format!("--screenshot={}", png.display()), "--window-size=1280,2000"], &html);
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&bytes), (1280, 2000));
    let blank = out.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank_png = out.join("blank.png");
    chromium(&profile, &[&format!("--screenshot={}", blank_png.display()), "--window-size=1280,2000"], &blank);
    let blank_len = std::fs::metadata(&blank_png).unwrap().len();
    assert!(bytes.len() as u64 > 4 * blank_len, "{} bytes against a blank page's {blank_len}", bytes.len());
    // For the docs: KTSTR_REPORT_SCREENSHOT=path keeps it.
    if let Some(keep) = std::env::var_os("KTSTR_REPORT_SCREENSHOT") {
        std::fs::copy(&png, PathBuf::from(keep)).expect("keeping the screenshot");
    }

    // The trace of the same run: valid JSON, a counter per sample and CPU.
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).expect("the trace is JSON");
    let events = doc["traceEvents"].as_array().expect("traceEvents");
    let nr = events.iter().filter(|e| e["ph"] == "C" && e["args"]["nr_running"].is_number()).count();
    assert_eq!(nr, read(0) + read(1));
    assert!(events.iter().any(|e| e["ph"] == "X" && e["name"] == "StepStart[0] ops=0"), "the phase slice");
    assert!(events.iter().any(|e| e["ph"] == "i" && e["s"] == "g" && e["cat"] == "checks"), "the failure instant");
    eprintln!(
        "page {} ({} bytes), trace {} ({} bytes)",
        html.display(),
        ls_len(&html),
        trace.display(),
        ls_len(&trace)
    );
    let _ = std::fs::remove_dir_all(&out);
}

fn ls(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn ls_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}
