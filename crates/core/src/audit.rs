//! The tamper-evident audit log: a hash chain of records, and checkpoints
//! signed with the server's Ed25519 audit key.
//!
//! - Each record is JSON, and its exact bytes are kept: the chain hashes
//!   bytes, so no canonical form is needed (as with capsule headers).
//! - `hash(n) = SHA-256(0x00 ‖ hash(n-1) ‖ bytes(n))`, `hash(0)` all zero.
//! - A checkpoint signs `origin`, `size` (records covered), `root` (=
//!   `hash(size)`) and `time` as a text note that begins with
//!   `podseal audit checkpoint v1`, so a checkpoint signature can never be
//!   mistaken for anything else the key might sign, and the leaf prefix
//!   `0x00` keeps record hashes apart from it.
//! - An export is JSON lines: records with their bytes and hash, and
//!   checkpoints. [`verify_export`] detects an edited, removed, inserted or
//!   reordered record, a forged checkpoint, and a cut tail: every record must
//!   be covered by a checkpoint, and the server signs one when exporting.
//!   (Cutting an export exactly after a checkpoint removes signed history
//!   silently; compare `size` with the server's latest checkpoint, or pass
//!   `expected_size`, to catch that too.)

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::reason::{Gate, Reason};

/// A chain hash.
pub type ChainHash = [u8; 32];

/// The hash before the first record.
pub const GENESIS: ChainHash = [0u8; 32];

const CHECKPOINT_HEADER: &str = "podseal audit checkpoint v1";

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

/// One audit record. Values are identifiers and codes, never secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// What happened: `session`, `unwrap`, `rotate_key`, `admin.apikey.create`, …
    pub event: String,
    /// The decision.
    pub outcome: Outcome,
    /// The gate that decided a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// The stable reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Who and what: cluster, namespace, service account, pod uid, capsule id, kid, key thumbprint…
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

/// The next link: the record's bytes and the chain hash after it.
pub fn chain(prev: &ChainHash, record_bytes: &[u8]) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(prev);
    hasher.update(record_bytes);
    hasher.finalize().into()
}

/// A signed statement that the log's first `size` records hash to `root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The log's name (the server's audit origin).
    pub origin: String,
    /// Records covered.
    pub size: u64,
    /// `hash(size)`, base64url.
    pub root: String,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// Ed25519 signature over the checkpoint note, base64url.
    pub signature: String,
}

impl Checkpoint {
    fn note(origin: &str, size: u64, root: &str, time_ms: i64) -> String {
        format!("{CHECKPOINT_HEADER}\n{origin}\n{size}\n{root}\n{time_ms}\n")
    }

    /// True when `public_key` signed this checkpoint.
    pub fn is_signed_by(&self, public_key: &[u8; 32]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(public_key) else {
            return false;
        };
        let note = Self::note(&self.origin, self.size, &self.root, self.time_ms);
        URL_SAFE_NO_PAD
            .decode(&self.signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .is_some_and(|signature| key.verify_strict(note.as_bytes(), &signature).is_ok())
    }
}

/// The event of the record that hands the log from one audit key to the
/// next. Its details name both keys (`old_public_key`, `new_public_key`, in
/// [`public_key_text`] form); the first checkpoint covering it is signed by
/// the old key, every later one by the new key. A verifier starting from
/// the first key follows the hand-over; without such a record a change of
/// key is a fork and does not verify.
pub const KEY_ROTATION_EVENT: &str = "audit_key_rotated";

/// The rotation record for handing the log from `old` to `new`.
pub fn key_rotation_record(old: &[u8; 32], new: &[u8; 32], time_ms: i64) -> AuditRecord {
    AuditRecord {
        seq: 0,
        time_ms,
        event: KEY_ROTATION_EVENT.to_owned(),
        outcome: Outcome::Allowed,
        gate: None,
        reason: None,
        details: BTreeMap::from([
            ("old_public_key".to_owned(), public_key_text(old)),
            ("new_public_key".to_owned(), public_key_text(new)),
        ]),
    }
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
        zeroize::Zeroizing::new(format!(
            "{PRIVATE_KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.key.to_bytes())
        ))
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
        let seed: zeroize::Zeroizing<[u8; 32]> =
            zeroize::Zeroizing::new(URL_SAFE_NO_PAD.decode(encoded).ok()?.try_into().ok()?);
        Some(Self::from_seed(&seed))
    }

    /// The public key that verifies checkpoints.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs a checkpoint over the first `size` records.
    pub fn checkpoint(
        &self,
        origin: &str,
        size: u64,
        root: &ChainHash,
        time_ms: i64,
    ) -> Checkpoint {
        let root = URL_SAFE_NO_PAD.encode(root);
        let signature = self
            .key
            .sign(Checkpoint::note(origin, size, &root, time_ms).as_bytes());
        Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            time_ms,
            signature: URL_SAFE_NO_PAD.encode(signature.to_bytes()),
        }
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
    /// A record: its exact JSON bytes (as a string) and its chain hash.
    Record {
        /// Position.
        seq: u64,
        /// The record's exact JSON text.
        entry: String,
        /// `hash(seq)`, base64url.
        hash: String,
    },
    /// A checkpoint.
    Checkpoint(Checkpoint),
}

