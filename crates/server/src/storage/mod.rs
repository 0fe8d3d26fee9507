//! Storage: one interface in three domains ([`ReleaseStore`], [`AdminStore`],
//! [`AuditStore`], together [`Storage`]), two engines behind it (SQLite,
//! PostgreSQL).
//!
//! Everything that decides a release is here, not in one replica's memory:
//! DPoP key pins per container instance, sessions, `jti` replay records, API key hashes,
//! policies, clusters with their pinned JWKS, and the audit log. Decisions
//! that must be atomic across replicas — pinning a key, recording a `jti`,
//! appending audit records — are single transactions in the engine.
//!
//! The release hot path needs two calls: [`ReleaseStore::request_context`] reads
//! the API key, its policy and the session in one round trip, and
//! [`AuditStore::commit_batch`] records the proofs' `jti`s and appends the
//! audit records of many requests in one durable transaction (group commit,
//! see `crate::group_commit`). Every engine counts its round trips and
//! commits in [`StorageStats`] for `/metrics` and the load benchmark.
//!
//! The audit log is an RFC 9162 Merkle tree: each row keeps a record's
//! exact bytes and its leaf hash, and one row (`audit_frontier`) keeps the
//! roots of the tree's perfect subtrees, updated in the same transaction
//! as the records it covers. An append reads and writes that one row, so a
//! batch costs O(batch + log n), and every replica appends to one tree.

mod bounded;
mod postgres;
mod sqlite;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use podseal_core::audit::legacy::{CHAIN_GENESIS, ChainCheckpoint, chain};
use podseal_core::audit::{AuditRecord, Checkpoint, ExportLine, Frontier, Hash, leaf_hash};

pub use bounded::Bounded;
use bounded::bounded_stores;
pub use podseal_core::wire::admin::ReaderToken;
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
    /// The engine did not answer in time (a frozen disk, a lock held
    /// elsewhere, an unreachable database server).
    #[error("storage {operation} did not answer within {} ms", .after.as_millis())]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The bound.
        after: std::time::Duration,
    },
}

/// A registered cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRecord {
    /// Name used in capsules.
    pub name: String,
    /// Expected `iss` of projected tokens.
    pub issuer: String,
    /// Accepted `aud` values (the podseal-serverr's audience).
    pub audiences: Vec<String>,
    /// API server URL.
    pub api_server_url: String,
    /// The pinned CA certificate(s), PEM: what the connection trusts.
    /// Empty for a registration made before CAs were pinned (schema
    /// version 1), which is not connected until registered again.
    pub ca_pem: String,
    /// The read-only bearer token uploaded at registration (never shown;
    /// `Debug` redacts it). Empty for a registration made when the server
    /// read a token file named by the request (schema version 5 or older),
    /// which is not connected until registered again.
    pub reader_token: ReaderToken,
    /// The pinned JWKS (JSON text).
    pub jwks: String,
    /// Accept tokens whose `aud` also names other relying parties.
    pub allow_extra_audiences: bool,
    /// The longest token lifetime accepted, seconds.
    pub max_token_lifetime_secs: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// An API key, by hash only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public id (shown in lists and audit).
    pub id: String,
    /// SHA-256 of the key (never leaves the server: the wire type,
    /// `podseal_core::wire::admin::ApiKeyInfo`, has no such field).
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Session id (random), a bearer secret: engines store only its
    /// [`session_id_hash`] and fill this in from the id a lookup presented.
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
    /// The container the session was opened from (`""`: a session opened
    /// before version 5, bound to the pod only).
    pub container: String,
    /// The `containerID` of the container instance that opened it: when
    /// that instance stops running, the session ends (`""`: before version 5).
    pub container_id: String,
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

/// One running instance of one container of a pod: what a DPoP key is
/// pinned to. A restart of the container is a new instance (a new
/// `containerID`); the pod and the container name stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInstance {
    /// The pod's uid.
    pub pod_uid: String,
    /// The container's name.
    pub container: String,
    /// The `containerID` of the running instance.
    pub container_id: String,
}

