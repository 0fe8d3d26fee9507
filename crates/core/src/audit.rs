//! The tamper-evident audit log: records as leaves of an RFC 9162 Merkle
//! tree ([`merkle`]), and checkpoints over it as C2SP signed notes
//! ([`note`]) signed with the server's Ed25519 audit key.
//!
//! - Each record is JSON, and its exact bytes are kept: the tree hashes
//!   bytes, so no canonical form is needed (as with capsule headers).
//!   Record `seq` is leaf `seq − 1`; its leaf hash is
//!   `SHA-256(0x00 ‖ bytes)`.
//! - A checkpoint signs `origin`, `size` (records covered) and the tree's
//!   root over them, in the tlog-checkpoint format, so any transparency-log
//!   tool can check it, and an old checkpoint can be proven to be a prefix
//!   of a newer one (a consistency proof) or to hold one record (an
//!   inclusion proof).
//! - An export is JSON lines: records with their bytes and leaf hash, and
//!   checkpoints. [`verify_export`] detects an edited, removed, inserted or
//!   reordered record, a forged checkpoint, and a cut tail: every record must
//!   be covered by a checkpoint, and the server signs one when exporting.
//!   (Cutting an export exactly after a checkpoint removes signed history
//!   silently; compare `size` with the server's latest checkpoint, pass
//!   `expected_size`, or check the export against a checkpoint saved
//!   before with [`VerifiedLog::consistency_since`] to catch that too.)

pub mod event;
pub mod legacy;
pub mod merkle;
pub mod note;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::reason::{Code, Gate, Reason};

pub use event::{Details, DetailsError, Event};

pub use merkle::{Frontier, Hash, ProofError, leaf_hash};
pub use note::{
    Checkpoint, LogOrigin, NoteError, OriginError, key_id, parse_verifier_key, verifier_key_text,
};

/// How a decision went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Allowed.
    Allowed,
    /// Refused.
    Refused,
    /// Allowed only because the policy is in audit mode; strict mode would refuse.
    AuditModeWouldRefuse,
}

impl Outcome {
    /// The name the log's JSON gives it (`allowed`, `refused`,
    /// `audit_mode_would_refuse`), for text that quotes the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Refused => "refused",
            Self::AuditModeWouldRefuse => "audit_mode_would_refuse",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit record. Values are identifiers and codes, never secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the log, from 1 (leaf `seq − 1` of the tree).
    pub seq: u64,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// What happened: `session`, `unwrap`, `rotate_key`, `admin`, … (see
    /// [`event`]; a code from a newer server reads as [`Code::Unknown`]).
    pub event: Code<Event>,
    /// The decision.
    pub outcome: Outcome,
    /// The gate that decided a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// The stable reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Who and what: cluster, namespace, service account, pod uid, capsule
    /// id, kid, key thumbprint… as flat strings; the struct of each event's
    /// details is in [`event`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl AuditRecord {
    /// A record of `event` with its typed `details`, not yet in the log (`seq` 0).
    pub fn new<T: Details>(
        event: Event,
        outcome: Outcome,
        refusal: Option<(Gate, Reason)>,
        details: &T,
        time_ms: i64,
    ) -> Self {
        Self {
            seq: 0,
            time_ms,
            event: event.into(),
            outcome,
            gate: refusal.map(|(gate, _)| gate),
            reason: refusal.map(|(_, reason)| reason),
            details: event::to_map(details),
        }
    }

    /// The details read as `T` (keys `T` does not name are ignored).
    pub fn details_as<T: Details>(&self) -> Result<T, DetailsError> {
        event::from_map(&self.details)
    }
}

/// The rotation record for handing the log from `old` to `new`
/// ([`Event::AuditKeyRotated`]). Its details name both keys
/// ([`event::KeyRotationDetails`], in [`public_key_text`] form); the first
/// checkpoint covering it is signed by the old key, every later one by the
/// new key. A verifier starting from the first key follows the hand-over;
/// without such a record a change of key is a fork and does not verify.
pub fn key_rotation_record(old: &[u8; 32], new: &[u8; 32], time_ms: i64) -> AuditRecord {
    let details = event::KeyRotationDetails {
        old_public_key: Some(public_key_text(old)),
        new_public_key: Some(public_key_text(new)),
    };
    AuditRecord::new(
        Event::AuditKeyRotated,
        Outcome::Allowed,
        None,
        &details,
        time_ms,
    )
}

/// The server's audit signing key.
pub struct AuditKey {
    key: SigningKey,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey([redacted])")
    }
}

impl AuditKey {
    /// A fresh key.
    pub fn generate() -> Result<Self, crate::RandomnessUnavailable> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        crate::fill_random(seed.as_mut())?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// From its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The one-line private text form. Secret: write it only to a 0600 file.
    pub fn to_text(&self) -> zeroize::Zeroizing<String> {
        let seed = zeroize::Zeroizing::new(self.key.to_bytes());
        let encoded = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(seed.as_slice()));
        zeroize::Zeroizing::new(format!("{PRIVATE_KEY_PREFIX}{}", encoded.as_str()))
    }

    /// Parses the private text form (comment lines with `#` are ignored).
    pub fn from_text(text: &str) -> Option<Self> {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let encoded = lines.next()?.strip_prefix(PRIVATE_KEY_PREFIX)?;
        if lines.next().is_some() {
            return None;
        }
        // The decoded bytes are zeroized too, not only the seed taken from them.
        let decoded = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.decode(encoded).ok()?);
        let seed: zeroize::Zeroizing<[u8; 32]> =
            zeroize::Zeroizing::new(decoded.as_slice().try_into().ok()?);
        Some(Self::from_seed(&seed))
    }

    /// The public key that verifies checkpoints.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs a checkpoint over the first `size` records, whose tree has
    /// root `root`, as a C2SP signed note named `origin`.
    pub fn checkpoint(&self, origin: &LogOrigin, size: u64, root: &Hash) -> Checkpoint {
        Checkpoint::sign(&self.key, origin, size, root)
    }
}

