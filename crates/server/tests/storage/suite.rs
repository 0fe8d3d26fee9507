//! The storage conformance suite: generic over [`Storage`], so every engine
//! runs the same checks.

use std::collections::BTreeMap;
use std::sync::Arc;

use podseal_core::audit::{
    AuditKey, AuditRecord, Event, ExportLine, Hash, LogOrigin, Outcome, leaf_hash, legacy, merkle,
    verify_export,
};
use podseal_server::storage::{
    ApiKeyRecord, ClusterRecord, CommitItem, ContainerInstance, DigestChange, JtiRecord,
    PinOutcome, PolicyRecord, ReaderToken, SessionRecord, Storage, StorageError,
};

pub fn cluster(name: &str) -> ClusterRecord {
    ClusterRecord {
        name: name.into(),
        issuer: "https://kubernetes.default.svc".into(),
        audiences: vec!["podseal".into()],
        api_server_url: "https://127.0.0.1:6443".into(),
        ca_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        reader_token: ReaderToken::new("reader-token-1"),
        jwks: r#"{"keys":[]}"#.into(),
        allow_extra_audiences: false,
        max_token_lifetime_secs: 86_400,
        created_at: 100,
        updated_at: 100,
    }
}

fn api_key(id: &str, hash_byte: u8) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        key_hash: [hash_byte; 32],
        cluster: "prod".into(),
        namespace: "shop".into(),
        service_account: "api".into(),
        created_at: 100,
        revoked_at: None,
    }
}

pub fn session(id: &str, pod_uid: &str) -> SessionRecord {
    session_in(id, &instance(pod_uid, "api", "cid-1"))
}

/// A session opened from `instance`.
pub fn session_in(id: &str, instance: &ContainerInstance) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        cluster: "prod".into(),
        namespace: "shop".into(),
        service_account: "api".into(),
        pod_name: "api-0".into(),
        pod_uid: instance.pod_uid.clone(),
        container: instance.container.clone(),
        container_id: instance.container_id.clone(),
        jkt: "jkt-a".into(),
        recipient_key: vec![7; 32],
        api_key_id: "key-1".into(),
        created_at: 100,
        expires_at: 1_000,
        revoked_at: None,
    }
}

/// A container instance of pod `pod_uid`.
pub fn instance(pod_uid: &str, container: &str, container_id: &str) -> ContainerInstance {
    ContainerInstance {
        pod_uid: pod_uid.into(),
        container: container.into(),
        container_id: container_id.into(),
    }
}

/// The API key with hash `[byte; 32]`, as the release path reads it.
async fn key_by_hash<S: Storage>(store: &S, byte: u8) -> Option<ApiKeyRecord> {
    store
        .request_context([byte; 32], None)
        .await
        .unwrap()
        .api_key
}

pub async fn admin_token_is_set_once<S: Storage>(store: &S) {
    assert_eq!(store.admin_token_hash().await.unwrap(), None);
    assert!(store.init_admin_token([1; 32]).await.unwrap());
    assert!(
        !store.init_admin_token([2; 32]).await.unwrap(),
        "a second initialisation must not replace the token"
    );
    assert_eq!(store.admin_token_hash().await.unwrap(), Some([1; 32]));
    // A server secret is created once and shared: the second candidate loses.
    assert_eq!(
        store.server_secret("nonce", [7; 32]).await.unwrap(),
        [7; 32]
    );
    assert_eq!(
        store.server_secret("nonce", [8; 32]).await.unwrap(),
        [7; 32]
    );
    assert_eq!(
        store.server_secret("other", [9; 32]).await.unwrap(),
        [9; 32]
    );
}

