//! The pod SDK against a served release server and the stand-in: it opens
//! capsules; picks up a rotated projected token and API key from their
//! files; renews its session; rotates its DPoP key with the previous key's
//! proof; rides out a server restart (retrying while the server is down);
//! and never retries a refusal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::path::PathBuf;
use std::time::Duration;

use http::Method;
use podseal_core::capsule::Capsule;
use podseal_core::envelope;
use podseal_core::hpke::KemId;
use podseal_core::org_key::OrgPrivateKey;
use podseal_core::reason::{Code, Gate, Reason};
use podseal_core::wire::admin::{ApiKeyRequest, ClusterRequest, PolicyRequest, ReaderToken};
use podseal_dev_cluster::Handle;
use podseal_keys::key_file::write_new;
use podseal_sdk::admin::AdminClient;
use podseal_sdk::blocking::BlockingClient;
use podseal_sdk::client::{Client, ClientConfig, SdkError};
use podseal_sdk::https::{HttpsClient, Trust};
use podseal_server::config::{ServerConfig, TlsSection};
use podseal_server::startup::{Running, start, start_postgres};
use podseal_server::storage::{Bounded, PostgresStorage};
use podseal_test_support::fixtures::{kubernetes_scope, seal_params};
use tempfile::TempDir;

mod support;

const SECRET: &[u8] = b"postgres://app:hunter2@db/shop";

struct World {
    _cluster: support::Cluster,
    handle: Handle,
    dir: TempDir,
    config: ServerConfig,
    running: Option<Server>,
    url: String,
    ca: Vec<u8>,
    admin: String,
    org: OrgPrivateKey,
}

/// The server on either engine.
enum Server {
    Sqlite(Running),
    Postgres(Running<Bounded<PostgresStorage>>),
}

impl Server {
    async fn start(config: &ServerConfig) -> Self {
        if config.storage.engine == "postgres" {
            Self::Postgres(start_postgres(config.clone()).await.unwrap())
        } else {
            Self::Sqlite(start(config.clone()).await.unwrap())
        }
    }

    fn admin_token(&self) -> Option<String> {
        match self {
            Self::Sqlite(r) => r.admin_token.as_ref().map(|t| t.to_string()),
            Self::Postgres(r) => r.admin_token.as_ref().map(|t| t.to_string()),
        }
    }

