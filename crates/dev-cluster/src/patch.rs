//! The four patch types kube-apiserver accepts, and the field ownership
//! (`metadata.managedFields`) server-side apply keeps:
//! - JSON merge patch (RFC 7386) and JSON patch (RFC 6902), by `json-patch`;
//! - strategic merge patch, as `kubectl apply` and `kubectl patch` send
//!   it: maps merge, lists of objects merge on their patch merge key (the
//!   `patchMergeKey` tags of the Kubernetes API types, [`MERGE_KEYS`]),
//!   other lists replace, `null` and `$patch: delete` remove, and the
//!   `$setElementOrder`, `$retainKeys` and `$deleteFromPrimitiveList`
//!   directives are honoured;
//! - server-side apply: the applied configuration sets the fields it
//!   names; the fields a manager applied before and no longer names are
//!   removed unless another manager owns them; a field another manager
//!   owns with a different value is a conflict (`409`) unless forced.
//!
//! Field sets are leaves of the object tree; every list is atomic here (a
//! real API server tracks list items of associative lists one by one), so
//! two managers applying different containers of one pod conflict where a
//! real server would merge them.

use std::collections::BTreeSet;

use crate::fields::{at, put, take};
use serde_json::{Map, Value, json};

/// The merge key of each list the Kubernetes API types mark
/// `patchStrategy: merge`, by field name.
const MERGE_KEYS: &[(&str, &str)] = &[
    ("containers", "name"),
    ("initContainers", "name"),
    ("ephemeralContainers", "name"),
    ("env", "name"),
    ("volumes", "name"),
    ("volumeMounts", "mountPath"),
    ("volumeDevices", "devicePath"),
    ("ports", "containerPort"),
    ("imagePullSecrets", "name"),
    ("conditions", "type"),
    ("ownerReferences", "uid"),
    ("hostAliases", "ip"),
    ("topologySpreadConstraints", "topologyKey"),
    ("secrets", "name"),
    ("resourceClaims", "name"),
];

/// Lists of scalars the API types merge as sets.
const SET_LISTS: &[&str] = &["finalizers"];

/// Applies a strategic merge patch to `target`.
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Some(patch) = patch.as_object() else {
        *target = strip_directives(patch);
        return Ok(());
    };
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip_directives(&Value::Object(patch.clone()));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => return Err(format!("unknown patch type: {other}")),
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let mut retain: Option<Vec<String>> = None;
    for (key, value) in patch {
        if key == "$retainKeys" {
            retain = value.as_array().map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            });
            continue;
        }
        if key.starts_with("$setElementOrder/") || key == "$patch" {
            continue;
        }
        let Some(map) = target.as_object_mut() else {
            continue;
        };
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<Value> = value.as_array().cloned().unwrap_or_default();
            if let Some(list) = map.get_mut(field).and_then(Value::as_array_mut) {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if value.is_null() {
            map.remove(key);
            continue;
        }
        let slot = map.entry(key.clone()).or_insert(Value::Null);
        match (slot.is_array(), value.as_array()) {
            (true, Some(items)) => merge_list(key, slot, items)?,
            _ if value.is_object() => {
                strategic_merge(slot, value)?;
                if slot.is_null() {
                    map.remove(key);
                }
            }
            _ => *slot = strip_directives(value),
        }
    }
    if let (Some(keys), Some(map)) = (retain, target.as_object_mut()) {
        map.retain(|k, _| keys.contains(k));
    }
    Ok(())
}

fn merge_list(field: &str, target: &mut Value, items: &[Value]) -> Result<(), String> {
    let Some(list) = target.as_array_mut() else {
        return Ok(());
    };
    if SET_LISTS.contains(&field) {
        for item in items {
            if !list.contains(item) {
                list.push(item.clone());
            }
        }
        return Ok(());
    }
    let Some((_, merge_key)) = MERGE_KEYS.iter().find(|(f, _)| *f == field) else {
        *list = items.iter().map(strip_directives).collect();
        return Ok(());
    };
    if items
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *list = items
            .iter()
            .filter(|item| item.get("$patch").is_none())
            .map(strip_directives)
            .collect();
        return Ok(());
    }
    for item in items {
        let key = item.get(*merge_key).cloned().ok_or_else(|| {
            format!("map: {item} does not contain declared merge key: {merge_key}")
        })?;
        let position = list
            .iter()
            .position(|existing| existing.get(*merge_key) == Some(&key));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                if let Some(existing) = list.get_mut(i) {
                    strategic_merge(existing, item)?;
                }
            }
            (None, false) => list.push(strip_directives(item)),
        }
    }
    Ok(())
}

fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// A path to a leaf of an object.
pub type Path = Vec<String>;

/// The fields a manager owns: the leaves of what it wrote, leaving out
/// what identifies the object (`apiVersion`, `kind`, name, namespace) and
/// what the server owns.
pub fn leaves(object: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    collect(object, &mut Vec::new(), &mut out);
    out.retain(|path| {
        let first = path.first().map(String::as_str);
        match first {
            Some("apiVersion" | "kind" | "status") | None => false,
            Some("metadata") => matches!(
                path.get(1).map(String::as_str),
                Some("labels" | "annotations" | "finalizers" | "ownerReferences")
            ),
            Some(_) => true,
        }
    });
    out
}

fn collect(value: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                prefix.push(key.clone());
                collect(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Null => {}
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// `fieldsV1` of a field set: `{"f:spec": {"f:replicas": {}}}`.
fn fields_v1(fields: &BTreeSet<Path>) -> Value {
    let mut root = Value::Object(Map::new());
    for path in fields {
        let keyed: Path = path.iter().map(|k| format!("f:{k}")).collect();
        if at(&root, &keyed).is_null() {
            put(&mut root, &keyed, json!({}));
        }
    }
    root
}

/// The field set back from `fieldsV1`.
fn from_fields_v1(value: &Value) -> BTreeSet<Path> {
    fn walk(value: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
        match value.as_object() {
            Some(map) if !map.is_empty() => {
                for (key, child) in map {
                    let Some(name) = key.strip_prefix("f:") else {
                        continue;
                    };
                    prefix.push(name.to_owned());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// One `managedFields` entry, read.
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Value,
    fields: BTreeSet<Path>,
    subresource: Option<String>,
}

fn entries(object: &Value) -> Vec<Entry> {
    at(object, &["metadata", "managedFields"])
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| Entry {
                    manager: at(e, &["manager"]).as_str().unwrap_or_default().to_owned(),
                    operation: at(e, &["operation"])
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    api_version: at(e, &["apiVersion"])
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    time: at(e, &["time"]).clone(),
                    fields: from_fields_v1(at(e, &["fieldsV1"])),
                    subresource: at(e, &["subresource"]).as_str().map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(object: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut entry = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(&e.fields),
            });
            if let Some(sub) = &e.subresource {
                put(&mut entry, &["subresource"], json!(sub));
            }
            entry
        })
        .collect();
    if list.is_empty() {
        take(object, &["metadata", "managedFields"]);
    } else {
        put(object, &["metadata", "managedFields"], Value::Array(list));
    }
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// Who changed what, for a write that is not an apply: the leaves that
/// differ between `old` and `new` go to `manager` (operation `Update`)
/// and leave every other manager.
pub(crate) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
) {
    let before = old.map(leaves).unwrap_or_default();
    let after = leaves(new);
    let changed: BTreeSet<Path> = after
        .iter()
        .filter(|p| old.map(|o| at(o, p)) != Some(at(new, p)))
        .cloned()
        .collect();
    let removed: BTreeSet<Path> = before.difference(&after).cloned().collect();
    let mut list = old.map(entries).unwrap_or_default();
    for entry in &mut list {
        entry
            .fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        let now = crate::behaviour::now();
        match list.iter_mut().find(|e| {
            e.manager == manager
                && e.operation == "Update"
                && e.subresource.as_deref() == subresource
        }) {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.time = now;
            }
            None => list.push(Entry {
                manager: manager.to_owned(),
                operation: "Update".into(),
                api_version: api_version.to_owned(),
                time: now,
                fields: changed,
                subresource: subresource.map(str::to_owned),
            }),
        }
    }
    write_entries(new, &list);
}

/// A field another manager owns that an apply would change.
#[derive(Debug)]
pub struct Conflict {
    /// `.spec.replicas`.
    pub field: String,
    /// `conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`.
    pub message: String,
}

/// Server-side apply of `applied` by `manager` onto `live` (`None`: the
/// object does not exist yet). Returns the new object, or the conflicts.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let api_version = at(applied, &["apiVersion"])
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let wanted = leaves(applied);
    let mut list = live.map(entries).unwrap_or_default();
    let mut object = live.cloned().unwrap_or_else(|| {
        json!({
            "apiVersion": at(applied, &["apiVersion"]),
            "kind": at(applied, &["kind"]),
            "metadata": {"name": at(applied, &["metadata", "name"]), "namespace": at(applied, &["metadata", "namespace"])},
        })
    });
    let mut conflicts = Vec::new();
    for entry in list.iter_mut().filter(|e| e.manager != manager) {
        let contested: Vec<Path> = entry
            .fields
            .iter()
            .filter(|p| wanted.contains(*p) && at(&object, p) != at(applied, p))
            .cloned()
            .collect();
        if force {
            entry.fields.retain(|p| !contested.contains(p));
        } else {
            conflicts.extend(contested.iter().map(|p| Conflict {
                field: dotted(p),
                message: format!(
                    "conflict with \"{}\" using {}: {}",
                    entry.manager,
                    entry.api_version,
                    dotted(p)
                ),
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let before: BTreeSet<Path> = list
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply")
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    for path in before.difference(&wanted) {
        let owned_elsewhere = list
            .iter()
            .any(|e| e.manager != manager && e.fields.contains(path));
        if !owned_elsewhere {
            take(&mut object, path);
        }
    }
    for path in &wanted {
        put(&mut object, path, at(applied, path).clone());
    }
    list.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    for entry in &mut list {
        entry.fields.retain(|p| !wanted.contains(p));
    }
    list.push(Entry {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        api_version,
        time: crate::behaviour::now(),
        fields: wanted,
        subresource: None,
    });
    write_entries(&mut object, &list);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategic_merge_merges_containers_by_name_and_honours_directives() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "app", "image": "a:1"},
            {"name": "sidecar", "image": "s:1"},
        ], "tolerations": [{"key": "x"}]}, "metadata": {"finalizers": ["a"]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "app", "image": "a:2"}, {"name": "sidecar", "$patch": "delete"}],
            "tolerations": [{"key": "y"}],
        }, "metadata": {"finalizers": ["b"]}});
        strategic_merge(&mut pod, &patch).unwrap();
        assert_eq!(
            pod,
            json!({"spec": {"containers": [{"name": "app", "image": "a:2"}], "tolerations": [{"key": "y"}]},
                   "metadata": {"finalizers": ["a", "b"]}})
        );
        let mut secret = json!({"data": {"a": "1", "b": "2"}});
        strategic_merge(&mut secret, &json!({"data": {"a": null, "c": "3"}})).unwrap();
        assert_eq!(secret, json!({"data": {"b": "2", "c": "3"}}));
        assert!(
            strategic_merge(&mut pod, &json!({"spec": {"containers": [{"image": "x"}]}})).is_err()
        );
    }

    #[test]
    fn apply_owns_fields_conflicts_and_forces() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}});
        let live = apply(None, &first, "alice", false).ok().unwrap();
        assert_eq!(at(&live, &["data"]), &json!({"x": "1", "y": "2"}));
        assert_eq!(
            at(&live, &["metadata", "managedFields"])[0]["fieldsV1"],
            json!({"f:data": {"f:x": {}, "f:y": {}}, "f:metadata": {"f:labels": {"f:a": {}}}})
        );
        // Bob takes x with another value: a conflict, unless forced.
        let bob = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "9"}});
        let conflicts = apply(Some(&live), &bob, "bob", false).err().unwrap();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(
            conflicts[0].message,
            "conflict with \"alice\" using v1: .data.x"
        );
        let live = apply(Some(&live), &bob, "bob", true).ok().unwrap();
        assert_eq!(at(&live, &["data", "x"]), "9");
        // Alice stops naming y and x: y goes, x stays (Bob owns it).
        let alice = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}});
        let live = apply(Some(&live), &alice, "alice", false).ok().unwrap();
        assert_eq!(at(&live, &["data"]), &json!({"x": "9"}));
    }
}