/// Prefix of the audit private key's text form.
const PRIVATE_KEY_PREFIX: &str = "PODSEAL-AUDIT-KEY:V1:";

/// Prefix of the audit public key's text form.
pub const PUBLIC_KEY_PREFIX: &str = "podseal-audit-public-key:v1:";

/// The one-line text form of an audit public key.
pub fn public_key_text(public_key: &[u8; 32]) -> String {
    format!("{PUBLIC_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(public_key))
}

/// Parses an audit public key file (comment lines with `#` are ignored).
pub fn parse_public_key(text: &str) -> Option<[u8; 32]> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let encoded = lines.next()?.strip_prefix(PUBLIC_KEY_PREFIX)?;
    if lines.next().is_some() {
        return None;
    }
    let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(encoded).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok().map(|_| bytes)
}

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    /// A record: its exact JSON bytes (as a string) and its leaf hash.
    Record {
        /// Position.
        seq: u64,
        /// The record's exact JSON text.
        entry: String,
        /// The leaf hash `SHA-256(0x00 ‖ entry)`, base64url.
        hash: String,
    },
    /// A checkpoint: `{"type":"checkpoint","note":"<signed note>"}`.
    Checkpoint(Checkpoint),
}

impl ExportLine {
    /// The export line for a stored record and its stored leaf hash.
    pub fn record(seq: u64, entry: &[u8], leaf: &Hash) -> Self {
        Self::Record {
            seq,
            entry: String::from_utf8_lossy(entry).into_owned(),
            hash: URL_SAFE_NO_PAD.encode(leaf),
        }
    }
}

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records verified.
    pub records: u64,
    /// Checkpoints verified.
    pub checkpoints: u64,
    /// The log's origin, as its checkpoints name it (none for an empty export).
    pub origin: Option<String>,
    /// The tree's root over every record, standard base64 (as checkpoints write it).
    pub root: String,
}

/// Why an export does not verify. Each names the line (1-based) or record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditVerifyError {
    /// A line is not a record or checkpoint.
    #[error(
        "line {line}: not an audit export line (a record, or a checkpoint with a well-formed signed note)"
    )]
    Malformed {
        /// Line number.
        line: usize,
    },
    /// Records out of sequence: one removed, inserted or reordered.
    #[error(
        "line {line}: expected record {expected}, found record {found} (a record was removed, inserted or reordered)"
    )]
    Sequence {
        /// Line number.
        line: usize,
        /// Expected seq.
        expected: u64,
        /// Found seq.
        found: u64,
    },
    /// A record's bytes do not match its leaf hash.
    #[error("line {line}: record {seq} does not match its leaf hash (edited)")]
    Hash {
        /// Line number.
        line: usize,
        /// Record.
        seq: u64,
    },
    /// A record's own seq field disagrees with its line.
    #[error("line {line}: record {seq} is not a valid audit record")]
    Record {
        /// Line number.
        line: usize,
        /// Record.
        seq: u64,
    },
    /// A checkpoint's signature does not verify with the audit public key.
    #[error("line {line}: checkpoint signature does not verify with this audit public key")]
    Signature {
        /// Line number.
        line: usize,
    },
    /// A checkpoint names another log.
    #[error("line {line}: checkpoint of the log {found:?}, not {expected:?}")]
    Origin {
        /// Line number.
        line: usize,
        /// The origin the verifier holds (or the first checkpoint named).
        expected: String,
        /// The one this checkpoint names.
        found: String,
    },
    /// A checkpoint's root is not the tree's root at its size.
    #[error("line {line}: checkpoint over {size} records does not match the records' tree")]
    Root {
        /// Line number.
        line: usize,
        /// Its size.
        size: u64,
    },
    /// A checkpoint covers records that are not in the export.
    #[error("checkpoint covers {size} records but the export has {records} (records were cut)")]
    Truncated {
        /// Checkpoint size.
        size: u64,
        /// Records present.
        records: u64,
    },
    /// No checkpoint at all: an empty file, or not an export. Every export
    /// the server writes ends with a checkpoint it signs, also of an empty
    /// log, so there is nothing here a key vouches for.
    #[error(
        "the export holds no signed checkpoint (an empty file, or not an audit export): nothing verifies"
    )]
    NoCheckpoint,
    /// Records after the last checkpoint: nothing vouches for them.
    #[error(
        "{unsigned} record(s) after the last checkpoint are not covered by any signature (tail cut or appended)"
    )]
    UnsignedTail {
        /// How many.
        unsigned: u64,
    },
    /// The export is shorter than the size the caller expected.
    #[error("export covers {records} records, {expected} were expected")]
    Shorter {
        /// Records.
        records: u64,
        /// Expected.
        expected: u64,
    },
}

/// The key (and, from a note verifier key, the origin) an export or a
/// proof must verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The first audit public key of the log.
    pub public_key: [u8; 32],
    /// The log's origin, when the verifier knows it; otherwise the first
    /// checkpoint's origin is taken and every other must match it.
    pub origin: Option<LogOrigin>,
}

