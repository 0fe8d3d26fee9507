//! What kube-apiserver does to an object on the write path, generic first
//! (metadata it owns, `generateName`, the status subresource, generation)
//! and then the few kinds with their own rules: a Secret's `stringData`,
//! immutable Secrets and ConfigMaps, a pod's and a namespace's initial
//! status, and a PodCertificateRequest's checks against its pod and node.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::fields::{at, put, take};
use crate::kinds::Kind;
use crate::store::{Store, name_of};

/// Now, as `metadata` timestamps are written (RFC 3339, seconds).
pub(crate) fn now() -> Value {
    serde_json::to_value(Time(jiff::Timestamp::now())).unwrap_or(Value::Null)
}

/// A namespace as the API server stores a new one.
pub(crate) fn new_namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": crate::pods::new_uid(),
            "creationTimestamp": now(),
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

fn invalid(kind: &Kind, name: &str, field: &str, message: &str) -> ApiError {
    ApiError::invalid(kind, name, field, message)
}

/// A name with a random suffix, as `generateName` asks.
fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = crate::pods::random_bytes::<5>()
        .iter()
        .map(|b| {
            ALPHABET
                .get(usize::from(*b) % ALPHABET.len())
                .map_or('x', |c| char::from(*c))
        })
        .collect();
    format!("{prefix}{suffix}")
}

/// Whether `name` is a DNS-1123 subdomain, as most kinds' names must be.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Prepares a new object: the metadata the server owns, then the kind's rules.
pub(crate) fn on_create(
    kind: &'static Kind,
    object: &mut Value,
    store: &Store,
    node_uid: &str,
) -> Result<(), ApiError> {
    let meta = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::bad_request(format!("{} has no metadata", kind.kind)))?;
    if meta
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        match meta.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                let name = generated_name(prefix);
                meta.insert("name".into(), Value::String(name));
            }
            _ => {
                return Err(invalid(
                    kind,
                    "",
                    "metadata.name",
                    "name or generateName is required",
                ));
            }
        }
    }
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !valid_name(&name) {
        return Err(invalid(
            kind,
            &name,
            "metadata.name",
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
    if meta.get("resourceVersion").is_some_and(|rv| !rv.is_null()) {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created".into(),
        ));
    }
    meta.insert("uid".into(), Value::String(crate::pods::new_uid()));
    meta.insert("creationTimestamp".into(), now());
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    if object.get("spec").is_some() {
        put(object, &["metadata", "generation"], json!(1));
    }
    if kind.status
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
    }
    match kind.kind {
        "Namespace" => {
            put(
                object,
                &["metadata", "labels", "kubernetes.io/metadata.name"],
                Value::String(name),
            );
            put(object, &["spec", "finalizers"], json!(["kubernetes"]));
            put(object, &["status"], json!({"phase": "Active"}));
        }
        "Pod" => {
            put(
                object,
                &["status"],
                json!({"phase": "Pending", "qosClass": "BestEffort"}),
            );
        }
        "Secret" => secret_defaults(object),
        "PodCertificateRequest" => pod_certificate_request(kind, object, store, node_uid)?,
        _ => {}
    }
    Ok(())
}

