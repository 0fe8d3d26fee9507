//! Every storage call within a time bound, for both engines.
//!
//! A storage that hangs — a frozen or full disk under SQLite, a PostgreSQL
//! server that stopped answering, a lock held by someone else — must not
//! hang the server: a release that cannot be decided is refused
//! (`storage_unavailable`, 503) and `/readyz` says why. [`Bounded`] wraps an
//! engine and gives each call [`Bounded::new`]'s bound; past it the call
//! answers [`StorageError::Timeout`].
//!
//! What a timed-out call leaves behind: the engine's work may still finish
//! later (a blocked fsync completes when the disk thaws). That can only
//! add — a `jti` recorded, an audit record of a release that was refused —
//! never take away: a release is answered only after its commit returned.

use std::future::Future;
use std::time::Duration;

use podseal_core::audit::legacy::ChainCheckpoint;
use podseal_core::audit::{AuditRecord, Checkpoint, ExportLine, Hash};

use super::{AdminStore, AuditStore, DigestChange, ReleaseStore, RemovedCluster};
use super::{
    ApiKeyRecord, ClusterRecord, CommitItem, Committed, ContainerInstance, PinOutcome,
    PolicyRecord, RequestContext, SessionRecord, Storage, StorageError, StorageStats,
};

/// An engine whose every call is bounded in time.
pub struct Bounded<S> {
    inner: S,
    bound: Duration,
}

impl<S: Storage> Bounded<S> {
    /// `inner`, each call answering within `bound`.
    pub fn new(inner: S, bound: Duration) -> Self {
        Self { inner, bound }
    }

    async fn within<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        Self::within_bound(self.bound, operation, call).await
    }

    async fn within_bound<T>(
        bound: Duration,
        operation: &'static str,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        tokio::time::timeout(bound, call)
            .await
            .unwrap_or(Err(StorageError::Timeout {
                operation,
                after: bound,
            }))
    }
}

impl<S: Storage> Storage for Bounded<S> {
    fn stats(&self) -> &StorageStats {
        self.inner.stats()
    }
}

impl<S: Storage> ReleaseStore for Bounded<S> {
    async fn request_context(
        &self,
        api_key_hash: [u8; 32],
        session_id: Option<&str>,
    ) -> Result<RequestContext, StorageError> {
        self.within(
            "read request context",
            self.inner.request_context(api_key_hash, session_id),
        )
        .await
    }

    async fn server_secret(
        &self,
        name: &str,
        candidate: [u8; 32],
    ) -> Result<[u8; 32], StorageError> {
        self.within(
            "read server secret",
            self.inner.server_secret(name, candidate),
        )
        .await
    }

