//! DPoP proofs (RFC 9449 shape) signed with a RAM-only Ed25519 key.
//!
//! A pod generates a [`DpopKey`] at start and never writes it anywhere; every
//! request to the release server carries a fresh proof. [`verify_proof`]
//! performs the checks of RFC 9449 §4.3 that need no server state, in this
//! order, each failure a distinct [`DpopError`]:
//!
//! 1. size, then three base64url parts;
//! 2. header: `alg` must be `EdDSA` (checked first and fixed by podseal, never
//!    chosen by the token: `none`, HMAC, RSA and ECDSA are all refused),
//!    `typ` must be `dpop+jwt`, only `typ`/`alg`/`jwk` may appear (no `kid`,
//!    `jku`, `x5u`, `crit`: no key is ever fetched because a proof named it);
//! 3. `jwk` is an Ed25519 public key, with no private member;
//! 4. the signature verifies under that key (strict RFC 8032);
//! 5. claims: `jti`, `htm`, `htu`, `iat` present; `htm` matches the
//!    request, and `htu` is an absolute `https` URL (parsed, not pattern
//!    matched) naming the same host, effective port and path (query and
//!    fragment ignored); `iat` within the window; `ath`
//!    present and equal when an access token is bound, absent otherwise;
//!    `nonce` equal when the server requires one.
//!
//! Replay of `jti` and the pin of a key to a pod need storage; they are the
//! server's checks, fed by [`VerifiedProof`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::jwk::{JwkError, ed25519_jwk, ed25519_public_key, thumbprint_sha256};
use crate::jws::{CompactJws, JwsError, sign_ed25519, verify_ed25519};
use crate::reason::Reason;

/// The `typ` of every DPoP proof.
pub const DPOP_TYP: &str = "dpop+jwt";
/// The only `alg` podseal accepts.
pub const DPOP_ALG: &str = "EdDSA";
/// The largest proof accepted.
pub const MAX_PROOF_LEN: usize = 4096;
/// `jti` length bounds (characters).
pub const JTI_LEN: std::ops::RangeInclusive<usize> = 16..=128;

/// A RAM-only Ed25519 DPoP key. It cannot be printed or serialized.
pub struct DpopKey {
    signing: SigningKey,
    public_jwk: Map<String, Value>,
    thumbprint: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DpopKey(jkt {}, [redacted])", self.thumbprint)
    }
}

/// What a proof asserts about one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    /// Unique proof id.
    pub jti: String,
    /// HTTP method.
    pub htm: String,
    /// HTTP target URI, without query and fragment.
    pub htu: String,
    /// Issued-at, Unix seconds.
    pub iat: i64,
    /// Hash of the bound access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
    /// Server-provided nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// What one proof is for. The fields are named, so the session a proof
/// binds to (`ath`) and the server's nonce cannot be passed in each other's
/// place.
#[derive(Debug, Clone, Copy)]
pub struct ProofFor<'a> {
    /// HTTP method.
    pub htm: &'a str,
    /// The request's URL, without query and fragment.
    pub htu: &'a str,
    /// Issued-at, Unix seconds.
    pub iat: i64,
    /// The access token (release session id) the proof binds to with `ath`.
    pub access_token: Option<&'a str>,
    /// The nonce the server sent in `DPoP-Nonce`.
    pub nonce: Option<&'a str>,
}

impl DpopKey {
    /// Generates a key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, crate::RandomnessUnavailable> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        crate::fill_random(seed.as_mut())?;
        Ok(Self::from_signing_key(SigningKey::from_bytes(&seed)))
    }

    fn from_signing_key(signing: SigningKey) -> Self {
        let public_jwk = ed25519_jwk(signing.verifying_key().as_bytes());
        // An OKP JWK built above always has every required member.
        let thumbprint = thumbprint_sha256(&public_jwk).unwrap_or_default();
        Self {
            signing,
            public_jwk,
            thumbprint,
        }
    }

    /// The RFC 7638 thumbprint (`jkt`) of the public key.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Builds a proof for one request with a fresh random `jti`.
    pub fn proof(
        &self,
        request: &ProofFor<'_>,
    ) -> Result<(String, ProofClaims), crate::RandomnessUnavailable> {
        let claims = ProofClaims {
            jti: new_jti()?,
            htm: request.htm.to_owned(),
            htu: request.htu.to_owned(),
            iat: request.iat,
            ath: request.access_token.map(access_token_hash),
            nonce: request.nonce.map(str::to_owned),
        };
        Ok((self.sign_claims(&claims), claims))
    }

    /// Signs the given claims as a proof.
    pub fn sign_claims(&self, claims: &ProofClaims) -> String {
        let header =
            serde_json::json!({ "typ": DPOP_TYP, "alg": DPOP_ALG, "jwk": self.public_jwk });
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        sign_ed25519(&self.signing, &header, &payload)
    }
}

