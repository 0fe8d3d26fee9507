//! Admin routes: `Authorization: Bearer <admin token>` on every one; bodies
//! and answers are JSON (the audit export is JSON lines). Each handler asks
//! [`AdminService`](crate::admin::AdminService), which audits the action.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use podseal_core::audit::event::AdminAction;

use super::{App, answer, header_text, parse_json, read_body};
use crate::gate::{Gate, Reason, Refusal};
use crate::storage::Storage;
use podseal_core::wire::admin::{
    ApiKeyList, ApiKeyRequest, ApiKeyRevoked, ClusterList, ClusterRemoved, ClusterRequest,
    PolicyDigestsRequest, PolicyList, PolicyRequest,
};

/// The bearer token of `Authorization`, if the header has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    header_text(
        headers,
        "authorization",
        Gate::Admin,
        Reason::AdminTokenMissing,
    )
    .ok()?
    .strip_prefix("Bearer ")
    .map(str::trim)
}

async fn authorized<S: Storage>(
    app: &App<S>,
    action: AdminAction,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    app.admin.authorize(action, bearer(headers)).await
}

pub(super) async fn add_cluster<S: Storage>(
    State(app): State<App<S>>,
    request: Request,
) -> Response {
    let result = async {
        let (headers, bytes) = read_body(request).await?;
        authorized(&app, AdminAction::ClusterAdd, &headers).await?;
        let body: ClusterRequest = parse_json(&headers, &bytes)?;
        app.admin.add_cluster(body).await
    };
    answer(StatusCode::CREATED, result.await)
}

pub(super) async fn clusters<S: Storage>(
    State(app): State<App<S>>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorized(&app, AdminAction::ClusterList, &headers).await?;
        Ok(ClusterList {
            clusters: app.admin.clusters().await?,
        })
    };
    answer(StatusCode::OK, result.await)
}

pub(super) async fn cluster<S: Storage>(
    State(app): State<App<S>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorized(&app, AdminAction::ClusterShow, &headers).await?;
        app.admin.cluster(&name).await
    };
    answer(StatusCode::OK, result.await)
}

pub(super) async fn create_api_key<S: Storage>(
    State(app): State<App<S>>,
    request: Request,
) -> Response {
    let result = async {
        let (headers, bytes) = read_body(request).await?;
        authorized(&app, AdminAction::ApiKeyCreate, &headers).await?;
        let body: ApiKeyRequest = parse_json(&headers, &bytes)?;
        app.admin.create_api_key(body).await
    };
    let mut response = answer(StatusCode::CREATED, result.await);
    // The only answer that carries a key: never cached anywhere.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

pub(super) async fn remove_cluster<S: Storage>(
    State(app): State<App<S>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorized(&app, AdminAction::ClusterRemove, &headers).await?;
        let removed = app.admin.remove_cluster(&name).await?;
        Ok(ClusterRemoved {
            removed: name,
            api_keys_deleted: removed.api_keys,
            policies_deleted: removed.policies,
            sessions_deleted: removed.sessions,
        })
    };
    answer(StatusCode::OK, result.await)
}

pub(super) async fn api_keys<S: Storage>(
    State(app): State<App<S>>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorized(&app, AdminAction::ApiKeyList, &headers).await?;
        Ok(ApiKeyList {
            api_keys: app.admin.api_keys().await?,
        })
    };
    answer(StatusCode::OK, result.await)
}

pub(super) async fn revoke_api_key<S: Storage>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorized(&app, AdminAction::ApiKeyRevoke, &headers).await?;
        app.admin.revoke_api_key(&id).await?;
        Ok(ApiKeyRevoked { revoked: id })
    };
    answer(StatusCode::OK, result.await)
}

pub(super) async fn set_policy<S: Storage>(
    State(app): State<App<S>>,
    request: Request,
) -> Response {
    let result = async {
        let (headers, bytes) = read_body(request).await?;
        authorized(&app, AdminAction::PolicySet, &headers).await?;
        let body: PolicyRequest = parse_json(&headers, &bytes)?;
        app.admin.set_policy(body).await
    };
    answer(StatusCode::OK, result.await)
}

pub(super) async fn change_policy_digests<S: Storage>(
    State(app): State<App<S>>,
    request: Request,
) -> Response {
    let result = async {
        let (headers, bytes) = read_body(request).await?;
        authorized(&app, AdminAction::PolicyDigests, &headers).await?;
        let body: PolicyDigestsRequest = parse_json(&headers, &bytes)?;
        app.admin.change_policy_digests(body).await
    };
    answer(StatusCode::OK, result.await)
}

pub(super) async fn policies<S: Storage>(
    State(app): State<App<S>>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorized(&app, AdminAction::PolicyList, &headers).await?;
        Ok(PolicyList {
            policies: app.admin.policies().await?,
        })
    };
    answer(StatusCode::OK, result.await)
}

pub(super) async fn audit_export<S: Storage>(
    State(app): State<App<S>>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorized(&app, AdminAction::AuditExport, &headers).await?;
        app.admin.audit_export().await
    };
    match result.await {
        Ok(lines) => {
            let mut text = String::new();
            for line in lines {
                text.push_str(&serde_json::to_string(&line).unwrap_or_default());
                text.push('\n');
            }
            ([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response()
        }
        Err(refusal) => super::problem::ProblemResponse(refusal).into_response(),
    }
}
