//! Reads the kernel version string from a bzImage's x86 boot setup header
//! (Documentation/arch/x86/boot.rst). Signed (PE/EFI-stub) images keep the
//! same header, so Debian's signed `vmlinuz` works too.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Offset of the 0xAA55 boot flag.
const BOOT_FLAG: usize = 0x1FE;
/// Offset of the "HdrS" magic.
const HEADER_MAGIC: usize = 0x202;
/// Offset of the boot protocol version.
const PROTOCOL: usize = 0x206;
/// Offset of `kernel_version`: a pointer, less 0x200, to a NUL-terminated
/// version string.
const KERNEL_VERSION: usize = 0x20E;
/// Longest version string we accept.
const MAX_VERSION_LEN: usize = 512;
/// Bytes to read to cover any `kernel_version` pointer and its string.
pub(crate) const HEAD_LEN: usize = 0x200 + 0xFFFF + 1 + MAX_VERSION_LEN;

/// The full version string (`7.3.4+deb13-cloud-amd64 (debian-kernel@...) #1
/// SMP PREEMPT_DYNAMIC Debian 7.3.4-1~bpo13+1 (2026-11-15)`) found in the
/// first bytes of a bzImage, or why there is none.
pub(crate) fn version_string(head: &[u8]) -> Result<&str, String> {
    let u16_at = |off: usize| head.get(off..off + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    if u16_at(BOOT_FLAG) != Some(0xAA55) || head.get(HEADER_MAGIC..HEADER_MAGIC + 4) != Some(b"HdrS") {
        return Err("no x86 boot setup header (not a bzImage)".into());
    }
    let protocol = u16_at(PROTOCOL).unwrap_or(0);
    if protocol < 0x0200 {
        return Err(format!("boot protocol {protocol:#x} is too old to carry a version string"));
    }
    let ptr = u16_at(KERNEL_VERSION).unwrap_or(0);
    if ptr == 0 {
        return Err("the setup header has no kernel_version string".into());
    }
    let start = usize::from(ptr) + 0x200;
    let tail = head.get(start..).ok_or("kernel_version points past the end of the image")?;
    let tail = &tail[..tail.len().min(MAX_VERSION_LEN)];
    let end = tail.iter().position(|&b| b == 0).ok_or("kernel_version string is not terminated")?;
    let text = std::str::from_utf8(&tail[..end]).map_err(|_| "kernel_version string is not text")?;
    if text.is_empty() || text.chars().any(|c| c.is_control()) {
        return Err("kernel_version string is empty or garbled".into());
    }
    Ok(text)
}

/// The release (`uname -r`) of a bzImage: the first word of its version string.
pub(crate) fn release_from_head(head: &[u8]) -> Result<String, String> {
    let text = version_string(head)?;
    Ok(text.split_whitespace().next().unwrap_or(text).to_string())
}

/// Reads the release of the bzImage at `path`.
pub(crate) fn read_release(path: &Path) -> Result<String, String> {
    let mut head = Vec::with_capacity(HEAD_LEN);
    File::open(path)
        .and_then(|f| f.take(HEAD_LEN as u64).read_to_end(&mut head))
        .map_err(|e| format!("cannot read: {e}"))?;
    release_from_head(&head)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal synthetic setup header with the version string at `at`.
    fn synthetic(at: usize, version: &str) -> Vec<u8> {
        let mut img = vec![0u8; at + version.len() + 1];
        img[BOOT_FLAG..BOOT_FLAG + 2].copy_from_slice(&0xAA55u16.to_le_bytes());
        img[HEADER_MAGIC..HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
        img[PROTOCOL..PROTOCOL + 2].copy_from_slice(&0x020Fu16.to_le_bytes());
        img[KERNEL_VERSION..KERNEL_VERSION + 2].copy_from_slice(&((at - 0x200) as u16).to_le_bytes());
        img[at..at + version.len()].copy_from_slice(version.as_bytes());
        img
    }

    #[test]
    fn synthetic_header() {
        let img = synthetic(0x3000, "6.13.0-rc2-00012-gabc (me@host) #3 SMP");
        assert_eq!(release_from_head(&img).unwrap(), "6.13.0-rc2-00012-gabc");
    }

    #[test]
    fn rejects_non_bzimage() {
        assert!(release_from_head(b"\x7fELF not a bzImage").is_err());
        let mut img = synthetic(0x3000, "7.0");
        img[KERNEL_VERSION] = 0;
        img[KERNEL_VERSION + 1] = 0;
        assert!(release_from_head(&img).is_err());
        let img = synthetic(0x3000, "7.0");
        assert!(release_from_head(&img[..0x3001]).is_err(), "unterminated");
    }

    /// The first 18 KiB of Debian's signed trixie-backports cloud kernel.
    #[test]
    fn real_debian_bzimage_head() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/7.3.4+deb13-cloud-amd64.bzImage-head");
        let release = read_release(Path::new(path)).unwrap();
        assert_eq!(release, "7.3.4+deb13-cloud-amd64");
        let head = std::fs::read(path).unwrap();
        assert!(version_string(&head).unwrap().contains("Debian 7.3.4-1~bpo13+1"));
    }
}
