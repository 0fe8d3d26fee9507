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
//! u16 header_len ‖ header (JSON)
//! u8  stanza_count (1..=16)
//!     per stanza: u8 kid_len ‖ kid ‖ u16 kem ‖ u16 kdf ‖ u16 aead
//!                 ‖ u16 enc_len ‖ enc ‖ u16 wrapped_len ‖ wrapped_dek
//! 12 bytes content nonce
//! u32 ciphertext_len ‖ ciphertext (with the GCM tag)
//! ```
//!
//! Parse errors name the field: a capsule is public data.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::armor::{self, ArmorError};
use crate::hpke::{NONCE_LEN, Suite, TAG_LEN};
use crate::reason::Reason;
use crate::secret::DEK_LEN;

/// The only header format version this build reads and writes.
pub const FORMAT_VERSION: u8 = 1;
/// The largest secret a capsule may hold (the Kubernetes object size limit).
pub const MAX_PLAINTEXT_LEN: usize = 1024 * 1024;
/// The largest header accepted.
pub const MAX_HEADER_LEN: usize = 8 * 1024;
/// The most wrap stanzas a capsule may carry.
pub const MAX_STANZAS: usize = 16;

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

/// Where a capsule may be released: the identity the server must verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// The cluster name the server knows the cluster by.
    pub cluster: String,
    /// The namespace of the pods that may receive it.
    pub namespace: String,
    /// The service accounts (in that namespace) that may receive it.
    pub service_accounts: Vec<String>,
    /// The secret's name (the Kubernetes `Secret`'s name for manifests).
    pub name: String,
    /// The data key within that `Secret`, when the capsule is one of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
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

