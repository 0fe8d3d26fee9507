//! RFC 9457 problem details for every refusal: a fixed status per gate, the
//! stable `gate` and `reason` codes, and a public `detail` — never a token,
//! key or secret (the detail comes from typed refusals that hold none).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::gate::{Gate, Refusal};

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    gate: &'static str,
    reason: &'static str,
}

/// The HTTP status of a refusal.
pub fn status_of(refusal: &Refusal) -> StatusCode {
    match (refusal.gate, refusal.reason) {
        // The server cannot decide right now (never a release): retry later.
        (_, "storage_unavailable" | "audit_unavailable" | "server_error")
        | (Gate::LivePod, "view_unknown") => StatusCode::SERVICE_UNAVAILABLE,
        (Gate::Request, "body_too_large") => StatusCode::PAYLOAD_TOO_LARGE,
        (Gate::Request, "headers_too_large") => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        (Gate::Request, "not_found") => StatusCode::NOT_FOUND,
        (Gate::Request, "method_not_allowed") => StatusCode::METHOD_NOT_ALLOWED,
        (Gate::Request, "unsupported_media_type") => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        (Gate::Request, _) | (Gate::Dpop, "dpop_header_count") => StatusCode::BAD_REQUEST,
        (Gate::ApiKey | Gate::Token | Gate::Dpop, _) => StatusCode::UNAUTHORIZED,
        (Gate::LivePod | Gate::Scope, _) => StatusCode::FORBIDDEN,
        (Gate::Admin, "admin_token_missing" | "admin_token_invalid") => StatusCode::UNAUTHORIZED,
        (Gate::Admin, "not_found") => StatusCode::NOT_FOUND,
        (Gate::Admin, "already_exists") => StatusCode::CONFLICT,
        (Gate::Admin, "cluster_unreachable") => StatusCode::BAD_GATEWAY,
        (Gate::Admin, _) => StatusCode::BAD_REQUEST,
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
    pub gate: &'static str,
    /// Reason code.
    pub reason: &'static str,
}

impl IntoResponse for ProblemResponse {
    fn into_response(self) -> Response {
        let refusal = self.0;
        let status = status_of(&refusal);
        let body = Problem {
            kind: format!(
                "https://podseal.dev/problems/{}/{}",
                refusal.gate.code(),
                refusal.reason
            ),
            title: title(refusal.gate),
            status: status.as_u16(),
            detail: &refusal.detail,
            gate: refusal.gate.code(),
            reason: refusal.reason,
        };
        let mut response = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if refusal.gate == Gate::Dpop && status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(if refusal.reason == "use_dpop_nonce" {
                    "DPoP error=\"use_dpop_nonce\", algs=\"EdDSA\""
                } else {
                    "DPoP error=\"invalid_dpop_proof\", algs=\"EdDSA\""
                }),
            );
        }
        if matches!(refusal.reason, "body_too_large" | "headers_too_large") {
            // The rest of the body is never read, so this connection cannot
            // carry another request: say so, or a client would reuse it.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if refusal.gate == Gate::Admin && status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(RefusalCodes {
            gate: refusal.gate.code(),
            reason: refusal.reason,
        });
        response
    }
}
