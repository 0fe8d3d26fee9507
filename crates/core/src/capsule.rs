//! The capsule: a header, one or more DEK wrap stanzas, and the content
//! ciphertext, in a length-prefixed binary body under the `podseal:v1:` armor.
//!
//! The header is JSON, and the capsule carries its exact bytes: they are the
//! associated data of the content AEAD and of every wrap, so nothing is ever
//! re-serialized and any edit of the header breaks every seal at once. The
//! wrap stanzas sit outside the header so that re-wrapping the data key to a
//! new org key replaces a stanza and never touches the header or the content.
//!
//! Body layout (all integers big-endian):
//!
//! ```text
//! u16 header_len ‖ header (JSON, at most 8 KiB)
//! u8  stanza_count (1..=16)
//!     per stanza: u8 kind ‖ u16 body_len (at most 4 KiB) ‖ body
//!       kind 0x01 hpke:    u8 kid_len ‖ kid ‖ u16 kem ‖ u16 kdf ‖ u16 aead
//!                          ‖ u16 enc_len ‖ enc ‖ u16 wrapped_len ‖ wrapped_dek
//!       kind 0x02 transit: u8 key_name_len ‖ key_name ‖ u32 key_version
//!                          ‖ u16 ciphertext_len ‖ ciphertext (as the engine returned it)
//!       any other kind:    opaque; kept as bytes, skipped when opening
//! 12 bytes content nonce
//! u32 ciphertext_len ‖ ciphertext (with the GCM tag)
//! ```
//!
//! Every stanza is length-delimited, so a reader skips a kind it does not
//! know (as age keeps recipient stanzas it cannot use) and a re-wrap to a
//! new org key carries it over unchanged. A known kind's fields must fill
//! its body exactly.
//!
//! **Format version.** This layout changed v1 in place (stanza kinds, the
//! tagged scope): no capsule existed outside this repository, and one reader
//! is less to maintain and to get wrong than two. A body of the earlier
//! layout never parses as this one: its first stanza byte (a kid length of
//! 22) reads as an unknown kind whose body length, two base64url kid
//! characters, is at least 0x2D2D, over the 4 KiB bound (testkit case
//! `earlier_stanza_layout`). From now on a change that an existing reader
//! would misread needs `podseal:v2:`.
//!
//! Parse errors name the field: a capsule is public data.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::armor::{self, ArmorError};
use crate::hpke::{NONCE_LEN, Suite, TAG_LEN};
use crate::reason::Reason;
use crate::secret::DEK_LEN;

pub use crate::scope::{
    KubernetesScope, NameRule, OidcScope, Scope, ScopeKind, SecretSlot, SlotMismatch, SpiffeScope,
    check_name,
};

/// The only header format version this build reads and writes.
pub const FORMAT_VERSION: u8 = 1;
/// The largest secret a capsule may hold (the Kubernetes object size limit).
pub const MAX_PLAINTEXT_LEN: usize = 1024 * 1024;
/// The largest header accepted.
pub const MAX_HEADER_LEN: usize = 8 * 1024;
/// The most wrap stanzas a capsule may carry, whatever their kinds.
pub const MAX_STANZAS: usize = 16;
/// The largest stanza body accepted (room for a post-quantum KEM's
/// encapsulation: ML-KEM-1024's is 1568 bytes).
pub const MAX_STANZA_BODY_LEN: usize = 4 * 1024;
/// The longest transit key name accepted.
pub const MAX_TRANSIT_KEY_NAME_LEN: usize = 128;
/// The longest transit ciphertext accepted (a 32-byte DEK encrypted by
/// OpenBao/Vault transit is under 100 bytes: `vault:v<N>:` and base64).
pub const MAX_TRANSIT_CIPHERTEXT_LEN: usize = 1024;

/// The type tag of an `hpke` stanza.
pub const HPKE_STANZA: u8 = 0x01;
/// The type tag of a `transit` stanza.
pub const TRANSIT_STANZA: u8 = 0x02;

/// The content cipher named in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContentCipher {
    /// AES-256-GCM with a random 96-bit nonce.
    #[serde(rename = "AES-256-GCM")]
    Aes256Gcm,
}

/// How many times a capsule may be released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RevealMode {
    /// Released to every approved pod, as often as asked.
    #[default]
    Many,
    /// Released exactly once, cluster-wide.
    Once,
}

