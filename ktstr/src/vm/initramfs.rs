//! The guest's initramfs: the test binary as `/init`, its shared-library
//! closure, the scheduler binary and its closure, and
//! `/boot/config-<release>` (libbpf reads it for `__kconfig` externs; the
//! kernel has no /proc/config.gz); for `cargo ktstr shell`, also busybox
//! and its applet links. Built once per content and cached; the per-run
//! plan travels in a small second cpio segment appended to a copy.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Object, ObjectSection};

/// Bump when the image layout changes, to invalidate cached images.
const FORMAT: &str = "ktstr-initramfs-v1";
const KEEP_CACHED: usize = 12;

/// Where guest binaries live besides `/init`.
pub(crate) const SCHED_DIR: &str = crate::wire::paths::SCHED_DIR;

/// Content of one image, guest path → host source.
#[derive(Default)]
pub struct ImageSpec {
    files: BTreeMap<String, Source>,
}

enum Source {
    File(PathBuf),
    Bytes(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
}

/// File modes in the archive.
const MODE_EXEC: u32 = 0o100755;
const MODE_SYMLINK: u32 = 0o120777;

impl ImageSpec {
    /// Adds an ELF executable at `guest_path` along with every shared
    /// library it needs (DT_NEEDED, recursively) and its interpreter.
    pub fn add_executable(&mut self, host: &Path, guest_path: &str) -> anyhow::Result<()> {
        self.files.insert(guest_path.to_string(), Source::File(host.to_path_buf()));
        for (guest, host) in library_closure(host)? {
            self.files.insert(guest, Source::File(host));
        }
        Ok(())
    }

    pub(crate) fn add_bytes(&mut self, guest_path: &str, bytes: Vec<u8>) {
        self.files.insert(guest_path.to_string(), Source::Bytes(bytes));
    }

    /// A symbolic link at `guest_path` pointing to `target`.
    pub(crate) fn add_symlink(&mut self, guest_path: &str, target: &str) {
        self.files.insert(guest_path.to_string(), Source::Symlink(target.to_string()));
    }

    /// Busybox at [`super::busybox::GUEST_PATH`] with a link for each of
    /// its applets where its own `--list-full` puts them (`/bin/sh`,
    /// `/usr/bin/awk`, ...), so the guest's shell finds them on `PATH`.
    pub(crate) fn add_busybox(&mut self, host: &Path) -> anyhow::Result<()> {
        self.add_executable(host, super::busybox::GUEST_PATH)?;
        for applet in super::busybox::applets(host)? {
            if !self.files.contains_key(&applet) {
                self.add_symlink(&applet, super::busybox::GUEST_PATH);
            }
        }
        Ok(())
    }

    /// Returns the cached image for this content, building it if needed.
    pub fn build_cached(&self) -> anyhow::Result<PathBuf> {
        let dir = crate::cache::cache_subdir("initramfs");
        std::fs::create_dir_all(&dir)?;
        let mut contents = Vec::new();
        for (guest, src) in &self.files {
            let (bytes, mode) = match src {
                Source::File(p) => (std::fs::read(p).with_context(|| format!("reading {}", p.display()))?, MODE_EXEC),
                Source::Bytes(b) => (b.clone(), MODE_EXEC),
                // A link's data is its target (newc).
                Source::Symlink(t) => (t.as_bytes().to_vec(), MODE_SYMLINK),
            };
            contents.push((guest.as_str(), bytes, mode));
        }
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(FORMAT.as_bytes());
        for (guest, bytes, mode) in &contents {
            h.update(guest.as_bytes());
            h.update(&mode.to_le_bytes());
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        let path = dir.join(format!("{:032x}.cpio", h.digest128()));
        if path.exists() {
            tracing::debug!(path = %path.display(), "initramfs: cached image reused");
            // Touch so eviction keeps recently used images.
            let _ = std::fs::File::options()
                .append(true)
                .open(&path)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            return Ok(path);
        }
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        let written = (|| -> anyhow::Result<()> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            write_cpio(&mut out, contents.iter().map(|(g, b, m)| (*g, b.as_slice(), *m)))?;
            out.into_inner()?.sync_all()?;
            Ok(std::fs::rename(&tmp, &path)?)
        })();
        if let Err(e) = written {
            // A half-written image is never left for the next run to find.
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("writing the initramfs image {}", path.display())));
        }
        tracing::debug!(path = %path.display(), files = contents.len(), "initramfs: built and cached");
        evict_old(&dir);
        Ok(path)
    }
}

/// One file of a run's own cpio segment: guest path, content, mode.
pub(crate) type ExtraFile = (String, Vec<u8>, u32);

/// Writes `base` followed by a cpio segment with `extra` files to `dest`
/// (the kernel unpacks concatenated cpio archives in order).
pub(crate) fn with_extra_files(base: &Path, extra: &[ExtraFile], dest: &Path) -> anyhow::Result<()> {
    std::fs::copy(base, dest).with_context(|| format!("copying {} to {}", base.display(), dest.display()))?;
    let mut f = std::fs::File::options().append(true).open(dest)?;
    write_cpio(&mut f, extra.iter().map(|(g, b, m)| (g.as_str(), b.as_slice(), *m)))?;
    Ok(())
}

