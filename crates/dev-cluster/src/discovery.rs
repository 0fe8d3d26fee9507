//! What the stand-in says it serves, from the kinds table, in the shapes
//! kube-apiserver answers with:
//! - legacy discovery: `/api` (`APIVersions`), `/apis` (`APIGroupList`),
//!   `/apis/GROUP` (`APIGroup`), `/api/v1` and `/apis/GROUP/VERSION`
//!   (`APIResourceList`);
//! - aggregated discovery (`apidiscovery.k8s.io/v2`), when `Accept` asks
//!   for `as=APIGroupDiscoveryList`, as kubectl and client-go do first;
//! - OpenAPI v3: `/openapi/v3` lists a document per group version, whose
//!   PATCH operations carry `x-kubernetes-group-version-kind` and the
//!   `fieldValidation` parameter, which is how kubectl learns that the
//!   server validates fields itself (so `kubectl apply` needs no client-side
//!   schema). Schemas of the kinds are not published: `kubectl explain`
//!   is not served.

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::fields::put;
use crate::kinds::{self, Kind};

/// Resources that are only created, never stored (reviews), and the token
/// subresource: `(group, version, plural, kind, namespaced)`.
pub(crate) const CREATE_ONLY: &[(&str, &str, &str, &str)] = &[
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
    ),
    (
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
    ),
];

const VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|accept| accept.split(',').next())
        .is_some_and(|first| {
            let params: Vec<&str> = first.split(';').map(str::trim).collect();
            params.contains(&"as=APIGroupDiscoveryList")
                && params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
        })
}

/// Every group the stand-in serves, core first, with its versions newest first.
fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    let create_only = CREATE_ONLY.iter().map(|(g, v, _, _)| (*g, *v));
    for (group, version) in kinds::group_versions().into_iter().chain(create_only) {
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, versions)) if !versions.contains(&version) => versions.push(version),
            Some(_) => {}
            None => out.push((group, vec![version])),
        }
    }
    for (_, versions) in &mut out {
        versions.sort_by_key(|v| std::cmp::Reverse(kinds::version_priority(v)));
    }
    out.sort_by(|a, b| (!a.0.is_empty(), a.0).cmp(&(!b.0.is_empty(), b.0)));
    out
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

fn api_group(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions.first()})
}

/// The resources of one group version, legacy shape.
fn resources(group: &str, version: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for kind in kinds::table()
        .iter()
        .filter(|k| k.group == group && k.serves(version))
    {
        let mut resource = json!({
            "name": kind.plural,
            "singularName": kind.singular(),
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": VERBS,
        });
        if !kind.short_names.is_empty() {
            put(&mut resource, &["shortNames"], json!(kind.short_names));
        }
        if !kind.categories.is_empty() {
            put(&mut resource, &["categories"], json!(kind.categories));
        }
        out.push(resource);
        if kind.status {
            out.push(json!({
                "name": format!("{}/status", kind.plural),
                "singularName": "",
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if kind.kind == "ServiceAccount" {
            out.push(json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }));
        }
    }
    for (_, _, plural, kind) in CREATE_ONLY
        .iter()
        .filter(|(g, v, _, _)| *g == group && *v == version)
    {
        out.push(json!({
            "name": plural,
            "singularName": kind.to_ascii_lowercase(),
            "namespaced": false,
            "kind": kind,
            "verbs": ["create"],
        }));
    }
    out
}

/// The resources of one group version, aggregated shape.
fn aggregated_resources(group: &str, version: &str) -> Vec<Value> {
    let response_kind = |kind: &str| json!({"group": "", "version": "", "kind": kind});
    let scope = |namespaced: bool| if namespaced { "Namespaced" } else { "Cluster" };
    let mut out = Vec::new();
    for kind in kinds::table()
        .iter()
        .filter(|k| k.group == group && k.serves(version))
    {
        let mut subresources = Vec::new();
        if kind.status {
            subresources.push(json!({"subresource": "status", "responseKind": response_kind(kind.kind), "verbs": ["get", "patch", "update"]}));
        }
        if kind.kind == "ServiceAccount" {
            subresources.push(json!({
                "subresource": "token",
                "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"},
                "verbs": ["create"],
            }));
        }
        let mut resource = json!({
            "resource": kind.plural,
            "responseKind": response_kind(kind.kind),
            "scope": scope(kind.namespaced),
            "singularResource": kind.singular(),
            "verbs": VERBS,
        });
        if !kind.short_names.is_empty() {
            put(&mut resource, &["shortNames"], json!(kind.short_names));
        }
        if !kind.categories.is_empty() {
            put(&mut resource, &["categories"], json!(kind.categories));
        }
        if !subresources.is_empty() {
            put(&mut resource, &["subresources"], Value::Array(subresources));
        }
        out.push(resource);
    }
    for (_, _, plural, kind) in CREATE_ONLY
        .iter()
        .filter(|(g, v, _, _)| *g == group && *v == version)
    {
        out.push(json!({
            "resource": plural,
            "responseKind": response_kind(kind),
            "scope": "Cluster",
            "singularResource": kind.to_ascii_lowercase(),
            "verbs": ["create"],
        }));
    }
    out
}

fn aggregated(core: bool) -> Response {
    let items: Vec<Value> = groups()
        .into_iter()
        .filter(|(group, _)| group.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"version": v, "resources": aggregated_resources(group, v), "freshness": "Current"}))
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    });
    ([(header::CONTENT_TYPE, AGGREGATED)], axum::Json(body)).into_response()
}

