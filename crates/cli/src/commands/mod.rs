//! One module per subcommand; `run` dispatches.

mod admin;
mod audit;
mod inspect;
mod keys;
mod open;
mod seal;

use podseal_command::CliError;

use crate::cli::{AuditCommand, Cli, Command, KeysCommand};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let output = cli.output.output;
    match cli.command {
        Command::Keys(KeysCommand::Init { out, algorithm }) => keys::init(&out, algorithm, output),
        Command::Keys(KeysCommand::Show { key }) => keys::show(&key, output),
        Command::Seal(args) => seal::run(&args, output),
        Command::Inspect(args) => inspect::run(&args, output),
        Command::Open(args) => open::run(&args, output),
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
        Command::Audit(AuditCommand::PublicKey {
            key,
            origin,
            export,
        }) => audit::public_key(&key, origin.as_deref(), export.as_deref(), output),
        Command::Audit(AuditCommand::Export { connection, out }) => {
            admin::audit_export(&connection, out.as_deref())
        }
        Command::Cluster(command) => admin::cluster(command, output),
        Command::ApiKey(command) => admin::api_key(command, output),
        Command::Policy(command) => admin::policy(command, output),
        Command::Completion { shell } => {
            use clap::CommandFactory as _;
            // Generated whole, then written: clap_complete panics on a
            // failed write, and a closed pipe must end quietly.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "podseal", &mut script);
            podseal_command::output::print_bytes(&script)
        }
    }
}