/// A random 128-bit `jti`, base64url.
pub fn new_jti() -> Result<String, crate::RandomnessUnavailable> {
    crate::random_id::<16>()
}

/// `ath`: base64url of SHA-256 over the ASCII access token.
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// What the server expects of a proof.
#[derive(Debug, Clone, Copy)]
pub struct ProofExpectations<'a> {
    /// The request's method.
    pub htm: &'a str,
    /// The server's configured external URL for this route (never the Host header).
    pub htu: &'a str,
    /// Current time, Unix seconds.
    pub now: i64,
    /// How old `iat` may be, seconds.
    pub max_age_secs: i64,
    /// How far in the future `iat` may be (clock skew), seconds.
    pub max_skew_secs: i64,
    /// The access token the proof must be bound to (`ath`), if any.
    pub access_token: Option<&'a str>,
    /// The nonce the server issued, if it requires one.
    pub nonce: Option<&'a str>,
}

/// A proof that passed every stateless check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof key.
    pub thumbprint: String,
    /// The proof key.
    pub public_key: [u8; 32],
    /// The verified claims.
    pub claims: ProofClaims,
}

/// Why a DPoP proof was refused. Each variant has a stable [`reason`](Self::reason) code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// Longer than [`MAX_PROOF_LEN`].
    #[error("DPoP proof is too large")]
    TooLarge,
    /// Not a compact JWS, or the header/claims are not the expected JSON.
    #[error("DPoP proof is malformed: {0}")]
    Malformed(&'static str),
    /// `alg` is not `EdDSA`.
    #[error("DPoP proof algorithm `{0}` is not allowed (only EdDSA)")]
    UnsupportedAlgorithm(String),
    /// `typ` is not `dpop+jwt`.
    #[error("DPoP proof typ must be dpop+jwt")]
    WrongType,
    /// A header parameter other than `typ`, `alg`, `jwk`.
    #[error("DPoP proof header parameter `{0}` is not allowed")]
    UnexpectedHeader(String),
    /// The `jwk` is not a usable Ed25519 public key.
    #[error("DPoP proof jwk is invalid: {0}")]
    BadJwk(JwkError),
    /// The signature does not verify.
    #[error("DPoP proof signature does not verify")]
    BadSignature,
    /// `htm` differs from the request method.
    #[error("DPoP proof htm does not match the request method")]
    HtmMismatch,
    /// `htu` differs from the request URI.
    #[error("DPoP proof htu does not match the request URI")]
    HtuMismatch,
    /// `iat` is too old.
    #[error("DPoP proof is too old")]
    Stale,
    /// `iat` is in the future beyond the allowed skew.
    #[error("DPoP proof is issued in the future")]
    FromTheFuture,
    /// `jti` is missing its bounds.
    #[error("DPoP proof jti must be {}..={} characters", JTI_LEN.start(), JTI_LEN.end())]
    BadJti,
    /// An access token is bound but `ath` is missing.
    #[error("DPoP proof lacks ath for the access token")]
    MissingAth,
    /// `ath` does not match the access token.
    #[error("DPoP proof ath does not match the access token")]
    AthMismatch,
    /// `ath` present where no access token is bound.
    #[error("DPoP proof carries ath but no access token is bound")]
    UnexpectedAth,
    /// The server requires a nonce and the proof's is missing or wrong.
    #[error("DPoP proof nonce is missing or stale")]
    NonceRequired,
}

