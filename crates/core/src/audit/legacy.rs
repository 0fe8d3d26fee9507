//! The hash chain podseal's audit log was before schema version 4, kept
//! only to upgrade a database that holds one: the upgrade recomputes the
//! chain over the stored records (every row must match its chain hash,
//! every kept checkpoint its root), and a starting server checks its key
//! against the latest chain checkpoint until it has signed the first
//! Merkle checkpoint over the upgraded log (docs/design.md §8.55).
//!
//! - `hash(n) = SHA-256(0x00 ‖ hash(n−1) ‖ bytes(n))`, `hash(0)` all zero.
//! - A chain checkpoint signed the note `podseal audit checkpoint v1\n
//!   origin\nsize\nroot\ntime_ms\n` (root and signature base64url).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// The chain hash before the first record.
pub const CHAIN_GENESIS: Hash = [0u8; 32];

/// The next link of the old chain.
pub fn chain(prev: &Hash, record_bytes: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(prev);
    hasher.update(record_bytes);
    hasher.finalize().into()
}

/// A checkpoint of the old chain, as it was stored (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainCheckpoint {
    /// The log's name then.
    pub origin: String,
    /// Records covered.
    pub size: u64,
    /// The chain hash after record `size`, base64url.
    pub root: String,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// Ed25519 signature over the note, base64url.
    pub signature: String,
}

impl ChainCheckpoint {
    /// True when `public_key` signed this chain checkpoint.
    pub fn is_signed_by(&self, public_key: &[u8; 32]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(public_key) else {
            return false;
        };
        let note = format!(
            "podseal audit checkpoint v1\n{}\n{}\n{}\n{}\n",
            self.origin, self.size, self.root, self.time_ms
        );
        URL_SAFE_NO_PAD
            .decode(&self.signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .is_some_and(|signature| key.verify_strict(note.as_bytes(), &signature).is_ok())
    }

    /// True when its root is `hash`.
    pub fn has_root(&self, hash: &Hash) -> bool {
        URL_SAFE_NO_PAD.encode(hash) == self.root
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    #[test]
    fn a_chain_checkpoint_verifies_with_its_key_only() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let root = chain(&CHAIN_GENESIS, b"{}");
        let note = format!(
            "podseal audit checkpoint v1\npodseal\n1\n{}\n5\n",
            URL_SAFE_NO_PAD.encode(root)
        );
        let checkpoint = ChainCheckpoint {
            origin: "podseal".into(),
            size: 1,
            root: URL_SAFE_NO_PAD.encode(root),
            time_ms: 5,
            signature: URL_SAFE_NO_PAD.encode(key.sign(note.as_bytes()).to_bytes()),
        };
        assert!(checkpoint.is_signed_by(&key.verifying_key().to_bytes()));
        assert!(checkpoint.has_root(&root));
        let other = SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes();
        assert!(!checkpoint.is_signed_by(&other));
        let later = ChainCheckpoint {
            time_ms: 6,
            ..checkpoint
        };
        assert!(!later.is_signed_by(&key.verifying_key().to_bytes()));
    }
}
