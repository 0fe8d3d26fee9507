//! Gate 3, the DPoP proof: pure decisions over the request's DPoP headers,
//! the server's external URL and its clock. The proof's own checks (JWS,
//! claims, thumbprint) are `podseal_core::dpop`; nonces are issued and
//! checked by `crate::nonce`; the replay record and the key's pin are
//! storage, composed in `release.rs`.

use podseal_core::dpop::{ProofExpectations, VerifiedProof, verify_proof};

use super::{Gate, Reason, Refusal};

/// What a proof is checked against, besides itself.
#[derive(Debug, Clone, Copy)]
pub struct ProofRules<'a> {
    /// The server's external URL, without a trailing `/` (the `htu`
    /// prefix; never the Host header).
    pub external_url: &'a str,
    /// How old `iat` may be, seconds.
    pub max_age_secs: i64,
    /// How far in the future `iat` may be, seconds.
    pub max_skew_secs: i64,
}

/// Exactly one `DPoP` header (RFC 9449 §4.3).
pub fn one_header<'a>(proofs: &[&'a str]) -> Result<&'a str, Refusal> {
    match proofs {
        [proof] => Ok(proof),
        _ => Err(Refusal::new(
            Gate::Dpop,
            Reason::DpopHeaderCount,
            format!("exactly one DPoP header is required, got {}", proofs.len()),
        )),
    }
}

/// The proof for `POST` to `route` at `now`, bound to `access_token` when
/// given. A wrong `htu` names the URL this server is known by (public), the
/// most common cause being a client configured with another one.
pub fn verify(
    proof: &str,
    rules: ProofRules<'_>,
    route: &str,
    access_token: Option<&str>,
    now: i64,
) -> Result<VerifiedProof, Refusal> {
    let htu = format!("{}{route}", rules.external_url);
    let expectations = ProofExpectations {
        htm: "POST",
        htu: &htu,
        now,
        max_age_secs: rules.max_age_secs,
        max_skew_secs: rules.max_skew_secs,
        access_token,
        nonce: None,
    };
    verify_proof(proof, &expectations).map_err(|error| {
        let mut refusal = Refusal::from(error);
        if refusal.reason == Reason::HtuMismatch {
            refusal.detail = format!(
                "{}; this server's external URL is {} (set PODSEAL_SERVER to it)",
                refusal.detail, rules.external_url
            );
        }
        refusal
    })
}

/// When the policy requires a server nonce, the proof carries one that
/// `is_fresh` accepts.
pub fn nonce_as_required(
    proof: &VerifiedProof,
    required: bool,
    is_fresh: impl Fn(&str) -> bool,
) -> Result<(), Refusal> {
    if required && !proof.claims.nonce.as_deref().is_some_and(is_fresh) {
        return Err(Refusal::new(
            Gate::Dpop,
            Reason::UseDpopNonce,
            "this service account's policy requires a fresh server nonce in the DPoP proof (see the DPoP-Nonce header)",
        ));
    }
    Ok(())
}
