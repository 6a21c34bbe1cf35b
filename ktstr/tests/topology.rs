//! The guest sees exactly the topology a test asks for: CPUs, SMT
//! siblings, LLC groups (the L3 cache's shared_cpu_list) and NUMA nodes.

use ktstr::prelude::*;
use ktstr::topology::format_cpu_list;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_else(|e| format!("<{path}: {e}>"))
}

/// The cache index directory of `cpu` that describes its L3.
fn l3_dir(cpu: u32) -> Option<String> {
    (0..8)
        .map(|i| format!("/sys/devices/system/cpu/cpu{cpu}/cache/index{i}"))
        .find(|d| read(&format!("{d}/level")) == "3")
}

fn check_layout(ctx: &Ctx) -> Result<AssertResult> {
    let t = ctx.topology;
    let mut r = AssertResult::pass();
    let want_online = format_cpu_list(0..t.cpus());
    let online = read("/sys/devices/system/cpu/online");
    r.check(online == want_online, || format!("online cpus {online}, want {want_online}"));
    for llc in 0..t.llcs {
        let want = format_cpu_list(t.llc_cpus(llc));
        for cpu in t.llc_cpus(llc) {
            let got = l3_dir(cpu).map(|d| read(&format!("{d}/shared_cpu_list"))).unwrap_or("<no L3>".into());
            r.check(got == want, || format!("cpu{cpu}: L3 shared_cpu_list {got}, want {want} (LLC {llc})"));
            let sib = read(&format!("/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"));
            let want_sib = format_cpu_list(t.core_cpus(cpu));
            r.check(sib == want_sib, || format!("cpu{cpu}: thread_siblings_list {sib}, want {want_sib}"));
        }
    }
    let nodes = read("/sys/devices/system/node/online");
    let want_nodes = format_cpu_list(0..t.numa_nodes);
    r.check(nodes == want_nodes, || format!("online NUMA nodes {nodes}, want {want_nodes}"));
    for node in 0..t.numa_nodes {
        let got = read(&format!("/sys/devices/system/node/node{node}/cpulist"));
        let want = format_cpu_list(t.node_cpus(node));
        r.check(got == want, || format!("node{node}: cpulist {got}, want {want}"));
    }
    Ok(r)
}

#[ktstr_test(numa_nodes = 1, llcs = 1, cores = 4, threads = 1)]
fn topo_1n1l4c1t(ctx: &Ctx) -> Result<AssertResult> {
    check_layout(ctx)
}

#[ktstr_test(numa_nodes = 1, llcs = 2, cores = 2, threads = 1)]
fn topo_1n2l2c1t(ctx: &Ctx) -> Result<AssertResult> {
    check_layout(ctx)
}

#[ktstr_test(numa_nodes = 2, llcs = 2, cores = 2, threads = 1)]
fn topo_2n2l2c1t(ctx: &Ctx) -> Result<AssertResult> {
    check_layout(ctx)
}

#[ktstr_test(numa_nodes = 1, llcs = 1, cores = 2, threads = 2)]
fn topo_1n1l2c2t(ctx: &Ctx) -> Result<AssertResult> {
    check_layout(ctx)
}

/// 32 vCPUs on a 2-core host: oversubscription must stay quick.
#[ktstr_test(numa_nodes = 1, llcs = 2, cores = 8, threads = 2, duration_s = 5)]
fn topo_1n2l8c2t(ctx: &Ctx) -> Result<AssertResult> {
    check_layout(ctx)
}

/// The base topology, then each gauntlet preset as its own test
/// (`gauntlet/topo_gauntlet/smt-2llc`, ...): the guest must see the
/// preset's layout, not the base's.
#[ktstr_test(gauntlet = ["smt-2llc", "odd-3llc"], duration_s = 2)]
fn topo_gauntlet(ctx: &Ctx) -> Result<AssertResult> {
    check_layout(ctx)
}
