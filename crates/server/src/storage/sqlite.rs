//! The embedded default engine: one SQLite file in WAL mode with
//! `synchronous=FULL`, so a commit is on disk when it returns (an unwrap is
//! answered only after its audit record is durable). Calls run on tokio's
//! blocking pool; one connection serializes writes, which SQLite does anyway,
//! and a second, read-only one answers the release path's reads, so a read
//! never waits behind a commit's fsync (WAL readers see every committed
//! transaction). Statements are prepared once per connection.
//! Schema changes are versioned migrations applied in one immediate
//! transaction, so two processes starting at once cannot both apply one.
//!
//! The write-ahead log is bounded, so that it cannot fill a small volume by
//! itself: it is checkpointed every [`WAL_AUTOCHECKPOINT_PAGES`] pages and
//! cut back to [`WAL_SIZE_LIMIT`] bytes when it restarts, cut to nothing
//! (`wal_checkpoint(TRUNCATE)`) at open, after each purge (every minute)
//! and after a write that failed because the volume is full. A full volume
//! refuses writes (so releases, which need their audit record) with an
//! error that says so and names the file; nothing is stuck: the next write
//! after space returns succeeds, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use podseal_core::audit::legacy::ChainCheckpoint;
use podseal_core::audit::{Checkpoint, ExportLine, Frontier, Hash};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{AdminStore, AuditStore, DigestChange, ReleaseStore, RemovedCluster};
use zeroize::Zeroizing;

use super::{
    ApiKeyRecord, ClusterRecord, CommitItem, Committed, ContainerInstance, PinOutcome,
    PolicyRecord, ReaderToken, RequestContext, SessionRecord, Storage, StorageError, StorageStats,
};

/// Migrations in order; a database records the versions it has applied.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_cluster_ca_and_token_rules.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_session_id_hash.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_audit_merkle_tree.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_pin_per_container.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_cluster_reader_token.sql"),
    ),
];

/// The version whose script is followed by [`rehash_audit_log`].
const MERKLE_VERSION: i64 = 4;

const ADMIN_TOKEN_KEY: &str = "admin_token_sha256";

/// Pages after which a commit checkpoints the WAL (SQLite's default is
/// 1000, ~4 MiB, more than a small volume holds).
pub const WAL_AUTOCHECKPOINT_PAGES: u32 = 256;
/// Bytes the WAL file is cut back to when it restarts after a checkpoint
/// (SQLite's default keeps it at its largest size for good).
pub const WAL_SIZE_LIMIT: u64 = 1024 * 1024;

/// SQLite storage.
#[derive(Clone)]
pub struct SqliteStorage {
    connection: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    stats: Arc<StorageStats>,
    path: Arc<PathBuf>,
}

/// True when SQLite gave up because the volume is full (SQLITE_FULL: the
/// system said ENOSPC or EDQUOT).
fn is_disk_full(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DiskFull
    )
}

/// An engine error as a [`StorageError`]: a full volume is said in words,
/// with the database file named (SQLite says only "database or disk is full").
fn db_error(path: &Path, operation: &'static str) -> impl Fn(rusqlite::Error) -> StorageError {
    move |e| StorageError::Database {
        operation,
        message: if is_disk_full(&e) {
            format!(
                "no space left on device for the database {} (or its -wal file): its volume is full; writes resume once space is freed",
                path.display()
            )
        } else {
            e.to_string()
        },
    }
}

/// Checkpoints the whole WAL into the database and cuts the WAL file to
/// nothing, giving its space back to the volume. It needs space for the
/// pages the database grows by, so on a volume still full it fails, and is
/// tried again after the next failed write or purge. True when it did.
fn truncate_wal(connection: &Connection) -> bool {
    match connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(busy) => busy == 0,
        Err(error) => {
            tracing::debug!(%error, "could not truncate the SQLite WAL");
            false
        }
    }
}

fn conversion(error: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(error))
}

fn hash32(bytes: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    bytes.try_into().map_err(|_| rusqlite::Error::InvalidQuery)
}