/// What happened when a DPoP key asked to be pinned to a container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinOutcome {
    /// No live pin existed for the container; this key is now pinned.
    Pinned,
    /// This key was already the pin (its expiry may have been extended).
    AlreadyPinned,
    /// Another key was pinned to an earlier instance of the container (it
    /// restarted): this key replaced it, and that instance's sessions were
    /// revoked in the same transaction.
    Replaced {
        /// The thumbprint that was pinned.
        old_jkt: String,
        /// The `containerID` of the earlier instance.
        old_container_id: String,
        /// Sessions revoked with it.
        sessions_revoked: u64,
    },
    /// Another key holds the pin of this very instance (or a pod-wide pin
    /// made before version 5): refuse.
    OtherKeyPinned,
}

/// What one release request needs from storage, read in one round trip.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The API key with the request's hash, revoked or not.
    pub api_key: Option<ApiKeyRecord>,
    /// The policy of the key's cluster, namespace and service account.
    pub policy: Option<PolicyRecord>,
    /// The session named by the request, revoked or not.
    pub session: Option<SessionRecord>,
}

/// A DPoP proof's replay record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JtiRecord {
    /// Thumbprint of the proof's key.
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
    /// Unix seconds after which the record may be purged.
    pub expires_at: i64,
}

/// One request's durable write in a group commit.
#[derive(Debug, Clone, Default)]
pub struct CommitItem {
    /// A proof to record; when it was seen before, the item is a replay.
    pub jti: Option<JtiRecord>,
    /// Appended when the `jti` is fresh (or there is none).
    pub records: Vec<AuditRecord>,
    /// Appended instead when the `jti` was seen before.
    pub if_replayed: Vec<AuditRecord>,
}

/// What a [`CommitItem`] became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// False when the item's `jti` was seen before (a replay).
    pub fresh: bool,
    /// The records stored for it, with their sequence numbers.
    pub stored: Vec<AuditRecord>,
}

/// Round trips and commits an engine has made, for `/metrics`.
#[derive(Debug, Default)]
pub struct StorageStats {
    round_trips: AtomicU64,
    commits: AtomicU64,
}

impl StorageStats {
    /// Counts `n` waits on the database (a pipelined flight counts once).
    pub fn round_trips(&self, n: u64) {
        self.round_trips.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one durable commit.
    pub fn commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// (round trips, commits) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.round_trips.load(Ordering::Relaxed),
            self.commits.load(Ordering::Relaxed),
        )
    }
}

/// The storage interface every engine implements: the three domains below,
/// and the engine's counters.
///
/// Each method's atomicity and replica rule is written once, on the trait
/// method; both engines ([`SqliteStorage`], one replica; [`PostgresStorage`],
/// several replicas on one database) and the [`Bounded`] wrapper implement
/// exactly that. "Atomic" means one engine transaction: all of it or none,
/// decided by the database, never by one replica's memory. The storage
/// suite (`crates/server/tests/storage/`) runs every rule against both
/// engines, and the replica tests run the cross-replica ones with real
/// processes.
pub trait Storage: ReleaseStore + AdminStore + AuditStore + Send + Sync + 'static {
    /// This engine's round-trip and commit counters.
    fn stats(&self) -> &StorageStats;
}

