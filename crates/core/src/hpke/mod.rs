//! HPKE (RFC 9180), base mode, composed from RustCrypto primitives.
//!
//! podseal composes the RFC 9180 construction itself (X25519 / P-256 from
//! `x25519-dalek` / `p256`, HKDF from `hkdf`, AES-GCM from `aes-gcm`) rather
//! than using a packaged HPKE for one reason: the org key must be able to live
//! in an HSM that performs only the Diffie-Hellman, so the KEM is split at the
//! DH ([`RecipientKey`]). Every step (`DeriveKeyPair`, `enc`, the shared
//! secret, the key schedule's `key`, `base_nonce` and `exporter_secret`, and
//! every sealed message) is checked against RFC 9180 Appendix A in
//! `kat_tests.rs`, and interoperability with the `hpke` crate is tested too.
//!
//! Only base mode and single-shot use are exposed: podseal seals exactly one
//! message (a 32-byte data key) per encapsulation.

mod aead;
mod kdf;
mod kem;

#[cfg(test)]
mod kat_tests;

use zeroize::Zeroizing;

pub use aead::{AeadError, AeadId, AeadKey, NONCE_LEN, TAG_LEN};
pub use kdf::KdfId;
pub use kem::{KemId, LocalPrivateKey, RecipientKey, validate_public_key};

/// Why an HPKE operation failed. Opening failures stay opaque on purpose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HpkeError {
    /// A public key (a recipient's, or an `enc`) is malformed for its KEM.
    #[error("public key is not a valid {} key", .kem.name())]
    InvalidPublicKey {
        /// The KEM the key was expected to belong to.
        kem: KemId,
    },
    /// A private key's bytes are not a valid scalar for the KEM.
    #[error("private key is not valid for its KEM")]
    InvalidPrivateKey,
    /// The peer's key is a low-order point: the DH output would be all zero.
    #[error("peer public key is a low-order point")]
    LowOrderPeerKey,
    /// `DeriveKeyPair` found no valid scalar in 256 candidates.
    #[error("could not derive a key pair")]
    DeriveKeyPair,
    /// The recipient key's KEM is not the suite's KEM.
    #[error("recipient key is for {}, the suite needs {}", .key.name(), .suite.name())]
    KemMismatch {
        /// The suite's KEM.
        suite: KemId,
        /// The key's KEM.
        key: KemId,
    },
    /// A key-derivation output longer than HKDF can produce was requested.
    #[error("key derivation output too long")]
    KdfOutputTooLong,
    /// The sequence number would overflow the nonce.
    #[error("message limit reached for this context")]
    MessageLimitReached,
    /// The operating system's random generator failed.
    #[error("the system random number generator is unavailable")]
    RandomnessUnavailable,
    /// Authentication failed: wrong key, wrong `info`/`aad`, or altered bytes.
    #[error("did not open")]
    DidNotOpen,
    /// The org key's custodian (key file, HSM) could not perform the DH.
    #[error("key provider failed: {0}")]
    KeyProvider(String),
}

/// An HPKE ciphersuite: KEM, KDF and AEAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Suite {
    /// The KEM.
    pub kem: KemId,
    /// The KDF of the key schedule.
    pub kdf: KdfId,
    /// The AEAD.
    pub aead: AeadId,
}

impl Suite {
    /// podseal's default: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
    pub const X25519_SHA256_AES256GCM: Self = Self {
        kem: KemId::X25519HkdfSha256,
        kdf: KdfId::HkdfSha256,
        aead: AeadId::Aes256Gcm,
    };

    /// For keys held in an HSM: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
    pub const P256_SHA256_AES256GCM: Self = Self {
        kem: KemId::P256HkdfSha256,
        kdf: KdfId::HkdfSha256,
        aead: AeadId::Aes256Gcm,
    };

    /// Looks up the three identifiers; `None` if any is not implemented.
    pub fn from_ids(kem: u16, kdf: u16, aead: u16) -> Option<Self> {
        Some(Self {
            kem: KemId::from_id(kem)?,
            kdf: KdfId::from_id(kdf)?,
            aead: AeadId::from_id(aead)?,
        })
    }

    /// Encapsulates to `recipient_public` and returns `(enc, sender context)`.
    pub fn setup_base_sender(
        self,
        recipient_public: &[u8],
        info: &[u8],
    ) -> Result<(Vec<u8>, Context), HpkeError> {
        let mut ikm_e = Zeroizing::new([0u8; 32]);
        crate::fill_random(ikm_e.as_mut()).map_err(|_| HpkeError::RandomnessUnavailable)?;
        self.setup_base_sender_with_ikm(recipient_public, info, ikm_e.as_ref())
    }

    fn setup_base_sender_with_ikm(
        self,
        recipient_public: &[u8],
        info: &[u8],
        ikm_e: &[u8],
    ) -> Result<(Vec<u8>, Context), HpkeError> {
        let encapsulation = kem::encap_with_ikm(self.kem, recipient_public, ikm_e)?;
        let context = key_schedule_base(
            self.kem.id(),
            self.kdf,
            self.aead,
            &encapsulation.shared_secret,
            info,
        )?;
        Ok((encapsulation.enc, context))
    }

