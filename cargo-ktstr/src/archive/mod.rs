//! A suite built once and run on other machines: `cargo ktstr archive
//! FILE` bundles nextest's archive of the test binaries with what a runner
//! needs that cargo does not know about, and `cargo ktstr test --archive
//! FILE --partition hash:K/N` runs one share of it on a machine that has
//! QEMU and nothing else of a build machine's (no Rust, no source tree, no
//! kernel cache).
//!
//! The bundle is a plain tar (any runner can unpack it), all under
//! `ktstr-archive/`:
//!
//! ```text
//! ktstr                  a sh wrapper: `ktstr-archive/ktstr test ...` runs the
//!                        bundled cargo-ktstr with the bundled libraries
//! manifest.json          what is inside (Manifest)
//! bin/cargo-ktstr        this command, as built
//! bin/cargo-nextest      the nextest that made the archive (the same version runs it)
//! nextest.tar.zst        `cargo nextest archive` of the test binaries and the
//!                        workspace's own binaries (the fixture schedulers)
//! workspace/             nextest's view of the workspace: its config
//!                        (.config/nextest.toml) and each package's directory
//! kernels/<release>/     the kernel cache entries the tests boot, with their
//!                        debug vmlinux (zstd) when cached
//! schedulers/<name>/<version>/bin/<name>   schedulers installed with `cargo ktstr sched install`
//! lib/                   the shared libraries the binaries load beyond libc
//! ```
//!
//! A runner adopts the kernels and schedulers into its own cache (whole,
//! by rename, never over what it has), then runs nextest from the archive
//! with the bundled libraries on `LD_LIBRARY_PATH`; each test writes its
//! sidecar and failure dump under `ktstr-archive/run/target/ktstr/` as a
//! local run writes them under `target/ktstr/`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod build;
pub mod run;

/// The bundle's top directory.
pub const TOP: &str = "ktstr-archive";
const MANIFEST: &str = "manifest.json";
const NEXTEST_ARCHIVE: &str = "nextest.tar.zst";
const WRAPPER: &str = "ktstr";
/// The manifest's format; a runner refuses another.
const FORMAT: u32 = 1;
/// The compressed debug vmlinux in a bundled kernel entry.
const DEBUG_ZST: &str = "vmlinux.debug.zst";

/// What a bundle holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    /// The kernel the tests boot unless the runner says otherwise.
    pub kernel: String,
    /// Every bundled kernel release (the default first).
    pub kernels: Vec<String>,
    /// Bundled installed schedulers, `name@version`.
    pub schedulers: Vec<String>,
    /// Bundled libraries (file names under `lib/`).
    pub libs: Vec<String>,
    /// `cargo-nextest --version`'s first line on the build machine.
    pub nextest: String,
    /// The build machine's workspace root, as nextest recorded it.
    pub workspace: PathBuf,
}

/// The paths inside an unpacked bundle.
pub struct Layout(pub PathBuf);

impl Layout {
    fn manifest(&self) -> PathBuf {
        self.0.join(MANIFEST)
    }
    fn bin(&self, name: &str) -> PathBuf {
        self.0.join("bin").join(name)
    }
    fn nextest_archive(&self) -> PathBuf {
        self.0.join(NEXTEST_ARCHIVE)
    }
    fn workspace(&self) -> PathBuf {
        self.0.join("workspace")
    }
    fn kernel(&self, release: &str) -> PathBuf {
        self.0.join("kernels").join(release)
    }
    fn schedulers(&self) -> PathBuf {
        self.0.join("schedulers")
    }
    fn lib(&self) -> PathBuf {
        self.0.join("lib")
    }
    /// Where nextest extracts the archive on a runner: the tests' target
    /// directory, and so where their sidecars and dumps go.
    pub fn run_dir(&self) -> PathBuf {
        self.0.join("run")
    }
    /// `<run>/target/ktstr`: the output root a local run has in `target/ktstr`.
    pub fn output_root(&self) -> PathBuf {
        self.run_dir().join("target").join("ktstr")
    }
}

fn read_manifest(layout: &Layout) -> anyhow::Result<Manifest> {
    use anyhow::Context;
    let path = layout.manifest();
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "{} has no {MANIFEST}: not a bundle of `cargo ktstr archive` (or unpacked only in part)",
            layout.0.display()
        )
    })?;
    let m: Manifest =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not a ktstr manifest", path.display()))?;
    anyhow::ensure!(
        m.format == FORMAT,
        "{} is a bundle of format {}, this cargo-ktstr reads format {FORMAT}: run it with the cargo-ktstr inside it \
         (`{}/{WRAPPER} test --archive ...`)",
        layout.0.display(),
        m.format,
        layout.0.display()
    );
    Ok(m)
}
