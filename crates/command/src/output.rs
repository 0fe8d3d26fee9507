//! Output format selection (`-o text|json|yaml`) and printing data for
//! scripts: one JSON or YAML document on stdout, the same fields either way.
//!
//! Everything a command prints on stdout goes through [`print_fmt`] (the
//! [`outln!`](crate::outln) and [`out!`](crate::out) macros): a write that
//! fails returns an error instead of panicking as `println!` does, and a
//! closed pipe (`podseal … | head -1`) ends the command quietly with exit
//! 141 ([`CliError::closed_stdout`]).

use std::io::Write as _;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::error::CliError;

/// How data is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// For people.
    #[default]
    Text,
    /// For scripts: one JSON document on stdout.
    Json,
    /// For people and scripts: the same document as YAML.
    Yaml,
}

/// The `-o` flag every podseal command that prints data takes (flattened
/// into each binary's top-level arguments, global to its subcommands).
#[derive(Debug, Clone, Copy, Args)]
pub struct OutputArgs {
    /// Output format for commands that print data.
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        global = true,
        default_value_t
    )]
    pub output: OutputFormat,
}

/// Writes formatted text to stdout and flushes it, so that a failure shows
/// here and not at exit. Use [`outln!`](crate::outln) and
/// [`out!`](crate::out), which call it.
pub fn print_fmt(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_fmt(args)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::from_stdout(&e))
}

/// Writes bytes to stdout and flushes them (a capsule, an opened secret, a
/// completion script).
pub fn print_bytes(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::from_stdout(&e))
}

/// `println!` for commands: prints a line on stdout and returns
/// `Result<(), CliError>`, which a closed pipe makes
/// [`CliError::closed_stdout`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::print_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::print_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for commands: see [`outln!`](crate::outln).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::print_fmt(format_args!($($arg)*))
    };
}

/// `n` with the noun that agrees with it: "1 record", "2 records",
/// "0 records".
pub fn counted(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Prints `value` as the document `output` asks for: YAML for `-o yaml`,
/// JSON otherwise ([`document`]).
pub fn print_data<T: Serialize>(output: OutputFormat, value: &T) -> Result<(), CliError> {
    crate::out!("{}", document(output, value)?)
}

/// Prints `value` as JSON or YAML, or runs `text` to print it for people.
pub fn emit<T: Serialize>(
    output: OutputFormat,
    value: &T,
    text: impl FnOnce(&T) -> Result<(), CliError>,
) -> Result<(), CliError> {
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, value),
        OutputFormat::Text => text(value),
    }
}

/// `value` as the document `output` asks for (YAML for `-o yaml`, JSON
/// otherwise), ending in a newline: what [`print_data`] prints, for a
/// command that writes it to a file instead.
pub fn document<T: Serialize>(output: OutputFormat, value: &T) -> Result<String, CliError> {
    match output {
        OutputFormat::Yaml => serde_saphyr::to_string(value)
            .map_err(|e| CliError::failure(format!("cannot encode YAML: {e}"))),
        OutputFormat::Json | OutputFormat::Text => serde_json::to_string_pretty(value)
            .map(|text| text + "\n")
            .map_err(|e| CliError::failure(format!("cannot encode JSON: {e}"))),
    }
}

/// Writes a command's whole output to `path` (`--out`), a new file created
/// with `mode` only once the output is complete: a command that fails
/// leaves no file (where a shell's `>` leaves an empty one), and an existing
/// file is never overwritten (exit 1, naming it).
pub fn write_new_file(path: &std::path::Path, contents: &[u8], mode: u32) -> Result<(), CliError> {
    podseal_keys::key_file::write_new(path, contents, mode).map_err(|e| match e {
        podseal_keys::key_file::KeyFileError::Exists { .. } => out_exists(path),
        other => CliError::failure(other.to_string()),
    })
}

/// The refusal of an `--out` file that exists already (exit 1, naming it),
/// for a command that checks before it makes what it would write.
pub fn out_exists(path: &std::path::Path) -> CliError {
    CliError::failure(format!(
        "{} already exists: --out never overwrites a file",
        path.display()
    ))
    .hint("remove it first, or name another file")
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn a_count_agrees_with_its_noun() {
        assert_eq!(counted(0, "API key", "API keys"), "0 API keys");
        assert_eq!(counted(1, "API key", "API keys"), "1 API key");
        assert_eq!(counted(2, "policy", "policies"), "2 policies");
    }
}
