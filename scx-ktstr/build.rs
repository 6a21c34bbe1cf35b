// Compile src/bpf/main.bpf.c into a BPF object, generate its libbpf-rs
// skeleton ($OUT_DIR/bpf_skel.rs) and bindgen the shared header
// ($OUT_DIR/bpf_intf.rs). The clang command comes from $BPF_CLANG, set in
// the workspace's .cargo/config.toml.

fn main() {
    scx_cargo::BpfBuilder::new()
        .expect("scx_cargo: cannot set up the BPF build (is $BPF_CLANG a clang >= 18?)")
        .enable_intf("src/bpf/intf.h", "bpf_intf.rs")
        .enable_skel("src/bpf/main.bpf.c", "bpf")
        .build()
        .expect("scx_cargo: building the BPF scheduler failed");
}
