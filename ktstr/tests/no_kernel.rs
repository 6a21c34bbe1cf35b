//! With no kernel anywhere, a test fails before booting and says how to
//! get one. Alone in its binary: it changes the process environment.

use ktstr::prelude::*;
use ktstr::test_support::{find_test, run_ktstr_test_with, RunOptions};

#[ktstr_test]
#[ignore = "guest half of no_kernel_found_says_how_to_get_one; never boots"]
fn payload_never_boots(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

#[test]
fn no_kernel_found_says_how_to_get_one() {
    let empty = std::env::temp_dir().join(format!("ktstr-empty-cache-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    // SAFETY: this binary's only test; nextest runs it in its own process.
    unsafe {
        std::env::set_var("KTSTR_CACHE_DIR", &empty);
        std::env::remove_var("KTSTR_KERNEL");
    }
    let entry = find_test("payload_never_boots").unwrap();
    let f = run_ktstr_test_with(entry, &RunOptions::default()).unwrap_err();
    let _ = std::fs::remove_dir_all(&empty);
    eprintln!("{}", f.report);
    assert_eq!(f.stage, "kernel lookup (no VM was booted)");
    assert!(f.reasons[0].starts_with("no kernel found"), "{:?}", f.reasons);
    assert!(f.reasons[0].contains("cargo ktstr kernel fetch"), "{:?}", f.reasons);
}

#[test]
fn unknown_kernel_version_lists_the_cache() {
    let entry = find_test("payload_never_boots").unwrap();
    let opts = RunOptions { kernel: Some("99.99".into()), ..Default::default() };
    let f = run_ktstr_test_with(entry, &opts).unwrap_err();
    assert_eq!(f.stage, "kernel lookup (no VM was booted)");
    assert!(f.reasons[0].contains("99.99"), "{:?}", f.reasons);
}