    async fn shutdown(self) {
        match self {
            Self::Sqlite(r) => r.shutdown().await.unwrap(),
            Self::Postgres(r) => r.shutdown().await.unwrap(),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl World {
    async fn start(postgres: bool) -> Self {
        Self::start_with(postgres, |_| {}).await
    }

    /// Like [`World::start`], with the server's configuration edited first.
    async fn start_with(postgres: bool, edit: impl FnOnce(&mut ServerConfig)) -> Self {
        let cluster = support::Cluster::start().await;
        let handle = cluster.dev.handle();
        let dir = TempDir::new().unwrap();
        let org = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
        write_new(&dir.path().join("org.key"), org.to_text().as_bytes(), 0o600).unwrap();
        // A certificate from files, so it stays the same across a restart.
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
        write_new(
            &dir.path().join("tls.key"),
            key.serialize_pem().as_bytes(),
            0o600,
        )
        .unwrap();
        let port = free_port();
        let url = format!("https://localhost:{port}");
        let config = ServerConfig {
            listen: format!("127.0.0.1:{port}"),
            external_url: url.clone(),
            state_dir: dir.path().join("state"),
            org_key_files: vec![dir.path().join("org.key")],
            tls: TlsSection {
                cert_file: Some(dir.path().join("tls.crt")),
                key_file: Some(dir.path().join("tls.key")),
            },
            ..ServerConfig::default()
        };
        let mut config = config;
        edit(&mut config);
        if postgres {
            let url_file = dir.path().join("postgres.url");
            write_new(&url_file, support::postgres_url().await.as_bytes(), 0o600).unwrap();
            config.storage.engine = "postgres".into();
            config.storage.url_file = Some(url_file);
        }
        let running = Server::start(&config).await;
        let admin = running.admin_token().unwrap();
        let world = Self {
            ca: cert.pem().into_bytes(),
            _cluster: cluster,
            handle,
            dir,
            config,
            running: Some(running),
            url,
            admin,
            org,
        };
        let cluster_dir = world._cluster.dir.path();
        let admin = world.admin();
        admin
            .add_cluster(&ClusterRequest {
                name: "prod".into(),
                api_server_url: world._cluster.dev.url().into(),
                ca_pem: std::fs::read_to_string(cluster_dir.join("ca.pem")).unwrap(),
                reader_token: ReaderToken::new(
                    &std::fs::read_to_string(cluster_dir.join("reader.token")).unwrap(),
                ),
                ..ClusterRequest::default()
            })
            .await
            .unwrap();
        admin
            .set_policy(&PolicyRequest {
                cluster: "prod".into(),
                namespace: "shop".into(),
                service_account: "api".into(),
                digests: vec![support::digest('a')],
                audit_mode: false,
                require_nonce: true,
            })
            .await
            .unwrap();
        let key = admin
            .create_api_key(&ApiKeyRequest {
                cluster: "prod".into(),
                namespace: "shop".into(),
                service_account: "api".into(),
            })
            .await
            .unwrap();
        std::fs::write(world.path("api-key"), &key.key).unwrap();
        world.handle.create_pod(&support::api_pod("api-0")).unwrap();
        world.handle.mark_running("shop", "api-0").unwrap();
        world.rotate_token();
        world
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn http(&self) -> HttpsClient {
        HttpsClient::new(&self.url, Some(&self.ca)).unwrap()
    }

    fn admin(&self) -> AdminClient {
        AdminClient::new(self.http(), &self.admin)
    }

    /// What the kubelet does: a fresh projected token in the file.
    fn rotate_token(&self) {
        let (token, _) = self
            .handle
            .issue_token("shop", "api", &["podseal".into()], 600, Some("api-0"))
            .unwrap();
        std::fs::write(self.path("token"), token).unwrap();
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(&self.url, Trust::CaPem(self.ca.clone()));
        config.api_key_file = self.path("api-key");
        config.token_file = self.path("token");
        config
    }

    fn capsule(&self) -> Capsule {
        let params = seal_params(kubernetes_scope("prod", "shop", "api"));
        envelope::seal(params, SECRET, &[self.org.public()]).unwrap()
    }

    async fn metric(&self, line_prefix: &str) -> u64 {
        let answer = self
            .http()
            .send(Method::GET, "/metrics", &[], None)
            .await
            .unwrap();
        let text = String::from_utf8(answer.body.to_vec()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(line_prefix))
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_opens_renews_rotates_survives_a_restart_and_never_retries_a_refusal() {
    sdk_scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_sdk_opens_renews_rotates_survives_a_restart_and_never_retries_a_refusal() {
    sdk_scenario(true).await;
}

async fn sdk_scenario(postgres: bool) {
    let mut w = World::start(postgres).await;
    let capsule = w.capsule();
    let client = Client::new(w.client_config()).unwrap();

    // Open (the policy requires server nonces: the client follows the challenge).
    let secret = client.open(&capsule).await.unwrap();
    assert_eq!(secret.expose_secret_bytes(), SECRET);
    assert!(!format!("{secret:?}").contains("hunter2"));
    let first = client.session().await.unwrap();
    // A second open reuses the session; a batch opens several at once.
    let many = client
        .open_many(&[capsule.clone(), w.capsule()])
        .await
        .unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(client.session().await.unwrap(), first);

    // The kubelet rotates the token: the client reads the file on every request.
    std::fs::write(w.path("token"), "not-a-token").unwrap();
    let refused = client.open(&capsule).await.unwrap_err();
    assert_eq!(
        (
            refused.gate().and_then(Code::known),
            refused.reason().and_then(Code::known)
        ),
        (Some(Gate::Token), Some(Reason::TokenMalformed)),
        "{refused}"
    );
    w.rotate_token();
    assert_eq!(
        client.open(&capsule).await.unwrap().expose_secret_bytes(),
        SECRET
    );

    // DPoP key rotation with the previous key's proof; the new key then works.
    let before = client.dpop_thumbprint().await;
    client.rotate_dpop_key().await.unwrap();
    assert_ne!(client.dpop_thumbprint().await, before);
    assert_eq!(
        client.open(&capsule).await.unwrap().expose_secret_bytes(),
        SECRET
    );

    // Another client in the same pod (another DPoP key) is refused: one key per live pod.
    let second_key = Client::new(w.client_config())
        .unwrap()
        .open(&capsule)
        .await
        .unwrap_err();
    assert_eq!(
        second_key.reason().and_then(Code::known),
        Some(Reason::PodKeyAlreadyPinned),
        "{second_key}"
    );

    // A restart mid-session: the client's connection breaks, it reconnects
    // (retrying while the server is not back), and the session, kept in
    // storage, carries on.
    let session = client.session().await.unwrap();
    w.running.take().unwrap().shutdown().await;
    let (opened, running) = tokio::join!(client.open(&capsule), Server::start(&w.config));
    w.running = Some(running);
    assert_eq!(opened.unwrap().expose_secret_bytes(), SECRET);
    assert_eq!(client.session().await.unwrap().id, session.id);

    // A refusal is never retried: exactly one request reaches the server.
    std::fs::write(w.path("api-key"), "psk_revoked_or_guessed").unwrap();
    let before = w
        .metric("podseal_refusals_total{gate=\"api_key\",reason=\"api_key_unknown\"}")
        .await;
    let refused = client.open(&capsule).await.unwrap_err();
    assert!(
        matches!(refused, SdkError::Refused { status: 401, .. }),
        "{refused}"
    );
    assert_eq!(refused.gate().and_then(Code::known), Some(Gate::ApiKey));
    let after = w
        .metric("podseal_refusals_total{gate=\"api_key\",reason=\"api_key_unknown\"}")
        .await;
    assert_eq!(after - before, 1, "a refusal was retried");

    // With the server gone for good, the client gives up after its retries.
    w.running.take().unwrap().shutdown().await;
    let mut quick = w.client_config();
    quick.retry.base = Duration::from_millis(1);
    quick.retry.cap = Duration::from_millis(5);
    let gone = Client::new(quick)
        .unwrap()
        .open(&capsule)
        .await
        .unwrap_err();
    assert!(
        matches!(gone, SdkError::Unavailable { attempts: 5, .. }),
        "{gone}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_renewed_before_it_expires_and_the_blocking_client_works() {
    let w = World::start(false).await;
    let capsule = w.capsule();
    let mut config = w.client_config();
    // Sessions last at most the token's life (600 s) here; renewing 100000 s
    // ahead means every open renews.
    config.renew_before_secs = 100_000;
    let blocking_config = config.clone();
    let client = Client::new(config).unwrap();
    client.open(&capsule).await.unwrap();
    let first = client.session().await.unwrap();
    client.open(&capsule).await.unwrap();
    let second = client.session().await.unwrap();
    assert_ne!(first.id, second.id, "the session was not renewed");

    drop(client);
    // The same pod's pin belongs to the first client's key until it expires,
    // so the blocking client runs as another pod.
    w.handle.create_pod(&support::api_pod("api-1")).unwrap();
    w.handle.mark_running("shop", "api-1").unwrap();
    let (token, _) = w
        .handle
        .issue_token("shop", "api", &["podseal".into()], 600, Some("api-1"))
        .unwrap();
    std::fs::write(w.path("token-1"), token).unwrap();
    let mut blocking_config = blocking_config;
    blocking_config.token_file = w.path("token-1");
    let opened = tokio::task::spawn_blocking(move || {
        let client = BlockingClient::new(blocking_config).unwrap();
        client
            .open(&capsule)
            .unwrap()
            .expose_secret_bytes()
            .to_vec()
    })
    .await
    .unwrap();
    assert_eq!(opened, SECRET);
}

/// A 503 that names its gate and reason — the pod view is unknown while the
/// cluster API does not answer — is retried like any 503, and the error the
/// caller gets at the end keeps the last answer's gate and reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_server_names_its_gate_and_reason() {
    let w = World::start_with(false, |c| c.clusters.max_staleness_secs = 2).await;
    let capsule = w.capsule();
    let mut config = w.client_config();
    config.retry.base = Duration::from_millis(1);
    config.retry.cap = Duration::from_millis(5);
    let client = Client::new(config).unwrap();
    assert_eq!(
        client.open(&capsule).await.unwrap().expose_secret_bytes(),
        SECRET
    );

    // The cluster API stops answering: once the view is past its staleness
    // bound, /readyz says so and gate 4 cannot decide.
    w.handle.pause();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut ticks = tokio::time::interval(Duration::from_millis(50));
    loop {
        let ready = w
            .http()
            .send(Method::GET, "/readyz", &[], None)
            .await
            .unwrap();
        if ready.status == 503 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the view stayed fresh"
        );
        ticks.tick().await;
    }
    let before = w
        .metric("podseal_refusals_total{gate=\"live_pod\",reason=\"view_unknown\"}")
        .await;
    let error = client.open(&capsule).await.unwrap_err();
    let after = w
        .metric("podseal_refusals_total{gate=\"live_pod\",reason=\"view_unknown\"}")
        .await;
    assert_eq!(after - before, 5, "every attempt was answered view_unknown");
    assert!(
        matches!(error, SdkError::Unavailable { attempts: 5, .. }),
        "{error}"
    );
    assert_eq!(
        (
            error.gate().and_then(Code::known),
            error.reason().and_then(Code::known)
        ),
        (Some(Gate::LivePod), Some(Reason::ViewUnknown)),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("HTTP 503"), "{message}");
    assert!(message.contains("(live_pod/view_unknown)"), "{message}");

    // The view recovers with the API, and so does the client.
    w.handle.resume();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match client.open(&capsule).await {
            Ok(secret) => {
                assert_eq!(secret.expose_secret_bytes(), SECRET);
                break;
            }
            Err(e) => assert!(
                e.reason().and_then(Code::known) == Some(Reason::ViewUnknown)
                    && tokio::time::Instant::now() < deadline,
                "{e}"
            ),
        }
        ticks.tick().await;
    }
}
