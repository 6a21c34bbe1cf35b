//! `cargo ktstr kernel ...`: download, list and inspect guest kernels.

use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use ktstr::kernel::{self, FetchOptions, KernelImage, SchedExtSupport};

#[derive(Args)]
pub struct KernelArgs {
    #[command(subcommand)]
    cmd: KernelCmd,
}

#[derive(Subcommand)]
enum KernelCmd {
    /// Download the newest Debian cloud kernel of a suite into the cache.
    Fetch {
        /// Debian suite (`trixie` gives 6.12, a kernel without sched_ext).
        #[arg(long, default_value = kernel::DEFAULT_SUITE)]
        suite: String,
        /// Kernel flavour, as in `linux-image-<flavour>`.
        #[arg(long, default_value = kernel::DEFAULT_FLAVOUR)]
        flavour: String,
        /// Cache the kernel even if it has no CONFIG_SCHED_CLASS_EXT=y.
        #[arg(long)]
        allow_without_sched_ext: bool,
        /// Also fetch the kernel's debug vmlinux (from Debian's `-dbg`
        /// package, about 350 MB to download, the 400 MB vmlinux kept), so the
        /// auto-repro trail shows kernel functions with `file:line`.
        #[arg(long)]
        debug_info: bool,
    },
    /// List cached kernels, newest first (`*` marks the default).
    List,
    /// Print the path of the bzImage a spec (or the default) resolves to,
    /// for scripts: `qemu-system-x86_64 -kernel "$(cargo ktstr kernel path)"`.
    Path {
        /// As for `show`.
        spec: Option<String>,
    },
    /// Show which kernel a spec (or the default) resolves to, its config,
    /// sched_ext support, debug info and where it came from.
    Show {
        /// A version (`7.3`), a bzImage path or a kernel build tree;
        /// defaults to --kernel's fallbacks (KTSTR_KERNEL, newest cached).
        spec: Option<String>,
    },
}

pub fn run(args: KernelArgs) -> Result<()> {
    match args.cmd {
        KernelCmd::Fetch { suite, flavour, allow_without_sched_ext, debug_info } => {
            let started = Instant::now();
            let k = kernel::fetch(&FetchOptions { suite, flavour, allow_without_sched_ext, release: None })?;
            eprintln!(
                "kernel {} (sched_ext: {}) ready in {:.1}s",
                k.release,
                k.sched_ext(),
                started.elapsed().as_secs_f64()
            );
            if debug_info {
                let started = Instant::now();
                let path = kernel::fetch_debug_vmlinux(&k.release)?;
                eprintln!("debug vmlinux {} ready in {:.1}s", path.display(), started.elapsed().as_secs_f64());
            }
            println!("{}", k.vmlinuz.display());
        }
        KernelCmd::Path { spec } => println!("{}", kernel::resolve(spec.as_deref())?.vmlinuz.display()),
        KernelCmd::List => list(),
        KernelCmd::Show { spec } => show(&kernel::resolve(spec.as_deref())?),
    }
    Ok(())
}

fn list() {
    let cached = kernel::list_cached();
    let dir = kernel::cache_dir();
    if cached.is_empty() {
        println!("no kernels cached in {}; run `cargo ktstr kernel fetch`", dir.display());
        return;
    }
    let default = kernel::resolve(None).ok().map(|k| k.vmlinuz);
    println!("kernels in {}:", dir.display());
    let width = cached.iter().map(|k| k.release.len()).max().unwrap_or(0);
    println!("  {:width$}  {:9}  {:17}  {:>7}  SOURCE", "RELEASE", "SCHED_EXT", "DEBIAN VERSION", "SIZE");
    for k in &cached {
        let mark = if default.as_ref() == Some(&k.vmlinuz) { '*' } else { ' ' };
        let meta = k.cached_meta();
        let size = std::fs::metadata(&k.vmlinuz).map(|m| m.len()).unwrap_or(0);
        println!(
            "{mark} {:width$}  {:9}  {:17}  {:>5.1}MB  {}",
            k.release,
            k.sched_ext().to_string(),
            meta.as_ref().map_or("-", |m| m.debian_version.as_str()),
            size as f64 / 1e6,
            meta.as_ref().map_or_else(|| "-".to_string(), |m| format!("{} {}", m.suite, m.flavour))
                + if k.debug_vmlinux().is_some() { " +debuginfo" } else { "" },
        );
    }
}

fn show(k: &KernelImage) {
    println!("release:   {}", k.release);
    println!("vmlinuz:   {}", k.vmlinuz.display());
    println!("config:    {}", k.config.as_ref().map_or_else(|| "(none)".into(), |c| c.display().to_string()));
    println!("sched_ext: {}", k.sched_ext());
    match k.debug_vmlinux() {
        Some(p) => println!("debuginfo: {}", p.display()),
        None => println!("debuginfo: (none: `cargo ktstr kernel fetch --debug-info` adds it to a Debian kernel)"),
    }
    if k.sched_ext() != SchedExtSupport::Yes {
        println!("           (sched_ext schedulers need CONFIG_SCHED_CLASS_EXT=y)");
    }
    if let Some(m) = k.cached_meta() {
        println!("from:      Debian {} {} ({}), {}", m.suite, m.flavour, m.debian_version, m.packages.join(", "));
    }
}
