//! RFC 9180 §4 `LabeledExtract` / `LabeledExpand` over HKDF-SHA-256/512.
//!
//! The labels bind every derived value to the protocol version and the exact
//! suite, so a key derived for one suite can never serve another.

use hkdf::Hkdf;
use sha2::{Sha256, Sha512};
use zeroize::Zeroizing;

use super::HpkeError;

/// RFC 9180 KDF identifiers podseal implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KdfId {
    /// HKDF-SHA256 (0x0001), podseal's default.
    HkdfSha256,
    /// HKDF-SHA512 (0x0003); exercised by the RFC 9180 vectors.
    HkdfSha512,
}

impl KdfId {
    /// The two-byte identifier of RFC 9180 §7.2.
    pub const fn id(self) -> u16 {
        match self {
            Self::HkdfSha256 => 0x0001,
            Self::HkdfSha512 => 0x0003,
        }
    }

    /// Looks up an identifier; `None` for any KDF podseal does not implement.
    pub const fn from_id(id: u16) -> Option<Self> {
        match id {
            0x0001 => Some(Self::HkdfSha256),
            0x0003 => Some(Self::HkdfSha512),
            _ => None,
        }
    }

    /// `Nh`: the hash output length.
    pub const fn hash_len(self) -> usize {
        match self {
            Self::HkdfSha256 => 32,
            Self::HkdfSha512 => 64,
        }
    }

    /// The name used in capsules and `inspect` output.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HkdfSha256 => "HKDF-SHA256",
            Self::HkdfSha512 => "HKDF-SHA512",
        }
    }
}

const VERSION_LABEL: &[u8] = b"HPKE-v1";

/// `LabeledExtract(salt, label, ikm)` for `suite_id`.
pub(crate) fn labeled_extract(
    kdf: KdfId,
    suite_id: &[u8],
    salt: &[u8],
    label: &[u8],
    ikm: &[u8],
) -> Zeroizing<Vec<u8>> {
    let mut labeled_ikm = Zeroizing::new(Vec::with_capacity(
        VERSION_LABEL.len() + suite_id.len() + label.len() + ikm.len(),
    ));
    for part in [VERSION_LABEL, suite_id, label, ikm] {
        labeled_ikm.extend_from_slice(part);
    }
    let prk = match kdf {
        KdfId::HkdfSha256 => Hkdf::<Sha256>::extract(Some(salt), &labeled_ikm).0.to_vec(),
        KdfId::HkdfSha512 => Hkdf::<Sha512>::extract(Some(salt), &labeled_ikm).0.to_vec(),
    };
    Zeroizing::new(prk)
}

/// `LabeledExpand(prk, label, info, L)` for `suite_id`.
pub(crate) fn labeled_expand(
    kdf: KdfId,
    suite_id: &[u8],
    prk: &[u8],
    label: &[u8],
    info: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    let length = u16::try_from(len).map_err(|_| HpkeError::KdfOutputTooLong)?;
    let length = length.to_be_bytes();
    let parts: [&[u8]; 5] = [&length, VERSION_LABEL, suite_id, label, info];
    let mut okm = Zeroizing::new(vec![0u8; len]);
    let expanded = match kdf {
        KdfId::HkdfSha256 => Hkdf::<Sha256>::from_prk(prk)
            .map_err(|_| HpkeError::KdfOutputTooLong)?
            .expand_multi_info(&parts, &mut okm),
        KdfId::HkdfSha512 => Hkdf::<Sha512>::from_prk(prk)
            .map_err(|_| HpkeError::KdfOutputTooLong)?
            .expand_multi_info(&parts, &mut okm),
    };
    expanded.map_err(|_| HpkeError::KdfOutputTooLong)?;
    Ok(okm)
}