pub async fn clusters_keys_and_policies<S: Storage>(store: &S) {
    assert!(matches!(
        store.insert_api_key(api_key("key-1", 1)).await,
        Err(StorageError::NotFound(_))
    ));
    store.put_cluster(cluster("prod")).await.unwrap();
    let mut updated = cluster("prod");
    updated.jwks = r#"{"keys":[{"kid":"k1"}]}"#.into();
    // The pinned CA bytes, the reader token and the token rules are stored
    // and replaced too.
    updated.ca_pem = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n".into();
    updated.reader_token = ReaderToken::new("reader-token-2");
    updated.allow_extra_audiences = true;
    updated.max_token_lifetime_secs = 3600;
    updated.updated_at = 200;
    store.put_cluster(updated.clone()).await.unwrap();
    assert_eq!(store.cluster("prod").await.unwrap(), Some(updated));
    assert_eq!(store.clusters().await.unwrap().len(), 1);
    assert_eq!(store.cluster("nope").await.unwrap(), None);

    store.insert_api_key(api_key("key-1", 1)).await.unwrap();
    store.insert_api_key(api_key("key-2", 2)).await.unwrap();
    assert!(
        store.insert_api_key(api_key("key-3", 1)).await.is_err(),
        "hashes are unique"
    );
    assert_eq!(key_by_hash(store, 1).await.unwrap().id, "key-1");
    assert_eq!(key_by_hash(store, 9).await, None);
    assert!(store.revoke_api_key("key-1", 300).await.unwrap());
    assert!(
        !store.revoke_api_key("key-1", 301).await.unwrap(),
        "already revoked"
    );
    assert!(!store.revoke_api_key("missing", 301).await.unwrap());
    assert_eq!(key_by_hash(store, 1).await.unwrap().revoked_at, Some(300));
    assert_eq!(store.api_keys().await.unwrap().len(), 2);

    let mut policy = PolicyRecord {
        cluster: "prod".into(),
        namespace: "shop".into(),
        service_account: "api".into(),
        digests: vec![format!("sha256:{}", "a".repeat(64))],
        audit_mode: false,
        require_nonce: true,
        updated_at: 100,
    };
    store.set_policy(policy.clone()).await.unwrap();
    policy.digests.push(format!("sha256:{}", "b".repeat(64)));
    store.set_policy(policy.clone()).await.unwrap();
    // Key 2 is bound to prod/shop/api: its request context carries the
    // policy, and no other policy was stored.
    assert_eq!(
        store.request_context([2; 32], None).await.unwrap().policy,
        Some(policy.clone())
    );
    assert_eq!(store.policies().await.unwrap(), [policy.clone()]);
    assert!(matches!(
        store
            .set_policy(PolicyRecord {
                cluster: "ghost".into(),
                ..policy
            })
            .await,
        Err(StorageError::NotFound(_))
    ));
}

pub async fn one_key_per_running_container_instance<S: Storage>(store: Arc<S>) {
    let api = instance("uid-1", "api", "cid-1");
    let pin = |cluster: &'static str, at: ContainerInstance, jkt: &'static str, until, now| {
        let store = store.clone();
        async move {
            store
                .pin_dpop_key(cluster, &at, jkt, until, now)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        pin("prod", api.clone(), "jkt-a", 1_000, 100).await,
        PinOutcome::Pinned
    );
    assert_eq!(
        pin("prod", api.clone(), "jkt-a", 2_000, 150).await,
        PinOutcome::AlreadyPinned
    );
    // The stolen-credential case: a second key while the instance runs.
    assert_eq!(
        pin("prod", api.clone(), "jkt-b", 2_000, 150).await,
        PinOutcome::OtherKeyPinned
    );
    assert_eq!(
        pin("other", api.clone(), "jkt-b", 2_000, 150).await,
        PinOutcome::Pinned,
        "pins are per cluster"
    );
    // Another container of the same pod has its own pin.
    let worker = instance("uid-1", "worker", "cid-9");
    assert_eq!(
        pin("prod", worker.clone(), "jkt-w", 2_000, 150).await,
        PinOutcome::Pinned
    );
    assert!(
        !store
            .rotate_pin("prod", "uid-1", "api", "jkt-x", "jkt-b")
            .await
            .unwrap(),
        "rotation needs the current key"
    );
    assert!(
        !store
            .rotate_pin("prod", "uid-1", "worker", "jkt-a", "jkt-b")
            .await
            .unwrap(),
        "rotation is of one container's pin"
    );
    assert!(
        store
            .rotate_pin("prod", "uid-1", "api", "jkt-a", "jkt-b")
            .await
            .unwrap()
    );
    assert_eq!(
        pin("prod", api.clone(), "jkt-a", 2_000, 150).await,
        PinOutcome::OtherKeyPinned
    );
    // An expired pin no longer blocks (the pod's session is over).
    assert_eq!(
        pin("prod", api.clone(), "jkt-c", 5_000, 2_001).await,
        PinOutcome::Pinned
    );
    assert_eq!(
        pin("prod", worker.clone(), "jkt-w", 5_000, 2_001).await,
        PinOutcome::Pinned
    );

    // Many enrolments at once for a fresh instance: exactly one wins.
    let race = instance("uid-race", "api", "cid-1");
    let attempts = (0..12).map(|i| {
        let (store, race) = (store.clone(), race.clone());
        tokio::spawn(async move {
            store
                .pin_dpop_key("prod", &race, &format!("jkt-{i}"), 1_000, 100)
                .await
                .unwrap()
        })
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    let pinned = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(PinOutcome::Pinned)))
        .count();
    assert_eq!(pinned, 1, "{outcomes:?}");

    // And for the instance after a restart: exactly one replaces the pin.
    let restarted = instance("uid-race", "api", "cid-2");
    let attempts = (0..12).map(|i| {
        let (store, restarted) = (store.clone(), restarted.clone());
        tokio::spawn(async move {
            store
                .pin_dpop_key("prod", &restarted, &format!("jkt-new-{i}"), 1_000, 200)
                .await
                .unwrap()
        })
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    let replaced = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(PinOutcome::Replaced { .. })))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(PinOutcome::OtherKeyPinned)))
        .count();
    assert_eq!((replaced, refused), (1, 11), "{outcomes:?}");
}

