//! Kernel virtual addresses, read through the guest's RAM.
//!
//! With `nokaslr` on x86-64 (4-level paging), the kernel image is mapped
//! at `__START_KERNEL_map` (virtual - 0xffffffff80000000 is physical) and
//! all RAM at the direct map's base (`page_offset_base`). Anything else
//! (per-CPU chunks past the first are vmalloc'd) is found by walking the
//! kernel's page tables from `init_top_pgt`, as the MMU would.
//!
//! Every value read may be garbage: a failed translation or read is
//! `None`, never a panic, and no loop depends on guest data.

use crate::vm::GuestMemory;

use super::layout::Field;

/// `__START_KERNEL_map`, and the 1 GiB the image may span from it.
const KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
const KERNEL_MAP_SIZE: u64 = 1 << 30;
/// The direct map's base with 4-level paging and no KASLR: where
/// `page_offset_base` must point for these translations to hold.
pub(crate) const DIRECT_MAP_4LEVEL: u64 = 0xffff_8880_0000_0000;
/// The largest direct map 4-level paging allows (64 TiB).
const DIRECT_MAP_SIZE: u64 = 1 << 46;
/// Page-table entry bits.
const PRESENT: u64 = 1;
const HUGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Guest-physical memory as the walk reads it: the guest's RAM
/// ([`GuestMemory`]), or RAM from address 0 held in a buffer (the unit
/// tests and the fuzz targets, which have no VM).
pub(crate) trait PhysMem {
    /// Copies `buf.len()` bytes at guest-physical `gpa`; `None` if any of
    /// them is outside RAM.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()>;

    fn read_u64(&self, gpa: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b)?;
        Some(u64::from_le_bytes(b))
    }
}

impl PhysMem for GuestMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
        GuestMemory::read(self, gpa, buf)
    }

    fn read_u64(&self, gpa: u64) -> Option<u64> {
        GuestMemory::read_u64(self, gpa)
    }
}

impl PhysMem for [u8] {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
        let start = usize::try_from(gpa).ok()?;
        buf.copy_from_slice(self.get(start..start.checked_add(buf.len())?)?);
        Some(())
    }
}

pub(crate) struct Kmem<'m, M: PhysMem + ?Sized = GuestMemory> {
    pub mem: &'m M,
    /// Guest-physical address of `init_top_pgt`, when known.
    pgd: Option<u64>,
}

impl<'m, M: PhysMem + ?Sized> Kmem<'m, M> {
    pub fn new(mem: &'m M, init_top_pgt: Option<u64>) -> Kmem<'m, M> {
        let mut k = Kmem { mem, pgd: None };
        k.pgd = init_top_pgt.and_then(|v| k.image_or_direct(v));
        k
    }

    fn image_or_direct(&self, virt: u64) -> Option<u64> {
        if (KERNEL_MAP..KERNEL_MAP + KERNEL_MAP_SIZE).contains(&virt) {
            return Some(virt - KERNEL_MAP);
        }
        if (DIRECT_MAP_4LEVEL..DIRECT_MAP_4LEVEL + DIRECT_MAP_SIZE).contains(&virt) {
            return Some(virt - DIRECT_MAP_4LEVEL);
        }
        None
    }

    /// Guest-physical address of kernel virtual `virt`.
    pub(crate) fn phys(&self, virt: u64) -> Option<u64> {
        self.image_or_direct(virt).or_else(|| self.walk(virt))
    }

    /// The 4-level page walk (4 KiB pages, 2 MiB and 1 GiB huge pages).
    fn walk(&self, virt: u64) -> Option<u64> {
        let mut table = self.pgd?;
        for (level, shift) in [(4u8, 39u32), (3, 30), (2, 21), (1, 12)] {
            let entry = self.mem.read_u64(table + ((virt >> shift) & 0x1ff) * 8)?;
            if entry & PRESENT == 0 {
                return None;
            }
            let addr = entry & ADDR_MASK;
            let huge = (level == 3 || level == 2) && entry & HUGE != 0;
            if huge || level == 1 {
                let page = 1u64 << shift;
                return Some((addr & !(page - 1)) + (virt & (page - 1)));
            }
            table = addr;
        }
        None
    }

    /// Copies `buf.len()` bytes from kernel virtual `virt`, page by page
    /// (consecutive virtual pages need not be consecutive in RAM).
    pub fn read(&self, virt: u64, buf: &mut [u8]) -> Option<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = virt.checked_add(done as u64)?;
            let n = (buf.len() - done).min((4096 - (at & 0xfff)) as usize);
            self.mem.read(self.phys(at)?, &mut buf[done..done + n])?;
            done += n;
        }
        Some(())
    }

    pub fn u64(&self, virt: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(virt, &mut b)?;
        Some(u64::from_le_bytes(b))
    }

    /// The unsigned value of `f` in the struct at `base`.
    pub fn field(&self, base: u64, f: Field) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(base.checked_add(f.off)?, &mut b[..usize::from(f.size.min(8))])?;
        Some(u64::from_le_bytes(b))
    }
}

/// The unsigned value of `f` inside bytes already read (`None` if it
/// falls outside them).
pub(crate) fn field_in(bytes: &[u8], f: Field) -> Option<u64> {
    let start = usize::try_from(f.off).ok()?;
    let src = bytes.get(start..start.checked_add(usize::from(f.size.min(8)))?)?;
    let mut b = [0u8; 8];
    b[..src.len()].copy_from_slice(src);
    Some(u64::from_le_bytes(b))
}