/// Prepares a replacement of a stored object through the main resource.
pub(crate) fn on_update(kind: &'static Kind, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    let (_, name) = name_of(old);
    for owned in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
    ] {
        match at(old, &["metadata"]).get(owned) {
            Some(value) => put(new, &["metadata", owned], value.clone()),
            None => {
                take(new, &["metadata", owned]);
            }
        }
    }
    if kind.status {
        match old.get("status") {
            Some(status) => put(new, &["status"], status.clone()),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    if new.get("spec") != old.get("spec") && old.get("spec").is_some() {
        let generation = at(old, &["metadata", "generation"]).as_i64().unwrap_or(1);
        put(new, &["metadata", "generation"], json!(generation + 1));
    }
    match kind.kind {
        "Secret" | "ConfigMap" => {
            if kind.kind == "Secret" {
                secret_defaults(new);
            }
            if at(old, &["immutable"]) == true {
                let same = ["data", "binaryData", "immutable"]
                    .iter()
                    .all(|field| old.get(field) == new.get(field));
                if !same {
                    return Err(invalid(
                        kind,
                        name,
                        "data",
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
            if kind.kind == "Secret"
                && old.get("type") != new.get("type")
                && new.get("type").is_some()
            {
                return Err(invalid(kind, name, "type", "field is immutable"));
            }
        }
        "PodCertificateRequest" if old.get("spec") != new.get("spec") => {
            return Err(invalid(kind, name, "spec", "field is immutable"));
        }
        _ => {}
    }
    Ok(())
}

/// Prepares a write to `…/status`: only the status changes.
pub(crate) fn on_status_update(
    kind: &'static Kind,
    old: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    let status = new.get("status").cloned().unwrap_or(Value::Null);
    let mut updated = old.clone();
    put(&mut updated, &["status"], status);
    if let Some(rv) = at(new, &["metadata"]).get("resourceVersion") {
        put(&mut updated, &["metadata", "resourceVersion"], rv.clone());
    }
    if kind.kind == "PodCertificateRequest" {
        pod_certificate_status(kind, old, &updated)?;
    }
    *new = updated;
    Ok(())
}

/// A Secret as the API server stores one: `stringData` is write-only,
/// its entries replace `data`'s (base64); an empty `type` is `Opaque`.
fn secret_defaults(secret: &mut Value) {
    if at(secret, &["type"]).as_str().is_none_or(str::is_empty) {
        put(secret, &["type"], json!("Opaque"));
    }
    use base64::Engine as _;
    let Some(string_data) = secret
        .as_object_mut()
        .and_then(|map| map.remove("stringData"))
    else {
        return;
    };
    if let Some(entries) = string_data.as_object() {
        for (key, value) in entries {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(value.as_str().unwrap_or_default());
            put(secret, &["data", key], Value::String(encoded));
        }
    }
}

/// The API server's checks of a new PodCertificateRequest (KEP-4317): the
/// pod named must exist with that uid, run as that service account, on
/// that node; the lifetime asked for is bounded.
fn pod_certificate_request(
    kind: &Kind,
    object: &mut Value,
    store: &Store,
    node_uid: &str,
) -> Result<(), ApiError> {
    let (namespace, name) = name_of(object);
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    let spec = &at(object, &["spec"]);
    let field = |f: &str| at(spec, &[f]).as_str().unwrap_or_default().to_owned();
    let refuse = |f: &str, message: &str| invalid(kind, &name, &format!("spec.{f}"), message);
    let signer = field("signerName");
    if signer
        .split_once('/')
        .is_none_or(|(domain, path)| domain.is_empty() || path.is_empty())
    {
        return Err(refuse(
            "signerName",
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    let pods = crate::kinds::of::<k8s_openapi::api::core::v1::Pod>();
    let pod = store
        .get(pods, &namespace, &field("podName"))
        .ok_or_else(|| refuse("podName", "pod does not exist"))?;
    if at(pod, &["metadata", "uid"]).as_str() != Some(field("podUID").as_str()) {
        return Err(refuse("podUID", "does not match the pod's uid"));
    }
    if at(pod, &["spec", "serviceAccountName"]).as_str()
        != Some(field("serviceAccountName").as_str())
    {
        return Err(refuse(
            "serviceAccountName",
            "does not match the pod's service account",
        ));
    }
    let accounts = crate::kinds::of::<k8s_openapi::api::core::v1::ServiceAccount>();
    let account_uid = store
        .get(accounts, &namespace, &field("serviceAccountName"))
        .and_then(|sa| at(sa, &["metadata", "uid"]).as_str().map(str::to_owned));
    if account_uid.as_deref() != Some(field("serviceAccountUID").as_str()) {
        return Err(refuse(
            "serviceAccountUID",
            "does not match the service account's uid",
        ));
    }
    if at(pod, &["spec", "nodeName"]).as_str() != Some(field("nodeName").as_str()) {
        return Err(refuse("nodeName", "does not match the pod's node"));
    }
    if field("nodeUID") != node_uid {
        return Err(refuse("nodeUID", "does not match the node's uid"));
    }
    let seconds = at(spec, &["maxExpirationSeconds"])
        .as_i64()
        .unwrap_or(86_400);
    let ceiling = if signer.starts_with("kubernetes.io/") {
        86_400
    } else {
        7_862_400
    };
    if !(3600..=ceiling).contains(&seconds) {
        return Err(refuse(
            "maxExpirationSeconds",
            &format!("must be between 3600 and {ceiling}"),
        ));
    }
    put(object, &["spec", "maxExpirationSeconds"], json!(seconds));
    Ok(())
}

/// A PodCertificateRequest's status: one terminal condition (Issued,
/// Denied or Failed), set once; Issued needs the chain and its times.
fn pod_certificate_status(kind: &Kind, old: &Value, new: &Value) -> Result<(), ApiError> {
    let (_, name) = name_of(old);
    let terminal = |status: &Value| -> Vec<String> {
        at(status, &["conditions"])
            .as_array()
            .map(|c| {
                c.iter()
                    .filter(|c| at(c, &["status"]) == "True")
                    .filter_map(|c| at(c, &["type"]).as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = terminal(at(old, &["status"]));
    if !before.is_empty() && at(old, &["status"]) != at(new, &["status"]) {
        return Err(invalid(
            kind,
            name,
            "status",
            "a PodCertificateRequest's status is immutable once it is Issued, Denied or Failed",
        ));
    }
    let after = terminal(at(new, &["status"]));
    let known: BTreeMap<&str, ()> = [("Issued", ()), ("Denied", ()), ("Failed", ())].into();
    if after.iter().any(|t| !known.contains_key(t.as_str())) || after.len() > 1 {
        return Err(invalid(
            kind,
            name,
            "status.conditions",
            "at most one of Issued, Denied or Failed",
        ));
    }
    if after.first().is_some_and(|t| t == "Issued") {
        for field in [
            "certificateChain",
            "notBefore",
            "notAfter",
            "beginRefreshAt",
        ] {
            if at(new, &["status", field])
                .as_str()
                .is_none_or(str::is_empty)
            {
                return Err(invalid(
                    kind,
                    name,
                    &format!("status.{field}"),
                    "Required value: an Issued request needs it",
                ));
            }
        }
    }
    Ok(())
}