/// A plain file of the run's segment (the plan, say).
pub(crate) fn extra_file(guest_path: &str, bytes: Vec<u8>) -> ExtraFile {
    (guest_path.to_string(), bytes, MODE_EXEC)
}

/// Where include files land in the guest: `/include/<file or directory name>`.
pub const INCLUDE_DIR: &str = crate::wire::paths::INCLUDE_DIR;

/// Host files and directories (a test's `include_files`, `ktstr shell
/// --include`) as files of the run's segment under [`INCLUDE_DIR`]: each
/// keeps its name, a directory its tree (symbolic links followed), every
/// file its permission bits. Relative paths are taken from the current
/// directory (the package's, under cargo and nextest). Also returns each
/// path's place in the guest (`/include/<name>`), in the order given.
pub fn include_files(paths: &[std::path::PathBuf]) -> anyhow::Result<(Vec<ExtraFile>, Vec<String>)> {
    let mut out: Vec<ExtraFile> = Vec::new();
    let mut tops = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| {
            let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
            format!("include file {} cannot be read (relative paths start at {cwd}): fix the path", p.display())
        })?;
        let name = p
            .canonicalize()
            .ok()
            .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
            .with_context(|| format!("include file {} has no name to put under {INCLUDE_DIR}", p.display()))?;
        anyhow::ensure!(
            names.insert(name.clone()),
            "two include files are named `{name}`: both would be {INCLUDE_DIR}/{name} in the guest; rename one, \
             or include the directory above them"
        );
        let top = format!("{INCLUDE_DIR}/{name}");
        add_tree(p, &top, meta.is_dir(), &mut out)?;
        tops.push(top);
    }
    Ok((out, tops))
}

fn add_tree(host: &Path, guest: &str, is_dir: bool, out: &mut Vec<ExtraFile>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !is_dir {
        let bytes = std::fs::read(host).with_context(|| format!("reading include file {}", host.display()))?;
        let perm = std::fs::metadata(host)?.permissions().mode() & 0o777;
        out.push((guest.to_string(), bytes, 0o100000 | perm));
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(host)
        .with_context(|| format!("reading include directory {}", host.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let meta = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        add_tree(&path, &format!("{guest}/{}", e.file_name().to_string_lossy()), meta.is_dir(), out)?;
    }
    Ok(())
}

/// A newc cpio archive holding `files` (guest path, data, mode) plus the
/// parent directories they need.
fn write_cpio<'a, W: Write>(out: &mut W, files: impl Iterator<Item = (&'a str, &'a [u8], u32)>) -> anyhow::Result<()> {
    let files: Vec<_> = files.collect();
    let mut dirs = std::collections::BTreeSet::new();
    for (guest, _, _) in &files {
        let mut p = Path::new(guest.trim_start_matches('/'));
        while let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(parent.to_string_lossy().into_owned());
            p = parent;
        }
    }
    let mut ino = 1;
    let mut next_ino = || {
        ino += 1;
        ino
    };
    for d in &dirs {
        cpio::newc::Builder::new(d).ino(next_ino()).mode(0o040755).nlink(2).write(&mut *out, 0).finish()?;
    }
    for (guest, bytes, mode) in files {
        let name = guest.trim_start_matches('/');
        let mut w =
            cpio::newc::Builder::new(name).ino(next_ino()).mode(mode).nlink(1).write(&mut *out, bytes.len() as u32);
        w.write_all(bytes)?;
        w.finish()?;
    }
    cpio::newc::trailer(&mut *out)?;
    Ok(())
}

/// Directories searched for DT_NEEDED libraries, as the guest's loader
/// will search them (Debian multiarch first).
const LIB_DIRS: &[&str] =
    &["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"];

/// Guest path → host path of every library `exe` loads, and its
/// interpreter. `LD_LIBRARY_PATH` is searched first, as the host's loader
/// does (a runner of `cargo ktstr archive` brings libraries that way);
/// what is found there goes to the guest's first library directory.
pub fn library_closure(exe: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let extra: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).filter(|p| p.is_absolute()).collect())
        .unwrap_or_default();
    let mut found = BTreeMap::new();
    let mut queue = vec![exe.to_path_buf()];
    while let Some(elf) = queue.pop() {
        let data = std::fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?;
        let (interp, needed) = dynamic_deps(&data).with_context(|| format!("parsing ELF {}", elf.display()))?;
        if let Some(interp) = interp {
            found.entry(interp.clone()).or_insert_with(|| PathBuf::from(&interp));
        }
        for lib in needed {
            let from_extra = extra.iter().map(|d| d.join(&lib)).find(|p| p.exists());
            let from_dirs = || LIB_DIRS.iter().map(|d| Path::new(d).join(&lib)).find(|p| p.exists());
            let Some(on_host) = from_extra.clone().or_else(from_dirs) else {
                anyhow::bail!("{} needs {lib}, which is not in {}", elf.display(), LIB_DIRS.join(", "));
            };
            let guest = match from_extra {
                Some(_) => format!("{}/{lib}", LIB_DIRS[0]),
                None => on_host.display().to_string(),
            };
            if let std::collections::btree_map::Entry::Vacant(slot) = found.entry(guest) {
                let host = std::fs::canonicalize(&on_host)?;
                queue.push(host.clone());
                slot.insert(host);
            }
        }
    }
    Ok(found)
}

