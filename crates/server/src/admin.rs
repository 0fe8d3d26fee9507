//! The admin API's logic: clusters with pinned JWKS, API keys shown once,
//! release policies, and the audit export — each action audited, each
//! refusal a [`Refusal`] with gate `admin`.
//!
//! The admin token is created when the store is first initialised, shown
//! once, and stored only as its SHA-256; the presented token's digest is
//! compared with the stored one in constant time (and a comparison of
//! digests could tell at most a digest's prefix, never the token's).
//!
//! A change is audited *before* it is carried out; a refused admin request
//! (bad token, bad argument, or a change that then failed) is audited with
//! its reason. A change is never made unaudited. Reads (list, show) are not
//! audited; the audit export is.

use std::sync::Arc;

use podseal_core::audit::event::{AdminAction, AdminDetails};
use podseal_core::audit::{Event, ExportLine, Outcome};
use podseal_core::capsule::NameRule;
pub use podseal_core::wire::admin::{
    ApiKeyCreated, ApiKeyInfo, ApiKeyRequest, ClusterInfo, ClusterRequest, PolicyDigestsRequest,
    PolicyInfo, PolicyRequest,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::audit_log::{AuditLog, AuditWriter};
use crate::cluster::ClusterRegistry;
use crate::gate::admin::{check_field, refused, storage_refusal};
use crate::gate::{Gate, Reason, Refusal};
use crate::release::{ReleaseService, api_key_hash};
use crate::storage::{ApiKeyRecord, DigestChange, PolicyRecord, RemovedCluster, Storage};

/// Refuses anything that is not a digest like `sha256:<64 lowercase hex>`.
fn check_digests<'a>(digests: impl IntoIterator<Item = &'a String>) -> Result<(), Refusal> {
    match digests.into_iter().find(|d| !is_digest(d)) {
        Some(bad) => Err(refused(
            Reason::InvalidArgument,
            format!("{bad:?} is not a digest like sha256:<64 lowercase hex>"),
        )),
        None => Ok(()),
    }
}

/// Prefix of admin tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "psa_";
/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "psk_";

/// An API key for the wire: every field but the key's hash, by name.
fn api_key_info(record: ApiKeyRecord) -> ApiKeyInfo {
    ApiKeyInfo {
        id: record.id,
        cluster: record.cluster,
        namespace: record.namespace,
        service_account: record.service_account,
        created_at: record.created_at,
        revoked_at: record.revoked_at,
    }
}

/// A policy for the wire.
fn policy_info(record: PolicyRecord) -> PolicyInfo {
    PolicyInfo {
        cluster: record.cluster,
        namespace: record.namespace,
        service_account: record.service_account,
        digests: record.digests,
        audit_mode: record.audit_mode,
        require_nonce: record.require_nonce,
        updated_at: record.updated_at,
    }
}

/// Records a service account's scope in the audit context and checks its names.
fn service_account_scope(
    audit: &mut AdminDetails,
    cluster: &str,
    namespace: &str,
    service_account: &str,
) -> Result<(), Refusal> {
    audit.cluster = Some(cluster.to_owned());
    audit.namespace = Some(namespace.to_owned());
    audit.service_account = Some(service_account.to_owned());
    check_field("namespace", namespace, NameRule::Label)?;
    check_field("service_account", service_account, NameRule::Subdomain)
}

