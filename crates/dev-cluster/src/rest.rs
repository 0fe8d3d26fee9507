//! The generic REST handler: every kind of [`crate::kinds`] is served by
//! this one piece of code, as kube-apiserver's generic registry serves
//! its built-in kinds — get, list (selectors, paging), watch, create,
//! update (with `resourceVersion` preconditions), the four patch types,
//! delete, the `status` subresource, `dryRun`, `fieldValidation`,
//! `fieldManager`, and answers as objects or as `Table`s.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Shared;
use crate::api_error::ApiError;
use crate::fields::{at, put};
use crate::kinds::{self, Kind};
use crate::list_params::{ListParams, flag};
use crate::selectors::Selector;
use crate::store::{StoreError, name_of};
use crate::{behaviour, columns, patch, watch};

/// What a path under `/api/v1` or `/apis/GROUP/VERSION` names.
pub(crate) struct Target {
    pub kind: &'static Kind,
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Reads a resource path; `None` for anything else (discovery, unknown).
pub(crate) fn parse(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return None,
    };
    let target = |plural: &str, namespace: Option<&str>, tail: &[&str]| {
        let kind = kinds::find(group, version, plural)?;
        if kind.namespaced != namespace.is_some() && !(kind.namespaced && tail.is_empty()) {
            return None;
        }
        let (name, subresource) = match tail {
            [] => (None, None),
            [name] => (Some(*name), None),
            // The one subresource served generically; `token` has its own route.
            [name, "status"] if kind.status => (Some(*name), Some("status")),
            _ => return None,
        };
        Some(Target {
            kind,
            version: version.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource: subresource.map(str::to_owned),
        })
    };
    match rest {
        ["namespaces", namespace, plural, tail @ ..]
            if kinds::find(group, version, plural).is_some_and(|k| k.namespaced) =>
        {
            target(plural, Some(namespace), tail)
        }
        [plural, tail @ ..] => target(plural, None, tail),
        [] => None,
    }
}

/// How the answer is encoded, from `Accept`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Object,
    Table,
}

fn answer(headers: &HeaderMap) -> Result<Answer, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    for choice in accept.split(',') {
        let mut params = choice.split(';').map(str::trim);
        let media = params.next().unwrap_or_default();
        let params: Vec<&str> = params.collect();
        let table = params.contains(&"as=Table");
        match media {
            "application/json" | "*/*" | "application/*"
                if table && params.contains(&"g=meta.k8s.io") && params.contains(&"v=v1") =>
            {
                return Ok(Answer::Table);
            }
            "application/json" | "*/*" | "application/*" | ""
                if !params.iter().any(|p| p.starts_with("as=")) =>
            {
                return Ok(Answer::Object);
            }
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(accept))
}

/// The body of a write, by `Content-Type`.
enum Body {
    Json(Value),
    MergePatch(Value),
    StrategicMergePatch(Value),
    JsonPatch(Value),
    Apply(Value),
}

fn body(kind: &Kind, headers: &HeaderMap, bytes: &[u8]) -> Result<Body, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let json = || {
        serde_json::from_slice::<Value>(bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
    };
    let yaml = || {
        serde_json::from_slice::<Value>(bytes).or_else(|_| {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("the body is not UTF-8".into()))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("the body is not YAML: {e}")))
        })
    };
    Ok(match media {
        "application/json" => Body::Json(json()?),
        "application/yaml" => Body::Json(yaml()?),
        "application/merge-patch+json" => Body::MergePatch(json()?),
        "application/strategic-merge-patch+json" => Body::StrategicMergePatch(json()?),
        "application/json-patch+json" => Body::JsonPatch(json()?),
        "application/apply-patch+yaml" => Body::Apply(yaml()?),
        "application/vnd.kubernetes.protobuf" => {
            let object = kind
                .group
                .is_empty()
                .then(|| crate::protobuf::object(kind.kind, bytes))
                .flatten();
            match object {
                Some(object) => Body::Json(object.map_err(ApiError::bad_request)?),
                None => return Err(ApiError::protobuf_not_read(kind.kind)),
            }
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    })
}

/// Query parameters of writes.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteParams {
    dry_run: Option<String>,
    field_validation: Option<String>,
    field_manager: Option<String>,
    force: Option<String>,
}

