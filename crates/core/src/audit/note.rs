//! Checkpoints as C2SP `tlog-checkpoint` bodies in C2SP `signed-note`
//! envelopes, signed with Ed25519 (c2sp.org/tlog-checkpoint,
//! c2sp.org/signed-note), so that transparency-log tools (Go's
//! `sumdb/note`, its ports, witnesses) read and verify podseal's
//! checkpoints with no podseal code.
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <root hash, standard base64>
//!
//! — <origin> <base64(key id ‖ Ed25519 signature)>
//! ```
//!
//! - The signature covers the body, its final newline included. The key
//!   name is the origin; the key id is the first four bytes of
//!   `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)` (0x01: Ed25519).
//! - The verifier key's text form is `<name>+<hex key id>+<base64(0x01 ‖
//!   public key)>` ([`verifier_key_text`]).
//! - podseal writes no extension lines (time is left out on purpose, see
//!   docs/design.md §8) and accepts none: a note podseal did not make is
//!   not one of its checkpoints. Other signatures (a witness's cosignature)
//!   may follow ours and are ignored; a line that is not a signature makes
//!   the note malformed.
//! - Parsing is strict and says what is wrong (the format is public); a
//!   signature check answers only yes or no.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::merkle::{Hash, MAX_SIZE};

/// The signature algorithm byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;
/// The largest note accepted (ours are about 200 bytes).
const MAX_NOTE_LEN: usize = 16 * 1024;
/// The most signature lines accepted on one note.
const MAX_SIGNATURES: usize = 16;
/// The longest origin accepted.
const MAX_ORIGIN_LEN: usize = 255;
/// What starts a signature line: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// The name of a log: the first line of its checkpoints and the key name
/// of their signatures. A valid note key name (not empty, no Unicode
/// space, no `+`), no control character, at most 255 bytes, and
/// schema-less (`example.com/podseal-audit`, never `https://…`), as
/// tlog-checkpoint asks of an origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogOrigin(String);

/// Why a name cannot be a log origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// Empty.
    #[error("the audit log origin is empty")]
    Empty,
    /// Too long.
    #[error("the audit log origin is longer than {MAX_ORIGIN_LEN} bytes")]
    TooLong,
    /// A space, a `+` or a control character.
    #[error(
        "the audit log origin {0:?} holds a space, a '+' or a control character (it is the signed-note key name)"
    )]
    Character(String),
    /// A URL scheme.
    #[error("the audit log origin {0:?} has a URL scheme; write it schema-less, as host/path")]
    Scheme(String),
}