bounded_stores! {
    /// Release state: DPoP pins, sessions, replay records, the shared nonce
    /// secret, and the one read the hot path needs.
    pub trait ReleaseStore {
        /// The API key with this hash, its policy and the session `session_id`,
        /// in one round trip.
        ///
        /// Atomicity: one consistent read (one statement on PostgreSQL, one read
        /// transaction on SQLite), so the key, its policy and the session are of
        /// the same moment. Replicas: reads what any replica committed.
        fn request_context(
            &self,
            api_key_hash: [u8; 32],
            session_id: Option<&str>,
        ) -> RequestContext = "read request context";

        /// The server-wide secret called `name`: stores `candidate` if none
        /// exists, and returns the stored one (used to MAC DPoP server nonces so
        /// any replica can check another's).
        ///
        /// Atomicity: insert-if-absent then read, in one statement (PostgreSQL)
        /// or one transaction (SQLite). Replicas: replicas starting together all
        /// return the one that was stored first.
        fn server_secret(&self, name: &str, candidate: [u8; 32]) -> [u8; 32] = "read server secret";

        /// Pins `jkt` to a container instance unless another unexpired key holds
        /// the pin of that same instance. A pin of an earlier instance of the
        /// container (it restarted: another `containerID`) is replaced, and the
        /// sessions of that instance are revoked with it. A live pod-wide pin
        /// made before version 5 (container `""`) of another key refuses, as it
        /// did then.
        ///
        /// Atomicity: one transaction under the pin's row lock (PostgreSQL
        /// `INSERT … ON CONFLICT DO NOTHING`, then `SELECT … FOR UPDATE`; SQLite's
        /// single writer); the replacement and the revocation are in it.
        /// Replicas: two replicas pinning different keys for one instance at
        /// once: exactly one gets [`PinOutcome::Pinned`] (or `Replaced`), the
        /// other [`PinOutcome::OtherKeyPinned`].
        fn pin_dpop_key(
            &self,
            cluster: &str,
            instance: &ContainerInstance,
            jkt: &str,
            expires_at: i64,
            now: i64,
        ) -> PinOutcome = "pin DPoP key";

        /// Moves the pin of a pod's container from `old_jkt` to `new_jkt`;
        /// false when `old_jkt` is not the pin.
        ///
        /// Atomicity: one conditional update (compare-and-swap on `old_jkt`).
        /// Replicas: of two rotations from the same key, one wins.
        fn rotate_pin(
            &self,
            cluster: &str,
            pod_uid: &str,
            container: &str,
            old_jkt: &str,
            new_jkt: &str,
        ) -> bool = "rotate DPoP pin";

        /// Drops the pins and revokes the sessions of a pod uid (the pod is
        /// gone); returns the sessions revoked.
        ///
        /// Atomicity: pins and sessions in one transaction, so no session
        /// survives its pod's pin. Replicas: every replica's view sees the
        /// pod go and calls this; the second call finds nothing and returns 0.
        fn forget_pod(&self, cluster: &str, pod_uid: &str, now: i64) -> u64 = "forget pod";

        /// Drops the pin of a container instance that stopped running (exited,
        /// or replaced by a restart) and revokes its sessions; returns the
        /// sessions revoked and whether a pin was dropped. A pin of a newer
        /// instance is left alone.
        ///
        /// Atomicity: pin and sessions in one transaction. Replicas: every
        /// replica's view sees the instance end and calls this; the second call
        /// finds nothing.
        fn forget_container(
            &self,
            cluster: &str,
            instance: &ContainerInstance,
            now: i64,
        ) -> (u64, bool) = "forget container";

        /// Stores a new session (its id only as a hash).
        ///
        /// Atomicity: one insert. Replicas: visible to every replica once it
        /// returns.
        fn insert_session(&self, session: SessionRecord) -> () = "store session";

        /// One session, revoked or not. Atomicity: one read.
        fn session(&self, id: &str) -> Option<SessionRecord> = "read session";

        /// Points a session at its rotated DPoP key.
        ///
        /// Atomicity: one update; called after [`ReleaseStore::rotate_pin`] won,
        /// so the pin decides the race and this only follows it.
        fn set_session_jkt(&self, id: &str, jkt: &str) -> () = "store session key";

        /// Records a proof's (`jkt`, `jti`); false when it was seen before (a
        /// replay).
        ///
        /// Atomicity: a primary key decides. Replicas: the same proof sent to
        /// two replicas at once is accepted by exactly one.
        fn record_jti(&self, jkt: &str, jti: &str, expires_at: i64) -> bool = "record jti";

        /// Deletes expired replay records, pins and sessions; returns rows
        /// removed.
        ///
        /// Atomicity: one transaction. Replicas: any replica may run it; it
        /// only removes what no decision can use any more (expired at `now`).
        fn purge_expired(&self, now: i64) -> u64 = "purge expired";
    }
}