pub async fn a_restarted_container_replaces_its_pin_and_ends_its_sessions<S: Storage>(store: &S) {
    let first = instance("uid-1", "api", "cid-1");
    let worker = instance("uid-1", "worker", "cid-9");
    store
        .pin_dpop_key("prod", &first, "jkt-a", 1_000, 100)
        .await
        .unwrap();
    store
        .insert_session(session_in("s1", &first))
        .await
        .unwrap();
    store
        .insert_session(session_in("s2", &first))
        .await
        .unwrap();
    store
        .insert_session(session_in("w1", &worker))
        .await
        .unwrap();

    // The container restarted: the new instance's key replaces the pin and
    // the old instance's sessions end, in one transaction; the other
    // container's session stays.
    let second = instance("uid-1", "api", "cid-2");
    assert_eq!(
        store
            .pin_dpop_key("prod", &second, "jkt-b", 1_000, 200)
            .await
            .unwrap(),
        PinOutcome::Replaced {
            old_jkt: "jkt-a".into(),
            old_container_id: "cid-1".into(),
            sessions_revoked: 2,
        }
    );
    assert_eq!(
        store.session("s1").await.unwrap().unwrap().revoked_at,
        Some(200)
    );
    assert_eq!(store.session("w1").await.unwrap().unwrap().revoked_at, None);
    // The old instance's key cannot come back, nor another key in the new one.
    for jkt in ["jkt-a", "jkt-c"] {
        assert_eq!(
            store
                .pin_dpop_key("prod", &second, jkt, 1_000, 210)
                .await
                .unwrap(),
            PinOutcome::OtherKeyPinned
        );
    }

    // The instance ends (the view saw it stop): its pin and session go; a
    // stale end of an older instance touches nothing.
    store
        .insert_session(session_in("s3", &second))
        .await
        .unwrap();
    assert_eq!(
        store.forget_container("prod", &first, 300).await.unwrap(),
        (0, false)
    );
    assert_eq!(store.session("s3").await.unwrap().unwrap().revoked_at, None);
    assert_eq!(
        store.forget_container("prod", &second, 300).await.unwrap(),
        (1, true)
    );
    assert_eq!(
        store.session("s3").await.unwrap().unwrap().revoked_at,
        Some(300)
    );
    assert_eq!(
        store.forget_container("prod", &second, 301).await.unwrap(),
        (0, false),
        "a second replica's call finds nothing"
    );
    assert_eq!(store.session("w1").await.unwrap().unwrap().revoked_at, None);
    assert_eq!(
        store
            .pin_dpop_key(
                "prod",
                &instance("uid-1", "api", "cid-3"),
                "jkt-d",
                1_000,
                400
            )
            .await
            .unwrap(),
        PinOutcome::Pinned,
        "pin dropped"
    );
}

