//! The typed codes of every refusal: which [`Gate`] decided, and the
//! [`Reason`]. The server's problem details, its audit records and its
//! metrics labels, and the SDK, all use these enums, so a code cannot be
//! misspelled in one place and silently fall through in another.
//!
//! One naming scheme: snake_case, no dots, stable once released. A newer
//! server may add codes; a client reads the codes it does not know as
//! [`Code::Unknown`] rather than failing.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a code enum with its wire text, the list of every variant and
/// serde through that text.
macro_rules! codes {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every code, in declaration order (the OpenAPI document lists
            /// the same set; a test compares them).
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The stable wire text.
            pub const fn code(self) -> &'static str {
                match self {
                    $( Self::$variant => $code, )*
                }
            }

            /// The code with this wire text, if this build knows it.
            pub fn from_code(code: &str) -> Option<Self> {
                match code {
                    $( $code => Some(Self::$variant), )*
                    _ => None,
                }
            }
        }

        impl $crate::reason::Code<$name> {
            /// The wire text, known or not.
            pub fn as_str(&self) -> &str {
                match self {
                    Self::Known(code) => code.code(),
                    Self::Unknown(text) => text,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.code())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow::<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                Self::from_code(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        concat!("unknown ", stringify!($name), " code `{}`"),
                        text.chars().take(64).collect::<String>()
                    ))
                })
            }
        }
    };
}
pub(crate) use codes;

codes! {
    /// Which gate (or check) decided.
    pub enum Gate {
        /// Gate 1: the bound API key.
        ApiKey = "api_key",
        /// Gate 2: the projected ServiceAccount token (the identity provider).
        Token = "token",
        /// Gate 3: the RAM-only DPoP key, its proof and the session it holds.
        Dpop = "dpop",
        /// Gate 4: the live pod and its image digests.
        LivePod = "live_pod",
        /// The capsule itself and its release scope against the verified identity.
        Scope = "scope",
        /// The request (malformed, oversized, or the server cannot decide now).
        Request = "request",
        /// The admin API: its token, or an admin request's arguments.
        Admin = "admin",
    }
}

