//! Guest RAM the host can read while the guest runs: QEMU backs each NUMA
//! node's RAM with a file in /dev/shm (`memory-backend-file,share=on`),
//! and the host maps the same files read-only. Reads go by guest-physical
//! address; what the bytes mean is the reader's business.
//!
//! The guest is untrusted and its memory changes under the reader: every
//! read is bounds-checked, returns `None` outside RAM, and copies with
//! volatile loads (no reference into the mapping ever exists).

use std::path::{Path, PathBuf};

/// Where RAM splits on a `-M pc` machine: QEMU puts the first
/// `LOW_RAM_MAX` bytes below 4 GiB and the rest from 4 GiB up, once RAM
/// is at least that big. Passed explicitly (`max-ram-below-4g`) so the
/// split does not depend on the machine type's defaults.
pub(crate) const LOW_RAM_MAX: u64 = 0xc000_0000;
const FOUR_GIB: u64 = 1 << 32;
/// Backing files: `ktstr-ram-<host pid>-<unique>-node<N>`.
const PREFIX: &str = "ktstr-ram-";
const SHM: &str = "/dev/shm";

/// The files backing one VM's RAM, one per NUMA node, in node order.
/// Removed when dropped.
#[derive(Debug)]
pub(crate) struct RamFiles {
    pub paths: Vec<PathBuf>,
    pub sizes: Vec<u64>,
    /// Kept when dropped (a snapshot's own RAM).
    pub keep: bool,
}

impl RamFiles {
    /// Creates (sparse) backing files of `node_mb` MiB each. Fails, with a
    /// reason for the monitor's block, when /dev/shm cannot hold them.
    pub fn create(node_mb: &[u32]) -> Result<RamFiles, String> {
        let _ = remove_stale();
        let sizes: Vec<u64> = node_mb.iter().map(|mb| u64::from(*mb) << 20).collect();
        let total: u64 = sizes.iter().sum();
        let free = nix::sys::statvfs::statvfs(SHM)
            .map(|s| s.blocks_available() * s.fragment_size())
            .map_err(|e| format!("{SHM}: {e}"))?;
        // A guest touching all its RAM must not hit a full tmpfs (QEMU
        // would die of SIGBUS): only back RAM with a file where it fits.
        if free < total {
            return Err(format!("{SHM} has {} MiB free, the guest's RAM needs {} MiB", free >> 20, total >> 20));
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let stem = format!("{PREFIX}{}-{nanos:x}", std::process::id());
        let mut files = RamFiles { paths: Vec::new(), sizes: Vec::new(), keep: false };
        for (node, size) in sizes.into_iter().enumerate() {
            let path = Path::new(SHM).join(format!("{stem}-node{node}"));
            std::fs::File::create(&path)
                .and_then(|f| f.set_len(size))
                .map_err(|e| format!("creating {}: {e}", path.display()))?;
            files.paths.push(path);
            files.sizes.push(size);
        }
        Ok(files)
    }

    /// Sparse backing files of `node_mb` MiB at `paths`, kept when dropped
    /// (a snapshot's RAM, in its directory).
    pub fn at(paths: &[PathBuf], node_mb: &[u32]) -> Result<RamFiles, String> {
        let mut files = RamFiles { paths: Vec::new(), sizes: Vec::new(), keep: true };
        for (path, mb) in paths.iter().zip(node_mb) {
            let size = u64::from(*mb) << 20;
            std::fs::File::create(path)
                .and_then(|f| f.set_len(size))
                .map_err(|e| format!("creating {}: {e}", path.display()))?;
            files.paths.push(path.clone());
            files.sizes.push(size);
        }
        Ok(files)
    }

    /// New backing files holding a copy of a snapshot's RAM (one file per
    /// node), given as layers: each later layer's data over the earlier's.
    /// Copied sparsely: only the pages the guest ever touched are read and
    /// written, the holes stay holes.
    pub fn copy_of(layers: &[Vec<PathBuf>]) -> Result<RamFiles, String> {
        let sources = layers.first().ok_or("no RAM to copy")?;
        let sizes: Result<Vec<u64>, String> = sources
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).map_err(|e| format!("{}: {e}", p.display())))
            .collect();
        let mb: Vec<u32> = sizes?.iter().map(|s| (s >> 20) as u32).collect();
        let files = RamFiles::create(&mb)?;
        for layer in layers {
            for (src, dst) in layer.iter().zip(&files.paths) {
                sparse_copy(src, dst, None)
                    .map_err(|e| format!("copying {} to {}: {e}", src.display(), dst.display()))?;
            }
        }
        Ok(files)
    }

    /// Maps every file read-only.
    pub fn map(&self) -> Result<GuestMemory, String> {
        let mut regions = Vec::new();
        for (path, &size) in self.paths.iter().zip(&self.sizes) {
            regions.push(Mapping::new(path, size)?);
        }
        Ok(GuestMemory { regions })
    }
}

