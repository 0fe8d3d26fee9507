//! RFC 9457 problem details for every refusal: a fixed status per reason, the
//! stable `gate` and `reason` codes, and a public `detail` — never a token,
//! key or secret (the detail comes from typed refusals that hold none).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::gate::{Gate, Reason, Refusal};

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    gate: Gate,
    reason: Reason,
}

/// The HTTP status of a refusal: one arm per reason, with no fall-through,
/// so a new reason does not compile until it has a status.
pub fn status_of(refusal: &Refusal) -> StatusCode {
    status_of_reason(refusal.reason)
}

/// The HTTP status a reason is answered with.
pub fn status_of_reason(reason: Reason) -> StatusCode {
    use Reason as R;
    match reason {
        // The server cannot decide right now (never a release): retry later.
        R::StorageUnavailable
        | R::AuditUnavailable
        | R::ServerError
        | R::ViewUnknown
        | R::KeyProvider => StatusCode::SERVICE_UNAVAILABLE,
        R::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        R::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        R::NotFound => StatusCode::NOT_FOUND,
        R::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        R::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        R::AlreadyExists => StatusCode::CONFLICT,
        R::ClusterUnreachable => StatusCode::BAD_GATEWAY,
        // The request is malformed.
        R::MalformedBody
        | R::BatchSize
        | R::RecipientKeyInvalid
        | R::DpopHeaderCount
        | R::InvalidArgument
        | R::CapsuleMalformed
        | R::ContentCiphertextPresent
        | R::ArmorEmpty
        | R::ArmorMissingPrefix
        | R::ArmorUnsupportedVersion
        | R::ArmorTooLarge
        | R::ArmorBase64
        | R::CapsuleTruncated
        | R::CapsuleTrailingBytes
        | R::CapsuleHeaderSyntax
        | R::CapsuleHeaderField
        | R::CapsuleStanzaCount
        | R::CapsuleUnsupportedSuite
        | R::CapsuleMalformedStanza
        | R::CapsuleBadKid
        | R::CapsuleScopeKindUnknown
        | R::CapsuleStanzaTruncated
        | R::CapsuleTooLarge => StatusCode::BAD_REQUEST,
        // Gates 1-3 and the admin token: who is asking is not established.
        R::ApiKeyMissing
        | R::ApiKeyUnknown
        | R::ApiKeyRevoked
        | R::ApiKeyScopeMismatch
        | R::ClusterUnknown
        | R::TokenMissing
        | R::TokenMalformed
        | R::AlgNotAllowed
        | R::HeaderNotAllowed
        | R::KidMissing
        | R::KidUnknown
        | R::AlgKeyMismatch
        | R::SignatureInvalid
        | R::IssuerMismatch
        | R::AudienceMismatch
        | R::AudienceExtra
        | R::TokenLifetimeTooLong
        | R::TokenStale
        | R::TokenExpired
        | R::TokenNotYetValid
        | R::IatFuture
        | R::ClaimMissing
        | R::NotPodBound
        | R::SubjectMismatch
        | R::ProofTooLarge
        | R::ProofMalformed
        | R::TypNotDpop
        | R::JwkInvalid
        | R::HtmMismatch
        | R::HtuMismatch
        | R::IatStale
        | R::JtiInvalid
        | R::JtiReplayed
        | R::AthMissing
        | R::AthMismatch
        | R::AthUnexpected
        | R::UseDpopNonce
        | R::KeyNotPinned
        | R::PodKeyAlreadyPinned
        | R::SameKey
        | R::SessionMissing
        | R::SessionUnknown
        | R::SessionExpired
        | R::SessionRevoked
        | R::SessionMismatch
        | R::AdminTokenMissing
        | R::AdminTokenInvalid => StatusCode::UNAUTHORIZED,
        // Gate 4 and the capsule's scope: who is asking may not have it.
        R::NoPolicy
        | R::PodNotFound
        | R::PodUidMismatch
        | R::PodNotRunning
        | R::PodTerminating
        | R::PodGone
        | R::ContainerWithoutStatus
        | R::ContainerRequired
        | R::ContainerUnknown
        | R::ContainerNotDeclared
        | R::ContainerNotRunning
        | R::ContainerRestarted
        | R::ImageWithoutDigest
        | R::ImageNotApproved
        | R::DebugContainerNotApproved
        | R::VolumeNotAttested
        | R::NodeMismatch
        | R::ClusterMismatch
        | R::NamespaceMismatch
        | R::ServiceAccountMismatch
        | R::CapsuleExpired
        | R::RevealOnceUnsupported
        | R::ScopeKindUnsupported
        | R::ScopeKindMismatch
        | R::TrustDomainMismatch
        | R::SpiffeIdMismatch
        | R::ClaimMismatch
        | R::NoMatchingKey
        | R::NoKnownStanzaKind
        | R::DidNotOpen => StatusCode::FORBIDDEN,
    }
}

fn title(gate: Gate) -> &'static str {
    match gate {
        Gate::ApiKey => "refused by gate 1: API key",
        Gate::Token => "refused by gate 2: ServiceAccount token",
        Gate::Dpop => "refused by gate 3: DPoP proof",
        Gate::LivePod => "refused by gate 4: live pod and image digests",
        Gate::Scope => "refused: capsule scope",
        Gate::Request => "bad request",
        Gate::Admin => "admin request refused",
    }
}

/// A refusal as an HTTP response.
pub struct ProblemResponse(pub Refusal);

/// The refusal's codes, left in the response's extensions for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct RefusalCodes {
    /// Gate code.
    pub gate: Gate,
    /// Reason code.
    pub reason: Reason,
}

impl IntoResponse for ProblemResponse {
    fn into_response(self) -> Response {
        let refusal = self.0;
        let status = status_of(&refusal);
        let body = Problem {
            kind: format!(
                "https://podseal.dev/problems/{}/{}",
                refusal.gate, refusal.reason
            ),
            title: title(refusal.gate),
            status: status.as_u16(),
            detail: &refusal.detail,
            gate: refusal.gate,
            reason: refusal.reason,
        };
        let mut response = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if refusal.gate == Gate::Dpop && status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(if refusal.reason == Reason::UseDpopNonce {
                    "DPoP error=\"use_dpop_nonce\", algs=\"EdDSA\""
                } else {
                    "DPoP error=\"invalid_dpop_proof\", algs=\"EdDSA\""
                }),
            );
        }
        if matches!(
            refusal.reason,
            Reason::BodyTooLarge | Reason::HeadersTooLarge
        ) {
            // The rest of the body is never read, so this connection cannot
            // carry another request: say so, or a client would reuse it.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if refusal.gate == Gate::Admin && status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(RefusalCodes {
            gate: refusal.gate,
            reason: refusal.reason,
        });
        response
    }
}
