//! The PostgreSQL engine, for several release-server replicas on one
//! database. Every decision that must hold across replicas is decided by
//! the database: a `jti` is recorded by a primary key, a DPoP pin is taken
//! under a row lock (`INSERT … ON CONFLICT DO NOTHING`, then `SELECT … FOR
//! UPDATE`), and audit records are appended under a transaction-scoped
//! advisory lock, with the tree's frontier row read and written in the
//! same transaction, so all replicas append to one Merkle tree. Migrations run under
//! another advisory lock, so replicas starting together apply each once.
//!
//! Connections come from a pool (`deadpool-postgres`) over plain TCP or a
//! Unix socket: TLS to the database is not built yet, so keep the database
//! on loopback, a socket, or a network you trust (docs/design.md §8).

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::{try_join3, try_join4};
use podseal_core::audit::legacy::ChainCheckpoint;
use podseal_core::audit::{Checkpoint, ExportLine, Hash};
use tokio_postgres::{NoTls, Row};

use super::{AdminStore, AuditStore, DigestChange, ReleaseStore, RemovedCluster};
use zeroize::Zeroizing;

use super::{
    ApiKeyRecord, ClusterRecord, CommitItem, Committed, ContainerInstance, PinOutcome,
    PolicyRecord, ReaderToken, RequestContext, SessionRecord, Storage, StorageError, StorageStats,
};

/// Migrations in order; a database records the versions it has applied.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_cluster_ca_and_token_rules.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_session_id_hash.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/postgres/0004_audit_merkle_tree.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/postgres/0005_pin_per_container.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/postgres/0006_cluster_reader_token.sql"),
    ),
];

/// The version whose script is followed by `rehash_audit_log`.
const MERKLE_VERSION: i64 = 4;

/// Advisory lock keys (arbitrary, fixed): migrations, and the audit log's frontier.
const MIGRATION_LOCK: i64 = 0x706f_6473_6561_6c01;
const AUDIT_LOCK: i64 = 0x706f_6473_6561_6c02;
const ADMIN_TOKEN_KEY: &str = "admin_token_sha256";

/// PostgreSQL storage.
#[derive(Clone)]
pub struct PostgresStorage {
    pool: Pool,
    /// Connections of the group commit alone: created (and driven) on the
    /// commit loop's own thread, so a batch's round trips never wait for a
    /// busy request worker to poll the connection.
    commit_pool: Pool,
    stats: Arc<StorageStats>,
}

fn db_error(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StorageError {
    move |e| StorageError::Database {
        operation,
        // The server's message, never the connection string (which may hold a password).
        message: e
            .as_db_error()
            .map_or_else(|| e.to_string(), |db| db.message().to_owned()),
    }
}

fn pool_error(operation: &'static str) -> impl Fn(deadpool_postgres::PoolError) -> StorageError {
    move |e| StorageError::Database {
        operation,
        message: match e {
            deadpool_postgres::PoolError::Backend(e) => e
                .as_db_error()
                .map_or_else(|| e.to_string(), |db| db.message().to_owned()),
            other => other.to_string(),
        },
    }
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32], StorageError> {
    bytes.try_into().map_err(|_| StorageError::Corrupt("hash"))
}

fn json_list(text: &str) -> Result<Vec<String>, StorageError> {
    serde_json::from_str(text).map_err(|_| StorageError::Corrupt("list"))
}

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn seq_of(value: i64) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| StorageError::Corrupt("audit sequence"))
}

fn seq_to(value: u64) -> Result<i64, StorageError> {
    i64::try_from(value).map_err(|_| StorageError::Corrupt("audit sequence"))
}

const CLUSTER_COLUMNS: &str = "name, issuer, audiences, api_server_url, reader_token, jwks, created_at, updated_at, ca_pem, allow_extra_audiences, max_token_lifetime_secs";
const API_KEY_COLUMNS: &str =
    "id, key_hash, cluster, namespace, service_account, created_at, revoked_at";