codes! {
    /// Why: the stable reason code of a refusal.
    pub enum Reason {
        // The request, and the server's own state.
        /// No such route.
        NotFound = "not_found",
        /// The route exists with another method.
        MethodNotAllowed = "method_not_allowed",
        /// The body is not `application/json`.
        UnsupportedMediaType = "unsupported_media_type",
        /// The body exceeds the limit.
        BodyTooLarge = "body_too_large",
        /// The headers exceed the limit.
        HeadersTooLarge = "headers_too_large",
        /// The body is not the JSON the route takes.
        MalformedBody = "malformed_body",
        /// Zero capsules, or more than one request may carry.
        BatchSize = "batch_size",
        /// The pod's recipient key is not a usable X25519 public key.
        RecipientKeyInvalid = "recipient_key_invalid",
        /// The server's storage did not answer in time or failed.
        StorageUnavailable = "storage_unavailable",
        /// The audit record could not be made durable (nothing is released without it).
        AuditUnavailable = "audit_unavailable",
        /// The server failed in a way that is not the client's doing.
        ServerError = "server_error",
        // Gate 1.
        /// No API key header.
        ApiKeyMissing = "api_key_missing",
        /// The API key is not known.
        ApiKeyUnknown = "api_key_unknown",
        /// The API key was revoked.
        ApiKeyRevoked = "api_key_revoked",
        /// The API key is bound to another cluster, namespace or service account.
        ApiKeyScopeMismatch = "api_key_scope_mismatch",
        // Gate 2.
        /// No token header.
        TokenMissing = "token_missing",
        /// The token is not a well-formed JWS.
        TokenMalformed = "token_malformed",
        /// The JWS algorithm is not on the allowlist.
        AlgNotAllowed = "alg_not_allowed",
        /// The JWS header carries a member that is never accepted.
        HeaderNotAllowed = "header_not_allowed",
        /// The token names no key id.
        KidMissing = "kid_missing",
        /// The key id is not in the pinned JWKS.
        KidUnknown = "kid_unknown",
        /// The algorithm does not fit the pinned key.
        AlgKeyMismatch = "alg_key_mismatch",
        /// The signature does not verify.
        SignatureInvalid = "signature_invalid",
        /// The issuer is not the cluster's.
        IssuerMismatch = "issuer_mismatch",
        /// The audience is not the server's.
        AudienceMismatch = "audience_mismatch",
        /// The token carries an audience besides the server's.
        AudienceExtra = "audience_extra",
        /// `exp − iat` exceeds the cluster's bound.
        TokenLifetimeTooLong = "token_lifetime_too_long",
        /// Past the token's `warnafter`: the kubelet has a newer one.
        TokenStale = "token_stale",
        /// Past `exp`.
        TokenExpired = "token_expired",
        /// Before `nbf`.
        TokenNotYetValid = "token_not_yet_valid",
        /// `iat` lies in the future.
        IatFuture = "iat_future",
        /// A required claim is absent.
        ClaimMissing = "claim_missing",
        /// The token is not bound to a pod.
        NotPodBound = "not_pod_bound",
        /// `sub` does not match the `kubernetes.io` claims.
        SubjectMismatch = "subject_mismatch",
        /// The token's `kubernetes.io` node is not the node the live pod
        /// runs on.
        NodeMismatch = "node_mismatch",
        /// The API key names a cluster this server does not know.
        ClusterUnknown = "cluster_unknown",
        // Gate 3.
        /// Not exactly one `DPoP` header.
        DpopHeaderCount = "dpop_header_count",
        /// The proof is larger than any valid proof.
        ProofTooLarge = "proof_too_large",
        /// The proof is not a well-formed DPoP JWS.
        ProofMalformed = "proof_malformed",
        /// `typ` is not `dpop+jwt`.
        TypNotDpop = "typ_not_dpop",
        /// The proof's `jwk` is not an Ed25519 public key.
        JwkInvalid = "jwk_invalid",
        /// `htm` is not the request's method.
        HtmMismatch = "htm_mismatch",
        /// `htu` is not the request's URL.
        HtuMismatch = "htu_mismatch",
        /// `iat` is too old.
        IatStale = "iat_stale",
        /// `jti` is missing or malformed.
        JtiInvalid = "jti_invalid",
        /// The proof was seen before.
        JtiReplayed = "jti_replayed",
        /// A session request's proof lacks `ath`.
        AthMissing = "ath_missing",
        /// `ath` is not the hash of this session.
        AthMismatch = "ath_mismatch",
        /// `ath` on a request that has no session.
        AthUnexpected = "ath_unexpected",
        /// The policy needs a server nonce: retry with the one sent.
        UseDpopNonce = "use_dpop_nonce",
        /// The proof's key is not the one pinned for this pod.
        KeyNotPinned = "key_not_pinned",
        /// Another key is pinned to this container while the instance that
        /// enrolled it still runs.
        PodKeyAlreadyPinned = "pod_key_already_pinned",
        /// A rotation to the key already pinned.
        SameKey = "same_key",
        /// No `Authorization: DPoP` session.
        SessionMissing = "session_missing",
        /// The session is not known (or was dropped).
        SessionUnknown = "session_unknown",
        /// The session has expired.
        SessionExpired = "session_expired",
        /// The session was revoked.
        SessionRevoked = "session_revoked",
        /// The session belongs to another pod, key or API key.
        SessionMismatch = "session_mismatch",
        // Gate 4.
        /// The pod view cannot decide (not synced, stale, unreachable).
        ViewUnknown = "view_unknown",
        /// No policy for this service account.
        NoPolicy = "no_policy",
        /// No such pod.
        PodNotFound = "pod_not_found",
        /// A pod of that name with another UID.
        PodUidMismatch = "pod_uid_mismatch",
        /// The pod is not Running.
        PodNotRunning = "pod_not_running",
        /// The pod is being deleted.
        PodTerminating = "pod_terminating",
        /// The pod of the session was deleted or replaced.
        PodGone = "pod_gone",
        /// A container in the spec has no status yet.
        ContainerWithoutStatus = "container_without_status",
        /// The pod has several containers, or declares which run podseal:
        /// the request must name its container (`PODSEAL_CONTAINER`).
        ContainerRequired = "container_required",
        /// The pod has no container of the name the request gave.
        ContainerUnknown = "container_unknown",
        /// The container's spec does not set `PODSEAL_CONTAINER` to its name.
        ContainerNotDeclared = "container_not_declared",
        /// The container is not running (waiting, terminated, no status).
        ContainerNotRunning = "container_not_running",
        /// The container instance the session was opened in stopped running.
        ContainerRestarted = "container_restarted",
        /// A container runs an image named by tag, without digest.
        ImageWithoutDigest = "image_without_digest",
        /// A container's image digest is not approved.
        ImageNotApproved = "image_not_approved",
        /// An ephemeral (debug) container's image is not approved.
        DebugContainerNotApproved = "debug_container_not_approved",
        /// A volume brings content into the pod that no image digest
        /// attests (a `gitRepo` volume).
        VolumeNotAttested = "volume_not_attested",
        // The capsule and its scope.
        /// The capsule's cluster is not the API key's.
        ClusterMismatch = "cluster_mismatch",
        /// The capsule's namespace is not the pod's.
        NamespaceMismatch = "namespace_mismatch",
        /// The pod's service account is not among the capsule's.
        ServiceAccountMismatch = "service_account_mismatch",
        /// The capsule's scope is of a kind this server does not verify yet.
        ScopeKindUnsupported = "scope_kind_unsupported",
        /// The capsule's scope is of another kind than the verified identity.
        ScopeKindMismatch = "scope_kind_mismatch",
        /// The SPIFFE trust domain is not the capsule's.
        TrustDomainMismatch = "trust_domain_mismatch",
        /// The SPIFFE id is not among the capsule's.
        SpiffeIdMismatch = "spiffe_id_mismatch",
        /// An OIDC claim does not have an allowed value.
        ClaimMismatch = "claim_mismatch",
        /// The capsule is past its `not_after`.
        CapsuleExpired = "capsule_expired",
        /// A reveal-once capsule on a server that cannot reveal once.
        RevealOnceUnsupported = "reveal_once_unsupported",
        /// The request carries capsule content; only header and wraps may be sent.
        ContentCiphertextPresent = "content_ciphertext_present",
        /// A capsule in the request is not base64url.
        CapsuleMalformed = "capsule_malformed",
        /// The armor is empty.
        ArmorEmpty = "armor_empty",
        /// The text does not start with `podseal:v1:`.
        ArmorMissingPrefix = "armor_missing_prefix",
        /// The armor names a version this build does not read.
        ArmorUnsupportedVersion = "armor_unsupported_version",
        /// The armored text is too large.
        ArmorTooLarge = "armor_too_large",
        /// The armor is not unpadded base64url.
        ArmorBase64 = "armor_base64",
        /// The body ends inside a field.
        CapsuleTruncated = "capsule_truncated",
        /// Bytes follow the ciphertext.
        CapsuleTrailingBytes = "capsule_trailing_bytes",
        /// The header is not JSON of the header's shape.
        CapsuleHeaderSyntax = "capsule_header_syntax",
        /// A header field has a value this build refuses.
        CapsuleHeaderField = "capsule_header_field",
        /// The scope names a kind this build does not know.
        CapsuleScopeKindUnknown = "capsule_scope_kind_unknown",
        /// Too few or too many wrap stanzas.
        CapsuleStanzaCount = "capsule_stanza_count",
        /// A stanza names an HPKE suite this build does not implement.
        CapsuleUnsupportedSuite = "capsule_unsupported_suite",
        /// A stanza's lengths do not fit its kind.
        CapsuleMalformedStanza = "capsule_malformed_stanza",
        /// A stanza's body ends inside one of its fields.
        CapsuleStanzaTruncated = "capsule_stanza_truncated",
        /// A stanza's key id is malformed.
        CapsuleBadKid = "capsule_bad_kid",
        /// A length exceeds what the format allows.
        CapsuleTooLarge = "capsule_too_large",
        /// No stanza is for a key this server holds.
        NoMatchingKey = "no_matching_key",
        /// No stanza is of a kind this build knows.
        NoKnownStanzaKind = "no_known_stanza_kind",
        /// Authentication failed: wrong key, altered bytes, or another binding.
        DidNotOpen = "did_not_open",
        /// The key provider could not run.
        KeyProvider = "key_provider",
        // The admin API.
        /// No admin bearer token.
        AdminTokenMissing = "admin_token_missing",
        /// The admin token is not valid.
        AdminTokenInvalid = "admin_token_invalid",
        /// An argument breaks a rule (a name, a digest, a range).
        InvalidArgument = "invalid_argument",
        /// The thing to create exists already.
        AlreadyExists = "already_exists",
        /// The cluster's API server could not be reached to register it.
        ClusterUnreachable = "cluster_unreachable",
    }
}

