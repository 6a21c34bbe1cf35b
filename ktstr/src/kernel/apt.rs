//! A private apt environment for one Debian suite: its own sources list,
//! lists, cache and (empty) dpkg status under the kernel cache, so the
//! machine's apt state is never touched. The archive URI comes from the
//! machine's own Debian sources (or `KTSTR_DEBIAN_MIRROR`).
//!
//! Everything is set in one generated `apt.conf` passed through `APT_CONFIG`,
//! which apt reads before `/etc/apt/apt.conf.d` (so the host's proxy and
//! network settings still apply); the same file is named as the main config,
//! read after the parts, to take back the host's update hooks.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Overrides the archive URI (`http://<mirror>/debian`).
pub const MIRROR_ENV: &str = "KTSTR_DEBIAN_MIRROR";
/// Overrides the keyring used to verify the archive's signatures.
pub const KEYRING_ENV: &str = "KTSTR_APT_KEYRING";
/// Debian's archive keyring as installed by `debian-archive-keyring`.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// One `deb` line or deb822 stanza of an apt sources file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceEntry {
    pub types: Vec<String>,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
    pub enabled: bool,
}

/// Parses one-line style (`sources.list`, `*.list`).
pub fn parse_one_line(text: &str) -> Vec<SourceEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((kind, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if kind != "deb" && kind != "deb-src" {
            continue;
        }
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, after)) = opts.split_once(']') else {
                continue;
            };
            for opt in opts.split_whitespace() {
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
            }
            rest = after.trim_start();
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(SourceEntry {
            types: vec![kind.to_string()],
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            signed_by,
            enabled: true,
        });
    }
    out
}

/// Parses deb822 style (`*.sources`).
pub fn parse_deb822(text: &str) -> Vec<SourceEntry> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut e = SourceEntry { enabled: true, ..Default::default() };
        let mut last_key = String::new();
        let mut any = false;
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            let (key, value) = if line.starts_with(char::is_whitespace) {
                (last_key.clone(), line.trim())
            } else if let Some((k, v)) = line.split_once(':') {
                last_key = k.trim().to_ascii_lowercase();
                (last_key.clone(), v.trim())
            } else {
                continue;
            };
            let words = || value.split_whitespace().map(str::to_string);
            any = true;
            match key.as_str() {
                "types" => e.types.extend(words()),
                "uris" => e.uris.extend(words()),
                "suites" => e.suites.extend(words()),
                "components" => e.components.extend(words()),
                "enabled" => e.enabled = !value.eq_ignore_ascii_case("no"),
                // A path; an embedded key block (multi-line) is not usable here.
                "signed-by" if e.signed_by.is_none() && value.starts_with('/') => e.signed_by = Some(value.to_string()),
                _ => {}
            }
        }
        if any && !e.uris.is_empty() {
            out.push(e);
        }
    }
    out
}

/// All entries from the machine's apt sources.
fn host_sources() -> Vec<SourceEntry> {
    let mut out = Vec::new();
    if let Ok(text) = fs::read_to_string("/etc/apt/sources.list") {
        out.extend(parse_one_line(&text));
    }
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            let Ok(text) = fs::read_to_string(&p) else {
                continue;
            };
            match p.extension().and_then(|e| e.to_str()) {
                Some("list") => out.extend(parse_one_line(&text)),
                Some("sources") => out.extend(parse_deb822(&text)),
                _ => {}
            }
        }
    }
    out
}

/// The machine's Debian release codename (`bookworm`), if it is Debian.
fn host_codename() -> Option<String> {
    let text = fs::read_to_string("/etc/os-release").ok()?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .map(|v| v.trim_matches('"').to_string())
    };
    (get("ID").as_deref() == Some("debian")).then(|| get("VERSION_CODENAME")).flatten()
}

/// The Debian archive among `entries`: the one serving the host's own
/// release suite (`bookworm`, not `bookworm-security`); failing that, any
/// enabled `deb` entry whose URI ends in `/debian`.
pub fn pick_mirror(entries: &[SourceEntry], codename: Option<&str>) -> Option<(String, Option<String>)> {
    let usable =
        |e: &&SourceEntry| e.enabled && e.types.iter().any(|t| t == "deb") && e.components.iter().any(|c| c == "main");
    let serves_codename = |e: &&SourceEntry| codename.is_some_and(|c| e.suites.iter().any(|s| s == c));
    let debian_uri = |u: &&String| u.trim_end_matches('/').ends_with("/debian");
    let by_codename = entries.iter().filter(usable).find(serves_codename);
    let entry =
        by_codename.or_else(|| entries.iter().filter(usable).find(|e| e.uris.iter().any(|u| debian_uri(&u))))?;
    let uri = entry.uris.iter().find(debian_uri).or(entry.uris.first())?;
    Some((uri.trim_end_matches('/').to_string(), entry.signed_by.clone()))
}

