//! One module per subcommand; `run` dispatches.

mod bench;
mod cluster;
mod demo;

use podseal_command::CliError;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let output = cli.output.output;
    match cli.command {
        Command::Demo => demo::run(output),
        Command::Cluster(command) => cluster::run(command, output),
        Command::Bench(args) => bench::run(&args, output),
    }
}