pub async fn policy_digests_change_atomically<S: Storage>(store: Arc<S>) {
    store.put_cluster(cluster("prod")).await.unwrap();
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let change = |add: Vec<String>, remove: Vec<String>| DigestChange {
        cluster: "prod".into(),
        namespace: "shop".into(),
        service_account: "api".into(),
        add,
        remove,
    };
    assert!(matches!(
        store
            .change_policy_digests(change(vec![], vec![digest('a')]), 100)
            .await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        store
            .change_policy_digests(
                DigestChange {
                    cluster: "ghost".into(),
                    ..change(vec![digest('a')], vec![])
                },
                100
            )
            .await,
        Err(StorageError::NotFound(_))
    ));
    // Created, enforcing, when something is added.
    let created = store
        .change_policy_digests(
            change(vec![digest('b'), digest('a'), digest('b')], vec![]),
            100,
        )
        .await
        .unwrap();
    assert_eq!(created.digests, [digest('a'), digest('b')]);
    assert!(!created.audit_mode && !created.require_nonce);
    // The modes stay.
    store
        .set_policy(PolicyRecord {
            require_nonce: true,
            ..created
        })
        .await
        .unwrap();
    let changed = store
        .change_policy_digests(change(vec![digest('c')], vec![digest('a')]), 200)
        .await
        .unwrap();
    assert_eq!(changed.digests, [digest('b'), digest('c')]);
    assert!(changed.require_nonce);
    assert_eq!(changed.updated_at, 200);
    // Concurrent additions all hold (the interleaving that would lose one
    // is forced in `postgres_two_first_digest_approvals_at_once_both_hold`).
    let adds = ('d'..='k').map(|c| {
        let store = store.clone();
        let add = change(vec![digest(c)], vec![]);
        tokio::spawn(async move { store.change_policy_digests(add, 300).await.unwrap() })
    });
    for joined in futures_util::future::join_all(adds).await {
        joined.unwrap();
    }
    let stored = store.policies().await.unwrap();
    let expected: Vec<String> = ['b', 'c']
        .into_iter()
        .chain('d'..='k')
        .map(digest)
        .collect();
    assert_eq!(stored[0].digests, expected);
}

pub async fn a_cluster_is_removed_with_what_is_bound_to_it<S: Storage>(store: &S) {
    for name in ["prod", "other"] {
        store.put_cluster(cluster(name)).await.unwrap();
    }
    store.insert_api_key(api_key("key-1", 1)).await.unwrap();
    store
        .insert_api_key(ApiKeyRecord {
            cluster: "other".into(),
            ..api_key("key-2", 2)
        })
        .await
        .unwrap();
    for cluster in ["prod", "other"] {
        store
            .set_policy(PolicyRecord {
                cluster: cluster.into(),
                namespace: "shop".into(),
                service_account: "api".into(),
                digests: vec![],
                audit_mode: false,
                require_nonce: false,
                updated_at: 1,
            })
            .await
            .unwrap();
    }
    store.insert_session(session("s1", "uid-1")).await.unwrap();
    let api = instance("uid-1", "api", "cid-1");
    store
        .pin_dpop_key("prod", &api, "jkt-a", 1_000, 100)
        .await
        .unwrap();
    store
        .pin_dpop_key("other", &api, "jkt-a", 1_000, 100)
        .await
        .unwrap();

    let removed = store.remove_cluster("prod").await.unwrap();
    assert_eq!(
        (removed.api_keys, removed.policies, removed.sessions),
        (1, 1, 1)
    );
    assert!(store.cluster("prod").await.unwrap().is_none());
    assert_eq!(key_by_hash(store, 1).await, None);
    assert!(
        key_by_hash(store, 2).await.is_some(),
        "another cluster's key stays"
    );
    let policies = store.policies().await.unwrap();
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].cluster, "other");
    assert_eq!(store.session("s1").await.unwrap(), None);
    assert_eq!(
        store
            .pin_dpop_key("prod", &api, "jkt-b", 1_000, 100)
            .await
            .unwrap(),
        PinOutcome::Pinned,
        "its pins went with it"
    );
    assert_eq!(
        store
            .pin_dpop_key("other", &api, "jkt-b", 1_000, 100)
            .await
            .unwrap(),
        PinOutcome::OtherKeyPinned
    );
    assert!(matches!(
        store.remove_cluster("prod").await,
        Err(StorageError::NotFound(_))
    ));
}

/// A pin as schema versions 1 to 4 stored it: one per pod uid.
pub const POD_WIDE_PIN_SQL: &str = "INSERT INTO dpop_pins (cluster, pod_uid, jkt, expires_at) VALUES ('prod', 'uid-old', 'jkt-old', 1000)";

