// Compile auto-repro's probe programs (src/probe/bpf/probe.bpf.c) into a
// BPF object and its libbpf-rs skeleton ($OUT_DIR/probe_skel.rs). The clang
// command comes from $BPF_CLANG, set in the workspace's .cargo/config.toml.

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
        .enable_skel("src/probe/bpf/probe.bpf.c", "probe")
        .build()
        .expect("scx_cargo: building auto-repro's probe programs failed");
}
