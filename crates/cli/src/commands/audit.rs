//! `podseal audit verify|checkpoint|prove|verify-proof|public-key`: the
//! offline checks of an audit export and of the proofs made from it. They
//! read files (or stdin) and the audit public key only; an export comes
//! from `podseal audit export` (the admin API), so against a running
//! server they are a pipe away.
//!
//! Exit codes: 0 verified, 1 verification failed (the message names what
//! failed), 2 usage (a file or key that cannot be read).

use podseal_command::{out, outln};
use std::io::Read as _;
use std::path::Path;

use podseal_core::audit::{
    InclusionProof, LogOrigin, TrustedKey, VerifiedLog, key_id, parse_public_key,
    verifier_key_text, verify_log,
};
use serde::Serialize;

use podseal_command::CliError;
use podseal_command::output::{OutputFormat, counted, emit, print_data};

/// The largest export read (a few million records).
const MAX_EXPORT_LEN: u64 = 2 << 30;
/// The largest proof or checkpoint file read.
const MAX_SMALL_LEN: u64 = 1 << 20;

/// Reads a file, or stdin for `-`, up to `limit` bytes.
fn read_input(source: &str, what: &str, limit: u64) -> Result<String, CliError> {
    let mut text = String::new();
    let read = if source == "-" {
        std::io::stdin().take(limit).read_to_string(&mut text)
    } else {
        std::fs::File::open(source).and_then(|f| f.take(limit).read_to_string(&mut text))
    };
    read.map_err(|e| CliError::usage(format!("cannot read {what} {source}: {e}")))?;
    Ok(text)
}

/// Reads the audit public key in either text form.
fn read_key(key_file: &Path) -> Result<TrustedKey, CliError> {
    let text = std::fs::read_to_string(key_file).map_err(|e| {
        CliError::usage(format!(
            "cannot read audit public key {}: {e}",
            key_file.display()
        ))
    })?;
    TrustedKey::parse(&text).ok_or_else(|| {
        CliError::usage(format!("{} is not an audit public key", key_file.display())).hint(
            "the server writes it next to its audit key as audit.pub (podseal-audit-public-key:v1:…); a note verifier key (origin+keyid+key) works too",
        )
    })
}

/// Reads and verifies an export.
fn verified_export(
    key: &TrustedKey,
    export: &str,
    expected_size: Option<u64>,
) -> Result<VerifiedLog, CliError> {
    let text = read_input(export, "the export", MAX_EXPORT_LEN)?;
    verify_log(&text, key, expected_size)
        .map_err(|e| CliError::failure(format!("audit log does NOT verify: {e}")))
}

/// What `audit verify` found.
#[derive(Serialize)]
struct VerifyOutput {
    #[serde(flatten)]
    report: podseal_core::audit::VerifyReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<podseal_core::audit::ConsistencyReport>,
}

/// Verifies `export` against the public key in `key_file`, and, with
/// `since`, its consistency with a checkpoint saved before.
pub fn verify(
    key_file: &Path,
    expected_size: Option<u64>,
    since: Option<&Path>,
    export: &str,
    output: OutputFormat,
) -> Result<(), CliError> {
    let key = read_key(key_file)?;
    let saved = since
        .map(|path| {
            read_input(
                &path.display().to_string(),
                "the saved checkpoint",
                MAX_SMALL_LEN,
            )
        })
        .transpose()?;
    let log = verified_export(&key, export, expected_size)?;
    let since = saved
        .map(|note| {
            log.consistency_since(&note).map_err(|e| {
                CliError::failure(format!(
                    "audit log does NOT extend the saved checkpoint: {e}"
                ))
            })
        })
        .transpose()?;
    let result = VerifyOutput {
        report: log.report,
        since,
    };
    emit(output, &result, |r| {
        outln!(
            "audit log verifies: {}, {}, root {}",
            counted(r.report.records, "record", "records"),
            counted(r.report.checkpoints, "checkpoint", "checkpoints"),
            r.report.root
        )?;
        if let Some(since) = &r.since {
            outln!(
                "consistent with the saved checkpoint: the log of {} only grew to {} (consistency proof of {} verified)",
                counted(since.old_size, "record", "records"),
                since.new_size,
                counted(since.proof.len() as u64, "hash", "hashes")
            )?;
        }
        Ok(())
    })
}