    /// Decapsulates `enc` with `recipient` and returns the receiver context.
    pub fn setup_base_receiver(
        self,
        enc: &[u8],
        recipient: &dyn RecipientKey,
        info: &[u8],
    ) -> Result<Context, HpkeError> {
        if recipient.kem() != self.kem {
            return Err(HpkeError::KemMismatch {
                suite: self.kem,
                key: recipient.kem(),
            });
        }
        let shared_secret = kem::decap(enc, recipient)?;
        key_schedule_base(self.kem.id(), self.kdf, self.aead, &shared_secret, info)
    }

    /// Single-shot `SealBase`: returns `(enc, ciphertext)`.
    pub fn seal(
        self,
        recipient_public: &[u8],
        info: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeError> {
        let (enc, mut context) = self.setup_base_sender(recipient_public, info)?;
        let ciphertext = context.seal(aad, plaintext)?;
        Ok((enc, ciphertext))
    }

    /// Single-shot `OpenBase`.
    pub fn open(
        self,
        enc: &[u8],
        recipient: &dyn RecipientKey,
        info: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
        let mut context = self.setup_base_receiver(enc, recipient, info)?;
        context.open(aad, ciphertext)
    }
}

/// An HPKE encryption context (RFC 9180 §5.2), one direction.
pub struct Context {
    aead: AeadKey,
    base_nonce: [u8; NONCE_LEN],
    // Kept for the known-answer tests; podseal exports nothing.
    #[cfg_attr(not(test), allow(dead_code))]
    exporter_secret: Zeroizing<Vec<u8>>,
    #[cfg(test)]
    key: Zeroizing<Vec<u8>>,
    seq: u64,
}

impl Context {
    /// Seals the next message.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let nonce = self.next_nonce()?;
        self.aead
            .seal(&nonce, aad, plaintext)
            .map_err(|_| HpkeError::MessageLimitReached)
    }

    /// Opens the next message.
    pub fn open(&mut self, aad: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
        let nonce = self.next_nonce()?;
        self.aead
            .open(&nonce, aad, ciphertext)
            .map_err(|_| HpkeError::DidNotOpen)
    }

    /// `ComputeNonce(seq)` then `IncrementSeq()`.
    fn next_nonce(&mut self) -> Result<[u8; NONCE_LEN], HpkeError> {
        let mut nonce = self.base_nonce;
        for (n, s) in nonce.iter_mut().rev().zip(self.seq.to_le_bytes()) {
            *n ^= s;
        }
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or(HpkeError::MessageLimitReached)?;
        Ok(nonce)
    }
}

/// `KeySchedule(mode_base, shared_secret, info, "", "")` of RFC 9180 §5.1.
fn key_schedule_base(
    kem_id: u16,
    kdf: KdfId,
    aead: AeadId,
    shared_secret: &[u8],
    info: &[u8],
) -> Result<Context, HpkeError> {
    const MODE_BASE: u8 = 0x00;
    let suite_id = hpke_suite_id(kem_id, kdf, aead);
    let psk_id_hash = kdf::labeled_extract(kdf, &suite_id, b"", b"psk_id_hash", b"");
    let info_hash = kdf::labeled_extract(kdf, &suite_id, b"", b"info_hash", info);
    let mut context = Vec::with_capacity(1 + psk_id_hash.len() + info_hash.len());
    context.push(MODE_BASE);
    context.extend_from_slice(&psk_id_hash);
    context.extend_from_slice(&info_hash);

    let secret = kdf::labeled_extract(kdf, &suite_id, shared_secret, b"secret", b"");
    let key = kdf::labeled_expand(kdf, &suite_id, &secret, b"key", &context, aead.key_len())?;
    let nonce = kdf::labeled_expand(kdf, &suite_id, &secret, b"base_nonce", &context, NONCE_LEN)?;
    let exporter_secret =
        kdf::labeled_expand(kdf, &suite_id, &secret, b"exp", &context, kdf.hash_len())?;
    let base_nonce: [u8; NONCE_LEN] = nonce
        .as_slice()
        .try_into()
        .map_err(|_| HpkeError::KdfOutputTooLong)?;
    Ok(Context {
        aead: AeadKey::new(aead, &key).map_err(|_| HpkeError::KdfOutputTooLong)?,
        base_nonce,
        exporter_secret,
        #[cfg(test)]
        key,
        seq: 0,
    })
}

fn hpke_suite_id(kem_id: u16, kdf: KdfId, aead: AeadId) -> [u8; 10] {
    let [k0, k1] = kem_id.to_be_bytes();
    let [d0, d1] = kdf.id().to_be_bytes();
    let [a0, a1] = aead.id().to_be_bytes();
    [b'H', b'P', b'K', b'E', k0, k1, d0, d1, a0, a1]
}