impl TrustedKey {
    /// Reads either text form: `podseal-audit-public-key:v1:…` (the key
    /// alone) or a note verifier key `<origin>+<id>+<key>` (key and origin).
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(public_key) = parse_public_key(text) {
            return Some(Self {
                public_key,
                origin: None,
            });
        }
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next()?;
        if lines.next().is_some() {
            return None;
        }
        parse_verifier_key(line).map(|(origin, public_key)| Self {
            public_key,
            origin: Some(origin),
        })
    }
}

/// An export that verified: its leaves, records and newest checkpoint,
/// from which proofs are made.
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    /// What was verified.
    pub report: VerifyReport,
    leaves: Vec<Hash>,
    entries: Vec<String>,
    /// Every key that signed part of the log, the first one first.
    keys: Vec<[u8; 32]>,
    latest: Option<Checkpoint>,
}

/// Verifies an export (JSON lines) against the audit public key.
pub fn verify_export(
    text: &str,
    public_key: &[u8; 32],
    expected_size: Option<u64>,
) -> Result<VerifyReport, AuditVerifyError> {
    let trusted = TrustedKey {
        public_key: *public_key,
        origin: None,
    };
    verify_log(text, &trusted, expected_size).map(|log| log.report)
}

/// Verifies an export and keeps what proofs are made from.
pub fn verify_log(
    text: &str,
    trusted: &TrustedKey,
    expected_size: Option<u64>,
) -> Result<VerifiedLog, AuditVerifyError> {
    VerifyingKey::from_bytes(&trusted.public_key)
        .map_err(|_| AuditVerifyError::Signature { line: 0 })?;
    let mut key = trusted.public_key;
    let mut keys = vec![key];
    let mut origin = trusted.origin.clone();
    // Rotations seen in records and not yet vouched for by a checkpoint.
    let mut rotations: Vec<Rotation> = Vec::new();
    let mut leaves: Vec<Hash> = Vec::new();
    let mut entries: Vec<String> = Vec::new();
    let mut checkpoints: Vec<(usize, Checkpoint)> = Vec::new();
    for (index, raw) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line = index + 1;
        match serde_json::from_str::<ExportLine>(raw)
            .map_err(|_| AuditVerifyError::Malformed { line })?
        {
            ExportLine::Record { seq, entry, hash } => {
                let expected = leaves.len() as u64 + 1;
                if seq != expected {
                    return Err(AuditVerifyError::Sequence {
                        line,
                        expected,
                        found: seq,
                    });
                }
                if let Some(rotation) = read_record(&entry, seq, line)? {
                    rotations.push(rotation);
                }
                let leaf = leaf_hash(entry.as_bytes());
                if URL_SAFE_NO_PAD.encode(leaf) != hash {
                    return Err(AuditVerifyError::Hash { line, seq });
                }
                leaves.push(leaf);
                entries.push(entry);
            }
            ExportLine::Checkpoint(checkpoint) => {
                match &origin {
                    Some(expected) if expected != checkpoint.origin() => {
                        return Err(AuditVerifyError::Origin {
                            line,
                            expected: expected.to_string(),
                            found: checkpoint.origin().to_string(),
                        });
                    }
                    Some(_) => {}
                    None => origin = Some(checkpoint.origin().clone()),
                }
                if !checkpoint.is_signed_by(&key) {
                    return Err(AuditVerifyError::Signature { line });
                }
                // The first rotation this checkpoint covers, made by the
                // key that signed it, hands the log to the next key.
                if let Some(index) = rotations
                    .iter()
                    .position(|(seq, old, _)| *seq <= checkpoint.size() && *old == key)
                {
                    key = rotations.remove(index).2;
                    keys.push(key);
                }
                checkpoints.push((line, checkpoint));
            }
        }
    }
    if checkpoints.is_empty() {
        return Err(AuditVerifyError::NoCheckpoint);
    }
    let records = leaves.len() as u64;
    let covered = check_roots(&leaves, &checkpoints)?;
    if covered < records {
        return Err(AuditVerifyError::UnsignedTail {
            unsigned: records - covered,
        });
    }
    if let Some(expected) = expected_size.filter(|expected| *expected > records) {
        return Err(AuditVerifyError::Shorter { records, expected });
    }
    let report = VerifyReport {
        records,
        checkpoints: checkpoints.len() as u64,
        origin: origin.map(|o| o.to_string()),
        root: STANDARD.encode(merkle::root(&leaves)),
    };
    let latest = checkpoints
        .into_iter()
        .map(|(_, c)| c)
        .max_by_key(Checkpoint::size);
    Ok(VerifiedLog {
        report,
        leaves,
        entries,
        keys,
        latest,
    })
}

/// A hand-over record: its seq, the old key and the new key.
type Rotation = (u64, [u8; 32], [u8; 32]);

/// Parses a record's entry; a hand-over record yields its [`Rotation`].
fn read_record(entry: &str, seq: u64, line: usize) -> Result<Option<Rotation>, AuditVerifyError> {
    let record: AuditRecord =
        serde_json::from_str(entry).map_err(|_| AuditVerifyError::Record { line, seq })?;
    if record.seq != seq {
        return Err(AuditVerifyError::Record { line, seq });
    }
    if record.event != Event::AuditKeyRotated {
        return Ok(None);
    }
    let details: event::KeyRotationDetails = record
        .details_as()
        .map_err(|_| AuditVerifyError::Record { line, seq })?;
    let named = |text: Option<String>| text.as_deref().and_then(parse_public_key);
    match (named(details.old_public_key), named(details.new_public_key)) {
        (Some(old), Some(new)) => Ok(Some((seq, old, new))),
        _ => Err(AuditVerifyError::Record { line, seq }),
    }
}

