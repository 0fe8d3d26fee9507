//! Output format selection (`-o text|json|yaml`) and printing data for
//! scripts: one JSON or YAML document on stdout, the same fields either way.

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

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::failure(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Prints `value` as YAML on stdout.
pub fn print_yaml<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_saphyr::to_string(value)
        .map_err(|e| CliError::failure(format!("cannot encode YAML: {e}")))?;
    print!("{text}");
    Ok(())
}

/// Prints `value` as the document `output` asks for: YAML for `-o yaml`,
/// JSON otherwise.
pub fn print_data<T: Serialize>(output: OutputFormat, value: &T) -> Result<(), CliError> {
    match output {
        OutputFormat::Yaml => print_yaml(value),
        OutputFormat::Json | OutputFormat::Text => print_json(value),
    }
}

/// Prints `value` as JSON or YAML, or runs `text` to print it for people.
pub fn emit<T: Serialize>(
    output: OutputFormat,
    value: &T,
    text: impl FnOnce(&T),
) -> Result<(), CliError> {
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, value),
        OutputFormat::Text => {
            text(value);
            Ok(())
        }
    }
}
