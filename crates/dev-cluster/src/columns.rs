//! What `kubectl get` shows: the `Table` kube-apiserver answers when asked
//! with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, with the
//! columns its printers define for each kind (`Name` first, `Age` last).

use serde_json::{Value, json};

use crate::fields::at;
use crate::kinds::Kind;

/// One column after `Name`.
pub(crate) struct Column {
    /// Header.
    pub name: &'static str,
    /// `string` or `integer`.
    pub kind: &'static str,
    /// 0: always shown; 1: with `-o wide`.
    pub priority: u8,
    /// The cell of one object.
    pub cell: fn(&Value) -> Value,
}

const fn column(name: &'static str, cell: fn(&Value) -> Value) -> Column {
    Column {
        name,
        kind: "string",
        priority: 0,
        cell,
    }
}

const fn number(name: &'static str, cell: fn(&Value) -> Value) -> Column {
    Column {
        name,
        kind: "integer",
        priority: 0,
        cell,
    }
}

const fn wide(name: &'static str, cell: fn(&Value) -> Value) -> Column {
    Column {
        name,
        kind: "string",
        priority: 1,
        cell,
    }
}

/// The value at a dotted path (`status.phase`).
fn dotted<'v>(object: &'v Value, path: &str) -> &'v Value {
    let keys: Vec<&str> = path.split('.').collect();
    at(object, &keys)
}

fn text(object: &Value, path: &str, default: &str) -> Value {
    Value::String(dotted(object, path).as_str().unwrap_or(default).to_owned())
}

fn int(object: &Value, path: &str) -> i64 {
    dotted(object, path).as_i64().unwrap_or(0)
}

fn count(object: &Value, path: &str) -> Value {
    let value = dotted(object, path);
    let n = value
        .as_object()
        .map(serde_json::Map::len)
        .or_else(|| value.as_array().map(Vec::len))
        .unwrap_or(0);
    json!(n)
}

fn ratio(object: &Value, ready: &str, desired: &str) -> Value {
    Value::String(format!("{}/{}", int(object, ready), int(object, desired)))
}

/// `Name`, the kind's columns, `Age`: the column definitions of a Table.
pub(crate) fn definitions(kind: &Kind) -> Vec<Value> {
    let definition = |name: &str, kind: &str, format: &str, priority: u8| json!({"name": name, "type": kind, "format": format, "description": "", "priority": priority});
    std::iter::once(definition("Name", "string", "name", 0))
        .chain(
            kind.columns
                .iter()
                .map(|c| definition(c.name, c.kind, "", c.priority)),
        )
        .chain(std::iter::once(definition("Age", "string", "", 0)))
        .collect()
}

/// The cells of one object's row, in the order of [`definitions`].
pub(crate) fn cells(kind: &Kind, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let age = dotted(object, "metadata.creationTimestamp")
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or_else(
            || "<unknown>".to_owned(),
            |created| human_duration(now, created),
        );
    std::iter::once(text(object, "metadata.name", ""))
        .chain(kind.columns.iter().map(|c| (c.cell)(object)))
        .chain(std::iter::once(Value::String(age)))
        .collect()
}

