//! The TokenRequest API (`…/serviceaccounts/NAME/token`), which `kube`
//! sends as JSON and `kubectl create token` as protobuf.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{
    BoundObjectReference, TokenRequest, TokenRequestSpec, TokenRequestStatus,
};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::Shared;
use crate::api_error::ApiError;
use crate::kinds;
use crate::protobuf::Message;

/// The smallest token lifetime the API server accepts.
const MIN_TOKEN_SECONDS: i64 = 600;
/// The default token lifetime.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// A TokenRequest from its JSON or protobuf body.
fn decode(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        let object = Message::enveloped(body).ok_or_else(|| {
            ApiError::bad_request("the protobuf body is not a TokenRequest".into())
        })?;
        let spec = object.message(2).ok_or_else(|| {
            ApiError::bad_request("the protobuf TokenRequest has no readable spec".into())
        })?;
        let bound = spec
            .bytes(3)
            .and_then(Message::parse)
            .map(|b| BoundObjectReference {
                kind: b.string(1),
                api_version: b.string(2),
                name: b.string(3),
                uid: b.string(4),
            });
        let audiences = spec.strings(1);
        Ok(TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: (!audiences.is_empty()).then_some(audiences),
                expiration_seconds: spec.int64(4),
                bound_object_ref: bound,
            }),
            ..TokenRequest::default()
        })
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))
    } else {
        Err(ApiError::unsupported_media_type(content_type))
    }
}

pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match decode(&headers, &body) {
        Ok(request) => request,
        Err(e) => return e.into_response(),
    };
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
    if shared
        .store()
        .get_as::<ServiceAccount>(namespace, name)
        .is_none()
    {
        return Err(ApiError::object_not_found(
            kinds::of::<ServiceAccount>(),
            name,
        ));
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
                .get_as::<Pod>(namespace, &pod_name)
                .ok_or_else(|| ApiError::object_not_found(kinds::of::<Pod>(), &pod_name))?;
            // An empty uid is filled in from the pod, as the API server does.
            if bound
                .uid
                .as_ref()
                .filter(|uid| !uid.is_empty())
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