/// After migration 5, a pin made before covers the whole pod until it
/// expires, as it did when it was made: no other key enrols from any
/// container; its own key does.
pub async fn a_pod_wide_pin_still_refuses_another_key<S: Storage>(store: &S) {
    for container in ["api", "worker"] {
        assert_eq!(
            store
                .pin_dpop_key(
                    "prod",
                    &instance("uid-old", container, "cid-1"),
                    "jkt-new",
                    1_000,
                    100
                )
                .await
                .unwrap(),
            PinOutcome::OtherKeyPinned,
            "{container}"
        );
    }
    assert_eq!(
        store
            .pin_dpop_key(
                "prod",
                &instance("uid-old", "api", "cid-1"),
                "jkt-old",
                1_000,
                100
            )
            .await
            .unwrap(),
        PinOutcome::Pinned
    );
    assert_eq!(
        store
            .pin_dpop_key(
                "prod",
                &instance("uid-old", "worker", "cid-2"),
                "jkt-new",
                2_000,
                1_000
            )
            .await
            .unwrap(),
        PinOutcome::Pinned,
        "expired, it no longer refuses"
    );
}

pub async fn sessions_are_revoked_with_their_pod<S: Storage>(store: &S) {
    store.insert_session(session("s1", "uid-1")).await.unwrap();
    store.insert_session(session("s2", "uid-1")).await.unwrap();
    store.insert_session(session("s3", "uid-2")).await.unwrap();
    let api = instance("uid-1", "api", "cid-1");
    let worker = instance("uid-1", "worker", "cid-2");
    for (at, jkt) in [(&api, "jkt-a"), (&worker, "jkt-w")] {
        store
            .pin_dpop_key("prod", at, jkt, 1_000, 100)
            .await
            .unwrap();
    }
    store.set_session_jkt("s1", "jkt-b").await.unwrap();
    assert_eq!(store.session("s1").await.unwrap().unwrap().jkt, "jkt-b");
    assert_eq!(store.forget_pod("prod", "uid-1", 500).await.unwrap(), 2);
    assert_eq!(
        store.session("s1").await.unwrap().unwrap().revoked_at,
        Some(500)
    );
    assert_eq!(store.session("s3").await.unwrap().unwrap().revoked_at, None);
    for at in [&api, &worker] {
        assert_eq!(
            store
                .pin_dpop_key("prod", at, "jkt-z", 1_000, 600)
                .await
                .unwrap(),
            PinOutcome::Pinned,
            "every container's pin dropped"
        );
    }
    assert_eq!(store.session("missing").await.unwrap(), None);
}

pub async fn a_jti_is_accepted_once<S: Storage>(store: Arc<S>) {
    assert!(store.record_jti("jkt-a", "jti-1", 1_000).await.unwrap());
    assert!(
        !store.record_jti("jkt-a", "jti-1", 1_000).await.unwrap(),
        "replay"
    );
    assert!(
        store.record_jti("jkt-b", "jti-1", 1_000).await.unwrap(),
        "keyed on (jkt, jti)"
    );
    let racers = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.record_jti("jkt-c", "jti-race", 1_000).await.unwrap() })
    });
    // Every racer must answer (a racer whose store call failed, e.g. BUSY,
    // panics its task and fails here), and exactly one answers fresh.
    let answers: Vec<bool> = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.expect("every concurrent use is answered, none fails"))
        .collect();
    let fresh = answers.iter().filter(|fresh| **fresh).count();
    assert_eq!(
        (fresh, answers.len()),
        (1, 16),
        "exactly one of many concurrent uses is fresh, the others are replays"
    );
    assert!(store.purge_expired(1_000).await.unwrap() >= 3);
}

