//! Which QEMU accelerator to use: KVM only where it really works, TCG
//! otherwise. `KTSTR_ACCEL=kvm|tcg|tcg-single|tcg-multi` overrides.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Accel {
    Kvm,
    /// QEMU's emulator; `multi_thread` runs one host thread per vCPU.
    Tcg {
        multi_thread: bool,
    },
}

impl Accel {
    /// The `-accel` argument.
    pub fn qemu_arg(&self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg { multi_thread: true } => "tcg,thread=multi",
            Accel::Tcg { multi_thread: false } => "tcg,thread=single",
        }
    }

    /// Host CPUs a VM with this accelerator keeps busy.
    pub(crate) fn host_threads(&self, vcpus: u32) -> u32 {
        match self {
            Accel::Tcg { multi_thread: false } => 1,
            _ => vcpus.min(host_cpus()),
        }
    }
}

impl Accel {
    /// Kernel command-line words that make a TCG guest boot faster and
    /// keep time sanely. TCG's TSC is the host's, one counter shared by
    /// every vCPU, so it is reliable; and with the delay-loop constant
    /// given, each secondary vCPU skips its (emulated, slow) calibration.
    pub(crate) fn cmdline_words(&self, guest_hz: Option<u32>) -> Vec<String> {
        if *self == Accel::Kvm {
            return Vec::new();
        }
        let mut words = vec!["tsc=reliable".to_string()];
        if let (Some(hz), Some(bogomips)) = (guest_hz, host_bogomips()) {
            // BogoMIPS = lpj * HZ / 500000, and TCG's TSC runs at the host's.
            words.push(format!("lpj={}", (bogomips * 500_000.0 / hz as f64) as u64));
        }
        words
    }
}

fn host_bogomips() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find_map(|l| l.strip_prefix("bogomips")?.split(':').nth(1)?.trim().parse().ok())
}

pub fn host_cpus() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

/// Multi-threaded TCG wins while vCPUs are few; past about twice the host's
/// cores the threads fight over the cores and one thread is faster (measured
/// on 2 cores: 4 vCPUs tie, 8 vCPUs 5.5 s vs 4.2 s, 32 vCPUs 40.7 s vs 8.9 s).
pub(crate) fn tcg_for(vcpus: u32) -> Accel {
    Accel::Tcg { multi_thread: vcpus <= 2 * host_cpus() }
}

/// Picks the accelerator for a VM with `vcpus` vCPUs booting `kernel`.
pub fn choose(vcpus: u32, kernel: &Path) -> anyhow::Result<Accel> {
    let (accel, why) = decide(vcpus, kernel)?;
    tracing::debug!(?accel, vcpus, "accelerator: {why}");
    Ok(accel)
}

/// [`choose`], with the reason in words (for `cargo ktstr doctor`).
pub fn decide(vcpus: u32, kernel: &Path) -> anyhow::Result<(Accel, String)> {
    let forced = |a: Accel| Ok((a, "KTSTR_ACCEL chooses it".to_string()));
    match std::env::var("KTSTR_ACCEL").ok().as_deref() {
        None | Some("") | Some("auto") => {}
        Some("kvm") => return forced(Accel::Kvm),
        Some("tcg") => return forced(tcg_for(vcpus)),
        Some("tcg-single") => return forced(Accel::Tcg { multi_thread: false }),
        Some("tcg-multi") => return forced(Accel::Tcg { multi_thread: true }),
        Some(other) => anyhow::bail!("KTSTR_ACCEL={other}: expected kvm, tcg, tcg-single, tcg-multi or auto"),
    }
    Ok(match kvm_unusable(kernel) {
        None => (Accel::Kvm, "KVM's vendor module is loaded and a probe boot under KVM succeeded".into()),
        Some(why) => (tcg_for(vcpus), why),
    })
}

/// Why KVM cannot be used, or `None` when it can. KVM counts only with a
/// vendor module loaded (a `/dev/kvm` from another provider can hang on a
/// stock kernel) and after a probe boot succeeded. The probe's answer is
/// cached per host boot.
fn kvm_unusable(kernel: &Path) -> Option<String> {
    let vendor = ["kvm_intel", "kvm_amd"].iter().any(|m| Path::new("/sys/module").join(m).exists());
    if std::fs::metadata("/dev/kvm").is_err() {
        return Some("there is no /dev/kvm".into());
    }
    if !vendor {
        let others: Vec<String> = std::fs::read_dir("/sys/module")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with("kvm_"))
            .collect();
        let from =
            if others.is_empty() { String::new() } else { format!(" (/dev/kvm comes from {})", others.join(", ")) };
        return Some(format!(
            "no KVM vendor module (kvm_intel or kvm_amd) is loaded{from}: such a /dev/kvm hangs booting a stock kernel"
        ));
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let marker = crate::cache::cache_subdir("accel").join(format!("kvm-{}", boot_id.trim()));
    let ok = match std::fs::read_to_string(&marker) {
        Ok(v) => v.trim() == "ok",
        Err(_) => {
            let ok = probe_boot(kernel);
            let _ = std::fs::create_dir_all(marker.parent().unwrap());
            let _ = std::fs::write(&marker, if ok { "ok" } else { "fail" });
            ok
        }
    };
    (!ok).then(|| {
        "a probe boot under KVM did not reach the kernel banner within 20 s (cached for this host boot)".into()
    })
}

/// Boots the kernel under KVM with no root: a working KVM prints the
/// banner and panics (no init) well inside the limit; a broken one hangs.
fn probe_boot(kernel: &Path) -> bool {
    let Ok(mut child) = Command::new(super::qemu::QEMU)
        .args(["-accel", "kvm", "-M", "pc", "-m", "256", "-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-no-reboot", "-serial", "stdio", "-kernel"])
        .arg(kernel)
        .args(["-append", "console=ttyS0 panic=-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let mut out = String::new();
            use std::io::Read;
            let _ = child.stdout.take().unwrap().read_to_string(&mut out);
            return out.contains("Linux version");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}
