//! The release server's HTTP API, built by [`router`] so it can be tested
//! in-process and served over TLS alike.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/sessions` | gates 1–4, pin the DPoP key, open a session |
//! | `POST /v1/unwrap` | gates again, re-wrap each capsule's DEK to the session key |
//! | `POST /v1/sessions/rotate-key` | move the pin to a new DPoP key, with the previous key's proof |
//! | `GET /healthz` | the process answers |
//! | `GET /readyz` | storage and every cluster's pod view can decide |
//!
//! Credentials travel in headers: `X-Podseal-Api-Key`, `X-Podseal-Token`
//! (the projected ServiceAccount token), `DPoP` (exactly one), and on unwrap
//! `Authorization: DPoP <session id>`. Bodies are JSON, at most
//! [`MAX_BODY_BYTES`]; anything else is a problem+json refusal.

pub mod problem;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podseal_core::capsule::DekEnvelope;
use serde::{Deserialize, Serialize};

use crate::gate::{Gate, Refusal};
use crate::release::{Credentials, ReleaseService, UnwrapRequest};
use crate::storage::Storage;
use problem::ProblemResponse;

/// The largest request body accepted (64 capsules with room to spare).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Header carrying the bound API key.
pub const API_KEY_HEADER: &str = "x-podseal-api-key";
/// Header carrying the projected ServiceAccount token.
pub const TOKEN_HEADER: &str = "x-podseal-token";

/// The API over a release service.
pub fn router<S: Storage>(service: Arc<ReleaseService<S>>) -> Router {
    Router::new()
        .route("/v1/sessions", post(create_session::<S>))
        .route("/v1/unwrap", post(unwrap::<S>))
        .route("/v1/sessions/rotate-key", post(rotate_key::<S>))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready::<S>))
        .fallback(|| async {
            ProblemResponse(Refusal::new(Gate::Request, "not_found", "no such route"))
        })
        .method_not_allowed_fallback(|| async {
            ProblemResponse(Refusal::new(
                Gate::Request,
                "method_not_allowed",
                "method not allowed on this route",
            ))
        })
        .with_state(service)
}

fn bad(reason: &'static str, detail: impl Into<String>) -> Refusal {
    Refusal::new(Gate::Request, reason, detail)
}

fn header_text<'a>(
    headers: &'a HeaderMap,
    name: &str,
    gate: Gate,
    reason: &'static str,
) -> Result<&'a str, Refusal> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Refusal::new(gate, reason, format!("the {name} header is required")))
}

/// Reads a JSON body within the size limit.
async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request,
) -> Result<(HeaderMap, T), Refusal> {
    let (parts, body) = request.into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(bad(
            "unsupported_media_type",
            "the body must be application/json",
        ));
    }
    let bytes = axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            bad(
                "body_too_large",
                format!("the body exceeds {MAX_BODY_BYTES} bytes"),
            )
        })?;
    let value = serde_json::from_slice(&bytes).map_err(|e| {
        bad(
            "malformed_body",
            format!("the body is not the expected JSON: {e}"),
        )
    })?;
    Ok((parts.headers, value))
}

/// `POST /v1/sessions` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    /// The pod's ephemeral X25519 public key, base64url.
    pub recipient_key: String,
}

/// `POST /v1/sessions` answer.
#[derive(Debug, Deserialize, Serialize)]
pub struct SessionAnswer {
    /// The session id (the DPoP access token of later requests).
    pub session_id: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// `POST /v1/unwrap` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnwrapBody {
    /// Each capsule's header and wraps (`DekEnvelope` bytes), base64url. Never content.
    pub capsules: Vec<String>,
}

/// One release in an unwrap answer.
#[derive(Debug, Deserialize, Serialize)]
pub struct ReleaseAnswer {
    /// Capsule id.
    pub capsule_id: String,
    /// HPKE enc, base64url.
    pub enc: String,
    /// The DEK sealed to the session key, base64url.
    pub wrapped_dek: String,
    /// The DPoP `jti` the release is bound to.
    pub jti: String,
}

/// `POST /v1/unwrap` answer.
#[derive(Debug, Deserialize, Serialize)]
pub struct UnwrapAnswer {
    /// One release per capsule, in request order.
    pub releases: Vec<ReleaseAnswer>,
}

/// `POST /v1/sessions/rotate-key` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// A DPoP proof signed by the new key (same route, bound to the session).
    pub new_proof: String,
}

/// `POST /v1/sessions/rotate-key` answer.
#[derive(Debug, Deserialize, Serialize)]
pub struct RotateAnswer {
    /// RFC 7638 thumbprint of the now pinned key.
    pub jkt: String,
}