/// The archive URI and a keyring to verify it with.
fn archive() -> Result<(String, PathBuf)> {
    let (uri, signed_by) = match std::env::var(MIRROR_ENV).ok().filter(|s| !s.is_empty()) {
        Some(uri) => (uri, None),
        None => pick_mirror(&host_sources(), host_codename().as_deref()).with_context(|| {
            format!(
                "found no Debian archive in /etc/apt/sources.list or /etc/apt/sources.list.d; \
                 set {MIRROR_ENV} to a Debian mirror URI (the one you would put in a `deb` line)"
            )
        })?,
    };
    let keyring = std::env::var_os(KEYRING_ENV)
        .map(PathBuf::from)
        .or_else(|| Path::new(DEBIAN_KEYRING).is_file().then(|| DEBIAN_KEYRING.into()))
        .or_else(|| signed_by.map(PathBuf::from).filter(|p| p.is_file()))
        .with_context(|| {
            format!(
                "no Debian archive keyring: install the `debian-archive-keyring` package \
                 or set {KEYRING_ENV} to a keyring file"
            )
        })?;
    Ok((uri, keyring))
}

/// A private apt setup for one suite.
pub struct Apt {
    dir: PathBuf,
    sources: String,
    pub suite: String,
    pub mirror: String,
    pub keyring: PathBuf,
}

impl Apt {
    /// Writes the private configuration under `dir` (idempotent).
    pub fn prepare(dir: &Path, suite: &str) -> Result<Apt> {
        for tool in ["apt-get", "apt-cache", "dpkg-deb"] {
            if which(tool).is_none() {
                bail!(
                    "`{tool}` is not installed: fetching Debian kernels needs apt and dpkg \
                     (a Debian or Ubuntu host); elsewhere build a kernel with CONFIG_SCHED_CLASS_EXT=y \
                     and pass it with --kernel or KTSTR_KERNEL"
                );
            }
        }
        let (mirror, keyring) = archive()?;
        for sub in ["lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"] {
            fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let sources = format!("deb [signed-by={} target=Packages] {mirror} {suite} main\n", keyring.display());
        let conf_path = dir.join("apt.conf");
        let d = |s: &str| dir.join(s).display().to_string();
        let conf = format!(
            "// Generated by ktstr: a private apt setup for fetching kernels.\n\
             Dir::Etc::main \"{conf}\";\n\
             Dir::Etc::SourceList \"{sources}\";\n\
             Dir::Etc::SourceParts \"{parts}\";\n\
             Dir::Etc::Preferences \"{prefs}\";\n\
             Dir::Etc::PreferencesParts \"{prefs_d}\";\n\
             Dir::State \"{state}\";\n\
             Dir::State::Lists \"{lists}\";\n\
             Dir::State::status \"{status}\";\n\
             Dir::Cache \"{cache}\";\n\
             // No binary caches: for trixie main they are 2 x 41 MB, and a\n\
             // fetch makes only a few apt-cache calls.\n\
             Dir::Cache::pkgcache \"\";\n\
             Dir::Cache::srcpkgcache \"\";\n\
             APT::Architecture \"amd64\";\n\
             APT::Architectures {{ \"amd64\"; }};\n\
             Acquire::Languages \"none\";\n\
             #clear APT::Update::Pre-Invoke;\n\
             #clear APT::Update::Post-Invoke;\n\
             #clear APT::Update::Post-Invoke-Success;\n",
            conf = conf_path.display(),
            sources = d("sources.list"),
            parts = d("sources.list.d"),
            prefs = d("preferences"),
            prefs_d = d("preferences.d"),
            state = dir.display(),
            lists = d("lists"),
            status = d("status"),
            cache = d("cache"),
        );
        write_if_changed(&dir.join("sources.list"), &sources)?;
        write_if_changed(&conf_path, &conf)?;
        write_if_changed(&dir.join("status"), "")?;
        Ok(Apt { dir: dir.to_path_buf(), sources, suite: suite.to_string(), mirror, keyring })
    }

    /// A command for `tool` (apt-get, apt-cache) using this setup.
    pub fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.env("APT_CONFIG", self.dir.join("apt.conf"))
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(std::process::Stdio::null());
        cmd
    }

    fn stamp(&self) -> PathBuf {
        self.dir.join("updated")
    }

    /// Whether the package index was updated from the current sources
    /// within `max_age`.
    pub fn index_fresh(&self, max_age: std::time::Duration) -> bool {
        let same_sources = fs::read_to_string(self.stamp()).is_ok_and(|s| s == self.sources);
        let age = fs::metadata(self.stamp()).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        same_sources && age.is_some_and(|age| age < max_age)
    }

