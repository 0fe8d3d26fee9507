//! Errors in the Kubernetes `Status` shape, built from `k8s-openapi` types.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};

/// A failed API call: HTTP status plus a `Status` body.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: StatusCode,
    // Boxed: `Status` is large and travels in every `Result`.
    status: Box<Status>,
}

impl ApiError {
    fn new(
        code: StatusCode,
        reason: &str,
        message: String,
        details: Option<StatusDetails>,
    ) -> Self {
        let status = Status {
            status: Some("Failure".into()),
            message: Some(message),
            reason: Some(reason.into()),
            details,
            code: Some(i32::from(code.as_u16())),
            ..Status::default()
        };
        Self {
            code,
            status: Box::new(status),
        }
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
            None,
        )
    }

    /// 403, worded as the API server words it.
    pub fn forbidden(
        user: &str,
        verb: &str,
        resource: &str,
        group: &str,
        namespace: Option<&str>,
    ) -> Self {
        let scope = namespace.map_or_else(
            || "at the cluster scope".to_owned(),
            |ns| format!("in the namespace \"{ns}\""),
        );
        let qualified = if group.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}.{group}")
        };
        let message = format!(
            "{qualified} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
        );
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            message,
            Some(details(resource, None)),
        )
    }

    /// 403 for a non-resource path, worded as the API server words it.
    pub(crate) fn forbidden_path(user: &str, method: &str, path: &str) -> Self {
        let verb = method.to_ascii_lowercase();
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\""),
            Some(StatusDetails::default()),
        )
    }

    /// 404.
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{resource} \"{name}\" not found"),
            Some(details(resource, Some(name))),
        )
    }

    /// 404 for a path the server serves nothing at, worded as
    /// kube-apiserver words it (`kubectl get --raw /api/v1/nosuch`).
    pub fn no_such_path() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(StatusDetails::default()),
        )
    }

    /// 404 for an object of a served kind: `deployments.apps "x" not found`.
    pub(crate) fn object_not_found(kind: &crate::kinds::Kind, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified()),
            Some(group_details(kind, name)),
        )
    }

    /// 409 for a name already taken.
    pub(crate) fn already_exists(kind: &crate::kinds::Kind, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.qualified()),
            Some(group_details(kind, name)),
        )
    }

    /// 409 for a write from a stale resourceVersion.
    pub(crate) fn conflict(kind: &crate::kinds::Kind, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                kind.qualified()
            ),
            Some(group_details(kind, name)),
        )
    }

    /// 409 for a server-side apply that would take fields another manager owns.
    pub(crate) fn apply_conflict(
        kind: &crate::kinds::Kind,
        name: &str,
        causes: Vec<(String, String)>,
    ) -> Self {
        let count = causes.len();
        // kube-apiserver's wording: one conflict inline, several as a list.
        let listed = match causes.as_slice() {
            [(_, message)] => message.clone(),
            _ => causes
                .iter()
                .map(|(_, message)| format!("\n- {message}"))
                .collect(),
        };
        let mut details = group_details(kind, name);
        details.causes = Some(
            causes
                .into_iter()
                .map(|(field, message)| {
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                        reason: Some("FieldManagerConflict".into()),
                        message: Some(message),
                        field: Some(field),
                    }
                })
                .collect(),
        );
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Apply failed with {count} conflict{}: {listed}",
                if count == 1 { "" } else { "s" }
            ),
            Some(details),
        )
    }

    /// 422 for a field the kind's rules refuse.
    pub(crate) fn invalid(
        kind: &crate::kinds::Kind,
        name: &str,
        field: &str,
        message: &str,
    ) -> Self {
        let mut details = group_details(kind, name);
        details.causes = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                reason: Some("FieldValueInvalid".into()),
                message: Some(format!("Invalid value: {message}")),
                field: Some(field.to_owned()),
            },
        ]);
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: {field}: Invalid value: {message}",
                kind.kind
            ),
            Some(details),
        )
    }

    /// 406 for an `Accept` the stand-in cannot answer in (protobuf only).
    pub fn not_acceptable(accept: &str) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io (got {accept:?})"
            ),
            None,
        )
    }

    /// 400.
    pub fn bad_request(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message, None)
    }

    /// 415, for a body in a media type the API server does not decode.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
            None,
        )
    }

    /// 500, for a change the stand-in could not keep.
    pub(crate) fn internal(message: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {message}"),
            None,
        )
    }

    /// 415 for a protobuf body of a kind the stand-in does not read as
    /// protobuf: kubectl does not fall back to JSON, so say what to do.
    pub(crate) fn protobuf_not_read(kind: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the stand-in reads protobuf bodies only for namespaces, secrets, configmaps, serviceaccounts, token requests and access reviews, not a {kind}: write it as JSON or YAML (kubectl apply -f)"
            ),
            None,
        )
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            None,
        )
    }

    /// 503 while the stand-in is paused.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the server is currently unable to handle the request".into(),
            None,
        )
    }

    /// 410, as a watch ERROR event carries it.
    pub fn expired(resource_version: u64) -> Self {
        Self::new(
            StatusCode::GONE,
            "Expired",
            format!("too old resource version: {resource_version}"),
            None,
        )
    }

    /// 504 for a resourceVersion the server has not reached (after waiting
    /// for it), worded and shaped as kube-apiserver's watch cache answers:
    /// reason `Timeout`, one cause `ResourceVersionTooLarge`.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
            Some(StatusDetails {
                causes: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                        reason: Some("ResourceVersionTooLarge".into()),
                        message: Some("Too large resource version".into()),
                        field: None,
                    },
                ]),
                retry_after_seconds: Some(1),
                ..StatusDetails::default()
            }),
        )
    }

    /// The `Status` body.
    pub fn status(&self) -> &Status {
        &self.status
    }
}

fn group_details(kind: &crate::kinds::Kind, name: &str) -> StatusDetails {
    StatusDetails {
        name: Some(name.to_owned()),
        group: (!kind.group.is_empty()).then(|| kind.group.to_owned()),
        kind: Some(kind.plural.to_owned()),
        ..StatusDetails::default()
    }
}

fn details(kind: &str, name: Option<&str>) -> StatusDetails {
    StatusDetails {
        kind: Some(kind.into()),
        name: name.map(str::to_owned),
        ..StatusDetails::default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // k8s-openapi's `Status` serializes its own `kind` and `apiVersion`.
        (self.code, axum::Json(*self.status)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_error_body_round_trips_through_k8s_openapi_status() {
        let errors = [
            ApiError::unauthorized(),
            ApiError::forbidden(crate::READER_USER, "delete", "pods", "", Some("shop")),
            ApiError::forbidden(crate::READER_USER, "list", "secrets", "", None),
            ApiError::not_found("pods", "api-0"),
            ApiError::bad_request("bad".into()),
            ApiError::method_not_allowed(),
            ApiError::unavailable(),
            ApiError::expired(7),
        ];
        for error in errors {
            let code = error.code;
            let response = error.into_response();
            assert_eq!(response.status(), code);
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                (value["kind"].as_str(), value["apiVersion"].as_str()),
                (Some("Status"), Some("v1"))
            );
            assert_eq!(value["code"], i64::from(code.as_u16()));
            let typed: Status = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(serde_json::to_value(typed).unwrap(), value);
        }
    }
}
