//! The run as one self-contained HTML page (`{stem}.html`): no script, no
//! fetch, inline CSS and SVG, so it opens from a file anywhere, a CI
//! artifact store included. Its plots are the series of the trace
//! ([`super::picture`]) on the same time axis, the phases as bands behind
//! them, and a failed run's moment as a red vertical line; under them the
//! failure report as printed.
//!
//! Stable ids and classes for tests and tools: `svg#plot-<metric>`
//! (`nr_running`, `local_dsq`, `idle_cpus`, `csw_rate`, `iteration_rate`,
//! `scx_events`), `polyline.series` with `data-series` and `data-points`
//! (its point count), `line.failure-mark` with `data-kind` and
//! `data-at-ms`, `pre#report-text`.

use std::fmt::Write;

use super::picture::{self, Metric, Picture};

/// The plots, in order: the rest of the series are in the trace.
const PLOTS: &[&str] = &["nr_running", "local_dsq", "idle_cpus", "csw_rate", "iteration_rate", "scx_events"];
const W: f64 = 1180.0;
const H: f64 = 250.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
/// Above the plot: a line for the phases' labels, one per failure mark.
const HEAD: f64 = 24.0;
const LINE: f64 = 15.0;
const BOTTOM: f64 = 34.0;
const COLORS: &[&str] =
    &["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79"];
