//! Storage engines against the conformance suite: every function of
//! `suite.rs` runs against SQLite and against PostgreSQL.
//!
//! PostgreSQL is `PODSEAL_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test gets a fresh
//! schema. An unreachable server FAILS the tests (CI must not skip them);
//! on a machine without PostgreSQL, `.ci/run` installs and starts one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

mod suite;
#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;

use podseal_core::audit::{AuditKey, Event, verify_export};
use podseal_server::storage::{AdminStore as _, AuditStore as _, ReleaseStore as _};
use podseal_server::storage::{PostgresStorage, SqliteStorage, Storage};
use tempfile::TempDir;

fn sqlite() -> (TempDir, SqliteStorage) {
    let dir = TempDir::new().unwrap();
    let store = SqliteStorage::open(&dir.path().join("podseal.db")).unwrap();
    (dir, store)
}

/// A PostgreSQL store in a schema of its own.
async fn postgres() -> PostgresStorage {
    postgres_pair().await.0
}

/// Two stores (two pools, as two replicas would have) on one fresh schema.
async fn postgres_pair() -> (PostgresStorage, PostgresStorage) {
    let url = support::postgres_url().await;
    // Both migrate at once, as replicas starting together do.
    let (a, b) = tokio::join!(
        PostgresStorage::connect(&url),
        PostgresStorage::connect(&url)
    );
    (a.unwrap(), b.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_append_to_one_verifiable_chain() {
    use podseal_core::audit::{AuditRecord, Outcome};
    let (a, b) = postgres_pair().await;
    let record = |replica: &str| AuditRecord {
        seq: 0,
        time_ms: 1,
        event: Event::Unwrap.into(),
        outcome: Outcome::Allowed,
        gate: None,
        reason: None,
        details: [("replica".to_owned(), replica.to_owned())].into(),
    };
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (store, name) = if i % 2 == 0 {
            (a.clone(), "a")
        } else {
            (b.clone(), "b")
        };
        let batch = vec![record(name), record(name)];
        tasks.push(tokio::spawn(async move {
            store.append_audit(batch).await.unwrap()
        }));
    }
    let mut seqs: Vec<u64> = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap().iter().map(|r| r.seq));
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=80).collect::<Vec<u64>>(),
        "gaps or duplicates in the chain"
    );
    let key = AuditKey::generate().unwrap();
    let (size, head) = b.audit_head().await.unwrap();
    a.put_checkpoint(key.checkpoint(&suite::test_origin(), size, &head))
        .await
        .unwrap();
    let export = suite::export_lines(&b).await;
    let report = verify_export(&export.join("\n"), &key.public_key(), Some(80)).unwrap();
    assert_eq!(report.records, 80);
}

#[tokio::test]
async fn postgres_admin_token_is_set_once() {
    suite::admin_token_is_set_once(&postgres().await).await;
}