fn json_list(text: String) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(&text).map_err(conversion)
}

fn to_json(list: &[String]) -> rusqlite::Result<String> {
    serde_json::to_string(list).map_err(conversion)
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let mut connection = Connection::open(path).map_err(db_error(path, "open"))?;
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;
                 PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
            ))
            .map_err(db_error(path, "configure"))?;
        migrate(&mut connection, path)?;
        // A WAL left large (a crash, an older build) is given back at once.
        truncate_wal(&connection);
        let reader = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_error(path, "open"))?;
        reader
            .execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(db_error(path, "configure"))?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            reader: Arc::new(Mutex::new(reader)),
            stats: Arc::new(StorageStats::default()),
            path: Arc::new(path.to_owned()),
        })
    }

    async fn run<T, F>(&self, operation: &'static str, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run_on(self.connection.clone(), true, operation, work)
            .await
    }

    /// Runs `work` on the read-only connection.
    async fn read<T, F>(&self, operation: &'static str, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run_on(self.reader.clone(), false, operation, work)
            .await
    }

    /// Runs `work` on `connection` on the blocking pool. When a write on
    /// the writer failed because the volume is full, the WAL is truncated
    /// before the connection is let go, so that its space is not held while
    /// the volume is short of it.
    async fn run_on<T, F>(
        &self,
        connection: Arc<Mutex<Connection>>,
        writer: bool,
        operation: &'static str,
        work: F,
    ) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.stats.round_trips(1);
        let path = self.path.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut guard = connection
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let result = work(&mut guard);
            if writer && result.as_ref().is_err_and(is_disk_full) {
                let truncated = truncate_wal(&guard);
                tracing::warn!(
                    database = %path.display(),
                    wal_truncated = truncated,
                    "no space left on device for the database: writes are refused until space is freed"
                );
            }
            result
        })
        .await;
        joined
            .map_err(|e| StorageError::Database {
                operation,
                message: e.to_string(),
            })?
            .map_err(db_error(&self.path, operation))
    }
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StorageError> {
    let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    let migrate_error = db_error(path, "migrate");
    connection
        .execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        .map_err(&migrate_error)?;
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&migrate_error)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(&migrate_error)?;
    super::check_schema_version(current, latest)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql).map_err(&migrate_error)?;
        if *version == MERKLE_VERSION {
            rehash_audit_log(&tx, path)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, unixepoch())",
            [version],
        )
        .map_err(&migrate_error)?;
    }
    tx.commit().map_err(&migrate_error)
}

fn cluster_from(row: &Row<'_>) -> rusqlite::Result<ClusterRecord> {
    Ok(ClusterRecord {
        name: row.get(0)?,
        issuer: row.get(1)?,
        audiences: json_list(row.get(2)?)?,
        api_server_url: row.get(3)?,
        reader_token: ReaderToken::new(&Zeroizing::new(row.get::<_, String>(4)?)),
        jwks: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        ca_pem: row.get(8)?,
        allow_extra_audiences: row.get(9)?,
        max_token_lifetime_secs: row.get(10)?,
    })
}

const CLUSTER_COLUMNS: &str = "name, issuer, audiences, api_server_url, reader_token, jwks, created_at, updated_at, ca_pem, allow_extra_audiences, max_token_lifetime_secs";

fn api_key_from(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    api_key_at(row, 0)
}

fn api_key_at(row: &Row<'_>, base: usize) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.get(base)?,
        key_hash: hash32(row.get(base + 1)?)?,
        cluster: row.get(base + 2)?,
        namespace: row.get(base + 3)?,
        service_account: row.get(base + 4)?,
        created_at: row.get(base + 5)?,
        revoked_at: row.get(base + 6)?,
    })
}

const API_KEY_COLUMNS: &str =
    "id, key_hash, cluster, namespace, service_account, created_at, revoked_at";

fn policy_from(row: &Row<'_>) -> rusqlite::Result<PolicyRecord> {
    policy_at(row, 0)
}

