//! How the CLI reports failure: one `error:` line, an optional `hint:` line,
//! and an exit code scripts can rely on.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the operation was tried and failed: refused, did not open, did not verify, could not write its output |
//! | 2 | usage or input: bad flags, and any input named on the command line (or stdin) that is missing, a directory, unreadable, too large or malformed |
//! | 141 | stdout was closed before everything was written (`podseal … \| head -1`): nothing is printed on stderr, as for a Unix tool ended by SIGPIPE (128 + 13) |

use podseal_core::capsule::CapsuleError;
use podseal_core::envelope::{OpenError, SealError};
use podseal_keys::key_file::KeyFileError;

/// Exit code for a refused or failed operation.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for usage errors and invalid input (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when stdout was closed early: what a shell shows for a Unix
/// tool ended by SIGPIPE (128 + 13), so `set -o pipefail` scripts see the
/// same status from podseal as from `cat`.
pub const EXIT_CLOSED_PIPE: u8 = 141;

/// A failure ready to show to the person at the terminal. Messages never
/// contain secret bytes: they are built from typed errors that carry none.
#[derive(Debug)]
pub struct CliError {
    message: String,
    hint: Option<String>,
    code: u8,
}

impl CliError {
    /// Invalid input or usage.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            code: EXIT_USAGE,
        }
    }

    /// The operation failed or was refused.
    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            code: EXIT_FAILURE,
        }
    }

    /// Stdout was closed before everything was written (the reader of a
    /// pipe went away, as `head -1` does). Reported by exit code alone.
    pub fn closed_stdout() -> Self {
        Self {
            message: String::from("stdout was closed"),
            hint: None,
            code: EXIT_CLOSED_PIPE,
        }
    }

    /// A failed write to stdout: a closed pipe ends the command quietly
    /// ([`CliError::closed_stdout`]); any other failure is reported.
    pub fn from_stdout(error: &std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Self::closed_stdout()
        } else {
            Self::failure(format!("cannot write to stdout: {error}"))
        }
    }

    /// Adds a hint line.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        self.code
    }

    /// An error with this exit code, message and optional hint (for the
    /// conversions each binary writes for its own error types).
    pub fn with_code(code: u8, message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            message: message.into(),
            hint,
            code,
        }
    }

    /// The `error:` line's text (for tests of the wording).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `hint:` line's text (for tests of the wording).
    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Writes the error (and hint) to stderr, except for a closed stdout,
    /// which like any Unix tool's ends silently.
    pub fn print(&self) {
        if self.code == EXIT_CLOSED_PIPE {
            return;
        }
        eprintln!("error: {}", self.message);
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
    }

    /// What every binary's `main` does with a failed command: print it (see
    /// [`CliError::print`]) and exit with its code.
    pub fn report(&self) -> std::process::ExitCode {
        self.print();
        std::process::ExitCode::from(self.code)
    }
}

impl From<KeyFileError> for CliError {
    fn from(error: KeyFileError) -> Self {
        let code = match error {
            KeyFileError::Read { .. } | KeyFileError::Write { .. } => EXIT_FAILURE,
            _ => EXIT_USAGE,
        };
        Self {
            hint: error.hint(),
            message: error.to_string(),
            code,
        }
    }
}

impl From<CapsuleError> for CliError {
    fn from(error: CapsuleError) -> Self {
        Self::usage(error.to_string())
    }
}

impl From<SealError> for CliError {
    fn from(error: SealError) -> Self {
        match error {
            SealError::TooLarge { .. } | SealError::Recipients | SealError::Header(_) => {
                Self::usage(error.to_string())
            }
            SealError::Crypto(_) => Self::failure(error.to_string()),
        }
    }
}

impl From<OpenError> for CliError {
    fn from(error: OpenError) -> Self {
        let hint = match &error {
            OpenError::NoMatchingKey { .. } => {
                Some("pass the org private key the capsule was sealed to (`--key`)")
            }
            OpenError::NoKnownStanzaKind { .. } => {
                Some("open it with the podseal version that wrapped it")
            }
            OpenError::DidNotOpen => {
                Some("the capsule was altered, or its wrap does not belong to this key")
            }
            _ => None,
        };
        let failure = Self::failure(error.to_string());
        match hint {
            Some(hint) => failure.hint(hint),
            None => failure,
        }
    }
}
