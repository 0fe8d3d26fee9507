//! One module per subcommand; `run` dispatches.

mod audit;
mod dev_cluster;
mod inspect;
mod keys;
mod open;
mod seal;

use crate::cli::{AuditCommand, Cli, Command, KeysCommand};
use crate::error::CliError;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let output = cli.output;
    match cli.command {
        Command::Keys(KeysCommand::Init { out, algorithm }) => keys::init(&out, algorithm, output),
        Command::Keys(KeysCommand::Show { key }) => keys::show(&key, output),
        Command::Seal(args) => seal::run(&args, output),
        Command::Inspect(args) => inspect::run(&args, output),
        Command::Open(args) => open::run(&args),
        Command::DevCluster(command) => dev_cluster::run(command, output),
        Command::Audit(AuditCommand::Verify {
            key,
            expected_size,
            export,
        }) => audit::verify(&key, expected_size, &export, output),
    }
}
