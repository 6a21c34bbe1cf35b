//! The host's Debian: its release, apt sources and installed packages,
//! read from files under a root directory (`/` on a real machine, a sample
//! tree in tests), so every decision made from them can be tested against
//! any layout without touching the machine's apt state.
//!
//! This is the one place that answers "which Debian archive does this
//! machine use": kernel fetches and host set-up both ask it.

mod control;
mod sources;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use control::{parse_stanzas, Stanza};
pub use sources::{parse_deb822, parse_one_line, pick_archive, read_sources, SourceEntry};

/// Debian's archive keyring as installed by `debian-archive-keyring`.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Overrides the archive URI (`http://<mirror>/debian`).
pub const MIRROR_ENV: &str = "KTSTR_DEBIAN_MIRROR";

/// What the files under one root say about the machine.
#[derive(Debug, Clone)]
pub struct HostDebian {
    pub root: PathBuf,
    /// `ID` of `/etc/os-release` (`debian`, `ubuntu`, ...).
    pub id: Option<String>,
    /// `VERSION_CODENAME` (`bookworm`).
    pub codename: Option<String>,
    pub sources: Vec<SourceEntry>,
    /// Installed packages and their versions, from `/var/lib/dpkg/status`.
    pub installed: Vec<(String, String)>,
}

/// The machine's Debian archive and where that was decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    pub uri: String,
    pub signed_by: Option<String>,
    /// The sources file it came from, or the environment variable.
    pub from: String,
}

impl HostDebian {
    pub fn read(root: &Path) -> HostDebian {
        let os_release = fs::read_to_string(root.join("etc/os-release")).unwrap_or_default();
        let get = |k: &str| {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .map(|v| v.trim_matches('"').to_string())
                .filter(|v| !v.is_empty())
        };
        let status = fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap_or_default();
        let installed = parse_stanzas(&status)
            .into_iter()
            .filter(|s| s.get("Status").is_some_and(|st| st.ends_with(" installed")))
            .filter_map(|s| Some((s.get("Package")?.to_string(), s.get("Version")?.to_string())))
            .collect();
        HostDebian {
            root: root.to_path_buf(),
            id: get("ID"),
            codename: get("VERSION_CODENAME"),
            sources: read_sources(root),
            installed,
        }
    }

    /// The real machine.
    pub fn host() -> HostDebian {
        HostDebian::read(Path::new("/"))
    }

    pub fn is_debian(&self) -> bool {
        self.id.as_deref() == Some("debian")
    }

    /// The Debian codename, only on Debian.
    pub fn debian_codename(&self) -> Option<&str> {
        self.codename.as_deref().filter(|_| self.is_debian())
    }

    pub fn installed_version(&self, package: &str) -> Option<&str> {
        self.installed.iter().find(|(p, _)| p == package).map(|(_, v)| v.as_str())
    }

    /// Whether some enabled source serves `suite`.
    pub fn has_suite(&self, suite: &str) -> Option<&SourceEntry> {
        self.sources.iter().find(|e| e.is_usable() && e.serves(suite))
    }

    /// The archive: `KTSTR_DEBIAN_MIRROR` if set, else the machine's own
    /// Debian source (see [`pick_archive`]).
    pub fn archive(&self) -> Result<Archive> {
        if let Some(uri) = std::env::var(MIRROR_ENV).ok().filter(|s| !s.is_empty()) {
            return Ok(Archive {
                uri: uri.trim_end_matches('/').to_string(),
                signed_by: None,
                from: MIRROR_ENV.into(),
            });
        }
        let (entry, uri) = pick_archive(&self.sources, self.debian_codename()).with_context(|| {
            let etc = self.root.join("etc/apt");
            format!(
                "found no Debian archive in {}/sources.list or {}/sources.list.d/*.list|*.sources; \
                 add your Debian mirror to apt's sources, or set {MIRROR_ENV} to a Debian mirror URI \
                 (the one you would put in a `deb` line, e.g. http://<mirror>/debian)",
                etc.display(),
                etc.display()
            )
        })?;
        Ok(Archive { uri, signed_by: entry.signed_by.clone(), from: entry.file.display().to_string() })
    }
}

/// The upstream major version of a Debian version string:
/// `1:10.0.2+ds-2+deb13u1~bpo12+1` → 10.
pub fn upstream_major(version: &str) -> Option<u32> {
    let upstream = version.split_once(':').map_or(version, |(_, v)| v);
    upstream.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_majors() {
        assert_eq!(upstream_major("1:10.0.2+ds-2+deb13u1~bpo12+1"), Some(10));
        assert_eq!(upstream_major("1:7.2+dfsg-7+deb12u13"), Some(7));
        assert_eq!(upstream_major("19.1.4-1~deb12u1"), Some(19));
        assert_eq!(upstream_major("garbage"), None);
    }
}
