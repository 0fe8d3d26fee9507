//! Sealing, opening and re-wrapping: the envelope around each capsule's DEK.
//!
//! - [`seal`] draws a DEK, encrypts the content with AES-256-GCM under the
//!   exact header bytes, and wraps the DEK to each org public key with HPKE
//!   (info `podseal/v1 wrap`, aad = header ‖ kid).
//! - [`rewrap_for_release`] is all the release server does with a capsule: it
//!   opens its own stanza and seals the DEK to a pod's ephemeral X25519 key
//!   (info `podseal/v1 release`, aad = header ‖ session id ‖ DPoP `jti`). It
//!   takes a [`DekEnvelope`], which has no content ciphertext in it at all.
//! - [`open_release`] is the pod's half; [`decrypt_content`] then opens the
//!   content in the pod's memory.
//! - [`rewrap_to_org_key`] moves a capsule to a new org key by replacing one
//!   stanza, leaving header and content untouched.
//!
//! `‖` is length-prefixed concatenation (each part preceded by its length as
//! a big-endian u32), so no two different tuples produce the same bytes.
//! Every opening failure is the one opaque [`OpenError::DidNotOpen`].
//!
//! Opening looks at `hpke` stanzas only: `transit` stanzas (no transit
//! provider exists yet) and kinds this build does not know are skipped, and
//! kept by [`rewrap_to_org_key`]. A capsule with no stanza of a known kind is
//! [`OpenError::NoKnownStanzaKind`]; one whose known stanzas are all for keys
//! not held is [`OpenError::NoMatchingKey`].

use crate::capsule::{
    Capsule, CapsuleError, ContentCipher, DekEnvelope, FORMAT_VERSION, Header, HpkeStanza, Kid,
    MAX_PLAINTEXT_LEN, MAX_STANZAS, RevealMode, Scope, Stanza,
};
use crate::hpke::{AeadId, AeadKey, HpkeError, KemId, LocalPrivateKey, NONCE_LEN, Suite};
use crate::key_provider::OrgKeyProvider;
use crate::org_key::OrgPublicKey;
use crate::reason::Reason;
use crate::secret::{Dek, Plaintext};

/// HPKE `info` of a DEK wrap to an org key.
pub const WRAP_INFO: &[u8] = b"podseal/v1 wrap";
/// HPKE `info` of a DEK released to a pod.
pub const RELEASE_INFO: &[u8] = b"podseal/v1 release";
/// The HPKE suite of releases (pods hold X25519 keys).
pub const RELEASE_SUITE: Suite = Suite::X25519_SHA256_AES256GCM;

/// What the sealer decides about a new capsule.
#[derive(Debug, Clone)]
pub struct SealParams {
    /// Where it may be released.
    pub scope: Scope,
    /// The purpose it serves, if named.
    pub purpose: Option<String>,
    /// Release once or many times.
    pub reveal: RevealMode,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Release deadline, Unix seconds.
    pub not_after: Option<i64>,
}

/// Why sealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The secret is larger than a capsule may hold.
    #[error("secret is {len} bytes; the limit is {MAX_PLAINTEXT_LEN} bytes (1 MiB)")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// No org public key, too many, or the same key twice.
    #[error("seal needs 1 to {MAX_STANZAS} distinct org public keys")]
    Recipients,
    /// A header field is invalid.
    #[error(transparent)]
    Header(#[from] CapsuleError),
    /// A cryptographic step failed.
    #[error("sealing failed: {0}")]
    Crypto(#[from] HpkeError),
}

/// Why opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// None of the capsule's stanzas of a known kind is for a key held here.
    #[error("capsule is wrapped to {}, none of which is held here (held: {})", join_labels(.wrapped_to), join(.held))]
    NoMatchingKey {
        /// The keys of the capsule's known stanzas, in words (public).
        wrapped_to: Vec<String>,
        /// Kids the provider holds.
        held: Vec<Kid>,
    },
    /// Every stanza of the capsule is of a kind this build does not know.
    #[error("capsule has no wrap stanza of a kind this build knows (its kinds: {}); it was wrapped by a newer podseal", join_kinds(.kinds))]
    NoKnownStanzaKind {
        /// The stanzas' type tags.
        kinds: Vec<u8>,
    },
    /// Authentication failed somewhere: wrong key, altered bytes, wrong binding.
    #[error("did not open")]
    DidNotOpen,
    /// A pod public key is not a valid X25519 key.
    #[error("recipient public key is not a valid X25519 key")]
    BadRecipientKey,
    /// The key provider could not run.
    #[error("key provider failed: {0}")]
    KeyProvider(String),
}

impl OpenError {
    /// A stable machine-readable code.
    pub fn reason(&self) -> Reason {
        match self {
            Self::NoMatchingKey { .. } => Reason::NoMatchingKey,
            Self::NoKnownStanzaKind { .. } => Reason::NoKnownStanzaKind,
            Self::DidNotOpen => Reason::DidNotOpen,
            Self::BadRecipientKey => Reason::RecipientKeyInvalid,
            Self::KeyProvider(_) => Reason::KeyProvider,
        }
    }
}

