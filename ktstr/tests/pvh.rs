//! The default kernel boots as a PVH vmlinux extracted from its bzImage
//! (the fast path under TCG). Needs the default kernel: `cargo ktstr
//! kernel fetch` (./run test fetches it first).

#[test]
fn default_kernel_has_a_pvh_boot_image() {
    let k = ktstr::kernel::resolve(None).expect("no kernel cached: run `cargo ktstr kernel fetch`");
    let image = ktstr::kernel::pvh::pvh_image(&k.vmlinuz).expect("extracting the PVH vmlinux");
    let bytes = std::fs::read(&image).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is not an ELF", image.display());
    // The uncompressed kernel is several times the bzImage.
    let bz = std::fs::metadata(&k.vmlinuz).unwrap().len();
    assert!(bytes.len() as u64 > 2 * bz, "vmlinux {} bytes vs bzImage {bz}", bytes.len());
    // Cached: the second call returns the same file.
    assert_eq!(ktstr::kernel::pvh::pvh_image(&k.vmlinuz).unwrap(), image);
}
