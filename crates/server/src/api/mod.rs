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
//! | `GET /metrics` | Prometheus text: requests, refusals by gate and reason, latency, view staleness |
//! | `/v1/admin/…` | clusters, API keys, policies, audit export ([`admin`]), with `Authorization: Bearer <admin token>` |
//!
//! Credentials travel in headers: `X-Podseal-Api-Key`, `X-Podseal-Token`
//! (the projected ServiceAccount token), `DPoP` (exactly one), and on unwrap
//! `Authorization: DPoP <session id>`. Bodies are JSON, at most
//! [`MAX_BODY_BYTES`]; anything else is a problem+json refusal.

pub mod admin_routes;
pub mod problem;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podseal_core::capsule::DekEnvelope;
use podseal_core::wire::{self, admin as admin_wire};
use serde::Serialize;

use crate::admin::AdminService;
use crate::gate::{Gate, Reason, Refusal};
use crate::metrics::{Metrics, ViewSample};
use crate::release::{Credentials, ReleaseService, UnwrapRequest};
use crate::request_audit::RequestRefusals;
use crate::storage::Storage;
use podseal_core::scope::{NameRule, check_name};
use problem::{ProblemResponse, RefusalCodes};

pub use podseal_core::wire::{
    API_KEY_HEADER, DPOP_NONCE_HEADER, MAX_BODY_BYTES, ReleaseAnswer, RotateAnswer, RotateBody,
    SessionAnswer, SessionBody, TOKEN_HEADER, UnwrapAnswer, UnwrapBody,
};

/// One route and every status it can answer with (the OpenAPI document in
/// `docs/openapi.yaml` is checked against this table, and the HTTPS suite
/// checks every status it sees is listed here).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path pattern, OpenAPI style (`{name}`).
    pub path: &'static str,
    /// Statuses it can answer.
    pub statuses: &'static [u16],
}

/// Every route the server has.
pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: wire::SESSIONS_PATH,
        statuses: &[201, 400, 401, 403, 413, 415, 503],
    },
    Route {
        method: "POST",
        path: wire::UNWRAP_PATH,
        statuses: &[200, 400, 401, 403, 413, 415, 503],
    },
    Route {
        method: "POST",
        path: wire::ROTATE_KEY_PATH,
        statuses: &[200, 400, 401, 403, 413, 415, 503],
    },
    Route {
        method: "GET",
        path: "/healthz",
        statuses: &[200],
    },
    Route {
        method: "GET",
        path: "/readyz",
        statuses: &[200, 503],
    },
    Route {
        method: "GET",
        path: "/metrics",
        statuses: &[200],
    },
    Route {
        method: "POST",
        path: admin_wire::CLUSTERS_PATH,
        statuses: &[201, 400, 401, 409, 413, 415, 502, 503],
    },
    Route {
        method: "GET",
        path: admin_wire::CLUSTERS_PATH,
        statuses: &[200, 401, 503],
    },
    Route {
        method: "GET",
        path: admin_wire::CLUSTER_ROUTE,
        statuses: &[200, 401, 404, 503],
    },
    Route {
        method: "DELETE",
        path: admin_wire::CLUSTER_ROUTE,
        statuses: &[200, 400, 401, 404, 503],
    },
    Route {
        method: "POST",
        path: admin_wire::API_KEYS_PATH,
        statuses: &[201, 400, 401, 404, 413, 415, 503],
    },
    Route {
        method: "GET",
        path: admin_wire::API_KEYS_PATH,
        statuses: &[200, 401, 503],
    },
    Route {
        method: "DELETE",
        path: admin_wire::API_KEY_ROUTE,
        statuses: &[200, 401, 404, 503],
    },
    Route {
        method: "PUT",
        path: admin_wire::POLICIES_PATH,
        statuses: &[200, 400, 401, 404, 413, 415, 503],
    },
    Route {
        method: "GET",
        path: admin_wire::POLICIES_PATH,
        statuses: &[200, 401, 503],
    },
    Route {
        method: "POST",
        path: admin_wire::POLICY_DIGESTS_PATH,
        statuses: &[200, 400, 401, 404, 413, 415, 503],
    },
    Route {
        method: "GET",
        path: admin_wire::AUDIT_EXPORT_PATH,
        statuses: &[200, 401, 503],
    },
];

