//! Source lines of kernel functions, from a vmlinux with DWARF (Debian's
//! `-dbg` package, fetched by `cargo ktstr kernel fetch --debug-info`, or
//! the `vmlinux` of a kernel build tree).
//!
//! A function's name is looked up in the ELF symbol table, and the line
//! table (addr2line over gimli) maps its entry address to `file:line`: the
//! line a reader lands on is where the function begins, which is what a
//! trail of probed calls needs. The guest runs `nokaslr`, but no runtime
//! address is needed at all: names are what the probes report.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use object::{Object, ObjectSymbol, SymbolKind};

/// The file a cached kernel's debug vmlinux is kept in, beside `vmlinuz`.
pub const DEBUG_VMLINUX: &str = "vmlinux.debug";

/// Top-level directories of a kernel source tree: a DWARF path is shown
/// from the first of these on (`kernel/sched/ext.c`), not from the build
/// machine's directory.
const TREE_DIRS: &[&str] = &[
    "arch", "block", "certs", "crypto", "drivers", "fs", "include", "init", "io_uring", "ipc", "kernel", "lib", "mm",
    "net", "rust", "security", "sound", "tools", "virt",
];

/// An opened debug binary: its function symbols and its line tables.
pub(crate) struct SourceLines {
    path: PathBuf,
    loader: addr2line::Loader,
    functions: HashMap<String, u64>,
}

impl std::fmt::Debug for SourceLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceLines").field("path", &self.path).field("functions", &self.functions.len()).finish()
    }
}

impl SourceLines {
    /// Opens `path` (mapped, not read: a debug vmlinux is hundreds of MB).
    /// Fails when the file has no symbols or no line tables.
    pub fn open(path: &Path) -> Result<SourceLines> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: the cache never rewrites a file in place (entries are
        // renamed into place), so the mapping does not change under us.
        let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))?;
        let elf = object::File::parse(&*map).with_context(|| format!("{}: not an ELF file", path.display()))?;
        if elf.section_by_name(".debug_line").is_none() {
            anyhow::bail!("{}: no DWARF line tables (.debug_line); it is not a debug build", path.display());
        }
        let mut functions = HashMap::new();
        for sym in elf.symbols().filter(|s| s.kind() == SymbolKind::Text && s.address() != 0) {
            if let Ok(name) = sym.name() {
                // The first of same-named statics wins, as with kallsyms.
                functions.entry(name.to_string()).or_insert(sym.address());
            }
        }
        if functions.is_empty() {
            anyhow::bail!("{}: no function symbols (stripped?)", path.display());
        }
        let loader =
            addr2line::Loader::new(path).map_err(|e| anyhow::anyhow!("{}: reading DWARF: {e}", path.display()))?;
        Ok(SourceLines { path: path.to_path_buf(), loader, functions })
    }

    /// `file:line` where `function` begins, or `None` when the binary has
    /// no such function or no line for it.
    pub(crate) fn function_source(&self, function: &str) -> Option<String> {
        let addr = *self.functions.get(function)?;
        let loc = self.loader.find_location(addr).ok()??;
        Some(format!("{}:{}", short_path(loc.file?), loc.line?))
    }
}

/// A DWARF file path from the kernel tree's top on, when one of its
/// top-level directories appears in it; otherwise the path as given.
pub(crate) fn short_path(path: &str) -> &str {
    let mut offset = 0;
    for part in path.split('/') {
        if offset > 0 && TREE_DIRS.contains(&part) {
            return &path[offset..];
        }
        offset += part.len() + 1;
    }
    path
}

/// The debug vmlinux for a kernel image: `vmlinux.debug` beside a cached
/// kernel, or `vmlinux` at the top of a build tree whose
/// `arch/x86/boot/bzImage` was booted.
pub(crate) fn debug_vmlinux_for(vmlinuz: &Path) -> Option<PathBuf> {
    let dir = vmlinuz.parent()?;
    let cached = dir.join(DEBUG_VMLINUX);
    if cached.is_file() {
        return Some(cached);
    }
    // `<tree>/arch/x86/boot/bzImage` -> `<tree>/vmlinux`.
    let x86 = dir.parent().filter(|_| dir.ends_with("boot"))?;
    let arch = x86.parent().filter(|_| x86.ends_with("x86"))?;
    let tree = arch.parent().filter(|_| arch.ends_with("arch"))?;
    Some(tree.join("vmlinux")).filter(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function with a stable, unmangled symbol in this test binary,
    /// which is built with line tables (`debug = "line-tables-only"`).
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn ktstr_lines_test_target() -> u32 {
        std::hint::black_box(7)
    }
    const TARGET_LINE: u32 = line!() - 4;

    #[test]
    fn finds_a_functions_file_and_line_in_a_real_binary() {
        assert_eq!(ktstr_lines_test_target(), 7);
        let exe = std::env::current_exe().unwrap();
        let lines = SourceLines::open(&exe).unwrap();
        let src = lines.function_source("ktstr_lines_test_target").expect("the test function has a line");
        let (file, line) = src.rsplit_once(':').unwrap();
        assert!(file.ends_with("kernel/lines.rs"), "{src}");
        let line: u32 = line.parse().unwrap();
        // The entry address maps to the signature or the first statement.
        assert!((TARGET_LINE..=TARGET_LINE + 2).contains(&line), "{src}, fn at line {TARGET_LINE}");
        assert_eq!(lines.function_source("no_such_function_anywhere"), None);
    }

    #[test]
    fn a_binary_without_line_tables_is_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("ktstr-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("vmlinux");
        std::fs::write(&junk, b"not an elf").unwrap();
        let err = SourceLines::open(&junk).unwrap_err().to_string();
        assert!(err.contains("not an ELF file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn paths_are_shown_from_the_kernel_tree_top() {
        assert_eq!(short_path("/build/reproducible-path/linux-7.3.4/kernel/sched/ext.c"), "kernel/sched/ext.c");
        assert_eq!(short_path("/usr/src/linux/include/linux/sched.h"), "include/linux/sched.h");
        assert_eq!(short_path("kernel/sched/ext.c"), "kernel/sched/ext.c");
        assert_eq!(short_path("/elsewhere/file.c"), "/elsewhere/file.c");
    }

    #[test]
    fn the_debug_vmlinux_is_found_beside_a_cached_kernel_or_at_a_tree_top() {
        let dir = std::env::temp_dir().join(format!("ktstr-lines-find-{}", std::process::id()));
        let cached = dir.join("cache/7.3.4");
        let boot = dir.join("tree/arch/x86/boot");
        std::fs::create_dir_all(&cached).unwrap();
        std::fs::create_dir_all(&boot).unwrap();
        assert_eq!(debug_vmlinux_for(&cached.join("vmlinuz")), None);
        std::fs::write(cached.join(DEBUG_VMLINUX), b"").unwrap();
        assert_eq!(debug_vmlinux_for(&cached.join("vmlinuz")), Some(cached.join(DEBUG_VMLINUX)));
        assert_eq!(debug_vmlinux_for(&boot.join("bzImage")), None);
        std::fs::write(dir.join("tree/vmlinux"), b"").unwrap();
        assert_eq!(debug_vmlinux_for(&boot.join("bzImage")), Some(dir.join("tree/vmlinux")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
