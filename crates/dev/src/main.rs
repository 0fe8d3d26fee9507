//! The `podseal-dev` command: the demo, the stand-in cluster and the load
//! benchmark. `main` only parses, runs and maps the outcome to an exit code.

mod cli;
mod commands;

use std::process::ExitCode;

fn main() -> ExitCode {
    podseal_command::panic_report::install();
    let cli: cli::Cli = podseal_command::arguments::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}
