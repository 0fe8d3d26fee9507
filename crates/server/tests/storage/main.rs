//! Storage engines against the conformance suite. SQLite runs here; the
//! PostgreSQL engine will add its own instantiation of the same functions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

mod suite;

use std::sync::Arc;

use podseal_core::audit::{AuditKey, verify_export};
use podseal_server::storage::{SqliteStorage, Storage};
use tempfile::TempDir;

fn sqlite() -> (TempDir, SqliteStorage) {
    let dir = TempDir::new().unwrap();
    let store = SqliteStorage::open(&dir.path().join("podseal.db")).unwrap();
    (dir, store)
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
async fn sqlite_one_key_per_live_pod_uid() {
    let (_dir, store) = sqlite();
    suite::one_key_per_live_pod_uid(Arc::new(store)).await;
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
        event: "unwrap".into(),
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
        .put_checkpoint(key.checkpoint("test", size, &head, 9_000))
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