bounded_stores! {
    /// Admin state: the admin token, clusters with their pinned keys and CA,
    /// API keys (as hashes), and policies.
    pub trait AdminStore {
        /// Stores the admin token hash if none exists; true when this call
        /// stored it.
        ///
        /// Atomicity: insert-if-absent. Replicas: of replicas initialising one
        /// store together, exactly one stores its token (and shows it).
        fn init_admin_token(&self, hash: [u8; 32]) -> bool = "store admin token";

        /// The admin token hash. Atomicity: one read.
        fn admin_token_hash(&self) -> Option<[u8; 32]> = "read admin token";

        /// Adds or replaces a cluster.
        ///
        /// Atomicity: one upsert of the whole record (pinned JWKS and CA with
        /// it). Replicas: the others connect it at their next cluster refresh,
        /// comparing whole records.
        fn put_cluster(&self, cluster: ClusterRecord) -> () = "store cluster";

        /// One cluster. Atomicity: one read.
        fn cluster(&self, name: &str) -> Option<ClusterRecord> = "read cluster";

        /// Every cluster. Atomicity: one read.
        fn clusters(&self) -> Vec<ClusterRecord> = "read clusters";

        /// Removes a cluster's registration with everything bound to it: its
        /// API keys, its policies, and its pods' DPoP pins and sessions.
        /// [`StorageError::NotFound`] when it is not registered.
        ///
        /// Atomicity: one transaction, so no key or policy outlives its cluster
        /// and no registration is left half removed. Replicas: the others drop
        /// their connection at their next cluster refresh.
        fn remove_cluster(&self, name: &str) -> RemovedCluster = "remove cluster";

        /// Adds an API key; its cluster must exist ([`StorageError::NotFound`]
        /// otherwise).
        ///
        /// Atomicity: one insert, the cluster checked by a foreign key.
        fn insert_api_key(&self, key: ApiKeyRecord) -> () = "store API key";

        /// Every key. Atomicity: one read.
        fn api_keys(&self) -> Vec<ApiKeyRecord> = "read API keys";

        /// Revokes a key; false when no unrevoked key has this id.
        ///
        /// Atomicity: one conditional update. Replicas: every replica refuses
        /// the key from its next request (keys are read per request, never
        /// cached).
        fn revoke_api_key(&self, id: &str, now: i64) -> bool = "revoke API key";

        /// Adds or replaces a policy; its cluster must exist.
        ///
        /// Atomicity: one upsert, the cluster checked by a foreign key.
        /// Replicas: read per request, so it holds from every replica's next
        /// request.
        fn set_policy(&self, policy: PolicyRecord) -> () = "store policy";

        /// Adds `change.add` to and removes `change.remove` from the approved
        /// digests of one service account's policy, keeping its modes; creates
        /// the policy (enforcing, no nonce) when there is none and something is
        /// added. Returns the policy as stored. [`StorageError::NotFound`] when
        /// the cluster is not registered, or there is no policy to remove from.
        ///
        /// Atomicity: read and write in one transaction under the policy's row
        /// lock (PostgreSQL `SELECT … FOR UPDATE`; SQLite's single writer), so
        /// two changes at once from two replicas both hold.
        fn change_policy_digests(
            &self,
            change: DigestChange,
            now: i64,
        ) -> PolicyRecord = "change policy digests";

        /// Every policy. Atomicity: one read.
        fn policies(&self) -> Vec<PolicyRecord> = "read policies";
    }
}

