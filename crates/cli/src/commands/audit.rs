//! `podseal audit verify`: the offline check of an audit export.

use std::io::Read as _;
use std::path::Path;

use podseal_core::audit::{parse_public_key, verify_export};

use crate::error::CliError;
use crate::output::{OutputFormat, print_json};

/// The largest export read (a few million records).
const MAX_EXPORT_LEN: u64 = 2 << 30;

/// Verifies `export` against the public key in `key_file`.
pub fn verify(
    key_file: &Path,
    expected_size: Option<u64>,
    export: &str,
    output: OutputFormat,
) -> Result<(), CliError> {
    let key_text = std::fs::read_to_string(key_file).map_err(|e| {
        CliError::usage(format!(
            "cannot read audit public key {}: {e}",
            key_file.display()
        ))
    })?;
    let public_key = parse_public_key(&key_text).ok_or_else(|| {
        CliError::usage(format!("{} is not an audit public key", key_file.display()))
            .hint("the server writes it next to its audit key as audit.pub (podseal-audit-public-key:v1:…)")
    })?;
    let mut text = String::new();
    let read = if export == "-" {
        std::io::stdin()
            .take(MAX_EXPORT_LEN)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(export).and_then(|f| f.take(MAX_EXPORT_LEN).read_to_string(&mut text))
    };
    read.map_err(|e| CliError::usage(format!("cannot read the export {export}: {e}")))?;
    let report = verify_export(&text, &public_key, expected_size)
        .map_err(|e| CliError::failure(format!("audit log does NOT verify: {e}")))?;
    match output {
        OutputFormat::Json => print_json(&report),
        OutputFormat::Text => {
            println!(
                "audit log verifies: {} records, {} checkpoints, head {}",
                report.records, report.checkpoints, report.head
            );
            Ok(())
        }
    }
}
