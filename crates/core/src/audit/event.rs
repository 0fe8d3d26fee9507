//! What an audit record records, typed: the [`Event`] and, per event, the
//! struct of its details.
//!
//! On the wire (and in the Merkle leaves) a record's `event` is its code and
//! its `details` a flat JSON object of strings, as every record ever written
//! has been; the structs here are how the server writes those details and
//! how a reader (the CLI, evidence, the console) reads them back, so that a
//! key cannot be misspelled on one side. Reading is lenient in the way a
//! log that outlives its writer needs: a key a struct does not name is
//! ignored, a field a record lacks is `None`, and an event or action code
//! this build does not know reads as [`Code::Unknown`].
//!
//! | event | details |
//! |---|---|
//! | `session`, `unwrap`, `rotate_key`, `audit_mode` | [`ReleaseDetails`] (or [`RefusalCount`] when `aggregate` is set) |
//! | `session_revoked` | [`PodGoneDetails`] |
//! | `admin` | [`AdminDetails`] |
//! | `audit_key_rotated` | [`KeyRotationDetails`] |

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::reason::{Code, codes};

codes! {
    /// What an audit record records.
    pub enum Event {
        /// `POST /v1/sessions`: the four gates, the pin and the session.
        Session = "session",
        /// `POST /v1/unwrap`: one record per capsule released (or one refusal).
        Unwrap = "unwrap",
        /// `POST /v1/sessions/rotate-key`: the session moved to a new key.
        RotateKey = "rotate_key",
        /// A release that strict mode would refuse, allowed by the policy's audit mode.
        AuditMode = "audit_mode",
        /// The pod view saw a pod go or a container restart: its pin and sessions ended.
        SessionRevoked = "session_revoked",
        /// An admin request (its [`AdminAction`] in the details).
        Admin = "admin",
        /// The log handed from one audit key to the next (see [`super::key_rotation_record`]).
        AuditKeyRotated = "audit_key_rotated",
    }
}

codes! {
    /// Which admin action an `admin` record is about.
    pub enum AdminAction {
        /// Register a cluster.
        ClusterAdd = "cluster_add",
        /// Change a registered cluster (`--replace`).
        ClusterReplace = "cluster_replace",
        /// Remove a cluster with its keys, policies and sessions.
        ClusterRemove = "cluster_remove",
        /// List clusters (audited only when refused).
        ClusterList = "cluster_list",
        /// Show a cluster (audited only when refused).
        ClusterShow = "cluster_show",
        /// Create an API key.
        ApiKeyCreate = "apikey_create",
        /// List API keys (audited only when refused).
        ApiKeyList = "apikey_list",
        /// Revoke an API key.
        ApiKeyRevoke = "apikey_revoke",
        /// Set a release policy.
        PolicySet = "policy_set",
        /// Add or remove a policy's approved digests.
        PolicyDigests = "policy_digests",
        /// List policies (audited only when refused).
        PolicyList = "policy_list",
        /// Export the audit log.
        AuditExport = "audit_export",
    }
}

/// Details a record's event is written with and read back as.
pub trait Details: Serialize + DeserializeOwned + Default {}

/// Why a record's details could not be read as a details struct.
#[derive(Debug, thiserror::Error)]
#[error("audit record details do not read as {wanted}: {source}")]
pub struct DetailsError {
    wanted: &'static str,
    #[source]
    source: serde_json::Error,
}

/// The flat string map a record stores for `details`: a field that is
/// `None` is left out (a details struct reads a missing key as `None`).
pub fn to_map<T: Details>(details: &T) -> BTreeMap<String, String> {
    let serde_json::Value::Object(fields) = serde_json::to_value(details).unwrap_or_default()
    else {
        return BTreeMap::new();
    };
    fields
        .into_iter()
        .filter_map(|(key, value)| match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(text) => Some((key, text)),
            other => Some((key, other.to_string())),
        })
        .collect()
}

/// A record's details read as `T`.
pub fn from_map<T: Details>(map: &BTreeMap<String, String>) -> Result<T, DetailsError> {
    let object = map
        .iter()
        .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|source| DetailsError {
        wanted: std::any::type_name::<T>(),
        source,
    })
}

/// A number or flag kept as its text in the details map.
mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.collect_str(value),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        Option::<String>::deserialize(deserializer)?
            .map(|text| text.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A list kept as its items joined with `,` in the details map (items are
/// names, kids and digests, which hold no comma).
mod comma_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Vec<String>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(items) => serializer.serialize_str(&items.join(",")),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<String>>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(|text| {
            text.split(',')
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        }))
    }
}

