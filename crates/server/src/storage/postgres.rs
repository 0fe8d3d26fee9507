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
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_cluster_ca_and_token_rules.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_session_id_hash.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_audit_merkle_tree.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_pin_per_container.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_cluster_reader_token.sql"),
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

impl ReleaseStore for PostgresStorage {
    async fn server_secret(
        &self,
        name: &str,
        candidate: [u8; 32],
    ) -> Result<[u8; 32], StorageError> {
        let key = format!("secret:{name}");
        // One statement: insert unless present, and return what is stored.
        let rows = self
            .query(
                "read server secret",
                "WITH inserted AS (
                     INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING value
                 )
                 SELECT value FROM inserted UNION ALL SELECT value FROM meta WHERE key = $1",
                &[&key, &candidate.to_vec()],
            )
            .await?;
        let row = rows.first().ok_or(StorageError::Corrupt("server secret"))?;
        hash32(row.get(0))
    }

    async fn pin_dpop_key(
        &self,
        cluster: &str,
        instance: &ContainerInstance,
        jkt: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<PinOutcome, StorageError> {
        let error = db_error("pin DPoP key");
        let ContainerInstance {
            pod_uid,
            container,
            container_id,
        } = instance;
        let mut client = self.client("pin DPoP key").await?;
        let tx = client.transaction().await.map_err(&error)?;
        // A pod-wide pin made before version 5 (none are made any more).
        let pod_wide = tx
            .query_opt(
                "SELECT jkt FROM dpop_pins WHERE cluster = $1 AND pod_uid = $2 AND container = '' AND expires_at > $3",
                &[&cluster, pod_uid, &now],
            )
            .await
            .map_err(&error)?;
        if pod_wide.is_some_and(|row| row.get::<_, String>(0) != jkt) {
            return Ok(PinOutcome::OtherKeyPinned);
        }
        let inserted = tx
            .execute(
                "INSERT INTO dpop_pins (cluster, pod_uid, container, container_id, jkt, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (cluster, pod_uid, container) DO NOTHING",
                &[&cluster, pod_uid, container, container_id, &jkt, &expires_at],
            )
            .await
            .map_err(&error)?;
        let outcome = if inserted == 1 {
            PinOutcome::Pinned
        } else {
            // The row exists: lock it and decide.
            let row = tx
                .query_one(
                    "SELECT jkt, container_id, expires_at FROM dpop_pins WHERE cluster = $1 AND pod_uid = $2 AND container = $3 FOR UPDATE",
                    &[&cluster, pod_uid, container],
                )
                .await
                .map_err(&error)?;
            let (pinned, pinned_id, until): (String, String, i64) =
                (row.get(0), row.get(1), row.get(2));
            let live = until > now;
            if live && pinned_id == *container_id {
                if pinned != jkt {
                    return Ok(PinOutcome::OtherKeyPinned);
                }
                tx.execute(
                    "UPDATE dpop_pins SET expires_at = GREATEST(expires_at, $4) WHERE cluster = $1 AND pod_uid = $2 AND container = $3",
                    &[&cluster, pod_uid, container, &expires_at],
                )
                .await
                .map_err(&error)?;
                PinOutcome::AlreadyPinned
            } else {
                let revoked = tx
                    .execute(
                        "UPDATE sessions SET revoked_at = $5 WHERE cluster = $1 AND pod_uid = $2 AND container = $3 AND container_id <> $4 AND revoked_at IS NULL",
                        &[&cluster, pod_uid, container, container_id, &now],
                    )
                    .await
                    .map_err(&error)?;
                tx.execute(
                    "UPDATE dpop_pins SET jkt = $5, container_id = $4, expires_at = $6 WHERE cluster = $1 AND pod_uid = $2 AND container = $3",
                    &[&cluster, pod_uid, container, container_id, &jkt, &expires_at],
                )
                .await
                .map_err(&error)?;
                if live {
                    PinOutcome::Replaced {
                        old_jkt: pinned,
                        old_container_id: pinned_id,
                        sessions_revoked: revoked,
                    }
                } else {
                    PinOutcome::Pinned
                }
            }
        };
        tx.commit().await.map_err(&error)?;
        Ok(outcome)
    }

    async fn rotate_pin(
        &self,
        cluster: &str,
        pod_uid: &str,
        container: &str,
        old_jkt: &str,
        new_jkt: &str,
    ) -> Result<bool, StorageError> {
        let changed = self
            .execute(
                "rotate DPoP pin",
                "UPDATE dpop_pins SET jkt = $5 WHERE cluster = $1 AND pod_uid = $2 AND container = $3 AND jkt = $4",
                &[&cluster, &pod_uid, &container, &old_jkt, &new_jkt],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn forget_pod(
        &self,
        cluster: &str,
        pod_uid: &str,
        now: i64,
    ) -> Result<u64, StorageError> {
        let error = db_error("forget pod");
        let mut client = self.client("forget pod").await?;
        let tx = client.transaction().await.map_err(&error)?;
        tx.execute(
            "DELETE FROM dpop_pins WHERE cluster = $1 AND pod_uid = $2",
            &[&cluster, &pod_uid],
        )
        .await
        .map_err(&error)?;
        let revoked = tx
            .execute(
                "UPDATE sessions SET revoked_at = $3 WHERE cluster = $1 AND pod_uid = $2 AND revoked_at IS NULL",
                &[&cluster, &pod_uid, &now],
            )
            .await
            .map_err(&error)?;
        tx.commit().await.map_err(&error)?;
        Ok(revoked)
    }

    async fn forget_container(
        &self,
        cluster: &str,
        instance: &ContainerInstance,
        now: i64,
    ) -> Result<(u64, bool), StorageError> {
        let error = db_error("forget container");
        let ContainerInstance {
            pod_uid,
            container,
            container_id,
        } = instance;
        let mut client = self.client("forget container").await?;
        let tx = client.transaction().await.map_err(&error)?;
        let unpinned = tx
            .execute(
                "DELETE FROM dpop_pins WHERE cluster = $1 AND pod_uid = $2 AND container = $3 AND container_id = $4",
                &[&cluster, pod_uid, container, container_id],
            )
            .await
            .map_err(&error)?;
        let revoked = tx
            .execute(
                "UPDATE sessions SET revoked_at = $5 WHERE cluster = $1 AND pod_uid = $2 AND container = $3 AND container_id = $4 AND revoked_at IS NULL",
                &[&cluster, pod_uid, container, container_id, &now],
            )
            .await
            .map_err(&error)?;
        tx.commit().await.map_err(&error)?;
        Ok((revoked, unpinned > 0))
    }

    async fn insert_session(&self, session: SessionRecord) -> Result<(), StorageError> {
        self.execute(
            "insert session",
            &format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"),
            &[
                &super::session_id_hash(&session.id).as_slice(),
                &session.cluster,
                &session.namespace,
                &session.service_account,
                &session.pod_name,
                &session.pod_uid,
                &session.jkt,
                &session.recipient_key,
                &session.api_key_id,
                &session.created_at,
                &session.expires_at,
                &session.revoked_at,
                &session.container,
                &session.container_id,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StorageError> {
        let rows = self
            .query(
                "read session",
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"),
                &[&super::session_id_hash(id).as_slice()],
            )
            .await?;
        Ok(rows.first().map(|row| session_at(row, 0, id)))
    }

    async fn set_session_jkt(&self, id: &str, jkt: &str) -> Result<(), StorageError> {
        self.execute(
            "update session key",
            "UPDATE sessions SET jkt = $2 WHERE id_hash = $1",
            &[&super::session_id_hash(id).as_slice(), &jkt],
        )
        .await
        .map(|_| ())
    }

    async fn record_jti(
        &self,
        jkt: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StorageError> {
        let changed = self
            .execute(
                "record jti",
                "INSERT INTO dpop_jti (jkt, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jkt, jti) DO NOTHING",
                &[&jkt, &jti, &expires_at],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StorageError> {
        let error = db_error("purge expired");
        let mut client = self.client("purge expired").await?;
        let tx = client.transaction().await.map_err(&error)?;
        let mut removed = 0;
        for sql in [
            "DELETE FROM dpop_jti WHERE expires_at <= $1",
            "DELETE FROM dpop_pins WHERE expires_at <= $1",
            "DELETE FROM sessions WHERE expires_at <= $1",
        ] {
            removed += tx.execute(sql, &[&now]).await.map_err(&error)?;
        }
        tx.commit().await.map_err(&error)?;
        Ok(removed)
    }

    async fn request_context(
        &self,
        api_key_hash: [u8; 32],
        session_id: Option<&str>,
    ) -> Result<RequestContext, StorageError> {
        let session_hash = session_id.map(super::session_id_hash);
        let rows = self
            .query(
                "read request context",
                &super::request_context_sql('$'),
                &[
                    &api_key_hash.as_slice(),
                    &session_hash.as_ref().map(|h| h.as_slice()),
                ],
            )
            .await?;
        let row = rows
            .first()
            .ok_or(StorageError::Corrupt("request context"))?;
        let present = |base: usize| row.get::<_, Option<String>>(base).is_some();
        let session_present = row
            .get::<_, Option<Vec<u8>>>(super::CONTEXT_SESSION)
            .is_some();
        Ok(RequestContext {
            api_key: present(0).then(|| api_key_at(row, 0)).transpose()?,
            policy: present(super::CONTEXT_POLICY)
                .then(|| policy_at(row, super::CONTEXT_POLICY))
                .transpose()?,
            session: session_id
                .filter(|_| session_present)
                .map(|id| session_at(row, super::CONTEXT_SESSION, id)),
        })
    }
}

impl AdminStore for PostgresStorage {
    async fn init_admin_token(&self, hash: [u8; 32]) -> Result<bool, StorageError> {
        let changed = self
            .execute(
                "init admin token",
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&ADMIN_TOKEN_KEY, &hash.to_vec()],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn admin_token_hash(&self) -> Result<Option<[u8; 32]>, StorageError> {
        let rows = self
            .query(
                "read admin token",
                "SELECT value FROM meta WHERE key = $1",
                &[&ADMIN_TOKEN_KEY],
            )
            .await?;
        rows.first().map(|row| hash32(row.get(0))).transpose()
    }

    async fn put_cluster(&self, cluster: ClusterRecord) -> Result<(), StorageError> {
        self.execute(
            "put cluster",
            &format!(
                "INSERT INTO clusters ({CLUSTER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (name) DO UPDATE SET issuer = excluded.issuer, audiences = excluded.audiences,
                   api_server_url = excluded.api_server_url,
                   reader_token = excluded.reader_token, jwks = excluded.jwks, updated_at = excluded.updated_at,
                   ca_pem = excluded.ca_pem, allow_extra_audiences = excluded.allow_extra_audiences,
                   max_token_lifetime_secs = excluded.max_token_lifetime_secs"
            ),
            &[
                &cluster.name,
                &cluster.issuer,
                &to_json(&cluster.audiences),
                &cluster.api_server_url,
                &cluster.reader_token.expose_secret(),
                &cluster.jwks,
                &cluster.created_at,
                &cluster.updated_at,
                &cluster.ca_pem,
                &cluster.allow_extra_audiences,
                &cluster.max_token_lifetime_secs,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, StorageError> {
        let rows = self
            .query(
                "read cluster",
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = $1"),
                &[&name],
            )
            .await?;
        rows.first().map(cluster_from).transpose()
    }

    async fn remove_cluster(&self, name: &str) -> Result<RemovedCluster, StorageError> {
        let error = db_error("remove cluster");
        let mut client = self.client("remove cluster").await?;
        let tx = client.transaction().await.map_err(&error)?;
        let found = tx
            .query_opt(
                "SELECT 1 FROM clusters WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await
            .map_err(&error)?;
        if found.is_none() {
            return Err(StorageError::NotFound(
                "the cluster is not registered".into(),
            ));
        }
        let mut counts = [0u64; 3];
        for (count, sql) in counts.iter_mut().zip([
            "DELETE FROM api_keys WHERE cluster = $1",
            "DELETE FROM policies WHERE cluster = $1",
            "DELETE FROM sessions WHERE cluster = $1",
        ]) {
            *count = tx.execute(sql, &[&name]).await.map_err(&error)?;
        }
        for sql in [
            "DELETE FROM dpop_pins WHERE cluster = $1",
            "DELETE FROM clusters WHERE name = $1",
        ] {
            tx.execute(sql, &[&name]).await.map_err(&error)?;
        }
        tx.commit().await.map_err(&error)?;
        let [api_keys, policies, sessions] = counts;
        let removed = RemovedCluster {
            api_keys,
            policies,
            sessions,
        };
        Ok(removed)
    }

    async fn clusters(&self) -> Result<Vec<ClusterRecord>, StorageError> {
        let rows = self
            .query(
                "list clusters",
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name"),
                &[],
            )
            .await?;
        rows.iter().map(cluster_from).collect()
    }

    async fn insert_api_key(&self, key: ApiKeyRecord) -> Result<(), StorageError> {
        self.with_cluster(
            "insert API key",
            &key.cluster,
            &format!(
                "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                &key.id,
                &key.key_hash.to_vec(),
                &key.cluster,
                &key.namespace,
                &key.service_account,
                &key.created_at,
                &key.revoked_at,
            ],
        )
        .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StorageError> {
        let rows = self
            .query(
                "list API keys",
                &format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                &[],
            )
            .await?;
        rows.iter().map(api_key_from).collect()
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool, StorageError> {
        let changed = self
            .execute(
                "revoke API key",
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &now],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn set_policy(&self, policy: PolicyRecord) -> Result<(), StorageError> {
        self.with_cluster(
            "set policy",
            &policy.cluster,
            &format!(
                "INSERT INTO policies ({POLICY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (cluster, namespace, service_account) DO UPDATE SET digests = excluded.digests,
                   audit_mode = excluded.audit_mode, require_nonce = excluded.require_nonce, updated_at = excluded.updated_at"
            ),
            &[
                &policy.cluster,
                &policy.namespace,
                &policy.service_account,
                &to_json(&policy.digests),
                &policy.audit_mode,
                &policy.require_nonce,
                &policy.updated_at,
            ],
        )
        .await
    }

    async fn change_policy_digests(
        &self,
        change: DigestChange,
        now: i64,
    ) -> Result<PolicyRecord, StorageError> {
        let error = db_error("change policy digests");
        let mut client = self.client("change policy digests").await?;
        let tx = client.transaction().await.map_err(&error)?;
        let key: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&change.cluster, &change.namespace, &change.service_account];
        let cluster = tx
            .query_opt("SELECT 1 FROM clusters WHERE name = $1", &[&change.cluster])
            .await
            .map_err(&error)?;
        if cluster.is_none() {
            return Err(StorageError::NotFound(format!(
                "cluster {} is not registered",
                change.cluster
            )));
        }
        if !change.add.is_empty() {
            // A row to lock, also for the first change: two first additions
            // at once then queue on it instead of both inserting.
            tx.execute(
                &format!(
                    "INSERT INTO policies ({POLICY_COLUMNS}) VALUES ($1, $2, $3, '[]', FALSE, FALSE, $4)
                     ON CONFLICT (cluster, namespace, service_account) DO NOTHING"
                ),
                &[&change.cluster, &change.namespace, &change.service_account, &now],
            )
            .await
            .map_err(&error)?;
        }
        let row = tx
            .query_opt(
                &format!("SELECT {POLICY_COLUMNS} FROM policies WHERE cluster = $1 AND namespace = $2 AND service_account = $3 FOR UPDATE"),
                &key,
            )
            .await
            .map_err(&error)?;
        let current = row.map(|row| policy_from(&row)).transpose()?;
        let policy = change
            .applied_to(current, now)
            .map_err(StorageError::NotFound)?;
        tx.execute(
            &format!(
                "INSERT INTO policies ({POLICY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (cluster, namespace, service_account) DO UPDATE SET digests = excluded.digests, updated_at = excluded.updated_at"
            ),
            &[
                &policy.cluster,
                &policy.namespace,
                &policy.service_account,
                &to_json(&policy.digests),
                &policy.audit_mode,
                &policy.require_nonce,
                &policy.updated_at,
            ],
        )
        .await
        .map_err(&error)?;
        tx.commit().await.map_err(&error)?;
        Ok(policy)
    }

    async fn policies(&self) -> Result<Vec<PolicyRecord>, StorageError> {
        let rows = self
            .query(
                "list policies",
                &format!("SELECT {POLICY_COLUMNS} FROM policies ORDER BY cluster, namespace, service_account"),
                &[],
            )
            .await?;
        rows.iter().map(policy_from).collect()
    }
}

impl AuditStore for PostgresStorage {
    async fn commit_batch(&self, items: Vec<CommitItem>) -> Result<Vec<Committed>, StorageError> {
        const OPERATION: &str = "commit audit";
        let error = db_error(OPERATION);
        let client = self
            .commit_pool
            .get()
            .await
            .map_err(pool_error(OPERATION))?;
        let lock = self
            .prepare(&client, OPERATION, "SELECT pg_advisory_xact_lock($1)")
            .await?;
        let record_jtis = self
            .prepare(
                &client,
                OPERATION,
                "INSERT INTO dpop_jti (jkt, jti, expires_at)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
                 ON CONFLICT (jkt, jti) DO NOTHING RETURNING jkt, jti",
            )
            .await?;
        let read_frontier = self
            .prepare(
                &client,
                OPERATION,
                "SELECT size, nodes FROM audit_frontier WHERE id = 1",
            )
            .await?;
        let append = self
            .prepare(
                &client,
                OPERATION,
                "INSERT INTO audit_log (seq, entry, leaf_hash)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])",
            )
            .await?;
        let write_frontier = self
            .prepare(
                &client,
                OPERATION,
                "UPDATE audit_frontier SET size = $1, nodes = $2 WHERE id = 1",
            )
            .await?;
        let jtis: Vec<super::JtiRecord> = items.iter().filter_map(|i| i.jti.clone()).collect();
        let jkts: Vec<&str> = jtis.iter().map(|j| j.jkt.as_str()).collect();
        let ids: Vec<&str> = jtis.iter().map(|j| j.jti.as_str()).collect();
        let expiries: Vec<i64> = jtis.iter().map(|j| j.expires_at).collect();
        // Two pipelined flights. The first begins, takes the log's lock
        // (so every replica's batches take turns, and no two wait on each
        // other's jti rows), records the jtis and reads the frontier; the
        // second appends, writes the frontier and commits.
        let outcome = async {
            let (_, _, inserted, frontier) = try_join4(
                client.batch_execute("BEGIN"),
                client.execute(&lock, &[&AUDIT_LOCK]),
                client.query(&record_jtis, &[&jkts, &ids, &expiries]),
                client.query_one(&read_frontier, &[]),
            )
            .await
            .map_err(&error)?;
            self.stats.round_trips(1);
            let inserted = inserted
                .iter()
                .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
                .collect();
            let frontier = super::frontier_of(frontier.get(0), frontier.get(1))?;
            let fresh = super::fresh_items(&items, inserted);
            let (rows, committed, frontier) = super::append_items(items, &fresh, frontier)?;
            let seqs = rows
                .iter()
                .map(|(seq, _, _)| seq_to(*seq))
                .collect::<Result<Vec<i64>, _>>()?;
            let entries: Vec<&[u8]> = rows.iter().map(|(_, bytes, _)| bytes.as_slice()).collect();
            let leaves: Vec<&[u8]> = rows.iter().map(|(_, _, leaf)| leaf.as_slice()).collect();
            let size = seq_to(frontier.size())?;
            let nodes = frontier.nodes_bytes();
            // An aborted transaction answers COMMIT with a rollback, not an
            // error: the append's and the frontier's own results decide.
            let (_, written, _) = try_join3(
                client.execute(&append, &[&seqs, &entries, &leaves]),
                client.execute(&write_frontier, &[&size, &nodes]),
                client.batch_execute("COMMIT"),
            )
            .await
            .map_err(&error)?;
            self.stats.round_trips(1);
            if written != 1 {
                return Err(StorageError::Corrupt("audit frontier"));
            }
            self.stats.commit();
            Ok(committed)
        }
        .await;
        if outcome.is_err() {
            // Leave no open transaction on a pooled connection.
            let _ = client.batch_execute("ROLLBACK").await;
        }
        outcome
    }

    async fn audit_head(&self) -> Result<(u64, Hash), StorageError> {
        let rows = self
            .query(
                "read audit head",
                "SELECT size, nodes FROM audit_frontier WHERE id = 1",
                &[],
            )
            .await?;
        let row = rows
            .first()
            .ok_or(StorageError::Corrupt("audit frontier"))?;
        let frontier = super::frontier_of(row.get(0), row.get(1))?;
        Ok((frontier.size(), frontier.root()))
    }

    async fn put_checkpoint(&self, checkpoint: Checkpoint) -> Result<(), StorageError> {
        self.execute(
            "store checkpoint",
            "INSERT INTO audit_checkpoints (size, note) VALUES ($1, $2)
             ON CONFLICT (size) DO NOTHING",
            &[&seq_to(checkpoint.size())?, &checkpoint.note()],
        )
        .await
        .map(|_| ())
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StorageError> {
        let rows = self
            .query(
                "read latest checkpoint",
                "SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
                &[],
            )
            .await?;
        rows.first()
            .map(|row| {
                Checkpoint::parse(row.get::<_, &str>(0))
                    .map_err(|_| StorageError::Corrupt("checkpoint"))
            })
            .transpose()
    }

    async fn legacy_checkpoint(&self) -> Result<Option<ChainCheckpoint>, StorageError> {
        let rows = self
            .query(
                "read chain checkpoint",
                "SELECT checkpoint FROM audit_chain_checkpoints ORDER BY size DESC LIMIT 1",
                &[],
            )
            .await?;
        rows.first()
            .map(|row| {
                serde_json::from_str(row.get::<_, &str>(0))
                    .map_err(|_| StorageError::Corrupt("chain checkpoint"))
            })
            .transpose()
    }

    async fn audit_export(&self) -> Result<Vec<ExportLine>, StorageError> {
        let error = db_error("export audit");
        let mut client = self.client("export audit").await?;
        // One snapshot for records and checkpoints.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(&error)?;
        let checkpoints: Vec<(u64, Checkpoint)> = tx
            .query("SELECT size, note FROM audit_checkpoints", &[])
            .await
            .map_err(&error)?
            .iter()
            .map(|row| {
                Ok((
                    seq_of(row.get(0))?,
                    Checkpoint::parse(row.get(1))
                        .map_err(|_| StorageError::Corrupt("checkpoint"))?,
                ))
            })
            .collect::<Result<_, StorageError>>()?;
        let records = tx
            .query(
                "SELECT seq, entry, leaf_hash FROM audit_log ORDER BY seq",
                &[],
            )
            .await
            .map_err(&error)?
            .iter()
            .map(|row| Ok((seq_of(row.get(0))?, row.get(1), hash32(row.get(2))?)))
            .collect::<Result<Vec<_>, StorageError>>()?;
        let lines = super::export_lines(records, checkpoints);
        tx.commit().await.map_err(&error)?;
        Ok(lines)
    }
}