impl DpopError {
    /// A stable machine-readable code for problem+json and the audit log.
    pub fn reason(&self) -> Reason {
        match self {
            Self::TooLarge => Reason::ProofTooLarge,
            Self::Malformed(_) => Reason::ProofMalformed,
            Self::UnsupportedAlgorithm(_) => Reason::AlgNotAllowed,
            Self::WrongType => Reason::TypNotDpop,
            Self::UnexpectedHeader(_) => Reason::HeaderNotAllowed,
            Self::BadJwk(_) => Reason::JwkInvalid,
            Self::BadSignature => Reason::SignatureInvalid,
            Self::HtmMismatch => Reason::HtmMismatch,
            Self::HtuMismatch => Reason::HtuMismatch,
            Self::Stale => Reason::IatStale,
            Self::FromTheFuture => Reason::IatFuture,
            Self::BadJti => Reason::JtiInvalid,
            Self::MissingAth => Reason::AthMissing,
            Self::AthMismatch => Reason::AthMismatch,
            Self::UnexpectedAth => Reason::AthUnexpected,
            Self::NonceRequired => Reason::UseDpopNonce,
        }
    }
}

/// Runs every stateless RFC 9449 §4.3 check on `proof`.
pub fn verify_proof(
    proof: &str,
    expect: &ProofExpectations<'_>,
) -> Result<VerifiedProof, DpopError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(DpopError::TooLarge);
    }
    let jws = CompactJws::parse(proof).map_err(|_| DpopError::Malformed("not a compact JWS"))?;
    let header: Map<String, Value> = serde_json::from_slice(&jws.header)
        .map_err(|_| DpopError::Malformed("header is not a JSON object"))?;
    let public_key = check_header(&header)?;
    verify_ed25519(&public_key, jws.signing_input.as_bytes(), &jws.signature).map_err(
        |e| match e {
            JwsError::BadKey => DpopError::BadJwk(JwkError::NotEd25519("not a valid curve point")),
            _ => DpopError::BadSignature,
        },
    )?;
    let claims: ProofClaims = serde_json::from_slice(&jws.payload)
        .map_err(|_| DpopError::Malformed("claims lack jti, htm, htu or iat"))?;
    check_claims(&claims, expect)?;
    let thumbprint = thumbprint_sha256(&ed25519_jwk(&public_key)).map_err(DpopError::BadJwk)?;
    Ok(VerifiedProof {
        thumbprint,
        public_key,
        claims,
    })
}

fn check_header(header: &Map<String, Value>) -> Result<[u8; 32], DpopError> {
    match header.get("alg").and_then(Value::as_str) {
        Some(DPOP_ALG) => {}
        Some(other) => {
            return Err(DpopError::UnsupportedAlgorithm(
                other.chars().take(16).collect(),
            ));
        }
        None => return Err(DpopError::UnsupportedAlgorithm("(missing)".into())),
    }
    if header.get("typ").and_then(Value::as_str) != Some(DPOP_TYP) {
        return Err(DpopError::WrongType);
    }
    if let Some(name) = header
        .keys()
        .find(|k| !matches!(k.as_str(), "typ" | "alg" | "jwk"))
    {
        return Err(DpopError::UnexpectedHeader(name.chars().take(16).collect()));
    }
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(DpopError::BadJwk(JwkError::MissingMember("jwk")))?;
    ed25519_public_key(jwk).map_err(DpopError::BadJwk)
}

/// The claim checks of RFC 9449 §4.3 steps 8-12 (no signature involved).
pub(crate) fn check_claims(
    claims: &ProofClaims,
    expect: &ProofExpectations<'_>,
) -> Result<(), DpopError> {
    if !JTI_LEN.contains(&claims.jti.chars().count()) {
        return Err(DpopError::BadJti);
    }
    if claims.htm != expect.htm {
        return Err(DpopError::HtmMismatch);
    }
    if !htu_matches(&claims.htu, expect.htu) {
        return Err(DpopError::HtuMismatch);
    }
    if claims.iat < expect.now.saturating_sub(expect.max_age_secs) {
        return Err(DpopError::Stale);
    }
    if claims.iat > expect.now.saturating_add(expect.max_skew_secs) {
        return Err(DpopError::FromTheFuture);
    }
    match (expect.access_token, &claims.ath) {
        (Some(token), Some(ath)) => {
            let expected = access_token_hash(token);
            if !bool::from(expected.as_bytes().ct_eq(ath.as_bytes())) {
                return Err(DpopError::AthMismatch);
            }
        }
        (Some(_), None) => return Err(DpopError::MissingAth),
        (None, Some(_)) => return Err(DpopError::UnexpectedAth),
        (None, None) => {}
    }
    if let Some(nonce) = expect.nonce {
        let matches = claims
            .nonce
            .as_deref()
            .is_some_and(|n| bool::from(n.as_bytes().ct_eq(nonce.as_bytes())));
        if !matches {
            return Err(DpopError::NonceRequired);
        }
    }
    Ok(())
}