/// Verifies `export` and writes its newest checkpoint's note.
pub fn checkpoint(key_file: &Path, out: Option<&Path>, export: &str) -> Result<(), CliError> {
    let key = read_key(key_file)?;
    let log = verified_export(&key, export, None)?;
    let note = log
        .latest()
        .ok_or_else(|| CliError::failure("the export has no checkpoint (the log is empty)"))?
        .note();
    match out {
        None => {
            out!("{note}")
        }
        Some(path) => {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .and_then(|mut file| std::io::Write::write_all(&mut file, note.as_bytes()))
                .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
            eprintln!("checkpoint saved to {}", path.display());
            Ok(())
        }
    }
}

/// Prints the inclusion proof of record `seq` of a verified export.
pub fn prove(
    key_file: &Path,
    seq: u64,
    export: &str,
    output: OutputFormat,
) -> Result<(), CliError> {
    let key = read_key(key_file)?;
    let log = verified_export(&key, export, None)?;
    let proof = log
        .inclusion_proof(seq)
        .map_err(|e| CliError::failure(format!("no proof: {e}")))?;
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, &proof),
        OutputFormat::Text => {
            outln!("record {} (leaf index {}):", proof.seq, proof.leaf_index)?;
            outln!("  {}", proof.entry)?;
            outln!(
                "tree size {}, audit path ({} hashes, nearest sibling first):",
                proof.tree_size,
                proof.proof.len()
            )?;
            for hash in &proof.proof {
                outln!("  {hash}")?;
            }
            outln!("signed checkpoint:")?;
            for line in proof.checkpoint.lines() {
                outln!("  {line}")?;
            }
            outln!("(-o json writes the proof file `podseal audit verify-proof` checks)")
        }
    }
}

/// Checks an inclusion proof file.
pub fn verify_proof(key_file: &Path, proof: &str, output: OutputFormat) -> Result<(), CliError> {
    let key = read_key(key_file)?;
    let text = read_input(proof, "the proof", MAX_SMALL_LEN)?;
    let proof: InclusionProof = serde_json::from_str(&text).map_err(|e| {
        CliError::failure(format!("the proof is not an inclusion proof file: {e}"))
            .hint("make one with `podseal audit prove --seq N -o json`")
    })?;
    let record = proof
        .verify(&key)
        .map_err(|e| CliError::failure(format!("inclusion proof does NOT verify: {e}")))?;
    emit(output, &record, |record| {
        outln!(
            "inclusion proof verifies: record {} ({}, {}) is in the log of {}",
            record.seq,
            record.event,
            record.outcome,
            counted(proof.tree_size, "record", "records")
        )
    })
}

/// The note verifier key, for `-o json`.
#[derive(Serialize)]
struct PublicKeyOutput {
    origin: String,
    key_id: String,
    verifier_key: String,
}

/// Prints the note verifier key for the public key in `key_file`, for the
/// origin of `export` (verified with that key) or the `origin` given.
pub fn public_key(
    key_file: &Path,
    origin: Option<&str>,
    export: Option<&str>,
    output: OutputFormat,
) -> Result<(), CliError> {
    let text = std::fs::read_to_string(key_file).map_err(|e| {
        CliError::usage(format!(
            "cannot read audit public key {}: {e}",
            key_file.display()
        ))
    })?;
    let public_key = parse_public_key(&text).ok_or_else(|| {
        CliError::usage(format!("{} is not an audit public key", key_file.display()))
            .hint("the server writes it next to its audit key as audit.pub (podseal-audit-public-key:v1:…)")
    })?;
    let origin = match (origin, export) {
        (_, Some(export)) => {
            let key = TrustedKey {
                public_key,
                origin: None,
            };
            let log = verified_export(&key, export, None)?;
            log.latest()
                .ok_or_else(|| {
                    CliError::failure("the export has no checkpoint (the log is empty)")
                })?
                .origin()
                .clone()
        }
        (Some(origin), None) => {
            LogOrigin::new(origin).map_err(|e| CliError::usage(e.to_string()))?
        }
        (None, None) => {
            return Err(CliError::usage(
                "give the log's export, or its origin with --origin",
            ));
        }
    };
    let result = PublicKeyOutput {
        origin: origin.to_string(),
        key_id: key_id(&origin, &public_key)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        verifier_key: verifier_key_text(&origin, &public_key),
    };
    emit(output, &result, |r| outln!("{}", r.verifier_key))
}
