//! The release server, `podseal-server`. `main` only parses, runs and maps
//! the outcome to an exit code; [`command`] loads the configuration, starts
//! the server (`podseal_server::startup`) and stops it cleanly.

mod command;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// `podseal-server`
#[derive(Debug, Parser)]
#[command(
    name = "podseal-server",
    version = podseal_command::VERSION,
    max_term_width = 100,
    long_about = "\
Run the release server until interrupted (Ctrl-C or SIGTERM; a final audit checkpoint is signed).

Configuration comes from --config (TOML; every key has a default), then from PODSEAL_* environment
variables, which win. On the first start with a new state directory the server creates its store,
its audit key (STATE_DIR/audit.key, with audit.pub beside it) and the admin token, which is shown
exactly once (or written to --admin-token-file) and stored only as a hash. Without tls.cert_file and
tls.key_file a development certificate is generated once and kept (STATE_DIR/tls-dev.crt, its key in
tls-dev.key, 0600) while it names the external host; its SHA-256 fingerprint is printed at each
start, and clients trust it with --ca STATE_DIR/tls-dev.crt."
)]
pub(crate) struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Print the effective configuration (file + environment + defaults) as TOML and exit.
    #[arg(long)]
    pub(crate) print_config: bool,
    /// On the first start, write the new admin token to this new file (mode 0600) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub(crate) admin_token_file: Option<PathBuf>,
}

/// The variables and examples after `--help`, from the configuration's own
/// table of overrides, so that the list cannot miss one.
fn after_help() -> String {
    let mut lines = vec![String::from(
        "Environment overrides (each sets the key of the same name in --print-config):",
    )];
    let mut line = String::new();
    for name in podseal_server::config::env_override_names() {
        if !line.is_empty() && line.len() + name.len() > 96 {
            lines.push(std::mem::take(&mut line));
        }
        line.push_str("  ");
        line.push_str(name);
    }
    lines.push(line);
    lines.push(String::from(
        "PODSEAL_ORG_KEY_FILES is comma-separated. Any other PODSEAL_* variable (other than those the\n\
         client commands read) is ignored with a warning naming the nearest known one.\n\n\
         Examples:\n  podseal-server --print-config > podseal.toml\n  \
         PODSEAL_ORG_KEY_FILES=./keys/org.key podseal-server --config podseal.toml \\\n      \
         --admin-token-file ./admin.token",
    ));
    lines.join("\n")
}

fn main() -> ExitCode {
    podseal_command::panic_report::install();
    use clap::CommandFactory as _;
    let args: ServeArgs =
        podseal_command::arguments::parse_command(ServeArgs::command().after_help(after_help()));
    match command::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}