/// How a session's key came to be pinned to its container instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enrolment {
    /// The container instance's first key.
    Pinned,
    /// The key already pinned to it, again.
    SameKey,
    /// A restarted container's new key; the old instance's pin and sessions ended.
    AfterRestart,
}

/// One release request (`session`, `unwrap`, `rotate_key`, `audit_mode`),
/// filled in as its gates pass: a refusal's record says how far it got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReleaseDetails {
    /// The session, as a short non-reversible label.
    pub session: Option<String>,
    /// Gate 1: the API key's id.
    pub api_key: Option<String>,
    /// The cluster the API key is bound to.
    pub cluster: Option<String>,
    /// Gate 2: the token's namespace.
    pub namespace: Option<String>,
    /// The token's service account.
    pub service_account: Option<String>,
    /// The token's pod.
    pub pod: Option<String>,
    /// The token's pod uid.
    pub pod_uid: Option<String>,
    /// The token's credential id, when the API server sets one.
    pub credential_id: Option<String>,
    /// The token's node, when bound to one.
    pub node: Option<String>,
    /// The token's node uid.
    pub node_uid: Option<String>,
    /// Gate 3: the DPoP key's thumbprint.
    pub jkt: Option<String>,
    /// The container the key is pinned to.
    pub container: Option<String>,
    /// The container instance the key is pinned to.
    pub container_id: Option<String>,
    /// How the key was pinned.
    pub enrolment: Option<Enrolment>,
    /// After a restart: the old instance's key.
    pub replaced_jkt: Option<String>,
    /// After a restart: the old instance.
    pub replaced_container_id: Option<String>,
    /// After a restart: how many of the old instance's sessions ended.
    #[serde(with = "as_text")]
    pub sessions_revoked: Option<u64>,
    /// The capsule released (or refused).
    pub capsule: Option<String>,
    /// The Secret the released capsule holds a value of.
    pub secret: Option<String>,
    /// The Secret's key.
    pub secret_key: Option<String>,
    /// `rotate_key`: the session's new key.
    pub new_jkt: Option<String>,
}

impl Details for ReleaseDetails {}

/// Refusals of one kind from one source, before any gate could attribute
/// them (malformed requests, missing credentials): the first is recorded at
/// once, the repeats of a window as one record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefusalCount {
    /// The source address, `other` past the window's limit, or `unknown`.
    pub source: Option<String>,
    /// `first` or `repeats`.
    pub aggregate: Option<String>,
    /// How many refusals the record stands for.
    #[serde(with = "as_text")]
    pub count: Option<u64>,
    /// The first one's time, Unix milliseconds.
    #[serde(with = "as_text")]
    pub first_ms: Option<i64>,
    /// The last one's time, Unix milliseconds.
    #[serde(with = "as_text")]
    pub last_ms: Option<i64>,
}

impl Details for RefusalCount {}

/// A pod gone or a container restarted, seen by the pod view: the pin of
/// the instance dropped and its sessions revoked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodGoneDetails {
    /// The cluster.
    pub cluster: Option<String>,
    /// The pod's namespace.
    pub namespace: Option<String>,
    /// The pod.
    pub pod: Option<String>,
    /// The pod's uid.
    pub pod_uid: Option<String>,
    /// The restarted container.
    pub container: Option<String>,
    /// The instance that stopped.
    pub container_id: Option<String>,
    /// Whether a pin was dropped.
    #[serde(with = "as_text")]
    pub pin_dropped: Option<bool>,
    /// How many sessions ended.
    #[serde(with = "as_text")]
    pub sessions_revoked: Option<u64>,
}

impl Details for PodGoneDetails {}