#[tokio::test]
async fn postgres_clusters_keys_and_policies() {
    suite::clusters_keys_and_policies(&postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_key_per_running_container_instance() {
    suite::one_key_per_running_container_instance(Arc::new(postgres().await)).await;
}

#[tokio::test]
async fn postgres_a_restarted_container_replaces_its_pin_and_ends_its_sessions() {
    suite::a_restarted_container_replaces_its_pin_and_ends_its_sessions(&postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_policy_digests_change_atomically() {
    suite::policy_digests_change_atomically(Arc::new(postgres().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_policy_digests_change_atomically() {
    let (_dir, store) = sqlite();
    suite::policy_digests_change_atomically(Arc::new(store)).await;
}

#[tokio::test]
async fn postgres_a_cluster_is_removed_with_what_is_bound_to_it() {
    suite::a_cluster_is_removed_with_what_is_bound_to_it(&postgres().await).await;
}

#[tokio::test]
async fn sqlite_a_cluster_is_removed_with_what_is_bound_to_it() {
    let (_dir, store) = sqlite();
    suite::a_cluster_is_removed_with_what_is_bound_to_it(&store).await;
}

#[tokio::test]
async fn postgres_sessions_are_revoked_with_their_pod() {
    suite::sessions_are_revoked_with_their_pod(&postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_jti_is_accepted_once() {
    suite::a_jti_is_accepted_once(Arc::new(postgres().await)).await;
}

#[tokio::test]
async fn postgres_audit_appends_chain_and_export_verifies() {
    suite::audit_appends_chain_and_export_verifies(&postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_commit_records_each_jti_once() {
    let (a, b) = postgres_pair().await;
    suite::group_commit_records_each_jti_once(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test]
async fn postgres_request_context_reads_key_policy_and_session() {
    suite::request_context_reads_key_policy_and_session(&postgres().await).await;
}

#[tokio::test]
async fn postgres_session_ids_are_stored_only_as_hashes() {
    let url = support::postgres_url().await;
    let store = PostgresStorage::connect(&url).await.unwrap();
    suite::session_ids_are_stored_only_as_hashes(&store, || async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let tables = client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
                &[],
            )
            .await
            .unwrap();
        let mut values = Vec::new();
        for table in tables {
            let table: String = table.get(0);
            // Every row as PostgreSQL prints it (bytea as hex).
            for row in client
                .query(&format!("SELECT t::text FROM \"{table}\" t"), &[])
                .await
                .unwrap()
            {
                values.push(row.get::<_, String>(0).into_bytes());
            }
        }
        values
    })
    .await;
}

#[tokio::test]
async fn sqlite_session_ids_are_stored_only_as_hashes() {
    let (dir, store) = sqlite();
    let path = dir.path().join("podseal.db");
    suite::session_ids_are_stored_only_as_hashes(&store, || async move {
        let raw = rusqlite::Connection::open(&path).unwrap();
        let tables: Vec<String> = raw
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut values = Vec::new();
        for table in tables {
            let mut statement = raw.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let columns = statement.column_count();
            let mut rows = statement.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                for i in 0..columns {
                    values.push(match row.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                            b.to_vec()
                        }
                        other => format!("{other:?}").into_bytes(),
                    });
                }
            }
        }
        // And the files themselves: no page, free or in the WAL, holds it either.
        for suffix in ["", "-wal"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            if let Ok(bytes) = std::fs::read(&file) {
                values.push(bytes);
            }
        }
        values
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_group_commit_records_each_jti_once() {
    let (_dir, store) = sqlite();
    let store = Arc::new(store);
    suite::group_commit_records_each_jti_once(store.clone(), store).await;
}

#[tokio::test]
async fn sqlite_request_context_reads_key_policy_and_session() {
    let (_dir, store) = sqlite();
    suite::request_context_reads_key_policy_and_session(&store).await;
}

#[tokio::test]
async fn sqlite_admin_token_is_set_once() {
    let (_dir, store) = sqlite();
    suite::admin_token_is_set_once(&store).await;
}

#[tokio::test]
async fn sqlite_clusters_keys_and_policies() {
    let (_dir, store) = sqlite();
    suite::clusters_keys_and_policies(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_key_per_running_container_instance() {
    let (_dir, store) = sqlite();
    suite::one_key_per_running_container_instance(Arc::new(store)).await;
}

#[tokio::test]
async fn sqlite_a_restarted_container_replaces_its_pin_and_ends_its_sessions() {
    let (_dir, store) = sqlite();
    suite::a_restarted_container_replaces_its_pin_and_ends_its_sessions(&store).await;
}

#[tokio::test]
async fn sqlite_sessions_are_revoked_with_their_pod() {
    let (_dir, store) = sqlite();
    suite::sessions_are_revoked_with_their_pod(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_jti_is_accepted_once() {
    let (_dir, store) = sqlite();
    suite::a_jti_is_accepted_once(Arc::new(store)).await;
}

#[tokio::test]
async fn sqlite_audit_appends_chain_and_export_verifies() {
    let (_dir, store) = sqlite();
    suite::audit_appends_chain_and_export_verifies(&store).await;
}

#[tokio::test]
async fn sqlite_state_survives_a_restart() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("podseal.db");
    {
        let store = SqliteStorage::open(&path).unwrap();
        store.put_cluster(suite::cluster("prod")).await.unwrap();
        assert!(store.record_jti("jkt-a", "jti-1", i64::MAX).await.unwrap());
        store
            .insert_session(suite::session("s1", "uid-1"))
            .await
            .unwrap();
    }
    // Reopening applies no migration twice and forgets nothing that decides a release.
    let store = SqliteStorage::open(&path).unwrap();
    assert!(
        !store.record_jti("jkt-a", "jti-1", i64::MAX).await.unwrap(),
        "a replay after restart is still a replay"
    );
    assert!(store.session("s1").await.unwrap().is_some());
    assert!(store.cluster("prod").await.unwrap().is_some());
}

#[tokio::test]
async fn sqlite_an_edited_audit_row_fails_verification() {
    use podseal_core::audit::{AuditRecord, Outcome};
    let (dir, store) = sqlite();
    let record = |outcome| AuditRecord {
        seq: 0,
        time_ms: 1,
        event: Event::Unwrap.into(),
        outcome,
        gate: None,
        reason: None,
        details: Default::default(),
    };
    store
        .append_audit(vec![
            record(Outcome::Allowed),
            record(Outcome::Refused),
            record(Outcome::Allowed),
        ])
        .await
        .unwrap();
    let key = AuditKey::generate().unwrap();
    let (size, head) = store.audit_head().await.unwrap();
    store
        .put_checkpoint(key.checkpoint(&suite::test_origin(), size, &head))
        .await
        .unwrap();
    let export = |store: &SqliteStorage| {
        let store = store.clone();
        async move {
            store
                .audit_export()
                .await
                .unwrap()
                .iter()
                .map(|l| serde_json::to_string(l).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    assert!(verify_export(&export(&store).await, &key.public_key(), None).is_ok());

    // Someone with write access to the database file edits a record in place.
    let raw = rusqlite::Connection::open(dir.path().join("podseal.db")).unwrap();
    let edited = raw
        .execute(
            "UPDATE audit_log SET entry = replace(entry, 'refused', 'allowed') WHERE seq = 2",
            [],
        )
        .unwrap();
    assert_eq!(edited, 1);
    assert!(verify_export(&export(&store).await, &key.public_key(), None).is_err());
    // Or deletes one.
    raw.execute("DELETE FROM audit_log WHERE seq = 1", [])
        .unwrap();
    assert!(verify_export(&export(&store).await, &key.public_key(), None).is_err());
}

#[tokio::test]
async fn sqlite_version_1_sessions_held_in_clear_are_dropped_by_the_upgrade() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("podseal.db");
    {
        // A database as version 1 left it, with a session id in clear.
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql"))
            .unwrap();
        raw.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0);",
        )
        .unwrap();
        raw.execute(
            "INSERT INTO sessions VALUES (?1, 'prod', 'shop', 'api', 'api-0', 'uid-1', 'jkt-a', x'07', 'key-1', 100, 1000, NULL)",
            [suite::BEARER_SESSION_ID],
        )
        .unwrap();
    }
    let store = SqliteStorage::open(&path).unwrap();
    assert_eq!(
        store.session(suite::BEARER_SESSION_ID).await.unwrap(),
        None,
        "a session whose id sat in clear survived the upgrade"
    );
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = raw
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(version, 6, "upgraded to the latest version");
    let clear: i64 = raw
        .query_row(
            "SELECT COUNT(*) FROM sessions WHERE typeof(id_hash) != 'blob' OR length(id_hash) != 32",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(clear, 0);
    // New sessions work as before.
    store
        .insert_session(suite::session(suite::BEARER_SESSION_ID, "uid-1"))
        .await
        .unwrap();
    assert!(
        store
            .session(suite::BEARER_SESSION_ID)
            .await
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("podseal.db");
    drop(SqliteStorage::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)",
        [],
    )
    .unwrap();
    let Err(error) = SqliteStorage::open(&path) else {
        panic!("a newer schema was accepted")
    };
    assert!(
        error.to_string().contains("newer than this build"),
        "{error}"
    );
}

/// A cluster row as schema version 1 stored it.
const V1_CLUSTER: &str = "INSERT INTO clusters (name, issuer, audiences, api_server_url, ca_bundle, token_file, jwks, created_at, updated_at)
     VALUES ('prod', 'https://kubernetes.default.svc', '[\"podseal\"]', 'https://127.0.0.1:6443', '/etc/podseal/ca.pem', '/etc/podseal/reader.token', '{\"keys\":[]}', 1, 1)";

/// A version 1 registration after the migration: no pinned CA, the default
/// token rules, and a connection refused with what to do about it.
async fn assert_migrated_v1_cluster<S: Storage>(store: &S) {
    let record = store.cluster("prod").await.unwrap().unwrap();
    assert_eq!(
        (
            record.ca_pem.as_str(),
            record.allow_extra_audiences,
            record.max_token_lifetime_secs
        ),
        ("", false, 86_400)
    );
    let views =
        podseal_server::pod_view::ViewConfig::with_max_staleness(std::time::Duration::from_secs(5));
    let Err(why) = podseal_server::cluster::connect(&record, views, 30) else {
        panic!("a registration without a pinned CA was connected");
    };
    let why = why.to_string();
    assert!(why.contains("--replace"), "{why}");
}

#[tokio::test]
async fn sqlite_a_version_1_database_is_migrated_and_its_clusters_need_their_ca_pinned() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("podseal.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(include_str!("../../migrations/sqlite/0001_init.sql"))
            .unwrap();
        connection
            .execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 1);",
            )
            .unwrap();
        connection.execute(V1_CLUSTER, []).unwrap();
    }
    let store = SqliteStorage::open(&path).unwrap();
    assert_migrated_v1_cluster(&store).await;
}

#[tokio::test]
async fn postgres_a_version_1_database_is_migrated_and_its_clusters_need_their_ca_pinned() {
    let url = support::postgres_url().await;
    {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        client
            .batch_execute(include_str!("../../migrations/postgres/0001_init.sql"))
            .await
            .unwrap();
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 1);",
            )
            .await
            .unwrap();
        client.batch_execute(V1_CLUSTER).await.unwrap();
        drop(client);
        connection.await.unwrap().unwrap();
    }
    let store = PostgresStorage::connect(&url).await.unwrap();
    assert_migrated_v1_cluster(&store).await;
}

/// A cluster row as schema versions 2 to 5 stored it: a pinned CA, and a
/// token file named by the admin request that registered it.
const V5_CLUSTER: &str = "INSERT INTO clusters (name, issuer, audiences, api_server_url, ca_bundle, token_file, jwks, created_at, updated_at, ca_pem)
     VALUES ('prod', 'https://kubernetes.default.svc', '[\"podseal\"]', 'https://127.0.0.1:6443', '/etc/podseal/ca.pem', '/etc/podseal/reader.token', '{\"keys\":[]}', 1, 1, 'pinned')";

/// A registration made when the server read a token file named by the
/// request, after the upgrade: no token, no path kept, and a connection
/// refused with the way out (`cluster add … --replace`, which uploads one).
async fn assert_migrated_v5_cluster<S: Storage>(store: &S) {
    let record = store.cluster("prod").await.unwrap().unwrap();
    assert!(record.reader_token.is_empty());
    assert_eq!(record.ca_pem, "pinned");
    let views =
        podseal_server::pod_view::ViewConfig::with_max_staleness(std::time::Duration::from_secs(5));
    let Err(why) = podseal_server::cluster::connect(&record, views, 30) else {
        panic!("a registration without a reader token was connected");
    };
    let why = why.to_string();
    assert!(
        why.contains("token file") && why.contains("--replace") && !why.contains("/etc/podseal"),
        "{why}"
    );
}

/// The migrations of `engine` up to `version`, in order.
fn migrations_to(engine: &str, version: usize) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .take(version)
        .map(|file| std::fs::read_to_string(file).unwrap())
        .collect()
}

#[tokio::test]
async fn sqlite_a_version_5_token_file_registration_is_migrated_and_refused_until_replaced() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("podseal.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        for sql in migrations_to("sqlite", 5) {
            connection.execute_batch(&sql).unwrap();
        }
        connection
            .execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 1), (2, 1), (3, 1), (4, 1), (5, 1);",
            )
            .unwrap();
        connection.execute(V5_CLUSTER, []).unwrap();
    }
    let store = SqliteStorage::open(&path).unwrap();
    assert_migrated_v5_cluster(&store).await;
}

#[tokio::test]
async fn postgres_a_version_5_token_file_registration_is_migrated_and_refused_until_replaced() {
    let url = support::postgres_url().await;
    {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        for sql in migrations_to("postgres", 5) {
            client.batch_execute(&sql).await.unwrap();
        }
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 1), (2, 1), (3, 1), (4, 1), (5, 1);",
            )
            .await
            .unwrap();
        client.batch_execute(V5_CLUSTER).await.unwrap();
        drop(client);
        connection.await.unwrap().unwrap();
    }
    let store = PostgresStorage::connect(&url).await.unwrap();
    assert_migrated_v5_cluster(&store).await;
}

#[tokio::test]
async fn sqlite_the_stored_frontier_is_the_tree_over_the_records() {
    let (_dir, store) = sqlite();
    suite::the_stored_frontier_is_the_tree_over_the_records(&store).await;
}

#[tokio::test]
async fn postgres_the_stored_frontier_is_the_tree_over_the_records() {
    suite::the_stored_frontier_is_the_tree_over_the_records(&postgres().await).await;
}

const CHAIN_KEY: [u8; 32] = [42; 32];

/// A SQLite database as schema version 3 left it, holding `log`.
fn sqlite_version_3(path: &std::path::Path, log: &suite::ChainLog) {
    let raw = rusqlite::Connection::open(path).unwrap();
    for sql in [
        include_str!("../../migrations/sqlite/0001_init.sql"),
        include_str!("../../migrations/sqlite/0002_cluster_ca_and_token_rules.sql"),
        include_str!("../../migrations/sqlite/0003_session_id_hash.sql"),
    ] {
        raw.execute_batch(sql).unwrap();
    }
    raw.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
         INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0);",
    )
    .unwrap();
    raw.execute(suite::POD_WIDE_PIN_SQL, []).unwrap();
    for (seq, entry, hash) in &log.rows {
        raw.execute(
            "INSERT INTO audit_log (seq, entry, hash) VALUES (?1, ?2, ?3)",
            rusqlite::params![seq, entry, hash],
        )
        .unwrap();
    }
    for (size, json) in &log.checkpoints {
        raw.execute(
            "INSERT INTO audit_checkpoints (size, checkpoint) VALUES (?1, ?2)",
            rusqlite::params![size, json],
        )
        .unwrap();
    }
}