/// The capsule header. Every field is fixed for the capsule's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Header format version; always [`FORMAT_VERSION`].
    pub v: u8,
    /// The content cipher.
    pub cipher: ContentCipher,
    /// A random capsule id (16 bytes, base64url).
    pub id: String,
    /// The release scope.
    pub scope: Scope,
    /// The purpose this secret serves, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Release once or many times.
    pub reveal: RevealMode,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// After this time (Unix seconds) the capsule is not released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
}

/// An org key id: base64url of the first 16 bytes of SHA-256 over the
/// serialized public key (22 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Kid(String);

impl Kid {
    /// Length of a kid in characters.
    pub const LEN: usize = 22;

    /// The kid of a serialized public key.
    pub fn of_public_key(public_key: &[u8]) -> Self {
        use base64::Engine as _;
        let digest = Sha256::digest(public_key);
        let truncated = digest.get(..16).unwrap_or_default();
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(truncated))
    }

    /// The kid as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Kid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Kid {
    type Error = CapsuleError;
    fn try_from(text: String) -> Result<Self, CapsuleError> {
        let well_formed = text.len() == Self::LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if well_formed {
            Ok(Self(text))
        } else {
            Err(CapsuleError::BadKid)
        }
    }
}

impl From<Kid> for String {
    fn from(kid: Kid) -> String {
        kid.0
    }
}

/// One wrap of the data key: a kind, then that kind's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stanza {
    /// The DEK sealed with HPKE to an org public key.
    Hpke(HpkeStanza),
    /// The DEK encrypted by an external OpenBao/Vault transit key.
    Transit(TransitStanza),
    /// A kind this build does not know, kept as it was read.
    Unknown(UnknownStanza),
}

/// The DEK sealed (HPKE single-shot, info `podseal/v1 wrap`, aad = header
/// ‖ kid) to one org public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpkeStanza {
    /// Which org key this wrap opens with.
    pub kid: Kid,
    /// The HPKE suite of the wrap.
    pub suite: Suite,
    /// The HPKE encapsulated key.
    pub enc: Vec<u8>,
    /// The data key sealed with HPKE.
    pub wrapped_dek: Vec<u8>,
}

/// The DEK encrypted by a transit engine's named key. Parsed and kept; no
/// transit provider exists yet, so such a stanza is never opened here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitStanza {
    /// The transit key's name (`[A-Za-z0-9._-]`, at most 128 characters).
    pub key_name: String,
    /// The key version that encrypted it (1 or more).
    pub key_version: u32,
    /// The ciphertext exactly as the engine returned it.
    pub ciphertext: Vec<u8>,
}

/// A stanza of a kind this build does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStanza {
    /// Its type tag (never one of the known ones).
    pub kind: u8,
    /// Its body, opaque.
    pub body: Vec<u8>,
}

impl Stanza {
    /// The type tag written before the body.
    pub fn kind_tag(&self) -> u8 {
        match self {
            Self::Hpke(_) => HPKE_STANZA,
            Self::Transit(_) => TRANSIT_STANZA,
            Self::Unknown(s) => s.kind,
        }
    }

