//! Storage: one interface, engines behind it (SQLite now, PostgreSQL next).
//!
//! Everything that decides a release is here, not in one replica's memory:
//! DPoP key pins per pod uid, sessions, `jti` replay records, API key hashes,
//! policies, clusters with their pinned JWKS, and the audit log. Decisions
//! that must be atomic across replicas — pinning a key, recording a `jti`,
//! appending audit records — are single transactions in the engine.

mod postgres;
mod sqlite;

use std::future::Future;

use podseal_core::audit::{AuditRecord, ChainHash, Checkpoint, ExportLine};
use serde::{Deserialize, Serialize};

pub use postgres::PostgresStorage;
pub use sqlite::SqliteStorage;

/// Why storage failed. Messages name the operation, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database reported an error.
    #[error("storage {operation} failed: {message}")]
    Database {
        /// What was being done.
        operation: &'static str,
        /// The engine's message.
        message: String,
    },
    /// A referenced object does not exist (e.g. an API key for an unknown cluster).
    #[error("{0}")]
    NotFound(String),
    /// The database holds something this build cannot read.
    #[error("storage holds an unreadable {0}")]
    Corrupt(&'static str),
}

/// A registered cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// Name used in capsules.
    pub name: String,
    /// Expected `iss` of projected tokens.
    pub issuer: String,
    /// Accepted `aud` values (the podseal server's audience).
    pub audiences: Vec<String>,
    /// API server URL.
    pub api_server_url: String,
    /// CA bundle file.
    pub ca_bundle: String,
    /// Read-only token file.
    pub token_file: String,
    /// The pinned JWKS (JSON text).
    pub jwks: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// An API key, by hash only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public id (shown in lists and audit).
    pub id: String,
    /// SHA-256 of the key.
    #[serde(skip)]
    pub key_hash: [u8; 32],
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

/// The release policy of one service account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Approved image digests (`sha256:<hex>`).
    pub digests: Vec<String>,
    /// Record what strict mode would refuse instead of refusing. Explicit opt-in.
    pub audit_mode: bool,
    /// Require RFC 9449 server nonces in DPoP proofs.
    pub require_nonce: bool,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A release session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session id (random).
    pub id: String,
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Pod name.
    pub pod_name: String,
    /// Pod uid.
    pub pod_uid: String,
    /// Thumbprint of the pinned DPoP key.
    pub jkt: String,
    /// The pod's ephemeral X25519 public key.
    pub recipient_key: Vec<u8>,
    /// The API key that opened it.
    pub api_key_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// When revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// What happened when a DPoP key asked to be pinned to a pod uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinOutcome {
    /// No live pin existed; this key is now pinned.
    Pinned,
    /// This key was already the pin (its expiry may have been extended).
    AlreadyPinned,
    /// Another key holds the pin: refuse.
    OtherKeyPinned,
}

