//! Gauntlet variants through nextest, for real: listed under their own
//! names, one run alone by `-E 'test(=gauntlet/<test>/<preset>)'` with
//! the preset named in its report, and re-run by `cargo ktstr replay`.

use std::path::Path;
use std::process::{Command, Output};

use ktstr::prelude::*;

const VARIANT: &str = "gauntlet/gauntlet_target/tiny-1llc";

/// Fails on purpose, in a VM, without a scheduler: the base test on one
/// CPU, its variant on the preset's two.
#[ktstr_test(cores = 1, duration_s = 1, gauntlet = ["tiny-1llc"])]
#[ignore = "the failing test of a_gauntlet_variant_runs_alone_and_replays"]
fn gauntlet_target(ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::fail(format!("failing on purpose on {} CPUs", ctx.topology.cpus())))
}

fn run(out: &Path, program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .env(ktstr::artifacts::OUTPUT_DIR_ENV, out)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    eprintln!("$ {program} {}\n{}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    output
}

#[test]
fn a_gauntlet_variant_runs_alone_and_replays() {
    let out = std::env::temp_dir().join(format!("ktstr-gauntlet-test-{}", std::process::id()));
    let ktstr = env!("CARGO_BIN_EXE_cargo-ktstr");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let text = |o: &Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));

    let listed =
        run(&out, &cargo, &["nextest", "list", "-p", "cargo-ktstr", "--test", "gauntlet", "--run-ignored", "all"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let list = text(&listed);
    assert!(list.contains(VARIANT) && list.contains("gauntlet_target"), "{list}");

    let filter = format!("binary_id(cargo-ktstr::gauntlet) & test(={VARIANT})");
    let first = run(&out, ktstr, &["ktstr", "test", "--", "--run-ignored", "all", "--no-capture", "-E", &filter]);
    assert!(!first.status.success(), "the variant fails on purpose");
    let t = text(&first);
    assert!(t.contains(&format!("ktstr_test '{VARIANT}' [topo=tiny-1llc 1n1l2c1t] failed:")), "{t}");
    assert!(t.contains("failing on purpose on 2 CPUs"), "the guest ran on the preset's topology:\n{t}");
    assert!(t.contains("1 test run: 0 passed, 1 failed"), "only the variant ran, not its base test:\n{t}");
    assert!(t.contains(&format!("\n  FAILED {VARIANT} [eevdf 1n1l2c1t]\n")), "{t}");
    assert!(t.contains(&format!("replay cargo ktstr replay --filter {VARIANT} --exec")), "{t}");

    let again = run(&out, ktstr, &["ktstr", "replay", "--exec"]);
    assert!(!again.status.success(), "the rerun fails the same way");
    let t = text(&again);
    assert!(t.contains(&format!("test(={VARIANT})")), "{t}");
    assert!(t.contains("failing on purpose on 2 CPUs"), "{t}");
    let _ = std::fs::remove_dir_all(&out);
}
