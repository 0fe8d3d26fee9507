//! podseal's core: the capsule format, the HPKE envelope around each capsule's
//! data key, release scopes and their matching, DPoP proofs, JWK thumbprints and the types that hold secrets.
//!
//! Nothing here touches a file, a network or a database: the release server,
//! the pod SDK and every binary build on this crate, so a capsule sealed by
//! one is read the same way by every other. Keys on disk (and their 0600
//! checks) belong to `podseal-keys`; the only outside input here is the
//! operating system's randomness.
#![deny(missing_docs)]

pub mod armor;
pub mod audit;
pub mod capsule;
pub mod clock;
pub mod dpop;
pub mod envelope;
pub mod hpke;
pub mod jwk;
pub mod jws;
pub mod key_provider;
pub mod org_key;
pub mod reason;
pub mod scope;
pub mod secret;
pub mod wire;

#[cfg(test)]
mod test_vectors;

/// The operating system's random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator is unavailable")]
pub struct RandomnessUnavailable;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), RandomnessUnavailable> {
    getrandom::fill(buf).map_err(|_| RandomnessUnavailable)
}

/// `N` bytes from the operating system's CSPRNG as unpadded base64url: the
/// one way podseal makes random identifiers (capsule ids, `jti`s, session ids).
pub fn random_id<const N: usize>() -> Result<String, RandomnessUnavailable> {
    use base64::Engine as _;
    let mut bytes = [0u8; N];
    fill_random(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
