//! `ktstr-setup`: installs the Debian packages ktstr needs. The same
//! command as `cargo ktstr setup`, built before anything else on a fresh
//! machine (see scripts/setup).

use clap::Parser;

/// Install the Debian packages ktstr needs on this host (QEMU 10, clang-19, libelf, ...)
#[derive(Parser)]
#[command(name = "ktstr-setup", version)]
struct Cli {
    #[command(flatten)]
    args: ktstr_setup::SetupArgs,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = ktstr_setup::run(cli.args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