/// Serves a discovery path; `None` when `path` is not one.
pub(crate) fn serve(path: &str, headers: &HeaderMap, server_address: &str) -> Option<Response> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["api"] if wants_aggregated(headers) => aggregated(true),
        ["apis"] if wants_aggregated(headers) => aggregated(false),
        ["api"] => axum::Json(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        }))
        .into_response(),
        ["apis"] => {
            let groups: Vec<Value> = groups()
                .into_iter()
                .filter(|(group, _)| !group.is_empty())
                .map(|(group, versions)| api_group(group, &versions))
                .collect();
            axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})).into_response()
        }
        ["apis", group] => match groups().into_iter().find(|(g, _)| g == group) {
            Some((group, versions)) => {
                let mut body = api_group(group, &versions);
                put(&mut body, &["kind"], json!("APIGroup"));
                put(&mut body, &["apiVersion"], json!("v1"));
                axum::Json(body).into_response()
            }
            None => ApiError::no_such_path().into_response(),
        },
        ["api", version] => resource_list("", version),
        ["apis", group, version] => resource_list(group, version),
        ["openapi", "v3"] => {
            let paths: serde_json::Map<String, Value> = kinds::group_versions()
                .into_iter()
                .map(|(group, version)| {
                    let prefix = openapi_prefix(group, version);
                    let url = format!("/openapi/v3/{prefix}?hash={}", crate::KUBERNETES_MINOR);
                    (prefix, json!({"serverRelativeURL": url}))
                })
                .collect();
            axum::Json(json!({"paths": paths})).into_response()
        }
        ["openapi", "v3", rest @ ..] => {
            let prefix = rest.join("/");
            match kinds::group_versions()
                .into_iter()
                .find(|(g, v)| openapi_prefix(g, v) == prefix)
            {
                Some((group, version)) => axum::Json(openapi_document(group, version)).into_response(),
                None => ApiError::no_such_path().into_response(),
            }
        }
        _ => return None,
    })
}

/// `APIResourceList` of one group version; 404 for one not served.
fn resource_list(group: &str, version: &str) -> Response {
    let resources = resources(group, version);
    if resources.is_empty() {
        return ApiError::no_such_path().into_response();
    }
    axum::Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    }))
    .into_response()
}

fn openapi_prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The OpenAPI v3 document of one group version: a path per kind with its
/// PATCH operation, which is what kubectl reads to learn that the server
/// validates fields (`fieldValidation`) and which patch types it takes.
fn openapi_document(group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for kind in kinds::table()
        .iter()
        .filter(|k| k.group == group && k.serves(version))
    {
        paths.insert(
            object_path(kind, group, version),
            path_item(kind, group, version),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::KUBERNETES_MINOR)},
        "paths": paths,
        "components": {"schemas": {}},
    })
}

fn object_path(kind: &Kind, group: &str, version: &str) -> String {
    let base = format!("/{}", openapi_prefix(group, version));
    if kind.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}/{{name}}", kind.plural)
    } else {
        format!("{base}/{}/{{name}}", kind.plural)
    }
}

fn path_item(kind: &Kind, group: &str, version: &str) -> Value {
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    let gvk = json!({"group": group, "version": version, "kind": kind.kind});
    let body = |types: &[&str]| {
        let content: serde_json::Map<String, Value> = types
            .iter()
            .map(|t| ((*t).to_owned(), json!({"schema": {"type": "object"}})))
            .collect();
        json!({"content": content, "required": true})
    };
    let operation = |action: &str, types: Option<&[&str]>| {
        let mut op = json!({
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation")],
            "responses": {"200": {"description": "OK"}},
        });
        if let Some(types) = types {
            put(&mut op, &["requestBody"], body(types));
        }
        op
    };
    json!({
        "get": operation("get", None),
        "put": operation("put", Some(&["*/*"])),
        // Strategic merge patch is served but not listed: a client that
        // sees it here computes the patch from the published schemas,
        // which this document does not carry; without it kubectl computes
        // it from the API types it was built with.
        "patch": operation("patch", Some(&[
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        ])),
        "delete": operation("delete", None),
    })
}
