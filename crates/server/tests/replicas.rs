//! Three release-server instances on one PostgreSQL database, as replicas
//! behind one Service: one external URL, one org key, one audit key, one
//! store. (Instances in this test process; the multi-process tests with a
//! replica killed mid-burst are still to come.) A proof replayed against
//! another replica is refused; a second DPoP key for a pod is refused on
//! another replica; 32 concurrent enrolments for one pod across replicas
//! pin exactly one key; an API key revoked through one replica is refused
//! by the others at once (nothing is cached); the audit log of all three
//! is one chain that verifies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use http::Method;
use podseal_core::audit::{AuditKey, parse_public_key, verify_export};
use podseal_core::dpop::DpopKey;
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey as _};
use podseal_core::org_key::OrgPrivateKey;
use podseal_core::wire::Problem;
use podseal_core::wire::admin::{ApiKeyRequest, ClusterRequest, PolicyRequest, ReaderToken};
use podseal_keys::key_file::write_new;
use podseal_sdk::admin::AdminClient;
use podseal_sdk::https::{Answer, HttpsClient};
use podseal_sdk::protocol::{self, Credentials, Endpoint, Freshness, SignedRequest};
use podseal_server::config::{ServerConfig, TlsSection};
use podseal_server::startup::{Running, start_postgres};
use podseal_server::storage::AdminStore as _;
use podseal_server::storage::{Bounded, PostgresStorage, Storage as _};
use podseal_test_support::fixtures::{kubernetes_scope, seal_params};
use tempfile::TempDir;

mod support;

const EXTERNAL_URL: &str = "https://podseal.test";

