//! QEMU's monitor (QMP) on a socket in the run directory, for what only
//! the emulator knows: the vCPUs' registers of a guest about to be killed
//! at its wall-clock limit (where each CPU was stuck).

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use qapi::{qmp, Qmp};
use serde::{Deserialize, Serialize};

pub(crate) const SOCKET: &str = "qmp.sock";
/// QEMU's own text of the registers, in the run directory.
pub(crate) const REGISTERS_TXT: &str = "vcpu-registers.txt";

/// QEMU's answer may take a while under TCG with busy vCPUs, but a
/// monitor that does not answer must not hold the run.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The registers of one vCPU, as QEMU's `info registers` names them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VcpuRegisters {
    pub cpu: u32,
    /// `RIP` → `ffffffff81e8d0df`, ... (hex, as QEMU prints them).
    pub regs: BTreeMap<String, String>,
}

/// The registers kept: general purpose, instruction pointer and flags,
/// privilege and halt state, control registers.
const KEPT: &[&str] = &[
    "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15",
    "RIP", "RFL", "CPL", "HLT", "CR0", "CR2", "CR3", "CR4",
];

/// Stops the guest's vCPUs and reads every one's registers.
pub(crate) fn stop_and_read_registers(run_dir: &Path) -> Result<Vec<VcpuRegisters>> {
    let path = run_dir.join(SOCKET);
    let stream = UnixStream::connect(&path).with_context(|| format!("connecting to QMP at {}", path.display()))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut q = Qmp::from_stream(&stream);
    q.handshake().context("QMP handshake")?;
    // Stopped, the registers of all vCPUs are from one moment.
    q.execute(&qmp::stop {}).context("QMP stop")?;
    let text = q
        .execute(&qmp::human_monitor_command { command_line: "info registers -a".into(), cpu_index: None })
        .context("QMP info registers")?;
    // The whole text stays in the run directory, kept on failure.
    let _ = std::fs::write(run_dir.join(REGISTERS_TXT), &text);
    Ok(parse_registers(&text))
}

