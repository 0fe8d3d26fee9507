//! Registering a cluster: the request's checks, the CA and JWKS pinned
//! (given, or fetched once from the cluster), the review of what the
//! reader token may do, replacing a registration, and removing one. Every
//! step that changes trust is audited before it takes effect, with
//! everything the registration trusts, old and new ([`AdminDetails`]).

use std::sync::Arc;

use podseal_core::audit::event::{AdminAction, AdminDetails};
use podseal_core::capsule::NameRule;
use podseal_core::wire::admin::{ClusterInfo, ClusterRequest};

use super::client::{ca_fingerprints, check_api_server_url, check_ca_pem};
use super::{ClusterRegistry, client_of};
use crate::gate::admin::{check_field, refused, storage_refusal};
use crate::gate::{Reason, Refusal};
use crate::identity::PinnedJwks;
use crate::identity::kubernetes::{DEFAULT_MAX_LIFETIME_SECS, MAX_LIFETIME_RANGE_SECS};
use crate::storage::{ClusterRecord, RemovedCluster, Storage};

/// The API server could not answer what registration asked, in words
/// that name the pinned CA when TLS failed (never the token).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unreachable(String);

/// What a registration's token may do beyond reading pods, as the API
/// server's SelfSubjectRulesReview lists it for namespace `default` (its
/// cluster-wide rights show in every namespace; a grant bound in one other
/// namespace only does not show here). Rights every authenticated user has
/// (asking what it may do, reading discovery) are not counted.
async fn review_rights(record: &ClusterRecord) -> Result<Vec<String>, Unreachable> {
    use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
    let client = client_of(record).map_err(|e| Unreachable(e.to_string()))?;
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some("default".into()),
        },
        ..SelfSubjectRulesReview::default()
    };
    let body = serde_json::to_vec(&review).map_err(|e| Unreachable(e.to_string()))?;
    let request = http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| Unreachable(e.to_string()))?;
    let answer: SelfSubjectRulesReview = client.request(request).await.map_err(|e| {
        Unreachable(crate::api_server_error::describe(
            &e,
            Some(&joined_fingerprints(&record.ca_pem)),
        ))
    })?;
    let status = answer
        .status
        .ok_or_else(|| Unreachable("the API server's review has no status".into()))?;
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

/// The pinned CA's fingerprints, for an audit record.
fn fingerprints(ca_pem: &str) -> Vec<String> {
    ca_fingerprints(ca_pem).unwrap_or_default()
}

/// The pinned CA's fingerprints, joined for a message.
fn joined_fingerprints(ca_pem: &str) -> String {
    fingerprints(ca_pem).join(",")
}

/// Reads the JWKS and/or issuer from the cluster, once.
async fn fetch_published(
    record: &mut ClusterRecord,
    jwks: bool,
    issuer: bool,
) -> Result<(), Refusal> {
    let client = client_of(record).map_err(|e| refused(Reason::InvalidArgument, e.to_string()))?;
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

impl<S: Storage> ClusterRegistry<S> {
    /// Registers a cluster (or, with `replace`, changes it): checks the
    /// request, records the intent, takes the JWKS and issuer from the
    /// request or fetches them once from the cluster, reviews what the
    /// reader token may do, records what is pinned, and only then stores
    /// the record and connects it. `audit` is filled as it goes; the caller
    /// audits a refusal with it.
    pub async fn register(
        self: &Arc<Self>,
        request: ClusterRequest,
        audit: &mut AdminDetails,
    ) -> Result<ClusterRecord, Refusal> {
        audit.cluster = Some(request.name.clone());
        check_field("name", &request.name, NameRule::Subdomain)?;
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
            .storage
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
        audit.api_server_url = Some(request.api_server_url.clone());
        audit.ca_sha256 = Some(fingerprints(&request.ca_pem));
        audit.audiences = Some(audiences.clone());
        audit.allow_extra_audiences = Some(request.allow_extra_audiences);
        audit.max_token_lifetime_secs = Some(max_token_lifetime_secs);
        audit.jwks_source = Some(
            if request.jwks.is_some() {
                "given"
            } else {
                "fetched once from the cluster"
            }
            .to_owned(),
        );
        if let Some(old) = &existing {
            audit.action = Some(AdminAction::ClusterReplace.into());
            audit.old_api_server_url = Some(old.api_server_url.clone());
            audit.old_ca_sha256 = Some(fingerprints(&old.ca_pem));
            audit.old_issuer = Some(old.issuer.clone());
            audit.old_audiences = Some(old.audiences.clone());
            audit.old_allow_extra_audiences = Some(old.allow_extra_audiences);
            audit.old_max_token_lifetime_secs = Some(old.max_token_lifetime_secs);
            audit.old_pinned_kids = Some(
                PinnedJwks::parse(&old.jwks)
                    .map(|j| j.kids().into_iter().map(str::to_owned).collect())
                    .unwrap_or_default(),
            );
        }
        self.audit.admin_intent(audit).await?;
        let now = self.audit.clock().now();
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
            fetch_published(
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
            Ok(broad) if broad.is_empty() => {
                audit.token_rights = Some("get, list, watch pods".to_owned());
            }
            Ok(broad) => {
                audit.token_rights_beyond_pods = Some(broad.join("; "));
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
                audit.token_rights = Some(format!("not checked: {why}"));
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
        audit.allow_broad_token = Some(request.allow_broad_token);

        // The keys now pinned, recorded before they take effect.
        audit.issuer = Some(record.issuer.clone());
        audit.pinned_kids = Some(kids);
        self.audit.admin_intent(audit).await?;
        let cluster = self
            .build(&record)
            .map_err(|why| refused(Reason::InvalidArgument, why.to_string()))?;
        self.storage
            .put_cluster(record.clone())
            .await
            .map_err(storage_refusal)?;
        self.add(&record.name, cluster);
        Ok(record)
    }

    /// Removes a cluster's registration with its API keys, policies, pins
    /// and sessions, and drops its connection: a dead registration no
    /// longer keeps `/readyz` at 503. The intent is audited first.
    pub async fn unregister(
        &self,
        name: &str,
        audit: &mut AdminDetails,
    ) -> Result<RemovedCluster, Refusal> {
        audit.cluster = Some(name.to_owned());
        check_field("name", name, NameRule::Subdomain)?;
        if self
            .storage
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
        self.audit.admin_intent(audit).await?;
        let removed = self
            .storage
            .remove_cluster(name)
            .await
            .map_err(storage_refusal)?;
        self.remove(name);
        tracing::info!(
            cluster = name,
            api_keys = removed.api_keys,
            policies = removed.policies,
            sessions = removed.sessions,
            "cluster removed"
        );
        Ok(removed)
    }

    /// A registration as the admin API shows it: what is pinned, and
    /// whether its connection is ready and its keys all pinned.
    pub fn describe(&self, record: ClusterRecord) -> ClusterInfo {
        let pinned_kids = PinnedJwks::parse(&record.jwks)
            .map(|j| j.kids().into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let not_ready = self.not_ready(&record.name);
        let unpinned_kids = self.unpinned_kids(&record.name);
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
}
