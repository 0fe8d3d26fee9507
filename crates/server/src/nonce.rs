//! RFC 9449 §8 server nonces, stateless and shared by every replica.
//!
//! A nonce is `issued_at ‖ HMAC-SHA256(secret, label ‖ issued_at)`, base64url.
//! The secret is a server secret in storage, so any replica checks a nonce
//! another issued; a nonce is accepted while it is younger than the
//! configured lifetime. A policy that requires nonces makes a stolen DPoP
//! key useless for proofs minted in advance: a proof must carry a nonce the
//! server issued within the lifetime.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

const LABEL: &[u8] = b"podseal/v1 dpop-nonce";

/// Issues and checks nonces.
pub struct NonceIssuer {
    key: hmac::Key,
    lifetime_secs: i64,
}

impl NonceIssuer {
    /// Nonces MACed with `secret`, valid for `lifetime_secs`.
    pub fn new(secret: &[u8; 32], lifetime_secs: i64) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            lifetime_secs,
        }
    }

    fn tag(&self, issued_at: i64) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(LABEL);
        context.update(&issued_at.to_be_bytes());
        context.sign()
    }

    /// A nonce issued at `now` (Unix seconds).
    pub fn issue(&self, now: i64) -> String {
        let mut bytes = now.to_be_bytes().to_vec();
        bytes.extend_from_slice(self.tag(now).as_ref());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// True when `nonce` was issued by a holder of the secret no longer than
    /// the lifetime ago (and not in the future, beyond one second).
    pub fn is_fresh(&self, nonce: &str, now: i64) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Some((stamp, tag)) = bytes.split_first_chunk::<8>() else {
            return false;
        };
        let issued_at = i64::from_be_bytes(*stamp);
        let mut message = LABEL.to_vec();
        message.extend_from_slice(stamp);
        hmac::verify(&self.key, &message, tag).is_ok()
            && issued_at <= now.saturating_add(1)
            && now.saturating_sub(issued_at) <= self.lifetime_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_fresh_for_its_lifetime_only_and_only_under_its_secret() {
        let issuer = NonceIssuer::new(&[1; 32], 60);
        let nonce = issuer.issue(1_000);
        assert!(issuer.is_fresh(&nonce, 1_000));
        assert!(issuer.is_fresh(&nonce, 1_060));
        assert!(!issuer.is_fresh(&nonce, 1_061), "stale");
        assert!(!issuer.is_fresh(&nonce, 998), "from the future");
        assert!(
            !NonceIssuer::new(&[2; 32], 60).is_fresh(&nonce, 1_000),
            "another secret"
        );
        // Moving the timestamp breaks the MAC.
        let mut bytes = URL_SAFE_NO_PAD.decode(&nonce).unwrap_or_default();
        if let Some(last) = bytes.get_mut(7) {
            *last ^= 1;
        }
        assert!(!issuer.is_fresh(&URL_SAFE_NO_PAD.encode(bytes), 1_000));
        for junk in ["", "!!!", "AAAA", &"A".repeat(600)] {
            assert!(!issuer.is_fresh(junk, 1_000), "{junk}");
        }
    }
}
