//! The admin API's wire contract (`/v1/admin/…`), shared by the server and
//! the `podseal` CLI: requests refuse unknown fields; answers are built for
//! the wire from the server's records, field by field, so a stored secret
//! (an API key's hash, a token) cannot cross the API by a forgotten
//! attribute. `docs/openapi.yaml` describes the same bodies.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `POST /v1/admin/clusters` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRequest {
    /// The name capsules use for this cluster.
    pub name: String,
    /// `https://…` of the API server.
    pub api_server_url: String,
    /// CA bundle file, on the server's machine: read once now and pinned.
    pub ca_bundle: PathBuf,
    /// Read-only token file, on the server's machine.
    pub token_file: PathBuf,
    /// Expected `iss`; when absent, read once from the cluster's discovery document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Accepted token audiences; default `["podseal"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// The JWKS to pin (JSON text); when absent, fetched once from the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Accept tokens whose `aud` also names other relying parties (default: refuse).
    #[serde(default)]
    pub allow_extra_audiences: bool,
    /// The longest token lifetime accepted, seconds (default 24 h; 600 to 172800).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json_integer"
    )]
    pub max_token_lifetime_secs: Option<i64>,
    /// Replace an existing registration (and its pinned keys).
    #[serde(default)]
    pub replace: bool,
    /// Register even when the token may do more than read pods, or its
    /// rights cannot be checked (audited).
    #[serde(default)]
    pub allow_broad_token: bool,
}

/// A JSON Schema `integer`: a number with no fractional part, so `3600.0`
/// as well as `3600` (clients that hold numbers as floats send the former,
/// and the OpenAPI document calls both valid). A fraction, or a value
/// beyond what an `i64` holds exactly, is refused.
fn json_integer<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    use serde::de::Error as _;
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(integer) = number.as_i64() {
        return Ok(Some(integer));
    }
    // Integral and within ±2^53, where every integer is a float exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match number.as_f64() {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "integral and within ±2^53: the conversion is exact"
        )]
        Some(float) if float.fract() == 0.0 && float.abs() <= EXACT => Ok(Some(float as i64)),
        _ => Err(D::Error::custom(format!("{number} is not an integer"))),
    }
}

/// A cluster as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Name.
    pub name: String,
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// API server URL.
    pub api_server_url: String,
    /// The CA bundle file the pinned CA was read from.
    pub ca_bundle: String,
    /// SHA-256 fingerprints of the pinned CA certificates.
    pub ca_sha256: Vec<String>,
    /// Read-only token file.
    pub token_file: String,
    /// Key ids of the pinned JWKS.
    pub pinned_kids: Vec<String>,
    /// Key ids the cluster publishes now that are not pinned (it rotated
    /// its token-signing key: re-pin with `cluster add --replace`).
    #[serde(default)]
    pub unpinned_kids: Vec<String>,
    /// Whether tokens naming other relying parties too are accepted.
    pub allow_extra_audiences: bool,
    /// The longest token lifetime accepted, seconds.
    pub max_token_lifetime_secs: i64,
    /// Whether its pod view can decide now.
    pub ready: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ready: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// `POST /v1/admin/apikeys` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRequest {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
}

/// A new API key: the only time `key` is ever shown. `Debug` redacts it.
#[derive(Clone, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    /// Public id.
    pub id: String,
    /// The key itself.
    pub key: String,
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl std::fmt::Debug for ApiKeyCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyCreated")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .field("cluster", &self.cluster)
            .field("namespace", &self.namespace)
            .field("service_account", &self.service_account)
            .finish()
    }
}

/// `POST /v1/admin/policies/digests` body: approve and withdraw digests of
/// one service account's policy, keeping the rest of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDigestsRequest {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Digests to approve, `sha256:<64 hex>` (the policy is created, enforcing, if there is none).
    #[serde(default)]
    pub add: Vec<String>,
    /// Approved digests to withdraw.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `PUT /v1/admin/policies` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Approved image digests, `sha256:<64 hex>`.
    pub digests: Vec<String>,
    /// Record what strict mode would refuse instead of refusing.
    #[serde(default)]
    pub audit_mode: bool,
    /// Require DPoP server nonces.
    #[serde(default)]
    pub require_nonce: bool,
}

/// An API key as lists show it: never the key, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// Public id (shown in lists and audit).
    pub id: String,
    /// Bound cluster.
    pub cluster: String,
    /// Bound namespace.
    pub namespace: String,
    /// Bound service account.
    pub service_account: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A release policy as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Approved image digests (`sha256:<hex>`).
    pub digests: Vec<String>,
    /// Record what strict mode would refuse instead of refusing.
    pub audit_mode: bool,
    /// Require RFC 9449 server nonces in DPoP proofs.
    pub require_nonce: bool,
    /// Unix seconds.
    pub updated_at: i64,
}