const POLICY_COLUMNS: &str =
    "cluster, namespace, service_account, digests, audit_mode, require_nonce, updated_at";
const SESSION_COLUMNS: &str = "id_hash, cluster, namespace, service_account, pod_name, pod_uid, jkt, recipient_key, api_key_id, created_at, expires_at, revoked_at, container, container_id";

fn cluster_from(row: &Row) -> Result<ClusterRecord, StorageError> {
    Ok(ClusterRecord {
        name: row.get(0),
        issuer: row.get(1),
        audiences: json_list(row.get(2))?,
        api_server_url: row.get(3),
        reader_token: ReaderToken::new(&Zeroizing::new(row.get::<_, String>(4))),
        jwks: row.get(5),
        created_at: row.get(6),
        updated_at: row.get(7),
        ca_pem: row.get(8),
        allow_extra_audiences: row.get(9),
        max_token_lifetime_secs: row.get(10),
    })
}

fn api_key_from(row: &Row) -> Result<ApiKeyRecord, StorageError> {
    api_key_at(row, 0)
}

fn api_key_at(row: &Row, base: usize) -> Result<ApiKeyRecord, StorageError> {
    Ok(ApiKeyRecord {
        id: row.get(base),
        key_hash: hash32(row.get(base + 1))?,
        cluster: row.get(base + 2),
        namespace: row.get(base + 3),
        service_account: row.get(base + 4),
        created_at: row.get(base + 5),
        revoked_at: row.get(base + 6),
    })
}

fn policy_from(row: &Row) -> Result<PolicyRecord, StorageError> {
    policy_at(row, 0)
}

fn policy_at(row: &Row, base: usize) -> Result<PolicyRecord, StorageError> {
    Ok(PolicyRecord {
        cluster: row.get(base),
        namespace: row.get(base + 1),
        service_account: row.get(base + 2),
        digests: json_list(row.get(base + 3))?,
        audit_mode: row.get(base + 4),
        require_nonce: row.get(base + 5),
        updated_at: row.get(base + 6),
    })
}

/// The session at `base` (its `id_hash` column), with the `id` it was
/// looked up by: the database holds only the hash.
fn session_at(row: &Row, base: usize, id: &str) -> SessionRecord {
    SessionRecord {
        id: id.to_owned(),
        cluster: row.get(base + 1),
        namespace: row.get(base + 2),
        service_account: row.get(base + 3),
        pod_name: row.get(base + 4),
        pod_uid: row.get(base + 5),
        jkt: row.get(base + 6),
        recipient_key: row.get(base + 7),
        api_key_id: row.get(base + 8),
        created_at: row.get(base + 9),
        expires_at: row.get(base + 10),
        revoked_at: row.get(base + 11),
        container: row.get(base + 12),
        container_id: row.get(base + 13),
    }
}

