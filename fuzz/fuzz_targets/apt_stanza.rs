//! Debian control stanzas, as `apt-cache show` prints them
//! (`ktstr::kernel::apt::parse_stanzas`, the parser behind `Apt::show`),
//! and what a kernel fetch reads from them: the fields, `Depends`, the
//! release a `linux-image-<flavour>` meta package points at and the
//! packages to download for it.
//!
//! Input: `flavour \n apt-cache output` (the first line is the flavour).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (flavour, text) = text.split_once('\n').unwrap_or(("cloud-amd64", &text));
    for s in ktstr::kernel::apt::parse_stanzas(text) {
        assert!(!s.0.is_empty(), "an empty stanza");
        for key in ["Package", "Version", "Depends", "Filename", "Size", "SHA256"] {
            let _ = s.get(key);
        }
        for d in s.depends() {
            assert!(!d.is_empty() && !d.contains(char::is_whitespace), "bad package name {d:?}");
        }
        if let Some((release, pkgs)) = ktstr::fuzz_api::apt_release(&s, flavour) {
            assert!(release.ends_with(&format!("-{flavour}")));
            assert!(!pkgs.is_empty());
        }
    }
});
