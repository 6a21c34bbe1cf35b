//! `cargo ktstr doctor`: checks this host the way a new user needs it
//! checked, and prints each finding with its fix. Nothing is changed.

use std::path::Path;
use std::process::Command;

use ktstr_setup::plan::MIN_QEMU_MAJOR;

#[derive(clap::Args)]
pub struct DoctorArgs {}

/// Free space under which a run directory or the guest RAM files may not fit.
const MIN_FREE_GIB: f64 = 2.0;

/// One finding: what was checked, what was found, and the fix when there
/// is something to fix.
struct Finding {
    what: &'static str,
    found: String,
    fix: Option<String>,
}

pub fn run(_args: DoctorArgs) -> anyhow::Result<()> {
    let findings = [
        qemu(),
        accelerator(),
        clang(),
        nextest(),
        kernel(),
        debug_info(),
        free("run directories", &std::env::temp_dir()),
    ]
    .into_iter()
    .chain([free("guest RAM files (/dev/shm)", Path::new("/dev/shm"))]);
    let mut problems = 0;
    for f in findings {
        match &f.fix {
            None => println!("ok   {}: {}", f.what, f.found),
            Some(fix) => {
                problems += 1;
                println!("FIX  {}: {}\n       fix: {fix}", f.what, f.found);
            }
        }
    }
    if problems > 0 {
        anyhow::bail!("{problems} finding(s) to fix (see FIX above)");
    }
    Ok(())
}

fn qemu() -> Finding {
    let what = "QEMU";
    let fix = format!(
        "install QEMU {MIN_QEMU_MAJOR} or newer: `cargo ktstr setup` (Debian bookworm: from bookworm-backports)"
    );
    let Some(out) = first_line(ktstr::vm::QEMU, &["--version"]) else {
        return Finding { what, found: format!("{} not found", ktstr::vm::QEMU), fix: Some(fix) };
    };
    // "QEMU emulator version 10.0.2 (Debian ...)"
    let major = out.split("version ").nth(1).and_then(|v| v.split('.').next()).and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(m) if m >= MIN_QEMU_MAJOR => Finding { what, found: out, fix: None },
        _ => Finding {
            what,
            found: format!("{out}: older QEMU panicked in early TCG boots on these machines"),
            fix: Some(fix),
        },
    }
}

fn accelerator() -> Finding {
    let what = "accelerator";
    // The probe boot needs a kernel; without one only the host-side reasons count.
    let kernel = ktstr::kernel::resolve(None).ok().map(|k| k.vmlinuz);
    let probe = kernel.as_deref().unwrap_or(Path::new("/nonexistent"));
    match ktstr::vm::decide_accel(4, probe) {
        Ok((ktstr::vm::Accel::Kvm, why)) => Finding { what, found: format!("KVM: {why}"), fix: None },
        Ok((ktstr::vm::Accel::Tcg { .. }, why)) => Finding {
            what,
            found: format!(
                "TCG (QEMU's emulator, multi-threaded up to {} vCPUs, single-threaded beyond): {why}. Tests run, \
                 slower than under KVM",
                2 * ktstr::vm::host_cpus()
            ),
            fix: None,
        },
        Err(e) => {
            Finding { what, found: format!("{e:#}"), fix: Some("unset KTSTR_ACCEL or give it a valid value".into()) }
        }
    }
}

fn clang() -> Finding {
    let what = "clang (BPF builds)";
    let bin = std::env::var("BPF_CLANG").unwrap_or_else(|_| "clang-19".into());
    match first_line(&bin, &["--version"]) {
        Some(v) => Finding { what, found: format!("{bin}: {v}"), fix: None },
        None => Finding {
            what,
            found: format!("{bin} not found (the workspace's .cargo/config.toml sets BPF_CLANG=clang-19)"),
            fix: Some("`cargo ktstr setup` (installs clang-19, libelf-dev, zlib1g-dev, pkg-config)".into()),
        },
    }
}

fn nextest() -> Finding {
    let what = "cargo-nextest";
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    match first_line(&cargo, &["nextest", "--version"]) {
        Some(v) => Finding { what, found: v, fix: None },
        None => Finding {
            what,
            found: "not installed: `cargo ktstr test` runs the tests through it".into(),
            fix: Some("`cargo install cargo-nextest --locked`".into()),
        },
    }
}

fn kernel() -> Finding {
    let what = "guest kernel";
    let fix = Some("`cargo ktstr kernel fetch` (Debian's newest sched_ext cloud kernel)".to_string());
    match ktstr::kernel::resolve(None) {
        Ok(k) => {
            let sched_ext = k.sched_ext();
            let found = format!("{} (sched_ext: {sched_ext}) in {}", k.release, ktstr::kernel::cache_dir().display());
            let ok = sched_ext != ktstr::kernel::SchedExtSupport::No;
            Finding { what, found, fix: if ok { None } else { fix } }
        }
        Err(e) => Finding { what, found: format!("{e:#}"), fix },
    }
}

/// Optional: without it crash trails still work, minus kernel lines.
fn debug_info() -> Finding {
    let what = "kernel debug info";
    let found = match ktstr::kernel::resolve(None).ok().and_then(|k| k.debug_vmlinux()) {
        Some(p) => format!("{} (auto-repro trails show kernel functions with file:line)", p.display()),
        None => "none, which is fine: auto-repro trails show kernel functions without file:line; \
                 `cargo ktstr kernel fetch --debug-info` adds it (about 350 MB to download)"
            .into(),
    };
    Finding { what, found, fix: None }
}

fn free(what: &'static str, dir: &Path) -> Finding {
    let Ok(st) = nix::sys::statvfs::statvfs(dir) else {
        return Finding { what, found: format!("cannot stat {}", dir.display()), fix: None };
    };
    let gib = st.blocks_available() as f64 * st.fragment_size() as f64 / (1u64 << 30) as f64;
    let found = format!("{gib:.1} GiB free in {}", dir.display());
    let fix =
        (gib < MIN_FREE_GIB).then(|| format!("free space in {} (a VM test needs up to about 2 GiB)", dir.display()));
    Finding { what, found, fix }
}

/// The first line a command prints (stdout, else stderr), if it runs.
fn first_line(bin: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(bin).args(args).output().ok()?;
    let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
    String::from_utf8_lossy(&text).lines().next().map(|l| l.trim().to_string()).filter(|l| !l.is_empty())
}