/// Issue 13: a hash-chained log is carried into the Merkle tree by
/// migration 4 — every row re-hashed as a leaf, the frontier built, the
/// chain checkpoint kept — and a log edited before the upgrade (a row that
/// no longer matches its chain, or a chain checkpoint that no longer
/// matches the rows) is refused with a message saying so, never carried
/// over silently.
#[tokio::test]
async fn sqlite_a_hash_chained_log_is_upgraded_to_the_merkle_tree() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("podseal.db");
    sqlite_version_3(&path, &suite::chain_log(5, 4, &CHAIN_KEY));
    let store = SqliteStorage::open(&path).unwrap();
    suite::assert_upgraded_chain(&store, 5, 4, &CHAIN_KEY).await;
    suite::a_pod_wide_pin_still_refuses_another_key(&store).await;
    drop(store);
    let store = SqliteStorage::open(&path).unwrap();
    assert_eq!(store.audit_head().await.unwrap().0, 6, "migrated once");

    // Edited before the upgrade: refused, and the database stays at version 3.
    let mut edited = suite::chain_log(5, 4, &CHAIN_KEY);
    edited.rows[1].1 = String::from_utf8(edited.rows[1].1.clone())
        .unwrap()
        .replace("refused", "allowed")
        .into_bytes();
    let tampered = dir.path().join("tampered.db");
    sqlite_version_3(&tampered, &edited);
    let Err(error) = SqliteStorage::open(&tampered) else {
        panic!("an edited chain was upgraded")
    };
    let message = error.to_string();
    assert!(
        message.contains("audit record 2 does not match its chain hash")
            && message.contains("changed outside podseal"),
        "{message}"
    );
    let version: i64 = rusqlite::Connection::open(&tampered)
        .unwrap()
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(version, 3);
    // A chain re-hashed after the edit, under the old signed checkpoint.
    let mut rehashed = suite::chain_log(5, 4, &CHAIN_KEY);
    let mut head = podseal_core::audit::legacy::CHAIN_GENESIS;
    for (i, row) in rehashed.rows.iter_mut().enumerate() {
        if i == 1 {
            row.1 = String::from_utf8(row.1.clone())
                .unwrap()
                .replace("refused", "allowed")
                .into_bytes();
        }
        head = podseal_core::audit::legacy::chain(&head, &row.1);
        row.2 = head.to_vec();
    }
    let forged = dir.path().join("forged.db");
    sqlite_version_3(&forged, &rehashed);
    let Err(error) = SqliteStorage::open(&forged) else {
        panic!("a re-hashed chain was upgraded under its old checkpoint")
    };
    assert!(
        error
            .to_string()
            .contains("chain checkpoint over 4 records does not match"),
        "{error}"
    );
}

