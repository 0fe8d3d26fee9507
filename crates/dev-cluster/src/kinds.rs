//! The kinds the stand-in serves, as one table: adding a kind is a line in
//! [`table`]. Everything generic — storage, list, watch, patch, discovery,
//! the OpenAPI documents, tables for `kubectl get` — reads this table;
//! per-kind code exists only where kube-apiserver has per-kind behaviour
//! (see [`crate::behaviour`]).
//!
//! Each kind is typed with its `k8s-openapi` type at the edge: a body is
//! decoded into that type and encoded back, which checks the shape (a
//! missing required field is refused as the API server refuses it) and
//! shows which fields the type does not know (`fieldValidation`).

use std::any::TypeId;
use std::sync::LazyLock;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding, MutatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::certificates::v1beta1::{ClusterTrustBundle, PodCertificateRequest};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::columns::{self, Column};

/// One served kind.
pub(crate) struct Kind {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// Versions served, the storage version first. A later version has
    /// the storage version's shape less the fields [`Kind::dropped`] names
    /// for it, as `certificates.k8s.io` promotions have been.
    pub versions: Vec<&'static str>,
    /// Fields a later version no longer has, by version (`spec.foo`).
    pub dropped: &'static [(&'static str, &'static [&'static str])],
    /// `Kind`.
    pub kind: &'static str,
    /// Plural resource name, the URL segment.
    pub plural: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// `kubectl` short names.
    pub short_names: &'static [&'static str],
    /// Discovery categories (`all` for what `kubectl get all` lists).
    pub categories: &'static [&'static str],
    /// Whether the kind has a `status` subresource: then a write to the
    /// main resource keeps the stored status, and `…/status` writes only it.
    pub status: bool,
    /// Field selectors beyond `metadata.name` and `metadata.namespace`.
    pub field_labels: &'static [&'static str],
    /// Columns of `kubectl get` (after `Name`, before `Age`).
    pub columns: &'static [Column],
    /// Decodes into the `k8s-openapi` type and encodes back.
    typed: fn(Value) -> Result<Value, String>,
    /// The `k8s-openapi` type, to find the kind of a typed value.
    type_id: TypeId,
}

impl Kind {
    fn of<T>() -> Self
    where
        T: k8s_openapi::Resource + DeserializeOwned + Serialize + 'static,
    {
        Self {
            group: T::GROUP,
            versions: vec![T::VERSION],
            dropped: &[],
            kind: T::KIND,
            plural: T::URL_PATH_SEGMENT,
            namespaced: TypeId::of::<T::Scope>()
                == TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
            short_names: &[],
            categories: &[],
            status: false,
            field_labels: &[],
            columns: &[],
            typed: round_trip::<T>,
            type_id: TypeId::of::<T>(),
        }
    }

    fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }

    fn all(mut self) -> Self {
        self.categories = &["all"];
        self
    }

    fn with_status(mut self) -> Self {
        self.status = true;
        self
    }

    fn fields(mut self, labels: &'static [&'static str]) -> Self {
        self.field_labels = labels;
        self
    }

    fn columns(mut self, columns: &'static [Column]) -> Self {
        self.columns = columns;
        self
    }

    fn also_as(
        mut self,
        versions: &[&'static str],
        dropped: &'static [(&'static str, &'static [&'static str])],
    ) -> Self {
        self.versions = versions.to_vec();
        self.dropped = dropped;
        self
    }

    /// The fields `version` does not have.
    pub fn dropped_in(&self, version: &str) -> &'static [&'static str] {
        self.dropped
            .iter()
            .find(|(v, _)| *v == version)
            .map_or(&[], |(_, fields)| fields)
    }

    /// The storage version's `apiVersion`.
    pub fn api_version(&self) -> String {
        self.api_version_of(self.storage_version())
    }

    /// The version objects are stored in (the first served).
    pub fn storage_version(&self) -> &'static str {
        self.versions.first().copied().unwrap_or_default()
    }

    /// `apiVersion` for `version`.
    pub fn api_version_of(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// `kind.lowercase`, as discovery's `singularName`.
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    /// `plural.group` (or `plural` in the core group), as RBAC and
    /// `kubectl` name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether `version` is served.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.contains(&version)
    }

    /// Decodes `object` (in the storage version) as the kind's type and
    /// encodes it back.
    pub fn typed(&self, mut object: Value) -> Result<Value, String> {
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".into(), Value::String(self.api_version()));
            map.insert("kind".into(), Value::String(self.kind.into()));
        }
        (self.typed)(object)
    }

    /// Whether `field` may be used in a field selector.
    pub fn selects_field(&self, field: &str) -> bool {
        matches!(field, "metadata.name" | "metadata.namespace")
            || self.field_labels.contains(&field)
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(object: Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(object).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Every served kind. Namespaces first: deleting one deletes what is in it.
pub(crate) fn table() -> &'static [Kind] {
    static TABLE: LazyLock<Vec<Kind>> = LazyLock::new(|| {
        vec![
            Kind::of::<Namespace>()
                .short(&["ns"])
                .with_status()
                .fields(&["status.phase"])
                .columns(columns::NAMESPACE),
            Kind::of::<Pod>()
                .short(&["po"])
                .all()
                .with_status()
                .fields(&[
                    "spec.nodeName",
                    "spec.serviceAccountName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "status.phase",
                    "status.podIP",
                    "status.nominatedNodeName",
                ])
                .columns(columns::POD),
            Kind::of::<ServiceAccount>()
                .short(&["sa"])
                .columns(columns::SERVICE_ACCOUNT),
            Kind::of::<Secret>()
                .fields(&["type"])
                .columns(columns::SECRET),
            Kind::of::<ConfigMap>()
                .short(&["cm"])
                .columns(columns::CONFIG_MAP),
            Kind::of::<Deployment>()
                .short(&["deploy"])
                .all()
                .with_status()
                .columns(columns::DEPLOYMENT),
            Kind::of::<StatefulSet>()
                .short(&["sts"])
                .all()
                .with_status()
                .columns(columns::STATEFUL_SET),
            Kind::of::<DaemonSet>()
                .short(&["ds"])
                .all()
                .with_status()
                .columns(columns::DAEMON_SET),
            Kind::of::<Job>()
                .all()
                .with_status()
                .fields(&["status.successful"])
                .columns(columns::JOB),
            Kind::of::<CronJob>()
                .short(&["cj"])
                .all()
                .with_status()
                .columns(columns::CRON_JOB),
            Kind::of::<NetworkPolicy>()
                .short(&["netpol"])
                .columns(columns::NETWORK_POLICY),
            Kind::of::<Role>(),
            Kind::of::<ClusterRole>(),
            Kind::of::<RoleBinding>().columns(columns::ROLE_BINDING),
            Kind::of::<ClusterRoleBinding>().columns(columns::ROLE_BINDING),
            Kind::of::<MutatingWebhookConfiguration>().columns(columns::WEBHOOK_CONFIGURATION),
            Kind::of::<MutatingAdmissionPolicy>(),
            Kind::of::<MutatingAdmissionPolicyBinding>(),
            Kind::of::<PodCertificateRequest>()
                // v1 (1.37) drops the fields the stub PKCS#10 request replaced.
                .also_as(
                    &["v1beta1", "v1"],
                    &[("v1", &["spec.pkixPublicKey", "spec.proofOfPossession"])],
                )
                .short(&["pcr"])
                .with_status()
                .fields(&["spec.signerName", "spec.podName", "spec.nodeName"])
                .columns(columns::POD_CERTIFICATE_REQUEST),
            Kind::of::<ClusterTrustBundle>()
                .short(&["ctb"])
                .fields(&["spec.signerName"])
                .columns(columns::CLUSTER_TRUST_BUNDLE),
        ]
    });
    &TABLE
}

/// The kind `group`/`version` serves under `plural`.
pub(crate) fn find(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    table()
        .iter()
        .find(|k| k.group == group && k.plural == plural && k.serves(version))
}

/// The kind of the `k8s-openapi` type `T`.
pub(crate) fn of<T: 'static>() -> &'static Kind {
    let id = TypeId::of::<T>();
    table()
        .iter()
        .find(|k| k.type_id == id)
        .unwrap_or_else(|| unreachable!("{} is not in the kinds table", std::any::type_name::<T>()))
}

/// The group versions served, each with its kinds, in discovery order:
/// the core group first, then groups by name, newer versions first.
pub(crate) fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for kind in table() {
        for version in &kind.versions {
            if !out.contains(&(kind.group, *version)) {
                out.push((kind.group, version));
            }
        }
    }
    out.sort_by(|a, b| {
        (!a.0.is_empty(), a.0)
            .cmp(&(!b.0.is_empty(), b.0))
            .then_with(|| version_priority(b.1).cmp(&version_priority(a.1)))
    });
    out
}

/// Kubernetes' version order: GA over beta over alpha, higher numbers first.
pub(crate) fn version_priority(version: &str) -> (u8, u32, u32) {
    let rest = version.strip_prefix('v').unwrap_or(version);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (level, minor) = if let Some(n) = tail.strip_prefix("beta") {
        (1, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n.parse().unwrap_or(0))
    } else {
        (2, 0)
    };
    (level, major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_unique_and_typed() {
        for kind in table() {
            let same = table()
                .iter()
                .filter(|k| k.group == kind.group && k.plural == kind.plural)
                .count();
            assert_eq!(same, 1, "{}", kind.qualified());
            let minimal = serde_json::json!({"metadata": {"name": "x"}});
            let typed = kind.typed(minimal);
            // Kinds with required spec fields refuse an empty object; the
            // others round-trip it with their apiVersion and kind.
            if let Ok(value) = typed {
                assert_eq!(value["kind"], kind.kind);
            }
        }
        assert_eq!(of::<Secret>().plural, "secrets");
        assert!(!of::<Namespace>().namespaced && of::<Pod>().namespaced);
    }

    #[test]
    fn versions_sort_as_kubernetes_sorts_them() {
        let mut versions = ["v1alpha1", "v1beta1", "v1", "v2beta2", "v2", "v1beta2"];
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(
            versions,
            ["v2", "v1", "v2beta2", "v1beta2", "v1beta1", "v1alpha1"]
        );
    }
}
