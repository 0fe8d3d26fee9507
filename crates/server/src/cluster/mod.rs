//! Clusters: the one owner of registering, connecting, refreshing and
//! revoking for every cluster the server trusts.
//!
//! [`ClusterRegistry`] holds each registered cluster's connection
//! ([`ConnectedCluster`]: its pinned token verifier, its pod view and the
//! stored record it was built from), or why it could not be connected. The
//! release service reads it on every request (gates 2 and 4), the admin
//! service writes it when a cluster is registered, and its own tasks keep it
//! true: a refresh connects what another replica registered or changed, and
//! one task per cluster revokes the sessions and DPoP pins of pods its view
//! reports deleted or replaced. [`registration`] registers, replaces and
//! removes one (the admin service asks it); [`client`] is how a cluster is
//! reached.
//!
//! Entries are keyed by the name capsules use and compared as whole stored
//! records; nothing here is Kubernetes-specific except [`connect`]. A trust
//! source of another kind (a SPIFFE bundle, a CI OIDC issuer) is another
//! connection built from its own record, kept and refreshed the same way.

pub mod client;
pub mod registration;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use podseal_core::audit::event::PodGoneDetails;
use podseal_core::audit::{Event, Outcome};

use crate::audit_log::AuditWriter;
use crate::gate::{Gate, Reason, Refusal};
use crate::identity::cache::TokenCache;
use crate::identity::{KubernetesTokens, PinnedJwks};
use crate::pod_view::{PodEvent, PodView, ViewConfig};
use crate::storage::{ClusterRecord, ContainerInstance, Storage};
use client::{ClusterRegistration, kube_client};

/// A registered cluster as the release path needs it.
pub struct ConnectedCluster {
    /// Gate 2 for this cluster.
    pub tokens: KubernetesTokens,
    /// Gate 4's view.
    pub view: Arc<PodView>,
    /// The stored record it was connected from (none when built by hand):
    /// a replica reconnects a cluster only when its stored record differs.
    pub record: Option<ClusterRecord>,
    /// Tokens verified by `tokens`, by hash, until their effective expiry;
    /// a replaced registration starts with an empty one.
    pub token_cache: TokenCache,
}

/// Why a stored cluster cannot be connected; its releases are refused
/// and readiness names it, in these words.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Registered before registrations pinned the cluster's CA.
    #[error(
        "cluster {cluster} was registered before its CA was pinned: register it again with `podseal cluster add {cluster} … --replace`"
    )]
    NoPinnedCa {
        /// The cluster.
        cluster: String,
    },
    /// Its client cannot be built (no reader token, a bad CA or URL).
    #[error(transparent)]
    Client(#[from] client::ClusterError),
    /// The pinned JWKS does not parse.
    #[error(transparent)]
    Jwks(#[from] crate::identity::jwks::JwksError),
}

/// Builds the connection of a stored cluster: the pinned token verifier
/// and a started pod view. Contacts nothing yet (the view connects in the
/// background and refuses until it has listed the pods).
pub fn connect(
    record: &ClusterRecord,
    views: ViewConfig,
    leeway_secs: i64,
) -> Result<ConnectedCluster, ConnectError> {
    if record.ca_pem.is_empty() {
        return Err(ConnectError::NoPinnedCa {
            cluster: record.name.clone(),
        });
    }
    // A registration made when the server read a token file named by the
    // request: refused first, with the way out (the one thing to fix).
    if record.reader_token.is_empty() {
        return Err(client::ClusterError::NoToken {
            cluster: record.name.clone(),
        }
        .into());
    }
    let jwks = PinnedJwks::parse(&record.jwks)?;
    let client = client_of(record)?;
    Ok(ConnectedCluster {
        tokens: KubernetesTokens {
            issuer: record.issuer.clone(),
            audiences: record.audiences.clone(),
            jwks,
            leeway_secs,
            max_lifetime_secs: record.max_token_lifetime_secs,
            allow_extra_audiences: record.allow_extra_audiences,
        },
        view: Arc::new(PodView::start(client, views)),
        record: Some(record.clone()),
        token_cache: TokenCache::default(),
    })
}

/// The sentence for a cluster that signs with keys not pinned here.
fn drift_line(name: &str, unpinned: &[String]) -> String {
    format!(
        "cluster {name} signs tokens with key ids not pinned here ({}): its pods' new tokens are refused (token/kid_unknown); re-pin with `podseal cluster add {name} … --replace`",
        unpinned.join(", ")
    )
}

/// The key ids of a JWKS text (`None`: not a JWKS).
fn published_kids(jwks: &str) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_str(jwks).ok()?;
    let keys = value.get("keys")?.as_array()?;
    Some(
        keys.iter()
            .filter_map(|key| key.get("kid")?.as_str().map(str::to_owned))
            .collect(),
    )
}