impl LogOrigin {
    /// Checks `name` and makes it an origin.
    pub fn new(name: &str) -> Result<Self, OriginError> {
        if name.is_empty() {
            return Err(OriginError::Empty);
        }
        if name.len() > MAX_ORIGIN_LEN {
            return Err(OriginError::TooLong);
        }
        if name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
        {
            return Err(OriginError::Character(name.to_owned()));
        }
        if name.contains("://") {
            return Err(OriginError::Scheme(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LogOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The signed-note key id of an Ed25519 key named `origin`.
pub fn key_id(origin: &LogOrigin, public_key: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(origin.as_str().as_bytes());
    hasher.update([0x0A, ALG_ED25519]);
    hasher.update(public_key);
    let digest: [u8; 32] = hasher.finalize().into();
    let [a, b, c, d, ..] = digest;
    [a, b, c, d]
}

/// The note verifier key, `<origin>+<hex key id>+<base64(0x01 ‖ key)>`:
/// what Go's `note.NewVerifier` and its ports take.
pub fn verifier_key_text(origin: &LogOrigin, public_key: &[u8; 32]) -> String {
    let id: String = key_id(origin, public_key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut key = Vec::with_capacity(33);
    key.push(ALG_ED25519);
    key.extend_from_slice(public_key);
    format!("{origin}+{id}+{}", STANDARD.encode(key))
}

/// Parses a note verifier key (an Ed25519 one, with its key id checked).
pub fn parse_verifier_key(text: &str) -> Option<(LogOrigin, [u8; 32])> {
    let (name, rest) = text.trim().split_once('+')?;
    let (id, key) = rest.split_once('+')?;
    let origin = LogOrigin::new(name).ok()?;
    let key = STANDARD.decode(key).ok()?;
    let (&alg, public_key) = key.split_first()?;
    let public_key: [u8; 32] = public_key.try_into().ok()?;
    VerifyingKey::from_bytes(&public_key).ok()?;
    let expected: String = key_id(&origin, &public_key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (alg == ALG_ED25519 && id == expected).then_some((origin, public_key))
}

/// Why a text is not a podseal checkpoint note.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Over the size limit.
    #[error("the checkpoint note is longer than {MAX_NOTE_LEN} bytes")]
    TooLong,
    /// A control character other than a newline.
    #[error("the checkpoint note holds a control character")]
    Control,
    /// No blank line between body and signatures, or no final newline.
    #[error("the checkpoint note has no signature block (a blank line, then signature lines)")]
    NoSignatures,
    /// The body is not origin, size and root hash.
    #[error("the checkpoint body is not an origin, a tree size and a root hash: {0}")]
    Body(&'static str),
    /// A line of the signature block is not a signature.
    #[error("line {0} of the signature block is not a signature (— name base64)")]
    SignatureLine(usize),
    /// Too many signatures.
    #[error("the checkpoint note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NoteSignature {
    name: String,
    id: [u8; 4],
    signature: Vec<u8>,
}

/// A signed statement that the log called `origin` held `size` records
/// whose tree has root `root`: a parsed signed note, kept with its exact
/// text. Parsing does not check the signature: [`Checkpoint::is_signed_by`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: LogOrigin,
    size: u64,
    root: Hash,
    text: String,
    body_len: usize,
    signatures: Vec<NoteSignature>,
}

impl Checkpoint {
    /// The log's name.
    pub fn origin(&self) -> &LogOrigin {
        &self.origin
    }

    /// Records covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root hash over them.
    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// The whole signed note, as written.
    pub fn note(&self) -> &str {
        &self.text
    }

    /// The body of a checkpoint (what is signed).
    fn body(origin: &LogOrigin, size: u64, root: &Hash) -> String {
        format!("{origin}\n{size}\n{}\n", STANDARD.encode(root))
    }

    /// Signs a checkpoint.
    pub(crate) fn sign(key: &SigningKey, origin: &LogOrigin, size: u64, root: &Hash) -> Self {
        let body = Self::body(origin, size, root);
        let public_key = key.verifying_key().to_bytes();
        let id = key_id(origin, &public_key);
        let signature = key.sign(body.as_bytes()).to_bytes().to_vec();
        let mut blob = id.to_vec();
        blob.extend_from_slice(&signature);
        let text = format!(
            "{body}\n{SIGNATURE_PREFIX}{origin} {}\n",
            STANDARD.encode(blob)
        );
        Self {
            origin: origin.clone(),
            size,
            root: *root,
            body_len: body.len(),
            text,
            signatures: vec![NoteSignature {
                name: origin.as_str().to_owned(),
                id,
                signature,
            }],
        }
    }

    /// Parses a signed checkpoint note (strictly; the signature is not checked).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        if text.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLong);
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Control);
        }
        let (body, block) = text.rsplit_once("\n\n").ok_or(NoteError::NoSignatures)?;
        let block = block.strip_suffix('\n').ok_or(NoteError::NoSignatures)?;
        let body_len = body.len() + 1;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .and_then(|line| LogOrigin::new(line).ok())
            .ok_or(NoteError::Body("the origin is not a valid key name"))?;
        let size = lines
            .next()
            .and_then(parse_size)
            .ok_or(NoteError::Body("the tree size is not a decimal number"))?;
        let root = lines
            .next()
            .and_then(parse_root)
            .ok_or(NoteError::Body("the root hash is not 32 bytes of base64"))?;
        if lines.next().is_some() {
            return Err(NoteError::Body(
                "podseal checkpoints carry no extension lines",
            ));
        }
        let mut signatures = Vec::new();
        for (i, line) in block.split('\n').enumerate() {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(parse_signature(line).ok_or(NoteError::SignatureLine(i + 1))?);
        }
        Ok(Self {
            origin,
            size,
            root,
            text: text.to_owned(),
            body_len,
            signatures,
        })
    }

    /// True when the Ed25519 key `public_key`, named by this checkpoint's
    /// origin, signed it: a signature line with that name and key id is
    /// there, and every such line verifies.
    pub fn is_signed_by(&self, public_key: &[u8; 32]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(public_key) else {
            return false;
        };
        let id = key_id(&self.origin, public_key);
        let Some(body) = self.text.get(..self.body_len) else {
            return false;
        };
        let mut ours = self
            .signatures
            .iter()
            .filter(|s| s.name == self.origin.as_str() && s.id == id)
            .peekable();
        ours.peek().is_some()
            && ours.all(|s| {
                Signature::from_slice(&s.signature)
                    .is_ok_and(|signature| key.verify_strict(body.as_bytes(), &signature).is_ok())
            })
    }
}

/// A decimal size with no sign, no leading zero and at most [`MAX_SIZE`].
fn parse_size(line: &str) -> Option<u64> {
    let canonical = !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && (line == "0" || !line.starts_with('0'));
    canonical
        .then(|| line.parse::<u64>().ok())
        .flatten()
        .filter(|size| *size <= MAX_SIZE)
}

/// A root hash in canonical standard base64.
fn parse_root(line: &str) -> Option<Hash> {
    let root: Hash = STANDARD.decode(line).ok()?.try_into().ok()?;
    (STANDARD.encode(root) == line).then_some(root)
}

fn parse_signature(line: &str) -> Option<NoteSignature> {
    let (name, blob) = line.strip_prefix(SIGNATURE_PREFIX)?.split_once(' ')?;
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
        return None;
    }
    let blob = STANDARD.decode(blob).ok()?;
    if blob.len() < 5 {
        return None;
    }
    let (id, signature) = blob.split_first_chunk::<4>()?;
    Some(NoteSignature {
        name: name.to_owned(),
        id: *id,
        signature: signature.to_vec(),
    })
}

/// How a checkpoint crosses JSON (an export line, a proof file): its note.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointJson {
    note: String,
}

impl Serialize for Checkpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CheckpointJson {
            note: self.text.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Checkpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = CheckpointJson::deserialize(deserializer)?;
        Self::parse(&json.note).map_err(serde::de::Error::custom)
    }
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
    use crate::audit::AuditKey;
    use crate::audit::merkle::leaf_hash;

