//! What can go wrong starting and running a deployment (shared by the
//! deployment and the child processes it starts), and how an error is
//! shown with the errors beneath it ([`chain`]).

use std::path::PathBuf;

/// An error and every error beneath it (its [`source`] chain), joined by
/// `: `, as a person reads it: `cannot start podseal-server: No such file
/// or directory (os error 2)`. An error returns its source or prints it,
/// never both, so nothing is said twice.
///
/// [`source`]: std::error::Error::source
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

/// Why the deployment could not start or stopped working.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// A child process could not be started.
    #[error("cannot start {what}")]
    Spawn {
        /// Which process.
        what: String,
        /// Why.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_says_each_error_once_from_the_outermost() {
        let error = DeploymentError::Spawn {
            what: "podseal-server".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(error.to_string(), "cannot start podseal-server");
        assert_eq!(chain(&error), "cannot start podseal-server: no such file");
        let alone = DeploymentError::Timeout("the view did not list the pod".into());
        assert_eq!(chain(&alone), "the view did not list the pod");
    }
}