/// An `htu` as RFC 9449 §4.3 compares it: an absolute `https` URL reduced
/// to its host (lower case), effective port and path, with query and
/// fragment dropped (RFC 3986 §6.2.2–6.2.3).
#[derive(Debug, PartialEq, Eq)]
struct NormalizedHtu {
    host: String,
    port: u16,
    path: String,
}

/// Parses `uri` with a real URI parser (`http::Uri`) and refuses anything
/// that is not an absolute `https` URL with a plain `host[:port]` authority:
/// another scheme, a relative reference, userinfo, an empty host, a second
/// colon (`host:8443:443`), or a port that is empty, zero, not all digits,
/// written with a leading zero (`08443`) or above 65535. `None` never
/// matches, not even another `None`.
fn normalize_htu(uri: &str) -> Option<NormalizedHtu> {
    let parsed: http::Uri = uri.parse().ok()?;
    if parsed.scheme() != Some(&http::uri::Scheme::HTTPS) {
        return None;
    }
    let authority = parsed.authority()?.as_str();
    if authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal's colons are inside its brackets.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    if host.is_empty() || (host.contains(':') && !(host.starts_with('[') && host.ends_with(']'))) {
        return None;
    }
    let port = match port {
        None => 443,
        Some(digits) => {
            // Only the canonical text of a port: `053215` is not `53215`
            // under RFC 3986 §6.2.3, which removes a default port, not zeros.
            if digits.is_empty()
                || !digits.bytes().all(|b| b.is_ascii_digit())
                || (digits.len() > 1 && digits.starts_with('0'))
            {
                return None;
            }
            match digits.parse::<u16>() {
                Ok(0) | Err(_) => return None,
                Ok(port) => port,
            }
        }
    };
    let path = match parsed.path() {
        "" => "/",
        path => path,
    };
    Some(NormalizedHtu {
        host: host.to_ascii_lowercase(),
        port,
        path: path.to_owned(),
    })
}