fn join(kids: &[Kid]) -> String {
    if kids.is_empty() {
        return "none".into();
    }
    kids.iter().map(Kid::as_str).collect::<Vec<_>>().join(", ")
}

fn join_labels(labels: &[String]) -> String {
    if labels.is_empty() {
        return "nothing".into();
    }
    labels.join(", ")
}

fn join_kinds(kinds: &[u8]) -> String {
    kinds
        .iter()
        .map(|k| format!("{k:#04x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn map_open(e: HpkeError) -> OpenError {
    match e {
        HpkeError::KeyProvider(reason) => OpenError::KeyProvider(reason),
        _ => OpenError::DidNotOpen,
    }
}

/// The binding of one release: which session, which DPoP proof.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseBinding<'a> {
    /// The release session id.
    pub session_id: &'a str,
    /// The `jti` of the DPoP proof that asked for this release.
    pub jti: &'a str,
}

/// A DEK sealed to one pod's ephemeral key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedDek {
    /// HPKE encapsulated key.
    pub enc: Vec<u8>,
    /// The DEK sealed with HPKE.
    pub wrapped_dek: Vec<u8>,
}

/// Seals `plaintext` into a new capsule wrapped to every key in `recipients`.
pub fn seal(
    params: SealParams,
    plaintext: &[u8],
    recipients: &[&OrgPublicKey],
) -> Result<Capsule, SealError> {
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(SealError::TooLarge {
            len: plaintext.len(),
        });
    }
    let distinct = recipients
        .iter()
        .enumerate()
        .all(|(i, r)| recipients.iter().take(i).all(|o| o.kid() != r.kid()));
    if recipients.is_empty() || recipients.len() > MAX_STANZAS || !distinct {
        return Err(SealError::Recipients);
    }
    let header = Header {
        v: FORMAT_VERSION,
        cipher: ContentCipher::Aes256Gcm,
        id: crate::random_id::<16>().map_err(|_| HpkeError::RandomnessUnavailable)?,
        scope: params.scope,
        purpose: params.purpose,
        reveal: params.reveal,
        created_at: params.created_at,
        not_after: params.not_after,
    };
    header.validate()?;
    let header_bytes =
        serde_json::to_vec(&header).map_err(|e| CapsuleError::HeaderSyntax(e.to_string()))?;

    let dek = Dek::generate().map_err(|_| HpkeError::RandomnessUnavailable)?;
    let mut nonce = [0u8; NONCE_LEN];
    crate::fill_random(&mut nonce).map_err(|_| HpkeError::RandomnessUnavailable)?;
    let ciphertext = content_cipher(&dek)?
        .seal(&nonce, &header_bytes, plaintext)
        .map_err(|_| HpkeError::MessageLimitReached)?;
    let stanzas = recipients
        .iter()
        .map(|r| wrap_dek(&header_bytes, &dek, r))
        .collect::<Result<_, _>>()?;
    Ok(Capsule {
        envelope: DekEnvelope::new(header_bytes, stanzas)?,
        nonce,
        ciphertext,
    })
}

fn content_cipher(dek: &Dek) -> Result<AeadKey, HpkeError> {
    AeadKey::new(AeadId::Aes256Gcm, dek.expose_secret_bytes())
        .map_err(|_| HpkeError::InvalidPrivateKey)
}

/// Wraps `dek` to one org public key.
pub fn wrap_dek(
    header_bytes: &[u8],
    dek: &Dek,
    recipient: &OrgPublicKey,
) -> Result<Stanza, HpkeError> {
    let suite = recipient.wrap_suite();
    let aad = length_prefixed(&[header_bytes, recipient.kid().as_str().as_bytes()]);
    let (enc, wrapped_dek) = suite.seal(
        recipient.as_bytes(),
        WRAP_INFO,
        &aad,
        dek.expose_secret_bytes(),
    )?;
    Ok(Stanza::Hpke(HpkeStanza {
        kid: recipient.kid().clone(),
        suite,
        enc,
        wrapped_dek,
    }))
}

/// Opens the DEK from the first `hpke` stanza whose key the provider holds,
/// skipping `transit` stanzas and unknown kinds. A held key whose stanza
/// does not open is a refusal, never a fall-through to the next stanza.
pub fn open_dek(envelope: &DekEnvelope, provider: &dyn OrgKeyProvider) -> Result<Dek, OpenError> {
    let found = envelope.stanzas().iter().find_map(|s| match s {
        Stanza::Hpke(s) => provider.recipient(&s.kid).map(|key| (s, key)),
        Stanza::Transit(_) | Stanza::Unknown(_) => None,
    });
    let Some((stanza, key)) = found else {
        return Err(nothing_to_open(envelope, provider));
    };
    let aad = length_prefixed(&[envelope.header_bytes(), stanza.kid.as_str().as_bytes()]);
    let mut bytes = stanza
        .suite
        .open(&stanza.enc, key, WRAP_INFO, &aad, &stanza.wrapped_dek)
        .map_err(map_open)?;
    Dek::from_slice_zeroizing(&mut bytes).ok_or(OpenError::DidNotOpen)
}