/// `sha256:` and 64 lowercase hex digits.
pub fn is_digest(value: &str) -> bool {
    value.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The admin service.
pub struct AdminService<S: Storage> {
    release: Arc<ReleaseService<S>>,
    clusters: Arc<ClusterRegistry<S>>,
    audit: Arc<AuditWriter<S>>,
    audit_log: Arc<AuditLog<S>>,
}

impl<S: Storage> AdminService<S> {
    /// Admin over `release`, the clusters it releases to (which this
    /// service registers) and `audit_log`.
    pub fn new(release: Arc<ReleaseService<S>>, audit_log: Arc<AuditLog<S>>) -> Self {
        Self {
            clusters: release.clusters().clone(),
            audit: release.audit_writer().clone(),
            release,
            audit_log,
        }
    }

    fn storage(&self) -> &S {
        self.release.storage()
    }

    /// Checks the admin token; a refusal is audited.
    pub async fn authorize(&self, action: AdminAction, token: Option<&str>) -> Result<(), Refusal> {
        let stored = self
            .storage()
            .admin_token_hash()
            .await
            .map_err(storage_refusal)?;
        let refusal = match (token, stored) {
            (None, _) => refused(
                Reason::AdminTokenMissing,
                "Authorization: Bearer <admin token> is required",
            ),
            (Some(token), Some(hash))
                if bool::from(Sha256::digest(token.as_bytes()).as_slice().ct_eq(&hash)) =>
            {
                return Ok(());
            }
            _ => refused(Reason::AdminTokenInvalid, "the admin token is not valid"),
        };
        let audit = AdminDetails {
            action: Some(action.into()),
            ..AdminDetails::default()
        };
        self.audit
            .write(vec![self.audit.record(
                Event::Admin,
                Outcome::Refused,
                Some(&refusal),
                &audit,
            )])
            .await?;
        Err(refusal)
    }

    /// Runs an admin action: a refusal at any point is audited (the
    /// action's intent was audited by `audit_intent` before any change).
    async fn audited<T>(
        &self,
        action: AdminAction,
        work: impl AsyncFnOnce(&mut AdminDetails) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let mut audit = AdminDetails {
            action: Some(action.into()),
            ..AdminDetails::default()
        };
        match work(&mut audit).await {
            Ok(value) => Ok(value),
            Err(refusal) => {
                self.audit
                    .write(vec![self.audit.record(
                        Event::Admin,
                        Outcome::Refused,
                        Some(&refusal),
                        &audit,
                    )])
                    .await?;
                Err(refusal)
            }
        }
    }

    /// Registers a cluster (or, with `replace`, changes it): the JWKS is
    /// taken from the request or fetched once from the cluster, then pinned.
    pub async fn add_cluster(&self, request: ClusterRequest) -> Result<ClusterInfo, Refusal> {
        self.audited(AdminAction::ClusterAdd, async |audit| {
            let record = self.clusters.register(request, audit).await?;
            Ok(self.clusters.describe(record))
        })
        .await
    }

    /// Removes a cluster's registration with its API keys, policies, pins
    /// and sessions (`DELETE /v1/admin/clusters/{name}`), and drops its
    /// connection: a dead registration no longer keeps `/readyz` at 503.
    pub async fn remove_cluster(&self, name: &str) -> Result<RemovedCluster, Refusal> {
        self.audited(AdminAction::ClusterRemove, async |audit| {
            self.clusters.unregister(name, audit).await
        })
        .await
    }

    /// Every cluster.
    pub async fn clusters(&self) -> Result<Vec<ClusterInfo>, Refusal> {
        let records = self.storage().clusters().await.map_err(storage_refusal)?;
        Ok(records
            .into_iter()
            .map(|r| self.clusters.describe(r))
            .collect())
    }

    /// One cluster.
    pub async fn cluster(&self, name: &str) -> Result<ClusterInfo, Refusal> {
        match self
            .storage()
            .cluster(name)
            .await
            .map_err(storage_refusal)?
        {
            Some(record) => Ok(self.clusters.describe(record)),
            None => Err(refused(
                Reason::NotFound,
                format!("no cluster named {name}"),
            )),
        }
    }

    async fn require_cluster(&self, name: &str) -> Result<(), Refusal> {
        match self
            .storage()
            .cluster(name)
            .await
            .map_err(storage_refusal)?
        {
            Some(_) => Ok(()),
            None => Err(refused(
                Reason::NotFound,
                format!("no cluster named {name}"),
            )),
        }
    }

    /// Creates an API key bound to one service account; the key is returned once.
    pub async fn create_api_key(&self, request: ApiKeyRequest) -> Result<ApiKeyCreated, Refusal> {
        self.audited(AdminAction::ApiKeyCreate, async |audit| {
            self.try_create_api_key(request, audit).await
        })
        .await
    }

    async fn try_create_api_key(
        &self,
        request: ApiKeyRequest,
        audit: &mut AdminDetails,
    ) -> Result<ApiKeyCreated, Refusal> {
        service_account_scope(
            audit,
            &request.cluster,
            &request.namespace,
            &request.service_account,
        )?;
        self.require_cluster(&request.cluster).await?;
        let random = |_| Refusal::new(Gate::Request, Reason::ServerError, "randomness unavailable");
        let id = format!("ak_{}", podseal_core::random_id::<9>().map_err(random)?);
        let key = format!(
            "{API_KEY_PREFIX}{}",
            podseal_core::random_id::<32>().map_err(random)?
        );
        let record = ApiKeyRecord {
            id: id.clone(),
            key_hash: api_key_hash(&key),
            cluster: request.cluster.clone(),
            namespace: request.namespace.clone(),
            service_account: request.service_account.clone(),
            created_at: self.release.clock().now(),
            revoked_at: None,
        };
        audit.api_key = Some(id.clone());
        self.audit.admin_intent(audit).await?;
        let created_at = record.created_at;
        self.storage()
            .insert_api_key(record)
            .await
            .map_err(storage_refusal)?;
        Ok(ApiKeyCreated {
            id,
            key,
            cluster: request.cluster,
            namespace: request.namespace,
            service_account: request.service_account,
            created_at,
        })
    }

    /// Every API key (ids and bindings; never a key).
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyInfo>, Refusal> {
        let keys = self.storage().api_keys().await.map_err(storage_refusal)?;
        Ok(keys.into_iter().map(api_key_info).collect())
    }

    /// Revokes an API key.
    pub async fn revoke_api_key(&self, id: &str) -> Result<(), Refusal> {
        self.audited(AdminAction::ApiKeyRevoke, async |audit| {
            audit.api_key = Some(id.to_owned());
            self.audit.admin_intent(audit).await?;
            let revoked = self
                .storage()
                .revoke_api_key(id, self.release.clock().now())
                .await
                .map_err(storage_refusal)?;
            if revoked {
                Ok(())
            } else {
                Err(refused(
                    Reason::NotFound,
                    format!("no unrevoked API key with id {id}"),
                ))
            }
        })
        .await
    }

    /// Sets the release policy of one service account.
    pub async fn set_policy(&self, request: PolicyRequest) -> Result<PolicyInfo, Refusal> {
        self.audited(AdminAction::PolicySet, async |audit| {
            self.try_set_policy(request, audit).await
        })
        .await
        .map(policy_info)
    }

    async fn try_set_policy(
        &self,
        request: PolicyRequest,
        audit: &mut AdminDetails,
    ) -> Result<PolicyRecord, Refusal> {
        service_account_scope(
            audit,
            &request.cluster,
            &request.namespace,
            &request.service_account,
        )?;
        check_digests(&request.digests)?;
        self.require_cluster(&request.cluster).await?;
        let mut digests = request.digests.clone();
        digests.sort();
        digests.dedup();
        let record = PolicyRecord {
            cluster: request.cluster,
            namespace: request.namespace,
            service_account: request.service_account,
            digests,
            audit_mode: request.audit_mode,
            require_nonce: request.require_nonce,
            updated_at: self.release.clock().now(),
        };
        audit.digests = Some(record.digests.clone());
        audit.audit_mode = Some(record.audit_mode);
        audit.require_nonce = Some(record.require_nonce);
        if record.audit_mode {
            tracing::warn!(
                cluster = %record.cluster,
                namespace = %record.namespace,
                service_account = %record.service_account,
                "AUDIT MODE enabled: gate 4 will record instead of refusing unapproved images for this service account"
            );
        }
        self.audit.admin_intent(audit).await?;
        self.storage()
            .set_policy(record.clone())
            .await
            .map_err(storage_refusal)?;
        Ok(record)
    }

    /// Approves and withdraws digests of one policy, atomically, keeping its
    /// modes (`POST /v1/admin/policies/digests`).
    pub async fn change_policy_digests(
        &self,
        request: PolicyDigestsRequest,
    ) -> Result<PolicyInfo, Refusal> {
        self.audited(AdminAction::PolicyDigests, async |audit| {
            self.try_change_policy_digests(request, audit).await
        })
        .await
        .map(policy_info)
    }

    async fn try_change_policy_digests(
        &self,
        request: PolicyDigestsRequest,
        audit: &mut AdminDetails,
    ) -> Result<PolicyRecord, Refusal> {
        service_account_scope(
            audit,
            &request.cluster,
            &request.namespace,
            &request.service_account,
        )?;
        check_digests(request.add.iter().chain(&request.remove))?;
        if let Some(both) = request.add.iter().find(|d| request.remove.contains(d)) {
            return Err(refused(
                Reason::InvalidArgument,
                format!("{both} is both added and removed"),
            ));
        }
        // Withdrawing a digest that is not approved is a mistake to say, not
        // a change to make silently (checked again by nothing: a concurrent
        // removal of it makes this one a no-op, which is what was asked).
        if !request.remove.is_empty() {
            let current = self.storage().policies().await.map_err(storage_refusal)?;
            let current = current.iter().find(|p| {
                p.cluster == request.cluster
                    && p.namespace == request.namespace
                    && p.service_account == request.service_account
            });
            if let Some(absent) = request
                .remove
                .iter()
                .find(|d| current.is_none_or(|p| !p.digests.contains(d)))
            {
                return Err(refused(
                    Reason::InvalidArgument,
                    format!(
                        "{absent} is not approved for {}/{}/{}",
                        request.cluster, request.namespace, request.service_account
                    ),
                ));
            }
        }
        audit.added = Some(request.add.clone());
        audit.removed = Some(request.remove.clone());
        self.audit.admin_intent(audit).await?;
        let change = DigestChange {
            cluster: request.cluster,
            namespace: request.namespace,
            service_account: request.service_account,
            add: request.add,
            remove: request.remove,
        };
        let record = self
            .storage()
            .change_policy_digests(change, self.release.clock().now())
            .await
            .map_err(storage_refusal)?;
        Ok(record)
    }

    /// Every policy.
    pub async fn policies(&self) -> Result<Vec<PolicyInfo>, Refusal> {
        let policies = self.storage().policies().await.map_err(storage_refusal)?;
        Ok(policies.into_iter().map(policy_info).collect())
    }

    /// The audit log, ending with a checkpoint signed now (the export itself is audited).
    pub async fn audit_export(&self) -> Result<Vec<ExportLine>, Refusal> {
        self.audited(AdminAction::AuditExport, async |audit| {
            self.audit.admin_intent(audit).await?;
            self.audit_log.export().await.map_err(|error| {
                tracing::error!(%error, "audit export failed");
                Refusal::new(
                    Gate::Request,
                    Reason::StorageUnavailable,
                    "the audit log cannot be read right now",
                )
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON Schema's `integer` is a number with no fractional part: the
    /// document calls `3600.0` valid, so the server takes it (found by
    /// schemathesis: 400 `malformed_body` for `1086.0`).
    #[test]
    fn an_integral_float_is_an_integer_and_a_fraction_is_not() {
        let body = |lifetime: &str| {
            serde_json::from_str::<ClusterRequest>(&format!(
                r#"{{"name":"a","api_server_url":"https://a","ca_pem":"c","reader_token":"t","max_token_lifetime_secs":{lifetime}}}"#
            ))
            .map(|r| r.max_token_lifetime_secs)
        };
        assert_eq!(body("3600").unwrap(), Some(3600));
        assert_eq!(body("3600.0").unwrap(), Some(3600));
        assert_eq!(body("-1.0").unwrap(), Some(-1));
        assert_eq!(body("null").ok(), None, "null is not a lifetime");
        for bad in ["3600.5", "1e300", "\"3600\"", "true"] {
            assert!(body(bad).is_err(), "{bad}");
        }
        let absent: ClusterRequest = serde_json::from_str(
            r#"{"name":"a","api_server_url":"https://a","ca_pem":"c","reader_token":"t"}"#,
        )
        .unwrap();
        assert_eq!(absent.max_token_lifetime_secs, None);
    }

    #[test]
    fn digests_are_sha256_lowercase_hex() {
        assert!(is_digest(&format!("sha256:{}", "ab".repeat(32))));
        for bad in [
            "sha256:",
            "sha512:00",
            &format!("sha256:{}", "AB".repeat(32)),
            &format!("sha256:{}", "a".repeat(63)),
            &"a".repeat(64),
        ] {
            assert!(!is_digest(bad), "{bad}");
        }
    }
}
