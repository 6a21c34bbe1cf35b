//! Busybox, the guest's shell for `cargo ktstr shell`: found on the host
//! (Debian's `busybox-static`, which `cargo ktstr setup` installs) and
//! copied into the initramfs with its applet links.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// Where busybox lives in the guest.
pub(crate) const GUEST_PATH: &str = crate::wire::paths::BUSYBOX;

/// Where Debian's busybox packages put it (`/bin` is `/usr/bin` on a
/// merged-/usr system, but not everywhere).
const HOST_PATHS: &[&str] = &["/usr/bin/busybox", "/bin/busybox"];

/// The host's busybox, or an error that says how to get one.
pub fn find() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("busybox")).collect::<Vec<_>>())
        .unwrap_or_default();
    HOST_PATHS.iter().map(PathBuf::from).chain(on_path).find(|p| p.is_file()).ok_or_else(|| {
        anyhow::anyhow!(
            "busybox not found (looked in {} and $PATH): the shell's VM runs it as its shell. \
             Install it with `cargo ktstr setup` (or `apt-get install busybox-static`)",
            HOST_PATHS.join(", ")
        )
    })
}

/// Guest paths of the applet links, as busybox itself lists them
/// (`--list-full`: `bin/sh`, `usr/bin/awk`, ...). Only those in the usual
/// bin directories, so that nothing can shadow `/init` or a library.
pub(crate) fn applets(busybox: &Path) -> anyhow::Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running `{} --list-full`", busybox.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "`{} --list-full` failed ({}): is it a busybox binary?",
        busybox.display(),
        out.status
    );
    Ok(parse_list(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_list(text: &str) -> Vec<String> {
    const DIRS: &[&str] = &["bin/", "sbin/", "usr/bin/", "usr/sbin/"];
    text.lines()
        .map(str::trim)
        .filter(|l| DIRS.iter().any(|d| l.strip_prefix(d).is_some_and(|name| !name.is_empty() && !name.contains('/'))))
        .map(|l| format!("/{l}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_keeps_bin_dirs_only() {
        let text = "usr/bin/[\nbin/sh\nsbin/ip\nusr/sbin/chroot\nlinuxrc\netc/x\nbin/a/b\n";
        assert_eq!(parse_list(text), ["/usr/bin/[", "/bin/sh", "/sbin/ip", "/usr/sbin/chroot"]);
    }
}
