//! `cargo xtask <subcommand>`: entry point that dispatches to the chores in the `xtask` library.

use std::process::ExitCode;

use xtask::{ci, tidy, workspace_root};

const USAGE: &str = "\
usage: cargo xtask <subcommand>

subcommands:
  tidy    check crate layering against the allowed-edges table in ARCHITECTURE.md
  ci      run what .ci/run runs (fmt check, clippy, tidy, tests), stopping at the first failure
  help    print this message
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["tidy"] => tidy::tidy(&workspace_root()).map(|s| ci::print_tidy_summary(&s)),
        ["ci"] => ci::run_ci(&workspace_root()),
        ["help" | "-h" | "--help"] => {
            print!("{USAGE}");
            Ok(())
        }
        // Later: ["plot", ..], ["bench", ..], ["clean-checkpoints", ..].
        [] => return usage_error("missing subcommand"),
        [cmd @ ("tidy" | "ci" | "help"), extra, ..] => {
            return usage_error(&format!("`{cmd}` takes no arguments (got `{extra}`)"));
        }
        [other, ..] => return usage_error(&format!("unknown subcommand `{other}`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}\n\n{USAGE}");
    ExitCode::from(2)
}
