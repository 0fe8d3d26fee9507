//! One module per subcommand; `run` dispatches.

mod admin;
mod audit;
mod bench;
mod demo;
mod dev_cluster;
mod exec;
mod inspect;
mod keys;
mod open;
mod seal;
mod serve;

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
            since,
            export,
        }) => audit::verify(&key, expected_size, since.as_deref(), &export, output),
        Command::Audit(AuditCommand::Checkpoint { key, out, export }) => {
            audit::checkpoint(&key, out.as_deref(), &export)
        }
        Command::Audit(AuditCommand::Prove { key, seq, export }) => {
            audit::prove(&key, seq, &export, output)
        }
        Command::Audit(AuditCommand::VerifyProof { key, proof }) => {
            audit::verify_proof(&key, &proof, output)
        }
        Command::Audit(AuditCommand::PublicKey { key, origin }) => {
            audit::public_key(&key, &origin, output)
        }
        Command::Audit(AuditCommand::Export { connection, out }) => {
            admin::audit_export(&connection, out.as_deref())
        }
        Command::Serve(args) => serve::run(&args),
        Command::Exec(args) => exec::run(&args),
        Command::Demo => demo::run(output),
        Command::Cluster(command) => admin::cluster(command, output),
        Command::ApiKey(command) => admin::api_key(command, output),
        Command::Policy(command) => admin::policy(command, output),
        Command::Bench(args) => bench::run(&args, output),
    }
}

/// A multi-threaded Tokio runtime for the commands that talk over the network.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
}