/// The one Kubernetes client of a stored cluster: its pod view, the
/// signing-key watch and registration all reach the cluster through it.
fn client_of(record: &ClusterRecord) -> Result<kube::Client, client::ClusterError> {
    kube_client(&registration(record))
}

/// How a stored cluster is reached.
pub fn registration(record: &ClusterRecord) -> ClusterRegistration {
    ClusterRegistration {
        name: record.name.clone(),
        api_server_url: record.api_server_url.clone(),
        ca_pem: record.ca_pem.clone(),
        token: record.reader_token.clone(),
    }
}

/// Every cluster the server trusts, connected or not.
pub struct ClusterRegistry<S: Storage> {
    storage: Arc<S>,
    audit: Arc<AuditWriter<S>>,
    views: ViewConfig,
    leeway_secs: i64,
    connected: RwLock<HashMap<String, Arc<ConnectedCluster>>>,
    /// Registered clusters that could not be connected, and why.
    unconnected: RwLock<HashMap<String, String>>,
    /// How often each cluster's published JWKS is compared with the pinned one.
    jwks_check: Duration,
    /// Key ids a cluster publishes that are not pinned (it rotated its
    /// token-signing key): its pods' new tokens are refused `kid_unknown`.
    unpinned_kids: RwLock<HashMap<String, Vec<String>>>,
}

/// How often a cluster's published JWKS is read, by default.
pub const JWKS_CHECK_INTERVAL: Duration = Duration::from_secs(60);

impl<S: Storage> ClusterRegistry<S> {
    /// An empty registry over `storage` (where registrations live and
    /// revocations are made), auditing revocations through `audit` and
    /// reading its clock; pod views are built with `views` and tokens
    /// verified with `leeway_secs` of clock leeway.
    pub fn new(
        storage: Arc<S>,
        audit: Arc<AuditWriter<S>>,
        views: ViewConfig,
        leeway_secs: i64,
    ) -> Self {
        Self {
            storage,
            audit,
            views,
            leeway_secs,
            connected: RwLock::new(HashMap::new()),
            unconnected: RwLock::new(HashMap::new()),
            jwks_check: JWKS_CHECK_INTERVAL,
            unpinned_kids: RwLock::new(HashMap::new()),
        }
    }

    /// Compares each cluster's published JWKS with its pinned one every
    /// `every` (default [`JWKS_CHECK_INTERVAL`]).
    pub fn with_jwks_check(mut self, every: Duration) -> Self {
        self.jwks_check = every;
        self
    }