#[tokio::test]
async fn postgres_a_hash_chained_log_is_upgraded_to_the_merkle_tree() {
    async fn version_3(url: &str, log: &suite::ChainLog) {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        for sql in [
            include_str!("../../migrations/postgres/0001_init.sql"),
            include_str!("../../migrations/postgres/0002_cluster_ca_and_token_rules.sql"),
            include_str!("../../migrations/postgres/0003_session_id_hash.sql"),
        ] {
            client.batch_execute(sql).await.unwrap();
        }
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0);",
            )
            .await
            .unwrap();
        client.batch_execute(suite::POD_WIDE_PIN_SQL).await.unwrap();
        for (seq, entry, hash) in &log.rows {
            client
                .execute(
                    "INSERT INTO audit_log (seq, entry, hash) VALUES ($1, $2, $3)",
                    &[seq, entry, hash],
                )
                .await
                .unwrap();
        }
        for (size, json) in &log.checkpoints {
            client
                .execute(
                    "INSERT INTO audit_checkpoints (size, checkpoint) VALUES ($1, $2)",
                    &[size, json],
                )
                .await
                .unwrap();
        }
        drop(client);
        connection.await.unwrap().unwrap();
    }
    let url = support::postgres_url().await;
    version_3(&url, &suite::chain_log(9, 8, &CHAIN_KEY)).await;
    // Two replicas upgrading at once: one applies it, both see one tree.
    let (a, b) = tokio::join!(
        PostgresStorage::connect(&url),
        PostgresStorage::connect(&url)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    suite::assert_upgraded_chain(&a, 9, 8, &CHAIN_KEY).await;
    suite::a_pod_wide_pin_still_refuses_another_key(&a).await;
    assert_eq!(b.audit_head().await.unwrap(), a.audit_head().await.unwrap());

    let url = support::postgres_url().await;
    let mut edited = suite::chain_log(3, 3, &CHAIN_KEY);
    edited.rows.remove(1);
    version_3(&url, &edited).await;
    let Err(error) = PostgresStorage::connect(&url).await else {
        panic!("a chain with a record removed was upgraded")
    };
    assert!(
        error.to_string().contains("audit record 2 is missing"),
        "{error}"
    );
}

