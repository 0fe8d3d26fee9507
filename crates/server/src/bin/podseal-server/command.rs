//! The server command: load the configuration, start the server, say once what
//! a first start created, and stop cleanly on Ctrl-C or SIGTERM.

use podseal_command::out;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use podseal_server::config::{ServerConfig, UnknownVariable};
use podseal_server::startup::{Running, ServeError, start, start_postgres};
use podseal_server::storage::Storage;

use crate::ServeArgs;
use podseal_command::CliError;

fn config_error(error: impl std::fmt::Display) -> CliError {
    CliError::usage(error.to_string())
        .hint("`podseal-server --print-config` shows the effective configuration; `podseal-server --help` lists the variables")
}

/// How a start or stop failure is shown.
fn serve_error(error: ServeError) -> CliError {
    match error {
        ServeError::Config(e) => config_error(e),
        ServeError::NoOrgKey => CliError::usage(error.to_string()),
        ServeError::OrgKey(e) => e.into(),
        other => CliError::failure(other.to_string()),
    }
}

/// A line on stderr; a closed stderr is not worth a panic.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Shows the new admin token exactly once: in `file` (a new 0600 file); or,
/// when stdout is not a terminal (a log), in `STATE_DIR/admin.token`; else
/// on stdout. If the file cannot be written the token is printed, so the
/// only copy is never lost.
fn show_token(token: &str, file: Option<&Path>, state_dir: &Path) {
    use std::io::IsTerminal as _;
    let default_file = state_dir.join("admin.token");
    let file = match file {
        Some(path) => Some(path),
        None if !std::io::stdout().is_terminal() => Some(default_file.as_path()),
        None => None,
    };
    if let Some(path) = file {
        match write_token(path, token) {
            Ok(()) => {
                say(&format!(
                    "admin token written to {} (shown once: only its hash is stored)",
                    path.display()
                ));
                return;
            }
            Err(error) => error.print(),
        }
    }
    say("admin token (shown once: only its hash is stored; save it now):");
    let _ = writeln!(std::io::stdout(), "{token}");
}

/// Writes the admin token to a new 0600 file.
fn write_token(path: &Path, token: &str) -> Result<(), CliError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            CliError::failure(format!(
                "cannot create the admin token file {}: {e}",
                path.display()
            ))
        })?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))
}

/// `PODSEAL_*` variables that other podseal commands read (admin
/// commands, `podseal-exec` and the SDK, the benchmark, the tests): an
/// operator's shell or a pod's environment may hold them, so `serve`
/// does not warn about them.
fn read_elsewhere() -> Vec<&'static str> {
    podseal_sdk::client::ENV_VARS
        .iter()
        .map(|(name, _)| *name)
        .chain([
            "PODSEAL_ADMIN_TOKEN_FILE",
            "PODSEAL_BAO",
            "PODSEAL_BENCH_POSTGRES_URL",
            "PODSEAL_TESTDATA",
            "PODSEAL_TEST_POSTGRES_URL",
        ])
        .collect()
}

/// `PODSEAL_*` variables in this process's environment that nothing reads
/// (by name only: values are never looked at).
fn unknown_variables() -> Vec<UnknownVariable> {
    let names = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned());
    podseal_server::config::unknown_variables(names, &read_elsewhere())
}

/// Runs `podseal-server`.
pub fn run(args: &ServeArgs) -> Result<(), CliError> {
    // Said before the configuration is loaded, so that a misspelt override
    // is named even when the start then fails for want of it.
    let unknown = unknown_variables();
    for variable in &unknown {
        say(&format!("warning: {variable}"));
    }
    let config = ServerConfig::load(args.config.as_deref(), |name| std::env::var(name).ok())
        .map_err(config_error)?;
    if args.print_config {
        out!("{}", config.to_toml())?;
        return Ok(());
    }
    let level = config
        .log_level
        .parse::<tracing::Level>()
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    for variable in &unknown {
        tracing::warn!(
            variable = %variable.name,
            nearest = variable.nearest.unwrap_or("none"),
            "{variable}"
        );
    }
    podseal_command::runtime()?.block_on(async move {
        // Handlers first: a SIGTERM that arrives while starting still stops cleanly.
        let stop = shutdown_signal()?;
        let token_file = args.admin_token_file.as_deref();
        if config.storage.engine == "postgres" {
            serve_until(
                start_postgres(config.clone()).await.map_err(serve_error)?,
                &config,
                token_file,
                stop,
            )
            .await
        } else {
            serve_until(
                start(config.clone()).await.map_err(serve_error)?,
                &config,
                token_file,
                stop,
            )
            .await
        }
    })
}

/// Announces a started server, shows a new admin token once, and serves until `stop`.
async fn serve_until<S: Storage>(
    running: Running<S>,
    config: &ServerConfig,
    token_file: Option<&Path>,
    stop: impl Future<Output = ()>,
) -> Result<(), CliError> {
    say(&format!(
        "podseal release server listening on {} (external URL {}, storage {})",
        running.addr, config.external_url, config.storage.engine
    ));
    match &running.dev_cert_file {
        Some(path) => say(&format!(
            "TLS: DEVELOPMENT certificate, SHA-256 fingerprint {}\n     clients trust it with --ca {}",
            running.tls_fingerprint,
            path.display()
        )),
        None => say(&format!(
            "TLS: certificate SHA-256 fingerprint {}",
            running.tls_fingerprint
        )),
    }
    say(&format!(
        "audit public key (for `podseal audit verify`): {}",
        running.audit_public_key_file.display()
    ));
    for (cluster, why) in &running.cluster_errors {
        say(&format!(
            "warning: cluster {cluster} is not connected, its releases are refused: {why}"
        ));
    }
    if let Some(token) = &running.admin_token {
        show_token(token, token_file, &config.state_dir);
    }
    stop.await;
    say("shutting down: signing a final audit checkpoint");
    running.shutdown().await.map_err(serve_error)?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM; the handlers are installed when this returns.
fn shutdown_signal() -> Result<impl Future<Output = ()>, CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::failure(format!("cannot handle SIGTERM: {e}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::failure(format!("cannot handle SIGINT: {e}")))?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
