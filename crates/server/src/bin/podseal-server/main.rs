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
start, and clients trust it with --ca STATE_DIR/tls-dev.crt.",
    after_help = "\
Environment overrides: PODSEAL_LISTEN, PODSEAL_EXTERNAL_URL, PODSEAL_STATE_DIR, PODSEAL_ORG_KEY_FILES
(comma-separated), PODSEAL_LOG_LEVEL, PODSEAL_TLS_CERT_FILE, PODSEAL_TLS_KEY_FILE,
PODSEAL_RELEASE_MAX_SESSION_SECS, PODSEAL_RELEASE_DPOP_MAX_AGE_SECS, PODSEAL_RELEASE_DPOP_MAX_SKEW_SECS,
PODSEAL_RELEASE_NONCE_LIFETIME_SECS, PODSEAL_RELEASE_TOKEN_LEEWAY_SECS,
PODSEAL_AUDIT_CHECKPOINT_INTERVAL_SECS, PODSEAL_AUDIT_ORIGIN, PODSEAL_AUDIT_KEY_FILE,
PODSEAL_CLUSTERS_MAX_STALENESS_SECS, PODSEAL_CLUSTERS_REFRESH_SECS, PODSEAL_STORAGE_ENGINE,
PODSEAL_STORAGE_PATH, PODSEAL_STORAGE_URL_FILE. Any other PODSEAL_* variable (other than those the
client commands read) is ignored with a warning naming the nearest known one.

Examples:
  podseal-server --print-config > podseal.toml
  PODSEAL_ORG_KEY_FILES=./keys/org.key podseal-server --config podseal.toml --admin-token-file ./admin.token"
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

fn main() -> ExitCode {
    let args: ServeArgs = podseal_command::arguments::parse();
    match command::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error.print();
            ExitCode::from(error.exit_code())
        }
    }
}
