//! docs/troubleshooting.md quotes each environment error as ktstr prints
//! it. This keeps the page honest: every quoted message is either produced
//! here for real (the kernel lookups, `KTSTR_ACCEL`, cargo-nextest
//! missing) or, where producing it needs a broken host, its fixed text is
//! still in the source, piece by piece between the `<placeholders>`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The page's ```text blocks, each one message.
fn quoted_messages() -> Vec<String> {
    let page = std::fs::read_to_string(repo().join("docs/troubleshooting.md")).expect("docs/troubleshooting.md");
    page.split("```text\n").skip(1).map(|b| b.split("```").next().unwrap_or("").trim().to_string()).collect()
}

/// The messages produced for real.
fn real_messages() -> Vec<String> {
    use ktstr::kernel::resolve::resolve_in;
    use ktstr::kernel::store::KernelStore;
    let empty = KernelStore::new(std::env::temp_dir().join(format!("ktstr-doc-{}/kernels", std::process::id())));
    let mut out = vec![
        resolve_in(&empty, None).unwrap_err().to_string(),
        resolve_in(&empty, Some(("9.9", "--kernel"))).unwrap_err().to_string(),
        resolve_in(&empty, Some(("/nonexistent/bzImage", "KTSTR_KERNEL"))).unwrap_err().to_string(),
        // Topologies no VM can have.
        ktstr::topology::Topology::new(1, 1, 0, 1).validate().unwrap_err(),
        ktstr::topology::Topology::new(1, 4, 64, 2).validate().unwrap_err(),
        // A file that is not a kernel.
        resolve_in(&empty, Some((env!("CARGO_MANIFEST_PATH"), "--kernel"))).unwrap_err().to_string(),
    ];
    // Each test is a process of its own under nextest.
    std::env::set_var("KTSTR_ACCEL", "fast");
    out.push(ktstr::vm::choose_accel(2, Path::new("/nonexistent")).unwrap_err().to_string());
    std::env::remove_var("KTSTR_ACCEL");
    // `cargo nextest` that cannot run: what a host without it gets.
    let no_nextest = Command::new(env!("CARGO_BIN_EXE_cargo-ktstr"))
        .args(["ktstr", "test"])
        .env("CARGO", "/bin/false")
        .output()
        .expect("running cargo-ktstr");
    out.push(String::from_utf8_lossy(&no_nextest.stderr).into_owned());
    out
}

/// A quoted message as a regex: each `<placeholder>` matches anything.
fn pattern(quoted: &str) -> regex::Regex {
    let parts: Vec<String> = regex::Regex::new(r"<[^>]+>").unwrap().split(quoted).map(regex::escape).collect();
    regex::Regex::new(&parts.join(".+?")).unwrap()
}

/// Rust sources with string continuations joined and the constants the
/// messages interpolate filled in.
fn sources() -> String {
    let mut text = String::new();
    let mut dirs = vec![repo().join("ktstr/src"), repo().join("cargo-ktstr/src")];
    text += &std::fs::read_to_string(repo().join("ktstr/build.rs")).unwrap();
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                text += &std::fs::read_to_string(&p).unwrap();
            }
        }
    }
    let joined = regex::Regex::new(r"\\\n\s*").unwrap().replace_all(&text, "");
    joined
        .replace("{QEMU}", ktstr::vm::QEMU)
        .replace("{KERNEL_ENV}", "KTSTR_KERNEL")
        .replace("{INCLUDE_DIR}", ktstr::vm::initramfs::INCLUDE_DIR)
        .replace("{NO_SCHED_EXT}", ktstr::wire::message::NO_SCHED_EXT)
}

#[test]
fn every_quoted_message_is_what_ktstr_prints() {
    let quoted = quoted_messages();
    assert!(quoted.len() >= 15, "the page lost entries: {} messages", quoted.len());
    let real = real_messages();
    let src = sources();
    let placeholder = regex::Regex::new(r"<[^>]+>").unwrap();
    for q in &quoted {
        if real.iter().any(|m| pattern(q).is_match(m)) {
            continue;
        }
        for piece in placeholder.split(q).map(str::trim).filter(|p| p.len() >= 10) {
            assert!(src.contains(piece), "docs/troubleshooting.md quotes {q:?}, but no source has {piece:?}");
        }
    }
    // The ones produced for real are on the page.
    for m in &real {
        let first = m.lines().find(|l| !l.starts_with("cargo ktstr: kernel")).unwrap_or("");
        assert!(quoted.iter().any(|q| pattern(q).is_match(first)), "not on the page: {first:?}");
    }
}