/// Serves one request to a resource path.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    method: Method,
    target: Target,
    query: Option<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let result = match (&method, target.name.is_some()) {
        (&Method::GET, false) => {
            let params: ListParams =
                match serde_urlencoded::from_str(query.as_deref().unwrap_or_default()) {
                    Ok(params) => params,
                    Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
                };
            return list_or_watch(shared, &target, &headers, params).await;
        }
        (&Method::GET, true) => get(&shared, &target, &headers),
        (&Method::POST, false) => write(&shared, &target, &method, query, &headers, &bytes),
        (&Method::PUT | &Method::PATCH, true) => {
            write(&shared, &target, &method, query, &headers, &bytes)
        }
        (&Method::DELETE, true) => delete(&shared, &target, &bytes),
        _ => Err(ApiError::method_not_allowed()),
    };
    match result {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// The object as a client of `version` sees it.
fn in_version(kind: &Kind, version: &str, mut object: Value) -> Value {
    put(
        &mut object,
        &["apiVersion"],
        Value::String(kind.api_version_of(version)),
    );
    for field in kind.dropped_in(version) {
        let (parent, leaf) = field.rsplit_once('.').unwrap_or(("", field));
        let parent = parent
            .split('.')
            .filter(|k| !k.is_empty())
            .try_fold(&mut object, |value, key| value.get_mut(key));
        if let Some(map) = parent.and_then(Value::as_object_mut) {
            map.remove(leaf);
        }
    }
    object
}

fn get(shared: &Shared, target: &Target, headers: &HeaderMap) -> Result<Response, ApiError> {
    let answer = answer(headers)?;
    let name = target.name.as_deref().unwrap_or_default();
    let store = shared.store();
    let object = store
        .get(
            target.kind,
            target.namespace.as_deref().unwrap_or_default(),
            name,
        )
        .cloned()
        .ok_or_else(|| ApiError::object_not_found(target.kind, name))?;
    let resource_version = store.resource_version();
    drop(store);
    let object = in_version(target.kind, &target.version, object);
    Ok(match answer {
        Answer::Object => axum::Json(object).into_response(),
        Answer::Table => axum::Json(table(
            target.kind,
            &[object],
            resource_version,
            None,
            true,
            "PartialObjectMetadata",
        ))
        .into_response(),
    })
}

/// A `Table` of `objects`.
fn table(
    kind: &Kind,
    objects: &[Value],
    resource_version: u64,
    continue_token: Option<String>,
    definitions: bool,
    include_object: &str,
) -> Value {
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = json!({"cells": columns::cells(kind, object, now)});
            match include_object {
                "None" => {}
                "Object" => put(&mut row, &["object"], object.clone()),
                _ => {
                    put(
                        &mut row,
                        &["object"],
                        json!({
                            "kind": "PartialObjectMetadata",
                            "apiVersion": "meta.k8s.io/v1",
                            "metadata": at(object, &["metadata"]),
                        }),
                    );
                }
            }
            row
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
    if let Some(token) = continue_token {
        put(&mut metadata, &["continue"], Value::String(token));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": if definitions { Value::Array(columns::definitions(kind)) } else { json!([]) },
        "rows": rows,
    })
}

