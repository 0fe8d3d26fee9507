//! Types for secret values: they zeroize on drop and cannot print.
//!
//! Every value that would hurt if it leaked (a capsule's data key, the
//! plaintext it protects, an org private key's bytes) lives in one of these
//! newtypes. None derives `Debug`, `Display`, `Clone` or `Serialize`; both
//! formatting traits print `[redacted]`, and the bytes come out only through a
//! method whose name says so. Zeroizing on drop cannot undo copies the program
//! made before (a `Vec` that grew, a value moved by the compiler); callers keep
//! secrets in place and avoid growing buffers that hold them.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length in bytes of a capsule's data-encryption key (AES-256).
pub const DEK_LEN: usize = 32;

const REDACTED: &str = "[redacted]";

macro_rules! redact_formatting {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({REDACTED})", stringify!($name))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }
    };
}

/// A capsule's data-encryption key: 32 random bytes, one per capsule.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Dek([u8; DEK_LEN]);

redact_formatting!(Dek);

impl Dek {
    /// Draws a fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, crate::RandomnessUnavailable> {
        let mut key = [0u8; DEK_LEN];
        crate::fill_random(&mut key)?;
        Ok(Self(key))
    }

    /// Takes ownership of key bytes opened from a wrap. The source is zeroized.
    pub(crate) fn from_slice_zeroizing(bytes: &mut [u8]) -> Option<Self> {
        let key: [u8; DEK_LEN] = (&*bytes).try_into().ok()?;
        bytes.zeroize();
        Some(Self(key))
    }

    /// The raw key bytes, for the AEAD and for wrapping only.
    pub fn expose_secret_bytes(&self) -> &[u8; DEK_LEN] {
        &self.0
    }
}

/// Decrypted secret content. Zeroized on drop; never printed.
pub struct Plaintext(Zeroizing<Vec<u8>>);

redact_formatting!(Plaintext);

impl Plaintext {
    /// Wraps bytes the caller already holds (the sealing side).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes. Whoever calls this is responsible for not copying
    /// them anywhere that outlives the `Plaintext`.
    pub fn expose_secret_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Raw private-key bytes on their way between a key file and a key type.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretKeyBytes(Vec<u8>);

redact_formatting!(SecretKeyBytes);

impl SecretKeyBytes {
    /// Takes ownership of private-key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The private-key bytes.
    pub fn expose_secret_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_secret_type_prints_its_bytes() {
        let marker = b"S3CR3T-MARKER-0123456789abcdef!!";
        let mut dek_bytes = *marker;
        let dek = Dek::from_slice_zeroizing(&mut dek_bytes).unwrap();
        assert_eq!(dek_bytes, [0u8; 32], "source of a DEK must be zeroized");
        let plaintext = Plaintext::new(marker.to_vec());
        let key = SecretKeyBytes::new(marker.to_vec());
        let printed = [
            format!("{dek:?} {dek} {dek:#?}"),
            format!("{plaintext:?} {plaintext} {plaintext:#?}"),
            format!("{key:?} {key} {key:#?}"),
        ];
        for text in printed {
            assert!(text.contains("[redacted]"), "{text}");
            assert!(
                !text.contains("S3CR3T"),
                "secret leaked through formatting: {text}"
            );
            assert!(!text.contains("83"), "byte values leaked: {text}");
        }
    }

    #[test]
    fn dek_from_wrong_length_is_refused() {
        assert!(Dek::from_slice_zeroizing(&mut [0u8; 31]).is_none());
        assert!(Dek::from_slice_zeroizing(&mut [0u8; 33]).is_none());
    }
}
