//! The bootstrap path builds with Rust alone. On a fresh machine
//! `scripts/setup` builds `ktstr-setup` before any Debian package is
//! installed: if a crate on that path gains a build script that needs a
//! system tool or library (make, libelf, clang, pkg-config...), set-up
//! breaks for every new user and nothing here would notice, because the
//! machines that run this suite have those packages. So this test builds
//! the crate as set-up does and holds every build script that runs to an
//! allow-list of build scripts known to need nothing but rustc.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

/// Crates on the bootstrap path whose build scripts only probe rustc or
/// set cfgs. Adding one here means reading its build.rs first: it must not
/// run a C compiler, make, pkg-config or any other system program, nor
/// link a system library.
const PURE_RUST_BUILD_SCRIPTS: &[&str] = &["anyhow", "libc", "proc-macro2", "quote"];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

#[test]
fn bootstrap_build_needs_no_system_package() {
    let ws = workspace();
    // A target directory of its own: `-p ktstr-setup` alone resolves the
    // features set-up gets, and the build never waits on another test's lock.
    let target = ws.join("target/bootstrap-check");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .current_dir(&ws)
        .args(["build", "--locked", "-p", "ktstr-setup", "--message-format=json"])
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`cargo build -p ktstr-setup` failed: set-up's first step is broken\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut scripts = BTreeSet::new();
    let mut linked = Vec::new();
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] != "build-script-executed" {
            continue;
        }
        let id = msg["package_id"].as_str().unwrap_or_default();
        let name = package_name(id);
        for lib in msg["linked_libs"].as_array().into_iter().flatten() {
            linked.push(format!("{name}: {lib}"));
        }
        scripts.insert(name);
    }
    assert!(
        linked.is_empty(),
        "build scripts on the bootstrap path link system libraries (a fresh machine has none): {linked:?}"
    );
    let unknown: Vec<_> = scripts.iter().filter(|n| !PURE_RUST_BUILD_SCRIPTS.contains(&n.as_str())).collect();
    assert!(
        unknown.is_empty(),
        "ktstr-setup's dependency tree gained build scripts not known to be pure Rust: {unknown:?}.\n\
         ktstr-setup is built before any system package is installed (scripts/setup), so a build \
         script needing make, a C library or clang breaks every fresh machine. Remove the dependency, \
         or read its build.rs and add it to PURE_RUST_BUILD_SCRIPTS if it needs only rustc."
    );
    // Not vacuous: the allow-listed scripts were seen, so messages were read.
    assert!(scripts.contains("proc-macro2"), "no build-script message parsed: {stdout}");
}

/// The package name of a cargo package id, in either form cargo prints:
/// `registry+https://...#proc-macro2@1.0.95` or `proc-macro2 1.0.95 (registry+...)`.
fn package_name(id: &str) -> String {
    if let Some((_, tail)) = id.rsplit_once('#') {
        let name = tail.split('@').next().unwrap_or(tail);
        // `path+file:///.../ktstr-setup#0.1.0`: the name is the path's last part.
        if name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            let path = id.split('#').next().unwrap_or(id);
            return path.rsplit('/').next().unwrap_or(path).to_string();
        }
        return name.to_string();
    }
    id.split_whitespace().next().unwrap_or(id).to_string()
}

#[test]
fn setup_builds_the_bootstrap_crate_first() {
    // The first build scripts/setup runs is ktstr-setup's, and the package
    // installs come from its binary: anything else built before the
    // packages are there would need them.
    let script = std::fs::read_to_string(workspace().join("scripts/setup")).expect("scripts/setup");
    let cmds: Vec<&str> =
        script.lines().map(str::trim).filter(|l| l.starts_with("cargo ") || l.starts_with("target/debug/")).collect();
    assert_eq!(cmds.first().copied(), Some("cargo build --quiet -p ktstr-setup"), "{cmds:?}");
    assert!(cmds.get(1).is_some_and(|c| c.starts_with("target/debug/ktstr-setup")), "{cmds:?}");
}

#[test]
fn package_names() {
    assert_eq!(package_name("registry+https://github.com/rust-lang/crates.io-index#proc-macro2@1.0.95"), "proc-macro2");
    assert_eq!(
        package_name("proc-macro2 1.0.95 (registry+https://github.com/rust-lang/crates.io-index)"),
        "proc-macro2"
    );
    assert_eq!(package_name("path+file:///work/main/ktstr-setup#0.1.0"), "ktstr-setup");
}
