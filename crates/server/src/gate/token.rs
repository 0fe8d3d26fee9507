//! Gate 2, the projected ServiceAccount token: verified against the
//! cluster's pinned JWKS, issuer, audiences and lifetime rules
//! (`crate::identity`), through the cluster's cache of verified tokens.
//! Here: the decision and its words.

use crate::identity::WorkloadIdentity;
use crate::identity::cache::TokenCache;
use crate::identity::kubernetes::KubernetesTokens;

use super::{Reason, Refusal};

/// The workload `token` proves in cluster `cluster`, at `now`. A token
/// signed by a key not pinned here says how an admin re-pins, since the
/// cluster most often rotated its signing key.
pub fn verify(
    cluster: &str,
    tokens: &KubernetesTokens,
    cache: &TokenCache,
    token: &str,
    now: i64,
) -> Result<WorkloadIdentity, Refusal> {
    cache
        .verify(tokens, tokens.leeway_secs, token, now)
        .map_err(|error| {
            let mut refusal = Refusal::from(error);
            if refusal.reason == Reason::KidUnknown {
                refusal.detail = format!(
                    "{}; if cluster {cluster} rotated its token-signing key, an admin re-pins it with `podseal cluster add {cluster} … --replace` (`podseal cluster show {cluster}` lists the key ids it publishes that are not pinned)",
                    refusal.detail
                );
            }
            refusal
        })
}