/// Why no stanza could be tried: no known kind at all, or no held key.
fn nothing_to_open(envelope: &DekEnvelope, provider: &dyn OrgKeyProvider) -> OpenError {
    let known: Vec<String> = envelope
        .stanzas()
        .iter()
        .filter(|s| !matches!(s, Stanza::Unknown(_)))
        .map(Stanza::key_label)
        .collect();
    if known.is_empty() {
        OpenError::NoKnownStanzaKind {
            kinds: envelope.stanzas().iter().map(Stanza::kind_tag).collect(),
        }
    } else {
        OpenError::NoMatchingKey {
            wrapped_to: known,
            held: provider.kids(),
        }
    }
}

/// Decrypts a capsule's content with its DEK.
pub fn decrypt_content(capsule: &Capsule, dek: &Dek) -> Result<Plaintext, OpenError> {
    let cipher = content_cipher(dek).map_err(|_| OpenError::DidNotOpen)?;
    let mut opened = cipher
        .open(
            &capsule.nonce,
            capsule.envelope.header_bytes(),
            &capsule.ciphertext,
        )
        .map_err(|_| OpenError::DidNotOpen)?;
    Ok(Plaintext::new(std::mem::take(&mut *opened)))
}

/// Opens a capsule with org private keys (the break-glass path).
pub fn open(capsule: &Capsule, provider: &dyn OrgKeyProvider) -> Result<Plaintext, OpenError> {
    let dek = open_dek(&capsule.envelope, provider)?;
    decrypt_content(capsule, &dek)
}

/// Re-wraps the DEK of `envelope` to a pod's X25519 public key, bound to
/// the header, the session and the DPoP proof. Needs no content ciphertext.
pub fn rewrap_for_release(
    envelope: &DekEnvelope,
    provider: &dyn OrgKeyProvider,
    pod_public_key: &[u8],
    binding: ReleaseBinding<'_>,
) -> Result<ReleasedDek, OpenError> {
    crate::hpke::validate_public_key(KemId::X25519HkdfSha256, pod_public_key)
        .map_err(|_| OpenError::BadRecipientKey)?;
    let dek = open_dek(envelope, provider)?;
    let aad = release_aad(envelope.header_bytes(), binding);
    let (enc, wrapped_dek) = RELEASE_SUITE
        .seal(
            pod_public_key,
            RELEASE_INFO,
            &aad,
            dek.expose_secret_bytes(),
        )
        .map_err(|e| match e {
            HpkeError::InvalidPublicKey { .. } | HpkeError::LowOrderPeerKey => {
                OpenError::BadRecipientKey
            }
            other => map_open(other),
        })?;
    Ok(ReleasedDek { enc, wrapped_dek })
}

/// The pod's half: opens a released DEK with its ephemeral key.
pub fn open_release(
    released: &ReleasedDek,
    pod_key: &LocalPrivateKey,
    header_bytes: &[u8],
    binding: ReleaseBinding<'_>,
) -> Result<Dek, OpenError> {
    let aad = release_aad(header_bytes, binding);
    let mut bytes = RELEASE_SUITE
        .open(
            &released.enc,
            pod_key,
            RELEASE_INFO,
            &aad,
            &released.wrapped_dek,
        )
        .map_err(map_open)?;
    Dek::from_slice_zeroizing(&mut bytes).ok_or(OpenError::DidNotOpen)
}

/// Moves a capsule to `new_key`: the `hpke` stanzas whose keys `provider`
/// holds are replaced by one wrap to `new_key`, placed first; every other
/// stanza (other org keys, `transit`, unknown kinds), the header and the
/// content stay as they were.
pub fn rewrap_to_org_key(
    envelope: &DekEnvelope,
    provider: &dyn OrgKeyProvider,
    new_key: &OrgPublicKey,
) -> Result<DekEnvelope, OpenError> {
    let dek = open_dek(envelope, provider)?;
    let new_stanza = wrap_dek(envelope.header_bytes(), &dek, new_key).map_err(map_open)?;
    let mut stanzas: Vec<Stanza> = envelope
        .stanzas()
        .iter()
        .filter(|s| {
            s.hpke_kid()
                .is_none_or(|kid| provider.recipient(kid).is_none() && kid != new_key.kid())
        })
        .cloned()
        .collect();
    stanzas.insert(0, new_stanza);
    envelope
        .with_stanzas(stanzas)
        .map_err(|_| OpenError::DidNotOpen)
}

fn release_aad(header_bytes: &[u8], binding: ReleaseBinding<'_>) -> Vec<u8> {
    length_prefixed(&[
        header_bytes,
        binding.session_id.as_bytes(),
        binding.jti.as_bytes(),
    ])
}

fn length_prefixed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for part in parts {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}