    /// The kind's name: `hpke`, `transit` or `unknown`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Hpke(_) => "hpke",
            Self::Transit(_) => "transit",
            Self::Unknown(_) => "unknown",
        }
    }

    /// The org key id of an `hpke` stanza.
    pub fn hpke_kid(&self) -> Option<&Kid> {
        match self {
            Self::Hpke(s) => Some(&s.kid),
            _ => None,
        }
    }

    /// Which key the stanza is for, in words (public facts only).
    pub fn key_label(&self) -> String {
        match self {
            Self::Hpke(s) => format!("hpke kid {}", s.kid),
            Self::Transit(s) => format!("transit key {} version {}", s.key_name, s.key_version),
            Self::Unknown(s) => format!("unknown kind {:#04x}", s.kind),
        }
    }

    fn validate(&self) -> Result<(), CapsuleError> {
        match self {
            Self::Hpke(s) => {
                if s.enc.len() != s.suite.kem.public_key_len() {
                    return Err(CapsuleError::MalformedStanza(
                        "enc has the wrong length for its KEM",
                    ));
                }
                if s.wrapped_dek.len() != DEK_LEN + TAG_LEN {
                    return Err(CapsuleError::MalformedStanza(
                        "wrapped key has the wrong length",
                    ));
                }
            }
            Self::Transit(s) => {
                let name_ok = !s.key_name.is_empty()
                    && s.key_name.len() <= MAX_TRANSIT_KEY_NAME_LEN
                    && s.key_name != "."
                    && s.key_name != ".."
                    && s.key_name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !name_ok {
                    return Err(CapsuleError::MalformedStanza(
                        "transit key name must be 1 to 128 letters, digits, '.', '_' and '-'",
                    ));
                }
                if s.key_version == 0 {
                    return Err(CapsuleError::MalformedStanza(
                        "transit key version must be 1 or more",
                    ));
                }
                if s.ciphertext.is_empty() || s.ciphertext.len() > MAX_TRANSIT_CIPHERTEXT_LEN {
                    return Err(CapsuleError::MalformedStanza(
                        "transit ciphertext must be 1 to 1024 bytes",
                    ));
                }
            }
            Self::Unknown(s) => {
                if s.kind == HPKE_STANZA || s.kind == TRANSIT_STANZA {
                    return Err(CapsuleError::MalformedStanza(
                        "an unknown stanza cannot carry a known kind's tag",
                    ));
                }
            }
        }
        if self.body_len() > MAX_STANZA_BODY_LEN {
            return Err(CapsuleError::TooLarge {
                field: "stanza body",
            });
        }
        Ok(())
    }

    fn body_len(&self) -> usize {
        match self {
            Self::Hpke(s) => {
                1 + s.kid.as_str().len() + 6 + 2 + s.enc.len() + 2 + s.wrapped_dek.len()
            }
            Self::Transit(s) => 1 + s.key_name.len() + 4 + 2 + s.ciphertext.len(),
            Self::Unknown(s) => s.body.len(),
        }
    }

    /// Appends kind, body length and body. Lengths were bounded by
    /// [`Stanza::validate`], so the conversions below do not saturate.
    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.kind_tag());
        out.extend_from_slice(
            &u16::try_from(self.body_len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        match self {
            Self::Hpke(s) => {
                put_u8_prefixed(out, s.kid.as_str().as_bytes());
                for id in [s.suite.kem.id(), s.suite.kdf.id(), s.suite.aead.id()] {
                    out.extend_from_slice(&id.to_be_bytes());
                }
                put_u16_prefixed(out, &s.enc);
                put_u16_prefixed(out, &s.wrapped_dek);
            }
            Self::Transit(s) => {
                put_u8_prefixed(out, s.key_name.as_bytes());
                out.extend_from_slice(&s.key_version.to_be_bytes());
                put_u16_prefixed(out, &s.ciphertext);
            }
            Self::Unknown(s) => out.extend_from_slice(&s.body),
        }
    }
}

/// The part of a capsule the release server sees: the exact header bytes and
/// the wrap stanzas, never the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DekEnvelope {
    header_bytes: Vec<u8>,
    header: Header,
    stanzas: Vec<Stanza>,
}

impl DekEnvelope {
    /// Builds an envelope from header bytes, parsing and validating them.
    pub fn new(header_bytes: Vec<u8>, stanzas: Vec<Stanza>) -> Result<Self, CapsuleError> {
        let header = parse_header(&header_bytes)?;
        if stanzas.is_empty() || stanzas.len() > MAX_STANZAS {
            return Err(CapsuleError::StanzaCount(stanzas.len()));
        }
        for stanza in &stanzas {
            stanza.validate()?;
        }
        Ok(Self {
            header_bytes,
            header,
            stanzas,
        })
    }

    /// The envelope's own encoding: the capsule body without nonce and
    /// ciphertext, which is all a release request may carry.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.header_bytes.len() + 256);
        write_envelope(&mut out, self);
        out
    }

    /// Parses [`DekEnvelope::to_bytes`]. Bytes after the stanzas mean the
    /// sender included content: refused as [`CapsuleError::ContentPresent`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CapsuleError> {
        let mut reader = Reader::of_body(bytes);
        let envelope = read_envelope(&mut reader)?;
        if !reader.rest.is_empty() {
            return Err(CapsuleError::ContentPresent);
        }
        Ok(envelope)
    }

    /// The wraps of the data key, in capsule order.
    pub fn stanzas(&self) -> &[Stanza] {
        &self.stanzas
    }

    /// Replaces the wraps, keeping the header (used by org-key rotation).
    pub fn with_stanzas(&self, stanzas: Vec<Stanza>) -> Result<Self, CapsuleError> {
        Self::new(self.header_bytes.clone(), stanzas)
    }

    /// The exact header bytes (the associated data of every seal).
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }
}

