//! The admin API's logic: clusters with pinned JWKS, API keys shown once,
//! release policies, and the audit export — each action audited, each
//! refusal a [`Refusal`] with gate `admin`.
//!
//! The admin token is created when the store is first initialised, shown
//! once, and stored only as its SHA-256. Comparing digests of the presented
//! and stored tokens says nothing useful about the token through timing.
//!
//! A change is audited *before* it is carried out; a refused admin request
//! (bad token, bad argument, or a change that then failed) is audited with
//! its reason. A change is never made unaudited. Reads (list, show) are not
//! audited; the audit export is.

use std::sync::Arc;

use podseal_core::audit::{ExportLine, Outcome};
use podseal_core::capsule::{NameRule, check_name};
pub use podseal_core::wire::admin::{
    ApiKeyCreated, ApiKeyInfo, ApiKeyRequest, ClusterInfo, ClusterRequest, PolicyDigestsRequest,
    PolicyInfo, PolicyRequest,
};
use sha2::{Digest, Sha256};

use crate::audit_log::{AuditContext, AuditLog};
use crate::cluster::client::{ca_fingerprints, check_api_server_url, check_ca_pem, kube_client};
use crate::cluster::{ClusterRegistry, registration};
use crate::gate::{Gate, Reason, Refusal};
use crate::identity::PinnedJwks;
use crate::identity::kubernetes::{DEFAULT_MAX_LIFETIME_SECS, MAX_LIFETIME_RANGE_SECS};
use crate::release::{ReleaseService, api_key_hash};
use crate::storage::{
    ApiKeyRecord, ClusterRecord, DigestChange, PolicyRecord, RemovedCluster, Storage, StorageError,
};