/// Statuses any path can answer: unknown route, wrong method, request
/// headers over [`MAX_HEADER_BYTES`] or [`MAX_HEADER_FIELDS`].
pub const FALLBACK_STATUSES: &[u16] = &[404, 405, 431];

/// The request header limits, the listener's own (its backstops sit above
/// them, so the API answers past them with 431 as problem+json).
pub use podseal_https::{MAX_HEADER_BYTES, MAX_HEADER_FIELDS};

/// What the handlers share.
pub struct App<S: Storage> {
    /// The release path.
    pub release: Arc<ReleaseService<S>>,
    /// The admin path.
    pub admin: Arc<AdminService<S>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The audit of refusals answered before the release service runs.
    pub refusals: Arc<RequestRefusals>,
}

impl<S: Storage> Clone for App<S> {
    fn clone(&self) -> Self {
        Self {
            release: self.release.clone(),
            admin: self.admin.clone(),
            metrics: self.metrics.clone(),
            refusals: self.refusals.clone(),
        }
    }
}

/// The API over the release and admin services.
pub fn router<S: Storage>(app: App<S>) -> Router {
    let metrics = app.metrics.clone();
    let refusals = app.refusals.clone();
    Router::new()
        .route(wire::SESSIONS_PATH, post(create_session::<S>))
        .route(wire::UNWRAP_PATH, post(unwrap::<S>))
        .route(wire::ROTATE_KEY_PATH, post(rotate_key::<S>))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready::<S>))
        .route("/metrics", get(metrics_text::<S>))
        .route(
            admin_wire::CLUSTERS_PATH,
            post(admin_routes::add_cluster::<S>).get(admin_routes::clusters::<S>),
        )
        .route(
            admin_wire::CLUSTER_ROUTE,
            get(admin_routes::cluster::<S>).delete(admin_routes::remove_cluster::<S>),
        )
        .route(
            admin_wire::API_KEYS_PATH,
            post(admin_routes::create_api_key::<S>).get(admin_routes::api_keys::<S>),
        )
        .route(
            admin_wire::API_KEY_ROUTE,
            delete(admin_routes::revoke_api_key::<S>),
        )
        .route(
            admin_wire::POLICIES_PATH,
            put(admin_routes::set_policy::<S>).get(admin_routes::policies::<S>),
        )
        .route(
            admin_wire::POLICY_DIGESTS_PATH,
            post(admin_routes::change_policy_digests::<S>),
        )
        .route(
            admin_wire::AUDIT_EXPORT_PATH,
            get(admin_routes::audit_export::<S>),
        )
        .fallback(|| async {
            ProblemResponse(Refusal::new(
                Gate::Request,
                Reason::NotFound,
                "no such route",
            ))
        })
        .method_not_allowed_fallback(|| async {
            ProblemResponse(Refusal::new(
                Gate::Request,
                Reason::MethodNotAllowed,
                "method not allowed on this route",
            ))
        })
        .with_state(app)
        .layer(middleware::from_fn(limit_headers))
        .layer(middleware::from_fn_with_state(refusals, audit_refusals))
        .layer(middleware::from_fn_with_state(metrics, track))
}

/// Refuses request headers over [`MAX_HEADER_BYTES`] or
/// [`MAX_HEADER_FIELDS`] with 431 as problem+json, on every path. The HTTP
/// layers' own limits (`tls.rs`) sit well above these, so a client's
/// oversized headers reach this check instead of their bare 431.
async fn limit_headers(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADER_FIELDS || bytes > MAX_HEADER_BYTES {
        return ProblemResponse(bad(
            Reason::HeadersTooLarge,
            format!(
                "request headers are limited to {MAX_HEADER_FIELDS} fields and {MAX_HEADER_BYTES} bytes"
            ),
        ))
        .into_response();
    }
    next.run(request).await
}

/// Marks a refusal the release service has audited itself.
#[derive(Debug, Clone, Copy)]
struct AuditedByService;

