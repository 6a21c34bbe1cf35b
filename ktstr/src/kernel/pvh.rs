//! A faster boot image: the uncompressed vmlinux inside a bzImage, booted
//! through its PVH entry point.
//!
//! Under TCG the bzImage's own decompressor runs emulated and costs seconds
//! per boot; QEMU can instead load an ELF vmlinux that carries a PVH entry
//! note (`CONFIG_PVH=y`) directly. We decompress once per kernel, on the
//! host, and cache the result. Anything unexpected (other compression, no
//! PVH note) falls back to the bzImage, which always works.

use std::io::Read;
use std::path::{Path, PathBuf};

use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the PVH entry point note.
const PHYS32_ENTRY: u32 = 18;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The image QEMU should boot for `bzimage`: a cached PVH vmlinux when one
/// can be made, else the bzImage itself.
pub fn boot_image(bzimage: &Path) -> PathBuf {
    match pvh_image(bzimage) {
        Ok(p) => p,
        Err(why) => {
            tracing::debug!("booting {} as bzImage: {why}", bzimage.display());
            bzimage.to_path_buf()
        }
    }
}

/// Extracts (or finds cached) the PVH vmlinux of `bzimage`.
pub fn pvh_image(bzimage: &Path) -> Result<PathBuf, String> {
    let data = std::fs::read(bzimage).map_err(|e| format!("reading {}: {e}", bzimage.display()))?;
    let dir = crate::cache::cache_subdir("pvh");
    let path = dir.join(format!("{:032x}.vmlinux", xxhash_rust::xxh3::xxh3_128(&data)));
    if path.exists() {
        return Ok(path);
    }
    let vmlinux = extract(&data)?;
    if !has_pvh_entry(&vmlinux) {
        return Err("vmlinux has no PVH entry note (kernel built without CONFIG_PVH)".into());
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, &vmlinux).and_then(|_| std::fs::rename(&tmp, &path)).map_err(|e| e.to_string())?;
    Ok(path)
}

/// The decompressed payload of a bzImage (boot protocol 2.08+, zstd).
fn extract(bz: &[u8]) -> Result<Vec<u8>, String> {
    if bz.get(0x202..0x206) != Some(b"HdrS") {
        return Err("not a bzImage (no HdrS magic)".into());
    }
    let u32_at = |off: usize| bz.get(off..off + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let version = bz.get(0x206..0x208).map(|b| u16::from_le_bytes([b[0], b[1]])).unwrap_or(0);
    if version < 0x208 {
        return Err(format!("boot protocol {version:#x} has no payload fields"));
    }
    let setup_sects = match bz[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let (Some(off), Some(len)) = (u32_at(0x248), u32_at(0x24c)) else {
        return Err("truncated setup header".into());
    };
    let start = (setup_sects + 1) * 512 + off as usize;
    let payload = bz.get(start..start + len as usize).ok_or("payload outside the file")?;
    if payload.get(..4) != Some(&ZSTD_MAGIC) {
        return Err("payload is not zstd-compressed".into());
    }
    let mut out = Vec::new();
    ruzstd::decoding::StreamingDecoder::new(payload)
        .map_err(|e| format!("zstd: {e}"))?
        .read_to_end(&mut out)
        .map_err(|e| format!("zstd: {e}"))?;
    Ok(out)
}

/// Whether an ELF vmlinux carries `XEN_ELFNOTE_PHYS32_ENTRY`.
fn has_pvh_entry(elf: &[u8]) -> bool {
    let Ok(file) = ElfFile64::<object::Endianness>::parse(elf) else { return false };
    let endian = file.endian();
    file.elf_header().program_headers(endian, elf).unwrap_or_default().iter().any(|ph| {
        let Ok(Some(mut notes)) = ph.notes(endian, elf) else { return false };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"Xen" && note.n_type(endian) == PHYS32_ENTRY {
                return true;
            }
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_it_cannot_boot() {
        assert!(extract(b"not a kernel").unwrap_err().contains("HdrS"));
        let head =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/7.3.4+deb13-cloud-amd64.bzImage-head"))
                .unwrap();
        // The real header points past the captured head: refused, not a panic.
        assert_eq!(extract(&head).unwrap_err(), "payload outside the file");
        assert!(!has_pvh_entry(&head));
    }
}
