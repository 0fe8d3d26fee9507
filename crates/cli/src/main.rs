//! The `podseal` command. `main` only parses, runs and maps the outcome to an
//! exit code; each subcommand lives in `podseal_cli::commands`.

use std::process::ExitCode;

fn main() -> ExitCode {
    podseal_command::panic_report::install();
    let cli: podseal_cli::cli::Cli = podseal_command::arguments::parse();
    match podseal_cli::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}
