//! Routes, authentication and authorization, `/version`, the token
//! issuer's documents, and the control verbs; every kind of the table goes
//! to [`crate::rest`], discovery to [`crate::discovery`].

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sha2::Digest as _;

use crate::api_error::ApiError;
use crate::{ContainerImage, PodTemplate, READER_USER, Shared};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/openid/v1/jwks", get(jwks))
        .route("/version", get(version))
        .route(
            "/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            post(crate::token_request::create),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            post(crate::reviews::rules),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            post(crate::reviews::access),
        )
        .route(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            post(crate::reviews::whoami),
        )
        .merge(control_routes())
        .fallback(resources)
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(shared.clone(), authorize))
        .with_state(shared)
}

/// Discovery, OpenAPI, and every kind of the table, by path.
async fn resources(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let server_address = shared
        .external_url
        .trim_start_matches("https://")
        .to_owned();
    if parts.method == Method::GET
        && let Some(response) = crate::discovery::serve(path, &parts.headers, &server_address)
    {
        return response;
    }
    let Some(target) = crate::rest::parse(path) else {
        return ApiError::no_such_path().into_response();
    };
    // kube-apiserver's limit on a request body.
    let bytes = match axum::body::to_bytes(body, 3 * 1024 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::bad_request("the request body is larger than 3 MiB".into())
                .into_response();
        }
    };
    crate::rest::serve(
        shared,
        parts.method,
        target,
        parts.uri.query().map(str::to_owned),
        parts.headers,
        bytes,
    )
    .await
}

/// Who is calling.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Identity {
    Reader,
    Admin,
}

pub(crate) fn identity(shared: &Shared, headers: &HeaderMap) -> Option<Identity> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    // Compare digests so the comparison time says nothing about the tokens.
    let presented = sha2::Sha256::digest(token.as_bytes());
    if presented == sha2::Sha256::digest(shared.identities.admin.as_bytes()) {
        Some(Identity::Admin)
    } else if presented == sha2::Sha256::digest(shared.identities.reader.as_bytes()) {
        Some(Identity::Reader)
    } else {
        None
    }
}

/// What a request asks to do, in RBAC terms.
struct Access {
    verb: &'static str,
    resource: String,
    group: String,
    namespace: Option<String>,
}

/// What a request asks to do, read from its path alone as kube-apiserver's
/// request-info resolver reads it (whether or not the resource is served):
/// `None` for a non-resource request (discovery, `/version`, …).
fn classify(method: &Method, path: &str, query: Option<&str>) -> Option<Access> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, mut rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => return None,
    };
    let mut namespace = None;
    if let ["namespaces", ns, tail @ ..] = rest {
        namespace = Some((*ns).to_owned());
        // A namespace's own subresources stay the namespace's.
        if !tail.is_empty() && !matches!(tail.first(), Some(&"status" | &"finalize")) {
            rest = tail;
        }
    }
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub, ..] => (*resource, Some(*name), Some(*sub)),
        [] => return None,
    };
    if resource == "namespaces" && rest.len() > 1 {
        namespace = None;
    }
    let watching = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        Method::GET if name.is_some() => "get",
        Method::GET if watching => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    };
    Some(Access {
        verb,
        resource: subresource
            .map_or_else(|| resource.to_owned(), |sub| format!("{resource}/{sub}")),
        group: group.to_owned(),
        namespace,
    })
}

/// Non-resource paths every authenticated user may read
/// (`system:discovery`, `system:public-info-viewer`).
fn is_discovery(method: &Method, path: &str) -> bool {
    *method == Method::GET
        && (path == "/version"
            || path.starts_with("/openapi/")
            || path.starts_with("/api") && classify(method, path, None).is_none())
}

async fn authorize(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if *shared.paused.borrow() {
        return ApiError::unavailable().into_response();
    }
    let path = request.uri().path();
    if path == "/.well-known/openid-configuration" || path == "/openid/v1/jwks" {
        return next.run(request).await;
    }
    match identity(&shared, request.headers()) {
        None => ApiError::unauthorized().into_response(),
        Some(Identity::Admin) => next.run(request).await,
        // Every authenticated user may ask what it may do and who it is
        // (`system:basic-user`), and read discovery and the version.
        Some(Identity::Reader)
            if is_self_review(request.method(), path) || is_discovery(request.method(), path) =>
        {
            next.run(request).await
        }
        Some(Identity::Reader) => match classify(request.method(), path, request.uri().query()) {
            Some(access) if reader_may(&access.group, &access.resource, access.verb) => {
                next.run(request).await
            }
            Some(access) => ApiError::forbidden(
                READER_USER,
                access.verb,
                &access.resource,
                &access.group,
                access.namespace.as_deref(),
            )
            .into_response(),
            // A non-resource path that is not discovery: RBAC grants the
            // reader none.
            None => ApiError::forbidden_path(READER_USER, request.method().as_str(), path)
                .into_response(),
        },
    }
}

/// The read-only identity's rights: what the release server's ClusterRole
/// grants, get, list and watch pods.
pub(crate) fn reader_may(group: &str, resource: &str, verb: &str) -> bool {
    group.is_empty() && resource == "pods" && matches!(verb, "get" | "list" | "watch")
}

fn is_self_review(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && matches!(
            path,
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
                | "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
                | "/apis/authentication.k8s.io/v1/selfsubjectreviews"
        )
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.issuer().discovery(&shared.external_url)).into_response()
}

