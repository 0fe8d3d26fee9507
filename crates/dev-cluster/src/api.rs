//! Routes, authentication and authorization, and the non-watch handlers.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use k8s_openapi::api::authorization::v1::SelfSubjectRulesReview;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, Time};
use serde::Deserialize;
use sha2::Digest as _;

use crate::api_error::ApiError;
use crate::list_params::{ListParams, flag};
use crate::selectors::Selector;
use crate::{ContainerImage, PodTemplate, READER_USER, Shared};

/// The smallest token lifetime the API server accepts.
const MIN_TOKEN_SECONDS: i64 = 600;
/// The default token lifetime.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/openid/v1/jwks", get(jwks))
        .route("/version", get(version))
        .route("/api/v1/pods", get(list_all_pods))
        .route(
            "/api/v1/namespaces/{namespace}/pods",
            get(list_namespaced_pods),
        )
        .route("/api/v1/namespaces/{namespace}/pods/{name}", get(get_pod))
        .route("/api/v1/serviceaccounts", get(list_all_service_accounts))
        .route(
            "/api/v1/namespaces/{namespace}/serviceaccounts",
            get(list_namespaced_service_accounts),
        )
        .route(
            "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
            get(get_service_account),
        )
        .route(
            "/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            post(create_token),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            post(self_subject_rules_review),
        )
        .merge(control_routes())
        .fallback(|| async { ApiError::no_such_path() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(shared.clone(), authorize))
        .with_state(shared)
}

/// Who is calling.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Identity {
    Reader,
    Admin,
}

fn identity(shared: &Shared, headers: &HeaderMap) -> Option<Identity> {
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
    namespace: Option<String>,
}

fn classify(method: &Method, path: &str, query: Option<&str>) -> Access {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (namespace, rest) = match segments.as_slice() {
        ["api", "v1", "namespaces", ns, rest @ ..] if !rest.is_empty() => {
            (Some((*ns).to_owned()), rest.to_vec())
        }
        ["api", "v1", rest @ ..] => (None, rest.to_vec()),
        _ => (None, Vec::new()),
    };
    let resource = match rest.as_slice() {
        [resource] | [resource, _] => (*resource).to_owned(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        _ => path.to_owned(),
    };
    let named = rest.len() >= 2;
    let watching = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        Method::GET if named => "get",
        Method::GET if watching => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    };
    Access {
        verb,
        resource,
        namespace,
    }
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
        // Every authenticated user may ask what it may do (the API server
        // grants it to all through `system:basic-user`).
        // …and read the version (`system:public-info-viewer`).
        Some(Identity::Reader) if is_self_review(request.method(), path) || path == "/version" => {
            next.run(request).await
        }
        Some(Identity::Reader) => {
            let access = classify(request.method(), path, request.uri().query());
            let allowed =
                access.resource == "pods" && matches!(access.verb, "get" | "list" | "watch");
            if allowed {
                next.run(request).await
            } else {
                ApiError::forbidden(
                    READER_USER,
                    access.verb,
                    &access.resource,
                    access.namespace.as_deref(),
                )
                .into_response()
            }
        }
    }
}

const SELF_RULES_REVIEW_PATH: &str = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews";

fn is_self_review(method: &Method, path: &str) -> bool {
    *method == Method::POST && path == SELF_RULES_REVIEW_PATH
}

