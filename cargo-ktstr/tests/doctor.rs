//! `cargo ktstr doctor` on this very host: every check reported, the
//! accelerator named with its reason, and a broken tool named with its fix.

use std::process::Command;

fn doctor(env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-ktstr"))
        .args(["ktstr", "doctor"])
        .envs(env.iter().copied())
        .env_remove("KTSTR_ACCEL")
        .output()
        .expect("running cargo-ktstr");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    (out.status.success(), text)
}

#[test]
fn doctor_names_the_accelerator_and_why() {
    let (_, text) = doctor(&[]);
    for check in
        ["QEMU: ", "accelerator: ", "clang (BPF builds): ", "cargo-nextest: ", "guest kernel: ", "run directories: "]
    {
        assert!(text.lines().any(|l| l.get(5..).is_some_and(|r| r.starts_with(check))), "no {check:?} line:\n{text}");
    }
    let accel = text.lines().find(|l| l.contains("accelerator: ")).unwrap();
    let vendor = ["kvm_intel", "kvm_amd"].iter().any(|m| std::path::Path::new("/sys/module").join(m).exists());
    if !vendor {
        // This project's machines: a /dev/kvm without a vendor module.
        assert!(accel.contains("accelerator: TCG (QEMU's emulator"), "{accel}");
        assert!(
            accel.contains("no KVM vendor module (kvm_intel or kvm_amd) is loaded") || accel.contains("no /dev/kvm"),
            "the reason is named: {accel}"
        );
    } else {
        assert!(accel.contains("KVM: ") || accel.contains("a probe boot under KVM did not"), "{accel}");
    }
}

#[test]
fn a_missing_tool_is_named_with_its_fix() {
    let (ok, text) = doctor(&[("BPF_CLANG", "clang-no-such-version")]);
    assert!(!ok, "a finding to fix fails the command");
    assert!(text.contains("FIX  clang (BPF builds): clang-no-such-version not found"), "{text}");
    assert!(text.contains("fix: `cargo ktstr setup`"), "{text}");
    assert!(text.contains("1 finding(s) to fix"), "{text}");
}
