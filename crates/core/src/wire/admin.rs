//! The admin API's wire contract (`/v1/admin/…`), shared by the server and
//! the `podseal` CLI: requests refuse unknown fields; answers are built for
//! the wire from the server's records, field by field, so a stored secret
//! (an API key's hash, a token) cannot cross the API by a forgotten
//! attribute. `docs/openapi.yaml` describes the same bodies.
//!
//! No request names a file or any other path on the server's machine:
//! what the server is to trust or present (a CA bundle, a reader token)
//! travels as content, so an admin token cannot make the server read a
//! file of its caller's choosing, or send one's content anywhere.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// `POST` registers a cluster ([`ClusterRequest`] → [`ClusterInfo`]);
/// `GET` lists them ([`ClusterList`]).
pub const CLUSTERS_PATH: &str = "/v1/admin/clusters";
/// `GET` shows one cluster ([`ClusterInfo`]); `DELETE` removes it
/// ([`ClusterRemoved`]). The route the server serves; a client sends to
/// [`cluster_path`].
pub const CLUSTER_ROUTE: &str = "/v1/admin/clusters/{name}";
/// `POST` creates an API key ([`ApiKeyRequest`] → [`ApiKeyCreated`]);
/// `GET` lists them ([`ApiKeyList`]).
pub const API_KEYS_PATH: &str = "/v1/admin/apikeys";
/// `DELETE` revokes an API key ([`ApiKeyRevoked`]); a client sends to
/// [`api_key_path`].
pub const API_KEY_ROUTE: &str = "/v1/admin/apikeys/{id}";
/// `PUT` sets a policy ([`PolicyRequest`] → [`PolicyInfo`]); `GET` lists
/// them ([`PolicyList`]).
pub const POLICIES_PATH: &str = "/v1/admin/policies";
/// `POST` approves and withdraws digests ([`PolicyDigestsRequest`] →
/// [`PolicyInfo`]).
pub const POLICY_DIGESTS_PATH: &str = "/v1/admin/policies/digests";
/// `GET` exports the audit log (JSON lines, `application/x-ndjson`).
pub const AUDIT_EXPORT_PATH: &str = "/v1/admin/audit/export";

/// One path segment, percent-encoded but for RFC 3986's unreserved
/// characters: a name with `/` or `..` in it stays one segment, which the
/// server then refuses by name, instead of reaching another route.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The path of cluster `name` ([`CLUSTER_ROUTE`]).
pub fn cluster_path(name: &str) -> String {
    format!("{CLUSTERS_PATH}/{}", segment(name))
}

/// The path of API key `id` ([`API_KEY_ROUTE`]).
pub fn api_key_path(id: &str) -> String {
    format!("{API_KEYS_PATH}/{}", segment(id))
}

/// The largest CA bundle a registration takes (PEM bytes; a cluster CA
/// bundle is a few KiB, and the whole request must fit in the 1 MiB body).
pub const MAX_CA_PEM_BYTES: usize = 256 * 1024;
/// The largest reader token a registration takes (a projected token is a
/// JWT of one to two KiB; a token of a `kubernetes.io/service-account-token`
/// Secret is of the same size).
pub const MAX_READER_TOKEN_BYTES: usize = 16 * 1024;

/// A cluster's read-only bearer token, as `cluster add` uploads it and the
/// server stores it: never shown again (no answer carries one), zeroized
/// when dropped, `Debug` redacted. Whitespace around it is trimmed, as
/// client-go trims a token file (`kubectl create token > FILE` ends it with
/// a newline, which no header may carry).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ReaderToken(Zeroizing<String>);

impl ReaderToken {
    /// A token from its text, trimmed.
    pub fn new(text: &str) -> Self {
        Self(Zeroizing::new(text.trim().to_owned()))
    }

    /// The token, for the `Authorization` header and the store only.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Whether there is none (a registration made when the server still
    /// read a token file named by the request).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Why this cannot be a bearer token, in words that never quote it.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.0.is_empty() {
            Err("is empty")
        } else if self.0.len() > MAX_READER_TOKEN_BYTES {
            Err("is larger than 16384 bytes")
        } else if !self.0.bytes().all(|b| b.is_ascii_graphic()) {
            Err("holds characters a bearer token cannot have (is it a token, one line?)")
        } else {
            Ok(())
        }
    }
}

impl std::fmt::Debug for ReaderToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReaderToken([redacted])")
    }
}

impl Serialize for ReaderToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ReaderToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        Ok(Self::new(&text))
    }
}

/// `POST /v1/admin/clusters` body (`..Default::default()` leaves every
/// option at the server's default).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRequest {
    /// The name capsules use for this cluster.
    pub name: String,
    /// `https://…` of the API server.
    pub api_server_url: String,
    /// The CA certificate(s) the API server's certificate chains to, PEM
    /// text (at most [`MAX_CA_PEM_BYTES`]): pinned now, as the JWKS is.
    pub ca_pem: String,
    /// The read-only bearer token the server presents to the API server
    /// (get, list and watch pods; docs/rbac.md). Stored, never shown again.
    pub reader_token: ReaderToken,
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
    /// SHA-256 fingerprints of the pinned CA certificates.
    pub ca_sha256: Vec<String>,
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

/// `GET /v1/admin/clusters` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterList {
    /// Every registered cluster.
    pub clusters: Vec<ClusterInfo>,
}

/// `GET /v1/admin/apikeys` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyList {
    /// Every API key, revoked ones included.
    pub api_keys: Vec<ApiKeyInfo>,
}

/// `GET /v1/admin/policies` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyList {
    /// Every policy.
    pub policies: Vec<PolicyInfo>,
}

/// `DELETE /v1/admin/clusters/{name}` answer: what went with the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRemoved {
    /// The cluster removed.
    pub removed: String,
    /// Its API keys, deleted.
    pub api_keys_deleted: u64,
    /// Its policies, deleted.
    pub policies_deleted: u64,
    /// Its sessions, deleted.
    pub sessions_deleted: u64,
}

/// `DELETE /v1/admin/apikeys/{id}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    /// The API key revoked.
    pub revoked: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_one_path_segment_whatever_it_holds() {
        assert_eq!(cluster_path("prod-1.eu"), "/v1/admin/clusters/prod-1.eu");
        assert_eq!(
            cluster_path("../apikeys/ak_1"),
            "/v1/admin/clusters/..%2Fapikeys%2Fak_1"
        );
        assert_eq!(api_key_path("ak_x y?"), "/v1/admin/apikeys/ak_x%20y%3F");
    }
}