/// Version 4's step after its script: the chain's rows re-hashed as
/// leaves (after checking them against the chain), and the frontier row.
async fn rehash_audit_log(tx: &tokio_postgres::Transaction<'_>) -> Result<(), StorageError> {
    let error = db_error("migrate");
    let rows = tx
        .query(
            "SELECT seq, entry, leaf_hash FROM audit_log ORDER BY seq",
            &[],
        )
        .await
        .map_err(&error)?
        .iter()
        .map(|row| Ok((seq_of(row.get(0))?, row.get(1), row.get(2))))
        .collect::<Result<Vec<(u64, Vec<u8>, Vec<u8>)>, StorageError>>()?;
    let checkpoints = tx
        .query(
            "SELECT size, checkpoint FROM audit_chain_checkpoints ORDER BY size",
            &[],
        )
        .await
        .map_err(&error)?
        .iter()
        .map(|row| Ok((seq_of(row.get(0))?, row.get(1))))
        .collect::<Result<Vec<(u64, String)>, StorageError>>()?;
    let (leaves, frontier) = super::upgrade_chain(&rows, &checkpoints)?;
    let seqs = leaves
        .iter()
        .map(|(seq, _)| seq_to(*seq))
        .collect::<Result<Vec<i64>, _>>()?;
    let hashes: Vec<&[u8]> = leaves.iter().map(|(_, leaf)| leaf.as_slice()).collect();
    tx.execute(
        "UPDATE audit_log SET leaf_hash = l.leaf_hash
         FROM unnest($1::bigint[], $2::bytea[]) AS l(seq, leaf_hash) WHERE audit_log.seq = l.seq",
        &[&seqs, &hashes],
    )
    .await
    .map_err(&error)?;
    tx.execute(
        "INSERT INTO audit_frontier (id, size, nodes) VALUES (1, $1, $2)",
        &[&seq_to(frontier.size())?, &frontier.nodes_bytes()],
    )
    .await
    .map_err(&error)?;
    Ok(())
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/db[?options]`)
    /// and applies any missing migration.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let config: tokio_postgres::Config = url.parse().map_err(|_| StorageError::Database {
            operation: "connect",
            message: "the PostgreSQL URL is not valid (postgres://user@host:port/database)".into(),
        })?;
        let pool = |size: usize| {
            let manager = Manager::from_config(
                config.clone(),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .build()
                .map_err(|e| StorageError::Database {
                    operation: "connect",
                    message: e.to_string(),
                })
        };
        let storage = Self {
            pool: pool(16)?,
            commit_pool: pool(2)?,
            stats: Arc::new(StorageStats::default()),
        };
        storage.migrate().await?;
        Ok(storage)
    }

    async fn client(
        &self,
        operation: &'static str,
    ) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool.get().await.map_err(pool_error(operation))
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        let error = db_error("migrate");
        let mut client = self.client("migrate").await?;
        let tx = client.transaction().await.map_err(&error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(&error)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(&error)?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(&error)?
            .get(0);
        let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        super::check_schema_version(current, latest)?;
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql).await.map_err(&error)?;
            if *version == MERKLE_VERSION {
                rehash_audit_log(&tx).await?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, EXTRACT(EPOCH FROM now())::BIGINT)",
                &[version],
            )
            .await
            .map_err(&error)?;
        }
        tx.commit().await.map_err(&error)
    }

    /// Runs one statement; returns the rows it changed.
    async fn execute(
        &self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StorageError> {
        let client = self.client(operation).await?;
        let statement = self.prepare(&client, operation, sql).await?;
        self.stats.round_trips(1);
        let changed = client
            .execute(&statement, params)
            .await
            .map_err(db_error(operation))?;
        self.stats.commit();
        Ok(changed)
    }

    /// A prepared statement from the connection's cache (a round trip the
    /// first time a connection sees `sql`, none afterwards).
    async fn prepare(
        &self,
        client: &deadpool_postgres::Object,
        operation: &'static str,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, StorageError> {
        let cached = client.statement_cache.size();
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(db_error(operation))?;
        if client.statement_cache.size() > cached {
            self.stats.round_trips(1);
        }
        Ok(statement)
    }

    /// Runs one query.
    async fn query(
        &self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StorageError> {
        let client = self.client(operation).await?;
        let statement = self.prepare(&client, operation, sql).await?;
        self.stats.round_trips(1);
        client
            .query(&statement, params)
            .await
            .map_err(db_error(operation))
    }

    /// Inserts or upserts a row that needs its cluster to exist.
    async fn with_cluster(
        &self,
        operation: &'static str,
        cluster: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), StorageError> {
        match self.execute(operation, sql, params).await {
            Err(StorageError::Database { message, .. })
                if message.contains("foreign key")
                    || message.contains("violates") && message.contains("clusters") =>
            {
                Err(StorageError::NotFound(format!(
                    "cluster {cluster} is not registered"
                )))
            }
            other => other.map(|_| ()),
        }
    }
}

impl Storage for PostgresStorage {
    fn stats(&self) -> &StorageStats {
        &self.stats
    }
}

mod admin;
mod audit;
mod release;