pub async fn audit_appends_chain_and_export_verifies<S: Storage>(store: &S) {
    let record = |event: &str, outcome| AuditRecord {
        seq: 0,
        time_ms: 1_000,
        event: Event::from_code(event).expect("a known event").into(),
        outcome,
        gate: (outcome == Outcome::Refused).then_some(podseal_core::reason::Gate::Dpop),
        reason: (outcome == Outcome::Refused).then_some(podseal_core::reason::Reason::JtiReplayed),
        details: BTreeMap::from([("namespace".into(), "shop".into())]),
    };
    let stored = store
        .append_audit(vec![
            record("session", Outcome::Allowed),
            record("unwrap", Outcome::Allowed),
        ])
        .await
        .unwrap();
    assert_eq!(stored.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
    let key = AuditKey::generate().unwrap();
    let (size, head) = store.audit_head().await.unwrap();
    store
        .put_checkpoint(key.checkpoint(&test_origin(), size, &head))
        .await
        .unwrap();
    let stored = store
        .append_audit(vec![record("unwrap", Outcome::Refused)])
        .await
        .unwrap();
    assert_eq!(stored[0].seq, 3);
    let (size, head) = store.audit_head().await.unwrap();
    assert_eq!(size, 3);
    // The readiness probe writes, and leaves the log as it was.
    store.probe_write().await.unwrap();
    assert_eq!(store.audit_head().await.unwrap(), (size, head));
    store
        .put_checkpoint(key.checkpoint(&test_origin(), size, &head))
        .await
        .unwrap();

    let text = export_lines(store).await;
    assert_eq!(text.len(), 5, "3 records and 2 checkpoints");
    let report = verify_export(&text.join("\n"), &key.public_key(), None).unwrap();
    assert_eq!((report.records, report.checkpoints), (3, 2));
    // A checkpoint is never replaced at its size (a hand-over's stays).
    let other = AuditKey::generate().unwrap();
    store
        .put_checkpoint(other.checkpoint(&test_origin(), size, &head))
        .await
        .unwrap();
    let latest = store.latest_checkpoint().await.unwrap().unwrap();
    assert!(latest.is_signed_by(&key.public_key()));
}

pub fn test_origin() -> LogOrigin {
    LogOrigin::new("test").unwrap()
}

/// The tree's leaves as the export gives them.
async fn exported_leaves<S: Storage>(store: &S) -> Vec<Hash> {
    store
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter_map(|line| match line {
            ExportLine::Record { entry, .. } => Some(leaf_hash(entry.as_bytes())),
            ExportLine::Checkpoint(_) => None,
        })
        .collect()
}

/// The stored frontier is the RFC 9162 tree over the stored records after
/// batches of every shape (so an append never reads the log, and the
/// root it gives is the one a verifier computes from the export).
pub async fn the_stored_frontier_is_the_tree_over_the_records<S: Storage>(store: &S) {
    assert_eq!(store.audit_head().await.unwrap(), (0, merkle::empty_root()));
    let record = |n: usize| AuditRecord {
        seq: 0,
        time_ms: n as i64,
        event: Event::Unwrap.into(),
        outcome: Outcome::Allowed,
        gate: None,
        reason: None,
        details: BTreeMap::from([("n".into(), n.to_string())]),
    };
    let mut total = 0;
    for batch in [1usize, 1, 2, 3, 1, 5, 8, 13, 1, 30] {
        let items = (0..batch)
            .map(|i| CommitItem {
                records: vec![record(total + i)],
                ..CommitItem::default()
            })
            .collect();
        store.commit_batch(items).await.unwrap();
        total += batch;
        let (size, root) = store.audit_head().await.unwrap();
        let leaves = exported_leaves(store).await;
        assert_eq!(size, total as u64);
        assert_eq!(leaves.len(), total);
        assert_eq!(root, merkle::root(&leaves), "after {total} records");
    }
}

/// Records and a chain checkpoint as a version 3 database held them.
pub struct ChainLog {
    /// (seq, entry, chain hash).
    pub rows: Vec<(i64, Vec<u8>, Vec<u8>)>,
    /// (size, checkpoint JSON).
    pub checkpoints: Vec<(i64, String)>,
}

/// A hash-chained log of `n` records, its chain checkpoint over the first
/// `signed` records signed by `key` (the old format, written by hand here
/// because no code writes it any more).
pub fn chain_log(n: u64, signed: u64, key: &[u8; 32]) -> ChainLog {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::Signer as _;
    let signer = ed25519_dalek::SigningKey::from_bytes(key);
    let mut head = legacy::CHAIN_GENESIS;
    let mut rows = Vec::new();
    let mut checkpoints = Vec::new();
    for seq in 1..=n {
        let record = AuditRecord {
            seq,
            time_ms: 1,
            event: Event::Unwrap.into(),
            outcome: if seq == 2 {
                Outcome::Refused
            } else {
                Outcome::Allowed
            },
            gate: None,
            reason: None,
            details: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec(&record).unwrap();
        head = legacy::chain(&head, &bytes);
        rows.push((seq as i64, bytes, head.to_vec()));
        if seq == signed {
            let root = URL_SAFE_NO_PAD.encode(head);
            let note = format!("podseal audit checkpoint v1\npodseal\n{seq}\n{root}\n7\n");
            let checkpoint = legacy::ChainCheckpoint {
                origin: "podseal".into(),
                size: seq,
                root,
                time_ms: 7,
                signature: URL_SAFE_NO_PAD.encode(signer.sign(note.as_bytes()).to_bytes()),
            };
            checkpoints.push((seq as i64, serde_json::to_string(&checkpoint).unwrap()));
        }
    }
    ChainLog { rows, checkpoints }
}

/// After the upgrade of [`chain_log`]`(n, signed, key)`: the rows are the
/// tree's leaves, the frontier is its root, the chain checkpoint is kept
/// for the key's continuity and nothing is exported unsigned.
pub async fn assert_upgraded_chain<S: Storage>(store: &S, n: u64, signed: u64, key: &[u8; 32]) {
    let leaves = exported_leaves(store).await;
    assert_eq!(leaves.len() as u64, n);
    assert_eq!(
        store.audit_head().await.unwrap(),
        (n, merkle::root(&leaves))
    );
    let chain = store.legacy_checkpoint().await.unwrap().unwrap();
    assert_eq!(chain.size, signed);
    let public = ed25519_dalek::SigningKey::from_bytes(key)
        .verifying_key()
        .to_bytes();
    assert!(chain.is_signed_by(&public));
    assert!(store.latest_checkpoint().await.unwrap().is_none());
    // Appends continue the tree.
    store
        .append_audit(vec![AuditRecord {
            seq: 0,
            time_ms: 2,
            event: Event::Unwrap.into(),
            outcome: Outcome::Allowed,
            gate: None,
            reason: None,
            details: BTreeMap::new(),
        }])
        .await
        .unwrap();
    let leaves = exported_leaves(store).await;
    assert_eq!(
        store.audit_head().await.unwrap(),
        (n + 1, merkle::root(&leaves))
    );
}

fn jti_item(jkt: &str, jti: &str, label: &str) -> CommitItem {
    let record = |event: &str, outcome| AuditRecord {
        seq: 0,
        time_ms: 1_000,
        event: Event::from_code(event).expect("a known event").into(),
        outcome,
        gate: None,
        reason: None,
        details: BTreeMap::from([("label".into(), label.into())]),
    };
    CommitItem {
        jti: Some(JtiRecord {
            jkt: jkt.into(),
            jti: jti.into(),
            expires_at: 1_000,
        }),
        records: vec![record("unwrap", Outcome::Allowed)],
        if_replayed: vec![record("unwrap", Outcome::Refused)],
    }
}

/// A group commit records each proof once — a replay in the same batch, in
/// a later batch, or in a concurrent batch of another pool (replica) stores
/// its refusal instead — and every batch lands on one chain that verifies.
pub async fn group_commit_records_each_jti_once<S: Storage>(a: Arc<S>, b: Arc<S>) {
    let committed = a
        .commit_batch(vec![
            jti_item("jkt-a", "jti-1", "first"),
            jti_item("jkt-a", "jti-1", "same batch replay"),
            jti_item("jkt-b", "jti-1", "other key"),
            CommitItem::default(),
        ])
        .await
        .unwrap();
    let fresh: Vec<bool> = committed.iter().map(|c| c.fresh).collect();
    assert_eq!(fresh, [true, false, true, true]);
    assert_eq!(committed[1].stored[0].outcome, Outcome::Refused);
    assert_eq!(
        committed
            .iter()
            .flat_map(|c| c.stored.iter().map(|r| r.seq))
            .collect::<Vec<_>>(),
        [1, 2, 3],
        "an item without records stores nothing"
    );
    let again = b
        .commit_batch(vec![jti_item("jkt-a", "jti-1", "later replay")])
        .await
        .unwrap();
    assert!(!again[0].fresh);
    // Sixteen concurrent batches over two pools race for one jti.
    let racers = (0..16).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            store
                .commit_batch(vec![
                    jti_item("jkt-c", "race", "racer"),
                    jti_item("jkt-d", &format!("own-{i}"), "own"),
                ])
                .await
                .unwrap()
        })
    });
    let results = futures_util::future::join_all(racers).await;
    let mut fresh_racers = 0;
    for result in results {
        let committed = result.unwrap();
        fresh_racers += usize::from(committed[0].fresh);
        assert!(committed[1].fresh, "distinct jtis are all fresh");
    }
    assert_eq!(fresh_racers, 1, "exactly one concurrent use is fresh");
    let (size, head) = a.audit_head().await.unwrap();
    assert_eq!(size, 3 + 1 + 32);
    let key = AuditKey::generate().unwrap();
    b.put_checkpoint(key.checkpoint(&test_origin(), size, &head))
        .await
        .unwrap();
    let export = export_lines(a.as_ref()).await;
    let report = verify_export(&export.join("\n"), &key.public_key(), Some(size)).unwrap();
    assert_eq!(report.records, size);
}