/// `POST …/selfsubjectrulesreviews`: what the caller may do in the
/// namespace asked about, as the RBAC authorizer lists it — the rules of
/// the caller's own bindings and those every authenticated user has
/// (`system:basic-user`, `system:discovery`, `system:public-info-viewer`).
/// The reader token may get, list and watch pods; the admin token anything.
async fn self_subject_rules_review(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // kubectl sends built-in types as protobuf; the namespace asked about
    // is the one field read from it. The answer is JSON, which every
    // client's Accept includes.
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut review = if content_type.starts_with("application/json") {
        match serde_json::from_slice::<SelfSubjectRulesReview>(&body) {
            Ok(review) => review,
            Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
        }
    } else if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        let Some(namespace) = protobuf::rules_review_namespace(&body) else {
            return ApiError::bad_request(
                "the protobuf body is not a SelfSubjectRulesReview".into(),
            )
            .into_response();
        };
        SelfSubjectRulesReview {
            spec: k8s_openapi::api::authorization::v1::SelfSubjectRulesReviewSpec {
                namespace: Some(namespace),
            },
            ..SelfSubjectRulesReview::default()
        }
    } else {
        return ApiError::unsupported_media_type(content_type).into_response();
    };
    use k8s_openapi::api::authorization::v1::{
        NonResourceRule, ResourceRule, SubjectRulesReviewStatus,
    };
    let rule = |verbs: &[&str], groups: &[&str], resources: &[&str]| ResourceRule {
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        api_groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        resource_names: None,
    };
    let everyone = [
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        ),
        rule(
            &["create"],
            &["authentication.k8s.io"],
            &["selfsubjectreviews"],
        ),
    ];
    let discovery = NonResourceRule {
        verbs: vec!["get".into()],
        non_resource_urls: Some(
            [
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ]
            .map(str::to_owned)
            .into(),
        ),
    };
    let (resource_rules, non_resource_rules) = match identity(&shared, &headers) {
        Some(Identity::Admin) => (
            vec![rule(&["*"], &["*"], &["*"])],
            vec![NonResourceRule {
                verbs: vec!["*".into()],
                non_resource_urls: Some(vec!["*".into()]),
            }],
        ),
        _ => (
            std::iter::once(rule(&["get", "list", "watch"], &[""], &["pods"]))
                .chain(everyone)
                .collect(),
            vec![discovery],
        ),
    };
    review.status = Some(SubjectRulesReviewStatus {
        resource_rules,
        non_resource_rules,
        incomplete: false,
        evaluation_error: None,
    });
    (StatusCode::CREATED, Json(review)).into_response()
}

/// The little of Kubernetes' protobuf encoding the stand-in reads: the
/// `k8s\0` envelope (a `runtime.Unknown` whose field 2 holds the object),
/// and length-delimited fields by number.
mod protobuf {
    const MAGIC: &[u8] = b"k8s\0";

    /// The varint at the start of `bytes`, and what follows it.
    fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
        let mut value = 0u64;
        for (i, byte) in bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some((value, bytes.get(i + 1..)?));
            }
        }
        None
    }

    /// The bytes of length-delimited field `number` of `message`.
    fn field(mut message: &[u8], number: u64) -> Option<&[u8]> {
        while !message.is_empty() {
            let (key, rest) = varint(message)?;
            let value_len = match key & 7 {
                0 => {
                    message = varint(rest)?.1;
                    continue;
                }
                1 => 8,
                5 => 4,
                2 => {
                    let (len, rest) = varint(rest)?;
                    let len = usize::try_from(len).ok()?;
                    let value = rest.get(..len)?;
                    if key >> 3 == number {
                        return Some(value);
                    }
                    message = rest.get(len..)?;
                    continue;
                }
                _ => return None,
            };
            message = rest.get(value_len..)?;
        }
        None
    }

    /// `spec.namespace` of a protobuf SelfSubjectRulesReview (the object
    /// is field 2 of the envelope; its spec field 2; the namespace field 1).
    pub(super) fn rules_review_namespace(body: &[u8]) -> Option<String> {
        let object = field(body.strip_prefix(MAGIC)?, 2)?;
        let namespace = field(object, 2)
            .and_then(|spec| field(spec, 1))
            .unwrap_or_default();
        String::from_utf8(namespace.to_vec()).ok()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_namespace_is_read_from_the_envelope() {
            // Unknown{typeMeta: {apiVersion, kind}, raw: SSRR{metadata: {}, spec: {namespace: "shop"}}}
            let spec = [&[0x0a, 4][..], b"shop"].concat();
            let object = [&[0x0a, 0][..], &[0x12, 6], &spec].concat();
            let type_meta = [&[0x0a, 2][..], b"v1"].concat();
            let unknown = [&[0x0a, 4][..], &type_meta, &[0x12, 10], &object, &[0x1a, 0]].concat();
            let body = [MAGIC, &unknown].concat();
            assert_eq!(rules_review_namespace(&body).as_deref(), Some("shop"));
            assert_eq!(rules_review_namespace(&unknown), None, "no envelope");
            assert_eq!(
                rules_review_namespace(&body[..body.len() - 4]),
                None,
                "cut short"
            );
        }
    }
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

