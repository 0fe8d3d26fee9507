//! What every podseal binary shares at the terminal, so the operator CLI
//! (`podseal`), the release server (`podseal-server`), the pod-side
//! `podseal-exec` and `podseal-dev` behave the same way: one `error:` line,
//! at most one `hint:` line, and the same exit codes ([`error`], also for
//! argument errors: [`arguments`]); the same
//! `-o` formats ([`output`]); the same rules for reading capsules and
//! secrets from files or stdin ([`input`]); the same report of a panic,
//! which never prints a message formatted at run time ([`panic_report`]).
#![deny(missing_docs)]

pub mod arguments;
pub mod error;
pub mod input;
pub mod output;
pub mod panic_report;

pub use error::CliError;

/// What every binary's `--version` prints: the release and the commit it
/// was built from (`unknown` outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PODSEAL_COMMIT"),
    ")"
);

/// A multi-threaded Tokio runtime for the commands that talk over the network.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
}
