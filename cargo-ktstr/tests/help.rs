//! Every command's `--help` a newcomer reads first: it runs, says what
//! the command does in its first line, and the top-level help names every
//! command, the environment knobs and the troubleshooting page (which
//! must exist).

use std::process::Command;

const COMMANDS: &[&[&str]] = &[
    &["doctor"],
    &["kernel"],
    &["kernel", "fetch"],
    &["kernel", "list"],
    &["kernel", "path"],
    &["kernel", "show"],
    &["replay"],
    &["setup"],
    &["shell"],
    &["test"],
];

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-ktstr"))
        .arg("ktstr")
        .args(args)
        .arg("--help")
        .output()
        .expect("running cargo-ktstr");
    assert!(out.status.success(), "`cargo ktstr {} --help` failed: {out:?}", args.join(" "));
    String::from_utf8(out.stdout).expect("utf-8 help")
}

#[test]
fn every_command_explains_itself() {
    for args in COMMANDS {
        let text = help(args);
        let first = text.lines().next().unwrap_or("");
        assert!(first.len() > 20 && !first.starts_with("Usage"), "`{}`: no description:\n{text}", args.join(" "));
        assert!(text.contains("Usage: cargo ktstr"), "{text}");
    }
    // The commands a newcomer runs with arguments show examples.
    for args in [&["test"][..], &["replay"], &["shell"]] {
        assert!(help(args).contains("Examples:"), "`{}` has no examples", args.join(" "));
    }
}

#[test]
fn the_top_level_help_names_commands_knobs_and_the_troubleshooting_page() {
    let text = help(&[]);
    for cmd in ["doctor", "kernel", "replay", "setup", "shell", "test"] {
        assert!(text.contains(&format!("\n  {cmd} ")), "no {cmd} in\n{text}");
    }
    for knob in ["KTSTR_KERNEL", "KTSTR_ACCEL", "RUST_BACKTRACE", "KTSTR_VERBOSE", "RUST_LOG", "KTSTR_CACHE_DIR"] {
        assert!(text.contains(knob), "no {knob} in\n{text}");
    }
    let page = text.split("Troubleshooting: ").nth(1).and_then(|t| t.split_whitespace().next()).expect("a page");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(page);
    assert!(path.is_file(), "the help points at {page}, which is not in the repository");
}