/// A sealed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capsule {
    /// Header and wraps.
    pub envelope: DekEnvelope,
    /// The content nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The content ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

/// Why bytes are not a well-formed capsule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapsuleError {
    /// The armor is wrong.
    #[error(transparent)]
    Armor(#[from] ArmorError),
    /// The body ends before `field`.
    #[error("capsule is truncated: it ends inside the {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes follow the ciphertext.
    #[error("capsule has {0} unexpected bytes after the ciphertext")]
    TrailingBytes(usize),
    /// The header is not valid JSON of the expected shape.
    #[error("capsule header is malformed: {0}")]
    HeaderSyntax(String),
    /// A header field has a value this build refuses.
    #[error("capsule header field `{field}` is invalid: {reason}")]
    HeaderField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Too few or too many stanzas.
    #[error("capsule has {0} wrap stanzas (1 to {MAX_STANZAS} allowed)")]
    StanzaCount(usize),
    /// A stanza names an HPKE suite this build does not implement.
    #[error(
        "wrap stanza uses an unsupported HPKE suite (kem {kem:#06x}, kdf {kdf:#06x}, aead {aead:#06x})"
    )]
    UnsupportedSuite {
        /// KEM id.
        kem: u16,
        /// KDF id.
        kdf: u16,
        /// AEAD id.
        aead: u16,
    },
    /// A stanza's lengths do not fit its suite.
    #[error("wrap stanza is malformed: {0}")]
    MalformedStanza(&'static str),
    /// A stanza's body ends before `field`, inside a capsule that goes on.
    #[error("wrap stanza is malformed: its body ends inside the {field}")]
    StanzaTruncated {
        /// The field being read.
        field: &'static str,
    },
    /// The header's scope names a kind this build does not know.
    #[error(
        "capsule header field `scope` names the kind `{0}`, which this build does not know (it knows kubernetes, spiffe and oidc)"
    )]
    UnknownScopeKind(String),
    /// A stanza's kid is not 22 base64url characters.
    #[error("wrap stanza has a malformed key id")]
    BadKid,
    /// A DEK envelope was followed by more bytes: the sender included content.
    #[error("the request carries capsule content; send the header and wraps only")]
    ContentPresent,
    /// A length field exceeds what its format allows.
    #[error("capsule {field} is too large")]
    TooLarge {
        /// The field.
        field: &'static str,
    },
}

impl CapsuleError {
    /// A stable machine-readable code (used by the testkit, problem+json and audit).
    pub fn reason(&self) -> Reason {
        match self {
            Self::Armor(ArmorError::Empty) => Reason::ArmorEmpty,
            Self::Armor(ArmorError::MissingPrefix) => Reason::ArmorMissingPrefix,
            Self::Armor(ArmorError::UnsupportedVersion(_)) => Reason::ArmorUnsupportedVersion,
            Self::Armor(ArmorError::TooLarge { .. }) => Reason::ArmorTooLarge,
            Self::Armor(ArmorError::Base64) => Reason::ArmorBase64,
            Self::Truncated { .. } => Reason::CapsuleTruncated,
            Self::TrailingBytes(_) => Reason::CapsuleTrailingBytes,
            Self::HeaderSyntax(_) => Reason::CapsuleHeaderSyntax,
            Self::HeaderField { .. } => Reason::CapsuleHeaderField,
            Self::UnknownScopeKind(_) => Reason::CapsuleScopeKindUnknown,
            Self::StanzaCount(_) => Reason::CapsuleStanzaCount,
            Self::UnsupportedSuite { .. } => Reason::CapsuleUnsupportedSuite,
            Self::MalformedStanza(_) => Reason::CapsuleMalformedStanza,
            Self::StanzaTruncated { .. } => Reason::CapsuleStanzaTruncated,
            Self::BadKid => Reason::CapsuleBadKid,
            Self::TooLarge { .. } => Reason::CapsuleTooLarge,
            Self::ContentPresent => Reason::ContentCiphertextPresent,
        }
    }
}