/// The storage interface every engine implements.
pub trait Storage: Send + Sync + 'static {
    /// Stores the admin token hash if none exists; true when this call stored it.
    fn init_admin_token(
        &self,
        hash: [u8; 32],
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// The admin token hash.
    fn admin_token_hash(
        &self,
    ) -> impl Future<Output = Result<Option<[u8; 32]>, StorageError>> + Send;

    /// The server-wide secret called `name`, shared by every replica: stores
    /// `candidate` if none exists, and returns the stored one (used to MAC
    /// DPoP server nonces so any replica can check another's).
    fn server_secret(
        &self,
        name: &str,
        candidate: [u8; 32],
    ) -> impl Future<Output = Result<[u8; 32], StorageError>> + Send;

    /// Adds or replaces a cluster.
    fn put_cluster(
        &self,
        cluster: ClusterRecord,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// One cluster.
    fn cluster(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ClusterRecord>, StorageError>> + Send;
    /// Every cluster.
    fn clusters(&self) -> impl Future<Output = Result<Vec<ClusterRecord>, StorageError>> + Send;

    /// Adds an API key (its cluster must exist).
    fn insert_api_key(
        &self,
        key: ApiKeyRecord,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// The key with this hash, revoked or not.
    fn api_key_by_hash(
        &self,
        hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, StorageError>> + Send;
    /// Every key.
    fn api_keys(&self) -> impl Future<Output = Result<Vec<ApiKeyRecord>, StorageError>> + Send;
    /// Revokes a key; false when no unrevoked key has this id.
    fn revoke_api_key(
        &self,
        id: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Adds or replaces a policy (its cluster must exist).
    fn set_policy(
        &self,
        policy: PolicyRecord,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// One policy.
    fn policy(
        &self,
        cluster: &str,
        namespace: &str,
        service_account: &str,
    ) -> impl Future<Output = Result<Option<PolicyRecord>, StorageError>> + Send;
    /// Every policy.
    fn policies(&self) -> impl Future<Output = Result<Vec<PolicyRecord>, StorageError>> + Send;

    /// Pins `jkt` to a pod uid unless another unexpired key holds it (atomic).
    fn pin_dpop_key(
        &self,
        cluster: &str,
        pod_uid: &str,
        jkt: &str,
        expires_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<PinOutcome, StorageError>> + Send;
    /// Moves the pin from `old_jkt` to `new_jkt`; false when `old_jkt` is not the pin.
    fn rotate_pin(
        &self,
        cluster: &str,
        pod_uid: &str,
        old_jkt: &str,
        new_jkt: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Drops the pin and revokes the sessions of a pod uid (the pod is gone).
    fn forget_pod(
        &self,
        cluster: &str,
        pod_uid: &str,
        now: i64,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Stores a new session.
    fn insert_session(
        &self,
        session: SessionRecord,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// One session, revoked or not.
    fn session(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StorageError>> + Send;
    /// Points a session at its rotated DPoP key.
    fn set_session_jkt(
        &self,
        id: &str,
        jkt: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Records a proof's (`jkt`, `jti`); false when it was seen before (a replay).
    fn record_jti(
        &self,
        jkt: &str,
        jti: &str,
        expires_at: i64,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Deletes expired replay records, pins and sessions; returns rows removed.
    fn purge_expired(&self, now: i64) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Appends records in one durable transaction, assigning `seq`; returns them as stored.
    fn append_audit(
        &self,
        records: Vec<AuditRecord>,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StorageError>> + Send;
    /// Size of the log and its head hash.
    fn audit_head(&self) -> impl Future<Output = Result<(u64, ChainHash), StorageError>> + Send;
    /// Stores a checkpoint.
    fn put_checkpoint(
        &self,
        checkpoint: Checkpoint,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// The whole log as export lines, each checkpoint after the record it covers up to.
    fn audit_export(&self) -> impl Future<Output = Result<Vec<ExportLine>, StorageError>> + Send;
}

/// The export: records in order, each checkpoint right after the record it
/// covers up to (checkpoints of an empty log first). Shared by the engines.
fn export_lines(
    records: Vec<(u64, Vec<u8>, ChainHash)>,
    mut checkpoints: Vec<(u64, Checkpoint)>,
) -> Vec<ExportLine> {
    checkpoints.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    let mut lines = Vec::with_capacity(records.len() + checkpoints.len());
    let mut take = |upto: u64, lines: &mut Vec<ExportLine>| {
        while checkpoints.last().is_some_and(|(size, _)| *size <= upto) {
            if let Some((_, checkpoint)) = checkpoints.pop() {
                lines.push(ExportLine::Checkpoint(checkpoint));
            }
        }
    };
    take(0, &mut lines);
    for (seq, entry, hash) in records {
        lines.push(ExportLine::record(seq, &entry, &hash));
        take(seq, &mut lines);
    }
    take(u64::MAX, &mut lines);
    lines
}

/// Refuses a database whose schema is newer than this build's migrations.
fn check_schema_version(current: i64, latest: i64) -> Result<(), StorageError> {
    if current > latest {
        return Err(StorageError::Database {
            operation: "migrate",
            message: format!(
                "database schema version {current} is newer than this build's {latest}; upgrade podseal"
            ),
        });
    }
    Ok(())
}
