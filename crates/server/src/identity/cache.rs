//! Verified projected tokens, remembered by hash until they expire
//! (docs/design.md §7): a pod sends the same token with every request for
//! up to an hour, and its RS256 signature need not be checked each time.
//!
//! Only successful verifications are kept, under the SHA-256 of the token
//! (never the token itself). A cache belongs to one connected cluster
//! registration (`ConnectedCluster`): replacing the registration — its keys,
//! audiences, lifetime bound, CA — connects a new one with an empty cache,
//! so a hit never outlives the rules that verified it, not even for a
//! request that was verifying while the replacement happened. A hit is
//! re-checked against the clock (the effective expiry, `exp` or
//! `warnafter`, with the same leeway as a full verification), and a clock
//! that went backwards falls through to a full verification. What a hit
//! answers is exactly what verifying the token again would answer: the
//! result depends only on the token, the registration and the time.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::{IdentityError, IdentityProvider, WorkloadIdentity};

/// The most tokens remembered per cluster; past it, expired entries go
/// first, then all.
pub const MAX_ENTRIES: usize = 65_536;

struct Entry {
    identity: WorkloadIdentity,
    verified_at: i64,
}

/// Verified tokens of one cluster registration, by token hash.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl TokenCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // A poisoned lock only means a panic elsewhere; the map is always whole.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `provider.verify(token, now)`, answered from the cache when this
    /// token verified before and has not expired (its effective expiry
    /// beyond `now` minus `leeway_secs`). `provider` must be the one of
    /// the registration this cache belongs to.
    pub fn verify(
        &self,
        provider: &impl IdentityProvider,
        leeway_secs: i64,
        token: &str,
        now: i64,
    ) -> Result<WorkloadIdentity, IdentityError> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let live = |entry: &Entry| entry.identity.expires_at > now.saturating_sub(leeway_secs);
        {
            let mut entries = self.entries();
            if let Some(entry) = entries.get(&hash) {
                if live(entry) && now >= entry.verified_at {
                    return Ok(entry.identity.clone());
                }
                entries.remove(&hash);
            }
        }
        let identity = provider.verify(token, now)?;
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| live(entry));
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            hash,
            Entry {
                identity: identity.clone(),
                verified_at: now,
            },
        );
        Ok(identity)
    }

    /// How many tokens are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A provider that counts verifications and accepts only "good-*" tokens.
    struct Counting {
        calls: AtomicUsize,
        expires_at: i64,
    }

    impl IdentityProvider for Counting {
        fn verify(&self, token: &str, now: i64) -> Result<WorkloadIdentity, IdentityError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if !token.starts_with("good-") {
                return Err(IdentityError::BadSignature);
            }
            if self.expires_at <= now {
                return Err(IdentityError::Expired);
            }
            Ok(WorkloadIdentity {
                namespace: "shop".into(),
                service_account: "api".into(),
                service_account_uid: "sa-uid".into(),
                pod_name: token.into(),
                pod_uid: "uid".into(),
                credential_id: None,
                node: None,
                expires_at: self.expires_at,
            })
        }

        fn has_live_workload_view(&self) -> bool {
            true
        }
    }

    fn provider(expires_at: i64) -> Counting {
        Counting {
            calls: AtomicUsize::new(0),
            expires_at,
        }
    }

    #[test]
    fn a_verified_token_is_answered_from_the_cache_until_it_expires() {
        let cache = TokenCache::default();
        let p = provider(1_000);
        let first = cache.verify(&p, 0, "good-a", 100).unwrap();
        let again = cache.verify(&p, 0, "good-a", 500).unwrap();
        assert_eq!(first, again);
        assert_eq!(p.calls.load(Ordering::SeqCst), 1);
        // At exp the cache no longer answers, and the full check refuses.
        assert!(matches!(
            cache.verify(&p, 0, "good-a", 1_000),
            Err(IdentityError::Expired)
        ));
        assert_eq!(p.calls.load(Ordering::SeqCst), 2);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn refusals_are_never_cached_and_caches_are_separate() {
        let cache = TokenCache::default();
        let p = provider(1_000);
        for _ in 0..3 {
            assert!(cache.verify(&p, 0, "bad", 100).is_err());
        }
        assert_eq!(p.calls.load(Ordering::SeqCst), 3);
        assert_eq!(cache.len(), 0);
        cache.verify(&p, 0, "good-a", 100).unwrap();
        // A replaced registration starts with a cache of its own.
        let replaced = TokenCache::default();
        replaced.verify(&p, 0, "good-a", 100).unwrap();
        assert_eq!(p.calls.load(Ordering::SeqCst), 5);
        assert_eq!((cache.len(), replaced.len()), (1, 1));
    }

    #[test]
    fn a_clock_that_went_backwards_verifies_again() {
        let cache = TokenCache::default();
        let p = provider(1_000);
        cache.verify(&p, 0, "good-a", 500).unwrap();
        cache.verify(&p, 0, "good-a", 400).unwrap();
        assert_eq!(p.calls.load(Ordering::SeqCst), 2);
    }
}
