//! One table of test attributes: the `#[ktstr_test]` macro's thresholds
//! (`ktstr-macros/src/attrs.rs`, `THRESHOLDS`), the fields of `Checks` and
//! the attribute table in README.md name the same attributes, so adding
//! one and forgetting a place fails here. Likewise the gauntlet presets the
//! macro accepts and the ones `ktstr::topology::gauntlet` defines.

use std::path::Path;

use ktstr::check::Checks;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)).expect(rel)
}

/// The string literals of the Rust item `const <name>` in `text`.
fn const_strings(text: &str, name: &str) -> Vec<String> {
    let at = text.find(&format!("const {name}")).unwrap_or_else(|| panic!("no const {name}"));
    let body = &text[at..at + text[at..].find("];").expect("the const's end")];
    let first = regex::Regex::new(r#"\(?"([a-z0-9_-]+)""#).unwrap();
    body.lines().filter_map(|l| first.captures(l.trim()).map(|c| c[1].to_string())).collect()
}

#[test]
fn macro_thresholds_are_the_fields_of_checks() {
    let attrs = read("ktstr-macros/src/attrs.rs");
    assert_eq!(const_strings(&attrs, "THRESHOLDS"), Checks::NAMES, "the macro's THRESHOLDS, in Checks' order");
}

#[test]
fn readme_documents_every_attribute() {
    let attrs = read("ktstr-macros/src/attrs.rs");
    let mut all = const_strings(&attrs, "OTHERS");
    all.extend(Checks::NAMES.iter().map(|s| s.to_string()));
    let readme = read("README.md");
    let table: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    for a in &all {
        let cell = format!("`{a}`");
        assert!(
            table.iter().any(|row| row.split('|').nth(1).is_some_and(|c| c.contains(&cell))),
            "README's attribute table has no row for `{a}`"
        );
    }
}

#[test]
fn macro_presets_are_the_gauntlet_presets() {
    let attrs = read("ktstr-macros/src/attrs.rs");
    let names: Vec<&str> = ktstr::topology::gauntlet::ALL.iter().map(|p| p.name).collect();
    let line = attrs.lines().find(|l| l.contains("const PRESETS")).expect("PRESETS");
    let listed: Vec<String> =
        regex::Regex::new(r#""([a-z0-9-]+)""#).unwrap().captures_iter(line).map(|c| c[1].to_string()).collect();
    assert_eq!(listed, names);
}