/// A connected, greeted monitor.
fn connect(socket: &Path, timeout: Duration) -> Result<UnixStream> {
    let stream = UnixStream::connect(socket).with_context(|| format!("connecting to QMP at {}", socket.display()))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

fn ignore_shared() -> qmp::migrate_set_capabilities {
    // RAM lives in the memory-backend files: only device state is written.
    qmp::migrate_set_capabilities {
        capabilities: vec![qmp::MigrationCapabilityStatus {
            capability: qmp::MigrationCapability::x_ignore_shared,
            state: true,
        }],
    }
}

/// Polls `query-migrate` until the migration ends; its error if it failed.
fn wait_migration(q: &mut Qmp<qapi::Stream<std::io::BufReader<&UnixStream>, &UnixStream>>, what: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let info = q.execute(&qmp::query_migrate {}).context("QMP query-migrate")?;
        match info.status {
            Some(qmp::MigrationStatus::completed) => return Ok(()),
            Some(qmp::MigrationStatus::failed | qmp::MigrationStatus::cancelled) => {
                anyhow::bail!("{what} failed: {}", info.error_desc.unwrap_or_else(|| "no reason given".into()))
            }
            _ if std::time::Instant::now() > deadline => anyhow::bail!("{what} did not finish within 60s"),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Stops the guest and writes its device state to `state` (RAM stays in
/// its shared backing files), then ends QEMU.
pub(crate) fn save_state(socket: &Path, state: &Path) -> Result<()> {
    let stream = connect(socket, Duration::from_secs(30))?;
    let mut q = Qmp::from_stream(&stream);
    q.handshake().context("QMP handshake")?;
    q.execute(&qmp::stop {}).context("QMP stop")?;
    q.execute(&ignore_shared()).context("QMP migrate-set-capabilities x-ignore-shared")?;
    let uri = format!("file:{}", state.display());
    q.execute(&qmp::migrate { uri: Some(uri), channels: None, detach: None, resume: None }).context("QMP migrate")?;
    wait_migration(&mut q, "saving the guest")?;
    let _ = q.execute(&qmp::quit {});
    Ok(())
}

/// Stops the guest, writes its device state to `state` (RAM stays in its
/// shared backing files), runs `while_stopped` (which may copy that RAM:
/// it is the state's), and lets the guest run on.
pub(crate) fn save_state_then_continue(
    socket: &Path,
    state: &Path,
    while_stopped: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let stream = connect(socket, TIMEOUT)?;
    let mut q = Qmp::from_stream(&stream);
    q.handshake().context("QMP handshake")?;
    q.execute(&qmp::stop {}).context("QMP stop")?;
    let saved = (|| {
        q.execute(&ignore_shared()).context("QMP migrate-set-capabilities x-ignore-shared")?;
        let uri = format!("file:{}", state.display());
        q.execute(&qmp::migrate { uri: Some(uri), channels: None, detach: None, resume: None })
            .context("QMP migrate")?;
        wait_migration(&mut q, "saving the guest")?;
        while_stopped()
    })();
    // Whatever the save did, the run goes on.
    q.execute(&qmp::cont {}).context("QMP cont")?;
    saved
}

/// Loads `state` into a QEMU started with `-incoming defer` (RAM from the
/// backing files it was given) and waits until the guest runs.
pub(crate) fn load_state(socket: &Path, state: &Path) -> Result<()> {
    // QEMU creates the socket as it starts: wait for it a little.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let stream = loop {
        match connect(socket, TIMEOUT) {
            Ok(s) => break s,
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(e),
        }
    };
    let mut q = Qmp::from_stream(&stream);
    q.handshake().context("QMP handshake")?;
    q.execute(&ignore_shared()).context("QMP migrate-set-capabilities x-ignore-shared")?;
    let uri = format!("file:{}", state.display());
    q.execute(&qmp::migrate_incoming { uri: Some(uri), channels: None, exit_on_error: None })
        .context("QMP migrate-incoming")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let st = q.execute(&qmp::query_status {}).context("QMP query-status")?;
        if st.running {
            return Ok(());
        }
        if matches!(st.status, qmp::RunState::paused | qmp::RunState::postmigrate) {
            q.execute(&qmp::cont {}).context("QMP cont")?;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the restored guest did not run within 30s ({:?})",
            st.status
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `info registers -a` text: a `CPU#<n>` line, then `NAME=value` words
/// (`R8 =...`: short names are padded before the `=`).
pub(crate) fn parse_registers(text: &str) -> Vec<VcpuRegisters> {
    let word = regex::Regex::new(r"\b([A-Z][A-Z0-9]*) *=([0-9a-fA-F]+)\b").expect("a valid regex");
    let mut out: Vec<VcpuRegisters> = Vec::new();
    for line in text.lines() {
        if let Some(n) = line.trim().strip_prefix("CPU#").and_then(|n| n.trim().parse().ok()) {
            out.push(VcpuRegisters { cpu: n, regs: BTreeMap::new() });
            continue;
        }
        let Some(cpu) = out.last_mut() else { continue };
        for c in word.captures_iter(line) {
            if KEPT.contains(&&c[1]) {
                cpu.regs.insert(c[1].to_string(), c[2].to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What QEMU 10's `info registers -a` printed for a 2-vCPU guest
    /// stopped at its wall-clock limit (ktstr's hang test).
    const CAPTURED: &str = include_str!("../../tests/fixtures/qmp/info_registers.txt");

    #[test]
    fn each_vcpu_gets_its_registers() {
        let cpus = parse_registers(CAPTURED);
        assert_eq!(cpus.iter().map(|c| c.cpu).collect::<Vec<_>>(), [0, 1]);
        for c in &cpus {
            for r in ["RIP", "RSP", "R8", "R15", "RFL", "CPL", "HLT", "CR3"] {
                assert!(c.regs.contains_key(r), "CPU#{} lacks {r}: {:?}", c.cpu, c.regs);
            }
            assert_eq!(c.regs["RIP"].len(), 16, "{:?}", c.regs);
        }
        assert_eq!(cpus[0].regs["RIP"], "ffffffff82153c9f");
        assert_eq!(cpus[0].regs["R8"], "ffff88807b621968");
        assert_eq!(cpus[0].regs["HLT"], "1");
        assert!(!cpus[0].regs.contains_key("ES"), "segment registers are not kept");
    }
}