/// The Kubernetes minor release whose API the stand-in serves (1.N), as
/// `/version` names it.
pub const KUBERNETES_MINOR: u32 = 36;

/// `GET /version`, as kube-apiserver answers it: the release, with the
/// emulated and minimum compatible versions 1.31+ add.
async fn version() -> Response {
    use k8s_openapi::apimachinery::pkg::version::Info;
    Json(Info {
        major: "1".into(),
        minor: KUBERNETES_MINOR.to_string(),
        emulation_major: Some("1".into()),
        emulation_minor: Some(KUBERNETES_MINOR.to_string()),
        min_compatibility_major: Some("1".into()),
        min_compatibility_minor: Some((KUBERNETES_MINOR - 1).to_string()),
        git_version: format!("v1.{KUBERNETES_MINOR}.0-podseal-dev"),
        git_commit: String::new(),
        git_tree_state: "clean".into(),
        build_date: String::new(),
        go_version: String::new(),
        compiler: "rustc".into(),
        platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
    .into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    let body = serde_json::to_vec(&shared.issuer().jwks()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/jwk-set+json")], body).into_response()
}

/// Control verbs over HTTP, for `podseal-dev cluster` subcommands (admin only).
fn control_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/dev-cluster/v1/pods", post(control_create_pod))
        .route(
            "/dev-cluster/v1/pods/{namespace}/{name}",
            axum::routing::delete(control_delete_pod),
        )
        .route(
            "/dev-cluster/v1/pods/{namespace}/{name}/running",
            post(control_mark_running),
        )
        .route(
            "/dev-cluster/v1/pods/{namespace}/{name}/recreate",
            post(control_recreate_pod),
        )
        .route(
            "/dev-cluster/v1/pods/{namespace}/{name}/ephemeral",
            post(control_add_ephemeral),
        )
        .route(
            "/dev-cluster/v1/pods/{namespace}/{name}/containers/{container}/{verb}",
            post(control_container),
        )
        .route(
            "/dev-cluster/v1/pods/{namespace}/{name}/certificate-request",
            post(control_certificate_request),
        )
        .route(
            "/dev-cluster/v1/signing-key/rotate",
            post(control_rotate_key),
        )
        .route("/dev-cluster/v1/signing-key/add", post(control_add_key))
        .route("/dev-cluster/v1/history/compact", post(control_compact))
        .route("/dev-cluster/v1/state/reset", post(control_reset))
}

fn handle(shared: Arc<Shared>) -> crate::Handle {
    crate::Handle { shared }
}

fn control_result<T: serde::Serialize>(result: Result<T, crate::DevClusterError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(crate::DevClusterError::PodNotFound { name, .. }) => {
            ApiError::not_found("pods", &name).into_response()
        }
        Err(e) => ApiError::bad_request(e.to_string()).into_response(),
    }
}

async fn control_create_pod(
    State(shared): State<Arc<Shared>>,
    Json(template): Json<PodTemplate>,
) -> Response {
    control_result(handle(shared).create_pod(&template))
}

async fn control_delete_pod(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    control_result(handle(shared).delete_pod(&ns, &name))
}

async fn control_mark_running(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    control_result(handle(shared).mark_running(&ns, &name))
}

async fn control_recreate_pod(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    control_result(handle(shared).recreate_pod(&ns, &name))
}

async fn control_container(
    State(shared): State<Arc<Shared>>,
    Path((ns, name, container, verb)): Path<(String, String, String, String)>,
) -> Response {
    let handle = handle(shared);
    control_result(match verb.as_str() {
        "restart" => handle.restart_container(&ns, &name, &container),
        "stop" => handle.stop_container(&ns, &name, &container),
        "start" => handle.start_container(&ns, &name, &container),
        _ => return ApiError::not_found("containers", &verb).into_response(),
    })
}

async fn control_add_ephemeral(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Json(image): Json<ContainerImage>,
) -> Response {
    control_result(handle(shared).add_ephemeral_container(&ns, &name, &image))
}

/// What `pod certificate-request` asks for.
#[derive(Deserialize)]
struct CertificateRequestBody {
    signer_name: String,
    #[serde(default)]
    max_expiration_seconds: Option<i32>,
}

async fn control_certificate_request(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Json(body): Json<CertificateRequestBody>,
) -> Response {
    control_result(
        handle(shared)
            .request_pod_certificate(&ns, &name, &body.signer_name, body.max_expiration_seconds)
            .map(|(request, key)| serde_json::json!({"request": request, "private_key_pem": key})),
    )
}

#[derive(Deserialize)]
struct RotateParams {
    #[serde(default)]
    keep_old: bool,
}

async fn control_rotate_key(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<RotateParams>,
) -> Response {
    control_result(
        handle(shared)
            .rotate_signing_key(params.keep_old)
            .map(|kid| serde_json::json!({ "kid": kid })),
    )
}

async fn control_add_key(State(shared): State<Arc<Shared>>) -> Response {
    control_result(
        handle(shared)
            .add_verification_key()
            .map(|kid| serde_json::json!({ "kid": kid })),
    )
}

async fn control_reset(State(shared): State<Arc<Shared>>) -> Response {
    control_result(
        handle(shared)
            .reset_state()
            .map(|()| serde_json::json!({ "reset": true })),
    )
}

async fn control_compact(State(shared): State<Arc<Shared>>) -> Response {
    handle(shared).compact_history();
    Json(serde_json::json!({ "compacted": true })).into_response()
}
