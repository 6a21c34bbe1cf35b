//! Kernel release strings (`7.3.4+deb13-cloud-amd64`, `6.13.0-rc2-00012-gabcdef`):
//! version-aware ordering and version-prefix matching.

use std::cmp::Ordering;

/// The sortable parts of a release string.
#[derive(Debug, PartialEq, Eq)]
struct ReleaseKey<'a> {
    /// Leading dotted numbers: `7.3.4` → `[7, 3, 4]`.
    nums: Vec<u64>,
    /// `Some(n)` for a `-rcN` pre-release, which sorts before the final one.
    rc: Option<u64>,
    /// Everything after the numbers, compared as text last.
    rest: &'a str,
}

fn key(release: &str) -> ReleaseKey<'_> {
    let bytes = release.as_bytes();
    let mut nums = Vec::new();
    let mut idx = 0;
    loop {
        let start = idx;
        while idx < bytes.len() && bytes[idx].is_ascii_digit() {
            idx += 1;
        }
        if idx == start {
            break;
        }
        nums.push(release[start..idx].parse().unwrap_or(u64::MAX));
        if bytes.get(idx) == Some(&b'.') && bytes.get(idx + 1).is_some_and(u8::is_ascii_digit) {
            idx += 1;
        } else {
            break;
        }
    }
    let rest = &release[idx..];
    let rc = rest.strip_prefix("-rc").and_then(|r| {
        let digits: String = r.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    ReleaseKey { nums, rc, rest }
}

/// Orders two release strings by version: `6.12.107 > 6.12.9`, `7.3 > 6.19`,
/// `6.13.0-rc2 < 6.13.0`. Missing trailing numbers count as zero.
pub(crate) fn compare_releases(a: &str, b: &str) -> Ordering {
    let (ka, kb) = (key(a), key(b));
    let len = ka.nums.len().max(kb.nums.len());
    for i in 0..len {
        let x = ka.nums.get(i).copied().unwrap_or(0);
        let y = kb.nums.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    let rc_order = match (ka.rc, kb.rc) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    };
    rc_order.then(ka.nums.len().cmp(&kb.nums.len())).then_with(|| ka.rest.cmp(kb.rest))
}

/// Sorts releases newest first.
pub(crate) fn sort_newest_first<T>(items: &mut [T], release: impl Fn(&T) -> &str) {
    items.sort_by(|a, b| compare_releases(release(b), release(a)));
}

/// Whether a user's version spec selects `release`: the spec is the release
/// itself or a prefix of it ending at a component boundary, so `7.3` selects
/// `7.3.4+deb13-cloud-amd64` but not `7.30.1`, and `7.3.4+deb13` selects
/// `7.3.4+deb13-cloud-amd64` but `7.3.4+deb1` does not.
pub(crate) fn spec_matches(spec: &str, release: &str) -> bool {
    match release.strip_prefix(spec) {
        None => false,
        Some(rest) => rest.chars().next().is_none_or(|c| !c.is_ascii_alphanumeric()),
    }
}

/// Whether `spec` looks like a version (as opposed to a path): it starts
/// with a digit and has no `/`.
pub(crate) fn looks_like_version(spec: &str) -> bool {
    spec.starts_with(|c: char| c.is_ascii_digit()) && !spec.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_not_lexical() {
        assert_eq!(compare_releases("6.12.107+deb13-cloud-amd64", "6.12.9+deb13-cloud-amd64"), Ordering::Greater);
        assert_eq!(compare_releases("7.3.4+deb13-cloud-amd64", "6.19.14+deb13-cloud-amd64"), Ordering::Greater);
        assert_eq!(compare_releases("7.10.1", "7.9.3"), Ordering::Greater);
        assert_eq!(compare_releases("7.3.4", "7.3.4"), Ordering::Equal);
    }

    #[test]
    fn rc_sorts_before_final() {
        assert_eq!(compare_releases("6.13.0-rc2", "6.13.0"), Ordering::Less);
        assert_eq!(compare_releases("6.13.0-rc2", "6.13.0-rc10"), Ordering::Less);
        assert_eq!(compare_releases("6.13.0-rc7", "6.12.9"), Ordering::Greater);
    }

    #[test]
    fn sorting_newest_first() {
        let mut v = vec!["6.12.9", "7.3.4+deb13-cloud-amd64", "6.12.107", "7.2.12", "7.3.10"];
        sort_newest_first(&mut v, |s| s);
        assert_eq!(v, ["7.3.10", "7.3.4+deb13-cloud-amd64", "7.2.12", "6.12.107", "6.12.9"]);
    }

    #[test]
    fn prefix_matching() {
        let r = "7.3.4+deb13-cloud-amd64";
        for spec in ["7", "7.3", "7.3.4", "7.3.4+deb13", r] {
            assert!(spec_matches(spec, r), "{spec}");
        }
        for spec in ["7.30", "7.3.40", "7.3.4+deb1", "6", "7.3.4+deb13-cloud-amd64-dbg"] {
            assert!(!spec_matches(spec, r), "{spec}");
        }
        assert!(!spec_matches("7.3", "7.30.1"));
    }

    #[test]
    fn version_or_path() {
        assert!(looks_like_version("7.3"));
        assert!(looks_like_version("6.12.107+deb13-cloud-amd64"));
        assert!(!looks_like_version("./7.3"));
        assert!(!looks_like_version("linux/arch/x86/boot/bzImage"));
        assert!(!looks_like_version("bzImage"));
    }
}
