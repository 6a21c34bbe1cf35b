// Compile the guest's BPF programs into objects and libbpf-rs skeletons:
// auto-repro's probes (src/guest/probe/bpf/probe.bpf.c, beside their loader
// guest/probe/attach.rs; $OUT_DIR/probe_skel.rs)
// and the monitor's symbol lookup (src/guest/bpf/ksym.bpf.c,
// $OUT_DIR/ksym_skel.rs). The clang command comes from $BPF_CLANG, set in
// the workspace's .cargo/config.toml.

fn main() {
    // bpf_tracing.h's PT_REGS_PARM* need the target architecture.
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "arm64",
        Ok("riscv64") => "riscv",
        _ => "x86",
    };
    scx_cargo::BpfBuilder::new()
        .expect("scx_cargo: cannot set up the BPF build (is $BPF_CLANG a clang >= 18?)")
        .add_cflag(&format!("-D__TARGET_ARCH_{arch}"))
        .enable_skel("src/guest/probe/bpf/probe.bpf.c", "probe")
        .build()
        .expect("scx_cargo: building auto-repro's probe programs failed");
    scx_cargo::BpfBuilder::new()
        .expect("scx_cargo: cannot set up the BPF build (is $BPF_CLANG a clang >= 18?)")
        .enable_skel("src/guest/bpf/ksym.bpf.c", "ksym")
        .build()
        .expect("scx_cargo: building the monitor's symbol lookup failed");
}
