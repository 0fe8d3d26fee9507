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
    (1, include_str!("../../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../../migrations/sqlite/0002_cluster_ca_and_token_rules.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/sqlite/0003_session_id_hash.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/sqlite/0004_audit_merkle_tree.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/sqlite/0005_pin_per_container.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/sqlite/0006_cluster_reader_token.sql"),
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

/// True when the database's file cannot be opened for writing because its
/// file system is read-only (SQLite says only "disk I/O error"; asked only
/// after an I/O error, and the file is opened without writing anything).
fn on_read_only_file_system(error: &rusqlite::Error, path: &Path) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::SystemIoFailure
    ) && std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ReadOnlyFilesystem)
}

/// An engine error as a [`StorageError`]: a full volume and a read-only
/// file system are said in words, with the database file named (SQLite
/// says only "database or disk is full" and "disk I/O error").
fn db_error(path: &Path, operation: &'static str) -> impl Fn(rusqlite::Error) -> StorageError {
    move |e| StorageError::Database {
        operation,
        message: if is_disk_full(&e) {
            format!(
                "no space left on device for the database {} (or its -wal file): its volume is full; writes resume once space is freed",
                path.display()
            )
        } else if on_read_only_file_system(&e, path) {
            format!(
                "the database {} is on a read-only file system (a disk that failed is remounted read-only): writes are refused until it is writable again ({e})",
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

mod admin;
mod audit;
mod release;