/// How long a list or watch for a resourceVersion the server has not
/// reached waits for it before `Too large resource version` (the watch
/// cache's `blockTimeout`).
const TOO_LARGE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The resourceVersion a list or watch asks for (`None`: unset or `0`, "any").
fn requested_resource_version(params: &ListParams) -> Result<Option<u64>, ApiError> {
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
async fn wait_for_resource_version(shared: &Shared, wanted: u64) -> Result<(), ApiError> {
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

async fn list_or_watch(
    shared: Arc<Shared>,
    target: &Target,
    headers: &HeaderMap,
    params: ListParams,
) -> Response {
    let prepared = (|| {
        let answer = answer(headers)?;
        let labels = Selector::labels(params.label_selector.as_deref())?;
        let fields = Selector::fields(target.kind, params.field_selector.as_deref())?;
        let requested = requested_resource_version(&params)?;
        Ok::<_, ApiError>((answer, labels, fields, requested))
    })();
    let (answer, labels, fields, requested) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => return e.into_response(),
    };
    if let Some(wanted) = requested
        && let Err(e) = wait_for_resource_version(&shared, wanted).await
    {
        return e.into_response();
    }
    let kind = target.kind;
    let version = target.version.clone();
    let include_object = params.include_object.clone().unwrap_or_default();
    if flag(params.watch.as_ref()) {
        let render: watch::Render = match answer {
            Answer::Object => Box::new(move |object, _| in_version(kind, &version, object.clone())),
            Answer::Table => Box::new(move |object, first| {
                let object = in_version(kind, &version, object.clone());
                let rv = at(&object, &["metadata", "resourceVersion"])
                    .as_str()
                    .and_then(|rv| rv.parse().ok())
                    .unwrap_or(0);
                table(kind, &[object], rv, None, first, &include_object)
            }),
        };
        let filter = watch::Filter {
            kind,
            namespace: target.namespace.clone(),
            labels,
            fields,
        };
        let api_version = kind.api_version_of(&target.version);
        return watch::respond(shared, filter, render, api_version, &params, requested);
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
    // A continue token is the key of the last object of the previous page.
    let after = params.continue_token.as_deref().map(decode_continue);
    let mut items: Vec<Value> = store
        .list(kind, target.namespace.as_deref())
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .filter(|o| after.as_ref().is_none_or(|after| object_key(o) > *after))
        .map(|o| in_version(kind, &target.version, o))
        .collect();
    let resource_version = store.resource_version();
    drop(store);
    let mut continue_token = None;
    if let Some(limit) = params.limit.filter(|l| *l > 0 && items.len() > *l) {
        items.truncate(limit);
        continue_token = items.last().map(|o| encode_continue(&object_key(o)));
    }
    match answer {
        Answer::Table => axum::Json(table(
            kind,
            &items,
            resource_version,
            continue_token,
            true,
            &include_object,
        ))
        .into_response(),
        Answer::Object => {
            let mut metadata = json!({"resourceVersion": resource_version.to_string()});
            if let Some(token) = continue_token {
                put(&mut metadata, &["continue"], Value::String(token));
            }
            axum::Json(json!({
                "kind": format!("{}List", kind.kind),
                "apiVersion": kind.api_version_of(&target.version),
                "metadata": metadata,
                "items": items,
            }))
            .into_response()
        }
    }
}

fn object_key(object: &Value) -> (String, String) {
    let (namespace, name) = name_of(object);
    (namespace.to_owned(), name.to_owned())
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

/// Fields of `input` that `typed` (its round trip through the kind's
/// type) lost: what the schema does not declare.
fn unknown_fields(input: &Value, typed: &Value, prefix: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(given), Value::Object(kept)) => {
            for (key, value) in given {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match kept.get(key) {
                    Some(kept) => unknown_fields(value, kept, &path, out),
                    None if !value.is_null() => out.push(path),
                    None => {}
                }
            }
        }
        (Value::Array(given), Value::Array(kept)) => {
            for (i, (value, kept)) in given.iter().zip(kept).enumerate() {
                unknown_fields(value, kept, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Decodes a written object as its kind's type: the shape checked, the
/// fields the type does not declare refused (`fieldValidation=Strict`,
/// kubectl's default), reported in a `Warning` header (`Warn`, the API
/// server's default) or dropped (`Ignore`).
fn decode(
    kind: &'static Kind,
    version: &str,
    object: Value,
    validation: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let mut object = object;
    let api_version = kind.api_version_of(version);
    match object.get("apiVersion").and_then(Value::as_str) {
        None => put(
            &mut object,
            &["apiVersion"],
            Value::String(api_version.clone()),
        ),
        Some(given) if given == api_version => {}
        Some(given) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({given}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match object.get("kind").and_then(Value::as_str) {
        None => put(&mut object, &["kind"], Value::String(kind.kind.to_owned())),
        Some(given) if given == kind.kind => {}
        Some(given) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({given}) does not match the expected kind ({})",
                kind.kind
            )));
        }
    }
    let typed = kind.typed(object.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{version}\" cannot be handled as a {}: {e}",
            kind.kind, kind.kind
        ))
    })?;
    let mut unknown = Vec::new();
    unknown_fields(&object, &typed, "", &mut unknown);
    // What this version no longer has is unknown here, though the storage
    // type knows it.
    for field in kind.dropped_in(version) {
        let given = field
            .split('.')
            .try_fold(&object, |value, key| value.get(key));
        if given.is_some_and(|v| !v.is_null()) {
            unknown.push((*field).to_owned());
        }
    }
    let typed = in_version(kind, version, typed);
    match validation.unwrap_or("Warn") {
        "Strict" if !unknown.is_empty() => {
            let listed: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            return Err(ApiError::bad_request(format!(
                "{} in version \"{version}\" cannot be handled as a {}: strict decoding error: {}",
                kind.kind,
                kind.kind,
                listed.join(", ")
            )));
        }
        "Strict" | "Warn" => {
            warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")))
        }
        "Ignore" => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
    }
    Ok(typed)
}

/// The field manager of a write: as asked, or the client's name from its
/// `User-Agent`, as kube-apiserver derives it.
fn manager(params: &WriteParams, headers: &HeaderMap) -> String {
    params.field_manager.clone().unwrap_or_else(|| {
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|agent| agent.split('/').next())
            .filter(|name| !name.is_empty())
            .unwrap_or("unknown")
            .to_owned()
    })
}