/// PT_INTERP and DT_NEEDED entries of a 64-bit ELF.
fn dynamic_deps(data: &[u8]) -> anyhow::Result<(Option<String>, Vec<String>)> {
    let elf = ElfFile64::<object::Endianness>::parse(data)?;
    let endian = elf.endian();
    let mut interp = None;
    for ph in elf.elf_program_headers() {
        if let Some(Ok(bytes)) = ph.interpreter(endian, data).transpose() {
            interp = Some(String::from_utf8_lossy(bytes).into_owned());
        }
    }
    let mut needed = Vec::new();
    let (Some(dynamic), Some(dynstr)) = (elf.section_by_name(".dynamic"), elf.section_by_name(".dynstr")) else {
        return Ok((interp, needed)); // static binary
    };
    let dynstr = dynstr.data()?;
    for entry in dynamic.data()?.chunks_exact(16) {
        let tag = u64::from_le_bytes(entry[..8].try_into().unwrap());
        let val = u64::from_le_bytes(entry[8..].try_into().unwrap()) as usize;
        match tag {
            0 => break, // DT_NULL
            1 => {
                // DT_NEEDED: offset into .dynstr
                let s = dynstr.get(val..).unwrap_or_default();
                let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
                needed.push(String::from_utf8_lossy(&s[..end]).into_owned());
            }
            _ => {}
        }
    }
    Ok((interp, needed))
}

/// Images a killed run was writing (`.<pid>.tmp`).
pub(crate) fn remove_stale() -> Vec<PathBuf> {
    let dir = crate::cache::cache_subdir("initramfs");
    crate::cache::remove_dead_owned(&dir, |n| n.strip_prefix('.')?.strip_suffix(".tmp")?.parse().ok())
}

fn evict_old(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let images = rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "cpio"));
    crate::cache::keep_newest(images, KEEP_CACHED, |p| {
        let _ = std::fs::remove_file(p);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_of_this_test_binary_has_libc_and_interpreter() {
        let exe = std::env::current_exe().unwrap();
        let libs = library_closure(&exe).unwrap();
        assert!(libs.keys().any(|g| g.ends_with("/libc.so.6")), "{libs:?}");
        assert!(libs.keys().any(|g| g.contains("ld-linux-x86-64.so.2")), "{libs:?}");
    }

    #[test]
    fn include_files_keep_names_trees_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ktstr-include-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf/sub")).unwrap();
        std::fs::write(dir.join("conf/a.txt"), "a").unwrap();
        std::fs::write(dir.join("conf/sub/run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(dir.join("conf/sub/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("one.json"), "{}").unwrap();
        std::fs::set_permissions(dir.join("one.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let (files, tops) = include_files(&[dir.join("conf"), dir.join("one.json")]).unwrap();
        assert_eq!(tops, ["/include/conf", "/include/one.json"]);
        let got: Vec<(&str, &[u8], u32)> = files.iter().map(|(g, b, m)| (g.as_str(), b.as_slice(), *m)).collect();
        assert_eq!(
            got,
            [
                ("/include/conf/a.txt", b"a".as_slice(), 0o100644),
                ("/include/conf/sub/run.sh", b"#!/bin/sh".as_slice(), 0o100755),
                ("/include/one.json", b"{}".as_slice(), 0o100644),
            ]
        );
        let twice = include_files(&[dir.join("one.json"), dir.join("conf/../one.json")]).unwrap_err();
        assert!(twice.to_string().contains("two include files are named `one.json`"), "{twice}");
        let missing = include_files(&[dir.join("nope")]).unwrap_err();
        assert!(format!("{missing:#}").contains("nope cannot be read"), "{missing:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cpio_round_trips_with_parent_dirs() {
        let mut buf = Vec::new();
        let files = [("/ktstr/plan.json", b"{}".as_slice(), MODE_EXEC), ("/bin/sh", b"/bin/busybox", MODE_SYMLINK)];
        write_cpio(&mut buf, files.into_iter()).unwrap();
        let mut names = Vec::new();
        let mut r = std::io::Cursor::new(buf);
        loop {
            let mut entry = cpio::newc::Reader::new(r).unwrap();
            if entry.entry().is_trailer() {
                break;
            }
            let mut data = String::new();
            std::io::Read::read_to_string(&mut entry, &mut data).unwrap();
            names.push(format!("{} {:o} {data}", entry.entry().name(), entry.entry().mode()));
            r = entry.finish().unwrap();
        }
        assert_eq!(names, ["bin 40755 ", "ktstr 40755 ", "ktstr/plan.json 100755 {}", "bin/sh 120777 /bin/busybox"]);
    }
}
