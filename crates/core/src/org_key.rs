//! Org keys: the HPKE key pairs capsules' data keys are wrapped to, and their
//! text file forms.
//!
//! ```text
//! # comments
//! podseal-org-public-key:v1:x25519:<base64url public key>
//! PODSEAL-ORG-PRIVATE-KEY:V1:X25519:<base64url private key>
//! ```
//!
//! The private form is upper case so that the two can never be confused at a
//! glance, and each parser refuses the other form with a hint.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::capsule::Kid;
use crate::hpke::{HpkeError, KemId, LocalPrivateKey, RecipientKey, Suite, validate_public_key};

const PUBLIC_PREFIX: &str = "podseal-org-public-key:v1:";
const PRIVATE_PREFIX: &str = "PODSEAL-ORG-PRIVATE-KEY:V1:";

/// Why text is not an org key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgKeyError {
    /// No key line was found.
    #[error("no podseal org key found (expected a line starting with `{expected}`)")]
    NoKeyLine {
        /// The prefix that was looked for.
        expected: &'static str,
    },
    /// More than one key line.
    #[error("more than one key in the file; keep one key per file")]
    SeveralKeys,
    /// A private key where a public key was expected.
    #[error("this is an org PRIVATE key; sealing needs only the public key")]
    PrivateWhereOnlyPublic,
    /// A public key where a private key was expected.
    #[error("this is an org public key; opening needs the private key")]
    PublicWherePrivate,
    /// The KEM name is unknown.
    #[error("unknown key algorithm `{0}` (expected x25519 or p256)")]
    UnknownAlgorithm(String),
    /// The key bytes are not valid base64url.
    #[error("key is not valid base64url")]
    Base64,
    /// The bytes are not a valid key of that algorithm.
    #[error("key bytes are not a valid {} key", .0.short_name())]
    InvalidKey(KemId),
}

/// An org public key: what sealing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgPublicKey {
    kem: KemId,
    bytes: Vec<u8>,
    kid: Kid,
}

impl OrgPublicKey {
    /// Wraps serialized public-key bytes after validating them.
    pub fn from_bytes(kem: KemId, bytes: Vec<u8>) -> Result<Self, OrgKeyError> {
        validate_public_key(kem, &bytes).map_err(|_| OrgKeyError::InvalidKey(kem))?;
        let kid = Kid::of_public_key(&bytes);
        Ok(Self { kem, bytes, kid })
    }

    /// The key id.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The KEM.
    pub fn kem(&self) -> KemId {
        self.kem
    }

    /// The HPKE suite used to wrap data keys to this key.
    pub fn wrap_suite(&self) -> Suite {
        match self.kem {
            KemId::X25519HkdfSha256 => Suite::X25519_SHA256_AES256GCM,
            KemId::P256HkdfSha256 => Suite::P256_SHA256_AES256GCM,
        }
    }

    /// Serialized public key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The one-line text form.
    pub fn to_text(&self) -> String {
        format!(
            "{PUBLIC_PREFIX}{}:{}",
            self.kem.short_name(),
            URL_SAFE_NO_PAD.encode(&self.bytes)
        )
    }

    /// Parses a public key file's contents.
    pub fn from_text(text: &str) -> Result<Self, OrgKeyError> {
        if key_lines(text).any(|l| l.starts_with(PRIVATE_PREFIX)) {
            return Err(OrgKeyError::PrivateWhereOnlyPublic);
        }
        let (kem, bytes) = parse_key_line(text, PUBLIC_PREFIX, str::to_owned)?;
        Self::from_bytes(kem, bytes.to_vec())
    }
}

/// An org private key held in process memory (from a key file).
pub struct OrgPrivateKey {
    key: LocalPrivateKey,
    public: OrgPublicKey,
}

impl std::fmt::Debug for OrgPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OrgPrivateKey(kid {}, [redacted])", self.public.kid)
    }
}

impl OrgPrivateKey {
    /// Generates a new key pair.
    pub fn generate(kem: KemId) -> Result<Self, HpkeError> {
        Self::from_local(LocalPrivateKey::generate(kem)?)
    }