/// What removing a cluster took with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemovedCluster {
    /// API keys deleted.
    pub api_keys: u64,
    /// Policies deleted.
    pub policies: u64,
    /// Sessions deleted.
    pub sessions: u64,
}

/// A change to one policy's approved digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChange {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Digests to approve.
    pub add: Vec<String>,
    /// Digests to approve no more.
    pub remove: Vec<String>,
}

/// A digest change that only removes, for a service account with no
/// policy: there is nothing to remove from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no policy for {cluster}/{namespace}/{service_account}")]
pub struct NoPolicy {
    /// The cluster.
    pub cluster: String,
    /// The namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: String,
}

impl DigestChange {
    /// The policy after the change to `current` (the stored one, if any),
    /// as of `now`: a new one (enforcing, no nonce) when there was none and
    /// something is added; `Err` (what is missing) when there is nothing to
    /// remove from. Both engines decide with this, inside their transaction.
    pub fn applied_to(
        &self,
        current: Option<PolicyRecord>,
        now: i64,
    ) -> Result<PolicyRecord, NoPolicy> {
        let policy = match current {
            Some(policy) => policy,
            None if self.add.is_empty() => {
                return Err(NoPolicy {
                    cluster: self.cluster.clone(),
                    namespace: self.namespace.clone(),
                    service_account: self.service_account.clone(),
                });
            }
            None => PolicyRecord {
                cluster: self.cluster.clone(),
                namespace: self.namespace.clone(),
                service_account: self.service_account.clone(),
                digests: Vec::new(),
                audit_mode: false,
                require_nonce: false,
                updated_at: now,
            },
        };
        Ok(PolicyRecord {
            digests: self.apply(&policy.digests),
            updated_at: now,
            ..policy
        })
    }

    /// The digests after the change to `current`: sorted, each once.
    fn apply(&self, current: &[String]) -> Vec<String> {
        let mut digests: Vec<String> = current
            .iter()
            .chain(&self.add)
            .filter(|d| !self.remove.contains(d))
            .cloned()
            .collect();
        digests.sort();
        digests.dedup();
        digests
    }
}

bounded_stores! {
    /// The audit log: one RFC 9162 Merkle tree for every replica, and its
    /// checkpoints.
    pub trait AuditStore {
        /// Records the items' `jti`s and appends their audit records, in order,
        /// to the one tree; an item whose `jti` was seen before (also earlier in
        /// the same batch) stores its `if_replayed` records instead.
        ///
        /// Atomicity: all or nothing, in one durable transaction with the tree's
        /// frontier read and written in it (PostgreSQL: under a
        /// transaction-scoped advisory lock; SQLite: the single writer).
        /// Replicas: appends from every replica are serialised into one tree;
        /// no record is answered before it is durable.
        fn commit_batch(&self, items: Vec<CommitItem>) -> Vec<Committed> = "commit";

        /// Size of the log and its tree's root, from the stored frontier.
        /// Atomicity: one read of the frontier row.
        fn audit_head(&self) -> (u64, Hash) = "read audit head";

        /// Whether a write can be made durable now: a transaction that
        /// writes and leaves nothing changed (SQLite: a row inserted and
        /// deleted; PostgreSQL: the frontier row updated to itself, a new
        /// row version). Readiness asks it after a write failed, since
        /// reads can still succeed on a disk gone read-only.
        /// Atomicity: one transaction, no value changed.
        fn probe_write(&self) -> () = "probe a write";

        /// Stores a checkpoint; one already stored at its size is kept (a
        /// checkpoint is never re-signed, so a hand-over's stays).
        ///
        /// Atomicity: insert-if-absent by size. Replicas: two replicas
        /// checkpointing the same size keep the first.
        fn put_checkpoint(&self, checkpoint: Checkpoint) -> () = "store checkpoint";

        /// The checkpoint over the most records, if any (what the audit key of
        /// a starting server must have signed). Atomicity: one read.
        fn latest_checkpoint(&self) -> Option<Checkpoint> = "read latest checkpoint";

        /// The latest checkpoint of the hash chain the log was before schema
        /// version 4, if the database was upgraded from one (the key that
        /// signed it is the log's key until a Merkle checkpoint is signed).
        fn legacy_checkpoint(&self) -> Option<ChainCheckpoint> = "read chain checkpoint";

        /// The whole log as export lines, each checkpoint after the record it
        /// covers up to.
        ///
        /// Atomicity: one snapshot for records and checkpoints (PostgreSQL
        /// repeatable read; SQLite one read transaction), so an export taken
        /// while replicas append is still a prefix that verifies.
        fn audit_export(&self) -> Vec<ExportLine> = "export audit" * 10;

        provided {
            /// Appends records in one durable transaction, assigning `seq`; returns
            /// them as stored. Atomicity: that of [`AuditStore::commit_batch`], which
            /// it is.
            fn append_audit(
                &self,
                records: Vec<AuditRecord>,
            ) -> impl Future<Output = Result<Vec<AuditRecord>, StorageError>> + Send {
                async move {
                    let item = CommitItem {
                        records,
                        ..CommitItem::default()
                    };
                    let mut committed = self.commit_batch(vec![item]).await?;
                    Ok(committed.pop().map(|c| c.stored).unwrap_or_default())
                }
            }
        }
    }
}