const MARK: &str = "#d62728";

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 20px; color: #222; max-width: 1220px; }
h1 { font-size: 20px; margin: 0 0 6px; font-family: ui-monospace, monospace; }
h2 { font-size: 16px; margin: 18px 0 6px; }
.verdict { font-weight: bold; margin: 4px 0; }
.verdict.failed { color: #b00; } .verdict.passed { color: #070; }
ul.reasons { margin: 4px 0 8px; font-family: ui-monospace, monospace; font-size: 13px; }
table.facts td { padding: 1px 12px 1px 0; vertical-align: top; } table.facts td:first-child { color: #666; }
figure { margin: 14px 0; } figcaption { font-weight: 600; margin-bottom: 2px; }
svg.plot { background: #fff; border: 1px solid #ccc; display: block; }
svg text { font: 12px system-ui, sans-serif; fill: #444; }
svg .phase-label { fill: #777; } svg .failure-label { fill: #b00; font-weight: bold; }
ul.legend { list-style: none; padding: 0; margin: 4px 0; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 13px; }
.swatch { display: inline-block; width: 14px; height: 4px; margin-right: 5px; vertical-align: middle; }
pre#report-text { background: #f6f6f6; border: 1px solid #ddd; padding: 10px; overflow-x: auto; font-size: 12.5px; }
.note { color: #666; font-size: 13px; }
";

/// The page, as UTF-8 bytes.
pub fn render(pic: &Picture) -> Vec<u8> {
    let run = pic.run;
    let mut s = String::new();
    let title = esc(pic.title);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<h1 id=\"title\">{title}</h1>\n"
    );
    let (class, verdict) = match (run.passed, run.expected_failure) {
        (true, _) => ("passed", "passed"),
        (false, true) => ("failed", "failed, as the test expects (expect_err)"),
        (false, false) => ("failed", "failed"),
    };
    let _ = writeln!(s, "<p id=\"verdict\" class=\"verdict {class}\">{verdict}</p>");
    if !run.reasons.is_empty() {
        s.push_str("<ul id=\"reasons\" class=\"reasons\">\n");
        for r in &run.reasons {
            let _ = writeln!(s, "<li>{}</li>", esc(r));
        }
        s.push_str("</ul>\n");
    }
    facts(&mut s, pic);
    let marks = picture::marks(run);
    let end_ms = picture::end_ms(run).max(1);
    s.push_str(
        "<p class=\"note\">Time: seconds since the payload started. The same series, each worker's phases and \
         longest gaps, and auto-repro's probed calls are in the <code>.trace.json</code> beside this page: open it \
         in ui.perfetto.dev.</p>\n",
    );
    s.push_str("<section id=\"plots\">\n");
    match run.monitor.as_ref() {
        None => s.push_str("<p id=\"monitor-unavailable\" class=\"note\">monitor: did not watch this run</p>\n"),
        Some(m) => {
            if let Some(why) = &m.unavailable {
                let _ = writeln!(s, "<p id=\"monitor-unavailable\" class=\"note\">monitor: {}</p>", esc(why));
            }
        }
    }
    let phases = picture::phases(run.stats.as_ref());
    let metrics = picture::metrics(run);
    for id in PLOTS {
        if let Some(m) = metrics.iter().find(|m| m.id == *id) {
            plot(&mut s, m, &phases, &marks, end_ms);
        }
    }
    if metrics.is_empty() {
        s.push_str("<p class=\"note\">no series: the run has no monitor samples and no scenario stats</p>\n");
    }
    s.push_str("</section>\n");
    let _ = write!(
        s,
        "<section id=\"report\">\n<h2>Report</h2>\n<pre id=\"report-text\">{}</pre>\n</section>\n</body>\n</html>\n",
        esc(pic.report)
    );
    s.into_bytes()
}

fn facts(s: &mut String, pic: &Picture) {
    let run = pic.run;
    let mut rows: Vec<(&str, String)> = vec![
        ("scheduler", run.scheduler.clone().unwrap_or_else(|| "eevdf (the kernel's default)".into())),
        ("topology", run.topology.clone()),
        ("kernel", run.kernel.clone()),
    ];
    if !run.stage.is_empty() {
        rows.push(("stage reached", run.stage.clone()));
    }
    if let Some(b) = &run.bug_summary {
        rows.push(("bug summary", b.clone()));
    }
    if let Some(ms) = run.vm_ms {
        rows.push(("VM wall time", format!("{:.1}s", ms as f64 / 1000.0)));
    }
    if let Some(m) = &run.monitor {
        rows.push(("monitor samples", format!("{} (every {} ms)", m.samples.len(), m.interval_ms)));
    }
    for m in picture::marks(run) {
        rows.push(("failed at", format!("{:.2}s: {}", m.at_ms as f64 / 1000.0, m.label)));
    }
    if let Some(t) = pic.trail.and_then(|t| t.trigger.as_ref()) {
        rows.push(("auto-repro", format!("exit claimed by {}[{}] on CPU {}", t.comm, t.pid, t.cpu)));
    }
    s.push_str("<table id=\"facts\" class=\"facts\">\n");
    for (k, v) in rows {
        let _ = writeln!(s, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v));
    }
    s.push_str("</table>\n");
}

/// One plot: phase bands, grid, a polyline per series, the failure marks.
fn plot(s: &mut String, m: &Metric, phases: &[picture::Phase], marks: &[picture::Mark], end_ms: u64) {
    // Ticks at a round step, the top at the first tick at or above the
    // largest value.
    let top = m.series.iter().flat_map(|x| &x.points).map(|p| p.1).fold(0.0, f64::max);
    let ystep = nice(top / 5.0);
    let ymax = ((top / ystep).ceil().max(1.0) * ystep).max(ystep);
    let x = |ms: u64| LEFT + (ms.min(end_ms) as f64 / end_ms as f64) * (W - LEFT - RIGHT);
    let top = HEAD + LINE * marks.len().min(4) as f64;
    let y = |v: f64| top + (1.0 - (v / ymax).clamp(0.0, 1.0)) * (H - top - BOTTOM);
    let _ = writeln!(s, "<figure id=\"figure-{}\">\n<figcaption>{}</figcaption>", m.id, esc(m.title));
    let _ = writeln!(
        s,
        "<svg id=\"plot-{}\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" \
         width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
        m.id,
        esc(m.title)
    );
    for (i, p) in phases.iter().enumerate() {
        let (x0, x1) = (x(p.start_ms), x(p.end_ms));
        let fill = if i % 2 == 0 { "#f2f5fa" } else { "#e8edf5" };
        let _ = writeln!(
            s,
            "<rect class=\"phase\" x=\"{x0:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\"/>\
             <text class=\"phase-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            (x1 - x0).max(0.0),
            H - top - BOTTOM,
            x0 + 4.0,
            HEAD - 8.0,
            esc(&p.label)
        );
    }
    let ticks = (ymax / ystep).round().clamp(1.0, 10.0) as u32;
    for i in 0..=ticks {
        let v = ymax * f64::from(i) / f64::from(ticks);
        let yy = y(v);
        let _ = writeln!(
            s,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            num(v)
        );
    }
    let step = nice(end_ms as f64 / 10.0).max(1.0) as u64;
    let mut t = 0u64;
    while t <= end_ms {
        let xx = x(t);
        let _ = writeln!(
            s,
            "<line class=\"tick\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\
             <text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}s</text>",
            H - BOTTOM,
            H - BOTTOM + 4.0,
            H - BOTTOM + 18.0,
            num(t as f64 / 1000.0)
        );
        t = match t.checked_add(step) {
            Some(n) => n,
            None => break,
        };
    }
    let _ = writeln!(
        s,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{top:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>",
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM,
        H - BOTTOM
    );
    for (i, series) in m.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = series.points.iter().map(|&(ms, v)| format!("{:.1},{:.1}", x(ms), y(v))).collect();
        let _ = writeln!(
            s,
            "<polyline class=\"series\" data-series=\"{}\" data-points=\"{}\" points=\"{}\" fill=\"none\" \
             stroke=\"{color}\" stroke-width=\"1.8\" stroke-linejoin=\"round\"/>",
            esc(&series.name),
            series.points.len(),
            points.join(" ")
        );
        // A single point draws no line: a dot shows it.
        if let [(ms, v)] = series.points[..] {
            let _ = writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>", x(ms), y(v));
        }
    }
    for (i, mk) in marks.iter().enumerate() {
        let xx = x(mk.at_ms);
        // Above the plot, each mark's label on a line of its own, beside
        // its line (left of it near the right edge), which reaches up to it.
        let (anchor, dx) = if xx > W * 0.6 { ("end", -5.0) } else { ("start", 5.0) };
        let _ = writeln!(
            s,
            "<line class=\"failure-mark\" data-kind=\"{}\" data-at-ms=\"{}\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" \
             y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{MARK}\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/>\
             <text class=\"failure-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            mk.kind,
            mk.at_ms,
            HEAD + LINE * i as f64 - 4.0,
            H - BOTTOM,
            xx + dx,
            HEAD + LINE * (i + 1) as f64 - 4.0,
            esc(&mk.label)
        );
    }
    s.push_str("</svg>\n<ul class=\"legend\">\n");
    for (i, series) in m.series.iter().enumerate() {
        let _ = writeln!(
            s,
            "<li><span class=\"swatch\" style=\"background:{}\"></span>{}</li>",
            COLORS[i % COLORS.len()],
            esc(&series.name)
        );
    }
    s.push_str("</ul>\n</figure>\n");
}

/// The smallest of 1, 2, 5 × 10^k at or above `v` (1 for nothing).
fn nice(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let e = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|f| f * e).find(|n| *n >= v).unwrap_or(10.0 * e)
}

/// An axis label: whole where whole, else one decimal; large values short.
fn num(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e4 => format!("{:.0}k", v / 1e3),
        v if v.fract() == 0.0 => format!("{v:.0}"),
        v => format!("{v:.1}"),
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::picture::tests::{sidecar, CRASH};

    fn count(page: &str, needle: &str) -> usize {
        page.matches(needle).count()
    }

    /// The `data-points` of each polyline of plot `id`, by series.
    fn points(page: &str, id: &str) -> Vec<(String, usize)> {
        let start = page.find(&format!("<svg id=\"plot-{id}\"")).unwrap_or_else(|| panic!("no plot {id}"));
        let svg = &page[start..start + page[start..].find("</svg>").unwrap()];
        let re =
            regex::Regex::new(r#"<polyline class="series" data-series="([^"]*)" data-points="(\d+)" points="([^"]*)""#)
                .unwrap();
        re.captures_iter(svg)
            .map(|c| {
                let n: usize = c[2].parse().unwrap();
                assert_eq!(c[3].split(' ').filter(|p| !p.is_empty()).count(), n, "data-points counts the points");
                (c[1].to_string(), n)
            })
            .collect()
    }

    /// A real passing run: a plot per series, a line per CPU with a point
    /// per sample, the phases as bands; no failure mark.
    #[test]
    fn a_passing_run_plots_its_samples() {
        let run = sidecar("monitor/fair_two_cgroups.ktstr.json");
        let report = "ktstr_test 'fair_two_cgroups' [sched=scx-ktstr] passed <&>";
        let pic = Picture { title: "ktstr_test 'fair_two_cgroups'", run: &run, report, trail: None };
        let page = String::from_utf8(render(&pic)).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>\n"), "{page}");
        assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("https://"), "nothing fetched");
        let n = run.monitor.as_ref().unwrap().samples.len();
        let cpus: Vec<(String, usize)> = (0..4).map(|c| (format!("cpu{c}"), n)).collect();
        assert_eq!(points(&page, "nr_running"), cpus);
        assert_eq!(points(&page, "local_dsq"), cpus);
        assert_eq!(points(&page, "idle_cpus"), [("idle CPUs".to_string(), n)]);
        assert_eq!(points(&page, "csw_rate")[0].1, n - 1);
        assert_eq!(points(&page, "iteration_rate").len(), 4, "one line per worker");
        assert_eq!(count(&page, "<rect class=\"phase\""), PLOTS.len(), "one phase band per plot");
        assert_eq!(count(&page, "class=\"failure-mark\""), 0);
        assert!(page.contains("<p id=\"verdict\" class=\"verdict passed\">passed</p>"), "{page}");
        assert!(page.contains("<pre id=\"report-text\">ktstr_test &#39;fair_two_cgroups&#39; [sched=scx-ktstr] passed &lt;&amp;&gt;</pre>"));
    }

    /// A real stall: every plot has the failure line where the scheduler
    /// left sched_ext, labelled; the reasons are listed.
    #[test]
    fn a_failed_run_marks_the_moment_on_every_plot() {
        let run = sidecar(CRASH);
        let pic = Picture { title: "t", run: &run, report: "BUG SUMMARY: x", trail: None };
        let page = String::from_utf8(render(&pic)).unwrap();
        let plots = count(&page, "<svg id=\"plot-");
        assert!(plots >= 5, "{plots}");
        assert_eq!(
            count(&page, "<line class=\"failure-mark\" data-kind=\"scheduler-left\" data-at-ms=\"7752\""),
            plots,
            "{page}"
        );
        assert!(page.contains(">scheduler left sched_ext (StepStart[1] ops=1 +51ms)</text>"), "{page}");
        assert!(page.contains("<li>tid 139 stuck 6545ms on cpu0 at +1105ms (threshold 2000ms)</li>"));
        assert_eq!(points(&page, "nr_running")[0].1, run.monitor.as_ref().unwrap().samples.len());
    }

    #[test]
    fn odd_figures_still_make_a_page() {
        let mut run = sidecar("monitor/steps_are_phases.ktstr.json");
        run.monitor.as_mut().unwrap().samples[0].at_ms = u64::MAX;
        run.stats.as_mut().unwrap().phases[0].duration_ms = u64::MAX;
        run.passed = false;
        let page = String::from_utf8(render(&Picture { title: "<t>", run: &run, report: "", trail: None })).unwrap();
        assert!(!page.contains("NaN") && !page.contains("inf\""), "{page}");
        assert!(page.contains("<h1 id=\"title\">&lt;t&gt;</h1>"));
        let empty = crate::wire::records::StatsSidecar::default();
        let page = String::from_utf8(render(&Picture { title: "t", run: &empty, report: "", trail: None })).unwrap();
        assert!(page.contains("monitor: did not watch this run") && page.contains("no series"), "{page}");
        assert_eq!((nice(0.0), nice(f64::NAN), nice(3.0), nice(1e19)), (1.0, 1.0, 5.0, 1e19));
    }
}
