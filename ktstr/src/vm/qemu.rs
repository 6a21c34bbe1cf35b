//! The QEMU command line for a [`VmSpec`].

use std::process::Command;

use super::memory::{RamFiles, LOW_RAM_MAX};
use super::{Accel, VmSpec};
use crate::wire::topology::Topology;

pub const QEMU: &str = "qemu-system-x86_64";

/// Guest file names inside the run directory.
pub(crate) const CONSOLE_LOG: &str = "console.log";
pub(crate) const CHANNEL_LOG: &str = "channel.bin";
pub(crate) const QEMU_LOG: &str = "qemu.log";

/// The command for `spec`; with `ram`, guest RAM lives in those files
/// (shared, so the host can read it while the guest runs).
pub fn command(spec: &VmSpec, ram: Option<&RamFiles>) -> Command {
    let mut cmd = Command::new(QEMU);
    // QEMU dies with the thread that started it: a test process killed
    // mid-run (SIGKILL, a CI timeout) leaves no VM behind.
    // SAFETY: prctl(2) is async-signal-safe and touches only the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let t = &spec.topology;
    let machine = match ram {
        // One node: the machine's RAM is the backend itself. The split
        // below 4 GiB is pinned so the host knows where RAM lies.
        Some(_) if t.numa_nodes <= 1 => format!("pc,memory-backend=mem0,max-ram-below-4g={LOW_RAM_MAX}"),
        Some(_) => format!("pc,max-ram-below-4g={LOW_RAM_MAX}"),
        None => "pc".into(),
    };
    cmd.args(["-M", &machine, "-accel", spec.accel.qemu_arg()]);
    if spec.accel == Accel::Kvm {
        cmd.args(["-cpu", "host"]);
    }
    cmd.args(["-smp", &smp_arg(t)]);
    cmd.args(["-m", &format!("{}M", spec.memory_mb)]);
    cmd.args(ram_args(t, spec.memory_mb, ram));
    cmd.args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]);
    let con = spec.run_dir.join(CONSOLE_LOG);
    let chan = spec.run_dir.join(CHANNEL_LOG);
    // COM1: kernel console; COM2: the framed channel.
    cmd.arg("-chardev").arg(format!("file,id=con,path={}", con.display()));
    cmd.args(["-serial", "chardev:con"]);
    cmd.arg("-chardev").arg(format!("file,id=chan,path={}", chan.display()));
    cmd.args(["-serial", "chardev:chan"]);
    if spec.interactive {
        // The shell's terminal: a virtio console (no emulated UART exit
        // per byte) on QEMU's stdio, which QEMU puts in raw mode, so the
        // guest's tty does echo and line editing. signal=off: Ctrl-C is a
        // byte for the guest, not a signal that ends QEMU.
        cmd.args(["-device", "virtio-serial-pci,id=vser"]);
        cmd.args(["-chardev", "stdio,id=shell,signal=off"]);
        cmd.args(["-device", "virtconsole,chardev=shell,bus=vser.0"]);
    }
    // The monitor, for the vCPUs' registers of a hung guest.
    // A socket path has at most 107 bytes: a longer run directory goes without.
    let qmp = spec.run_dir.join(super::qmp::SOCKET);
    if qmp.as_os_str().len() < 108 {
        cmd.arg("-qmp").arg(format!("unix:{},server=on,wait=off", qmp.display()));
    }
    cmd.arg("-kernel").arg(&spec.kernel);
    cmd.arg("-initrd").arg(&spec.initrd);
    cmd.arg("-append").arg(spec.cmdline());
    cmd
}

/// One socket per LLC: that is what gives the guest separate L3 groups
/// under TCG (dies or modules did not split L3 inside a socket).
fn smp_arg(t: &Topology) -> String {
    format!("{},sockets={},cores={},threads={}", t.cpus(), t.llcs, t.cores, t.threads)
}

/// MiB of RAM on each NUMA node, in node order (the last takes the rest).
pub(crate) fn node_sizes_mb(t: &Topology, memory_mb: u32) -> Vec<u32> {
    let nodes = t.numa_nodes.max(1);
    let per_node = memory_mb / nodes;
    (0..nodes).map(|n| if n + 1 == nodes { memory_mb - per_node * n } else { per_node }).collect()
}

/// One RAM backend per NUMA node, each node owning whole sockets; with
/// `ram`, each backend is its file, shared. QEMU lays the nodes' RAM end
/// to end in node order, which is what `GuestMemory` assumes.
fn ram_args(t: &Topology, memory_mb: u32, ram: Option<&RamFiles>) -> Vec<String> {
    let backend = |node: usize, size: u32| match ram {
        Some(r) => {
            format!("memory-backend-file,id=mem{node},size={size}M,mem-path={},share=on", r.paths[node].display())
        }
        None => format!("memory-backend-ram,id=mem{node},size={size}M"),
    };
    let sizes = node_sizes_mb(t, memory_mb);
    if t.numa_nodes <= 1 {
        return ram.map(|_| vec!["-object".to_string(), backend(0, sizes[0])]).unwrap_or_default();
    }
    let mut args = Vec::new();
    for (node, size) in sizes.into_iter().enumerate() {
        let cpus = t.node_cpus(node as u32);
        args.push("-object".into());
        args.push(backend(node, size));
        args.push("-numa".into());
        args.push(format!("node,nodeid={node},cpus={}-{},memdev=mem{node}", cpus.start, cpus.end - 1));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_interactive_vm_has_a_console_on_stdio() {
        let mut spec = VmSpec {
            kernel: "/k".into(),
            initrd: "/i".into(),
            topology: Topology::parse("1n1l2c1t").unwrap(),
            memory_mb: 512,
            accel: Accel::Tcg { multi_thread: true },
            guest_hz: None,
            cmdline_extra: Vec::new(),
            verbose: false,
            time_limit: std::time::Duration::from_secs(1),
            boot_deadline: None,
            run_dir: "/r".into(),
            interactive: false,
            snapshot: crate::vm::SnapshotUse::Off("a unit test".into()),
        };
        let args =
            |s: &VmSpec| command(s, None).get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>();
        assert!(!args(&spec).iter().any(|a| a.contains("stdio")));
        spec.interactive = true;
        let a = args(&spec).join(" ");
        assert!(a.contains("-chardev stdio,id=shell,signal=off -device virtconsole,chardev=shell,bus=vser.0"), "{a}");
    }

    #[test]
    fn numa_nodes_own_whole_llcs_and_split_memory() {
        let t = Topology::parse("2n2l2c1t").unwrap();
        assert_eq!(smp_arg(&t), "4,sockets=2,cores=2,threads=1");
        assert_eq!(
            ram_args(&t, 2049, None),
            [
                "-object",
                "memory-backend-ram,id=mem0,size=1024M",
                "-numa",
                "node,nodeid=0,cpus=0-1,memdev=mem0",
                "-object",
                "memory-backend-ram,id=mem1,size=1025M",
                "-numa",
                "node,nodeid=1,cpus=2-3,memdev=mem1"
            ]
        );
        assert!(ram_args(&Topology::parse("1n2l2c1t").unwrap(), 2048, None).is_empty());
        let files = RamFiles::create(&node_sizes_mb(&t, 64)).unwrap();
        let args = ram_args(&t, 64, Some(&files));
        assert_eq!(
            args[1],
            format!("memory-backend-file,id=mem0,size=32M,mem-path={},share=on", files.paths[0].display())
        );
        assert_eq!(args[3], "node,nodeid=0,cpus=0-1,memdev=mem0");
    }
}