fn reason(answer: &Answer) -> String {
    serde_json::from_slice::<Problem>(&answer.body)
        .map(|p| format!("{}/{}", p.gate, p.reason))
        .unwrap_or_else(|_| format!("HTTP {}", answer.status))
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_postgres_share_every_decision() {
    let cluster = support::Cluster::start().await;
    let handle = cluster.dev.handle();
    let dir = TempDir::new().unwrap();
    let path = |name: &str| dir.path().join(name);
    let org = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    write_new(&path("org.key"), org.to_text().as_bytes(), 0o600).unwrap();
    let audit = AuditKey::generate().unwrap();
    write_new(&path("audit.key"), audit.to_text().as_bytes(), 0o600).unwrap();
    write_new(
        &path("postgres.url"),
        support::postgres_url().await.as_bytes(),
        0o600,
    )
    .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "podseal.test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(path("tls.crt"), cert.pem()).unwrap();
    write_new(&path("tls.key"), key.serialize_pem().as_bytes(), 0o600).unwrap();

    let mut replicas: Vec<Running<Bounded<PostgresStorage>>> = Vec::new();
    let mut clients = Vec::new();
    for name in ["a", "b", "c"] {
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".into(),
            external_url: EXTERNAL_URL.into(),
            state_dir: path(name),
            org_key_files: vec![path("org.key")],
            tls: TlsSection {
                cert_file: Some(path("tls.crt")),
                key_file: Some(path("tls.key")),
            },
            ..ServerConfig::default()
        };
        config.storage.engine = "postgres".into();
        config.storage.url_file = Some(path("postgres.url"));
        config.audit.key_file = Some(path("audit.key"));
        config.clusters.refresh_secs = 1;
        let running = start_postgres(config).await.unwrap();
        clients.push(
            HttpsClient::new(
                &format!("https://localhost:{}", running.addr.port()),
                Some(cert.pem().as_bytes()),
            )
            .unwrap(),
        );
        replicas.push(running);
    }
    let admin_token = replicas[0].admin_token.as_ref().unwrap().to_string();
    assert!(
        replicas[1].admin_token.is_none() && replicas[2].admin_token.is_none(),
        "one store, one admin token"
    );
    let admin = |replica: usize| AdminClient::new(clients[replica].clone(), &admin_token);
    // Registered through replica a only: b and c notice it within their
    // refresh interval (1 s here) and connect their own views.
    let registration = |name: &str| ClusterRequest {
        name: name.into(),
        api_server_url: cluster.dev.url().into(),
        ca_pem: std::fs::read_to_string(cluster.dir.path().join("ca.pem")).unwrap(),
        reader_token: ReaderToken::new(
            &std::fs::read_to_string(cluster.dir.path().join("reader.token")).unwrap(),
        ),
        ..ClusterRequest::default()
    };
    admin(0).add_cluster(&registration("prod")).await.unwrap();
    let registered = replicas[0].release().clusters().get("prod").unwrap();
    let (polls_before, _) = replicas[0].release().storage().stats().snapshot();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(20));
    while !replicas.iter().all(|r| {
        r.release()
            .clusters()
            .get("prod")
            .is_some_and(|c| c.view.is_fresh())
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a replica never connected the cluster registered through another"
        );
        ticks.tick().await;
    }
    // The replica it was registered through keeps the view it connected
    // then: its own refresh polls (each one read of the clusters table,
    // counted by its storage; nothing else reaches it meanwhile) find the
    // record it connected from and leave it alone — a reconnection would
    // start a new view that refuses (503) until its first list.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while replicas[0].release().storage().stats().snapshot().0 < polls_before + 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica a never polled the clusters table"
        );
        ticks.tick().await;
    }
    assert!(
        std::sync::Arc::ptr_eq(
            &registered,
            &replicas[0].release().clusters().get("prod").unwrap()
        ),
        "the registering replica reconnected a cluster it had just connected"
    );
    // A cluster removed through one replica is dropped by every other one
    // within its refresh interval (it no longer counts in their /readyz).
    admin(0)
        .add_cluster(&registration("staging"))
        .await
        .unwrap();
    let connected = |name: &str| {
        replicas
            .iter()
            .filter(|r| r.release().clusters().names().iter().any(|n| n == name))
            .count()
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while connected("staging") < replicas.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "staging never connected everywhere"
        );
        ticks.tick().await;
    }
    admin(1).remove_cluster("staging").await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while connected("staging") > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a replica kept a removed cluster"
        );
        ticks.tick().await;
    }
    assert_eq!(connected("prod"), replicas.len());
    let created = admin(0)
        .create_api_key(&ApiKeyRequest {
            cluster: "prod".into(),
            namespace: "shop".into(),
            service_account: "api".into(),
        })
        .await
        .unwrap();
    let api_key = created.key.clone();
    admin(1)
        .set_policy(&PolicyRequest {
            cluster: "prod".into(),
            namespace: "shop".into(),
            service_account: "api".into(),
            digests: vec![support::digest('a')],
            audit_mode: false,
            require_nonce: false,
        })
        .await
        .unwrap();
    handle.create_pod(&support::api_pod("api-0")).unwrap();
    handle.mark_running("shop", "api-0").unwrap();
    let (token, _) = handle
        .issue_token("shop", "api", &["podseal".into()], 600, Some("api-0"))
        .unwrap();
    let recipient = LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    let endpoint = Endpoint::new(EXTERNAL_URL);
    let fresh = || Freshness {
        iat: now(),
        nonce: None,
    };
    let send_on = async |replica: usize, request: &SignedRequest| {
        clients[replica]
            .send(
                Method::POST,
                request.path(),
                &request.headers(),
                Some(request.body().to_vec()),
            )
            .await
            .unwrap()
    };
    let session_on = async |replica: usize, key: &DpopKey| {
        let credentials = Credentials {
            api_key: &api_key,
            token: &token,
        };
        let request = endpoint
            .session(credentials, key, recipient.public_key_bytes(), fresh())
            .unwrap();
        send_on(replica, &request).await
    };

    // 32 concurrent enrolments for one pod uid, spread over the replicas: one pin.
    let keys: Vec<DpopKey> = (0..32).map(|_| DpopKey::generate().unwrap()).collect();
    let attempts = keys
        .iter()
        .enumerate()
        .map(|(i, key)| session_on(i % 3, key));
    let answers = futures_util::future::join_all(attempts).await;
    let granted: Vec<usize> = (0..answers.len())
        .filter(|i| answers[*i].status == 201)
        .collect();
    assert_eq!(
        granted.len(),
        1,
        "{:?}",
        answers.iter().map(reason).collect::<Vec<_>>()
    );
    for answer in answers.iter().filter(|a| a.status != 201) {
        assert_eq!(reason(answer), "dpop/pod_key_already_pinned");
    }
    let pod_key = &keys[granted[0]];
    let granted = &answers[granted[0]];
    let session = protocol::session_answer(granted.status, &granted.body).unwrap();

    // A second key on every replica is refused.
    let other = DpopKey::generate().unwrap();
    for replica in 0..3 {
        assert_eq!(
            reason(&session_on(replica, &other).await),
            "dpop/pod_key_already_pinned"
        );
    }

    // A proof used on one replica is refused on the others.
    let capsule = {
        let params = seal_params(kubernetes_scope("prod", "shop", "api"));
        podseal_core::envelope::seal(params, b"s3cret", &[org.public()]).unwrap()
    };
    let unwrap_request = || {
        let credentials = Credentials {
            api_key: &api_key,
            token: &token,
        };
        endpoint
            .unwrap(
                credentials,
                pod_key,
                &session,
                &[&capsule.envelope],
                fresh(),
            )
            .unwrap()
    };
    let used = unwrap_request();
    let answer = send_on(0, used.request()).await;
    let deks = used
        .open_answer(answer.status, &answer.body, &recipient)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        podseal_core::envelope::decrypt_content(&capsule, &deks[0])
            .unwrap()
            .expose_secret_bytes(),
        b"s3cret"
    );
    for replica in 1..3 {
        assert_eq!(
            reason(&send_on(replica, used.request()).await),
            "dpop/jti_replayed"
        );
    }
    // Every replica serves the session with a fresh proof.
    for replica in 0..3 {
        let pending = unwrap_request();
        let answer = send_on(replica, pending.request()).await;
        assert_eq!(answer.status, 200, "replica {replica}: {}", reason(&answer));
        pending
            .open_answer(answer.status, &answer.body, &recipient)
            .unwrap_or_else(|e| panic!("replica {replica}: {e}"));
    }

    // Revoked through replica c: refused by a and b at once.
    admin(2).revoke_api_key(&created.id).await.unwrap();
    for replica in 0..2 {
        assert_eq!(
            reason(&send_on(replica, unwrap_request().request()).await),
            "api_key/api_key_revoked"
        );
    }

    // One chain: exported from b, signed by the shared key, verifies.
    let export = admin(1).audit_export().await.unwrap();
    let text = String::from_utf8(export).unwrap();
    let public =
        parse_public_key(&std::fs::read_to_string(path("b").join("audit.pub")).unwrap()).unwrap();
    assert_eq!(public, audit.public_key());
    let report = verify_export(&text, &public, None).unwrap();
    assert!(report.records >= 45, "{report:?}");

    // A second change within the same second as the last one (same
    // `updated_at`, as two `cluster add --replace` in one second store)
    // still reaches the other replicas: they compare whole records.
    let storage = replicas[0].release().storage().clone();
    let mut record = storage.cluster("prod").await.unwrap().unwrap();
    record.audiences.push("podseal-second".into());
    storage.put_cluster(record).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !replicas[1..].iter().all(|r| {
        r.release()
            .clusters()
            .get("prod")
            .is_some_and(|c| c.tokens.audiences.iter().any(|a| a == "podseal-second"))
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a change sharing its updated_at with the previous one never reached the other replicas"
        );
        ticks.tick().await;
    }
    for running in replicas {
        running.shutdown().await.unwrap();
    }
}