    async fn pin_dpop_key(
        &self,
        cluster: &str,
        instance: &ContainerInstance,
        jkt: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<PinOutcome, StorageError> {
        self.within(
            "pin DPoP key",
            self.inner
                .pin_dpop_key(cluster, instance, jkt, expires_at, now),
        )
        .await
    }

    async fn rotate_pin(
        &self,
        cluster: &str,
        pod_uid: &str,
        container: &str,
        old_jkt: &str,
        new_jkt: &str,
    ) -> Result<bool, StorageError> {
        self.within(
            "rotate DPoP pin",
            self.inner
                .rotate_pin(cluster, pod_uid, container, old_jkt, new_jkt),
        )
        .await
    }

    async fn forget_container(
        &self,
        cluster: &str,
        instance: &ContainerInstance,
        now: i64,
    ) -> Result<(u64, bool), StorageError> {
        self.within(
            "forget container",
            self.inner.forget_container(cluster, instance, now),
        )
        .await
    }

    async fn forget_pod(
        &self,
        cluster: &str,
        pod_uid: &str,
        now: i64,
    ) -> Result<u64, StorageError> {
        self.within("forget pod", self.inner.forget_pod(cluster, pod_uid, now))
            .await
    }

    async fn insert_session(&self, session: SessionRecord) -> Result<(), StorageError> {
        self.within("store session", self.inner.insert_session(session))
            .await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StorageError> {
        self.within("read session", self.inner.session(id)).await
    }

    async fn set_session_jkt(&self, id: &str, jkt: &str) -> Result<(), StorageError> {
        self.within("store session key", self.inner.set_session_jkt(id, jkt))
            .await
    }

    async fn record_jti(
        &self,
        jkt: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StorageError> {
        self.within("record jti", self.inner.record_jti(jkt, jti, expires_at))
            .await
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StorageError> {
        self.within("purge expired", self.inner.purge_expired(now))
            .await
    }
}

impl<S: Storage> AdminStore for Bounded<S> {
    async fn init_admin_token(&self, hash: [u8; 32]) -> Result<bool, StorageError> {
        self.within("store admin token", self.inner.init_admin_token(hash))
            .await
    }

    async fn admin_token_hash(&self) -> Result<Option<[u8; 32]>, StorageError> {
        self.within("read admin token", self.inner.admin_token_hash())
            .await
    }

    async fn put_cluster(&self, cluster: ClusterRecord) -> Result<(), StorageError> {
        self.within("store cluster", self.inner.put_cluster(cluster))
            .await
    }

    async fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, StorageError> {
        self.within("read cluster", self.inner.cluster(name)).await
    }

    async fn remove_cluster(&self, name: &str) -> Result<RemovedCluster, StorageError> {
        self.within("remove cluster", self.inner.remove_cluster(name))
            .await
    }

    async fn clusters(&self) -> Result<Vec<ClusterRecord>, StorageError> {
        self.within("read clusters", self.inner.clusters()).await
    }

    async fn insert_api_key(&self, key: ApiKeyRecord) -> Result<(), StorageError> {
        self.within("store API key", self.inner.insert_api_key(key))
            .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StorageError> {
        self.within("read API keys", self.inner.api_keys()).await
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool, StorageError> {
        self.within("revoke API key", self.inner.revoke_api_key(id, now))
            .await
    }

    async fn set_policy(&self, policy: PolicyRecord) -> Result<(), StorageError> {
        self.within("store policy", self.inner.set_policy(policy))
            .await
    }

    async fn change_policy_digests(
        &self,
        change: DigestChange,
        now: i64,
    ) -> Result<PolicyRecord, StorageError> {
        self.within(
            "change policy digests",
            self.inner.change_policy_digests(change, now),
        )
        .await
    }

    async fn policies(&self) -> Result<Vec<PolicyRecord>, StorageError> {
        self.within("read policies", self.inner.policies()).await
    }
}

impl<S: Storage> AuditStore for Bounded<S> {
    async fn commit_batch(&self, items: Vec<CommitItem>) -> Result<Vec<Committed>, StorageError> {
        self.within("commit", self.inner.commit_batch(items)).await
    }

    async fn append_audit(
        &self,
        records: Vec<AuditRecord>,
    ) -> Result<Vec<AuditRecord>, StorageError> {
        self.within("append audit", self.inner.append_audit(records))
            .await
    }

    async fn audit_head(&self) -> Result<(u64, Hash), StorageError> {
        self.within("read audit head", self.inner.audit_head())
            .await
    }

    async fn put_checkpoint(&self, checkpoint: Checkpoint) -> Result<(), StorageError> {
        self.within("store checkpoint", self.inner.put_checkpoint(checkpoint))
            .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StorageError> {
        self.within("read latest checkpoint", self.inner.latest_checkpoint())
            .await
    }

    async fn legacy_checkpoint(&self) -> Result<Option<ChainCheckpoint>, StorageError> {
        self.within("read chain checkpoint", self.inner.legacy_checkpoint())
            .await
    }

    async fn audit_export(&self) -> Result<Vec<ExportLine>, StorageError> {
        // An export reads the whole log: it gets ten bounds.
        Self::within_bound(self.bound * 10, "export audit", self.inner.audit_export()).await
    }
}