/// The release path's one read: the key, its policy and the session.
pub async fn request_context_reads_key_policy_and_session<S: Storage>(store: &S) {
    store.put_cluster(cluster("prod")).await.unwrap();
    let none = store.request_context([9; 32], Some("s1")).await.unwrap();
    assert!(none.api_key.is_none() && none.policy.is_none() && none.session.is_none());
    store.insert_api_key(api_key("key-1", 3)).await.unwrap();
    let key_only = store.request_context([3; 32], None).await.unwrap();
    assert_eq!(key_only.api_key, Some(api_key("key-1", 3)));
    assert!(key_only.policy.is_none() && key_only.session.is_none());
    let policy = PolicyRecord {
        cluster: "prod".into(),
        namespace: "shop".into(),
        service_account: "api".into(),
        digests: vec![format!("sha256:{}", "a".repeat(64))],
        audit_mode: false,
        require_nonce: true,
        updated_at: 100,
    };
    store.set_policy(policy.clone()).await.unwrap();
    // Another service account's policy is not this key's.
    store
        .set_policy(PolicyRecord {
            service_account: "batch".into(),
            digests: vec![],
            ..policy.clone()
        })
        .await
        .unwrap();
    store.insert_session(session("s1", "uid-1")).await.unwrap();
    let all = store.request_context([3; 32], Some("s1")).await.unwrap();
    assert_eq!(all.api_key, Some(api_key("key-1", 3)));
    assert_eq!(all.policy, Some(policy));
    assert_eq!(all.session, Some(session("s1", "uid-1")));
    // The session is read whatever the key; the release path matches them.
    let session_only = store.request_context([9; 32], Some("s1")).await.unwrap();
    assert!(session_only.api_key.is_none() && session_only.session.is_some());
    assert!(store.revoke_api_key("key-1", 200).await.unwrap());
    let revoked = store.request_context([3; 32], Some("s2")).await.unwrap();
    assert_eq!(revoked.api_key.unwrap().revoked_at, Some(200));
    assert!(revoked.session.is_none());
}