/// A code as a client reads it: one this build knows, or the text of one a
/// newer server added.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code<T> {
    /// A code this build knows.
    Known(T),
    /// A code from a newer server.
    Unknown(String),
}

impl<T: Copy> Code<T> {
    /// The known code, if it is one.
    pub fn known(&self) -> Option<T> {
        match self {
            Self::Known(code) => Some(*code),
            Self::Unknown(_) => None,
        }
    }
}

impl<T> From<T> for Code<T> {
    fn from(code: T) -> Self {
        Self::Known(code)
    }
}

impl<T: PartialEq> PartialEq<T> for Code<T> {
    fn eq(&self, other: &T) -> bool {
        matches!(self, Self::Known(code) if code == other)
    }
}

impl<T: std::fmt::Display> std::fmt::Display for Code<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Known(code) => code.fmt(f),
            Self::Unknown(text) => f.write_str(text),
        }
    }
}

impl<T: Serialize> Serialize for Code<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Known(code) => code.serialize(serializer),
            Self::Unknown(text) => serializer.serialize_str(text),
        }
    }
}

impl<'de, T: for<'a> Deserialize<'a>> Deserialize<'de> for Code<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(
            match T::deserialize(
                serde::de::value::StrDeserializer::<serde::de::value::Error>::new(&text),
            ) {
                Ok(code) => Self::Known(code),
                Err(_) => Self::Unknown(text),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_is_unique_and_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for reason in Reason::ALL {
            let code = reason.code();
            assert!(seen.insert(code), "{code} twice");
            assert!(
                !code.is_empty()
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{code} is not snake_case"
            );
            assert_eq!(Reason::from_code(code), Some(*reason));
            let json = serde_json::to_string(reason).unwrap();
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), *reason);
        }
        for gate in Gate::ALL {
            assert_eq!(Gate::from_code(gate.code()), Some(*gate));
        }
    }

    #[test]
    fn a_client_keeps_codes_it_does_not_know() {
        let known: Code<Reason> = serde_json::from_str("\"jti_replayed\"").unwrap();
        assert_eq!(known, Code::Known(Reason::JtiReplayed));
        assert!(known == Reason::JtiReplayed);
        let newer: Code<Reason> = serde_json::from_str("\"quantum_flux\"").unwrap();
        assert_eq!(newer, Code::Unknown("quantum_flux".into()));
        assert_eq!(serde_json::to_string(&newer).unwrap(), "\"quantum_flux\"");
        assert!(serde_json::from_str::<Reason>("\"quantum_flux\"").is_err());
    }
}