/// Checks every checkpoint's root against the tree at its size, in one
/// pass over the leaves; returns the most records a checkpoint covers.
fn check_roots(
    leaves: &[Hash],
    checkpoints: &[(usize, Checkpoint)],
) -> Result<u64, AuditVerifyError> {
    let records = leaves.len() as u64;
    let mut by_size: Vec<&(usize, Checkpoint)> = checkpoints.iter().collect();
    by_size.sort_by_key(|(_, c)| c.size());
    let mut frontier = Frontier::new();
    let mut leaves = leaves.iter();
    for (line, checkpoint) in by_size {
        if checkpoint.size() > records {
            return Err(AuditVerifyError::Truncated {
                size: checkpoint.size(),
                records,
            });
        }
        while frontier.size() < checkpoint.size() {
            let Some(leaf) = leaves.next() else { break };
            frontier
                .push(*leaf)
                .map_err(|_| AuditVerifyError::Malformed { line: *line })?;
        }
        if checkpoint.size() == 0 || frontier.root() != *checkpoint.root() {
            return Err(AuditVerifyError::Root {
                line: *line,
                size: checkpoint.size(),
            });
        }
    }
    Ok(frontier.size())
}

/// The proof that one record is in the log, checkable offline with the
/// audit public key: the record, its place, the proof hashes and the
/// signed checkpoint note whose root they lead to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's exact JSON text.
    pub entry: String,
    /// Its leaf index (`seq − 1`).
    pub leaf_index: u64,
    /// The size of the tree the proof is for (the checkpoint's).
    pub tree_size: u64,
    /// The audit path, nearest sibling first, standard base64.
    pub proof: Vec<String>,
    /// The signed checkpoint note (C2SP tlog-checkpoint) over `tree_size` records.
    pub checkpoint: String,
}

/// Why a proof could not be made from a verified export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProveError {
    /// No record with that sequence number under the newest checkpoint.
    #[error("record {seq} is not in the export's newest checkpoint (over {size} records)")]
    NoSuchRecord {
        /// Asked for.
        seq: u64,
        /// The newest checkpoint's size.
        size: u64,
    },
}

/// Why an inclusion proof or a saved checkpoint does not check out. Each
/// names what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofCheckError {
    /// The checkpoint is not a well-formed note.
    #[error("the checkpoint is not a podseal checkpoint note: {0}")]
    Checkpoint(NoteError),
    /// The checkpoint names another log.
    #[error("the checkpoint is of the log {found:?}, not {expected:?}")]
    Origin {
        /// The log the verifier expects.
        expected: String,
        /// The one the checkpoint names.
        found: String,
    },
    /// The checkpoint's signature does not verify.
    #[error("the checkpoint's signature does not verify with this audit public key")]
    Signature,
    /// The proof is for another size than its checkpoint's.
    #[error("the proof is for a tree of {proof} records, its checkpoint covers {checkpoint}")]
    Size {
        /// The proof's tree size.
        proof: u64,
        /// The checkpoint's.
        checkpoint: u64,
    },
    /// The record is not the one the proof places.
    #[error("the record is not a valid audit record with seq {seq} at leaf index {index}")]
    Record {
        /// The proof's seq.
        seq: u64,
        /// The proof's leaf index.
        index: u64,
    },
    /// A proof hash is not 32 bytes of base64.
    #[error("proof hash {0} is not 32 bytes of standard base64")]
    Encoding(usize),
    /// The hashes do not lead from the record to the checkpoint's root.
    #[error("the record is not in the log under this checkpoint: {0}")]
    Proof(ProofError),
}

/// What a consistency check against a saved checkpoint found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsistencyReport {
    /// The saved checkpoint's size.
    pub old_size: u64,
    /// The newest checkpoint's size.
    pub new_size: u64,
    /// The consistency proof from one to the other, standard base64.
    pub proof: Vec<String>,
}

/// Why an export is not an extension of a saved checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinceError {
    /// The saved checkpoint itself does not check out.
    #[error("{0}")]
    Checkpoint(ProofCheckError),
    /// The export has no checkpoint.
    #[error("the export has no checkpoint to compare the saved one with")]
    Empty,
    /// The export's newest checkpoint is older than the saved one.
    #[error(
        "the export's newest checkpoint covers {new} records, fewer than the {old} of the saved checkpoint (records were cut)"
    )]
    Shorter {
        /// The saved size.
        old: u64,
        /// The export's newest size.
        new: u64,
    },
    /// The proof does not verify: the first records were changed.
    #[error(
        "the log was REWRITTEN after the saved checkpoint: its first {0} records no longer have the root that checkpoint signed ({1})"
    )]
    Rewritten(u64, ProofError),
}

/// Decodes proof hashes from standard base64.
fn decode_hashes(proof: &[String]) -> Result<Vec<Hash>, ProofCheckError> {
    proof
        .iter()
        .enumerate()
        .map(|(i, h)| {
            STANDARD
                .decode(h)
                .ok()
                .and_then(|bytes| Hash::try_from(bytes).ok())
                .ok_or(ProofCheckError::Encoding(i))
        })
        .collect()
}