fn policy_at(row: &Row<'_>, base: usize) -> rusqlite::Result<PolicyRecord> {
    Ok(PolicyRecord {
        cluster: row.get(base)?,
        namespace: row.get(base + 1)?,
        service_account: row.get(base + 2)?,
        digests: json_list(row.get(base + 3)?)?,
        audit_mode: row.get(base + 4)?,
        require_nonce: row.get(base + 5)?,
        updated_at: row.get(base + 6)?,
    })
}

const POLICY_COLUMNS: &str =
    "cluster, namespace, service_account, digests, audit_mode, require_nonce, updated_at";

/// The session at `base` (its `id_hash` column), with the `id` it was
/// looked up by: the database holds only the hash.
fn session_at(row: &Row<'_>, base: usize, id: &str) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: id.to_owned(),
        cluster: row.get(base + 1)?,
        namespace: row.get(base + 2)?,
        service_account: row.get(base + 3)?,
        pod_name: row.get(base + 4)?,
        pod_uid: row.get(base + 5)?,
        jkt: row.get(base + 6)?,
        recipient_key: row.get(base + 7)?,
        api_key_id: row.get(base + 8)?,
        created_at: row.get(base + 9)?,
        expires_at: row.get(base + 10)?,
        revoked_at: row.get(base + 11)?,
        container: row.get(base + 12)?,
        container_id: row.get(base + 13)?,
    })
}

const SESSION_COLUMNS: &str = "id_hash, cluster, namespace, service_account, pod_name, pod_uid, jkt, recipient_key, api_key_id, created_at, expires_at, revoked_at, container, container_id";