    fn origin() -> LogOrigin {
        LogOrigin::new("podseal.example/audit").unwrap()
    }

    fn signed(key: &AuditKey) -> Checkpoint {
        key.checkpoint(&origin(), 1234, &leaf_hash(b"root"))
    }

    #[test]
    fn a_checkpoint_is_a_tlog_checkpoint_in_a_signed_note() {
        let key = AuditKey::from_seed(&[7; 32]);
        let checkpoint = signed(&key);
        let text = checkpoint.note();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines[0], "podseal.example/audit");
        assert_eq!(lines[1], "1234");
        assert_eq!(STANDARD.decode(lines[2]).unwrap(), leaf_hash(b"root"));
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("\u{2014} podseal.example/audit "));
        assert_eq!(lines[5], "", "ends with a newline");
        assert_eq!(lines.len(), 6);
        let blob = STANDARD
            .decode(lines[4].rsplit_once(' ').unwrap().1)
            .unwrap();
        assert_eq!(blob.len(), 68, "4-byte key id and 64-byte signature");
        assert_eq!(blob[..4], key_id(&origin(), &key.public_key()));
        let parsed = Checkpoint::parse(text).unwrap();
        assert_eq!(parsed, checkpoint);
        assert!(parsed.is_signed_by(&key.public_key()));
        assert!(!parsed.is_signed_by(&AuditKey::from_seed(&[8; 32]).public_key()));
    }

    #[test]
    fn the_key_id_and_verifier_key_follow_signed_note() {
        let key = AuditKey::from_seed(&[7; 32]);
        let public = key.public_key();
        let mut preimage = b"podseal.example/audit\n\x01".to_vec();
        preimage.extend_from_slice(&public);
        let digest = Sha256::digest(&preimage);
        assert_eq!(key_id(&origin(), &public), digest[..4]);
        let text = verifier_key_text(&origin(), &public);
        let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        assert!(text.starts_with(&format!("podseal.example/audit+{hex}+")));
        assert_eq!(parse_verifier_key(&text), Some((origin(), public)));
        // Another name, id or algorithm does not parse.
        let other_name = text.replacen("audit+", "audix+", 1);
        assert_eq!(parse_verifier_key(&other_name), None);
        let mut bytes = text.clone().into_bytes();
        let id_at = "podseal.example/audit+".len();
        bytes[id_at] = if bytes[id_at] == b'0' { b'1' } else { b'0' };
        assert_eq!(parse_verifier_key(&String::from_utf8(bytes).unwrap()), None);
        assert_eq!(parse_verifier_key("podseal"), None);
    }

    #[test]
    fn origins_must_be_note_key_names_without_a_scheme() {
        for good in [
            "podseal",
            "podseal.example/audit",
            "host:8443/podseal-audit",
        ] {
            assert!(LogOrigin::new(good).is_ok(), "{good}");
        }
        assert_eq!(LogOrigin::new(""), Err(OriginError::Empty));
        for bad in ["a b", "a+b", "a\tb", "a\u{2003}b", "a\u{7}b"] {
            assert!(
                matches!(LogOrigin::new(bad), Err(OriginError::Character(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            LogOrigin::new("https://podseal.example"),
            Err(OriginError::Scheme(_))
        ));
        assert_eq!(LogOrigin::new(&"a".repeat(256)), Err(OriginError::TooLong));
    }

    /// Our verifier refuses a note with any one byte of it changed: body,
    /// blank line, signature name, key id or signature.
    #[test]
    fn any_edited_byte_of_a_checkpoint_note_is_refused() {
        let key = AuditKey::from_seed(&[9; 32]);
        let text = signed(&key).note().to_owned();
        for i in 0..text.len() {
            for delta in [1u8, 0x20, 0x80] {
                let mut bytes = text.clone().into_bytes();
                bytes[i] ^= delta;
                let Ok(edited) = String::from_utf8(bytes) else {
                    continue;
                };
                let accepted = Checkpoint::parse(&edited)
                    .map(|c| c.is_signed_by(&key.public_key()))
                    .unwrap_or(false);
                assert!(
                    !accepted,
                    "byte {i} ^ {delta:#x} still verifies: {edited:?}"
                );
            }
        }
        // Removing or adding a byte anywhere.
        for i in 0..text.len() {
            let mut shorter = text.clone();
            if shorter.is_char_boundary(i) && shorter.is_char_boundary(i + 1) {
                shorter.remove(i);
                let ok =
                    Checkpoint::parse(&shorter).is_ok_and(|c| c.is_signed_by(&key.public_key()));
                assert!(!ok, "byte {i} removed still verifies");
            }
            if text.is_char_boundary(i) {
                let mut longer = text.clone();
                longer.insert(i, 'x');
                let ok =
                    Checkpoint::parse(&longer).is_ok_and(|c| c.is_signed_by(&key.public_key()));
                assert!(!ok, "byte inserted at {i} still verifies");
            }
        }
    }

    #[test]
    fn other_signatures_may_follow_ours_but_not_replace_it() {
        let key = AuditKey::from_seed(&[9; 32]);
        let witness = AuditKey::from_seed(&[10; 32]);
        let ours = signed(&key);
        let theirs = witness.checkpoint(&origin(), 1234, &leaf_hash(b"root"));
        let their_line = theirs.note().rsplit_once("\n\n").unwrap().1;
        let cosigned = format!("{}{their_line}", ours.note());
        let parsed = Checkpoint::parse(&cosigned).unwrap();
        assert!(parsed.is_signed_by(&key.public_key()));
        assert!(parsed.is_signed_by(&witness.public_key()));
        // Our name and id with a bad signature beside a good one: refused.
        let mut blob = STANDARD
            .decode(ours.note().trim_end().rsplit_once(' ').unwrap().1)
            .unwrap();
        blob[10] ^= 1;
        let forged = format!(
            "{}{SIGNATURE_PREFIX}{} {}\n",
            ours.note(),
            origin(),
            STANDARD.encode(&blob)
        );
        assert!(
            !Checkpoint::parse(&forged)
                .unwrap()
                .is_signed_by(&key.public_key())
        );
    }

    #[test]
    fn malformed_notes_say_what_is_wrong() {
        let key = AuditKey::from_seed(&[9; 32]);
        let text = signed(&key).note().to_owned();
        let (body, sig) = text.split_once("\n\n").unwrap();
        assert_eq!(Checkpoint::parse(body), Err(NoteError::NoSignatures));
        assert_eq!(
            Checkpoint::parse(&format!("{body}\nextension\n\n{sig}")),
            Err(NoteError::Body(
                "podseal checkpoints carry no extension lines"
            ))
        );
        assert!(matches!(
            Checkpoint::parse(&text.replacen("1234", "01234", 1)),
            Err(NoteError::Body(_))
        ));
        assert!(matches!(
            Checkpoint::parse(&text.replacen("1234", "+1234", 1)),
            Err(NoteError::Body(_))
        ));
        assert!(matches!(
            Checkpoint::parse(&format!("{text}garbage\n")),
            Err(NoteError::SignatureLine(2))
        ));
        assert_eq!(
            Checkpoint::parse(&text.replace('\n', "\r\n")),
            Err(NoteError::Control)
        );
        assert_eq!(
            Checkpoint::parse(&"a".repeat(MAX_NOTE_LEN + 1)),
            Err(NoteError::TooLong)
        );
    }
}