fn store_error(kind: &'static Kind, name: &str, error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound => ApiError::object_not_found(kind, name),
        StoreError::AlreadyExists => ApiError::already_exists(kind, name),
        StoreError::NamespaceNotFound(namespace) => ApiError::object_not_found(
            kinds::of::<k8s_openapi::api::core::v1::Namespace>(),
            &namespace,
        ),
        StoreError::NoName => ApiError::invalid(
            kind,
            name,
            "metadata.name",
            "name or generateName is required",
        ),
        StoreError::Storage(e) => ApiError::internal(&e.to_string()),
    }
}

/// Create, update and patch: decode, apply the kind's rules, check the
/// precondition, record who changed what, store (unless `dryRun`).
fn write(
    shared: &Shared,
    target: &Target,
    method: &Method,
    query: Option<String>,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let kind = target.kind;
    let params: WriteParams = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let answer = answer(headers)?;
    let body = body(kind, headers, bytes)?;
    let dry_run = params.dry_run.as_deref() == Some("All");
    if let Some(other) = params.dry_run.as_deref().filter(|d| *d != "All") {
        return Err(ApiError::bad_request(format!(
            "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
        )));
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    let manager = manager(&params, headers);
    let mut warnings = Vec::new();
    let validation = params.field_validation.as_deref();
    let status_only = match target.subresource.as_deref() {
        None => false,
        Some("status") if kind.status => true,
        Some(_) => return Err(ApiError::no_such_path()),
    };
    let mut store = shared.store();
    let existing = target
        .name
        .as_deref()
        .and_then(|name| store.get(kind, &namespace, name).cloned())
        .map(|o| in_version(kind, &target.version, o));
    let storage_version = kind.storage_version();
    let (mut object, created) = match (method, body, existing) {
        (&Method::POST, Body::Json(object), _) => {
            let mut object = decode(kind, &target.version, object, validation, &mut warnings)?;
            place(kind, &mut object, target)?;
            behaviour::on_create(kind, &mut object, &store, &shared.node_uid)?;
            patch::record_update(
                None,
                &mut object,
                &manager,
                &kind.api_version_of(&target.version),
                None,
            );
            (object, true)
        }
        (&Method::PATCH, Body::Apply(applied), existing) => {
            if params.field_manager.is_none() {
                return Err(ApiError::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into()));
            }
            let applied = decode(kind, &target.version, applied, validation, &mut warnings)?;
            let name = target.name.clone().unwrap_or_default();
            if name_of(&applied).1 != name {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL".into(),
                ));
            }
            let force = flag(params.force.as_ref());
            let merged = patch::apply(existing.as_ref(), &applied, &manager, force).map_err(
                |conflicts| {
                    ApiError::apply_conflict(
                        kind,
                        &name,
                        conflicts
                            .into_iter()
                            .map(|c| (c.field, c.message))
                            .collect(),
                    )
                },
            )?;
            let mut object = decode(kind, &target.version, merged, Some("Ignore"), &mut warnings)?;
            match existing {
                None => {
                    place(kind, &mut object, target)?;
                    let managed = at(&object, &["metadata", "managedFields"]).clone();
                    behaviour::on_create(kind, &mut object, &store, &shared.node_uid)?;
                    put(&mut object, &["metadata", "managedFields"], managed);
                    (object, true)
                }
                Some(old) => {
                    let managed = at(&object, &["metadata", "managedFields"]).clone();
                    if status_only {
                        behaviour::on_status_update(kind, &old, &mut object)?;
                    } else {
                        behaviour::on_update(kind, &old, &mut object)?;
                    }
                    put(&mut object, &["metadata", "managedFields"], managed);
                    (object, false)
                }
            }
        }
        (&Method::PUT | &Method::PATCH, body, Some(old)) => {
            let name = target.name.clone().unwrap_or_default();
            let (new, precondition) = match body {
                Body::Json(object) if *method == Method::PUT => {
                    if name_of(&object).1 != name {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({}) does not match the name on the URL ({name})",
                            name_of(&object).1
                        )));
                    }
                    let rv = at(&object, &["metadata", "resourceVersion"])
                        .as_str()
                        .map(str::to_owned);
                    (object, rv)
                }
                Body::MergePatch(patch) => {
                    let mut object = old.clone();
                    json_patch::merge(&mut object, &patch);
                    (
                        object,
                        at(&patch, &["metadata", "resourceVersion"])
                            .as_str()
                            .map(str::to_owned),
                    )
                }
                Body::StrategicMergePatch(patch) => {
                    let mut object = old.clone();
                    patch::strategic_merge(&mut object, &patch).map_err(ApiError::bad_request)?;
                    (
                        object,
                        at(&patch, &["metadata", "resourceVersion"])
                            .as_str()
                            .map(str::to_owned),
                    )
                }
                Body::JsonPatch(patch) => {
                    let operations: json_patch::Patch =
                        serde_json::from_value(patch).map_err(|e| {
                            ApiError::bad_request(format!("the JSON patch is not valid: {e}"))
                        })?;
                    let mut object = old.clone();
                    json_patch::patch(&mut object, &operations)
                        .map_err(|e| ApiError::invalid(kind, &name, "patch", &e.to_string()))?;
                    (object, None)
                }
                _ => return Err(ApiError::unsupported_media_type("application/json")),
            };
            if let Some(rv) = precondition.filter(|rv| !rv.is_empty())
                && Some(rv.as_str()) != at(&old, &["metadata", "resourceVersion"]).as_str()
            {
                return Err(ApiError::conflict(kind, &name));
            }
            let mut new = decode(kind, &target.version, new, validation, &mut warnings)?;
            put(&mut new, &["metadata", "name"], Value::String(name));
            place(kind, &mut new, target)?;
            if status_only {
                behaviour::on_status_update(kind, &old, &mut new)?;
            } else {
                behaviour::on_update(kind, &old, &mut new)?;
            }
            patch::record_update(
                Some(&old),
                &mut new,
                &manager,
                &kind.api_version_of(&target.version),
                target.subresource.as_deref(),
            );
            (new, false)
        }
        (&Method::PUT | &Method::PATCH, _, None) => {
            return Err(ApiError::object_not_found(
                kind,
                target.name.as_deref().unwrap_or_default(),
            ));
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    put(
        &mut object,
        &["apiVersion"],
        Value::String(kind.api_version_of(storage_version)),
    );
    let name = name_of(&object).1.to_owned();
    let stored = if dry_run {
        object
    } else if created {
        store
            .create(kind, object)
            .map_err(|e| store_error(kind, &name, e))?
    } else {
        store
            .replace(kind, object)
            .map_err(|e| store_error(kind, &name, e))?
    };
    drop(store);
    let stored = in_version(kind, &target.version, stored);
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = match answer {
        Answer::Object => stored,
        Answer::Table => table(kind, &[stored], 0, None, true, "PartialObjectMetadata"),
    };
    let mut response = (code, axum::Json(body)).into_response();
    for warning in warnings {
        if let Ok(value) =
            HeaderValue::from_str(&format!("299 - \"{}\"", warning.replace('"', "\\\"")))
        {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    Ok(response)
}

/// Sets the namespace from the path, refusing a body that names another.
fn place(kind: &Kind, object: &mut Value, target: &Target) -> Result<(), ApiError> {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err(ApiError::bad_request(format!(
            "{} has no metadata",
            kind.kind
        )));
    };
    match (&target.namespace, kind.namespaced) {
        (Some(namespace), true) => {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(given) if !given.is_empty() && given != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ));
                }
                _ => {}
            }
            meta.insert("namespace".into(), Value::String(namespace.clone()));
        }
        (None, false) => {
            meta.remove("namespace");
        }
        _ => return Err(ApiError::no_such_path()),
    }
    Ok(())
}