/// Parses a checkpoint note and checks its origin and signature against
/// any of `keys` (the keys that signed the log).
fn check_checkpoint(
    note: &str,
    keys: &[[u8; 32]],
    origin: Option<&LogOrigin>,
) -> Result<Checkpoint, ProofCheckError> {
    let checkpoint = Checkpoint::parse(note).map_err(ProofCheckError::Checkpoint)?;
    if let Some(expected) = origin
        && expected != checkpoint.origin()
    {
        return Err(ProofCheckError::Origin {
            expected: expected.to_string(),
            found: checkpoint.origin().to_string(),
        });
    }
    if !keys.iter().any(|key| checkpoint.is_signed_by(key)) {
        return Err(ProofCheckError::Signature);
    }
    Ok(checkpoint)
}

impl VerifiedLog {
    /// The newest checkpoint of the export.
    pub fn latest(&self) -> Option<&Checkpoint> {
        self.latest.as_ref()
    }

    /// The inclusion proof of record `seq` under the newest checkpoint.
    pub fn inclusion_proof(&self, seq: u64) -> Result<InclusionProof, ProveError> {
        let size = self.latest.as_ref().map_or(0, Checkpoint::size);
        let missing = ProveError::NoSuchRecord { seq, size };
        let (Some(checkpoint), Some(index)) = (self.latest.as_ref(), seq.checked_sub(1)) else {
            return Err(missing);
        };
        let tree = usize::try_from(size)
            .ok()
            .and_then(|size| self.leaves.get(..size))
            .ok_or(missing.clone())?;
        let entry = usize::try_from(index)
            .ok()
            .and_then(|i| self.entries.get(i))
            .ok_or(missing.clone())?;
        let proof = merkle::inclusion_proof(tree, index).map_err(|_| missing)?;
        Ok(InclusionProof {
            seq,
            entry: entry.clone(),
            leaf_index: index,
            tree_size: size,
            proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
            checkpoint: checkpoint.note().to_owned(),
        })
    }

    /// Checks that this log extends the saved checkpoint `note`: it must be
    /// this log's, signed by one of its keys, and the consistency proof
    /// from it to the newest checkpoint must verify.
    pub fn consistency_since(&self, note: &str) -> Result<ConsistencyReport, SinceError> {
        let origin = self.latest.as_ref().map(Checkpoint::origin);
        let old = check_checkpoint(note, &self.keys, origin).map_err(SinceError::Checkpoint)?;
        let new = self.latest.as_ref().ok_or(SinceError::Empty)?;
        if old.size() > new.size() {
            return Err(SinceError::Shorter {
                old: old.size(),
                new: new.size(),
            });
        }
        let tree = usize::try_from(new.size())
            .ok()
            .and_then(|size| self.leaves.get(..size))
            .ok_or(SinceError::Empty)?;
        let proof = if old.size() == new.size() {
            Vec::new()
        } else {
            merkle::consistency_proof(tree, old.size())
                .map_err(|e| SinceError::Rewritten(old.size(), e))?
        };
        merkle::verify_consistency(old.size(), new.size(), old.root(), new.root(), &proof)
            .map_err(|e| SinceError::Rewritten(old.size(), e))?;
        Ok(ConsistencyReport {
            old_size: old.size(),
            new_size: new.size(),
            proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
        })
    }
}

impl InclusionProof {
    /// Checks the proof offline: the checkpoint is a well-formed note of
    /// the trusted log signed by its key, the record sits at the proof's
    /// leaf, and the hashes lead from it to the checkpoint's root. After a
    /// key hand-over, trust the key that signs the log now.
    pub fn verify(&self, trusted: &TrustedKey) -> Result<AuditRecord, ProofCheckError> {
        let checkpoint = check_checkpoint(
            &self.checkpoint,
            &[trusted.public_key],
            trusted.origin.as_ref(),
        )?;
        if checkpoint.size() != self.tree_size {
            return Err(ProofCheckError::Size {
                proof: self.tree_size,
                checkpoint: checkpoint.size(),
            });
        }
        let misplaced = ProofCheckError::Record {
            seq: self.seq,
            index: self.leaf_index,
        };
        let record: AuditRecord =
            serde_json::from_str(&self.entry).map_err(|_| misplaced.clone())?;
        if record.seq != self.seq || self.seq.checked_sub(1) != Some(self.leaf_index) {
            return Err(misplaced);
        }
        let proof = decode_hashes(&self.proof)?;
        merkle::verify_inclusion(
            &leaf_hash(self.entry.as_bytes()),
            self.leaf_index,
            self.tree_size,
            &proof,
            checkpoint.root(),
        )
        .map_err(ProofCheckError::Proof)?;
        Ok(record)
    }
}