    fn from_local(key: LocalPrivateKey) -> Result<Self, HpkeError> {
        let public = OrgPublicKey::from_bytes(key.kem(), key.public_key_bytes().to_vec())
            .map_err(|_| HpkeError::InvalidPrivateKey)?;
        Ok(Self { key, public })
    }

    /// The public half.
    pub fn public(&self) -> &OrgPublicKey {
        &self.public
    }

    /// The key id.
    pub fn kid(&self) -> &Kid {
        self.public.kid()
    }

    /// The key as the HPKE recipient.
    pub fn recipient(&self) -> &dyn RecipientKey {
        &self.key
    }

    /// The one-line text form. Holds the secret: write it only to a 0600 file.
    pub fn to_text(&self) -> Zeroizing<String> {
        let secret = self.key.secret_bytes();
        let encoded = Zeroizing::new(URL_SAFE_NO_PAD.encode(secret.expose_secret_bytes()));
        Zeroizing::new(format!(
            "{PRIVATE_PREFIX}{}:{}",
            self.public.kem.short_name().to_ascii_uppercase(),
            encoded.as_str()
        ))
    }

    /// Parses a private key file's contents.
    pub fn from_text(text: &str) -> Result<Self, OrgKeyError> {
        if key_lines(text).any(|l| l.starts_with(PUBLIC_PREFIX)) {
            return Err(OrgKeyError::PublicWherePrivate);
        }
        let (kem, bytes) = parse_key_line(text, PRIVATE_PREFIX, str::to_ascii_lowercase)?;
        let key = LocalPrivateKey::from_secret_bytes(kem, &bytes)
            .map_err(|_| OrgKeyError::InvalidKey(kem))?;
        Self::from_local(key).map_err(|_| OrgKeyError::InvalidKey(kem))
    }
}

fn key_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn parse_key_line(
    text: &str,
    prefix: &'static str,
    normalize_algorithm: fn(&str) -> String,
) -> Result<(KemId, Zeroizing<Vec<u8>>), OrgKeyError> {
    let mut lines = key_lines(text).filter(|l| l.starts_with(prefix));
    let line = lines
        .next()
        .ok_or(OrgKeyError::NoKeyLine { expected: prefix })?;
    if lines.next().is_some() || key_lines(text).count() > 1 {
        return Err(OrgKeyError::SeveralKeys);
    }
    let rest = line.get(prefix.len()..).unwrap_or_default();
    let (algorithm, encoded) = rest.split_once(':').ok_or(OrgKeyError::Base64)?;
    let kem = KemId::from_short_name(&normalize_algorithm(algorithm))
        .ok_or_else(|| OrgKeyError::UnknownAlgorithm(algorithm.chars().take(16).collect()))?;
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| OrgKeyError::Base64)?,
    );
    Ok((kem, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_are_not_confused() {
        for kem in [KemId::X25519HkdfSha256, KemId::P256HkdfSha256] {
            let key = OrgPrivateKey::generate(kem).unwrap();
            let private_text = key.to_text();
            let public_text = key.public().to_text();
            let reread =
                OrgPrivateKey::from_text(&format!("# comment\n{}\n", *private_text)).unwrap();
            assert_eq!(reread.public(), key.public());
            assert_eq!(
                OrgPublicKey::from_text(&public_text).unwrap(),
                *key.public()
            );
            assert_eq!(
                OrgPublicKey::from_text(&private_text),
                Err(OrgKeyError::PrivateWhereOnlyPublic)
            );
            assert_eq!(
                OrgPrivateKey::from_text(&public_text).err(),
                Some(OrgKeyError::PublicWherePrivate)
            );
            assert!(!format!("{key:?}").contains(&private_text[PRIVATE_PREFIX.len() + 8..]));
        }
        assert!(matches!(
            OrgPublicKey::from_text(""),
            Err(OrgKeyError::NoKeyLine { .. })
        ));
        assert_eq!(
            OrgPublicKey::from_text("podseal-org-public-key:v1:x448:AAAA"),
            Err(OrgKeyError::UnknownAlgorithm("x448".into()))
        );
        assert_eq!(
            OrgPublicKey::from_text("podseal-org-public-key:v1:x25519:AAAA"),
            Err(OrgKeyError::InvalidKey(KemId::X25519HkdfSha256))
        );
    }
}
