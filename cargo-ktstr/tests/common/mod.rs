//! What the cargo-ktstr integration tests share: running `cargo ktstr` as a
//! user would, with the run's artifacts kept out of the workspace's.

use std::path::Path;
use std::process::{Command, Output};

/// `cargo ktstr <args>` as cargo runs it, its artifacts in `out`; its
/// stderr is echoed for the test's log.
pub fn cargo_ktstr(out: &Path, args: &[&str]) -> Output {
    cargo_ktstr_env(out, args, &[])
}

/// [`cargo_ktstr`] with more environment variables set.
pub fn cargo_ktstr_env(out: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-ktstr"))
        .arg("ktstr")
        .args(args)
        .env(ktstr::artifacts::OUTPUT_DIR_ENV, out)
        .envs(env.iter().copied())
        .output()
        .expect("running cargo-ktstr");
    eprintln!("$ cargo ktstr {}\n{}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    output
}