/// The export: records in order, each checkpoint right after the record it
/// covers up to (checkpoints of an empty log first). Shared by the engines.
fn export_lines(
    records: Vec<(u64, Vec<u8>, Hash)>,
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

/// A row of the audit log: sequence number, record bytes, leaf hash.
type LeafRow = (u64, Vec<u8>, Hash);

/// Which items of a batch are fresh, given the `(jkt, jti)` pairs the
/// engine newly inserted: an item without a `jti` is fresh, and of two items
/// with the same pair only the first.
fn fresh_items(items: &[CommitItem], mut inserted: HashSet<(String, String)>) -> Vec<bool> {
    items
        .iter()
        .map(|item| {
            item.jti
                .as_ref()
                .is_none_or(|j| inserted.remove(&(j.jkt.clone(), j.jti.clone())))
        })
        .collect()
}

/// The batch's records appended to the tree `frontier` describes: the rows
/// to insert, what each item stored, and the frontier to store with them.
/// Shared by the engines, so both build the same tree.
fn append_items(
    items: Vec<CommitItem>,
    fresh: &[bool],
    mut frontier: Frontier,
) -> Result<(Vec<LeafRow>, Vec<Committed>, Frontier), StorageError> {
    let mut rows = Vec::new();
    let mut committed = Vec::with_capacity(items.len());
    for (item, fresh) in items.into_iter().zip(fresh.iter().copied()) {
        let records = if fresh {
            item.records
        } else {
            item.if_replayed
        };
        let mut stored = Vec::with_capacity(records.len());
        for mut record in records {
            record.seq = frontier.size() + 1;
            let bytes =
                serde_json::to_vec(&record).map_err(|_| StorageError::Corrupt("audit record"))?;
            let leaf = leaf_hash(&bytes);
            frontier
                .push(leaf)
                .map_err(|_| StorageError::Corrupt("audit frontier"))?;
            rows.push((record.seq, bytes, leaf));
            stored.push(record);
        }
        committed.push(Committed { fresh, stored });
    }
    Ok((rows, committed, frontier))
}

/// The stored frontier row as a [`Frontier`].
fn frontier_of(size: i64, nodes: &[u8]) -> Result<Frontier, StorageError> {
    let size = u64::try_from(size).map_err(|_| StorageError::Corrupt("audit frontier"))?;
    Frontier::from_stored(size, nodes).map_err(|_| StorageError::Corrupt("audit frontier"))
}

/// Why the upgrade to schema version 4 refuses a hash-chained log.
fn upgrade_refused(message: String) -> StorageError {
    StorageError::Database {
        operation: "migrate",
        message: format!(
            "{message}; the audit log was changed outside podseal before this upgrade, so it is not carried into the Merkle tree (export it with the previous podseal version and investigate)"
        ),
    }
}

/// The upgrade of a hash-chained log (schema version 3) to the Merkle
/// tree: every row must match its chain hash and be numbered 1, 2, …;
/// every kept chain checkpoint (`(size, JSON)`) must match the chain at
/// its size and cover no missing record. Returns each row's leaf hash and
/// the frontier over them. O(n), once.
fn upgrade_chain(
    rows: &[(u64, Vec<u8>, Vec<u8>)],
    checkpoints: &[(u64, String)],
) -> Result<(Vec<(u64, Hash)>, Frontier), StorageError> {
    let mut heads = vec![CHAIN_GENESIS];
    let mut leaves = Vec::with_capacity(rows.len());
    let mut frontier = Frontier::new();
    for (seq, entry, stored) in rows {
        if *seq != frontier.size() + 1 {
            return Err(upgrade_refused(format!(
                "audit record {} is missing",
                frontier.size() + 1
            )));
        }
        let prev = heads.last().copied().unwrap_or(CHAIN_GENESIS);
        let head = chain(&prev, entry);
        if head.as_slice() != stored.as_slice() {
            return Err(upgrade_refused(format!(
                "audit record {seq} does not match its chain hash"
            )));
        }
        heads.push(head);
        let leaf = leaf_hash(entry);
        frontier
            .push(leaf)
            .map_err(|_| StorageError::Corrupt("audit frontier"))?;
        leaves.push((*seq, leaf));
    }
    for (size, json) in checkpoints {
        let checkpoint: ChainCheckpoint = serde_json::from_str(json).map_err(|_| {
            upgrade_refused(format!(
                "the chain checkpoint over {size} records is unreadable"
            ))
        })?;
        let matches = usize::try_from(*size)
            .ok()
            .and_then(|size| heads.get(size))
            .is_some_and(|head| checkpoint.size == *size && checkpoint.has_root(head));
        if !matches {
            return Err(upgrade_refused(format!(
                "the chain checkpoint over {size} records does not match the stored records"
            )));
        }
    }
    Ok((leaves, frontier))
}

/// How a session id is stored and looked up: its SHA-256. The id is 256
/// random bits, so a plain hash cannot be reversed or guessed, and whoever
/// reads the database (or a backup) holds no usable session.
pub fn session_id_hash(id: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(id.as_bytes()).into()
}

/// Reads the API key, its policy and the session in one statement (the
/// same SQL on both engines; `?1`/`$1` is the key hash, `?2`/`$2` the
/// session id's hash or NULL).
fn request_context_sql(placeholder: char) -> String {
    format!(
        "SELECT k.id, k.key_hash, k.cluster, k.namespace, k.service_account, k.created_at, k.revoked_at,
                p.cluster, p.namespace, p.service_account, p.digests, p.audit_mode, p.require_nonce, p.updated_at,
                s.id_hash, s.cluster, s.namespace, s.service_account, s.pod_name, s.pod_uid, s.jkt, s.recipient_key,
                s.api_key_id, s.created_at, s.expires_at, s.revoked_at, s.container, s.container_id
         FROM (SELECT 1 AS one) AS one
         LEFT JOIN api_keys k ON k.key_hash = {placeholder}1
         LEFT JOIN policies p ON p.cluster = k.cluster AND p.namespace = k.namespace AND p.service_account = k.service_account
         LEFT JOIN sessions s ON s.id_hash = {placeholder}2"
    )
}

/// Column offsets in [`request_context_sql`]'s row.
const CONTEXT_POLICY: usize = 7;
const CONTEXT_SESSION: usize = 14;

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