async fn list_all_pods(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<ListParams>,
) -> Response {
    list_or_watch_pods(shared, None, params).await
}

async fn list_namespaced_pods(
    State(shared): State<Arc<Shared>>,
    Path(namespace): Path<String>,
    Query(params): Query<ListParams>,
) -> Response {
    list_or_watch_pods(shared, Some(namespace), params).await
}

/// How long a list or watch for a resourceVersion the server has not
/// reached waits for it before `Too large resource version` (the watch
/// cache's `blockTimeout`).
const TOO_LARGE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The resourceVersion a list or watch asks for (`None`: unset or `0`, "any").
pub(crate) fn requested_resource_version(params: &ListParams) -> Result<Option<u64>, ApiError> {
    match params
        .resource_version
        .as_deref()
        .filter(|rv| !rv.is_empty() && *rv != "0")
    {
        None => Ok(None),
        Some(rv) => rv
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion: {rv}"))),
    }
}

/// Waits (up to [`TOO_LARGE_WAIT`]) until the store has reached `wanted`,
/// as the API server's watch cache does; then answers as it would.
pub(crate) async fn wait_for_resource_version(
    shared: &Shared,
    wanted: u64,
) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + TOO_LARGE_WAIT;
    loop {
        let (current, mut live) = {
            let store = shared.store();
            (store.resource_version(), store.subscribe())
        };
        if current >= wanted {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, live.recv()).await {
            Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            // The store was replaced (reset) or the wait is over.
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) | Err(_) => {
                let current = shared.store().resource_version();
                if current >= wanted {
                    return Ok(());
                }
                if tokio::time::Instant::now() < deadline {
                    continue;
                }
                return Err(ApiError::too_large_resource_version(wanted, current));
            }
        }
    }
}

async fn list_or_watch_pods(
    shared: Arc<Shared>,
    namespace: Option<String>,
    params: ListParams,
) -> Response {
    let selectors = Selector::labels(params.label_selector.as_deref())
        .and_then(|labels| Ok((labels, Selector::fields(params.field_selector.as_deref())?)));
    let (labels, fields) = match selectors {
        Ok(selectors) => selectors,
        Err(e) => return e.into_response(),
    };
    let requested = match requested_resource_version(&params) {
        Ok(requested) => requested,
        Err(e) => return e.into_response(),
    };
    if let Some(wanted) = requested
        && let Err(e) = wait_for_resource_version(&shared, wanted).await
    {
        return e.into_response();
    }
    if flag(params.watch.as_ref()) {
        return crate::watch::respond(shared, namespace, labels, fields, &params, requested);
    }
    let store = shared.store();
    // A list at an exact resourceVersion older than the kept history is
    // gone, as a compacted etcd answers.
    if params.resource_version_match.as_deref() == Some("Exact")
        && let Some(wanted) = requested
        && wanted < store.compacted_to()
    {
        return ApiError::expired(wanted).into_response();
    }
    // A continue token is the key of the last pod of the previous page.
    let after = params.continue_token.as_deref().map(decode_continue);
    let mut items: Vec<Pod> = store
        .pods(namespace.as_deref())
        .into_iter()
        .filter(|p| labels.matches(p) && fields.matches(p))
        .filter(|p| after.as_ref().is_none_or(|after| pod_key(p) > *after))
        .collect();
    let mut continue_token = None;
    if let Some(limit) = params.limit.filter(|l| *l > 0 && items.len() > *l) {
        items.truncate(limit);
        continue_token = items.last().map(|p| encode_continue(&pod_key(p)));
    }
    let list = k8s_openapi::List::<Pod> {
        items,
        metadata: ListMeta {
            resource_version: Some(store.resource_version().to_string()),
            continue_: continue_token,
            ..ListMeta::default()
        },
    };
    Json(list).into_response()
}

fn pod_key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn encode_continue(key: &(String, String)) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}/{}", key.0, key.1))
}