/// Audits (aggregated, see [`crate::request_audit`]) every refusal on a
/// release route that the release service did not audit: those the HTTP
/// layer answered before it ran. The source is the connection's peer
/// address, which `tls.rs` puts in the request as `ConnectInfo`.
async fn audit_refusals(
    State(refusals): State<Arc<RequestRefusals>>,
    request: Request,
    next: Next,
) -> Response {
    let event = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|route| crate::request_audit::event_of(route.as_str()));
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let response = next.run(request).await;
    if let (Some(event), Some(codes), None) = (
        event,
        response.extensions().get::<RefusalCodes>(),
        response.extensions().get::<AuditedByService>(),
    ) {
        refusals.refused(event, codes.gate, codes.reason, source);
    }
    response
}

/// Counts every answer by route pattern, status and refusal codes, and times it.
async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let refusal = response
        .extensions()
        .get::<RefusalCodes>()
        .map(|codes| (codes.gate, codes.reason));
    metrics.request(
        &route,
        response.status().as_u16(),
        started.elapsed(),
        refusal,
    );
    response
}

async fn metrics_text<S: Storage>(State(app): State<App<S>>) -> Response {
    let mut views: Vec<ViewSample> = app
        .release
        .clusters()
        .names()
        .into_iter()
        .filter_map(|name| {
            let cluster = app.release.clusters().get(&name)?;
            Some(ViewSample {
                last_heard: cluster.view.last_heard_age(),
                fresh: cluster.view.is_fresh(),
                waiting: cluster.view.waiting(),
                unpinned_kids: app.release.clusters().unpinned_kids(&name).len(),
                cluster: name,
            })
        })
        .collect();
    // A registered cluster that could not be connected refuses every release:
    // it must show as not fresh, not vanish from the metrics.
    views.extend(
        app.release
            .clusters()
            .unconnected()
            .into_iter()
            .map(|(cluster, _)| ViewSample {
                cluster,
                last_heard: None,
                fresh: false,
                waiting: 0,
                unpinned_kids: 0,
            }),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(
            &views,
            app.release.storage().stats().snapshot(),
            &app.release.enrolments().snapshot(),
        ),
    )
        .into_response()
}

pub(crate) fn bad(reason: Reason, detail: impl Into<String>) -> Refusal {
    Refusal::new(Gate::Request, reason, detail)
}

pub(crate) fn header_text<'a>(
    headers: &'a HeaderMap,
    name: &str,
    gate: Gate,
    reason: Reason,
) -> Result<&'a str, Refusal> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Refusal::new(gate, reason, format!("the {name} header is required")))
}

/// Reads the whole body (within the size limit) before anything is
/// decided, so a refused request still leaves the connection reusable.
pub(crate) async fn read_body(request: Request) -> Result<(HeaderMap, axum::body::Bytes), Refusal> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            bad(
                Reason::BodyTooLarge,
                format!("the body exceeds {MAX_BODY_BYTES} bytes"),
            )
        })?;
    Ok((parts.headers, bytes))
}

/// Parses a body already read as JSON of the expected shape.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, Refusal> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(bad(
            Reason::UnsupportedMediaType,
            "the body must be application/json",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        bad(
            Reason::MalformedBody,
            format!("the body is not the expected JSON: {e}"),
        )
    })
}

/// Reads and parses a JSON body.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request,
) -> Result<(HeaderMap, T), Refusal> {
    let (headers, bytes) = read_body(request).await?;
    let value = parse_json(&headers, &bytes)?;
    Ok((headers, value))
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
            api_key: header_text(headers, API_KEY_HEADER, Gate::ApiKey, Reason::ApiKeyMissing)?
                .to_owned(),
            token: header_text(headers, TOKEN_HEADER, Gate::Token, Reason::TokenMissing)?
                .to_owned(),
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
    let authorization = header_text(headers, "authorization", Gate::Dpop, Reason::SessionMissing)?;
    authorization
        .strip_prefix("DPoP ")
        .map(|s| s.trim().to_owned())
        .ok_or_else(|| {
            Refusal::new(
                Gate::Dpop,
                Reason::SessionMissing,
                "Authorization must be `DPoP <session id>`",
            )
        })
}

/// A handler's outcome as a response: JSON with `status`, or problem+json.
pub(crate) fn answer<T: Serialize>(status: StatusCode, result: Result<T, Refusal>) -> Response {
    match result {
        Ok(body) => (status, axum::Json(body)).into_response(),
        Err(refusal) => ProblemResponse(refusal).into_response(),
    }
}