impl Drop for RamFiles {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The data regions of `f` (SEEK_DATA / SEEK_HOLE) as `(start, end)`.
fn data_regions(f: &std::fs::File) -> std::io::Result<Vec<(u64, u64)>> {
    use std::os::fd::AsRawFd;
    let len = f.metadata()?.len() as i64;
    let (mut regions, mut at) = (Vec::new(), 0i64);
    while at < len {
        // SAFETY: lseek on a descriptor we own.
        let data = unsafe { libc::lseek(f.as_raw_fd(), at, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: only a hole is left
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(f.as_raw_fd(), data, libc::SEEK_HOLE) }.min(len);
        regions.push((data as u64, hole as u64));
        at = hole;
    }
    Ok(regions)
}

const PAGE: usize = 4096;
const CHUNK: usize = 1 << 20;

/// Copies the data regions of `src` into `dst` (already of the same
/// length), skipping holes: in the kernel (`copy_file_range`) where the
/// two file systems allow it, else through a buffer. With `unchanged_from`
/// (making a snapshot on top of another) only the pages that differ from
/// that file's are copied: the copy is a layer over it.
pub(crate) fn sparse_copy(src: &Path, dst: &Path, unchanged_from: Option<&Path>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let (from, to) = (std::fs::File::open(src)?, std::fs::OpenOptions::new().write(true).open(dst)?);
    let under = unchanged_from.map(std::fs::File::open).transpose()?;
    let (mut buf, mut old) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    // Tried until the file systems refuse it (EXDEV from ext4 to tmpfs):
    // then every region goes through the buffer, without asking again.
    let mut in_kernel = under.is_none();
    for (start, end) in data_regions(&from)? {
        let mut pos = start;
        while pos < end && in_kernel {
            let (mut off_in, mut off_out) = (pos as i64, pos as i64);
            let want = (end - pos) as usize;
            // SAFETY: both descriptors are ours; the offsets are locals.
            let n =
                unsafe { libc::copy_file_range(from.as_raw_fd(), &mut off_in, to.as_raw_fd(), &mut off_out, want, 0) };
            if n <= 0 {
                in_kernel = false; // EXDEV, ENOSYS, ...: the buffer does the rest
                break;
            }
            pos += n as u64;
        }
        while pos < end {
            let n = ((end - pos) as usize).min(CHUNK);
            from.read_exact_at(&mut buf[..n], pos)?;
            if let Some(u) = &under {
                // Past its end (or in its holes) the layer below reads as zeros.
                old[..n].fill(0);
                let _ = u.read_at(&mut old[..n], pos)?;
            }
            for (i, page) in buf[..n].chunks(PAGE).enumerate() {
                let same = under.is_some() && page == &old[i * PAGE..i * PAGE + page.len()];
                if !same {
                    to.write_all_at(page, pos + (i * PAGE) as u64)?;
                }
            }
            pos += n as u64;
        }
    }
    Ok(())
}

/// Punches a hole for every page of zeros in `path` (a snapshot's RAM,
/// saved in place): less to copy at every restore.
pub(crate) fn punch_zero_pages(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let mut buf = vec![0u8; CHUNK];
    for (start, end) in data_regions(&f)? {
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(CHUNK);
            f.read_exact_at(&mut buf[..n], pos)?;
            for (i, page) in buf[..n].chunks(PAGE).enumerate() {
                if page.iter().all(|b| *b == 0) {
                    let at = (pos + (i * PAGE) as u64) as i64;
                    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                    // SAFETY: fallocate on a descriptor we own.
                    if unsafe { libc::fallocate(f.as_raw_fd(), mode, at, page.len() as i64) } != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            pos += n as u64;
        }
    }
    Ok(())
}

/// Backing files left by host processes that died without cleaning up
/// (killed test runs): removed, so /dev/shm does not fill up over time.
pub(crate) fn remove_stale() -> Vec<PathBuf> {
    crate::cache::remove_dead_owned(Path::new(SHM), |name| name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok())
}

/// One read-only shared mapping of a backing file.
#[derive(Debug)]
struct Mapping {
    ptr: std::ptr::NonNull<std::ffi::c_void>,
    len: usize,
}

// SAFETY: the mapping is read-only and only read through volatile copies.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(path: &Path, size: u64) -> Result<Mapping, String> {
        use nix::sys::mman::{mmap, MapFlags, ProtFlags};
        let file = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        let len = std::num::NonZeroUsize::new(size as usize).ok_or("empty RAM backing file")?;
        // SAFETY: a fresh read-only shared mapping of a file we created;
        // nothing in this process aliases it.
        let ptr = unsafe { mmap(None, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED, &file, 0) }
            .map_err(|e| format!("mapping {}: {e}", path.display()))?;
        Ok(Mapping { ptr, len: len.get() })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr, self.len) };
    }
}

/// The guest's RAM, mapped read-only, addressed guest-physically.
#[derive(Debug)]
pub struct GuestMemory {
    regions: Vec<Mapping>,
}

impl GuestMemory {
    /// Total RAM in bytes.
    pub(crate) fn ram_size(&self) -> u64 {
        self.regions.iter().map(|m| m.len as u64).sum()
    }