/// One wrap of the data key to one org public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// Which org key this wrap opens with.
    pub kid: Kid,
    /// The HPKE suite of the wrap.
    pub suite: Suite,
    /// The HPKE encapsulated key.
    pub enc: Vec<u8>,
    /// The data key sealed with HPKE.
    pub wrapped_dek: Vec<u8>,
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
            if stanza.enc.len() != stanza.suite.kem.public_key_len() {
                return Err(CapsuleError::MalformedStanza(
                    "enc has the wrong length for its KEM",
                ));
            }
            if stanza.wrapped_dek.len() != DEK_LEN + TAG_LEN {
                return Err(CapsuleError::MalformedStanza(
                    "wrapped key has the wrong length",
                ));
            }
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
        let mut reader = Reader { rest: bytes };
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
            Self::StanzaCount(_) => Reason::CapsuleStanzaCount,
            Self::UnsupportedSuite { .. } => Reason::CapsuleUnsupportedSuite,
            Self::MalformedStanza(_) => Reason::CapsuleMalformedStanza,
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
        let mut reader = Reader { rest: body };
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
        let kid = stanza.kid.as_str().as_bytes();
        out.push(u8::try_from(kid.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(kid);
        for id in [
            stanza.suite.kem.id(),
            stanza.suite.kdf.id(),
            stanza.suite.aead.id(),
        ] {
            out.extend_from_slice(&id.to_be_bytes());
        }
        put_u16_prefixed(out, &stanza.enc);
        put_u16_prefixed(out, &stanza.wrapped_dek);
    }
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

fn read_stanza(reader: &mut Reader<'_>) -> Result<Stanza, CapsuleError> {
    let kid_len = usize::from(reader.u8("stanza key id length")?);
    let kid = reader.take(kid_len, "stanza key id")?;
    let kid = Kid::try_from(String::from_utf8(kid.to_vec()).map_err(|_| CapsuleError::BadKid)?)?;
    let (kem, kdf, aead) = (
        reader.u16("stanza suite")?,
        reader.u16("stanza suite")?,
        reader.u16("stanza suite")?,
    );
    let suite =
        Suite::from_ids(kem, kdf, aead).ok_or(CapsuleError::UnsupportedSuite { kem, kdf, aead })?;
    let enc_len = usize::from(reader.u16("stanza enc length")?);
    let enc = reader.take(enc_len, "stanza enc")?.to_vec();
    let wrapped_len = usize::from(reader.u16("stanza wrapped key length")?);
    let wrapped_dek = reader.take(wrapped_len, "stanza wrapped key")?.to_vec();
    Ok(Stanza {
        kid,
        suite,
        enc,
        wrapped_dek,
    })
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CapsuleError> {
        if self.rest.len() < n {
            return Err(CapsuleError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, CapsuleError> {
        let [b] = self
            .take(1, field)?
            .try_into()
            .map_err(|_| CapsuleError::Truncated { field })?;
        Ok(b)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, CapsuleError> {
        let bytes = self
            .take(2, field)?
            .try_into()
            .map_err(|_| CapsuleError::Truncated { field })?;
        Ok(u16::from_be_bytes(bytes))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, CapsuleError> {
        let bytes = self
            .take(4, field)?
            .try_into()
            .map_err(|_| CapsuleError::Truncated { field })?;
        Ok(u32::from_be_bytes(bytes))
    }
}

/// Parses and validates header bytes.
pub fn parse_header(bytes: &[u8]) -> Result<Header, CapsuleError> {
    if bytes.len() > MAX_HEADER_LEN {
        return Err(CapsuleError::TooLarge { field: "header" });
    }
    let header: Header =
        serde_json::from_slice(bytes).map_err(|e| CapsuleError::HeaderSyntax(e.to_string()))?;
    header.validate()?;
    Ok(header)
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
        self.scope.validate()?;
        if let Some(purpose) = &self.purpose {
            check_name(purpose, NameRule::Subdomain).map_err(|r| field("purpose", r))?;
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

impl Scope {
    /// Checks names against Kubernetes' own rules.
    pub fn validate(&self) -> Result<(), CapsuleError> {
        let field =
            |field: &'static str, reason: String| CapsuleError::HeaderField { field, reason };
        check_name(&self.cluster, NameRule::Label).map_err(|r| field("scope.cluster", r))?;
        check_name(&self.namespace, NameRule::Label).map_err(|r| field("scope.namespace", r))?;
        if self.service_accounts.is_empty() {
            return Err(field(
                "scope.service_accounts",
                "at least one is required".into(),
            ));
        }
        for (i, sa) in self.service_accounts.iter().enumerate() {
            check_name(sa, NameRule::Subdomain).map_err(|r| field("scope.service_accounts", r))?;
            if self
                .service_accounts
                .iter()
                .take(i)
                .any(|other| other == sa)
            {
                return Err(field(
                    "scope.service_accounts",
                    format!("`{sa}` is listed twice"),
                ));
            }
        }
        check_name(&self.name, NameRule::Subdomain).map_err(|r| field("scope.name", r))?;
        if let Some(key) = &self.key {
            check_name(key, NameRule::SecretKey).map_err(|r| field("scope.key", r))?;
        }
        Ok(())
    }
}

/// Which Kubernetes naming rule a name follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
    Label,
    /// RFC 1123 subdomain: labels joined by dots, at most 253 characters.
    Subdomain,
    /// A `Secret` data key: `[-._a-zA-Z0-9]+`, at most 253 characters.
    SecretKey,
}

/// Checks `name` against `rule`, saying what is wrong.
pub fn check_name(name: &str, rule: NameRule) -> Result<(), String> {
    let max = if rule == NameRule::Label { 63 } else { 253 };
    if name.is_empty() || name.len() > max {
        return Err(format!("must be 1 to {max} characters"));
    }
    let ok = match rule {
        NameRule::SecretKey => {
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                && name != "."
                && name != ".."
        }
        NameRule::Label => is_label(name),
        NameRule::Subdomain => name.split('.').all(is_label),
    };
    if ok {
        Ok(())
    } else {
        Err(match rule {
            NameRule::Label => "must be lowercase letters, digits and '-', starting and ending with a letter or digit".into(),
            NameRule::Subdomain => "must be lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit".into(),
            NameRule::SecretKey => "must be letters, digits, '-', '_' and '.'".into(),
        })
    }
}

fn is_label(part: &str) -> bool {
    let bytes = part.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}