impl Capsule {
    /// Parses an armored capsule.
    pub fn from_armored(text: &str) -> Result<Self, CapsuleError> {
        Self::from_bytes(&armor::decode(text)?)
    }

    /// The armored text form.
    pub fn to_armored(&self) -> String {
        armor::encode(&self.to_bytes())
    }

    /// Parses a binary body.
    pub fn from_bytes(body: &[u8]) -> Result<Self, CapsuleError> {
        let mut reader = Reader::of_body(body);
        let envelope = read_envelope(&mut reader)?;
        let nonce: [u8; NONCE_LEN] = reader
            .take(NONCE_LEN, "content nonce")?
            .try_into()
            .map_err(|_| CapsuleError::Truncated {
                field: "content nonce",
            })?;
        let ct_len = usize::try_from(reader.u32("ciphertext length")?).map_err(|_| {
            CapsuleError::TooLarge {
                field: "ciphertext",
            }
        })?;
        if ct_len > MAX_PLAINTEXT_LEN + TAG_LEN {
            return Err(CapsuleError::TooLarge {
                field: "ciphertext",
            });
        }
        let ciphertext = reader.take(ct_len, "ciphertext")?.to_vec();
        if !reader.rest.is_empty() {
            return Err(CapsuleError::TrailingBytes(reader.rest.len()));
        }
        Ok(Self {
            envelope,
            nonce,
            ciphertext,
        })
    }

    /// The binary body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ciphertext.len() + 512);
        write_envelope(&mut out, &self.envelope);
        out.extend_from_slice(&self.nonce);
        put_u32_prefixed(&mut out, &self.ciphertext);
        out
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        self.envelope.header()
    }
}

fn read_envelope(reader: &mut Reader<'_>) -> Result<DekEnvelope, CapsuleError> {
    let header_len = usize::from(reader.u16("header length")?);
    if header_len > MAX_HEADER_LEN {
        return Err(CapsuleError::TooLarge { field: "header" });
    }
    let header_bytes = reader.take(header_len, "header")?.to_vec();
    let count = usize::from(reader.u8("stanza count")?);
    if count == 0 || count > MAX_STANZAS {
        return Err(CapsuleError::StanzaCount(count));
    }
    let stanzas = (0..count)
        .map(|_| read_stanza(reader))
        .collect::<Result<_, _>>()?;
    DekEnvelope::new(header_bytes, stanzas)
}

fn write_envelope(out: &mut Vec<u8>, envelope: &DekEnvelope) {
    put_u16_prefixed(out, envelope.header_bytes());
    // Lengths below are bounded by `DekEnvelope::new`'s checks.
    out.push(u8::try_from(envelope.stanzas.len()).unwrap_or(u8::MAX));
    for stanza in &envelope.stanzas {
        stanza.write(out);
    }
}

fn put_u8_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(bytes);
}

fn put_u16_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_u32_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads kind and body, then the body's fields for a known kind. The body
/// is read whole first, so a short body is a malformed stanza, never a read
/// into the next stanza.
fn read_stanza(reader: &mut Reader<'_>) -> Result<Stanza, CapsuleError> {
    let kind = reader.u8("stanza kind")?;
    let body_len = usize::from(reader.u16("stanza body length")?);
    if body_len > MAX_STANZA_BODY_LEN {
        return Err(CapsuleError::TooLarge {
            field: "stanza body",
        });
    }
    let body = reader.take(body_len, "stanza body")?;
    let mut fields = Reader::of_stanza(body);
    let stanza = match kind {
        HPKE_STANZA => Stanza::Hpke(read_hpke(&mut fields)?),
        TRANSIT_STANZA => Stanza::Transit(read_transit(&mut fields)?),
        _ => {
            return Ok(Stanza::Unknown(UnknownStanza {
                kind,
                body: body.to_vec(),
            }));
        }
    };
    if !fields.rest.is_empty() {
        return Err(CapsuleError::MalformedStanza(
            "bytes follow the last field of the stanza's body",
        ));
    }
    Ok(stanza)
}