/// The store's audit export, one JSON line per record or checkpoint.
pub async fn export_lines<S: Storage>(store: &S) -> Vec<String> {
    store
        .audit_export()
        .await
        .unwrap()
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect()
}

/// A session id as the server makes them (32 random bytes, base64url).
pub const BEARER_SESSION_ID: &str = "q3Vt0x8ZkQ2b7yJmW4nP1sLcR6dF9hGaE5uTiKoYzXw";

/// Session ids are bearer secrets (the pod's DPoP access token): the store
/// keeps only their SHA-256, as it does API keys, and looks a presented id
/// up by its hash. `raw` returns every value the database holds, read
/// around the engine (and, for a file, the file's bytes).
pub async fn session_ids_are_stored_only_as_hashes<S, F, Fut>(store: &S, raw: F)
where
    S: Storage,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Vec<Vec<u8>>>,
{
    let id = BEARER_SESSION_ID;
    store.put_cluster(cluster("prod")).await.unwrap();
    store.insert_api_key(api_key("key-1", 4)).await.unwrap();
    store.insert_session(session(id, "uid-1")).await.unwrap();
    store.set_session_jkt(id, "jkt-b").await.unwrap();
    let expected = SessionRecord {
        jkt: "jkt-b".into(),
        ..session(id, "uid-1")
    };
    assert_eq!(store.session(id).await.unwrap(), Some(expected.clone()));
    let context = store.request_context([4; 32], Some(id)).await.unwrap();
    assert_eq!(context.session, Some(expected));
    // A near miss is not the session.
    assert_eq!(store.session(&id[..id.len() - 1]).await.unwrap(), None);

    let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    let values = raw().await;
    // At least the cluster, the API key and the session.
    assert!(values.len() >= 3, "the raw read found almost nothing");
    for value in &values {
        for needle in [id.as_bytes(), hex.as_bytes()] {
            assert!(
                !value.windows(needle.len()).any(|w| w == needle),
                "the database holds a session id in clear"
            );
        }
    }
    // Revocation with the pod still reaches it.
    assert_eq!(store.forget_pod("prod", "uid-1", 500).await.unwrap(), 1);
    assert_eq!(
        store.session(id).await.unwrap().unwrap().revoked_at,
        Some(500)
    );
}
