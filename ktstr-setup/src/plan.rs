//! What host set-up would do on a machine: which Debian packages are
//! missing and which archive each comes from. Decided from files only
//! (see [`crate::debian::HostDebian`]), so it is tested against sample
//! apt layouts without touching the machine.

use std::fmt;
use std::path::PathBuf;

use crate::debian::{upstream_major, Archive, HostDebian, DEBIAN_KEYRING};
use anyhow::{bail, Result};

/// QEMU older than this panicked in early TCG boots (bookworm's 7.2).
pub const MIN_QEMU_MAJOR: u32 = 10;
const QEMU_PKG: &str = "qemu-system-x86";
/// The BPF scheduler build (clang-19, libelf, zlib, pkg-config; libbpf's
/// vendored build runs make) and the kernel extraction (dpkg-deb, in dpkg).
const BUILD_PKGS: &[&str] = &["clang-19", "libelf-dev", "zlib1g-dev", "pkg-config", "make", "debian-archive-keyring"];
/// `cargo ktstr shell`'s guest shell: a static busybox, copied into the
/// initramfs as it is.
const SHELL_PKGS: &[&str] = &[BUSYBOX_PKG];
const BUSYBOX_PKG: &str = "busybox-static";
/// Debian's dynamic busybox serves as well (its libraries go into the
/// image with it), and conflicts with busybox-static: never replace it.
const BUSYBOX_ALT: &str = "busybox";
/// What `./run test` needs beyond a demo: the shell scripts' lint, a C++
/// compiler for libFuzzer (its short fuzz pass, scripts/fuzz-smoke), and
/// a headless browser that renders the HTML run reports in their test.
const TEST_PKGS: &[&str] = &["shellcheck", "g++", "chromium"];
/// The backports sources file set-up writes when it needs one.
pub const BACKPORTS_FILE: &str = "etc/apt/sources.list.d/ktstr-backports.sources";

/// One `apt-get install` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Install {
    pub packages: Vec<String>,
    /// `-t <suite>`, or `None` for the release's own suites.
    pub suite: Option<String>,
}

/// The decisions, in the order they are carried out.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupPlan {
    pub codename: String,
    /// The archive, when anything has to come from one.
    pub archive: Option<Archive>,
    /// A backports source to write first: (path, deb822 text).
    pub add_source: Option<(PathBuf, String)>,
    /// Where an existing backports source was found.
    pub backports_from: Option<String>,
    pub installs: Vec<Install>,
    pub present: Vec<String>,
}

impl SetupPlan {
    pub fn is_empty(&self) -> bool {
        self.installs.is_empty()
    }
}

/// Decides what set-up must do on `host`. `test_tools` adds what the
/// whole test suite needs beyond the demo.
pub fn plan(host: &HostDebian, test_tools: bool) -> Result<SetupPlan> {
    let wanted: Vec<&str> =
        BUILD_PKGS.iter().chain(SHELL_PKGS).chain(if test_tools { TEST_PKGS } else { &[] }).copied().collect();
    let qemu_ok = host.installed_version(QEMU_PKG).and_then(upstream_major).is_some_and(|m| m >= MIN_QEMU_MAJOR);
    let mut present: Vec<String> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for p in std::iter::once(QEMU_PKG).chain(wanted.iter().copied()) {
        let ok = if p == QEMU_PKG { qemu_ok } else { host.installed_version(p).is_some() };
        if ok {
            present.push(p.into())
        } else if p == BUSYBOX_PKG && host.installed_version(BUSYBOX_ALT).is_some() {
            present.push(BUSYBOX_ALT.into())
        } else {
            missing.push(p.into())
        }
    }
    let Some(codename) = host.debian_codename().map(str::to_string) else {
        if missing.is_empty() {
            return Ok(SetupPlan {
                codename: host.codename.clone().unwrap_or_default(),
                archive: None,
                add_source: None,
                backports_from: None,
                installs: Vec::new(),
                present,
            });
        }
        bail!(
            "this machine is not Debian ({} says ID={}), so set-up cannot install packages for you. \
             Install these yourself: {} (QEMU {MIN_QEMU_MAJOR} or newer), then rerun",
            host.root.join("etc/os-release").display(),
            host.id.as_deref().unwrap_or("?"),
            missing.join(" ")
        );
    };
    let mut plan = SetupPlan {
        codename: codename.clone(),
        archive: None,
        add_source: None,
        backports_from: None,
        installs: Vec::new(),
        present,
    };
    if missing.is_empty() {
        return Ok(plan);
    }
    plan.archive = Some(host.archive()?);
    // bookworm's own QEMU is 7.2: take 10.x from bookworm-backports.
    // Later releases ship a new enough QEMU in their own suite.
    let qemu_suite = (codename == "bookworm" && !qemu_ok).then(|| format!("{codename}-backports"));
    if let Some(suite) = &qemu_suite {
        match host.has_suite(suite) {
            Some(e) => plan.backports_from = Some(e.file.display().to_string()),
            None => {
                let archive = plan.archive.as_ref().expect("set above");
                let keyring = archive.signed_by.as_deref().unwrap_or(DEBIAN_KEYRING);
                let text = format!(
                    "# Written by ktstr's set-up: QEMU {MIN_QEMU_MAJOR} for TCG guests.\n\
                     Types: deb\nURIs: {}\nSuites: {suite}\nComponents: main\nSigned-By: {keyring}\n",
                    archive.uri
                );
                plan.add_source = Some((host.root.join(BACKPORTS_FILE), text));
            }
        }
    }
    // QEMU gets an install of its own only when it comes from another
    // suite, and last: `-t <codename>-backports` prefers that suite for
    // every package the call installs, dependencies too, so on a fresh
    // machine QEMU would pull backports' libelf1, which the release's
    // libelf-dev (needing its own libelf1 exactly) then cannot join. With
    // the release's packages in first, QEMU's dependencies are already met.
    let backports_qemu = qemu_suite.map(|suite| Install { packages: vec![QEMU_PKG.into()], suite: Some(suite) });
    if backports_qemu.is_some() {
        missing.retain(|p| p != QEMU_PKG);
    }
    if !missing.is_empty() {
        plan.installs.push(Install { packages: missing, suite: None });
    }
    plan.installs.extend(backports_qemu);
    Ok(plan)
}

impl fmt::Display for SetupPlan {
    /// The decisions, one `setup:` line each.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.installs.is_empty() {
            return writeln!(f, "setup: nothing to install ({} present)", self.present.join(" "));
        }
        if let Some(a) = &self.archive {
            writeln!(f, "setup: Debian {}, archive {} (from {})", self.codename, a.uri, a.from)?;
        }
        if let Some(from) = &self.backports_from {
            writeln!(f, "setup: {}-backports already configured in {from}", self.codename)?;
        }
        if let Some((path, _)) = &self.add_source {
            writeln!(f, "setup: add {}-backports as {}", self.codename, path.display())?;
        }
        for i in &self.installs {
            let suite = i.suite.clone().unwrap_or_else(|| self.codename.clone());
            writeln!(f, "setup: install from {suite}: {}", i.packages.join(" "))?;
        }
        if !self.present.is_empty() {
            writeln!(f, "setup: already installed: {}", self.present.join(" "))?;
        }
        Ok(())
    }
}