/// Version 4's step after its script: the chain's rows re-hashed as
/// leaves (after checking them against the chain), and the frontier row.
fn rehash_audit_log(tx: &rusqlite::Transaction<'_>, path: &Path) -> Result<(), StorageError> {
    let error = db_error(path, "migrate");
    let read = || -> rusqlite::Result<_> {
        let mut statement =
            tx.prepare("SELECT seq, entry, leaf_hash FROM audit_log ORDER BY seq")?;
        let rows = statement
            .query_map([], |row| {
                let seq = u64::try_from(row.get::<_, i64>(0)?).map_err(conversion)?;
                let entry = match row.get_ref(1)? {
                    rusqlite::types::ValueRef::Blob(bytes)
                    | rusqlite::types::ValueRef::Text(bytes) => bytes.to_vec(),
                    _ => Vec::new(),
                };
                Ok((seq, entry, row.get::<_, Vec<u8>>(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut statement =
            tx.prepare("SELECT size, checkpoint FROM audit_chain_checkpoints ORDER BY size")?;
        let checkpoints = statement
            .query_map([], |row| {
                let size = u64::try_from(row.get::<_, i64>(0)?).map_err(conversion)?;
                Ok((size, row.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((rows, checkpoints))
    };
    let (rows, checkpoints) = read().map_err(&error)?;
    let (leaves, frontier) = super::upgrade_chain(&rows, &checkpoints)?;
    let write = || -> rusqlite::Result<()> {
        let mut update = tx.prepare("UPDATE audit_log SET leaf_hash = ?2 WHERE seq = ?1")?;
        for (seq, leaf) in &leaves {
            update.execute(params![
                i64::try_from(*seq).map_err(conversion)?,
                leaf.to_vec()
            ])?;
        }
        tx.execute(
            "INSERT INTO audit_frontier (id, size, nodes) VALUES (1, ?1, ?2)",
            params![
                i64::try_from(frontier.size()).map_err(conversion)?,
                frontier.nodes_bytes()
            ],
        )?;
        Ok(())
    };
    write().map_err(&error)
}

/// The tree's frontier, from its one row.
fn read_frontier(connection: &Connection) -> rusqlite::Result<Frontier> {
    let (size, nodes) = connection
        .prepare_cached("SELECT size, nodes FROM audit_frontier WHERE id = 1")?
        .query_row([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
    super::frontier_of(size, &nodes).map_err(conversion)
}

fn missing_cluster(tx: &rusqlite::Transaction<'_>, cluster: &str) -> rusqlite::Result<bool> {
    Ok(tx
        .query_row("SELECT 1 FROM clusters WHERE name = ?1", [cluster], |_| {
            Ok(())
        })
        .optional()?
        .is_none())
}

impl Storage for SqliteStorage {
    fn stats(&self) -> &StorageStats {
        &self.stats
    }
}

impl ReleaseStore for SqliteStorage {
    async fn server_secret(
        &self,
        name: &str,
        candidate: [u8; 32],
    ) -> Result<[u8; 32], StorageError> {
        let key = format!("secret:{name}");
        self.run("read server secret", move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, candidate.to_vec()],
            )?;
            let value: Vec<u8> =
                tx.query_row("SELECT value FROM meta WHERE key = ?1", [&key], |row| {
                    row.get(0)
                })?;
            tx.commit()?;
            hash32(value)
        })
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
        let (cluster, instance, jkt) = (cluster.to_owned(), instance.clone(), jkt.to_owned());
        self.run("pin DPoP key", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ContainerInstance { pod_uid, container, container_id } = &instance;
            let pod_wide: Option<String> = tx
                .query_row(
                    "SELECT jkt FROM dpop_pins WHERE cluster = ?1 AND pod_uid = ?2 AND container = '' AND expires_at > ?3",
                    params![cluster, pod_uid, now],
                    |row| row.get(0),
                )
                .optional()?;
            if pod_wide.is_some_and(|pinned| pinned != jkt) {
                return Ok(PinOutcome::OtherKeyPinned);
            }
            let existing: Option<(String, String, i64)> = tx
                .query_row(
                    "SELECT jkt, container_id, expires_at FROM dpop_pins WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3",
                    params![cluster, pod_uid, container],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let outcome = match existing {
                Some((pinned, id, until)) if until > now && id == *container_id => {
                    if pinned != jkt {
                        return Ok(PinOutcome::OtherKeyPinned);
                    }
                    tx.execute(
                        "UPDATE dpop_pins SET expires_at = MAX(expires_at, ?4) WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3",
                        params![cluster, pod_uid, container, expires_at],
                    )?;
                    PinOutcome::AlreadyPinned
                }
                existing => {
                    let revoked = tx.execute(
                        "UPDATE sessions SET revoked_at = ?5 WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3 AND container_id != ?4 AND revoked_at IS NULL",
                        params![cluster, pod_uid, container, container_id, now],
                    )?;
                    tx.execute(
                        "INSERT OR REPLACE INTO dpop_pins (cluster, pod_uid, container, container_id, jkt, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![cluster, pod_uid, container, container_id, jkt, expires_at],
                    )?;
                    match existing {
                        Some((old_jkt, old_container_id, until)) if until > now => PinOutcome::Replaced {
                            old_jkt,
                            old_container_id,
                            sessions_revoked: revoked as u64,
                        },
                        _ => PinOutcome::Pinned,
                    }
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
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
        let args = (
            cluster.to_owned(),
            pod_uid.to_owned(),
            container.to_owned(),
            old_jkt.to_owned(),
            new_jkt.to_owned(),
        );
        self.run("rotate DPoP pin", move |c| {
            let changed = c.execute(
                "UPDATE dpop_pins SET jkt = ?5 WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3 AND jkt = ?4",
                params![args.0, args.1, args.2, args.3, args.4],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn forget_pod(
        &self,
        cluster: &str,
        pod_uid: &str,
        now: i64,
    ) -> Result<u64, StorageError> {
        let (cluster, pod_uid) = (cluster.to_owned(), pod_uid.to_owned());
        self.run("forget pod", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM dpop_pins WHERE cluster = ?1 AND pod_uid = ?2", params![cluster, pod_uid])?;
            let revoked = tx.execute(
                "UPDATE sessions SET revoked_at = ?3 WHERE cluster = ?1 AND pod_uid = ?2 AND revoked_at IS NULL",
                params![cluster, pod_uid, now],
            )?;
            tx.commit()?;
            Ok(revoked as u64)
        })
        .await
    }

    async fn forget_container(
        &self,
        cluster: &str,
        instance: &ContainerInstance,
        now: i64,
    ) -> Result<(u64, bool), StorageError> {
        let (cluster, instance) = (cluster.to_owned(), instance.clone());
        self.run("forget container", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ContainerInstance { pod_uid, container, container_id } = &instance;
            let unpinned = tx.execute(
                "DELETE FROM dpop_pins WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3 AND container_id = ?4",
                params![cluster, pod_uid, container, container_id],
            )?;
            let revoked = tx.execute(
                "UPDATE sessions SET revoked_at = ?5 WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3 AND container_id = ?4 AND revoked_at IS NULL",
                params![cluster, pod_uid, container, container_id, now],
            )?;
            tx.commit()?;
            Ok((revoked as u64, unpinned > 0))
        })
        .await
    }

    async fn insert_session(&self, session: SessionRecord) -> Result<(), StorageError> {
        self.run("insert session", move |c| {
            c.execute(
                &format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
                params![
                    super::session_id_hash(&session.id).to_vec(),
                    session.cluster,
                    session.namespace,
                    session.service_account,
                    session.pod_name,
                    session.pod_uid,
                    session.jkt,
                    session.recipient_key,
                    session.api_key_id,
                    session.created_at,
                    session.expires_at,
                    session.revoked_at,
                    session.container,
                    session.container_id
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StorageError> {
        let id = id.to_owned();
        self.run("read session", move |c| {
            c.query_row(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = ?1"),
                [super::session_id_hash(&id).to_vec()],
                |row| session_at(row, 0, &id),
            )
            .optional()
        })
        .await
    }

    async fn set_session_jkt(&self, id: &str, jkt: &str) -> Result<(), StorageError> {
        let (hash, jkt) = (super::session_id_hash(id), jkt.to_owned());
        self.run("update session key", move |c| {
            c.execute(
                "UPDATE sessions SET jkt = ?2 WHERE id_hash = ?1",
                params![hash.to_vec(), jkt],
            )?;
            Ok(())
        })
        .await
    }

    async fn record_jti(
        &self,
        jkt: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StorageError> {
        let (jkt, jti) = (jkt.to_owned(), jti.to_owned());
        self.run("record jti", move |c| {
            Ok(c.execute(
                "INSERT OR IGNORE INTO dpop_jti (jkt, jti, expires_at) VALUES (?1, ?2, ?3)",
                params![jkt, jti, expires_at],
            )? == 1)
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StorageError> {
        self.run("purge expired", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut removed = tx.execute("DELETE FROM dpop_jti WHERE expires_at <= ?1", [now])?;
            removed += tx.execute("DELETE FROM dpop_pins WHERE expires_at <= ?1", [now])?;
            removed += tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
            tx.commit()?;
            // Once a minute (the purge's interval) the WAL gives its space back.
            truncate_wal(c);
            Ok(removed as u64)
        })
        .await
    }

    async fn request_context(
        &self,
        api_key_hash: [u8; 32],
        session_id: Option<&str>,
    ) -> Result<RequestContext, StorageError> {
        let session_id = session_id.map(str::to_owned);
        self.read("read request context", move |c| {
            let mut statement = c.prepare_cached(&super::request_context_sql('?'))?;
            let session_hash = session_id
                .as_deref()
                .map(|id| super::session_id_hash(id).to_vec());
            statement.query_row(params![api_key_hash.to_vec(), session_hash], |row| {
                let present = |base: usize| {
                    row.get_ref(base)
                        .map(|v| v != rusqlite::types::ValueRef::Null)
                };
                Ok(RequestContext {
                    api_key: if present(0)? {
                        Some(api_key_at(row, 0)?)
                    } else {
                        None
                    },
                    policy: if present(super::CONTEXT_POLICY)? {
                        Some(policy_at(row, super::CONTEXT_POLICY)?)
                    } else {
                        None
                    },
                    session: match (&session_id, present(super::CONTEXT_SESSION)?) {
                        (Some(id), true) => Some(session_at(row, super::CONTEXT_SESSION, id)?),
                        _ => None,
                    },
                })
            })
        })
        .await
    }
}

impl AdminStore for SqliteStorage {
    async fn init_admin_token(&self, hash: [u8; 32]) -> Result<bool, StorageError> {
        self.run("init admin token", move |c| {
            let inserted = c.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![ADMIN_TOKEN_KEY, hash.to_vec()],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn admin_token_hash(&self) -> Result<Option<[u8; 32]>, StorageError> {
        self.run("read admin token", |c| {
            let value: Option<Vec<u8>> = c
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    [ADMIN_TOKEN_KEY],
                    |row| row.get(0),
                )
                .optional()?;
            value.map(hash32).transpose()
        })
        .await
    }

    async fn put_cluster(&self, cluster: ClusterRecord) -> Result<(), StorageError> {
        self.run("put cluster", move |c| {
            c.execute(
                &format!(
                    "INSERT INTO clusters ({CLUSTER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (name) DO UPDATE SET issuer = excluded.issuer, audiences = excluded.audiences,
                       api_server_url = excluded.api_server_url,
                       reader_token = excluded.reader_token, jwks = excluded.jwks, updated_at = excluded.updated_at,
                       ca_pem = excluded.ca_pem, allow_extra_audiences = excluded.allow_extra_audiences,
                       max_token_lifetime_secs = excluded.max_token_lifetime_secs"
                ),
                params![
                    cluster.name,
                    cluster.issuer,
                    to_json(&cluster.audiences)?,
                    cluster.api_server_url,
                    cluster.reader_token.expose_secret(),
                    cluster.jwks,
                    cluster.created_at,
                    cluster.updated_at,
                    cluster.ca_pem,
                    cluster.allow_extra_audiences,
                    cluster.max_token_lifetime_secs
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove_cluster(&self, name: &str) -> Result<RemovedCluster, StorageError> {
        let name = name.to_owned();
        let removed = self
            .run("remove cluster", move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if missing_cluster(&tx, &name)? {
                    return Ok(None);
                }
                let api_keys = tx.execute("DELETE FROM api_keys WHERE cluster = ?1", [&name])?;
                let policies = tx.execute("DELETE FROM policies WHERE cluster = ?1", [&name])?;
                let sessions = tx.execute("DELETE FROM sessions WHERE cluster = ?1", [&name])?;
                tx.execute("DELETE FROM dpop_pins WHERE cluster = ?1", [&name])?;
                tx.execute("DELETE FROM clusters WHERE name = ?1", [&name])?;
                tx.commit()?;
                Ok(Some(RemovedCluster {
                    api_keys: api_keys as u64,
                    policies: policies as u64,
                    sessions: sessions as u64,
                }))
            })
            .await?;
        removed.ok_or_else(|| StorageError::NotFound("the cluster is not registered".into()))
    }

    async fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, StorageError> {
        let name = name.to_owned();
        self.run("read cluster", move |c| {
            c.query_row(
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = ?1"),
                [name],
                cluster_from,
            )
            .optional()
        })
        .await
    }

    async fn clusters(&self) -> Result<Vec<ClusterRecord>, StorageError> {
        self.run("list clusters", |c| {
            let mut statement = c.prepare(&format!(
                "SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name"
            ))?;
            statement.query_map([], cluster_from)?.collect()
        })
        .await
    }

    async fn insert_api_key(&self, key: ApiKeyRecord) -> Result<(), StorageError> {
        let cluster = key.cluster.clone();
        let inserted = self
            .run("insert API key", move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if missing_cluster(&tx, &key.cluster)? {
                    return Ok(false);
                }
                tx.execute(
                    &format!("INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                    params![key.id, key.key_hash.to_vec(), key.cluster, key.namespace, key.service_account, key.created_at, key.revoked_at],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await?;
        if inserted {
            Ok(())
        } else {
            Err(StorageError::NotFound(format!(
                "cluster {cluster} is not registered"
            )))
        }
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StorageError> {
        self.run("list API keys", |c| {
            let mut statement = c.prepare(&format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
            ))?;
            statement.query_map([], api_key_from)?.collect()
        })
        .await
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool, StorageError> {
        let id = id.to_owned();
        self.run("revoke API key", move |c| {
            Ok(c.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )? == 1)
        })
        .await
    }

    async fn set_policy(&self, policy: PolicyRecord) -> Result<(), StorageError> {
        let cluster = policy.cluster.clone();
        let stored = self
            .run("set policy", move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if missing_cluster(&tx, &policy.cluster)? {
                    return Ok(false);
                }
                tx.execute(
                    &format!(
                        "INSERT INTO policies ({POLICY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (cluster, namespace, service_account) DO UPDATE SET digests = excluded.digests,
                           audit_mode = excluded.audit_mode, require_nonce = excluded.require_nonce, updated_at = excluded.updated_at"
                    ),
                    params![
                        policy.cluster,
                        policy.namespace,
                        policy.service_account,
                        to_json(&policy.digests)?,
                        policy.audit_mode,
                        policy.require_nonce,
                        policy.updated_at
                    ],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await?;
        if stored {
            Ok(())
        } else {
            Err(StorageError::NotFound(format!(
                "cluster {cluster} is not registered"
            )))
        }
    }

    async fn change_policy_digests(
        &self,
        change: DigestChange,
        now: i64,
    ) -> Result<PolicyRecord, StorageError> {
        let outcome = self
            .run("change policy digests", move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if missing_cluster(&tx, &change.cluster)? {
                    return Ok(Err(format!("cluster {} is not registered", change.cluster)));
                }
                let current = tx
                    .query_row(
                        &format!("SELECT {POLICY_COLUMNS} FROM policies WHERE cluster = ?1 AND namespace = ?2 AND service_account = ?3"),
                        params![change.cluster, change.namespace, change.service_account],
                        policy_from,
                    )
                    .optional()?;
                let policy = match change.applied_to(current, now) {
                    Ok(policy) => policy,
                    Err(missing) => return Ok(Err(missing)),
                };
                tx.execute(
                    &format!(
                        "INSERT INTO policies ({POLICY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (cluster, namespace, service_account) DO UPDATE SET digests = excluded.digests, updated_at = excluded.updated_at"
                    ),
                    params![
                        policy.cluster,
                        policy.namespace,
                        policy.service_account,
                        to_json(&policy.digests)?,
                        policy.audit_mode,
                        policy.require_nonce,
                        policy.updated_at
                    ],
                )?;
                tx.commit()?;
                Ok(Ok(policy))
            })
            .await?;
        outcome.map_err(StorageError::NotFound)
    }

    async fn policies(&self) -> Result<Vec<PolicyRecord>, StorageError> {
        self.run("list policies", |c| {
            let mut statement = c.prepare(&format!(
                "SELECT {POLICY_COLUMNS} FROM policies ORDER BY cluster, namespace, service_account"
            ))?;
            statement.query_map([], policy_from)?.collect()
        })
        .await
    }
}

impl AuditStore for SqliteStorage {
    async fn commit_batch(&self, items: Vec<CommitItem>) -> Result<Vec<Committed>, StorageError> {
        let stats = self.stats.clone();
        self.run("commit audit", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut inserted = std::collections::HashSet::new();
            {
                let mut record_jti = tx.prepare_cached(
                    "INSERT OR IGNORE INTO dpop_jti (jkt, jti, expires_at) VALUES (?1, ?2, ?3)",
                )?;
                for jti in items.iter().filter_map(|item| item.jti.as_ref()) {
                    if record_jti.execute(params![jti.jkt, jti.jti, jti.expires_at])? == 1 {
                        inserted.insert((jti.jkt.clone(), jti.jti.clone()));
                    }
                }
            }
            let fresh = super::fresh_items(&items, inserted);
            let frontier = read_frontier(&tx)?;
            let (rows, committed, frontier) =
                super::append_items(items, &fresh, frontier).map_err(conversion)?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO audit_log (seq, entry, leaf_hash) VALUES (?1, ?2, ?3)",
                )?;
                for (seq, bytes, leaf) in rows {
                    insert.execute(params![
                        i64::try_from(seq).map_err(conversion)?,
                        bytes,
                        leaf.to_vec()
                    ])?;
                }
            }
            // The frontier moves in the same transaction as the rows it covers.
            tx.prepare_cached("UPDATE audit_frontier SET size = ?1, nodes = ?2 WHERE id = 1")?
                .execute(params![
                    i64::try_from(frontier.size()).map_err(conversion)?,
                    frontier.nodes_bytes()
                ])?;
            tx.commit()?;
            stats.commit();
            Ok(committed)
        })
        .await
    }

    async fn audit_head(&self) -> Result<(u64, Hash), StorageError> {
        self.run("read audit head", |c| {
            let frontier = read_frontier(c)?;
            Ok((frontier.size(), frontier.root()))
        })
        .await
    }

    async fn put_checkpoint(&self, checkpoint: Checkpoint) -> Result<(), StorageError> {
        self.run("store checkpoint", move |c| {
            let size = i64::try_from(checkpoint.size()).map_err(conversion)?;
            c.execute(
                "INSERT OR IGNORE INTO audit_checkpoints (size, note) VALUES (?1, ?2)",
                params![size, checkpoint.note()],
            )?;
            Ok(())
        })
        .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StorageError> {
        self.run("read latest checkpoint", |c| {
            let note: Option<String> = c
                .query_row(
                    "SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
                    [],
                    |row| row.get(0),
                )
                .optional()?;
            note.map(|note| Checkpoint::parse(&note).map_err(conversion))
                .transpose()
        })
        .await
    }

    async fn legacy_checkpoint(&self) -> Result<Option<ChainCheckpoint>, StorageError> {
        self.run("read chain checkpoint", |c| {
            let json: Option<String> = c
                .query_row(
                    "SELECT checkpoint FROM audit_chain_checkpoints ORDER BY size DESC LIMIT 1",
                    [],
                    |row| row.get(0),
                )
                .optional()?;
            json.map(|json| serde_json::from_str(&json).map_err(conversion))
                .transpose()
        })
        .await
    }

    async fn audit_export(&self) -> Result<Vec<ExportLine>, StorageError> {
        let (records, checkpoints) = self
            .run("export audit", |c| {
                let tx = c.transaction()?;
                let checkpoints: Vec<(u64, Checkpoint)> = {
                    let mut statement = tx.prepare("SELECT size, note FROM audit_checkpoints")?;
                    let rows = statement.query_map([], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                    })?;
                    rows.map(|row| {
                        let (size, note) = row?;
                        Ok((
                            u64::try_from(size).map_err(conversion)?,
                            Checkpoint::parse(&note).map_err(conversion)?,
                        ))
                    })
                    .collect::<rusqlite::Result<_>>()?
                };
                let mut records = Vec::new();
                {
                    let mut statement =
                        tx.prepare("SELECT seq, entry, leaf_hash FROM audit_log ORDER BY seq")?;
                    let mut rows = statement.query([])?;
                    while let Some(row) = rows.next()? {
                        let seq = u64::try_from(row.get::<_, i64>(0)?).map_err(conversion)?;
                        // Whatever type the cell now has (an edited row may hold TEXT),
                        // export its bytes and let verification judge them.
                        let entry = match row.get_ref(1)? {
                            rusqlite::types::ValueRef::Blob(bytes)
                            | rusqlite::types::ValueRef::Text(bytes) => bytes.to_vec(),
                            _ => Vec::new(),
                        };
                        records.push((seq, entry, hash32(row.get(2)?)?));
                    }
                }
                tx.commit()?;
                Ok((records, checkpoints))
            })
            .await?;
        Ok(super::export_lines(records, checkpoints))
    }
}