/// Why a release request was refused: by the HTTP layer, before the
/// release service ran (audited by [`audit_refusals`]), or by the service,
/// which audited it. Any `?` on a plain [`Refusal`] is the former, so a
/// check added before the service is audited without a second thought.
enum Refused {
    Http(Refusal),
    Service(Refusal),
}

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Self {
        Self::Http(refusal)
    }
}

/// A release handler's outcome as a response; a refusal the service
/// audited is marked so, so that it is not audited twice.
fn release_answer<T: Serialize>(status: StatusCode, result: Result<T, Refused>) -> Response {
    match result {
        Ok(body) => (status, axum::Json(body)).into_response(),
        Err(Refused::Http(refusal)) => ProblemResponse(refusal).into_response(),
        Err(Refused::Service(refusal)) => {
            let mut response = ProblemResponse(refusal).into_response();
            response.extensions_mut().insert(AuditedByService);
            response
        }
    }
}

async fn create_session<S: Storage>(State(app): State<App<S>>, request: Request) -> Response {
    let service = &app.release;
    let result = async {
        let (headers, body): (HeaderMap, SessionBody) = json_body(request).await?;
        let caller = Caller::from_headers(&headers)?;
        let recipient_key = URL_SAFE_NO_PAD.decode(&body.recipient_key).map_err(|_| {
            bad(
                Reason::RecipientKeyInvalid,
                "recipient_key is not base64url",
            )
        })?;
        let container = body.container.as_deref();
        if let Some(Err(why)) = container.map(|name| check_name(name, NameRule::Label)) {
            return Err(bad(
                Reason::MalformedBody,
                format!("container is a container name (an RFC 1123 label): it {why}"),
            )
            .into());
        }
        let grant = caller
            .with(async |credentials| {
                service
                    .establish_session(credentials, &recipient_key, container)
                    .await
            })
            .await
            .map_err(Refused::Service)?;
        Ok::<_, Refused>(SessionAnswer {
            session_id: grant.session_id,
            expires_at: grant.expires_at,
        })
    };
    with_nonce(service, release_answer(StatusCode::CREATED, result.await))
}

async fn unwrap<S: Storage>(State(app): State<App<S>>, request: Request) -> Response {
    let service = &app.release;
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
                    .map_err(|_| bad(Reason::CapsuleMalformed, "a capsule is not base64url"))?;
                DekEnvelope::from_bytes(&bytes).map_err(|e| bad(e.reason(), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let request = UnwrapRequest {
            session_id,
            capsules,
        };
        let releases = caller
            .with(async |credentials| service.unwrap(credentials, request).await)
            .await
            .map_err(Refused::Service)?;
        let releases = releases
            .into_iter()
            .map(|r| ReleaseAnswer {
                capsule_id: r.capsule_id,
                enc: URL_SAFE_NO_PAD.encode(&r.released.enc),
                wrapped_dek: URL_SAFE_NO_PAD.encode(&r.released.wrapped_dek),
                jti: r.jti,
            })
            .collect();
        Ok::<_, Refused>(UnwrapAnswer { releases })
    };
    with_nonce(service, release_answer(StatusCode::OK, result.await))
}

async fn rotate_key<S: Storage>(State(app): State<App<S>>, request: Request) -> Response {
    let service = &app.release;
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
            .await
            .map_err(Refused::Service)?;
        Ok::<_, Refused>(RotateAnswer { jkt })
    };
    with_nonce(service, release_answer(StatusCode::OK, result.await))
}

/// Every release answer carries a fresh server nonce (RFC 9449 §8.2), so a
/// client whose policy requires nonces always has one for its next proof.
fn with_nonce<S: Storage>(service: &ReleaseService<S>, mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&service.issue_nonce()) {
        response.headers_mut().insert(DPOP_NONCE_HEADER, value);
    }
    response
}

async fn ready<S: Storage>(State(app): State<App<S>>) -> Response {
    let problems = app.release.readiness().await;
    // What needs an operator without stopping decisions (a cluster signing
    // with keys not pinned here) is said, and does not make this 503: the
    // server still decides, correctly, for every cluster.
    let warnings = app.release.clusters().warnings();
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({
            "ready": problems.is_empty(),
            "not_ready": problems,
            "warnings": warnings,
        })),
    )
        .into_response()
}