fn read_hpke(reader: &mut Reader<'_>) -> Result<HpkeStanza, CapsuleError> {
    let kid_len = usize::from(reader.u8("key id length")?);
    let kid = reader.take(kid_len, "key id")?;
    let kid = Kid::try_from(String::from_utf8(kid.to_vec()).map_err(|_| CapsuleError::BadKid)?)?;
    let (kem, kdf, aead) = (
        reader.u16("suite")?,
        reader.u16("suite")?,
        reader.u16("suite")?,
    );
    let suite =
        Suite::from_ids(kem, kdf, aead).ok_or(CapsuleError::UnsupportedSuite { kem, kdf, aead })?;
    let enc_len = usize::from(reader.u16("enc length")?);
    let enc = reader.take(enc_len, "enc")?.to_vec();
    let wrapped_len = usize::from(reader.u16("wrapped key length")?);
    let wrapped_dek = reader.take(wrapped_len, "wrapped key")?.to_vec();
    Ok(HpkeStanza {
        kid,
        suite,
        enc,
        wrapped_dek,
    })
}

fn read_transit(reader: &mut Reader<'_>) -> Result<TransitStanza, CapsuleError> {
    let name_len = usize::from(reader.u8("transit key name length")?);
    let key_name = String::from_utf8(reader.take(name_len, "transit key name")?.to_vec())
        .map_err(|_| CapsuleError::MalformedStanza("transit key name is not UTF-8"))?;
    let key_version = reader.u32("transit key version")?;
    let ct_len = usize::from(reader.u16("transit ciphertext length")?);
    let ciphertext = reader.take(ct_len, "transit ciphertext")?.to_vec();
    Ok(TransitStanza {
        key_name,
        key_version,
        ciphertext,
    })
}

struct Reader<'a> {
    rest: &'a [u8],
    /// The error for input that ends before `field`.
    truncated: fn(&'static str) -> CapsuleError,
}

impl<'a> Reader<'a> {
    fn of_body(rest: &'a [u8]) -> Self {
        Self {
            rest,
            truncated: |field| CapsuleError::Truncated { field },
        }
    }

    fn of_stanza(rest: &'a [u8]) -> Self {
        Self {
            rest,
            truncated: |field| CapsuleError::StanzaTruncated { field },
        }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CapsuleError> {
        if self.rest.len() < n {
            return Err((self.truncated)(field));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CapsuleError> {
        self.take(N, field)?
            .try_into()
            .map_err(|_| (self.truncated)(field))
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, CapsuleError> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, CapsuleError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, CapsuleError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
}

/// Parses and validates header bytes.
pub fn parse_header(bytes: &[u8]) -> Result<Header, CapsuleError> {
    if bytes.len() > MAX_HEADER_LEN {
        return Err(CapsuleError::TooLarge { field: "header" });
    }
    let header: Header = serde_json::from_slice(bytes).map_err(|e| {
        unknown_scope_kind(bytes).map_or_else(
            || CapsuleError::HeaderSyntax(e.to_string()),
            CapsuleError::UnknownScopeKind,
        )
    })?;
    header.validate()?;
    Ok(header)
}

/// After a header failed to parse: the scope's kind, when the scope is an
/// object of one key that names no kind this build knows. Only the error
/// path pays for this second look.
fn unknown_scope_kind(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        scope: serde_json::Map<String, serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    let mut kinds = probe.scope.keys();
    match (kinds.next(), kinds.next()) {
        (Some(kind), None) if ScopeKind::from_name(kind).is_none() => {
            // The name is attacker-chosen: bound it before it reaches a log.
            Some(
                kind.chars()
                    .take(64)
                    .flat_map(char::escape_default)
                    .collect(),
            )
        }
        _ => None,
    }
}

impl Header {
    /// Checks every field against the rules the CLI and server enforce.
    pub fn validate(&self) -> Result<(), CapsuleError> {
        let field =
            |field: &'static str, reason: String| CapsuleError::HeaderField { field, reason };
        if self.v != FORMAT_VERSION {
            return Err(field("v", format!("version {} is not supported", self.v)));
        }
        if Kid::try_from(self.id.clone()).is_err() {
            return Err(field("id", "must be 22 base64url characters".into()));
        }
        self.scope
            .validate()
            .map_err(|e| field(e.field, e.reason))?;
        if let Some(purpose) = &self.purpose {
            check_name(purpose, NameRule::Subdomain)
                .map_err(|r| field("purpose", r.to_string()))?;
        }
        if self
            .not_after
            .is_some_and(|not_after| not_after <= self.created_at)
        {
            return Err(field("not_after", "must be later than created_at".into()));
        }
        Ok(())
    }
}