    /// Key ids `name` publishes that are not pinned (empty: none, or not
    /// read yet).
    pub fn unpinned_kids(&self, name: &str) -> Vec<String> {
        self.unpinned_kids
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// What an operator must act on although releases can be decided: a
    /// cluster that signs tokens with keys not pinned here. One line each.
    pub fn warnings(&self) -> Vec<String> {
        let drift = self
            .unpinned_kids
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut lines: Vec<String> = drift
            .iter()
            .filter(|(_, kids)| !kids.is_empty())
            .map(|(name, kids)| drift_line(name, kids))
            .collect();
        lines.sort();
        lines
    }

    /// Builds a connection for `record` with this registry's settings,
    /// without adding it (the admin service builds it, then stores the
    /// record, then adds it: a record that cannot connect is never stored).
    pub fn build(&self, record: &ClusterRecord) -> Result<ConnectedCluster, ConnectError> {
        connect(record, self.views, self.leeway_secs)
    }

    /// Connects a stored cluster and starts releasing to it (replacing its
    /// previous connection), or records why it cannot be connected: its
    /// releases are then refused and readiness names it. Needs a Tokio
    /// runtime.
    pub fn connect(self: &Arc<Self>, record: &ClusterRecord) -> Result<(), ConnectError> {
        match self.build(record) {
            Ok(cluster) => {
                self.add(&record.name, cluster);
                Ok(())
            }
            Err(why) => {
                tracing::error!(cluster = %record.name, %why, "cannot connect a registered cluster; its releases are refused");
                self.mark_unconnected(&record.name, &why.to_string());
                Err(why)
            }
        }
    }

    /// Starts releasing to `name` with `cluster` (or replaces its tokens and
    /// view), and spawns the task that revokes the sessions of its deleted
    /// or replaced pods. Needs a Tokio runtime.
    pub fn add(self: &Arc<Self>, name: &str, cluster: ConnectedCluster) {
        let receiver = cluster.view.subscribe();
        // Its keys and token rules may have changed: the new connection
        // brings its own, empty token cache.
        self.connected
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), Arc::new(cluster));
        self.unconnected
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        tokio::spawn(Self::revoke_gone_pods(
            Arc::downgrade(self),
            name.to_owned(),
            receiver,
        ));
        if let Some(cluster) = self.get(name) {
            tokio::spawn(Self::watch_signing_keys(
                Arc::downgrade(self),
                name.to_owned(),
                Arc::downgrade(&cluster),
            ));
        }
    }

    /// Every `jwks_check`, reads the JWKS the cluster publishes and records
    /// the key ids it has that are not pinned, logging a change. Runs while
    /// this connection is the cluster's (a replaced one has its own task).
    async fn watch_signing_keys(
        registry: Weak<Self>,
        name: String,
        cluster: Weak<ConnectedCluster>,
    ) {
        let Some(every) = registry.upgrade().map(|r| r.jwks_check) else {
            return;
        };
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            let (Some(registry), Some(cluster)) = (registry.upgrade(), cluster.upgrade()) else {
                return;
            };
            if !registry
                .get(&name)
                .is_some_and(|c| Arc::ptr_eq(&c, &cluster))
            {
                return;
            }
            let Ok(request) = http::Request::get("/openid/v1/jwks").body(Vec::new()) else {
                return;
            };
            let published = match cluster.view.client().request_text(request).await {
                Ok(text) => published_kids(&text),
                Err(error) => {
                    tracing::debug!(cluster = %name, error = %crate::api_server_error::describe(&error, None), "cannot read the cluster's JWKS to compare it with the pinned one");
                    continue;
                }
            };
            let Some(published) = published else {
                tracing::debug!(cluster = %name, "the cluster's JWKS is not a JWKS");
                continue;
            };
            let pinned = cluster.tokens.jwks.kids();
            let mut unpinned: Vec<String> = published
                .into_iter()
                .filter(|kid| !pinned.contains(&kid.as_str()))
                .collect();
            unpinned.sort();
            let mut drift = registry
                .unpinned_kids
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let before = drift.insert(name.clone(), unpinned.clone());
            if before.as_ref() != Some(&unpinned) {
                if unpinned.is_empty() {
                    tracing::info!(cluster = %name, "the cluster's published token-signing keys are all pinned");
                } else {
                    tracing::warn!(cluster = %name, "{}", drift_line(&name, &unpinned));
                }
            }
        }
    }

    /// Forgets a cluster: its connection (its pod view stops once requests
    /// in flight let it go) or its not-connected entry.
    pub fn remove(&self, name: &str) {
        self.unpinned_kids
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        self.connected
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        self.unconnected
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// Records a registered cluster that could not be connected.
    pub fn mark_unconnected(&self, name: &str, why: &str) {
        self.unconnected
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), why.to_owned());
    }

    /// The connected cluster called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<ConnectedCluster>> {
        self.connected
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The connected cluster names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .connected
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Registered clusters that could not be connected, with why, sorted.
    pub fn unconnected(&self) -> Vec<(String, String)> {
        let map = self
            .unconnected
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<(String, String)> =
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        list.sort();
        list
    }

    /// Why a cluster's releases would be refused now (none when its view can
    /// decide): its view's staleness, or why it is not connected.
    pub fn not_ready(&self, name: &str) -> Option<String> {
        match self.get(name) {
            Some(cluster) => cluster.view.staleness(),
            None => Some(
                self.unconnected()
                    .into_iter()
                    .find(|(unconnected, _)| unconnected == name)
                    .map_or_else(
                        || "not connected (see the server log)".to_owned(),
                        |(_, why)| format!("not connected: {why}"),
                    ),
            ),
        }
    }

    /// What keeps a cluster from deciding now, one line per cluster (empty
    /// when every one is ready). The reason a cluster is not connected (it
    /// may name server paths) is in the log, not here: this feeds the
    /// unauthenticated `/readyz`.
    pub fn readiness(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for name in self.names() {
            if let Some(reason) = self.get(&name).and_then(|c| c.view.staleness()) {
                problems.push(format!("cluster {name}: {reason}"));
            }
        }
        for (name, _) in self.unconnected() {
            problems.push(format!(
                "cluster {name}: not connected (see the server log)"
            ));
        }
        problems
    }

    /// Spawns the refresh: every `every`, connects clusters registered or
    /// changed through another replica, and drops the ones removed. A cluster whose stored record equals
    /// the one it was connected from (also when this replica made the
    /// change) is left alone, so its pod view keeps answering; any
    /// difference reconnects (whole records are compared, not `updated_at`:
    /// two changes within one second share it). `failed` holds records that
    /// could not be connected; they are tried again when they change.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        mut failed: HashMap<String, ClusterRecord>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let records = match registry.storage.clusters().await {
                    Ok(records) => records,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the registered clusters");
                        continue;
                    }
                };
                let stored: std::collections::HashSet<String> =
                    records.iter().map(|r| r.name.clone()).collect();
                failed.retain(|name, _| stored.contains(name));
                let known = registry
                    .names()
                    .into_iter()
                    .chain(registry.unconnected().into_iter().map(|(name, _)| name));
                for name in known.filter(|name| !stored.contains(name)) {
                    // Read again: it may have been added since the list.
                    if let Ok(None) = registry.storage.cluster(&name).await {
                        registry.remove(&name);
                        tracing::info!(cluster = %name, "dropped a cluster removed elsewhere");
                    }
                }
                for record in records {
                    let connected = registry
                        .get(&record.name)
                        .is_some_and(|c| c.record.as_ref() == Some(&record));
                    if connected || failed.get(&record.name) == Some(&record) {
                        continue;
                    }
                    if registry.connect(&record).is_ok() {
                        failed.remove(&record.name);
                        tracing::info!(cluster = %record.name, "connected a cluster registered or changed elsewhere");
                    } else {
                        failed.insert(record.name.clone(), record);
                    }
                }
            }
        })
    }

    /// Audits a revocation the pod view caused (no request waits on it: a
    /// failed write is logged).
    async fn audit_revocation(&self, refusal: &Refusal, details: &PodGoneDetails) {
        let record = self.audit.record(
            Event::SessionRevoked,
            Outcome::Refused,
            Some(refusal),
            details,
        );
        if self.audit.write(vec![record]).await.is_err() {
            tracing::error!("could not audit a session revocation");
        }
    }

    /// Drops the pin and revokes the sessions of a container instance that
    /// stopped running (it exited, or a restart replaced it), and audits it
    /// when there was something to end. Every replica's view sees the same
    /// change; the first to act ends it, the others find nothing.
    async fn end_container(
        &self,
        cluster: &str,
        namespace: &str,
        pod: &str,
        instance: ContainerInstance,
    ) {
        let now = self.audit.clock().now();
        match self.storage.forget_container(cluster, &instance, now).await {
            Ok((0, false)) => {}
            Ok((revoked, unpinned)) => {
                tracing::info!(
                    cluster,
                    namespace,
                    pod,
                    container = %instance.container,
                    sessions_revoked = revoked,
                    "a container restarted or stopped: its DPoP pin and sessions ended"
                );
                let details = PodGoneDetails {
                    cluster: Some(cluster.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    pod: Some(pod.to_owned()),
                    pod_uid: Some(instance.pod_uid),
                    container: Some(instance.container),
                    container_id: Some(instance.container_id),
                    pin_dropped: Some(unpinned),
                    sessions_revoked: Some(revoked),
                };
                let refusal = Refusal::new(
                    Gate::LivePod,
                    Reason::ContainerRestarted,
                    "the container instance restarted or stopped",
                );
                self.audit_revocation(&refusal, &details).await;
            }
            Err(error) => {
                tracing::error!(%error, "could not revoke the sessions of a restarted container")
            }
        }
    }

    /// Revokes sessions and DPoP pins of pods the view of `cluster` reports
    /// deleted or replaced (a new uid under the same name), and audits each
    /// revocation. Runs until the view (replaced by a new connection) or the
    /// registry is dropped: it holds the registry weakly.
    async fn revoke_gone_pods(
        registry: Weak<Self>,
        cluster: String,
        mut events: tokio::sync::broadcast::Receiver<PodEvent>,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                // Missed events: the pods involved are also refused by gate 4.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            let (namespace, name, uid) = match event {
                PodEvent::Deleted {
                    namespace,
                    name,
                    uid,
                } => (namespace, name, uid),
                PodEvent::Replaced {
                    namespace,
                    name,
                    old_uid,
                    ..
                } => (namespace, name, old_uid),
                PodEvent::ContainerEnded {
                    namespace,
                    name,
                    uid,
                    container,
                    container_id,
                } => {
                    let Some(registry) = registry.upgrade() else {
                        return;
                    };
                    let instance = ContainerInstance {
                        pod_uid: uid,
                        container,
                        container_id,
                    };
                    registry
                        .end_container(&cluster, &namespace, &name, instance)
                        .await;
                    continue;
                }
                PodEvent::Changed { .. } => continue,
            };
            let Some(registry) = registry.upgrade() else {
                return;
            };
            let now = registry.audit.clock().now();
            match registry.storage.forget_pod(&cluster, &uid, now).await {
                Ok(revoked) => {
                    let details = PodGoneDetails {
                        cluster: Some(cluster.clone()),
                        namespace: Some(namespace),
                        pod: Some(name),
                        pod_uid: Some(uid),
                        sessions_revoked: Some(revoked),
                        ..PodGoneDetails::default()
                    };
                    let refusal = Refusal::new(
                        Gate::LivePod,
                        Reason::PodGone,
                        "the pod was deleted or replaced",
                    );
                    registry.audit_revocation(&refusal, &details).await;
                }
                Err(error) => {
                    tracing::error!(%error, "could not revoke the sessions of a deleted pod")
                }
            }
        }
    }
}
