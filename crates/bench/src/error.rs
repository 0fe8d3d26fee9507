//! What can go wrong starting and running a deployment (shared by the
//! deployment and the child processes it starts).

use std::path::PathBuf;

/// Why the deployment could not start or stopped working.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// A child process could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// Which process.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A child did not print what it prints when ready, in time.
    #[error("{what} did not print {needle:?} within {secs} s{log}")]
    NotReady {
        /// Which process.
        what: String,
        /// The line awaited.
        needle: String,
        /// The deadline.
        secs: u64,
        /// Its last log lines.
        log: String,
    },
    /// A child exited.
    #[error("{what} exited ({status}){log}")]
    Exited {
        /// Which process.
        what: String,
        /// Its exit status.
        status: String,
        /// Its last log lines.
        log: String,
    },
    /// A file of the deployment could not be written or read.
    #[error("cannot {action} {path}: {reason}")]
    File {
        /// `write` or `read`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Keys or the TLS certificate could not be made.
    #[error("cannot generate {what}: {reason}")]
    Generate {
        /// What.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A setup request was refused or failed.
    #[error("{what} failed: {reason}")]
    Request {
        /// What was asked.
        what: String,
        /// The status and refusal codes, or the transport error.
        reason: String,
    },
    /// A condition was not met in time.
    #[error("{0}")]
    Timeout(String),
    /// PostgreSQL refused or is unreachable (the URL is shown without password).
    #[error("PostgreSQL at {url}: {reason}")]
    Postgres {
        /// The URL, password removed.
        url: String,
        /// Why.
        reason: String,
    },
}
