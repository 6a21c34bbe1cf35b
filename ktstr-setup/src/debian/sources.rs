//! apt's sources, in both layouts Debian ships: one-line (`sources.list`,
//! `*.list`) and deb822 (`*.sources`, the only one on fresh bookworm cloud
//! images).

use std::fs;
use std::path::{Path, PathBuf};

/// One `deb` line or deb822 stanza of an apt sources file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceEntry {
    pub types: Vec<String>,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
    pub enabled: bool,
    /// The file it was read from (empty for parsed text).
    pub file: PathBuf,
}

impl SourceEntry {
    /// An enabled binary-package source.
    pub fn is_usable(&self) -> bool {
        self.enabled && self.types.iter().any(|t| t == "deb")
    }

    pub fn serves(&self, suite: &str) -> bool {
        self.suites.iter().any(|s| s == suite)
    }
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
            file: PathBuf::new(),
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

/// Every entry under `<root>/etc/apt`: `sources.list`, then the files of
/// `sources.list.d` in name order, as apt reads them. Files apt ignores
/// (other endings, such as `*.disabled`) are ignored here too.
pub fn read_sources(root: &Path) -> Vec<SourceEntry> {
    let etc = root.join("etc/apt");
    let mut files = vec![etc.join("sources.list")];
    if let Ok(rd) = fs::read_dir(etc.join("sources.list.d")) {
        let mut parts: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        parts.sort();
        files.extend(parts);
    }
    let mut out = Vec::new();
    for path in files {
        let parse = match path.extension().and_then(|e| e.to_str()) {
            Some("list") => parse_one_line,
            Some("sources") => parse_deb822,
            _ if path.file_name().is_some_and(|n| n == "sources.list") => parse_one_line,
            _ => continue,
        };
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        out.extend(parse(&text).into_iter().map(|e| SourceEntry { file: path.clone(), ..e }));
    }
    out
}

/// The machine's own Debian archive among `entries`: the entry serving the
/// release suite (`bookworm`, not `bookworm-security`) with `main`; failing
/// that, any usable entry whose URI ends in `/debian`.
pub fn pick_archive<'a>(entries: &'a [SourceEntry], codename: Option<&str>) -> Option<(&'a SourceEntry, String)> {
    let with_main = |e: &&SourceEntry| e.is_usable() && e.components.iter().any(|c| c == "main");
    let debian_uri = |u: &&String| u.trim_end_matches('/').ends_with("/debian");
    let entry = entries
        .iter()
        .filter(with_main)
        .find(|e| codename.is_some_and(|c| e.serves(c)))
        .or_else(|| entries.iter().filter(with_main).find(|e| e.uris.iter().any(|u| debian_uri(&u))))?;
    let uri = entry.uris.iter().find(debian_uri).or(entry.uris.first())?;
    Some((entry, uri.trim_end_matches('/').to_string()))
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
        let (entry, uri) = pick_archive(&e, Some("bookworm")).unwrap();
        assert_eq!(uri, "http://mirror.example/debian");
        assert_eq!(entry.signed_by.as_deref(), Some("/usr/share/keyrings/debian-archive-keyring.gpg"));
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
        let (_, uri) = pick_archive(&e, Some("bookworm")).unwrap();
        assert_eq!(uri, "http://mirror.example/debian");
        // Not a Debian host: fall back to a URI ending in /debian.
        let (_, uri) = pick_archive(&e, None).unwrap();
        assert_eq!(uri, "http://mirror.example/debian");
        assert!(pick_archive(&e[..1], Some("bookworm")).is_none());
    }
}
