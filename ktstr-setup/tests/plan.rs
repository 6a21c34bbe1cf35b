//! Set-up's decisions against sample machines (tests/fixtures/*:
//! real `os-release`, apt sources and dpkg status files captured from a
//! fresh bookworm machine, varied by layout), through the same command
//! `scripts/setup` runs, with `--dry-run --root` so the machine's own apt
//! state is never read or touched.

use std::path::PathBuf;
use std::process::Command;

fn setup(host: &str, extra: &[&str]) -> (bool, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(host);
    assert!(root.is_dir(), "fixture {host} missing");
    let out = Command::new(env!("CARGO_BIN_EXE_ktstr-setup"))
        .args(["--dry-run", "--root"])
        .arg(&root)
        .args(extra)
        .env_remove("KTSTR_DEBIAN_MIRROR")
        .output()
        .expect("runs ktstr-setup");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.replace(&root.display().to_string(), "<root>"))
}

fn ok(host: &str, extra: &[&str]) -> String {
    let (success, text) = setup(host, extra);
    assert!(success, "{host}: {text}");
    text
}

// The release's own packages first: QEMU's install from backports would
// otherwise bring backports' libelf1, which bookworm's libelf-dev refuses.
const FRESH_INSTALLS: &str = "\
setup: install from bookworm: clang-19 libelf-dev busybox-static
setup: install from bookworm-backports: qemu-system-x86
setup: already installed: zlib1g-dev pkg-config make debian-archive-keyring
";

#[test]
fn deb822_only_adds_backports_from_the_deb822_mirror() {
    // The layout of a fresh bookworm cloud machine: no sources.list, no
    // *.list; the disabled files beside debian.sources are ignored.
    assert_eq!(
        ok("fresh-deb822", &[]),
        format!(
            "setup: Debian bookworm, archive http://mirror.example/debian (from <root>/etc/apt/sources.list.d/debian.sources)\n\
             setup: add bookworm-backports as <root>/etc/apt/sources.list.d/ktstr-backports.sources\n{FRESH_INSTALLS}"
        )
    );
}

#[test]
fn one_line_only_takes_the_mirror_from_sources_list() {
    assert_eq!(
        ok("fresh-one-line", &[]),
        format!(
            "setup: Debian bookworm, archive http://mirror.example/debian (from <root>/etc/apt/sources.list)\n\
             setup: add bookworm-backports as <root>/etc/apt/sources.list.d/ktstr-backports.sources\n{FRESH_INSTALLS}"
        )
    );
}

#[test]
fn both_layouts_take_the_first_in_apt_order() {
    // apt reads sources.list before sources.list.d: its mirror wins.
    let text = ok("fresh-both", &[]);
    assert!(
        text.starts_with(
            "setup: Debian bookworm, archive http://old-mirror.example/debian (from <root>/etc/apt/sources.list)\n"
        ),
        "{text}"
    );
}

#[test]
fn no_sources_says_what_to_do() {
    let (success, text) = setup("fresh-no-sources", &[]);
    assert!(!success, "{text}");
    assert!(text.contains("found no Debian archive in <root>/etc/apt/sources.list"), "{text}");
    assert!(text.contains("set KTSTR_DEBIAN_MIRROR"), "{text}");
}

#[test]
fn existing_backports_is_used_not_added() {
    for (host, file) in [("backports-deb822", "debian.sources"), ("backports-one-line", "backports.list")] {
        assert_eq!(
            ok(host, &[]),
            format!(
                "setup: Debian bookworm, archive http://mirror.example/debian (from <root>/etc/apt/sources.list.d/debian.sources)\n\
                 setup: bookworm-backports already configured in <root>/etc/apt/sources.list.d/{file}\n{FRESH_INSTALLS}"
            ),
            "{host}"
        );
    }
}

#[test]
fn disabled_backports_counts_as_absent() {
    let text = ok("backports-disabled", &[]);
    assert!(
        text.contains("setup: add bookworm-backports as <root>/etc/apt/sources.list.d/ktstr-backports.sources"),
        "{text}"
    );
}

#[test]
fn old_qemu_is_upgraded_from_backports() {
    let text = ok("old-qemu", &[]);
    assert!(text.contains("setup: install from bookworm-backports: qemu-system-x86\n"), "{text}");
    assert!(!text.contains("install from bookworm: "), "only QEMU is missing: {text}");
}

#[test]
fn ready_machine_installs_nothing() {
    assert_eq!(
        ok("ready", &[]),
        "setup: nothing to install (qemu-system-x86 clang-19 libelf-dev zlib1g-dev pkg-config make debian-archive-keyring busybox-static present)\n"
    );
    // The test suite also wants shellcheck, g++ for libFuzzer and chromium
    // for the HTML reports.
    let text = ok("ready", &["--test-tools"]);
    assert!(!text.contains("setup: add bookworm-backports"), "{text}");
    assert!(text.contains("setup: install from bookworm: shellcheck g++ chromium\n"), "{text}");
}

#[test]
fn trixie_takes_qemu_from_its_own_suite() {
    let text = ok("trixie", &[]);
    // Its dynamic busybox serves the shell: busybox-static would replace it.
    assert!(text.contains("setup: install from trixie: qemu-system-x86 clang-19 libelf-dev\n"), "{text}");
    assert!(
        text.contains("setup: already installed: zlib1g-dev pkg-config make debian-archive-keyring busybox\n"),
        "{text}"
    );
    assert!(!text.contains("backports"), "{text}");
}

#[test]
fn not_debian_lists_what_to_install() {
    let (success, text) = setup("not-debian", &[]);
    assert!(!success, "{text}");
    assert!(text.contains("not Debian"), "{text}");
    assert!(text.contains("Install these yourself: qemu-system-x86 clang-19 libelf-dev"), "{text}");
}

#[test]
fn root_is_only_for_dry_runs() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_ktstr-setup")).args(["--root", "/tmp"]).output().expect("runs ktstr-setup");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dry-run"));
}
