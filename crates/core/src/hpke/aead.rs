//! AES-GCM with 96-bit nonces and 128-bit tags: the one AEAD wrapper podseal
//! uses, both inside HPKE and for capsule content.
//!
//! The wrapper's domain is deliberately narrow: AES-128-GCM and AES-256-GCM
//! keys, 12-byte nonces, tags appended. Any other key or nonce length is
//! refused before the cipher runs, and a failed open says only "did not open".

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead as _, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use zeroize::Zeroizing;

/// Nonce length in bytes (`Nn`).
pub const NONCE_LEN: usize = 12;
/// Tag length in bytes (`Nt`).
pub const TAG_LEN: usize = 16;

/// RFC 9180 AEAD identifiers podseal implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AeadId {
    /// AES-128-GCM (0x0001); exercised by the RFC 9180 vectors.
    Aes128Gcm,
    /// AES-256-GCM (0x0002), podseal's default.
    Aes256Gcm,
}

impl AeadId {
    /// The two-byte identifier of RFC 9180 §7.3.
    pub const fn id(self) -> u16 {
        match self {
            Self::Aes128Gcm => 0x0001,
            Self::Aes256Gcm => 0x0002,
        }
    }

    /// Looks up an identifier; `None` for any AEAD podseal does not implement.
    pub const fn from_id(id: u16) -> Option<Self> {
        match id {
            0x0001 => Some(Self::Aes128Gcm),
            0x0002 => Some(Self::Aes256Gcm),
            _ => None,
        }
    }

    /// `Nk`: the key length.
    pub const fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm => 32,
        }
    }

    /// The name used in capsules and `inspect` output.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aes128Gcm => "AES-128-GCM",
            Self::Aes256Gcm => "AES-256-GCM",
        }
    }
}

/// Why the AEAD refused to run or to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    /// The key length does not match the algorithm.
    #[error("AEAD key has the wrong length")]
    KeyLength,
    /// The nonce is not 96 bits.
    #[error("AEAD nonce must be 96 bits")]
    NonceLength,
    /// Authentication failed, or the input was too short to hold a tag.
    #[error("did not open")]
    DidNotOpen,
    /// The plaintext is too long for the cipher.
    #[error("plaintext too long for the AEAD")]
    TooLong,
}

enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
}

/// An AES-GCM key ready to seal or open.
pub struct AeadKey {
    cipher: Cipher,
}

impl AeadKey {
    /// Builds the cipher, refusing a key of the wrong length.
    pub fn new(aead: AeadId, key: &[u8]) -> Result<Self, AeadError> {
        if key.len() != aead.key_len() {
            return Err(AeadError::KeyLength);
        }
        let cipher = match aead {
            AeadId::Aes128Gcm => Cipher::Aes128(Box::new(
                Aes128Gcm::new_from_slice(key).map_err(|_| AeadError::KeyLength)?,
            )),
            AeadId::Aes256Gcm => Cipher::Aes256(Box::new(
                Aes256Gcm::new_from_slice(key).map_err(|_| AeadError::KeyLength)?,
            )),
        };
        Ok(Self { cipher })
    }

    /// Encrypts `plaintext`, returning ciphertext with the tag appended.
    pub fn seal(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
        let nonce = nonce_from(nonce)?;
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        match &self.cipher {
            Cipher::Aes128(c) => c.encrypt(&nonce, payload),
            Cipher::Aes256(c) => c.encrypt(&nonce, payload),
        }
        .map_err(|_| AeadError::TooLong)
    }

    /// Decrypts and authenticates `ciphertext` (tag appended).
    pub fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AeadError> {
        let nonce = nonce_from(nonce)?;
        if ciphertext.len() < TAG_LEN {
            return Err(AeadError::DidNotOpen);
        }
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        match &self.cipher {
            Cipher::Aes128(c) => c.decrypt(&nonce, payload),
            Cipher::Aes256(c) => c.decrypt(&nonce, payload),
        }
        .map(Zeroizing::new)
        .map_err(|_| AeadError::DidNotOpen)
    }
}

fn nonce_from(bytes: &[u8]) -> Result<Nonce<U12>, AeadError> {
    Nonce::try_from(bytes).map_err(|_| AeadError::NonceLength)
}

#[cfg(test)]
mod tests {
    //! Every Wycheproof AES-GCM vector through [`AeadKey`]. Vectors outside the
    //! wrapper's domain (192-bit keys, nonces other than 96 bits) must be
    //! refused by its input checks; every other vector must give exactly the
    //! expected result, in both directions.
    use super::*;
    use crate::test_vectors::{hex, load_json};

    #[test]
    fn wycheproof_aes_gcm_through_the_wrapper() {
        let file = load_json("wycheproof/aes_gcm_test.json");
        let (mut checked, mut refused_domain) = (0, 0);
        for group in file["testGroups"].as_array().unwrap() {
            let key_bits = group["keySize"].as_u64().unwrap();
            let iv_bits = group["ivSize"].as_u64().unwrap();
            assert_eq!(group["tagSize"].as_u64(), Some(128));
            for test in group["tests"].as_array().unwrap() {
                let id = &test["tcId"];
                let key = hex(&test["key"]);
                let iv = hex(&test["iv"]);
                let aad = hex(&test["aad"]);
                let msg = hex(&test["msg"]);
                let mut ct = hex(&test["ct"]);
                ct.extend(hex(&test["tag"]));
                let valid = test["result"] == "valid";
                let aead = match key_bits {
                    128 => Some(AeadId::Aes128Gcm),
                    256 => Some(AeadId::Aes256Gcm),
                    _ => None,
                };
                let Some(aead) = aead else {
                    for id in [AeadId::Aes128Gcm, AeadId::Aes256Gcm] {
                        assert_eq!(AeadKey::new(id, &key).err(), Some(AeadError::KeyLength));
                    }
                    refused_domain += 1;
                    continue;
                };
                let cipher = AeadKey::new(aead, &key).unwrap();
                if iv_bits != 96 {
                    assert_eq!(
                        cipher.open(&iv, &aad, &ct).err(),
                        Some(AeadError::NonceLength)
                    );
                    assert_eq!(
                        cipher.seal(&iv, &aad, &msg).err(),
                        Some(AeadError::NonceLength)
                    );
                    refused_domain += 1;
                    continue;
                }
                match cipher.open(&iv, &aad, &ct) {
                    Ok(pt) => {
                        assert!(valid, "tcId {id}: invalid vector opened");
                        assert_eq!(*pt, msg, "tcId {id}");
                    }
                    Err(e) => {
                        assert!(!valid, "tcId {id}: valid vector refused: {e}");
                        assert_eq!(e, AeadError::DidNotOpen);
                    }
                }
                if valid {
                    assert_eq!(cipher.seal(&iv, &aad, &msg).unwrap(), ct, "tcId {id}");
                }
                checked += 1;
            }
        }
        let total = file["numberOfTests"].as_u64().unwrap();
        assert_eq!(checked + refused_domain, total, "every vector was run");
        assert!(
            checked >= 100,
            "the in-domain vectors were exercised: {checked}"
        );
    }
}
