//! The `podseal` command. `main` only parses, runs and maps the outcome to an
//! exit code; each subcommand lives in `commands/`.

mod cli;
mod commands;
mod error;
mod input;
mod manifest;
mod output;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error.print();
            ExitCode::from(error.exit_code())
        }
    }
}
