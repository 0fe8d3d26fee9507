//! The typed client of the admin API (`/v1/admin/…`): one method per
//! action, the requests and answers of [`podseal_core::wire::admin`], the
//! paths of the same module. The `podseal` CLI, the demo, the benchmark
//! and the tests administer a server through it, so a path or an answer's
//! shape is written in one place on each side of the wire.
//!
//! The admin token goes in `Authorization: Bearer …` on every request; it
//! is zeroized when the client is dropped and appears in no error.

use http::{Method, StatusCode};
use podseal_core::wire::admin::{
    self, API_KEYS_PATH, AUDIT_EXPORT_PATH, ApiKeyCreated, ApiKeyInfo, ApiKeyList, ApiKeyRequest,
    ApiKeyRevoked, CLUSTERS_PATH, ClusterInfo, ClusterList, ClusterRemoved, ClusterRequest,
    POLICIES_PATH, POLICY_DIGESTS_PATH, PolicyDigestsRequest, PolicyInfo, PolicyList,
    PolicyRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::https::{Answer, HttpsClient, TransportError};

/// Why an admin request failed. No message carries the admin token, a
/// request's body or an answer's body.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The server could not be reached, or did not answer in time.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server refused (its problem details).
    #[error(
        "refused by the server ({} {}, {gate}/{reason}): {detail}",
        .status.as_u16(),
        .status.canonical_reason().unwrap_or("")
    )]
    Refused {
        /// The answer's status.
        status: StatusCode,
        /// The gate that refused (`?` when the answer was no problem+json).
        gate: String,
        /// The reason code (`?` likewise).
        reason: String,
        /// The public sentence.
        detail: String,
    },
    /// The answer is not the shape this client knows.
    #[error("the server's answer is not what this client expects: {0}")]
    Answer(String),
    /// The request could not be encoded.
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

impl AdminError {
    fn refused(answer: &Answer) -> Self {
        let problem: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        let text = |key: &str| {
            problem
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_owned()
        };
        Self::Refused {
            status: answer.status,
            gate: text("gate"),
            reason: text("reason"),
            detail: text("detail"),
        }
    }
}

/// A client of one server's admin API.
pub struct AdminClient {
    http: HttpsClient,
    token: Zeroizing<String>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("server", &self.http.base_url())
            .field("token", &"[redacted]")
            .finish()
    }
}

impl AdminClient {
    /// Administers the server `http` reaches, with the admin `token`
    /// (surrounding whitespace, as a token file ends, is trimmed).
    pub fn new(http: HttpsClient, token: &str) -> Self {
        Self {
            http,
            token: Zeroizing::new(token.trim().to_owned()),
        }
    }

    /// Sends one admin request; a refusal is [`AdminError::Refused`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Answer, AdminError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| AdminError::Encode(e.to_string()))?;
        let authorization = Zeroizing::new(format!("Bearer {}", self.token.as_str()));
        let answer = self
            .http
            .send(
                method,
                path,
                &[("authorization", authorization.as_str())],
                body,
            )
            .await?;
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(AdminError::refused(&answer))
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, AdminError> {
        let answer = self.send(method, path, body).await?;
        serde_json::from_slice(&answer.body).map_err(|e| AdminError::Answer(e.to_string()))
    }

    /// Registers a cluster (or changes it, with `replace`).
    pub async fn add_cluster(&self, request: &ClusterRequest) -> Result<ClusterInfo, AdminError> {
        self.call(Method::POST, CLUSTERS_PATH, Some(request)).await
    }

    /// One cluster.
    pub async fn cluster(&self, name: &str) -> Result<ClusterInfo, AdminError> {
        self.call(Method::GET, &admin::cluster_path(name), None::<&()>)
            .await
    }

    /// Every cluster.
    pub async fn clusters(&self) -> Result<Vec<ClusterInfo>, AdminError> {
        let list: ClusterList = self.call(Method::GET, CLUSTERS_PATH, None::<&()>).await?;
        Ok(list.clusters)
    }

    /// Removes a cluster with its API keys, policies and sessions.
    pub async fn remove_cluster(&self, name: &str) -> Result<ClusterRemoved, AdminError> {
        self.call(Method::DELETE, &admin::cluster_path(name), None::<&()>)
            .await
    }

    /// Creates an API key (shown once, in the answer).
    pub async fn create_api_key(
        &self,
        request: &ApiKeyRequest,
    ) -> Result<ApiKeyCreated, AdminError> {
        self.call(Method::POST, API_KEYS_PATH, Some(request)).await
    }

    /// Every API key (never a key).
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyInfo>, AdminError> {
        let list: ApiKeyList = self.call(Method::GET, API_KEYS_PATH, None::<&()>).await?;
        Ok(list.api_keys)
    }

    /// Revokes an API key.
    pub async fn revoke_api_key(&self, id: &str) -> Result<ApiKeyRevoked, AdminError> {
        self.call(Method::DELETE, &admin::api_key_path(id), None::<&()>)
            .await
    }

    /// Sets (replaces) a service account's policy.
    pub async fn set_policy(&self, request: &PolicyRequest) -> Result<PolicyInfo, AdminError> {
        self.call(Method::PUT, POLICIES_PATH, Some(request)).await
    }

    /// Approves and withdraws digests of a policy, atomically.
    pub async fn change_policy_digests(
        &self,
        request: &PolicyDigestsRequest,
    ) -> Result<PolicyInfo, AdminError> {
        self.call(Method::POST, POLICY_DIGESTS_PATH, Some(request))
            .await
    }

    /// Every policy.
    pub async fn policies(&self) -> Result<Vec<PolicyInfo>, AdminError> {
        let list: PolicyList = self.call(Method::GET, POLICIES_PATH, None::<&()>).await?;
        Ok(list.policies)
    }

    /// The audit log as the server exports it: JSON lines ending with a
    /// checkpoint signed now (`podseal audit verify` reads them).
    pub async fn audit_export(&self) -> Result<Vec<u8>, AdminError> {
        let answer = self
            .send(Method::GET, AUDIT_EXPORT_PATH, None::<&()>)
            .await?;
        Ok(answer.body.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    /// The admin token is in no `Debug` of the client, nor in the error of
    /// a request that could not be sent.
    #[tokio::test]
    async fn the_admin_token_is_never_printed() {
        let http = HttpsClient::new("https://127.0.0.1:1", None).unwrap();
        let client = AdminClient::new(http, " psa_the-admin-token\n");
        assert!(!format!("{client:?}").contains("the-admin-token"));
        let error = client.clusters().await.unwrap_err();
        assert!(matches!(error, AdminError::Transport(_)), "{error}");
        for printed in [error.to_string(), format!("{error:?}")] {
            assert!(!printed.contains("the-admin-token"), "{printed}");
        }
    }
}