/// Checks a saved checkpoint note on its own: well-formed, of the trusted
/// log, signed by its key.
pub fn check_saved_checkpoint(
    note: &str,
    trusted: &TrustedKey,
) -> Result<Checkpoint, ProofCheckError> {
    check_checkpoint(note, &[trusted.public_key], trusted.origin.as_ref())
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        reason = "test code"
    )]
    use super::*;

    /// Text that quotes an outcome (`verify-proof`, the demo) uses the
    /// log's own word for it, never the Rust variant name.
    #[test]
    fn an_outcome_reads_as_the_log_writes_it() {
        for outcome in [
            Outcome::Allowed,
            Outcome::Refused,
            Outcome::AuditModeWouldRefuse,
        ] {
            let in_the_log = serde_json::to_value(outcome).unwrap();
            assert_eq!(in_the_log, serde_json::json!(outcome.to_string()));
        }
    }

    fn origin() -> LogOrigin {
        LogOrigin::new("podseal-test").unwrap()
    }

    fn sample(seq: u64) -> AuditRecord {
        AuditRecord {
            seq,
            time_ms: 1_000 + seq as i64,
            event: if seq.is_multiple_of(2) {
                Event::Unwrap.into()
            } else {
                Event::Session.into()
            },
            outcome: if seq.is_multiple_of(3) {
                Outcome::Refused
            } else {
                Outcome::Allowed
            },
            gate: (seq.is_multiple_of(3)).then_some(Gate::Dpop),
            reason: (seq.is_multiple_of(3)).then_some(Reason::JtiReplayed),
            details: BTreeMap::from([("namespace".into(), "shop".into())]),
        }
    }

    /// A log of `records`, each followed by a checkpoint signed by the key
    /// `signer(seq)` names (none: no checkpoint there).
    fn signed_log<'k>(
        records: &[AuditRecord],
        signer: impl Fn(u64) -> Option<&'k AuditKey>,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        let mut frontier = Frontier::new();
        for (i, record) in records.iter().enumerate() {
            let seq = i as u64 + 1;
            let record = AuditRecord {
                seq,
                ..record.clone()
            };
            let bytes = serde_json::to_vec(&record).unwrap();
            let leaf = leaf_hash(&bytes);
            frontier.push(leaf).unwrap();
            lines.push(serde_json::to_string(&ExportLine::record(seq, &bytes, &leaf)).unwrap());
            if let Some(key) = signer(seq) {
                let checkpoint = key.checkpoint(&origin(), seq, &frontier.root());
                lines.push(serde_json::to_string(&ExportLine::Checkpoint(checkpoint)).unwrap());
            }
        }
        lines
    }

    /// An export of `n` records with checkpoints after `at` and at the end.
    fn export(key: &AuditKey, n: u64, at: &[u64]) -> Vec<String> {
        let records: Vec<AuditRecord> = (1..=n).map(sample).collect();
        signed_log(&records, |seq| {
            (at.contains(&seq) || seq == n).then_some(key)
        })
    }

    fn verify(key: &AuditKey, lines: &[String]) -> Result<VerifyReport, AuditVerifyError> {
        verify_export(&lines.join("\n"), &key.public_key(), None)
    }

    fn trusted(key: &AuditKey) -> TrustedKey {
        TrustedKey {
            public_key: key.public_key(),
            origin: Some(origin()),
        }
    }

    #[test]
    fn a_rotation_hands_the_log_to_the_next_key_and_nothing_else_does() {
        let (old_key, new_key, other_key) = (
            AuditKey::from_seed(&[1; 32]),
            AuditKey::from_seed(&[2; 32]),
            AuditKey::from_seed(&[3; 32]),
        );
        let plain = sample(0);
        let rotation = key_rotation_record(&old_key.public_key(), &new_key.public_key(), 2);
        let records = [
            plain.clone(),
            rotation.clone(),
            plain.clone(),
            plain.clone(),
        ];
        let old = old_key.public_key();

        // Old key up to and including the rotation, new key after it.
        let rotated = signed_log(&records, |seq| {
            Some(if seq <= 2 { &old_key } else { &new_key })
        });
        let report = verify_export(&rotated.join("\n"), &old, None).unwrap();
        assert_eq!((report.records, report.checkpoints), (4, 4));

        // The old key signing after the hand-over is refused (a leaked old
        // key cannot extend the log).
        let stale = signed_log(&records, |_| Some(&old_key));
        assert_eq!(
            verify_export(&stale.join("\n"), &old, None),
            Err(AuditVerifyError::Signature { line: 6 })
        );
        // The new key signing the rotation's own checkpoint: not vouched for.
        let early = signed_log(&records, |seq| {
            Some(if seq < 2 { &old_key } else { &new_key })
        });
        assert!(verify_export(&early.join("\n"), &old, None).is_err());
        // Another key with no rotation record: a fork.
        let forked = signed_log(&[plain.clone(), plain.clone(), plain.clone()], |seq| {
            Some(if seq < 2 { &old_key } else { &other_key })
        });
        assert_eq!(
            verify_export(&forked.join("\n"), &old, None),
            Err(AuditVerifyError::Signature { line: 4 })
        );
        // A rotation record naming a key other than the signer's hands nothing over.
        let foreign = key_rotation_record(&other_key.public_key(), &new_key.public_key(), 2);
        let spoofed = signed_log(&[plain.clone(), foreign, plain], |seq| {
            Some(if seq <= 2 { &old_key } else { &new_key })
        });
        assert!(verify_export(&spoofed.join("\n"), &old, None).is_err());

        // Proofs follow the hand-over too: a checkpoint the old key signed
        // before it is a valid "since" for the log the new key extends.
        let log = verify_log(&rotated.join("\n"), &trusted(&old_key), None).unwrap();
        let first = serde_json::from_str::<ExportLine>(&rotated[1]).unwrap();
        let ExportLine::Checkpoint(first) = first else {
            panic!("line 2 is a checkpoint")
        };
        assert_eq!(log.consistency_since(first.note()).unwrap().old_size, 1);
        let proof = log.inclusion_proof(1).unwrap();
        assert!(proof.verify(&trusted(&new_key)).is_ok());
        assert!(matches!(
            proof.verify(&trusted(&old_key)),
            Err(ProofCheckError::Signature)
        ));
    }

    #[test]
    fn public_key_text_round_trips() {
        let key = AuditKey::generate().unwrap();
        let text = format!("# audit key\n{}\n", public_key_text(&key.public_key()));
        assert_eq!(parse_public_key(&text), Some(key.public_key()));
        assert_eq!(parse_public_key("podseal-audit-public-key:v1:AAAA"), None);
        let reread =
            AuditKey::from_text(&format!("# secret\n{}\n", key.to_text().as_str())).unwrap();
        assert_eq!(reread.public_key(), key.public_key());
        assert!(AuditKey::from_text(&public_key_text(&key.public_key())).is_none());
        assert!(!format!("{key:?}").contains(&key.to_text()[21..]));
        assert_eq!(parse_public_key(""), None);
        // Both text forms are trusted keys; the note form pins the origin.
        let vkey = verifier_key_text(&origin(), &key.public_key());
        assert_eq!(TrustedKey::parse(&text).unwrap().origin, None);
        assert_eq!(TrustedKey::parse(&vkey), Some(trusted(&key)));
        assert_eq!(TrustedKey::parse("nonsense"), None);
    }

    #[test]
    fn an_untouched_export_verifies() {
        let key = AuditKey::generate().unwrap();
        let report = verify(&key, &export(&key, 10, &[4])).unwrap();
        assert_eq!((report.records, report.checkpoints), (10, 2));
        assert_eq!(report.origin.as_deref(), Some("podseal-test"));
    }

    #[test]
    fn every_single_edit_removal_insertion_or_swap_is_detected() {
        let key = AuditKey::generate().unwrap();
        let good = export(&key, 8, &[3, 6]);
        let record_lines: Vec<usize> = good
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("\"record\""))
            .map(|(i, _)| i)
            .collect();
        for &i in &record_lines {
            // Edit: change the outcome inside the entry bytes.
            let mut edited = good.clone();
            edited[i] = edited[i].replacen("allowed", "refused", 1).replacen(
                "\\\"refused\\\"",
                "\\\"allowed\\\"",
                1,
            );
            if edited[i] != good[i] {
                assert!(
                    verify(&key, &edited).is_err(),
                    "edit of line {i} undetected"
                );
            }
            // Removal.
            let mut removed = good.clone();
            removed.remove(i);
            assert!(
                verify(&key, &removed).is_err(),
                "removal of line {i} undetected"
            );
            // Insertion of a copy.
            let mut inserted = good.clone();
            inserted.insert(i, good[i].clone());
            assert!(
                verify(&key, &inserted).is_err(),
                "duplicate of line {i} undetected"
            );
        }
        // Swap of two neighbouring records.
        for pair in record_lines.windows(2) {
            let mut swapped = good.clone();
            swapped.swap(pair[0], pair[1]);
            assert!(verify(&key, &swapped).is_err(), "swap {pair:?} undetected");
        }
        // Detail edits that keep valid JSON.
        let mut namespace = good.clone();
        namespace[0] = namespace[0].replace("shop", "other");
        assert!(matches!(
            verify(&key, &namespace),
            Err(AuditVerifyError::Hash { .. })
        ));
        // An edit whose leaf hash was recomputed too: the tree catches it.
        let mut rehashed = good.clone();
        let bytes = serde_json::to_vec(&AuditRecord {
            outcome: Outcome::Allowed,
            ..sample(3)
        })
        .unwrap();
        rehashed[record_lines[2]] =
            serde_json::to_string(&ExportLine::record(3, &bytes, &leaf_hash(&bytes))).unwrap();
        assert!(matches!(
            verify(&key, &rehashed),
            Err(AuditVerifyError::Root { .. })
        ));
    }

    #[test]
    fn cut_tails_and_forged_checkpoints_are_detected() {
        let key = AuditKey::generate().unwrap();
        let good = export(&key, 6, &[3]);
        // Cut the final checkpoint: records 4..6 are unsigned.
        let cut = &good[..good.len() - 1];
        assert_eq!(
            verify(&key, cut),
            Err(AuditVerifyError::UnsignedTail { unsigned: 3 })
        );
        // Cut records but keep the final checkpoint.
        let mut truncated = good.clone();
        truncated.remove(good.len() - 2);
        assert!(matches!(
            verify(&key, &truncated),
            Err(AuditVerifyError::Truncated { .. })
        ));
        // Cut exactly after a checkpoint: caught by the expected size.
        let at_checkpoint = &good[..4];
        assert_eq!(verify(&key, at_checkpoint).unwrap().records, 3);
        assert!(verify_export(&at_checkpoint.join("\n"), &key.public_key(), Some(6)).is_err());
        // Another key's checkpoint.
        let other = AuditKey::generate().unwrap();
        assert!(matches!(
            verify(&other, &good),
            Err(AuditVerifyError::Signature { .. })
        ));
        // A checkpoint whose size was changed inside its note.
        let mut resized = good.clone();
        let last = resized.len() - 1;
        resized[last] = resized[last].replace("podseal-test\\n6\\n", "podseal-test\\n5\\n");
        assert_ne!(resized[last], good[last]);
        assert!(matches!(
            verify(&key, &resized),
            Err(AuditVerifyError::Signature { .. })
        ));
        // Another log's checkpoint signed by the same key.
        let mut foreign = good.clone();
        let elsewhere = LogOrigin::new("elsewhere").unwrap();
        let lines: Vec<ExportLine> = good
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ExportLine::Checkpoint(c) = &lines[last] else {
            panic!("last line is a checkpoint")
        };
        foreign[last] = serde_json::to_string(&ExportLine::Checkpoint(key.checkpoint(
            &elsewhere,
            c.size(),
            c.root(),
        )))
        .unwrap();
        assert!(matches!(
            verify(&key, &foreign),
            Err(AuditVerifyError::Origin { .. })
        ));
        assert!(matches!(
            verify(&key, &["garbage".to_owned()]),
            Err(AuditVerifyError::Malformed { line: 1 })
        ));
    }

    #[test]
    fn an_inclusion_proof_verifies_offline_and_fails_after_any_edit() {
        let key = AuditKey::from_seed(&[5; 32]);
        let log = verify_log(&export(&key, 7, &[2]).join("\n"), &trusted(&key), None).unwrap();
        for seq in 1..=7 {
            let proof = log.inclusion_proof(seq).unwrap();
            assert_eq!(proof.verify(&trusted(&key)).unwrap().seq, seq);
            // Through JSON, as the CLI writes and reads it.
            let reread: InclusionProof =
                serde_json::from_str(&serde_json::to_string(&proof).unwrap()).unwrap();
            assert_eq!(reread, proof);

            let refused = |edited: InclusionProof, what: &str| {
                assert!(
                    edited.verify(&trusted(&key)).is_err(),
                    "record {seq}: {what} still verifies"
                );
            };
            refused(
                InclusionProof {
                    entry: proof.entry.replace("shop", "shoq"),
                    ..proof.clone()
                },
                "an edited record",
            );
            refused(
                InclusionProof {
                    seq: seq % 7 + 1,
                    ..proof.clone()
                },
                "another seq",
            );
            refused(
                InclusionProof {
                    leaf_index: seq % 7,
                    ..proof.clone()
                },
                "another leaf index",
            );
            refused(
                InclusionProof {
                    tree_size: 8,
                    ..proof.clone()
                },
                "another tree size",
            );
            for i in 0..proof.proof.len() {
                let mut hashes = proof.proof.clone();
                let mut bytes = STANDARD.decode(&hashes[i]).unwrap();
                bytes[31] ^= 1;
                hashes[i] = STANDARD.encode(bytes);
                refused(
                    InclusionProof {
                        proof: hashes,
                        ..proof.clone()
                    },
                    "a flipped proof bit",
                );
            }
            let mut longer = proof.proof.clone();
            longer.push(STANDARD.encode([0u8; 32]));
            refused(
                InclusionProof {
                    proof: longer,
                    ..proof.clone()
                },
                "an added proof hash",
            );
            // Every byte of the checkpoint note.
            for i in 0..proof.checkpoint.len() {
                let mut bytes = proof.checkpoint.clone().into_bytes();
                bytes[i] ^= 0x01;
                if let Ok(note) = String::from_utf8(bytes) {
                    refused(
                        InclusionProof {
                            checkpoint: note,
                            ..proof.clone()
                        },
                        "an edited checkpoint byte",
                    );
                }
            }
        }
        assert!(log.inclusion_proof(0).is_err());
        assert!(log.inclusion_proof(8).is_err());
        // The wrong key, or another log's name for it.
        let proof = log.inclusion_proof(3).unwrap();
        assert!(
            proof
                .verify(&trusted(&AuditKey::from_seed(&[6; 32])))
                .is_err()
        );
        let elsewhere = TrustedKey {
            origin: Some(LogOrigin::new("elsewhere").unwrap()),
            ..trusted(&key)
        };
        assert!(matches!(
            proof.verify(&elsewhere),
            Err(ProofCheckError::Origin { .. })
        ));
    }

    #[test]
    fn a_saved_checkpoint_detects_a_rewritten_log() {
        let key = AuditKey::from_seed(&[5; 32]);
        let records: Vec<AuditRecord> = (1..=9).map(sample).collect();
        let early = signed_log(&records[..4], |seq| (seq == 4).then_some(&key));
        let early = verify_log(&early.join("\n"), &trusted(&key), None).unwrap();
        let saved = early.latest().unwrap().note().to_owned();

        // The log grew: consistent.
        let grown = signed_log(&records, |seq| (seq == 6 || seq == 9).then_some(&key));
        let grown = verify_log(&grown.join("\n"), &trusted(&key), None).unwrap();
        let report = grown.consistency_since(&saved).unwrap();
        assert_eq!((report.old_size, report.new_size), (4, 9));
        assert!(!report.proof.is_empty());
        assert_eq!(early.consistency_since(&saved).unwrap().proof.len(), 0);

        // The same key re-signed a log whose record 2 was changed: it
        // verifies on its own, but not as an extension of the saved one.
        let mut rewritten = records.clone();
        rewritten[1].outcome = Outcome::Refused;
        let forged = signed_log(&rewritten, |seq| (seq == 9).then_some(&key));
        let forged = verify_log(&forged.join("\n"), &trusted(&key), None).unwrap();
        assert!(matches!(
            forged.consistency_since(&saved),
            Err(SinceError::Rewritten(4, _))
        ));
        // A shorter log than the saved checkpoint: cut.
        let short = signed_log(&records[..3], |seq| (seq == 3).then_some(&key));
        let short = verify_log(&short.join("\n"), &trusted(&key), None).unwrap();
        assert!(matches!(
            short.consistency_since(&saved),
            Err(SinceError::Shorter { old: 4, new: 3 })
        ));
        // A saved checkpoint with any byte edited, or by another key.
        for i in 0..saved.len() {
            let mut bytes = saved.clone().into_bytes();
            bytes[i] ^= 0x02;
            if let Ok(edited) = String::from_utf8(bytes) {
                assert!(grown.consistency_since(&edited).is_err(), "byte {i}");
            }
        }
        let other = AuditKey::from_seed(&[6; 32]);
        let theirs = other.checkpoint(&origin(), 4, early.latest().unwrap().root());
        assert!(matches!(
            grown.consistency_since(theirs.note()),
            Err(SinceError::Checkpoint(ProofCheckError::Signature))
        ));
    }
}
