//! Schedulers installed from the crates registry (`cargo ktstr sched
//! install scx_lavd[@1.1.4]`): one directory per name and version,
//! `<cache>/schedulers/<name>/<version>/bin/<name>`, the same layout
//! `cargo install --root` makes, so an install is a `cargo install` into a
//! staging root renamed into place (whole, or not at all). Builds share one
//! cargo target directory, `<cache>/schedulers/.target`: the second
//! scheduler reuses most of the first's dependencies.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
pub use semver::Version;

use super::is_executable;

/// The cache's scheduler directory.
pub fn root() -> PathBuf {
    super::cache_subdir("schedulers")
}

/// A scheduler crate, optionally at one version: `scx_lavd` or `scx_lavd@1.1.4`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedSpec {
    pub name: String,
    pub version: Option<Version>,
}

impl SchedSpec {
    pub fn parse(s: &str) -> Result<SchedSpec> {
        let (name, version) = match s.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            bail!("`{s}` is not a crate name: expected e.g. `scx_lavd` or `scx_lavd@1.1.4`");
        }
        let version = version
            .map(|v| {
                Version::parse(v).with_context(|| {
                    format!("`{v}` in `{s}` is not a full version: give all three parts, e.g. `{name}@1.1.4`")
                })
            })
            .transpose()?;
        Ok(SchedSpec { name: name.to_string(), version })
    }
}

impl std::fmt::Display for SchedSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One installed scheduler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub version: Version,
    /// Its binary.
    pub path: PathBuf,
}

/// Every installed scheduler under `root`, by name, newest version first.
/// Directories that are not a complete install (no executable binary, or
/// a name that is not a version, e.g. a staging root) are skipped.
pub fn installed_in(root: &Path) -> Vec<Installed> {
    let mut out = Vec::new();
    let Ok(names) = std::fs::read_dir(root) else { return out };
    for name in names.flatten() {
        let name = name.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(versions) = std::fs::read_dir(root.join(&name)) else { continue };
        for v in versions.flatten() {
            let Ok(version) = Version::parse(&v.file_name().to_string_lossy()) else { continue };
            let path = v.path().join("bin").join(&name);
            if is_executable(&path) {
                out.push(Installed { name: name.clone(), version, path });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(b.version.cmp(&a.version)));
    out
}

/// The newest install matching `spec` under `root`.
pub fn find_in(root: &Path, spec: &SchedSpec) -> Option<Installed> {
    installed_in(root)
        .into_iter()
        .find(|i| i.name == spec.name && spec.version.as_ref().is_none_or(|v| *v == i.version))
}

/// Where an install of `name` at `version` lives.
pub fn install_dir(root: &Path, name: &str, version: &Version) -> PathBuf {
    root.join(name).join(version.to_string())
}

/// The version `cargo install --root` recorded in its `.crates2.json`
/// for crate `name` (keys read `"<name> <version> (<source>)"`).
pub fn version_from_crates2(json: &str, name: &str) -> Result<Version> {
    let v: serde_json::Value = serde_json::from_str(json).context("cargo's .crates2.json is not JSON")?;
    let installs = v.get("installs").and_then(|i| i.as_object()).context("cargo's .crates2.json has no `installs`")?;
    for key in installs.keys() {
        let mut parts = key.split(' ');
        if parts.next() == Some(name) {
            if let Some(ver) = parts.next() {
                return Version::parse(ver).with_context(|| format!("version `{ver}` in .crates2.json"));
            }
        }
    }
    bail!("cargo's .crates2.json records no install of {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_clear_errors() {
        let s = SchedSpec::parse("scx_lavd@1.1.4").unwrap();
        assert_eq!((s.name.as_str(), s.version.map(|v| v.to_string())), ("scx_lavd", Some("1.1.4".into())));
        assert_eq!(SchedSpec::parse("scx_lavd").unwrap().version, None);
        let e = SchedSpec::parse("scx_lavd@1.1").unwrap_err();
        assert!(format!("{e:#}").contains("give all three parts, e.g. `scx_lavd@1.1.4`"), "{e:#}");
        let e = SchedSpec::parse("../evil").unwrap_err();
        assert!(e.to_string().contains("is not a crate name"), "{e}");
    }

    /// cargo's own record, as `cargo install --root` wrote it for scx_cosmos.
    #[test]
    fn version_comes_from_cargos_record() {
        let json = include_str!("../../tests/fixtures/sched/crates2.json");
        assert_eq!(version_from_crates2(json, "scx_cosmos").unwrap(), Version::new(1, 1, 7));
        assert!(version_from_crates2(json, "scx_lavd").is_err());
        assert!(version_from_crates2("{", "x").is_err());
    }

    #[test]
    fn newest_complete_install_wins() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ktstr-sched-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, ver, exec) in [("scx_a", "1.0.0", true), ("scx_a", "1.2.0", true), ("scx_a", "1.3.0", false)] {
            let bin = install_dir(&dir, name, &Version::parse(ver).unwrap()).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            let p = bin.join(name);
            std::fs::write(&p, "").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 })).unwrap();
        }
        std::fs::create_dir_all(dir.join(".staging-scx_a")).unwrap();
        let all = installed_in(&dir);
        assert_eq!(all.iter().map(|i| i.version.to_string()).collect::<Vec<_>>(), ["1.2.0", "1.0.0"]);
        let pinned = SchedSpec::parse("scx_a@1.0.0").unwrap();
        assert_eq!(find_in(&dir, &pinned).unwrap().version, Version::new(1, 0, 0));
        assert_eq!(find_in(&dir, &SchedSpec::parse("scx_a").unwrap()).unwrap().version, Version::new(1, 2, 0));
        assert!(find_in(&dir, &SchedSpec::parse("scx_b").unwrap()).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