/// An admin request: its action and what it named, and for a cluster's
/// registration everything the registration trusts, old and new.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminDetails {
    /// The action.
    pub action: Option<Code<AdminAction>>,
    /// The cluster.
    pub cluster: Option<String>,
    /// The namespace of an API key or policy.
    pub namespace: Option<String>,
    /// The service account of an API key or policy.
    pub service_account: Option<String>,
    /// The API key's id.
    pub api_key: Option<String>,
    /// The cluster's API server.
    pub api_server_url: Option<String>,
    /// SHA-256 fingerprints of the pinned CA's certificates.
    #[serde(with = "comma_list")]
    pub ca_sha256: Option<Vec<String>>,
    /// The token audiences accepted.
    #[serde(with = "comma_list")]
    pub audiences: Option<Vec<String>>,
    /// Whether tokens may carry other audiences too.
    #[serde(with = "as_text")]
    pub allow_extra_audiences: Option<bool>,
    /// The longest token lifetime accepted.
    #[serde(with = "as_text")]
    pub max_token_lifetime_secs: Option<i64>,
    /// Where the JWKS came from: `given`, or `fetched once from the cluster`.
    pub jwks_source: Option<String>,
    /// Replaced: the old API server.
    pub old_api_server_url: Option<String>,
    /// Replaced: the old CA's fingerprints.
    #[serde(with = "comma_list")]
    pub old_ca_sha256: Option<Vec<String>>,
    /// Replaced: the old issuer.
    pub old_issuer: Option<String>,
    /// Replaced: the old audiences.
    #[serde(with = "comma_list")]
    pub old_audiences: Option<Vec<String>>,
    /// Replaced: whether other audiences were accepted.
    #[serde(with = "as_text")]
    pub old_allow_extra_audiences: Option<bool>,
    /// Replaced: the old longest token lifetime.
    #[serde(with = "as_text")]
    pub old_max_token_lifetime_secs: Option<i64>,
    /// Replaced: the old pinned key ids.
    #[serde(with = "comma_list")]
    pub old_pinned_kids: Option<Vec<String>>,
    /// The reader token's rights when only pod reads: `get, list, watch
    /// pods`; or `not checked: <why>`.
    pub token_rights: Option<String>,
    /// The reader token's rights beyond reading pods, `; `-separated.
    pub token_rights_beyond_pods: Option<String>,
    /// Whether a broader (or unchecked) reader token was accepted by name.
    #[serde(with = "as_text")]
    pub allow_broad_token: Option<bool>,
    /// The issuer pinned.
    pub issuer: Option<String>,
    /// The key ids pinned.
    #[serde(with = "comma_list")]
    pub pinned_kids: Option<Vec<String>>,
    /// A policy's approved digests.
    #[serde(with = "comma_list")]
    pub digests: Option<Vec<String>>,
    /// Whether the policy is in audit mode.
    #[serde(with = "as_text")]
    pub audit_mode: Option<bool>,
    /// Whether the policy requires a server nonce.
    #[serde(with = "as_text")]
    pub require_nonce: Option<bool>,
    /// Digests added.
    #[serde(with = "comma_list")]
    pub added: Option<Vec<String>>,
    /// Digests removed.
    #[serde(with = "comma_list")]
    pub removed: Option<Vec<String>>,
}

impl Details for AdminDetails {}

/// The hand-over from one audit key to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyRotationDetails {
    /// The key that signed the log until this record.
    pub old_public_key: Option<String>,
    /// The key that signs it after.
    pub new_public_key: Option<String>,
}

impl Details for KeyRotationDetails {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_write_the_flat_strings_records_always_held_and_read_back() {
        let details = ReleaseDetails {
            session: Some("abc".into()),
            sessions_revoked: Some(2),
            enrolment: Some(Enrolment::AfterRestart),
            ..ReleaseDetails::default()
        };
        let map = to_map(&details);
        assert_eq!(
            map,
            BTreeMap::from([
                ("session".to_owned(), "abc".to_owned()),
                ("sessions_revoked".to_owned(), "2".to_owned()),
                ("enrolment".to_owned(), "after_restart".to_owned()),
            ])
        );
        assert_eq!(from_map::<ReleaseDetails>(&map).unwrap(), details);
    }

    #[test]
    fn lists_join_with_commas_and_an_unknown_action_or_key_still_reads() {
        let details = AdminDetails {
            action: Some(AdminAction::PolicySet.into()),
            digests: Some(vec!["sha256:aa".into(), "sha256:bb".into()]),
            added: Some(vec![]),
            audit_mode: Some(false),
            ..AdminDetails::default()
        };
        let mut map = to_map(&details);
        assert_eq!(map["digests"], "sha256:aa,sha256:bb");
        assert_eq!(map["added"], "");
        assert_eq!(map["audit_mode"], "false");
        assert_eq!(from_map::<AdminDetails>(&map).unwrap(), details);

        map.insert("action".into(), "policy_frobnicate".into());
        map.insert("a_later_key".into(), "x".into());
        let read = from_map::<AdminDetails>(&map).unwrap();
        assert_eq!(read.action, Some(Code::Unknown("policy_frobnicate".into())));
    }

    #[test]
    fn a_number_that_is_not_one_is_an_error_naming_the_struct() {
        let map = BTreeMap::from([("count".to_owned(), "many".to_owned())]);
        let error = from_map::<RefusalCount>(&map).unwrap_err().to_string();
        assert!(error.contains("RefusalCount"), "{error}");
    }
}
