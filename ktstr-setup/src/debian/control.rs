//! Debian's control-file format (RFC 822-like stanzas): what `apt-cache
//! show` prints and what `/var/lib/dpkg/status` holds.

/// One stanza: `Key: value` fields, continuation lines joined with `\n`.
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

#[cfg(test)]
mod tests {
    use super::*;

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