    /// Copies `buf.len()` bytes at guest-physical `gpa`; `None` if any of
    /// them is outside RAM.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
        let mut done = 0;
        while done < buf.len() {
            let (region, off) = self.locate(gpa.checked_add(done as u64)?)?;
            let m = &self.regions[region];
            let n = (buf.len() - done).min(m.len - off);
            for (i, b) in buf[done..done + n].iter_mut().enumerate() {
                // SAFETY: off + i < m.len: inside the live mapping.
                *b = unsafe { std::ptr::read_volatile((m.ptr.as_ptr() as *const u8).add(off + i)) };
            }
            done += n;
        }
        Some(())
    }

    pub(crate) fn read_u64(&self, gpa: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b)?;
        Some(u64::from_le_bytes(b))
    }

    /// Which mapping holds `gpa`, and where in it. RAM is one run of
    /// bytes (the nodes' files end to end, in node order) laid into the
    /// guest's address space below 4 GiB up to the split, the rest above.
    fn locate(&self, gpa: u64) -> Option<(usize, usize)> {
        let ram = self.ram_size();
        let low = split_below_4g(ram);
        let offset = if gpa < low {
            gpa
        } else if gpa >= FOUR_GIB && gpa - FOUR_GIB < ram - low {
            low + (gpa - FOUR_GIB)
        } else {
            return None;
        };
        let mut base = 0u64;
        for (i, m) in self.regions.iter().enumerate() {
            if offset < base + m.len as u64 {
                return Some((i, (offset - base) as usize));
            }
            base += m.len as u64;
        }
        None
    }
}

/// RAM below 4 GiB on `-M pc,max-ram-below-4g=LOW_RAM_MAX` (QEMU's
/// `pc_init1`: the split happens only when RAM reaches it).
pub(crate) fn split_below_4g(ram: u64) -> u64 {
    if ram >= LOW_RAM_MAX {
        LOW_RAM_MAX
    } else {
        ram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real files, real mappings: a byte written at a file offset reads
    /// back at the guest-physical address QEMU gives it.
    #[test]
    fn reads_follow_the_pc_ram_layout_across_nodes() {
        // 3 GiB + 1 GiB of sparse files: nothing is really allocated.
        let files = RamFiles::create(&[3072, 1024]).unwrap();
        let poke = |file: usize, off: u64, val: u64| {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&files.paths[file]).unwrap();
            f.write_all_at(&val.to_le_bytes(), off).unwrap();
        };
        poke(0, 0x1000, 0x1111);
        poke(0, LOW_RAM_MAX - 8, 0x2222);
        poke(1, 0, 0x3333); // RAM offset 3 GiB: the first byte above 4 GiB
        poke(1, (1 << 30) - 8, 0x4444);
        let mem = files.map().unwrap();
        assert_eq!(mem.read_u64(0x1000), Some(0x1111));
        assert_eq!(mem.read_u64(LOW_RAM_MAX - 8), Some(0x2222));
        assert_eq!(mem.read_u64(FOUR_GIB), Some(0x3333));
        assert_eq!(mem.read_u64(FOUR_GIB + (1 << 30) - 8), Some(0x4444));
        // The PCI hole and beyond the end are not RAM; neither is a read
        // running off the end.
        assert_eq!(mem.read_u64(LOW_RAM_MAX), None);
        assert_eq!(mem.read_u64(FOUR_GIB + (1 << 30)), None);
        assert_eq!(mem.read_u64(FOUR_GIB + (1 << 30) - 4), None);
        assert_eq!(mem.read_u64(u64::MAX - 3), None);
        let paths = files.paths.clone();
        drop(mem);
        drop(files);
        assert!(paths.iter().all(|p| !p.exists()), "backing files removed");
    }

    #[test]
    fn small_ram_is_all_below_4g() {
        assert_eq!(split_below_4g(2048 << 20), 2048 << 20);
        assert_eq!(split_below_4g(4096 << 20), LOW_RAM_MAX);
    }

    /// A snapshot's RAM is copied sparsely: the data where it was, the
    /// holes still holes (the copy takes no more room than the original).
    #[test]
    fn copies_keep_data_and_holes() {
        use std::os::unix::fs::FileExt;
        let dir = std::env::temp_dir().join(format!("ktstr-sparse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("ram-node0");
        let f = std::fs::File::create(&src).unwrap();
        f.set_len(8 << 20).unwrap();
        f.write_all_at(b"start", 0).unwrap();
        f.write_all_at(&[7u8; 70_000], 5 << 20).unwrap();
        drop(f);
        let copy = RamFiles::copy_of(&[vec![src.clone()]]).unwrap();
        let (a, b) = (std::fs::read(&src).unwrap(), std::fs::read(&copy.paths[0]).unwrap());
        assert!(a == b, "the copy differs");
        use std::os::unix::fs::MetadataExt;
        let blocks = std::fs::metadata(&copy.paths[0]).unwrap().blocks();
        assert!(blocks * 512 < 1 << 20, "the copy filled its holes: {} KiB", blocks / 2);
        let path = copy.paths[0].clone();
        drop(copy);
        assert!(!path.exists(), "a copy is removed when dropped");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