/// The credentials every release request carries in its headers.
struct Caller {
    api_key: String,
    token: String,
    dpop: Vec<String>,
}

impl Caller {
    fn from_headers(headers: &HeaderMap) -> Result<Self, Refusal> {
        Ok(Self {
            api_key: header_text(headers, API_KEY_HEADER, Gate::ApiKey, "api_key_missing")?
                .to_owned(),
            token: header_text(headers, TOKEN_HEADER, Gate::Token, "token_missing")?.to_owned(),
            dpop: headers
                .get_all("dpop")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// Runs `call` with these credentials borrowed as the release service wants them.
    async fn with<T, F: AsyncFnOnce(Credentials<'_>) -> Result<T, Refusal>>(
        &self,
        call: F,
    ) -> Result<T, Refusal> {
        let dpop: Vec<&str> = self.dpop.iter().map(String::as_str).collect();
        call(Credentials {
            api_key: &self.api_key,
            token: &self.token,
            dpop: &dpop,
        })
        .await
    }
}

/// The session named by `Authorization: DPoP <session id>`.
fn session_from(headers: &HeaderMap) -> Result<String, Refusal> {
    let authorization = header_text(headers, "authorization", Gate::Dpop, "session_missing")?;
    authorization
        .strip_prefix("DPoP ")
        .map(|s| s.trim().to_owned())
        .ok_or_else(|| {
            Refusal::new(
                Gate::Dpop,
                "session_missing",
                "Authorization must be `DPoP <session id>`",
            )
        })
}

/// A handler's outcome as a response: JSON with `status`, or problem+json.
fn answer<T: Serialize>(status: StatusCode, result: Result<T, Refusal>) -> Response {
    match result {
        Ok(body) => (status, axum::Json(body)).into_response(),
        Err(refusal) => ProblemResponse(refusal).into_response(),
    }
}

async fn create_session<S: Storage>(
    State(service): State<Arc<ReleaseService<S>>>,
    request: Request,
) -> Response {
    let result = async {
        let (headers, body): (HeaderMap, SessionBody) = json_body(request).await?;
        let caller = Caller::from_headers(&headers)?;
        let recipient_key = URL_SAFE_NO_PAD
            .decode(&body.recipient_key)
            .map_err(|_| bad("recipient_key_invalid", "recipient_key is not base64url"))?;
        let grant = caller
            .with(async |credentials| service.establish_session(credentials, &recipient_key).await)
            .await?;
        Ok(SessionAnswer {
            session_id: grant.session_id,
            expires_at: grant.expires_at,
        })
    };
    answer(StatusCode::CREATED, result.await)
}

async fn unwrap<S: Storage>(
    State(service): State<Arc<ReleaseService<S>>>,
    request: Request,
) -> Response {
    let result = async {
        let (headers, body): (HeaderMap, UnwrapBody) = json_body(request).await?;
        let caller = Caller::from_headers(&headers)?;
        let session_id = session_from(&headers)?;
        let capsules = body
            .capsules
            .iter()
            .map(|encoded| {
                let bytes = URL_SAFE_NO_PAD
                    .decode(encoded)
                    .map_err(|_| bad("capsule_malformed", "a capsule is not base64url"))?;
                DekEnvelope::from_bytes(&bytes).map_err(|e| bad(e.reason(), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let request = UnwrapRequest {
            session_id,
            capsules,
        };
        let releases = caller
            .with(async |credentials| service.unwrap(credentials, request).await)
            .await?;
        let releases = releases
            .into_iter()
            .map(|r| ReleaseAnswer {
                capsule_id: r.capsule_id,
                enc: URL_SAFE_NO_PAD.encode(&r.released.enc),
                wrapped_dek: URL_SAFE_NO_PAD.encode(&r.released.wrapped_dek),
                jti: r.jti,
            })
            .collect();
        Ok(UnwrapAnswer { releases })
    };
    answer(StatusCode::OK, result.await)
}

async fn rotate_key<S: Storage>(
    State(service): State<Arc<ReleaseService<S>>>,
    request: Request,
) -> Response {
    let result = async {
        let (headers, body): (HeaderMap, RotateBody) = json_body(request).await?;
        let caller = Caller::from_headers(&headers)?;
        let session_id = session_from(&headers)?;
        let jkt = caller
            .with(async |credentials| {
                service
                    .rotate_key(credentials, &session_id, &body.new_proof)
                    .await
            })
            .await?;
        Ok(RotateAnswer { jkt })
    };
    answer(StatusCode::OK, result.await)
}

async fn ready<S: Storage>(State(service): State<Arc<ReleaseService<S>>>) -> Response {
    let problems = service.readiness().await;
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({ "ready": problems.is_empty(), "not_ready": problems })),
    )
        .into_response()
}
