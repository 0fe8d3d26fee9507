//! The reviews every authenticated user may create, so that `kubectl auth
//! can-i` (an access review, or `--list`, a rules review) and `kubectl
//! auth whoami` answer: what the caller's token may do, and who it is.
//! kubectl sends them as protobuf ([`crate::protobuf`]); the answer is
//! JSON, which every client's `Accept` includes.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, SelfSubjectReviewStatus, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, NonResourceRule, ResourceAttributes, ResourceRule,
    SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SelfSubjectRulesReview,
    SelfSubjectRulesReviewSpec, SubjectAccessReviewStatus, SubjectRulesReviewStatus,
};
use serde::de::DeserializeOwned;

use crate::api::{Identity, identity, reader_may};
use crate::api_error::ApiError;
use crate::protobuf::Message;
use crate::{ADMIN_USER, READER_USER, Shared};

/// Non-resource paths every authenticated user may get (`system:discovery`,
/// `system:public-info-viewer`).
const DISCOVERY_PATHS: [&str; 11] = [
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
];

/// A review body: JSON as it is, protobuf through `from_protobuf`.
fn decode<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    from_protobuf: impl FnOnce(&Message<'_>) -> T,
) -> Result<T, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))
    } else if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        Message::enveloped(body)
            .map(|object| from_protobuf(&object))
            .ok_or_else(|| {
                ApiError::bad_request("the protobuf body is not a Kubernetes object".into())
            })
    } else {
        Err(ApiError::unsupported_media_type(content_type))
    }
}

fn created<T: serde::Serialize>(review: T) -> Response {
    (StatusCode::CREATED, Json(review)).into_response()
}

/// `POST …/selfsubjectrulesreviews`: what the caller may do in the
/// namespace asked about, as the RBAC authorizer lists it — the rules of
/// the caller's own bindings and those every authenticated user has.
pub(crate) async fn rules(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let review = decode(&headers, &body, |object| SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: object.message(2).and_then(|spec| spec.string(1)),
        },
        ..SelfSubjectRulesReview::default()
    });
    let mut review = match review {
        Ok(review) => review,
        Err(e) => return e.into_response(),
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
        non_resource_urls: Some(DISCOVERY_PATHS.map(str::to_owned).into()),
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
    created(review)
}

/// `POST …/selfsubjectaccessreviews`: may the caller do this one thing?
pub(crate) async fn access(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let review = decode(&headers, &body, |object| {
        let spec = object.message(2);
        let resource = spec
            .as_ref()
            .and_then(|s| s.bytes(1))
            .and_then(Message::parse);
        let non_resource = spec
            .as_ref()
            .and_then(|s| s.bytes(2))
            .and_then(Message::parse);
        SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: resource.map(|r| ResourceAttributes {
                    namespace: r.string(1),
                    verb: r.string(2),
                    group: r.string(3),
                    version: r.string(4),
                    resource: r.string(5),
                    subresource: r.string(6),
                    name: r.string(7),
                    ..ResourceAttributes::default()
                }),
                non_resource_attributes: non_resource.map(|n| NonResourceAttributes {
                    path: n.string(1),
                    verb: n.string(2),
                }),
            },
            ..SelfSubjectAccessReview::default()
        }
    });
    let mut review = match review {
        Ok(review) => review,
        Err(e) => return e.into_response(),
    };
    let allowed = match identity(&shared, &headers) {
        Some(Identity::Admin) => true,
        Some(Identity::Reader) => match (
            &review.spec.resource_attributes,
            &review.spec.non_resource_attributes,
        ) {
            (Some(r), _) => {
                let resource = match r.subresource.as_deref().filter(|s| !s.is_empty()) {
                    Some(sub) => format!("{}/{sub}", r.resource.as_deref().unwrap_or_default()),
                    None => r.resource.clone().unwrap_or_default(),
                };
                let group = r.group.as_deref().unwrap_or_default();
                let verb = r.verb.as_deref().unwrap_or_default();
                reader_may(group, &resource, verb)
                    || (group == "authorization.k8s.io"
                        && verb == "create"
                        && matches!(
                            resource.as_str(),
                            "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
                        ))
                    || (group == "authentication.k8s.io"
                        && verb == "create"
                        && resource == "selfsubjectreviews")
            }
            (None, Some(n)) => {
                let path = n.path.as_deref().unwrap_or_default();
                n.verb.as_deref() == Some("get")
                    && DISCOVERY_PATHS.iter().any(|p| match p.strip_suffix('*') {
                        Some(prefix) => path.starts_with(prefix),
                        None => path == *p,
                    })
            }
            (None, None) => false,
        },
        None => false,
    };
    review.status = Some(SubjectAccessReviewStatus {
        allowed,
        denied: None,
        reason: allowed.then(|| "RBAC: allowed by the stand-in's bindings".to_owned()),
        evaluation_error: None,
    });
    created(review)
}

/// `POST …/selfsubjectreviews`: who the caller is (`kubectl auth whoami`).
pub(crate) async fn whoami(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let review = decode(&headers, &body, |_| SelfSubjectReview::default());
    let mut review = match review {
        Ok(review) => review,
        Err(e) => return e.into_response(),
    };
    let (username, groups): (&str, &[&str]) = match identity(&shared, &headers) {
        Some(Identity::Admin) => (ADMIN_USER, &["system:masters", "system:authenticated"]),
        _ => (
            READER_USER,
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:podseal-system",
                "system:authenticated",
            ],
        ),
    };
    review.status = Some(SelfSubjectReviewStatus {
        user_info: Some(UserInfo {
            username: Some(username.to_owned()),
            groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
            ..UserInfo::default()
        }),
    });
    created(review)
}
