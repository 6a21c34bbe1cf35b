//! `cargo ktstr kernel list|path|show` against this host's real kernel
//! cache (set-up fetched the default kernel into it), and a spec that
//! matches nothing, named with what is cached.

use std::process::Command;

fn kernel(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-ktstr"))
        .arg("ktstr")
        .arg("kernel")
        .args(args)
        .env_remove("KTSTR_KERNEL")
        .output()
        .expect("running cargo-ktstr");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into());
    (out.status.success(), stdout, stderr)
}

fn default_kernel() -> ktstr::kernel::KernelImage {
    assert!(
        !ktstr::kernel::list_cached().is_empty(),
        "no kernel cached in {}: run `cargo ktstr kernel fetch` (or ./run test, which does)",
        ktstr::kernel::cache_dir().display()
    );
    // The commands run without KTSTR_KERNEL; so does this lookup (each
    // nextest test is a process of its own).
    std::env::remove_var("KTSTR_KERNEL");
    ktstr::kernel::resolve(None).expect("a default kernel")
}

#[test]
fn path_list_and_show_agree_on_the_default_kernel() {
    let k = default_kernel();
    let (ok, path, err) = kernel(&["path"]);
    assert!(ok, "{err}");
    assert_eq!(path.trim(), k.vmlinuz.display().to_string());
    assert!(std::path::Path::new(path.trim()).is_file());

    let (ok, list, err) = kernel(&["list"]);
    assert!(ok, "{err}");
    let star = list.lines().find(|l| l.starts_with('*')).unwrap_or_else(|| panic!("no default marked:\n{list}"));
    assert!(star.contains(&k.release), "{list}");
    assert_eq!(star.contains("+debuginfo"), k.debug_vmlinux().is_some(), "{list}");

    let (ok, show, err) = kernel(&["show"]);
    assert!(ok, "{err}");
    assert!(show.contains(&format!("release:   {}\n", k.release)), "{show}");
    assert!(show.contains(&format!("sched_ext: {}\n", k.sched_ext())), "{show}");
    assert!(show.contains("debuginfo: "), "{show}");
}

#[test]
fn a_spec_that_matches_nothing_lists_the_cache() {
    let k = default_kernel();
    let (ok, _, err) = kernel(&["path", "1.0"]);
    assert!(!ok);
    assert!(err.contains("kernel `1.0`") && err.contains(&k.release), "{err}");
}
