//! The QEMU command line for a [`VmSpec`].

use std::process::Command;

use super::{Accel, VmSpec};
use crate::topology::Topology;

pub const QEMU: &str = "qemu-system-x86_64";

/// Guest file names inside the run directory.
pub const CONSOLE_LOG: &str = "console.log";
pub const CHANNEL_LOG: &str = "channel.bin";
pub const QEMU_LOG: &str = "qemu.log";

pub fn command(spec: &VmSpec) -> Command {
    let mut cmd = Command::new(QEMU);
    let t = &spec.topology;
    cmd.args(["-M", "pc", "-accel", spec.accel.qemu_arg()]);
    if spec.accel == Accel::Kvm {
        cmd.args(["-cpu", "host"]);
    }
    cmd.args(["-smp", &smp_arg(t)]);
    cmd.args(["-m", &format!("{}M", spec.memory_mb)]);
    cmd.args(numa_args(t, spec.memory_mb));
    cmd.args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]);
    let con = spec.run_dir.join(CONSOLE_LOG);
    let chan = spec.run_dir.join(CHANNEL_LOG);
    // COM1: kernel console; COM2: the framed channel.
    cmd.arg("-chardev").arg(format!("file,id=con,path={}", con.display()));
    cmd.args(["-serial", "chardev:con"]);
    cmd.arg("-chardev").arg(format!("file,id=chan,path={}", chan.display()));
    cmd.args(["-serial", "chardev:chan"]);
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

/// One RAM backend per NUMA node, each node owning whole sockets.
fn numa_args(t: &Topology, memory_mb: u32) -> Vec<String> {
    if t.numa_nodes <= 1 {
        return Vec::new();
    }
    let mut args = Vec::new();
    let per_node = memory_mb / t.numa_nodes;
    for node in 0..t.numa_nodes {
        let size = if node + 1 == t.numa_nodes { memory_mb - per_node * node } else { per_node };
        let cpus = t.node_cpus(node);
        args.push("-object".into());
        args.push(format!("memory-backend-ram,id=mem{node},size={size}M"));
        args.push("-numa".into());
        args.push(format!("node,nodeid={node},cpus={}-{},memdev=mem{node}", cpus.start, cpus.end - 1));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numa_nodes_own_whole_llcs_and_split_memory() {
        let t = Topology::parse("2n2l2c1t").unwrap();
        assert_eq!(smp_arg(&t), "4,sockets=2,cores=2,threads=1");
        assert_eq!(
            numa_args(&t, 2049),
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
        assert!(numa_args(&Topology::parse("1n2l2c1t").unwrap(), 2048).is_empty());
    }
}