/// `HumanDuration` of Kubernetes' `util/duration`: how `kubectl get`
/// writes an age.
pub(crate) fn human_duration(now: jiff::Timestamp, then: jiff::Timestamp) -> String {
    let seconds = now.as_second() - then.as_second();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

pub(crate) const NAMESPACE: &[Column] = &[column("Status", |o| text(o, "status.phase", ""))];

fn container_statuses(pod: &Value) -> Vec<&Value> {
    dotted(pod, "status.containerStatuses")
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// `READY` of a pod: ready app containers over app containers.
fn pod_ready(pod: &Value) -> Value {
    let total = dotted(pod, "spec.containers")
        .as_array()
        .map_or(0, Vec::len);
    let ready = container_statuses(pod)
        .iter()
        .filter(|s| at(s, &["ready"]) == true)
        .count();
    Value::String(format!("{ready}/{total}"))
}

/// `STATUS` of a pod: the phase, or why a container is not running.
fn pod_status(pod: &Value) -> Value {
    if !dotted(pod, "metadata.deletionTimestamp").is_null() {
        return Value::String("Terminating".into());
    }
    let waiting = container_statuses(pod).into_iter().find_map(|s| {
        dotted(s, "state.waiting.reason")
            .as_str()
            .or_else(|| dotted(s, "state.terminated.reason").as_str())
    });
    match waiting {
        Some(reason) => Value::String(reason.to_owned()),
        None => text(pod, "status.phase", "Pending"),
    }
}

fn pod_restarts(pod: &Value) -> Value {
    let restarts: i64 = container_statuses(pod)
        .iter()
        .map(|s| at(s, &["restartCount"]).as_i64().unwrap_or(0))
        .sum();
    json!(restarts)
}

pub(crate) const POD: &[Column] = &[
    column("Ready", pod_ready),
    column("Status", pod_status),
    number("Restarts", pod_restarts),
    wide("IP", |o| text(o, "status.podIP", "<none>")),
    wide("Node", |o| text(o, "spec.nodeName", "<none>")),
];

pub(crate) const SERVICE_ACCOUNT: &[Column] = &[number("Secrets", |o| count(o, "secrets"))];

pub(crate) const SECRET: &[Column] = &[
    column("Type", |o| text(o, "type", "Opaque")),
    number("Data", |o| {
        let data = dotted(o, "data")
            .as_object()
            .map_or(0, serde_json::Map::len);
        json!(data)
    }),
];

pub(crate) const CONFIG_MAP: &[Column] = &[number("Data", |o| {
    let data = dotted(o, "data")
        .as_object()
        .map_or(0, serde_json::Map::len);
    let binary = dotted(o, "binaryData")
        .as_object()
        .map_or(0, serde_json::Map::len);
    json!(data + binary)
})];

pub(crate) const DEPLOYMENT: &[Column] = &[
    column("Ready", |o| {
        ratio(o, "status.readyReplicas", "spec.replicas")
    }),
    number("Up-to-date", |o| json!(int(o, "status.updatedReplicas"))),
    number("Available", |o| json!(int(o, "status.availableReplicas"))),
];

pub(crate) const STATEFUL_SET: &[Column] = &[column("Ready", |o| {
    ratio(o, "status.readyReplicas", "spec.replicas")
})];

pub(crate) const DAEMON_SET: &[Column] = &[
    number("Desired", |o| {
        json!(int(o, "status.desiredNumberScheduled"))
    }),
    number("Current", |o| {
        json!(int(o, "status.currentNumberScheduled"))
    }),
    number("Ready", |o| json!(int(o, "status.numberReady"))),
    number("Up-to-date", |o| {
        json!(int(o, "status.updatedNumberScheduled"))
    }),
    number("Available", |o| json!(int(o, "status.numberAvailable"))),
];

pub(crate) const JOB: &[Column] = &[column("Completions", |o| {
    let completions = dotted(o, "spec.completions").as_i64().unwrap_or(1);
    Value::String(format!("{}/{completions}", int(o, "status.succeeded")))
})];

pub(crate) const CRON_JOB: &[Column] = &[
    column("Schedule", |o| text(o, "spec.schedule", "")),
    column("Suspend", |o| {
        Value::String(
            dotted(o, "spec.suspend")
                .as_bool()
                .unwrap_or(false)
                .to_string(),
        )
    }),
    number("Active", |o| count(o, "status.active")),
];

pub(crate) const NETWORK_POLICY: &[Column] = &[column("Pod-Selector", |o| {
    let labels = dotted(o, "spec.podSelector.matchLabels")
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Value::String(if labels.is_empty() {
        "<none>".into()
    } else {
        labels
    })
})];

pub(crate) const ROLE_BINDING: &[Column] = &[column("Role", |o| {
    Value::String(format!(
        "{}/{}",
        dotted(o, "roleRef.kind").as_str().unwrap_or_default(),
        dotted(o, "roleRef.name").as_str().unwrap_or_default()
    ))
})];

pub(crate) const WEBHOOK_CONFIGURATION: &[Column] = &[number("Webhooks", |o| count(o, "webhooks"))];

pub(crate) const POD_CERTIFICATE_REQUEST: &[Column] = &[
    column("Pod", |o| text(o, "spec.podName", "")),
    column("Signer", |o| text(o, "spec.signerName", "")),
    column("State", |o| {
        let state = dotted(o, "status.conditions")
            .as_array()
            .and_then(|c| c.iter().find(|c| at(c, &["status"]) == "True"))
            .and_then(|c| at(c, &["type"]).as_str())
            .unwrap_or("Pending");
        Value::String(state.to_owned())
    }),
];

pub(crate) const CLUSTER_TRUST_BUNDLE: &[Column] = &[column("SignerName", |o| {
    text(o, "spec.signerName", "<none>")
})];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_writes_them() {
        let now = jiff::Timestamp::from_second(10_000_000).unwrap();
        let ago =
            |s: i64| human_duration(now, jiff::Timestamp::from_second(10_000_000 - s).unwrap());
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (185, "3m5s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (47 * 3600, "47h"),
            (50 * 3600, "2d2h"),
            (9 * 86400, "9d"),
            (800 * 86400, "2y70d"),
        ];
        for (seconds, want) in cases {
            assert_eq!(ago(seconds), want, "{seconds}s");
        }
        assert_eq!(
            human_duration(now, jiff::Timestamp::from_second(10_000_005).unwrap()),
            "<invalid>"
        );
    }
}
