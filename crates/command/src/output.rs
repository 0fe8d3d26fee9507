//! Output format selection (`-o text|json`) and JSON printing.

use clap::ValueEnum;
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
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::failure(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Prints `value` as JSON, or runs `text` to print it for people.
pub fn emit<T: Serialize>(
    output: OutputFormat,
    value: &T,
    text: impl FnOnce(&T),
) -> Result<(), CliError> {
    match output {
        OutputFormat::Json => print_json(value),
        OutputFormat::Text => {
            text(value);
            Ok(())
        }
    }
}
