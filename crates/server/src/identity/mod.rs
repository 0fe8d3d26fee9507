//! Gate 2: who is asking. One identity provider behind a small trait; the
//! Kubernetes projected ServiceAccount token comes first, SPIFFE JWT-SVIDs
//! and generic OIDC tokens are later providers of the same trait.
//!
//! A provider turns a bearer token into a [`WorkloadIdentity`] or a typed
//! refusal with a stable reason code. It verifies against keys pinned at
//! registration, never against a key a token points to.

pub mod cache;
pub mod jwks;
pub mod kubernetes;

pub use jwks::{JwksError, PinnedJwks};
pub use kubernetes::KubernetesTokens;
use podseal_core::reason::Reason;

/// A verified workload, as the release scope and gate 4 need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIdentity {
    /// Namespace.
    pub namespace: String,
    /// Service account name.
    pub service_account: String,
    /// Service account uid.
    pub service_account_uid: String,
    /// Pod name.
    pub pod_name: String,
    /// Pod uid.
    pub pod_uid: String,
    /// The token's `jti` (Kubernetes 1.32+), written as the API server's
    /// audit log writes it in `authentication.kubernetes.io/issued-credential-id`
    /// and `credential-id`: `JTI=<uuid>`. `None` for a token without one
    /// (clusters before 1.32).
    pub credential_id: Option<String>,
    /// The node the token's pod was scheduled on, from `kubernetes.io`
    /// `node` (1.32+); gate 4 checks it against the live pod's
    /// `spec.nodeName`. `None` for a token without node claims.
    pub node: Option<NodeRef>,
    /// Effective token expiry, Unix seconds: `exp`, or the earlier
    /// `kubernetes.io` `warnafter` of an extended token (bounds a session's
    /// lifetime and a cached verification).
    pub expires_at: i64,
}

/// A node named by a token's `kubernetes.io` claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// `kubernetes.io.node.name`.
    pub name: String,
    /// `kubernetes.io.node.uid`.
    pub uid: String,
}

/// Why gate 2 refused. Messages carry no token material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not a compact JWS, or larger than any real token.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// `alg` is not RS256 or ES256 (`none`, HMAC and the rest are refused).
    #[error("token algorithm `{0}` is not allowed")]
    AlgorithmNotAllowed(String),
    /// A header parameter that could steer verification (`jku`, `x5u`, `jwk`, `x5c`, `crit`…).
    #[error("token header parameter `{0}` is not allowed (keys are pinned, never fetched)")]
    HeaderNotAllowed(String),
    /// The header has no `kid`.
    #[error("token has no kid")]
    MissingKid,
    /// `kid` names no pinned key.
    #[error("token kid names no pinned key")]
    UnknownKid,
    /// The pinned key is for another algorithm than the header names.
    #[error("token algorithm does not match the pinned key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// `iss` is not the registered issuer.
    #[error("token issuer is not the registered issuer")]
    WrongIssuer,
    /// `aud` does not contain the server's audience.
    #[error("token audience does not include this server")]
    WrongAudience,
    /// `aud` names other relying parties besides this server, and the
    /// cluster does not allow it.
    #[error("token audience names other relying parties than this server")]
    ExtraAudience,
    /// `exp` − `iat` (with `warnafter` for `exp` when present) is longer than
    /// the cluster's bound.
    #[error("token lifetime {lifetime_secs} s is longer than this cluster accepts ({max_secs} s)")]
    LifetimeTooLong {
        /// The token's lifetime, seconds.
        lifetime_secs: i64,
        /// The cluster's bound, seconds.
        max_secs: i64,
    },
    /// `kubernetes.io` `warnafter` has passed: the kubelet should have
    /// replaced this (extended) token by now.
    #[error("token is past its kubernetes.io warnafter (a fresh token should have replaced it)")]
    Stale,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("token is issued in the future")]
    IssuedInFuture,
    /// A required claim is missing or has the wrong type.
    #[error("token lacks claim {0}")]
    MissingClaim(&'static str),
    /// The token is not bound to a pod.
    #[error("token is not bound to a pod")]
    NotPodBound,
    /// `sub` disagrees with the `kubernetes.io` claims.
    #[error("token subject does not match its kubernetes.io claims")]
    SubjectMismatch,
}

impl IdentityError {
    /// A stable machine-readable code for problem+json and the audit log.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Malformed(_) => Reason::TokenMalformed,
            Self::AlgorithmNotAllowed(_) => Reason::AlgNotAllowed,
            Self::HeaderNotAllowed(_) => Reason::HeaderNotAllowed,
            Self::MissingKid => Reason::KidMissing,
            Self::UnknownKid => Reason::KidUnknown,
            Self::AlgorithmMismatch => Reason::AlgKeyMismatch,
            Self::BadSignature => Reason::SignatureInvalid,
            Self::WrongIssuer => Reason::IssuerMismatch,
            Self::WrongAudience => Reason::AudienceMismatch,
            Self::ExtraAudience => Reason::AudienceExtra,
            Self::LifetimeTooLong { .. } => Reason::TokenLifetimeTooLong,
            Self::Stale => Reason::TokenStale,
            Self::Expired => Reason::TokenExpired,
            Self::NotYetValid => Reason::TokenNotYetValid,
            Self::IssuedInFuture => Reason::IatFuture,
            Self::MissingClaim(_) => Reason::ClaimMissing,
            Self::NotPodBound => Reason::NotPodBound,
            Self::SubjectMismatch => Reason::SubjectMismatch,
        }
    }
}

/// A source of workload identities (gate 2).
pub trait IdentityProvider: Send + Sync {
    /// Verifies `token` at time `now` (Unix seconds).
    fn verify(&self, token: &str, now: i64) -> Result<WorkloadIdentity, IdentityError>;
    /// True when gate 4 can check this provider's workloads against a live view.
    fn has_live_workload_view(&self) -> bool;
}
