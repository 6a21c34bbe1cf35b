//! The house's shape, held to: every module of `ktstr/src` imports only
//! modules of lower layers (the order below, a run's stages bottom up), so
//! there is no import circle and no import running back up. Read from the
//! source text: every `crate::<module>` path outside `#[cfg(test)]` code,
//! in `use` lines and inline paths alike. Run with `--no-capture` to see
//! the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bottom up. A module may import any module of a lower layer; modules of
/// one layer do not import each other.
const LAYERS: &[&[&str]] = &[
    // What host and guest exchange and tools read back: imports nothing.
    &["wire"],
    // Leaves over `wire`: caches, workers, crash text, the channel's
    // framing, the dump's and the probe's value decoders.
    &["cache", "workload", "crash", "channel", "dump", "probe"],
    &["scenario", "kernel"],
    &["check", "vm"],
    // The guest runtime: runs the test it is handed.
    &["guest"],
    // The host, after the VM: what it learned, and what it makes of it.
    &["monitor"],
    &["outcome"],
    &["judge"],
    &["repro", "report"],
    &["artifacts"],
    &["test_support"],
    // The fuzz targets' door to crate-private entry points (see
    // docs/fuzzing.md): above everything it reaches.
    &["fuzz_api"],
    &["prelude", "lib"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer of ktstr/tests/layers.rs: place it there"))
}

/// Module → the modules its code names through `crate::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let path_re = regex::Regex::new(r"crate::([a-z_]+)").unwrap();
    let group_re = regex::Regex::new(r"crate::\{([^;]*)\}").unwrap();
    let first_re = regex::Regex::new(r"(?:^|,)\s*([a-z_]+)").unwrap();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
            if e.is_dir() {
                dirs.push(e);
                continue;
            }
            if e.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = e.strip_prefix(&src).unwrap();
            let module = rel.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&e).unwrap();
            // Unit tests may reach anywhere; comments are not imports.
            let code = text.split("#[cfg(test)]").next().unwrap();
            let code: String =
                code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
            let mut names: BTreeSet<String> = path_re.captures_iter(&code).map(|c| c[1].to_string()).collect();
            for g in group_re.captures_iter(&code) {
                names.extend(first_re.captures_iter(&g[1]).map(|c| c[1].to_string()));
            }
            let known = |n: &String| LAYERS.iter().any(|l| l.contains(&n.as_str()));
            let deps = graph.entry(module.clone()).or_default();
            deps.extend(names.into_iter().filter(|n| *n != module && known(n)));
        }
    }
    graph
}

#[test]
fn modules_import_only_lower_layers() {
    let graph = imports();
    let mut wrong = Vec::new();
    println!("ktstr/src module imports (layer: module -> modules it imports):");
    for (module, deps) in &graph {
        let layer = layer_of(module);
        println!("  {layer:2}: {module} -> {}", deps.iter().cloned().collect::<Vec<_>>().join(" "));
        for d in deps {
            if layer_of(d) >= layer {
                wrong.push(format!("{module} (layer {layer}) imports {d} (layer {})", layer_of(d)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run sideways or back up (a lower layer must not know a higher one; move the shared \
         type down, into `wire` if host and guest exchange it):\n  {}",
        wrong.join("\n  ")
    );
    assert!(graph["wire"].is_empty(), "wire imports {:?}: it must import nothing else of ktstr", graph["wire"]);
}
