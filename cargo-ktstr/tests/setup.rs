//! `cargo ktstr setup` is `ktstr-setup` (the bootstrap binary scripts/setup
//! builds first): the same decisions, from the same code.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn cargo_ktstr_setup_decides_as_ktstr_setup() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ktstr-setup/tests/fixtures/fresh-deb822");
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-ktstr"))
        .args(["ktstr", "setup", "--dry-run", "--test-tools", "--root"])
        .arg(&root)
        .env_remove("KTSTR_DEBIAN_MIRROR")
        .output()
        .expect("runs cargo-ktstr");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("setup: add bookworm-backports as "), "{text}");
    assert!(text.contains("setup: install from bookworm-backports: qemu-system-x86\n"), "{text}");
    assert!(text.contains("shellcheck"), "{text}");
}