    /// Whether an earlier `apt-get update` left a package index.
    pub fn has_index(&self) -> bool {
        fs::read_dir(self.dir.join("lists"))
            .is_ok_and(|rd| rd.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().contains("_Packages")))
    }

    /// `apt-get update` for this suite only.
    pub fn update(&self) -> Result<()> {
        let out = run(self.command("apt-get").args(["-q", "update"]))?;
        let text = output_text(&out);
        let key_trouble = ["NO_PUBKEY", "EXPKEYSIG", "KEYEXPIRED", "is not signed", "GPG error"];
        if key_trouble.iter().any(|k| text.contains(k)) {
            bail!(
                "cannot verify the `{suite}` archive at {mirror} with {keyring}.\n\
                 The keyring may predate this Debian release: install a newer one \
                 (e.g. `apt-get install -t <your release>-backports debian-archive-keyring`) \
                 or point {KEYRING_ENV} at a keyring that has the key.\n\napt said:\n{text}",
                suite = self.suite,
                mirror = self.mirror,
                keyring = self.keyring.display(),
            );
        }
        if !out.status.success() || text.contains("Failed to fetch") || text.lines().any(|l| l.starts_with("E:")) {
            bail!("`apt-get update` for {} from {} failed:\n{text}", self.suite, self.mirror);
        }
        fs::write(self.stamp(), &self.sources)?;
        Ok(())
    }

    /// `apt-cache show` of the candidate versions of `packages`, parsed.
    pub fn show(&self, packages: &[&str]) -> Result<Vec<Stanza>> {
        let out = run(self.command("apt-cache").args(["show", "--no-all-versions"]).args(packages))?;
        if !out.status.success() {
            bail!(
                "the `{}` suite at {} has no package {}:\n{}",
                self.suite,
                self.mirror,
                packages.join(", "),
                output_text(&out)
            );
        }
        Ok(parse_stanzas(&String::from_utf8_lossy(&out.stdout)))
    }
}

/// One `Key: value` record of `apt-cache show`.
#[derive(Debug, Clone, Default)]
pub struct Stanza(pub Vec<(String, String)>);

impl Stanza {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    /// Package names in `Depends` (first alternative of each, no versions).
    pub fn depends(&self) -> Vec<String> {
        self.get("Depends")
            .unwrap_or("")
            .split(',')
            .filter_map(|dep| dep.split('|').next())
            .filter_map(|alt| alt.split_whitespace().next())
            .map(|name| name.split(':').next().unwrap_or(name).to_string())
            .filter(|n| !n.is_empty())
            .collect()
    }
}

pub fn parse_stanzas(text: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    let mut cur = Stanza::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.0.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with(char::is_whitespace) {
            if let Some(last) = cur.0.last_mut() {
                last.1.push('\n');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            cur.0.push((k.to_string(), v.trim().to_string()));
        }
    }
    if !cur.0.is_empty() {
        out.push(cur);
    }
    out
}

pub fn run(cmd: &mut Command) -> Result<Output> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.output().with_context(|| format!("running {program}"))
}

pub fn output_text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s.trim_end().to_string()
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|p| p.join(tool)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file())
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://other.example/debian
Suites: bookworm
Components: main
Enabled: no
";

    #[test]
    fn deb822_sources() {
        let e = parse_deb822(DEB822);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(e[1].uris, ["http://mirror.example/debian-security"]);
        assert!(!e[2].enabled);
        let (uri, key) = pick_mirror(&e, Some("bookworm")).unwrap();
        assert_eq!(uri, "http://mirror.example/debian");
        assert_eq!(key.as_deref(), Some("/usr/share/keyrings/debian-archive-keyring.gpg"));
    }

    #[test]
    fn one_line_sources() {
        let e = parse_one_line(
            "# comment\n\
             deb https://packages.example/apt cloud-sdk main\n\
             deb-src http://src.example/debian bookworm main\n\
             deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib # tail\n",
        );
        assert_eq!(e.len(), 3);
        assert_eq!(e[2].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(e[2].components, ["main", "contrib"]);
        let (uri, _) = pick_mirror(&e, Some("bookworm")).unwrap();
        assert_eq!(uri, "http://mirror.example/debian");
        // Not a Debian host: fall back to a URI ending in /debian.
        let (uri, _) = pick_mirror(&e, None).unwrap();
        assert_eq!(uri, "http://mirror.example/debian");
        assert!(pick_mirror(&e[..1], Some("bookworm")).is_none());
    }

    #[test]
    fn stanzas_and_depends() {
        let s = parse_stanzas(
            "Package: linux-image-cloud-amd64\nVersion: 7.3.4-1~bpo13+1\n\
             Depends: linux-base-cloud-amd64 (= 7.3.4-1~bpo13+1), linux-image-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)\n\
             Description: meta\n more text\n\n\
             Package: linux-image-7.3.4+deb13-cloud-amd64\n\
             Depends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].get("version"), Some("7.3.4-1~bpo13+1"));
        assert_eq!(s[0].depends(), ["linux-base-cloud-amd64", "linux-image-7.3.4+deb13-cloud-amd64"]);
        assert_eq!(s[1].depends(), ["dracut", "linux-base-7.3.4+deb13-cloud-amd64"]);
        assert_eq!(s[0].get("Description"), Some("meta\nmore text"));
    }
}