/// The first approval of a digest for a service account while another
/// replica's first one is in flight (its insert not committed yet): both
/// hold. Without a row to queue on, the later change would read no policy
/// and overwrite the earlier one's digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_first_digest_approvals_at_once_both_hold() {
    let url = support::postgres_url().await;
    let store = PostgresStorage::connect(&url).await.unwrap();
    store.put_cluster(suite::cluster("prod")).await.unwrap();
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    // The other replica, by hand: its insert made and not yet committed.
    let (mut other, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tx = other.transaction().await.unwrap();
    let backend: i32 = tx
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    tx.execute(
        "INSERT INTO policies (cluster, namespace, service_account, digests, audit_mode, require_nonce, updated_at)
         VALUES ('prod', 'shop', 'api', $1, FALSE, FALSE, 1)",
        &[&serde_json::to_string(&[digest('a')]).unwrap()],
    )
    .await
    .unwrap();
    let change = tokio::spawn({
        let store = store.clone();
        let add = podseal_server::storage::DigestChange {
            cluster: "prod".into(),
            namespace: "shop".into(),
            service_account: "api".into(),
            add: vec![digest('b')],
            remove: vec![],
        };
        async move { store.change_policy_digests(add, 2).await.unwrap() }
    });
    // Wait (deadline) until this store's change waits on that insert.
    let (watcher, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let blocked: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                &[&backend],
            )
            .await
            .unwrap()
            .get(0);
        if blocked > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tx.commit().await.unwrap();
    let changed = change.await.unwrap();
    assert_eq!(changed.digests, [digest('a'), digest('b')]);
    assert_eq!(store.policies().await.unwrap()[0].digests, changed.digests);
}