/// Whether a proof's `htu` names the URL the server expects.
fn htu_matches(claimed: &str, expected: &str) -> bool {
    match (normalize_htu(claimed), normalize_htu(expected)) {
        (Some(claimed), Some(expected)) => claimed == expected,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors::load_json;

    const HTU: &str = "https://podseal.example:8443/v1/unwrap";

    fn expect(now: i64) -> ProofExpectations<'static> {
        ProofExpectations {
            htm: "POST",
            htu: HTU,
            now,
            max_age_secs: 60,
            max_skew_secs: 5,
            access_token: Some("session-token"),
            nonce: None,
        }
    }

    #[test]
    fn a_fresh_proof_verifies_and_names_its_key() {
        let key = DpopKey::generate().unwrap();
        let (proof, claims) = key
            .proof(&ProofFor {
                htm: "POST",
                htu: HTU,
                iat: 1000,
                access_token: Some("session-token"),
                nonce: None,
            })
            .unwrap();
        let verified = verify_proof(&proof, &expect(1000)).unwrap();
        assert_eq!(verified.thumbprint, key.thumbprint());
        assert_eq!(verified.claims, claims);
        assert!(!format!("{key:?}").contains(&URL_SAFE_NO_PAD.encode(key.signing.to_bytes())));
    }

    #[test]
    fn each_stateless_check_refuses_with_its_own_error() {
        let key = DpopKey::generate().unwrap();
        let good = ProofClaims {
            jti: new_jti().unwrap(),
            htm: "POST".into(),
            htu: HTU.into(),
            iat: 1000,
            ath: Some(access_token_hash("session-token")),
            nonce: None,
        };
        let cases: Vec<(ProofClaims, ProofExpectations<'_>, DpopError)> = vec![
            (
                ProofClaims {
                    htm: "GET".into(),
                    ..good.clone()
                },
                expect(1000),
                DpopError::HtmMismatch,
            ),
            (
                ProofClaims {
                    htu: "https://evil.example/v1/unwrap".into(),
                    ..good.clone()
                },
                expect(1000),
                DpopError::HtuMismatch,
            ),
            (
                ProofClaims {
                    htu: "https://podseal.example:8443/v1/sessions".into(),
                    ..good.clone()
                },
                expect(1000),
                DpopError::HtuMismatch,
            ),
            (good.clone(), expect(1061), DpopError::Stale),
            (good.clone(), expect(994), DpopError::FromTheFuture),
            (
                ProofClaims {
                    jti: "short".into(),
                    ..good.clone()
                },
                expect(1000),
                DpopError::BadJti,
            ),
            (
                ProofClaims {
                    ath: None,
                    ..good.clone()
                },
                expect(1000),
                DpopError::MissingAth,
            ),
            (
                ProofClaims {
                    ath: Some(access_token_hash("other")),
                    ..good.clone()
                },
                expect(1000),
                DpopError::AthMismatch,
            ),
            (
                good.clone(),
                ProofExpectations {
                    access_token: None,
                    ..expect(1000)
                },
                DpopError::UnexpectedAth,
            ),
            (
                good.clone(),
                ProofExpectations {
                    nonce: Some("n-1"),
                    ..expect(1000)
                },
                DpopError::NonceRequired,
            ),
            (
                ProofClaims {
                    nonce: Some("n-0".into()),
                    ..good.clone()
                },
                ProofExpectations {
                    nonce: Some("n-1"),
                    ..expect(1000)
                },
                DpopError::NonceRequired,
            ),
        ];
        for (claims, expectations, error) in cases {
            let proof = key.sign_claims(&claims);
            assert_eq!(verify_proof(&proof, &expectations).unwrap_err(), error);
        }
        let with_nonce = ProofClaims {
            nonce: Some("n-1".into()),
            ..good.clone()
        };
        verify_proof(
            &key.sign_claims(&with_nonce),
            &ProofExpectations {
                nonce: Some("n-1"),
                ..expect(1000)
            },
        )
        .unwrap();
        // Query and fragment are ignored; default port and case are normalized.
        let query = ProofClaims {
            htu: format!("{HTU}?x=1#f"),
            ..good.clone()
        };
        verify_proof(&key.sign_claims(&query), &expect(1000)).unwrap();
        let default_port = ProofClaims {
            htu: "HTTPS://Podseal.Example:443/v1/unwrap".into(),
            ..good
        };
        let expectation = ProofExpectations {
            htu: "https://podseal.example/v1/unwrap",
            ..expect(1000)
        };
        verify_proof(&key.sign_claims(&default_port), &expectation).unwrap();
    }

    /// `htu` is parsed as an absolute https URL: a malformed authority,
    /// userinfo, another scheme, a relative reference, an empty host or a
    /// port out of range never matches, not even an identical expectation.
    #[test]
    fn htu_must_be_a_valid_absolute_https_url() {
        let claims_for = |htu: &str| ProofClaims {
            jti: "a".repeat(16),
            htm: "POST".into(),
            htu: htu.into(),
            iat: 1000,
            ath: Some(access_token_hash("session-token")),
            nonce: None,
        };
        let check = |claimed: &str, expected: &str| {
            let expectation = ProofExpectations {
                htu: expected,
                ..expect(1000)
            };
            check_claims(&claims_for(claimed), &expectation)
        };
        let refused = [
            // A second port: a trailing `:443` is no default port here.
            (
                "https://localhost:8443:443/v1/unwrap",
                "https://localhost:8443/v1/unwrap",
            ),
            (
                "https://localhost:8443:443/v1/unwrap",
                "https://localhost:8443:443/v1/unwrap",
            ),
            (
                "https://localhost:443:443/v1/unwrap",
                "https://localhost/v1/unwrap",
            ),
            // Userinfo.
            ("https://user@podseal.example:8443/v1/unwrap", HTU),
            ("https://podseal.example:8443@evil.example/v1/unwrap", HTU),
            (
                "https://u:p@podseal.example:8443/v1/unwrap",
                "https://u:p@podseal.example:8443/v1/unwrap",
            ),
            // Not https.
            ("http://podseal.example:8443/v1/unwrap", HTU),
            (
                "http://podseal.example/v1/unwrap",
                "http://podseal.example/v1/unwrap",
            ),
            (
                "wss://podseal.example:8443/v1/unwrap",
                "wss://podseal.example:8443/v1/unwrap",
            ),
            // Relative references.
            ("/v1/unwrap", "/v1/unwrap"),
            (
                "//podseal.example:8443/v1/unwrap",
                "//podseal.example:8443/v1/unwrap",
            ),
            (
                "podseal.example:8443/v1/unwrap",
                "podseal.example:8443/v1/unwrap",
            ),
            // Empty host.
            ("https://:8443/v1/unwrap", "https://:8443/v1/unwrap"),
            ("https:///v1/unwrap", "https:///v1/unwrap"),
            // Port out of range, zero, empty or not a number.
            (
                "https://podseal.example:99999/v1/unwrap",
                "https://podseal.example:99999/v1/unwrap",
            ),
            (
                "https://podseal.example:65979/v1/unwrap",
                "https://podseal.example:443/v1/unwrap",
            ),
            (
                "https://podseal.example:0/v1/unwrap",
                "https://podseal.example:0/v1/unwrap",
            ),
            (
                "https://podseal.example:/v1/unwrap",
                "https://podseal.example:/v1/unwrap",
            ),
            (
                "https://podseal.example:+443/v1/unwrap",
                "https://podseal.example/v1/unwrap",
            ),
            // A leading zero is not the canonical port text (RFC 3986 §6.2.3).
            (
                "https://podseal.example:053215/v1/unwrap",
                "https://podseal.example:53215/v1/unwrap",
            ),
            ("https://podseal.example:08443/v1/unwrap", HTU),
            (
                "https://podseal.example:0443/v1/unwrap",
                "https://podseal.example/v1/unwrap",
            ),
            (
                "https://podseal.example:00/v1/unwrap",
                "https://podseal.example:00/v1/unwrap",
            ),
            // Not a URL at all.
            ("", ""),
            (
                "https://podseal example/v1/unwrap",
                "https://podseal example/v1/unwrap",
            ),
        ];
        for (claimed, expected) in refused {
            assert_eq!(
                check(claimed, expected),
                Err(DpopError::HtuMismatch),
                "{claimed:?} against {expected:?}"
            );
        }
        // Equivalent forms still match: scheme and host case, the default
        // port, an empty path, query and fragment (RFC 9449 §4.3).
        let equal = [
            ("HTTPS://PodSeal.Example:8443/v1/unwrap", HTU),
            ("https://podseal.example:8443/v1/unwrap?x=1#f", HTU),
            (
                "https://podseal.example:443/v1/unwrap",
                "https://podseal.example/v1/unwrap",
            ),
            ("https://podseal.example", "https://podseal.example:443/"),
            (
                "https://[::1]:8443/v1/unwrap",
                "https://[::1]:8443/v1/unwrap",
            ),
            (
                "https://127.0.0.1:443/v1/unwrap",
                "https://127.0.0.1/v1/unwrap",
            ),
        ];
        for (claimed, expected) in equal {
            assert_eq!(
                check(claimed, expected),
                Ok(()),
                "{claimed:?} against {expected:?}"
            );
        }
        // The path is compared exactly (case, dot segments).
        for claimed in [
            "https://podseal.example:8443/V1/unwrap",
            "https://podseal.example:8443/v1/../v1/unwrap",
            "https://podseal.example:8443/v1/unwrap/",
        ] {
            assert_eq!(
                check(claimed, HTU),
                Err(DpopError::HtuMismatch),
                "{claimed:?}"
            );
        }
    }

    fn forge(header: Value, claims: &ProofClaims, key: &DpopKey) -> String {
        sign_ed25519(
            &key.signing,
            &serde_json::to_vec(&header).unwrap(),
            &serde_json::to_vec(claims).unwrap(),
        )
    }

    #[test]
    fn header_checks_refuse_alg_typ_jwk_and_extra_parameters() {
        let key = DpopKey::generate().unwrap();
        let (_, claims) = key
            .proof(&ProofFor {
                htm: "POST",
                htu: HTU,
                iat: 1000,
                access_token: Some("session-token"),
                nonce: None,
            })
            .unwrap();
        let jwk = Value::Object(key.public_jwk.clone());
        let mut private_jwk = key.public_jwk.clone();
        private_jwk.insert(
            "d".into(),
            URL_SAFE_NO_PAD.encode(key.signing.to_bytes()).into(),
        );
        let other = DpopKey::generate().unwrap();
        let cases = [
            (
                serde_json::json!({"typ": DPOP_TYP, "alg": "none", "jwk": jwk}),
                DpopError::UnsupportedAlgorithm("none".into()),
            ),
            (
                serde_json::json!({"typ": DPOP_TYP, "alg": "HS256", "jwk": jwk}),
                DpopError::UnsupportedAlgorithm("HS256".into()),
            ),
            (
                serde_json::json!({"typ": DPOP_TYP, "jwk": jwk}),
                DpopError::UnsupportedAlgorithm("(missing)".into()),
            ),
            (
                serde_json::json!({"typ": "JWT", "alg": "EdDSA", "jwk": jwk}),
                DpopError::WrongType,
            ),
            (
                serde_json::json!({"typ": DPOP_TYP, "alg": "EdDSA", "jwk": jwk, "jku": "https://evil"}),
                DpopError::UnexpectedHeader("jku".into()),
            ),
            (
                serde_json::json!({"typ": DPOP_TYP, "alg": "EdDSA", "jwk": private_jwk}),
                DpopError::BadJwk(JwkError::PrivateKeyMaterial),
            ),
            (
                serde_json::json!({"typ": DPOP_TYP, "alg": "EdDSA"}),
                DpopError::BadJwk(JwkError::MissingMember("jwk")),
            ),
            (
                serde_json::json!({"typ": DPOP_TYP, "alg": "EdDSA", "jwk": other.public_jwk}),
                DpopError::BadSignature,
            ),
        ];
        for (header, error) in cases {
            assert_eq!(
                verify_proof(&forge(header, &claims, &key), &expect(1000)).unwrap_err(),
                error
            );
        }
        assert_eq!(
            verify_proof(&"a".repeat(MAX_PROOF_LEN + 1), &expect(1000)).unwrap_err(),
            DpopError::TooLarge
        );
        assert!(matches!(
            verify_proof("a.b", &expect(1000)).unwrap_err(),
            DpopError::Malformed(_)
        ));
    }

    #[test]
    fn rfc9449_and_rfc7515_examples() {
        let file = load_json("jose/rfc9449-dpop-examples.json");
        assert_eq!(
            access_token_hash(file["access_token"].as_str().unwrap()),
            file["access_token_ath"].as_str().unwrap()
        );
        for name in [
            "proof_token_request_authorization_code",
            "proof_token_request_refresh_token",
            "proof_resource_request_with_ath",
        ] {
            let proof = &file[name];
            // The RFC's proofs are ES256: podseal refuses the algorithm itself.
            let refused = verify_proof(proof["compact"].as_str().unwrap(), &expect(0)).unwrap_err();
            assert_eq!(
                refused,
                DpopError::UnsupportedAlgorithm("ES256".into()),
                "{name}"
            );
            // Their claims still exercise the claim checks, at their own time.
            let claims: ProofClaims = serde_json::from_value(proof["payload"].clone()).unwrap();
            let at = |htu, access_token| ProofExpectations {
                htm: proof["payload"]["htm"].as_str().unwrap(),
                htu,
                now: claims.iat,
                max_age_secs: 60,
                max_skew_secs: 5,
                access_token,
                nonce: None,
            };
            let token = claims
                .ath
                .as_ref()
                .map(|_| file["access_token"].as_str().unwrap());
            check_claims(&claims, &at(&claims.htu, token)).unwrap();
            assert_eq!(
                check_claims(&claims, &at("https://other.example/x", token)),
                Err(DpopError::HtuMismatch)
            );
            let stale = ProofExpectations {
                now: claims.iat + 3600,
                ..at(&claims.htu, token)
            };
            assert_eq!(check_claims(&claims, &stale), Err(DpopError::Stale));
            if token.is_some() {
                assert_eq!(
                    check_claims(&claims, &at(&claims.htu, Some("another token"))),
                    Err(DpopError::AthMismatch)
                );
            }
        }
        let jws = load_json("jose/rfc7515-appendix-a.json");
        for (name, alg) in [
            ("A.1_HS256", "HS256"),
            ("A.2_RS256", "RS256"),
            ("A.3_ES256", "ES256"),
            ("A.5_unsecured", "none"),
        ] {
            let refused =
                verify_proof(jws[name]["compact"].as_str().unwrap(), &expect(0)).unwrap_err();
            assert_eq!(
                refused,
                DpopError::UnsupportedAlgorithm(alg.into()),
                "{name}"
            );
        }
    }
}