impl ExportLine {
    /// The export line for a stored record.
    pub fn record(seq: u64, entry: &[u8], hash: &ChainHash) -> Self {
        Self::Record {
            seq,
            entry: String::from_utf8_lossy(entry).into_owned(),
            hash: URL_SAFE_NO_PAD.encode(hash),
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
    /// The head hash, base64url.
    pub head: String,
}

/// Why an export does not verify. Each names the line (1-based) or record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditVerifyError {
    /// A line is not a record or checkpoint.
    #[error("line {line}: not an audit export line")]
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
    /// A record's bytes or hash do not chain.
    #[error("line {line}: record {seq} does not match its chain hash (edited)")]
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
    /// A checkpoint's root is not the chain's hash at its size.
    #[error("line {line}: checkpoint over {size} records does not match the chain")]
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

/// Verifies an export (JSON lines) against the audit public key.
pub fn verify_export(
    text: &str,
    public_key: &[u8; 32],
    expected_size: Option<u64>,
) -> Result<VerifyReport, AuditVerifyError> {
    VerifyingKey::from_bytes(public_key).map_err(|_| AuditVerifyError::Signature { line: 0 })?;
    let mut key = *public_key;
    // Rotations seen in records and not yet vouched for by a checkpoint.
    let mut rotations: Vec<(u64, [u8; 32], [u8; 32])> = Vec::new();
    let mut hashes = vec![GENESIS];
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
                let expected = hashes.len() as u64;
                if seq != expected {
                    return Err(AuditVerifyError::Sequence {
                        line,
                        expected,
                        found: seq,
                    });
                }
                let record: AuditRecord = serde_json::from_str(&entry)
                    .map_err(|_| AuditVerifyError::Record { line, seq })?;
                if record.seq != seq {
                    return Err(AuditVerifyError::Record { line, seq });
                }
                if record.event == KEY_ROTATION_EVENT {
                    let named = |name: &str| {
                        record
                            .details
                            .get(name)
                            .and_then(|text| parse_public_key(text))
                    };
                    let (Some(old), Some(new)) = (named("old_public_key"), named("new_public_key"))
                    else {
                        return Err(AuditVerifyError::Record { line, seq });
                    };
                    rotations.push((seq, old, new));
                }
                let prev = hashes.last().copied().unwrap_or(GENESIS);
                let computed = chain(&prev, entry.as_bytes());
                if URL_SAFE_NO_PAD.encode(computed) != hash {
                    return Err(AuditVerifyError::Hash { line, seq });
                }
                hashes.push(computed);
            }
            ExportLine::Checkpoint(checkpoint) => {
                if !checkpoint.is_signed_by(&key) {
                    return Err(AuditVerifyError::Signature { line });
                }
                // The first rotation this checkpoint covers, made by the
                // key that signed it, hands the log to the next key.
                if let Some(index) = rotations
                    .iter()
                    .position(|(seq, old, _)| *seq <= checkpoint.size && *old == key)
                {
                    key = rotations.remove(index).2;
                }
                checkpoints.push((line, checkpoint));
            }
        }
    }
    let records = (hashes.len() - 1) as u64;
    let mut covered = 0;
    for (line, checkpoint) in &checkpoints {
        let Some(root) = usize::try_from(checkpoint.size)
            .ok()
            .and_then(|size| hashes.get(size))
        else {
            return Err(AuditVerifyError::Truncated {
                size: checkpoint.size,
                records,
            });
        };
        if URL_SAFE_NO_PAD.encode(root) != checkpoint.root {
            return Err(AuditVerifyError::Root {
                line: *line,
                size: checkpoint.size,
            });
        }
        covered = covered.max(checkpoint.size);
    }
    if covered < records {
        return Err(AuditVerifyError::UnsignedTail {
            unsigned: records - covered,
        });
    }
    if let Some(expected) = expected_size.filter(|expected| *expected > records) {
        return Err(AuditVerifyError::Shorter { records, expected });
    }
    let head = URL_SAFE_NO_PAD.encode(hashes.last().copied().unwrap_or(GENESIS));
    Ok(VerifyReport {
        records,
        checkpoints: checkpoints.len() as u64,
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an export of `n` records with checkpoints after `at` and at the end.
    fn export(key: &AuditKey, n: u64, at: &[u64]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut prev = GENESIS;
        for seq in 1..=n {
            let record = AuditRecord {
                seq,
                time_ms: 1_000 + seq as i64,
                event: if seq % 2 == 0 {
                    "unwrap".into()
                } else {
                    "session".into()
                },
                outcome: if seq % 3 == 0 {
                    Outcome::Refused
                } else {
                    Outcome::Allowed
                },
                gate: (seq % 3 == 0).then_some(Gate::Dpop),
                reason: (seq % 3 == 0).then_some(Reason::JtiReplayed),
                details: BTreeMap::from([("namespace".into(), "shop".into())]),
            };
            let bytes = serde_json::to_vec(&record).unwrap();
            prev = chain(&prev, &bytes);
            lines.push(serde_json::to_string(&ExportLine::record(seq, &bytes, &prev)).unwrap());
            if at.contains(&seq) || seq == n {
                let checkpoint = key.checkpoint("podseal-test", seq, &prev, 5_000 + seq as i64);
                lines.push(serde_json::to_string(&ExportLine::Checkpoint(checkpoint)).unwrap());
            }
        }
        lines
    }

    fn verify(key: &AuditKey, lines: &[String]) -> Result<VerifyReport, AuditVerifyError> {
        verify_export(&lines.join("\n"), &key.public_key(), None)
    }

    /// A log of `records`, each followed by a checkpoint signed by the key
    /// `signer(seq)` names.
    fn signed_log(
        records: &[AuditRecord],
        signer: impl Fn(u64) -> Option<&'static AuditKey>,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        let mut prev = GENESIS;
        for (i, record) in records.iter().enumerate() {
            let seq = i as u64 + 1;
            let record = AuditRecord {
                seq,
                ..record.clone()
            };
            let bytes = serde_json::to_vec(&record).unwrap();
            prev = chain(&prev, &bytes);
            lines.push(serde_json::to_string(&ExportLine::record(seq, &bytes, &prev)).unwrap());
            if let Some(key) = signer(seq) {
                let checkpoint = key.checkpoint("podseal-test", seq, &prev, 5_000 + seq as i64);
                lines.push(serde_json::to_string(&ExportLine::Checkpoint(checkpoint)).unwrap());
            }
        }
        lines
    }

    #[test]
    fn a_rotation_hands_the_log_to_the_next_key_and_nothing_else_does() {
        static OLD: std::sync::LazyLock<AuditKey> =
            std::sync::LazyLock::new(|| AuditKey::from_seed(&[1; 32]));
        static NEW: std::sync::LazyLock<AuditKey> =
            std::sync::LazyLock::new(|| AuditKey::from_seed(&[2; 32]));
        static OTHER: std::sync::LazyLock<AuditKey> =
            std::sync::LazyLock::new(|| AuditKey::from_seed(&[3; 32]));
        let plain = AuditRecord {
            seq: 0,
            time_ms: 1,
            event: "unwrap".into(),
            outcome: Outcome::Allowed,
            gate: None,
            reason: None,
            details: BTreeMap::new(),
        };
        let rotation = key_rotation_record(&OLD.public_key(), &NEW.public_key(), 2);
        let records = [
            plain.clone(),
            rotation.clone(),
            plain.clone(),
            plain.clone(),
        ];
        let old = OLD.public_key();

        // Old key up to and including the rotation, new key after it.
        let rotated = signed_log(&records, |seq| Some(if seq <= 2 { &*OLD } else { &*NEW }));
        let report = verify_export(&rotated.join("\n"), &old, None).unwrap();
        assert_eq!((report.records, report.checkpoints), (4, 4));

        // The old key signing after the hand-over is refused (a leaked old
        // key cannot extend the log).
        let stale = signed_log(&records, |_| Some(&*OLD));
        assert_eq!(
            verify_export(&stale.join("\n"), &old, None),
            Err(AuditVerifyError::Signature { line: 6 })
        );
        // The new key signing the rotation's own checkpoint: not vouched for.
        let early = signed_log(&records, |seq| Some(if seq < 2 { &*OLD } else { &*NEW }));
        assert!(verify_export(&early.join("\n"), &old, None).is_err());
        // Another key with no rotation record: a fork.
        let forked = signed_log(&[plain.clone(), plain.clone(), plain.clone()], |seq| {
            Some(if seq < 2 { &*OLD } else { &*OTHER })
        });
        assert_eq!(
            verify_export(&forked.join("\n"), &old, None),
            Err(AuditVerifyError::Signature { line: 4 })
        );
        // A rotation record naming a key other than the signer's hands nothing over.
        let foreign = key_rotation_record(&OTHER.public_key(), &NEW.public_key(), 2);
        let spoofed = signed_log(&[plain.clone(), foreign, plain], |seq| {
            Some(if seq <= 2 { &*OLD } else { &*NEW })
        });
        assert!(verify_export(&spoofed.join("\n"), &old, None).is_err());
        assert!(OLD.checkpoint("o", 1, &GENESIS, 1).is_signed_by(&old));
        assert!(
            !OLD.checkpoint("o", 1, &GENESIS, 1)
                .is_signed_by(&NEW.public_key())
        );
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
    }

    #[test]
    fn an_untouched_export_verifies() {
        let key = AuditKey::generate().unwrap();
        let report = verify(&key, &export(&key, 10, &[4])).unwrap();
        assert_eq!((report.records, report.checkpoints), (10, 2));
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
        // A checkpoint whose size was changed.
        let mut resized = good.clone();
        let last = resized.len() - 1;
        resized[last] = resized[last].replace("\"size\":6", "\"size\":5");
        assert!(matches!(
            verify(&key, &resized),
            Err(AuditVerifyError::Signature { .. })
        ));
        assert!(matches!(
            verify(&key, &["garbage".to_owned()]),
            Err(AuditVerifyError::Malformed { line: 1 })
        ));
    }
}