fn decode_continue(token: &str) -> (String, String) {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let (namespace, name) = text.split_once('/').unwrap_or_default();
    (namespace.to_owned(), name.to_owned())
}

async fn get_pod(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match shared.store().pod(&namespace, &name) {
        Some(pod) => Json(pod).into_response(),
        None => ApiError::not_found("pods", &name).into_response(),
    }
}

async fn list_all_service_accounts(State(shared): State<Arc<Shared>>) -> Response {
    service_account_list(&shared, None)
}

async fn list_namespaced_service_accounts(
    State(shared): State<Arc<Shared>>,
    Path(namespace): Path<String>,
) -> Response {
    service_account_list(&shared, Some(&namespace))
}

fn service_account_list(shared: &Shared, namespace: Option<&str>) -> Response {
    let store = shared.store();
    let list = k8s_openapi::List::<ServiceAccount> {
        items: store.service_accounts(namespace),
        metadata: ListMeta {
            resource_version: Some(store.resource_version().to_string()),
            ..ListMeta::default()
        },
    };
    Json(list).into_response()
}

async fn get_service_account(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match shared.store().service_account(&namespace, &name) {
        Some(sa) => Json(sa).into_response(),
        None => ApiError::not_found("serviceaccounts", &name).into_response(),
    }
}

async fn create_token(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    Json(request): Json<TokenRequest>,
) -> Response {
    match issue_token(&shared, &namespace, &name, request) {
        Ok(response) => Json(response).into_response(),
        Err(e) => e.into_response(),
    }
}

fn issue_token(
    shared: &Arc<Shared>,
    namespace: &str,
    name: &str,
    mut request: TokenRequest,
) -> Result<TokenRequest, ApiError> {
    if shared.store().service_account(namespace, name).is_none() {
        return Err(ApiError::not_found("serviceaccounts", name));
    }
    // 1.36's schema marks `spec` optional; absent, it is the defaults.
    let spec = request.spec.get_or_insert_with(Default::default);
    let seconds = spec.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS);
    if seconds < MIN_TOKEN_SECONDS {
        return Err(ApiError::bad_request("spec.expirationSeconds: Invalid value: may not specify a duration less than 10 minutes".into()));
    }
    let bound_pod = match &spec.bound_object_ref {
        None => None,
        Some(bound) if bound.kind.as_deref() == Some("Pod") => {
            let pod_name = bound.name.clone().unwrap_or_default();
            let pod = shared
                .store()
                .pod(namespace, &pod_name)
                .ok_or_else(|| ApiError::not_found("pods", &pod_name))?;
            if bound
                .uid
                .as_ref()
                .is_some_and(|uid| Some(uid) != pod.metadata.uid.as_ref())
            {
                return Err(ApiError::bad_request(format!(
                    "the UID in the bound object reference does not match pod {pod_name}"
                )));
            }
            Some(pod_name)
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "spec.boundObjectRef.kind: Unsupported value (only Pod here)".into(),
            ));
        }
    };
    let handle = crate::Handle {
        shared: shared.clone(),
    };
    let (token, claims) = handle
        .issue_token(
            namespace,
            name,
            spec.audiences.as_deref().unwrap_or_default(),
            seconds,
            bound_pod.as_deref(),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    spec.audiences = Some(claims.aud.clone());
    spec.expiration_seconds = Some(seconds);
    request.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        creation_timestamp: jiff::Timestamp::from_second(claims.iat).ok().map(Time),
        ..ObjectMeta::default()
    };
    // As kube-apiserver: the expiry asked for, also when the token's own
    // exp was extended (then `warnafter` in the token says the same).
    let expiration = jiff::Timestamp::from_second(claims.iat + seconds)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    request.status = Some(TokenRequestStatus {
        token: Some(token),
        expiration_timestamp: Some(Time(expiration)),
    });
    Ok(request)
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
    handle(shared).reset_state();
    Json(serde_json::json!({ "reset": true })).into_response()
}

async fn control_compact(State(shared): State<Arc<Shared>>) -> Response {
    handle(shared).compact_history();
    Json(serde_json::json!({ "compacted": true })).into_response()
}