/// `DELETE`, with the preconditions a `DeleteOptions` body may carry.
fn delete(shared: &Shared, target: &Target, bytes: &[u8]) -> Result<Response, ApiError> {
    let kind = target.kind;
    let name = target.name.as_deref().unwrap_or_default();
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let options: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("the DeleteOptions are not JSON: {e}")))?
    };
    let mut store = shared.store();
    let existing = store
        .get(kind, namespace, name)
        .ok_or_else(|| ApiError::object_not_found(kind, name))?;
    let preconditions = &at(&options, &["preconditions"]);
    let mismatch = |field: &str| {
        at(preconditions, &[field])
            .as_str()
            .is_some_and(|want| Some(want) != at(existing, &["metadata", field]).as_str())
    };
    if mismatch("resourceVersion") || mismatch("uid") {
        return Err(ApiError::conflict(kind, name));
    }
    if at(&options, &["dryRun"])
        .as_array()
        .is_some_and(|d| d.iter().any(|v| v == "All"))
    {
        let object = existing.clone();
        return Ok(axum::Json(in_version(kind, &target.version, object)).into_response());
    }
    let deleted = store
        .delete(kind, namespace, name)
        .map_err(|e| store_error(kind, name, e))?;
    drop(store);
    // Pods and namespaces answer with the object (graceful deletion); the
    // other kinds with a `Status`, as their registries do.
    if matches!(kind.kind, "Pod" | "Namespace") {
        return Ok(axum::Json(in_version(kind, &target.version, deleted)).into_response());
    }
    let mut details =
        json!({"name": name, "kind": kind.plural, "uid": at(&deleted, &["metadata", "uid"])});
    if !kind.group.is_empty() {
        put(
            &mut details,
            &["group"],
            Value::String(kind.group.to_owned()),
        );
    }
    Ok(axum::Json(json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accept_picks_json_or_a_table_and_refuses_protobuf_alone() {
        let accept = |value: &str| answer(&headers(header::ACCEPT, value));
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert!(matches!(accept(table), Ok(Answer::Table)));
        assert!(matches!(
            accept("application/vnd.kubernetes.protobuf, */*"),
            Ok(Answer::Object)
        ));
        assert!(matches!(
            accept("application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"),
            Ok(Answer::Object)
        ));
        let refused = accept("application/vnd.kubernetes.protobuf").err().unwrap();
        assert_eq!(refused.status().code, Some(406));
        assert_eq!(refused.status().reason.as_deref(), Some("NotAcceptable"));
    }

    #[test]
    fn a_body_in_a_media_type_not_read_is_a_415_status() {
        let secrets = kinds::of::<k8s_openapi::api::core::v1::Secret>();
        let deployments = kinds::of::<k8s_openapi::api::apps::v1::Deployment>();
        let protobuf = headers(header::CONTENT_TYPE, "application/vnd.kubernetes.protobuf");
        for (kind, content_type, bytes) in [
            (deployments, &protobuf, &b"k8s\0"[..]),
            (
                secrets,
                &headers(header::CONTENT_TYPE, "application/cbor"),
                b"\xa0",
            ),
        ] {
            let refused = body(kind, content_type, bytes).err().unwrap();
            assert_eq!(refused.status().code, Some(415));
            assert_eq!(
                refused.status().reason.as_deref(),
                Some("UnsupportedMediaType")
            );
        }
        let yaml = body(
            secrets,
            &headers(header::CONTENT_TYPE, "application/apply-patch+yaml"),
            b"kind: Secret\nmetadata: {name: x}\n",
        );
        assert!(matches!(yaml, Ok(Body::Apply(v)) if v["metadata"]["name"] == "x"));
    }

    #[test]
    fn paths_name_kinds_as_kube_apiserver_routes_them() {
        let target = parse("/api/v1/namespaces/shop/pods/api-0/status").unwrap();
        assert_eq!(
            (
                target.kind.plural,
                target.namespace.as_deref(),
                target.name.as_deref(),
                target.subresource.as_deref()
            ),
            ("pods", Some("shop"), Some("api-0"), Some("status"))
        );
        let namespace = parse("/api/v1/namespaces/shop").unwrap();
        assert_eq!(
            (namespace.kind.plural, namespace.name.as_deref()),
            ("namespaces", Some("shop"))
        );
        let all = parse("/apis/apps/v1/deployments").unwrap();
        assert_eq!((all.kind.kind, all.namespace), ("Deployment", None));
        let beta =
            parse("/apis/certificates.k8s.io/v1beta1/namespaces/shop/podcertificaterequests")
                .unwrap();
        assert_eq!(beta.version, "v1beta1");
        assert!(parse("/apis/apps/v2/deployments").is_none());
        assert!(parse("/api/v1/namespaces/shop/clusterrolebindings").is_none());
        assert!(parse("/api/v1/pods/a/b/c").is_none());
    }
}