/// What a registration's token may do beyond reading pods, as the API
/// server's SelfSubjectRulesReview lists it for namespace `default` (its
/// cluster-wide rights show in every namespace; a grant bound in one other
/// namespace only does not show here). Rights every authenticated user has
/// (asking what it may do, reading discovery) are not counted.
async fn review_rights(record: &ClusterRecord) -> Result<Vec<String>, String> {
    use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
    let client = kube_client(&registration(record)).map_err(|e| e.to_string())?;
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some("default".into()),
        },
        ..SelfSubjectRulesReview::default()
    };
    let body = serde_json::to_vec(&review).map_err(|e| e.to_string())?;
    let request = http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| e.to_string())?;
    let answer: SelfSubjectRulesReview = client.request(request).await.map_err(|e| {
        crate::api_server_error::describe(&e, Some(&joined_fingerprints(&record.ca_pem)))
    })?;
    let status = answer
        .status
        .ok_or("the API server's review has no status")?;
    let is = |list: &Option<Vec<String>>, allowed: &[&str]| {
        list.as_deref()
            .unwrap_or_default()
            .iter()
            .all(|item| allowed.contains(&item.as_str()))
    };
    let mut broad = Vec::new();
    for rule in &status.resource_rules {
        let verbs = Some(rule.verbs.clone());
        let reads_pods = is(&rule.api_groups, &[""])
            && is(&rule.resources, &["pods"])
            && is(&verbs, &["get", "list", "watch"]);
        let asks_itself = is(&verbs, &["create"])
            && is(
                &rule.api_groups,
                &["authorization.k8s.io", "authentication.k8s.io"],
            )
            && is(
                &rule.resources,
                &[
                    "selfsubjectaccessreviews",
                    "selfsubjectrulesreviews",
                    "selfsubjectreviews",
                ],
            );
        if !reads_pods && !asks_itself {
            let groups = rule.api_groups.as_deref().unwrap_or_default();
            let resources = rule.resources.as_deref().unwrap_or_default();
            broad.push(format!(
                "{} on {}",
                rule.verbs.join(","),
                resources
                    .iter()
                    .map(|r| match groups.first().map(String::as_str) {
                        Some("") | None => r.clone(),
                        Some(group) => format!("{r}.{group}"),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
    }
    for rule in &status.non_resource_rules {
        let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
        let verbs = Some(rule.verbs.clone());
        if !is(&verbs, &["get", "head"]) || urls.iter().any(|u| u == "*") {
            broad.push(format!("{} on {}", rule.verbs.join(","), urls.join(",")));
        }
    }
    Ok(broad)
}

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

fn refused(reason: Reason, detail: impl Into<String>) -> Refusal {
    Refusal::new(Gate::Admin, reason, detail)
}

fn storage_refusal(error: StorageError) -> Refusal {
    match error {
        StorageError::NotFound(what) => refused(Reason::NotFound, what),
        other => {
            tracing::error!(error = %other, "storage failed on the admin path");
            Refusal::new(
                Gate::Request,
                Reason::StorageUnavailable,
                "the server cannot store this right now",
            )
        }
    }
}

fn check(field: &str, value: &str, rule: NameRule) -> Result<(), Refusal> {
    check_name(value, rule)
        .map_err(|why| refused(Reason::InvalidArgument, format!("{field} {why}")))
}

/// Records a service account's scope in the audit context and checks its names.
fn service_account_scope(
    audit: &mut AuditContext,
    cluster: &str,
    namespace: &str,
    service_account: &str,
) -> Result<(), Refusal> {
    audit.set("cluster", cluster);
    audit.set("namespace", namespace);
    audit.set("service_account", service_account);
    check("namespace", namespace, NameRule::Label)?;
    check("service_account", service_account, NameRule::Subdomain)
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

/// The pinned CA's fingerprints, joined for an audit record.
fn joined_fingerprints(ca_pem: &str) -> String {
    ca_fingerprints(ca_pem)
        .map(|f| f.join(","))
        .unwrap_or_default()
}

/// The admin service.
pub struct AdminService<S: Storage> {
    release: Arc<ReleaseService<S>>,
    clusters: Arc<ClusterRegistry<S>>,
    audit_log: Arc<AuditLog<S>>,
}

impl<S: Storage> AdminService<S> {
    /// Admin over `release`, the clusters it releases to (which this
    /// service registers) and `audit_log`.
    pub fn new(release: Arc<ReleaseService<S>>, audit_log: Arc<AuditLog<S>>) -> Self {
        Self {
            clusters: release.clusters().clone(),
            release,
            audit_log,
        }
    }

    fn storage(&self) -> &S {
        self.release.storage()
    }

    /// Checks the admin token; a refusal is audited.
    pub async fn authorize(&self, action: &str, token: Option<&str>) -> Result<(), Refusal> {
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
                if <[u8; 32]>::from(Sha256::digest(token.as_bytes())) == hash =>
            {
                return Ok(());
            }
            _ => refused(Reason::AdminTokenInvalid, "the admin token is not valid"),
        };
        let mut audit = AuditContext::default();
        audit.set("action", action);
        self.release
            .audit(vec![audit.record(
                "admin",
                Outcome::Refused,
                Some(&refusal),
            )])
            .await?;
        Err(refusal)
    }

    /// Audits an admin action about to be carried out.
    async fn audit_intent(&self, audit: &AuditContext) -> Result<(), Refusal> {
        self.release
            .audit(vec![audit.record("admin", Outcome::Allowed, None)])
            .await
    }

    /// Runs an admin action: a refusal at any point is audited (the
    /// action's intent was audited by `audit_intent` before any change).
    async fn audited<T>(
        &self,
        action: &str,
        work: impl AsyncFnOnce(&mut AuditContext) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let mut audit = AuditContext::default();
        audit.set("action", action);
        match work(&mut audit).await {
            Ok(value) => Ok(value),
            Err(refusal) => {
                self.release
                    .audit(vec![audit.record(
                        "admin",
                        Outcome::Refused,
                        Some(&refusal),
                    )])
                    .await?;
                Err(refusal)
            }
        }
    }

    /// Registers a cluster (or, with `replace`, changes it): the JWKS is
    /// taken from the request or fetched once from the cluster, then pinned.
    pub async fn add_cluster(&self, request: ClusterRequest) -> Result<ClusterInfo, Refusal> {
        self.audited("cluster_add", async |audit| {
            self.try_add_cluster(request, audit).await
        })
        .await
    }

    async fn try_add_cluster(
        &self,
        request: ClusterRequest,
        audit: &mut AuditContext,
    ) -> Result<ClusterInfo, Refusal> {
        audit.set("cluster", &request.name);
        check("name", &request.name, NameRule::Subdomain)?;
        check_api_server_url(&request.api_server_url)
            .map_err(|why| refused(Reason::InvalidArgument, format!("api_server_url {why}")))?;
        // The CA and the token are the request's own bytes: no field names a
        // path, so nothing here reads a file of the caller's choosing (and
        // sends its content to the caller's `api_server_url`). The CA is
        // pinned now, as the JWKS is.
        check_ca_pem(&request.ca_pem)
            .map_err(|e| refused(Reason::InvalidArgument, format!("ca_pem: {e}")))?;
        request
            .reader_token
            .check()
            .map_err(|why| refused(Reason::InvalidArgument, format!("reader_token {why}")))?;
        let max_token_lifetime_secs = request
            .max_token_lifetime_secs
            .unwrap_or(DEFAULT_MAX_LIFETIME_SECS);
        if !MAX_LIFETIME_RANGE_SECS.contains(&max_token_lifetime_secs) {
            return Err(refused(
                Reason::InvalidArgument,
                format!(
                    "max_token_lifetime_secs must be between {} and {}",
                    MAX_LIFETIME_RANGE_SECS.start(),
                    MAX_LIFETIME_RANGE_SECS.end()
                ),
            ));
        }
        let existing = self
            .storage()
            .cluster(&request.name)
            .await
            .map_err(storage_refusal)?;
        if existing.is_some() && !request.replace {
            return Err(refused(
                Reason::AlreadyExists,
                format!(
                    "cluster {} is already registered; changing it (its pinned keys, CA or token rules) needs --replace",
                    request.name
                ),
            ));
        }
        let audiences = if request.audiences.is_empty() {
            vec!["podseal".to_owned()]
        } else {
            request.audiences.clone()
        };
        // Everything the registration trusts, old and new, is in the record,
        // written before the server contacts the cluster with its token.
        audit.set("api_server_url", &request.api_server_url);
        audit.set("ca_sha256", joined_fingerprints(&request.ca_pem));
        audit.set("audiences", audiences.join(","));
        audit.set(
            "allow_extra_audiences",
            request.allow_extra_audiences.to_string(),
        );
        audit.set(
            "max_token_lifetime_secs",
            max_token_lifetime_secs.to_string(),
        );
        audit.set(
            "jwks_source",
            if request.jwks.is_some() {
                "given"
            } else {
                "fetched once from the cluster"
            },
        );
        if let Some(old) = &existing {
            audit.set("action", "cluster_replace");
            audit.set("old_api_server_url", &old.api_server_url);
            audit.set("old_ca_sha256", joined_fingerprints(&old.ca_pem));
            audit.set("old_issuer", &old.issuer);
            audit.set("old_audiences", old.audiences.join(","));
            audit.set(
                "old_allow_extra_audiences",
                old.allow_extra_audiences.to_string(),
            );
            audit.set(
                "old_max_token_lifetime_secs",
                old.max_token_lifetime_secs.to_string(),
            );
            audit.set(
                "old_pinned_kids",
                PinnedJwks::parse(&old.jwks)
                    .map(|j| j.kids().join(","))
                    .unwrap_or_default(),
            );
        }
        self.audit_intent(audit).await?;
        let now = self.release.clock().now();
        let mut record = ClusterRecord {
            name: request.name.clone(),
            issuer: request.issuer.clone().unwrap_or_default(),
            audiences,
            api_server_url: request.api_server_url.clone(),
            ca_pem: request.ca_pem.clone(),
            reader_token: request.reader_token.clone(),
            jwks: request.jwks.clone().unwrap_or_default(),
            allow_extra_audiences: request.allow_extra_audiences,
            max_token_lifetime_secs,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        if request.jwks.is_none() || request.issuer.is_none() {
            self.fetch_from_cluster(
                &mut record,
                request.jwks.is_none(),
                request.issuer.is_none(),
            )
            .await?;
        }
        let jwks = PinnedJwks::parse(&record.jwks)
            .map_err(|e| refused(Reason::InvalidArgument, format!("jwks: {e}")))?;
        let kids: Vec<String> = jwks.kids().into_iter().map(str::to_owned).collect();
        // The token is to read pods and nothing else (docs/rbac.md): whoever
        // holds the server's files holds it. Say what more it may do, and
        // refuse unless the admin accepts it by name.
        match review_rights(&record).await {
            Ok(broad) if broad.is_empty() => audit.set("token_rights", "get, list, watch pods"),
            Ok(broad) => {
                audit.set("token_rights_beyond_pods", broad.join("; "));
                if !request.allow_broad_token {
                    return Err(refused(
                        Reason::InvalidArgument,
                        format!(
                            "reader_token: it may do more than read pods ({}): bind it to get, list and watch on pods only (docs/rbac.md), or pass --allow-broad-token",
                            broad.join("; ")
                        ),
                    ));
                }
                tracing::warn!(cluster = %record.name, rights = %broad.join("; "), "a cluster token with more than pod-read rights was accepted (--allow-broad-token)");
            }
            Err(why) => {
                audit.set("token_rights", format!("not checked: {why}"));
                if !request.allow_broad_token {
                    return Err(refused(
                        Reason::ClusterUnreachable,
                        format!(
                            "reader_token: cannot check what it may do ({why}); pass --allow-broad-token to register it unchecked"
                        ),
                    ));
                }
            }
        }
        audit.set("allow_broad_token", request.allow_broad_token.to_string());

        // The keys now pinned, recorded before they take effect.
        audit.set("issuer", &record.issuer);
        audit.set("pinned_kids", kids.join(","));
        self.audit_intent(audit).await?;
        let cluster = self
            .clusters
            .build(&record)
            .map_err(|why| refused(Reason::InvalidArgument, why.to_string()))?;
        self.storage()
            .put_cluster(record.clone())
            .await
            .map_err(storage_refusal)?;
        self.clusters.add(&record.name, cluster);
        Ok(self.info(record))
    }

    /// Removes a cluster's registration with its API keys, policies, pins
    /// and sessions (`DELETE /v1/admin/clusters/{name}`), and drops its
    /// connection: a dead registration no longer keeps `/readyz` at 503.
    pub async fn remove_cluster(&self, name: &str) -> Result<RemovedCluster, Refusal> {
        self.audited("cluster_remove", async |audit| {
            audit.set("cluster", name);
            check("name", name, NameRule::Subdomain)?;
            if self
                .storage()
                .cluster(name)
                .await
                .map_err(storage_refusal)?
                .is_none()
            {
                return Err(refused(
                    Reason::NotFound,
                    format!("cluster {name} is not registered"),
                ));
            }
            self.audit_intent(audit).await?;
            let removed = self
                .storage()
                .remove_cluster(name)
                .await
                .map_err(storage_refusal)?;
            self.clusters.remove(name);
            tracing::info!(
                cluster = name,
                api_keys = removed.api_keys,
                policies = removed.policies,
                sessions = removed.sessions,
                "cluster removed"
            );
            Ok(removed)
        })
        .await
    }

    /// Reads the JWKS and/or issuer from the cluster, once.
    async fn fetch_from_cluster(
        &self,
        record: &mut ClusterRecord,
        jwks: bool,
        issuer: bool,
    ) -> Result<(), Refusal> {
        let client = kube_client(&registration(record))
            .map_err(|e| refused(Reason::InvalidArgument, e.to_string()))?;
        let get = async |path: &str| {
            let request = http::Request::get(path)
                .body(Vec::new())
                .map_err(|e| refused(Reason::ClusterUnreachable, e.to_string()))?;
            client.request_text(request).await.map_err(|e| {
                refused(
                    Reason::ClusterUnreachable,
                    format!(
                        "cannot read {path} from the cluster: {}",
                        crate::api_server_error::describe(
                            &e,
                            Some(&joined_fingerprints(&record.ca_pem))
                        )
                    ),
                )
            })
        };
        if jwks {
            record.jwks = get("/openid/v1/jwks").await?;
        }
        if issuer {
            let discovery = get("/.well-known/openid-configuration").await?;
            record.issuer = serde_json::from_str::<serde_json::Value>(&discovery)
                .ok()
                .and_then(|v| v.get("issuer")?.as_str().map(str::to_owned))
                .ok_or_else(|| {
                    refused(
                        Reason::ClusterUnreachable,
                        "the cluster's discovery document names no issuer; pass --issuer",
                    )
                })?;
        }
        Ok(())
    }

    fn info(&self, record: ClusterRecord) -> ClusterInfo {
        let pinned_kids = PinnedJwks::parse(&record.jwks)
            .map(|j| j.kids().into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let not_ready = self.clusters.not_ready(&record.name);
        let unpinned_kids = self.clusters.unpinned_kids(&record.name);
        let ca_sha256 = ca_fingerprints(&record.ca_pem).unwrap_or_default();
        ClusterInfo {
            name: record.name,
            issuer: record.issuer,
            audiences: record.audiences,
            api_server_url: record.api_server_url,
            ca_sha256,
            pinned_kids,
            unpinned_kids,
            allow_extra_audiences: record.allow_extra_audiences,
            max_token_lifetime_secs: record.max_token_lifetime_secs,
            ready: not_ready.is_none(),
            not_ready,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }

    /// Every cluster.
    pub async fn clusters(&self) -> Result<Vec<ClusterInfo>, Refusal> {
        let records = self.storage().clusters().await.map_err(storage_refusal)?;
        Ok(records.into_iter().map(|r| self.info(r)).collect())
    }

    /// One cluster.
    pub async fn cluster(&self, name: &str) -> Result<ClusterInfo, Refusal> {
        match self
            .storage()
            .cluster(name)
            .await
            .map_err(storage_refusal)?
        {
            Some(record) => Ok(self.info(record)),
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
        self.audited("apikey_create", async |audit| {
            self.try_create_api_key(request, audit).await
        })
        .await
    }

    async fn try_create_api_key(
        &self,
        request: ApiKeyRequest,
        audit: &mut AuditContext,
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
        audit.set("api_key", &id);
        self.audit_intent(audit).await?;
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
        self.audited("apikey_revoke", async |audit| {
            audit.set("api_key", id);
            self.audit_intent(audit).await?;
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
        self.audited("policy_set", async |audit| {
            self.try_set_policy(request, audit).await
        })
        .await
        .map(policy_info)
    }

    async fn try_set_policy(
        &self,
        request: PolicyRequest,
        audit: &mut AuditContext,
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
        audit.set("digests", record.digests.join(","));
        audit.set("audit_mode", record.audit_mode.to_string());
        audit.set("require_nonce", record.require_nonce.to_string());
        if record.audit_mode {
            tracing::warn!(
                cluster = %record.cluster,
                namespace = %record.namespace,
                service_account = %record.service_account,
                "AUDIT MODE enabled: gate 4 will record instead of refusing unapproved images for this service account"
            );
        }
        self.audit_intent(audit).await?;
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
        self.audited("policy_digests", async |audit| {
            self.try_change_policy_digests(request, audit).await
        })
        .await
        .map(policy_info)
    }

    async fn try_change_policy_digests(
        &self,
        request: PolicyDigestsRequest,
        audit: &mut AuditContext,
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
        audit.set("added", request.add.join(","));
        audit.set("removed", request.remove.join(","));
        self.audit_intent(audit).await?;
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
        self.audited("audit_export", async |audit| {
            self.audit_intent(audit).await?;
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
