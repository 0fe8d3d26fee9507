//! The release server as users run it: `serve::start` from a configuration,
//! real HTTPS on loopback through the client transport, the stand-in as the
//! cluster, everything registered through the admin API. Every attack of
//! the release path is refused with its gate and reason named, and audited;
//! the happy path opens the secret; the audit export verifies, and stops
//! verifying after any single record is edited, removed, inserted or
//! swapped. Every status seen is one `api::ROUTES` documents.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Method;
use podseal_core::audit::{AuditRecord, ExportLine, parse_public_key, verify_export};
use podseal_core::capsule::{Capsule, DekEnvelope};
use podseal_core::dpop::{DpopKey, ProofClaims, ProofFor, new_jti};
use podseal_core::envelope::{self, ReleaseBinding, ReleasedDek};
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey as _};
use podseal_core::jwk::ed25519_jwk;
use podseal_core::key_provider::KeyRing;
use podseal_core::org_key::OrgPrivateKey;
use podseal_core::reason::{Gate, Reason};
use podseal_core::wire::admin;
use podseal_dev_cluster::issuer::SigningAlgorithm;
use podseal_dev_cluster::{ContainerImage, Handle, PodTemplate};
use podseal_keys::key_file::write_new;
use podseal_sdk::https::{Answer, HttpsClient};
use podseal_sdk::protocol::{
    Credentials, Endpoint, Freshness, PendingUnwrap, SessionInfo, SignedRequest,
};
use podseal_server::api::{API_KEY_HEADER, DPOP_NONCE_HEADER, ROUTES, TOKEN_HEADER};
use podseal_server::config::ServerConfig;
use podseal_server::nonce::NonceIssuer;
use podseal_server::pod_view::ViewAnswer;
use podseal_server::startup::{Running, start};
use podseal_server::storage::{ReleaseStore as _, SqliteStorage, Storage as _};
use podseal_test_support::canary::{self, Canary};
use podseal_test_support::cases;
use podseal_test_support::fixtures::{kubernetes_scope, seal_params};
use serde_json::{Value, json};
use tempfile::TempDir;

mod support;

use support::digest;

const EXTERNAL_URL: &str = "https://podseal.test";
/// The plaintext every capsule of this binary seals: random per run, so
/// that the leak canary finds it only where this run put it.
static SECRET: std::sync::LazyLock<String> = std::sync::LazyLock::new(canary::random_text);

fn secret() -> &'static [u8] {
    SECRET.as_bytes()
}

/// Everything this test binary logged, at trace level (the server, the
/// stand-in and the client transport all run in it): the leak canary reads it.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs at trace level into [`LOG`], once per binary.
fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init()
            .unwrap();
    });
}

/// The server, its cluster and an admin.
struct Suite {
    cluster: support::Cluster,
    handle: Handle,
    state: TempDir,
    config: ServerConfig,
    running: Option<Running>,
    client: HttpsClient,
    admin_token: String,
    org: OrgPrivateKey,
    seen: Mutex<BTreeSet<(String, String, u16)>>,
    /// Secrets minted or handed out so far (API keys, tokens, session ids,
    /// DEKs, the admin token), by name, for the leak canary.
    watched: Mutex<Vec<(String, Vec<u8>)>>,
    /// What the server wrote to clients that is not a credential it hands
    /// out: every answer's headers, and the body of every refusal.
    written: Mutex<Vec<(String, Vec<u8>)>>,
}

/// What a pod holds in RAM.
struct Pod {
    dpop: DpopKey,
    recipient: LocalPrivateKey,
    token: String,
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn image(name: &str, digest_char: Option<char>) -> ContainerImage {
    ContainerImage {
        name: name.into(),
        image: format!("registry.example/shop/{name}:1"),
        digest: digest_char.map(digest),
        env: Default::default(),
    }
}

/// The default configuration of a server on loopback keeping its state in
/// `state`, with a new org key written there.
fn config_in(state: &TempDir) -> (ServerConfig, OrgPrivateKey) {
    let org = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    let key_file = state.path().join("org.key");
    write_new(&key_file, org.to_text().as_bytes(), 0o600).unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        external_url: EXTERNAL_URL.into(),
        state_dir: state.path().join("state"),
        org_key_files: vec![key_file],
        ..ServerConfig::default()
    };
    (config, org)
}

fn client_for(running: &Running) -> HttpsClient {
    let pem = std::fs::read(running.dev_cert_file.as_ref().unwrap()).unwrap();
    HttpsClient::new(
        &format!("https://localhost:{}", running.addr.port()),
        Some(&pem),
    )
    .unwrap()
}

impl Suite {
    async fn start() -> Self {
        Self::start_signing(SigningAlgorithm::Rs256).await
    }

    /// A suite whose cluster signs its tokens with `algorithm`.
    async fn start_signing(algorithm: SigningAlgorithm) -> Self {
        capture_logs();
        let cluster = support::Cluster::start_signing(algorithm).await;
        let handle = cluster.dev.handle();
        let state = TempDir::new().unwrap();
        let (mut config, org) = config_in(&state);
        config.clusters = podseal_server::config::ClustersSection {
            max_staleness_secs: 5,
            ..Default::default()
        };
        let running = start(config.clone()).await.unwrap();
        let admin_token = running
            .admin_token
            .as_ref()
            .expect("a new store shows the admin token")
            .to_string();
        let client = client_for(&running);
        Self {
            cluster,
            handle,
            state,
            config,
            running: Some(running),
            client,
            admin_token: admin_token.clone(),
            watched: Mutex::new(vec![(
                "the admin token".into(),
                admin_token.clone().into_bytes(),
            )]),
            org,
            seen: Mutex::default(),
            written: Mutex::default(),
        }
    }

    /// Watches `secret` for the leak canary.
    fn watch(&self, name: impl Into<String>, secret: impl Into<Vec<u8>>) {
        self.watched
            .lock()
            .unwrap()
            .push((name.into(), secret.into()));
    }

    fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    /// Stops the server and starts it again on the same state directory.
    async fn restart(&mut self) {
        self.running.take().unwrap().shutdown().await.unwrap();
        let running = start(self.config.clone()).await.unwrap();
        assert!(
            running.admin_token.is_none(),
            "the admin token is shown only on the first start"
        );
        self.client = client_for(&running);
        self.running = Some(running);
    }

    /// One request; records (method, route, status) for the ROUTES check.
    async fn send(
        &self,
        method: Method,
        route: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let size = body.as_ref().map_or(0, Vec::len);
        let answer = self
            .client
            .send(method.clone(), path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} ({size} bytes): {e}"));
        self.seen.lock().unwrap().insert((
            method.to_string(),
            route.to_owned(),
            answer.status.as_u16(),
        ));
        let place = format!("the answer to {method} {path} ({})", answer.status);
        let mut written = format!("{:?}", answer.headers).into_bytes();
        if !answer.status.is_success() {
            written.extend_from_slice(&answer.body);
        }
        self.written.lock().unwrap().push((place, written));
        answer
    }

    async fn admin(&self, method: Method, route: &str, path: &str, body: Option<Value>) -> Value {
        let authorization = format!("Bearer {}", self.admin_token);
        let answer = self
            .send(
                method,
                route,
                path,
                &[("authorization", &authorization)],
                body.map(|b| serde_json::to_vec(&b).unwrap()),
            )
            .await;
        assert!(
            answer.status.is_success(),
            "{path}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        serde_json::from_slice(&answer.body).unwrap()
    }

    async fn api_key(&self, namespace: &str, service_account: &str) -> (String, String) {
        let authorization = format!("Bearer {}", self.admin_token);
        let body = json!({ "cluster": "prod", "namespace": namespace, "service_account": service_account });
        let answer = self
            .send(
                Method::POST,
                admin::API_KEYS_PATH,
                admin::API_KEYS_PATH,
                &[("authorization", &authorization)],
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await;
        assert_eq!(answer.status, 201);
        // The only answer that carries a key is never cached.
        assert_eq!(answer.headers["cache-control"], "no-store");
        let created: Value = serde_json::from_slice(&answer.body).unwrap();
        let key = created["key"].as_str().unwrap().to_owned();
        self.watch(
            format!("an API key for {namespace}/{service_account}"),
            key.clone(),
        );
        (created["id"].as_str().unwrap().to_owned(), key)
    }

    async fn policy(&self, service_account: &str, digests: &[String], require_nonce: bool) {
        self.admin(
            Method::PUT,
            admin::POLICIES_PATH,
            admin::POLICIES_PATH,
            Some(json!({
                "cluster": "prod", "namespace": "shop", "service_account": service_account,
                "digests": digests, "require_nonce": require_nonce,
            })),
        )
        .await;
    }

    fn create_pod(
        &self,
        name: &str,
        service_account: &str,
        init: Vec<ContainerImage>,
        app: Vec<ContainerImage>,
        running: bool,
    ) {
        self.handle
            .create_pod(&PodTemplate {
                service_account: service_account.into(),
                init_containers: init,
                containers: app,
                ..support::api_pod(name)
            })
            .unwrap();
        if running {
            self.handle.mark_running("shop", name).unwrap();
        }
    }

    /// A pod's RAM: fresh keys and a projected token for audience podseal.
    fn pod(&self, name: &str, service_account: &str) -> Pod {
        Pod {
            dpop: DpopKey::generate().unwrap(),
            recipient: LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap(),
            token: self.token(name, service_account, &["podseal"]),
        }
    }

    fn token(&self, pod: &str, service_account: &str, audiences: &[&str]) -> String {
        let audiences: Vec<String> = audiences.iter().map(|a| (*a).to_owned()).collect();
        let token = self
            .handle
            .issue_token("shop", service_account, &audiences, 600, Some(pod))
            .unwrap()
            .0;
        self.watch(format!("the projected token of {pod}"), token.clone());
        token
    }

    async fn until_view(&self, pod: &str, mut condition: impl FnMut(&ViewAnswer) -> bool) {
        let view = self
            .running()
            .release()
            .clusters()
            .get("prod")
            .unwrap()
            .view
            .clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        while !condition(&view.lookup("shop", pod).await) {
            assert!(tokio::time::Instant::now() < deadline, "view never changed");
            ticks.tick().await;
        }
    }

    fn capsule(&self, cluster: &str, namespace: &str, service_account: &str) -> Capsule {
        let params = seal_params(kubernetes_scope(cluster, namespace, service_account));
        let capsule = envelope::seal(params, secret(), &[self.org.public()]).unwrap();
        let org = OrgPrivateKey::from_text(&self.org.to_text()).unwrap();
        let dek = envelope::open_dek(&capsule.envelope, &KeyRing::from(org)).unwrap();
        self.watch(
            format!("the DEK of a capsule for {cluster}/{namespace}/{service_account}"),
            dek.expose_secret_bytes().to_vec(),
        );
        capsule
    }

    fn proof(
        &self,
        key: &DpopKey,
        route: &str,
        session: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        key.proof(&ProofFor {
            htm: "POST",
            htu: &format!("{EXTERNAL_URL}{route}"),
            iat: now(),
            access_token: session,
            nonce,
        })
        .unwrap()
        .0
    }

    /// `POST /v1/sessions` with exactly these credentials.
    async fn session_with(&self, pod: &Pod, api_key: &str, token: &str, proofs: &[&str]) -> Answer {
        let mut headers = vec![(API_KEY_HEADER, api_key), (TOKEN_HEADER, token)];
        headers.extend(proofs.iter().map(|p| ("dpop", *p)));
        let body = json!({ "recipient_key": b64(pod.recipient.public_key_bytes()) });
        self.send(
            Method::POST,
            "/v1/sessions",
            "/v1/sessions",
            &headers,
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }

    /// Sends a request made by the SDK's request builder.
    async fn send_signed(&self, request: &SignedRequest) -> Answer {
        self.send(
            Method::POST,
            request.path(),
            request.path(),
            &request.headers(),
            Some(request.body().to_vec()),
        )
        .await
    }

    fn fresh() -> Freshness<'static> {
        Freshness {
            iat: now(),
            nonce: None,
        }
    }

    async fn session(&self, pod: &Pod, api_key: &str) -> Answer {
        let credentials = Credentials {
            api_key,
            token: &pod.token,
        };
        let request = Endpoint::new(EXTERNAL_URL)
            .session(
                credentials,
                &pod.dpop,
                pod.recipient.public_key_bytes(),
                Self::fresh(),
            )
            .unwrap();
        self.send_signed(&request).await
    }

    async fn open_session(&self, pod: &Pod, api_key: &str) -> String {
        let answer = self.session(pod, api_key).await;
        assert_eq!(
            answer.status,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        let session = body["session_id"].as_str().unwrap().to_owned();
        self.watch("a session id", session.clone());
        session
    }

    /// `POST /v1/unwrap` with this proof and raw body.
    async fn unwrap_raw(
        &self,
        pod: &Pod,
        api_key: &str,
        session: &str,
        proofs: &[&str],
        body: Vec<u8>,
    ) -> Answer {
        let authorization = format!("DPoP {session}");
        let mut headers = vec![
            (API_KEY_HEADER, api_key),
            (TOKEN_HEADER, pod.token.as_str()),
            ("authorization", authorization.as_str()),
        ];
        headers.extend(proofs.iter().map(|p| ("dpop", *p)));
        self.send(
            Method::POST,
            "/v1/unwrap",
            "/v1/unwrap",
            &headers,
            Some(body),
        )
        .await
    }

    /// `POST /v1/unwrap` as the SDK builds it; the pending request checks
    /// the answer's binding.
    async fn unwrap_pending(
        &self,
        pod: &Pod,
        api_key: &str,
        session: &str,
        capsule: &Capsule,
    ) -> (PendingUnwrap, Answer) {
        let credentials = Credentials {
            api_key,
            token: &pod.token,
        };
        let session = SessionInfo {
            id: session.to_owned(),
            expires_at: 0,
        };
        let pending = Endpoint::new(EXTERNAL_URL)
            .unwrap(
                credentials,
                &pod.dpop,
                &session,
                &[&capsule.envelope],
                Self::fresh(),
            )
            .unwrap();
        let answer = self.send_signed(pending.request()).await;
        (pending, answer)
    }

    async fn unwrap(&self, pod: &Pod, api_key: &str, session: &str, capsule: &Capsule) -> Answer {
        self.unwrap_pending(pod, api_key, session, capsule).await.1
    }

    /// The secret, opened in the pod's memory as the SDK opens it.
    fn open_pending(
        pod: &Pod,
        pending: &PendingUnwrap,
        capsule: &Capsule,
        answer: &Answer,
    ) -> Vec<u8> {
        let deks = pending
            .open_answer(answer.status, &answer.body, &pod.recipient)
            .unwrap();
        envelope::decrypt_content(capsule, &deks[0])
            .unwrap()
            .expose_secret_bytes()
            .to_vec()
    }

    /// The secret, opened in the pod's memory from a successful unwrap of a
    /// hand-made request: the release must be bound to that request's `jti`.
    fn open(
        &self,
        pod: &Pod,
        session: &str,
        capsule: &Capsule,
        answer: &Answer,
        proof: &str,
    ) -> Vec<u8> {
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        let release = &body["releases"][0];
        let decode = |k: &str| {
            URL_SAFE_NO_PAD
                .decode(release[k].as_str().unwrap())
                .unwrap()
        };
        let released = ReleasedDek {
            enc: decode("enc"),
            wrapped_dek: decode("wrapped_dek"),
        };
        let sent_jti = jti_of(proof);
        assert_eq!(release["jti"].as_str(), Some(sent_jti.as_str()));
        let binding = ReleaseBinding {
            session_id: session,
            jti: &sent_jti,
        };
        let dek = envelope::open_release(
            &released,
            &pod.recipient,
            capsule.envelope.header_bytes(),
            binding,
        )
        .unwrap();
        envelope::decrypt_content(capsule, &dek)
            .unwrap()
            .expose_secret_bytes()
            .to_vec()
    }
}

/// The `jti` of a proof this test built.
fn jti_of(proof: &str) -> String {
    let payload = proof.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

fn envelope_body(capsule: &Capsule) -> Vec<u8> {
    serde_json::to_vec(&json!({ "capsules": [b64(&capsule.envelope.to_bytes())] })).unwrap()
}

/// Asserts a problem+json refusal with this status, gate and reason.
#[track_caller]
fn refused(answer: &Answer, status: u16, gate: Gate, reason: Reason) {
    let problem: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    assert_eq!(
        (
            answer.status.as_u16(),
            problem["gate"].as_str(),
            problem["reason"].as_str()
        ),
        (status, Some(gate.code()), Some(reason.code())),
        "{problem}"
    );
    assert_eq!(answer.headers["content-type"], "application/problem+json");
}

/// A DPoP proof with any header, signed by a fresh Ed25519 key.
fn forged_proof(header: impl FnOnce(Value) -> Value, claims: &ProofClaims) -> String {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let jwk = Value::Object(ed25519_jwk(signing.verifying_key().as_bytes()));
    let header = header(json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk }));
    podseal_core::jws::sign_ed25519(
        &signing,
        &serde_json::to_vec(&header).unwrap(),
        &serde_json::to_vec(claims).unwrap(),
    )
}

fn claims(route: &str) -> ProofClaims {
    ProofClaims {
        jti: new_jti().unwrap(),
        htm: "POST".into(),
        htu: format!("{EXTERNAL_URL}{route}"),
        iat: now(),
        ath: None,
        nonce: None,
    }
}

/// An unsigned or HMAC-signed token with this header.
fn token_with_header(header: &Value, claims: &Value, hmac_key: Option<&[u8]>) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).unwrap()),
        b64(&serde_json::to_vec(claims).unwrap())
    );
    let signature = match hmac_key {
        Some(key) => {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
            b64(ring::hmac::sign(&key, signing_input.as_bytes()).as_ref())
        }
        None => String::new(),
    };
    format!("{signing_input}.{signature}")
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The attack matrix: one server, and [`CASES`] run against it in order,
/// each printing `case <name>: ok`. Later cases build on what earlier ones
/// left (the session the happy path opened, the key revoked, the pod
/// recreated, the restart), so the first failure ends the run, and its
/// panic names its case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_refused_over_https_with_its_gate_named_and_audited() {
    let names: BTreeSet<&str> = CASES.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), CASES.len(), "two cases share a name");
    let mut m = cases::run("set-up", Matrix::start()).await;
    for case in CASES {
        cases::run(case.name, case.run(&mut m)).await;
        m.audited.extend(case.audited());
    }
}

/// What the matrix's cases share: the server, the keys registered, pod
/// `api-0` with its capsule and session, and what a case leaves for a
/// later one.
struct Matrix {
    s: Suite,
    /// The kid the registration pinned.
    pinned_kid: String,
    /// shop/api's API key.
    key: String,
    /// Keys for payments/api and shop/worker.
    other_namespace_key: String,
    other_sa_key: String,
    /// Another shop/api key (id, key), revoked by `gate1/revoked-key`.
    revoked_id: String,
    revoked_key: String,
    /// Pod `api-0`, running as shop/api.
    pod: Pod,
    /// A capsule for prod/shop/api.
    capsule: Capsule,
    /// The session `happy-path` opens.
    session: String,
    /// A DPoP key that is not `api-0`'s.
    thief: DpopKey,
    /// The key a second `api-0` tried to pin (`gate3/second-key-for-the-pod`).
    second: Option<DpopKey>,
    /// Pod `worker-0` (shop/worker, nonces required), from `nonce/required`.
    worker: Option<Pod>,
    /// The server's last nonce, its session and capsule for `worker-0`.
    nonce: String,
    worker_session: String,
    worker_capsule: Option<Capsule>,
    /// A token signed by the cluster's rotated, unpinned key.
    unpinned: String,
    /// The audit export and its public key, from `audit/every-refusal-recorded`.
    export: String,
    audit_public: [u8; 32],
    /// The gates and reasons the cases run so far had refused (and so audited).
    audited: Vec<(Gate, Reason)>,
}

impl Matrix {
    /// The server with the cluster registered through the admin API, as an
    /// operator does it; four API keys, shop/api's policy, pod `api-0`.
    async fn start() -> Self {
        let s = Suite::start().await;
        let added = s
            .admin(
                Method::POST,
                admin::CLUSTERS_PATH,
                admin::CLUSTERS_PATH,
                Some(json!({
                    "name": "prod",
                    "api_server_url": s.cluster.dev.url(),
                    "ca_pem": std::fs::read_to_string(s.cluster.dir.path().join("ca.pem")).unwrap(),
                    "reader_token": std::fs::read_to_string(s.cluster.dir.path().join("reader.token")).unwrap(),
                })),
            )
            .await;
        let pinned_kid = added["pinned_kids"][0].as_str().unwrap().to_owned();
        assert_eq!(added["issuer"], "https://kubernetes.default.svc");
        let (_, key) = s.api_key("shop", "api").await;
        let (_, other_namespace_key) = s.api_key("payments", "api").await;
        let (_, other_sa_key) = s.api_key("shop", "worker").await;
        let (revoked_id, revoked_key) = s.api_key("shop", "api").await;
        s.policy("api", &[digest('a'), digest('1')], false).await;
        s.create_pod(
            "api-0",
            "api",
            vec![image("migrate", Some('1'))],
            vec![image("api", Some('a'))],
            true,
        );
        let pod = s.pod("api-0", "api");
        let capsule = s.capsule("prod", "shop", "api");
        Self {
            s,
            pinned_kid,
            key,
            other_namespace_key,
            other_sa_key,
            revoked_id,
            revoked_key,
            pod,
            capsule,
            session: String::new(),
            thief: DpopKey::generate().unwrap(),
            second: None,
            worker: None,
            nonce: String::new(),
            worker_session: String::new(),
            worker_capsule: None,
            unpinned: String::new(),
            export: String::new(),
            audit_public: [0; 32],
            audited: Vec::new(),
        }
    }

    /// `api-0` unwraps its capsule in its session with `proof`.
    async fn unwrap_api0(&self, proof: &str) -> Answer {
        self.s
            .unwrap_raw(
                &self.pod,
                &self.key,
                &self.session,
                &[proof],
                envelope_body(&self.capsule),
            )
            .await
    }

    /// `api-0`'s token re-signed with the pinned kid after `edit`.
    fn token_with(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut claims = claims_of(&self.pod.token);
        edit(&mut claims);
        self.token_signed(&json!({ "alg": "RS256", "kid": self.pinned_kid }), &claims)
    }

    /// A token with this header and claims, signed by the cluster's key.
    fn token_signed(&self, header: &Value, claims: &Value) -> String {
        self.s.handle.sign_raw(header, claims).unwrap()
    }

    /// A proof by `api-0`'s key for a session, with this method, URL and time.
    fn session_proof(&self, htm: &str, htu: &str, iat: i64) -> String {
        self.pod
            .dpop
            .proof(&ProofFor {
                htm,
                htu,
                iat,
                access_token: None,
                nonce: None,
            })
            .unwrap()
            .0
    }

    /// An unwrap in `api-0`'s session with this body, refused by the request gate.
    async fn body_refused(&self, body: Vec<u8>, status: u16, reason: Reason) {
        let proof = self
            .s
            .proof(&self.pod.dpop, "/v1/unwrap", Some(&self.session), None);
        refused(
            &self
                .s
                .unwrap_raw(&self.pod, &self.key, &self.session, &[&proof], body)
                .await,
            status,
            Gate::Request,
            reason,
        );
    }

    /// An unwrap with only these headers, refused 401 before any gate runs.
    async fn credentials_refused(&self, headers: &[(&str, &str)], gate: Gate, reason: Reason) {
        let answer = self
            .s
            .send(
                Method::POST,
                "/v1/unwrap",
                "/v1/unwrap",
                headers,
                Some(envelope_body(&self.capsule)),
            )
            .await;
        refused(&answer, 401, gate, reason);
    }

    /// A session by a new shop/api pod made so, refused by gate 4.
    async fn pod_refused(
        &self,
        name: &str,
        init: Vec<ContainerImage>,
        app: Vec<ContainerImage>,
        running: bool,
        reason: Reason,
    ) {
        self.s.create_pod(name, "api", init, app, running);
        let other = self.s.pod(name, "api");
        refused(
            &self.s.session(&other, &self.key).await,
            403,
            Gate::LivePod,
            reason,
        );
    }

    /// An unwrap by `api-0` of a capsule for another scope, refused by gate scope.
    async fn scope_refused(&self, other: &Capsule, reason: Reason) {
        refused(
            &self
                .s
                .unwrap(&self.pod, &self.key, &self.session, other)
                .await,
            403,
            Gate::Scope,
            reason,
        );
    }

    fn worker(&self) -> &Pod {
        self.worker.as_ref().expect("nonce/required made worker-0")
    }
}

/// One case of the matrix.
struct Case {
    name: &'static str,
    run: Run,
}

/// What a case does.
enum Run {
    /// `POST /v1/sessions` by `api-0` with the token this builds: 401 from
    /// gate token, for this reason.
    Token(fn(&Matrix) -> String, Reason),
    /// `POST /v1/sessions` by `api-0` with the DPoP proof this builds: 401
    /// from gate dpop, for this reason.
    Proof(fn(&Matrix) -> String, Reason),
    /// Steps of its own, and the gates and reasons its refusals are audited under.
    Steps(&'static [(Gate, Reason)], Steps),
}

type Steps = for<'a> fn(&'a mut Matrix) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

/// A case of [`Run::Token`].
const fn token(name: &'static str, build: fn(&Matrix) -> String, reason: Reason) -> Case {
    Case {
        name,
        run: Run::Token(build, reason),
    }
}

/// A case of [`Run::Proof`].
const fn proof(name: &'static str, build: fn(&Matrix) -> String, reason: Reason) -> Case {
    Case {
        name,
        run: Run::Proof(build, reason),
    }
}

/// A case of [`Run::Steps`].
const fn steps(name: &'static str, audited: &'static [(Gate, Reason)], run: Steps) -> Case {
    Case {
        name,
        run: Run::Steps(audited, run),
    }
}

impl Case {
    /// The reasons the audit export must hold once this case has run.
    fn audited(&self) -> Vec<(Gate, Reason)> {
        match &self.run {
            Run::Token(_, reason) => vec![(Gate::Token, *reason)],
            Run::Proof(_, reason) => vec![(Gate::Dpop, *reason)],
            Run::Steps(audited, _) => audited.to_vec(),
        }
    }

    async fn run(&self, m: &mut Matrix) {
        match &self.run {
            Run::Token(build, reason) => {
                let token = build(m);
                let proof = m.s.proof(&m.pod.dpop, "/v1/sessions", None, None);
                refused(
                    &m.s.session_with(&m.pod, &m.key, &token, &[&proof]).await,
                    401,
                    Gate::Token,
                    *reason,
                );
            }
            Run::Proof(build, reason) => {
                let proof = build(m);
                let answer =
                    m.s.session_with(&m.pod, &m.key, &m.pod.token, &[&proof])
                        .await;
                refused(&answer, 401, Gate::Dpop, *reason);
                if *reason == Reason::HtuMismatch {
                    // The way out: the URL the server is known by.
                    let problem: Value = serde_json::from_slice(&answer.body).unwrap();
                    let detail = problem["detail"].as_str().unwrap();
                    assert!(
                        detail.contains(&format!("this server's external URL is {EXTERNAL_URL}")),
                        "{detail}"
                    );
                }
            }
            Run::Steps(_, steps) => steps(m).await,
        }
    }
}

/// `content-type: application/json`.
const JSON: (&str, &str) = ("content-type", "application/json");

/// Every attack of the release path (and the admin API's two refusals), in
/// the order they run; then the audit export and the routes are checked.
const CASES: &[Case] = &[
    // The happy path: session, unwrap, open in the pod's memory.
    steps("happy-path/session-unwrap-open", &[], |m| {
        Box::pin(async move {
            m.session = m.s.open_session(&m.pod, &m.key).await;
            let (pending, answer) =
                m.s.unwrap_pending(&m.pod, &m.key, &m.session, &m.capsule)
                    .await;
            assert_eq!(
                Suite::open_pending(&m.pod, &pending, &m.capsule, &answer),
                secret()
            );
            assert!(answer.headers.contains_key(DPOP_NONCE_HEADER));
        })
    }),
    // Gate 1: another namespace's key, another service account's, a revoked one, none.
    steps(
        "gate1/another-namespace-key",
        &[(Gate::ApiKey, Reason::ApiKeyScopeMismatch)],
        |m| {
            Box::pin(async move {
                refused(
                    &m.s.session(&m.pod, &m.other_namespace_key).await,
                    401,
                    Gate::ApiKey,
                    Reason::ApiKeyScopeMismatch,
                );
            })
        },
    ),
    steps(
        "gate1/another-service-account-key",
        &[(Gate::ApiKey, Reason::ApiKeyScopeMismatch)],
        |m| {
            Box::pin(async move {
                refused(
                    &m.s.session(&m.pod, &m.other_sa_key).await,
                    401,
                    Gate::ApiKey,
                    Reason::ApiKeyScopeMismatch,
                );
            })
        },
    ),
    steps(
        "gate1/revoked-key",
        &[(Gate::ApiKey, Reason::ApiKeyRevoked)],
        |m| {
            Box::pin(async move {
                m.s.admin(
                    Method::DELETE,
                    admin::API_KEY_ROUTE,
                    &admin::api_key_path(&m.revoked_id),
                    None,
                )
                .await;
                refused(
                    &m.s.session(&m.pod, &m.revoked_key).await,
                    401,
                    Gate::ApiKey,
                    Reason::ApiKeyRevoked,
                );
            })
        },
    ),
    steps(
        "gate1/unknown-key",
        &[(Gate::ApiKey, Reason::ApiKeyUnknown)],
        |m| {
            Box::pin(async move {
                refused(
                    &m.s.session(&m.pod, "psk_guessed").await,
                    401,
                    Gate::ApiKey,
                    Reason::ApiKeyUnknown,
                );
            })
        },
    ),
    // Gate 2: the token's audience, issuer, times and header.
    token(
        "gate2/audience-vault",
        |m| m.s.token("api-0", "api", &["vault"]),
        Reason::AudienceMismatch,
    ),
    token(
        "gate2/another-issuer",
        |m| m.token_with(|c| c["iss"] = json!("https://evil.example")),
        Reason::IssuerMismatch,
    ),
    token(
        "gate2/expired",
        |m| {
            m.token_with(|c| {
                c["exp"] = json!(now() - 3600);
                c["iat"] = json!(now() - 7200);
                c["nbf"] = json!(now() - 7200);
            })
        },
        Reason::TokenExpired,
    ),
    token(
        "gate2/not-yet-valid",
        |m| m.token_with(|c| c["nbf"] = json!(now() + 3600)),
        Reason::TokenNotYetValid,
    ),
    token(
        "gate2/unknown-kid",
        |m| {
            m.token_signed(
                &json!({ "alg": "RS256", "kid": "no-such-kid" }),
                &claims_of(&m.pod.token),
            )
        },
        Reason::KidUnknown,
    ),
    token(
        "gate2/jku-header",
        |m| {
            m.token_signed(
                &json!({ "alg": "RS256", "kid": m.pinned_kid, "jku": "https://evil.example/jwks" }),
                &claims_of(&m.pod.token),
            )
        },
        Reason::HeaderNotAllowed,
    ),
    token(
        "gate2/x5u-header",
        |m| {
            m.token_signed(
                &json!({ "alg": "RS256", "kid": m.pinned_kid, "x5u": "https://evil.example/cert" }),
                &claims_of(&m.pod.token),
            )
        },
        Reason::HeaderNotAllowed,
    ),
    token(
        "gate2/alg-none",
        |m| {
            token_with_header(
                &json!({ "alg": "none", "kid": m.pinned_kid }),
                &claims_of(&m.pod.token),
                None,
            )
        },
        Reason::AlgNotAllowed,
    ),
    token(
        "gate2/hs256-keyed-with-the-jwks",
        |m| {
            token_with_header(
                &json!({ "alg": "HS256", "kid": m.pinned_kid }),
                &claims_of(&m.pod.token),
                Some(
                    serde_json::to_string(&m.s.handle.jwks())
                        .unwrap()
                        .as_bytes(),
                ),
            )
        },
        Reason::AlgNotAllowed,
    ),
    // Gate 3: the DPoP proof.
    proof(
        "gate3/iat-stale",
        |m| m.session_proof("POST", &format!("{EXTERNAL_URL}/v1/sessions"), now() - 600),
        Reason::IatStale,
    ),
    proof(
        "gate3/iat-future",
        |m| m.session_proof("POST", &format!("{EXTERNAL_URL}/v1/sessions"), now() + 600),
        Reason::IatFuture,
    ),
    proof(
        "gate3/htm-get",
        |m| m.session_proof("GET", &format!("{EXTERNAL_URL}/v1/sessions"), now()),
        Reason::HtmMismatch,
    ),
    proof(
        "gate3/htu-another-host",
        |m| m.session_proof("POST", "https://localhost/v1/sessions", now()),
        Reason::HtuMismatch,
    ),
    // The server's own URL with its port written `0443`: not the canonical
    // port text, so not the same URL (RFC 3986 §6.2.3).
    proof(
        "gate3/htu-port-0443",
        |m| m.session_proof("POST", &format!("{EXTERNAL_URL}:0443/v1/sessions"), now()),
        Reason::HtuMismatch,
    ),
    // The header and claims of one key's proof with another key's signature.
    proof(
        "gate3/another-keys-signature",
        |m| {
            let foreign =
                m.s.proof(&DpopKey::generate().unwrap(), "/v1/sessions", None, None);
            let own = m.s.proof(&m.pod.dpop, "/v1/sessions", None, None);
            format!(
                "{}.{}",
                own.rsplit_once('.').unwrap().0,
                foreign.rsplit('.').next().unwrap()
            )
        },
        Reason::SignatureInvalid,
    ),
    proof(
        "gate3/typ-jwt",
        |_| {
            forged_proof(
                |mut h| {
                    h["typ"] = json!("JWT");
                    h
                },
                &claims("/v1/sessions"),
            )
        },
        Reason::TypNotDpop,
    ),
    proof(
        "gate3/jwk-p256",
        |_| {
            forged_proof(
                |mut h| {
                    h["jwk"] = json!({ "kty": "EC", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32]) });
                    h
                },
                &claims("/v1/sessions"),
            )
        },
        Reason::JwkInvalid,
    ),
    proof(
        "gate3/jwk-with-private-key",
        |_| {
            forged_proof(
                |mut h| {
                    h["jwk"]["d"] = json!(b64(&[9; 32]));
                    h
                },
                &claims("/v1/sessions"),
            )
        },
        Reason::JwkInvalid,
    ),
    proof(
        "gate3/alg-es256",
        |_| {
            forged_proof(
                |mut h| {
                    h["alg"] = json!("ES256");
                    h
                },
                &claims("/v1/sessions"),
            )
        },
        Reason::AlgNotAllowed,
    ),
    steps(
        "gate3/two-proofs",
        &[(Gate::Dpop, Reason::DpopHeaderCount)],
        |m| {
            Box::pin(async move {
                let fresh = m.s.proof(&m.pod.dpop, "/v1/sessions", None, None);
                refused(
                    &m.s.session_with(&m.pod, &m.key, &m.pod.token, &[&fresh, &fresh])
                        .await,
                    400,
                    Gate::Dpop,
                    Reason::DpopHeaderCount,
                );
            })
        },
    ),
    steps(
        "gate3/no-proof",
        &[(Gate::Dpop, Reason::DpopHeaderCount)],
        |m| {
            Box::pin(async move {
                refused(
                    &m.s.session_with(&m.pod, &m.key, &m.pod.token, &[]).await,
                    400,
                    Gate::Dpop,
                    Reason::DpopHeaderCount,
                );
            })
        },
    ),
    // Unwrap: ath missing or for another session, another key, a replay.
    steps(
        "unwrap/ath-missing",
        &[(Gate::Dpop, Reason::AthMissing)],
        |m| {
            Box::pin(async move {
                let no_ath = m.s.proof(&m.pod.dpop, "/v1/unwrap", None, None);
                refused(
                    &m.unwrap_api0(&no_ath).await,
                    401,
                    Gate::Dpop,
                    Reason::AthMissing,
                );
            })
        },
    ),
    steps(
        "unwrap/ath-of-another-session",
        &[(Gate::Dpop, Reason::AthMismatch)],
        |m| {
            Box::pin(async move {
                let wrong_ath =
                    m.s.proof(&m.pod.dpop, "/v1/unwrap", Some("another-session"), None);
                refused(
                    &m.unwrap_api0(&wrong_ath).await,
                    401,
                    Gate::Dpop,
                    Reason::AthMismatch,
                );
            })
        },
    ),
    steps(
        "unwrap/another-key",
        &[(Gate::Dpop, Reason::KeyNotPinned)],
        |m| {
            Box::pin(async move {
                let stolen = m.s.proof(&m.thief, "/v1/unwrap", Some(&m.session), None);
                refused(
                    &m.unwrap_api0(&stolen).await,
                    401,
                    Gate::Dpop,
                    Reason::KeyNotPinned,
                );
            })
        },
    ),
    steps(
        "unwrap/replayed-proof",
        &[(Gate::Dpop, Reason::JtiReplayed)],
        |m| {
            Box::pin(async move {
                let once = m.s.proof(&m.pod.dpop, "/v1/unwrap", Some(&m.session), None);
                let answer = m.unwrap_api0(&once).await;
                assert_eq!(
                    m.s.open(&m.pod, &m.session, &m.capsule, &answer, &once),
                    secret()
                );
                refused(
                    &m.unwrap_api0(&once).await,
                    401,
                    Gate::Dpop,
                    Reason::JtiReplayed,
                );
            })
        },
    ),
    // A second key cannot enroll for the same live pod uid; rotation needs the previous key.
    steps(
        "gate3/second-key-for-the-pod",
        &[(Gate::Dpop, Reason::PodKeyAlreadyPinned)],
        |m| {
            Box::pin(async move {
                let second = Pod {
                    dpop: DpopKey::generate().unwrap(),
                    ..m.s.pod("api-0", "api")
                };
                refused(
                    &m.s.session(&second, &m.key).await,
                    401,
                    Gate::Dpop,
                    Reason::PodKeyAlreadyPinned,
                );
                m.second = Some(second.dpop);
            })
        },
    ),
    steps(
        "gate3/rotation-signed-by-another-key",
        &[(Gate::Dpop, Reason::KeyNotPinned)],
        |m| {
            Box::pin(async move {
                let next = m.second.as_ref().expect("the second key's case ran");
                let authorization = format!("DPoP {}", m.session);
                let route = "/v1/sessions/rotate-key";
                let proof = m.s.proof(&m.thief, route, Some(&m.session), None);
                let body = serde_json::to_vec(
                    &json!({ "new_proof": m.s.proof(next, route, Some(&m.session), None) }),
                )
                .unwrap();
                let answer =
                    m.s.send(
                        Method::POST,
                        route,
                        route,
                        &[
                            (API_KEY_HEADER, &m.key),
                            (TOKEN_HEADER, &m.pod.token),
                            ("authorization", &authorization),
                            ("dpop", &proof),
                        ],
                        Some(body),
                    )
                    .await;
                refused(&answer, 401, Gate::Dpop, Reason::KeyNotPinned);
            })
        },
    ),
    // Scope: another namespace, cluster, service account; a header edited after sealing.
    steps(
        "scope/another-namespace",
        &[(Gate::Scope, Reason::NamespaceMismatch)],
        |m| {
            Box::pin(async move {
                let other = m.s.capsule("prod", "payments", "api");
                m.scope_refused(&other, Reason::NamespaceMismatch).await;
            })
        },
    ),
    steps(
        "scope/another-cluster",
        &[(Gate::Scope, Reason::ClusterMismatch)],
        |m| {
            Box::pin(async move {
                let other = m.s.capsule("staging", "shop", "api");
                m.scope_refused(&other, Reason::ClusterMismatch).await;
            })
        },
    ),
    steps(
        "scope/another-service-account",
        &[(Gate::Scope, Reason::ServiceAccountMismatch)],
        |m| {
            Box::pin(async move {
                let other = m.s.capsule("prod", "shop", "worker");
                m.scope_refused(&other, Reason::ServiceAccountMismatch)
                    .await;
            })
        },
    ),
    steps(
        "scope/header-edited-after-sealing",
        &[(Gate::Scope, Reason::DidNotOpen)],
        |m| {
            Box::pin(async move {
                let mut header = m.capsule.envelope.header().clone();
                header.scope.as_kubernetes_mut().unwrap().name = "admin-password".into();
                let edited = Capsule {
                    envelope: DekEnvelope::new(
                        serde_json::to_vec(&header).unwrap(),
                        m.capsule.envelope.stanzas().to_vec(),
                    )
                    .unwrap(),
                    ..m.capsule.clone()
                };
                m.scope_refused(&edited, Reason::DidNotOpen).await;
            })
        },
    ),
    // The request: content ciphertext, malformed or oversized bodies, wrong media type.
    steps(
        "request/content-ciphertext",
        &[(Gate::Request, Reason::ContentCiphertextPresent)],
        |m| {
            Box::pin(async move {
                let with_content =
                    serde_json::to_vec(&json!({ "capsules": [b64(&m.capsule.to_bytes())] }))
                        .unwrap();
                m.body_refused(with_content, 400, Reason::ContentCiphertextPresent)
                    .await;
            })
        },
    ),
    steps(
        "request/malformed-json",
        &[(Gate::Request, Reason::MalformedBody)],
        |m| {
            Box::pin(async move {
                m.body_refused(b"{\"capsules\": [".to_vec(), 400, Reason::MalformedBody)
                    .await;
            })
        },
    ),
    steps(
        "request/capsule-not-base64",
        &[(Gate::Request, Reason::CapsuleMalformed)],
        |m| {
            Box::pin(async move {
                let body = serde_json::to_vec(&json!({ "capsules": ["!!"] })).unwrap();
                m.body_refused(body, 400, Reason::CapsuleMalformed).await;
            })
        },
    ),
    steps(
        "request/unknown-field",
        &[(Gate::Request, Reason::MalformedBody)],
        |m| {
            Box::pin(async move {
                let body =
                    serde_json::to_vec(&json!({ "capsules": [], "content": "AAAA" })).unwrap();
                m.body_refused(body, 400, Reason::MalformedBody).await;
            })
        },
    ),
    steps("request/empty-batch", &[], |m| {
        Box::pin(async move {
            let body = serde_json::to_vec(&json!({ "capsules": [] })).unwrap();
            m.body_refused(body, 400, Reason::BatchSize).await;
        })
    }),
    // An oversized body: the server answers 413 and closes the connection
    // without reading the rest, so a client still writing may see the close
    // instead of the answer; either way nothing past the limit is read. (The
    // in-process test reads the 413 every time.)
    steps(
        "request/oversized-body",
        &[(Gate::Request, Reason::BodyTooLarge)],
        |m| {
            Box::pin(async move {
                let proof = m.s.proof(&m.pod.dpop, "/v1/unwrap", Some(&m.session), None);
                let authorization = format!("DPoP {}", m.session);
                let oversized =
                    m.s.client
                        .send(
                            Method::POST,
                            "/v1/unwrap",
                            &[
                                (API_KEY_HEADER, &m.key),
                                (TOKEN_HEADER, &m.pod.token),
                                ("authorization", &authorization),
                                ("dpop", &proof),
                            ],
                            Some(vec![b' '; 2 * 1024 * 1024]),
                        )
                        .await;
                match oversized {
                    Ok(answer) => {
                        m.s.seen.lock().unwrap().insert((
                            "POST".into(),
                            "/v1/unwrap".into(),
                            answer.status.as_u16(),
                        ));
                        refused(&answer, 413, Gate::Request, Reason::BodyTooLarge);
                    }
                    Err(error) => {
                        // The OS spells it "Broken pipe"; hyper "connection closed".
                        let message = error.to_string().to_lowercase();
                        assert!(
                            message.contains("connection closed")
                                || message.contains("reset")
                                || message.contains("broken pipe"),
                            "{error}"
                        );
                    }
                }
            })
        },
    ),
    steps(
        "request/text-plain",
        &[(Gate::Request, Reason::UnsupportedMediaType)],
        |m| {
            Box::pin(async move {
                let answer =
                    m.s.send(
                        Method::POST,
                        "/v1/unwrap",
                        "/v1/unwrap",
                        &[("content-type", "text/plain")],
                        Some(b"x".to_vec()),
                    )
                    .await;
                refused(&answer, 415, Gate::Request, Reason::UnsupportedMediaType);
            })
        },
    ),
    // Credentials missing before any gate runs: the API key, the token, the
    // session (absent, or not `DPoP <session>`).
    steps(
        "credentials/no-api-key",
        &[(Gate::ApiKey, Reason::ApiKeyMissing)],
        |m| {
            Box::pin(async move {
                let headers = [(TOKEN_HEADER, m.pod.token.as_str()), JSON];
                m.credentials_refused(&headers, Gate::ApiKey, Reason::ApiKeyMissing)
                    .await;
            })
        },
    ),
    steps(
        "credentials/no-token",
        &[(Gate::Token, Reason::TokenMissing)],
        |m| {
            Box::pin(async move {
                let headers = [(API_KEY_HEADER, m.key.as_str()), JSON];
                m.credentials_refused(&headers, Gate::Token, Reason::TokenMissing)
                    .await;
            })
        },
    ),
    steps(
        "credentials/no-session",
        &[(Gate::Dpop, Reason::SessionMissing)],
        |m| {
            Box::pin(async move {
                let headers = [
                    (API_KEY_HEADER, m.key.as_str()),
                    (TOKEN_HEADER, &m.pod.token),
                    JSON,
                ];
                m.credentials_refused(&headers, Gate::Dpop, Reason::SessionMissing)
                    .await;
            })
        },
    ),
    steps(
        "credentials/bearer-session",
        &[(Gate::Dpop, Reason::SessionMissing)],
        |m| {
            Box::pin(async move {
                let bearer = format!("Bearer {}", m.session);
                let headers = [
                    (API_KEY_HEADER, m.key.as_str()),
                    (TOKEN_HEADER, &m.pod.token),
                    ("authorization", &bearer),
                    JSON,
                ];
                m.credentials_refused(&headers, Gate::Dpop, Reason::SessionMissing)
                    .await;
            })
        },
    ),
    // Gate 4: not running, no digest, unapproved init/app/ephemeral images.
    steps(
        "gate4/pod-not-running",
        &[(Gate::LivePod, Reason::PodNotRunning)],
        |m| {
            Box::pin(async move {
                let app = vec![image("api", Some('a'))];
                m.pod_refused("pending-0", vec![], app, false, Reason::PodNotRunning)
                    .await;
            })
        },
    ),
    steps(
        "gate4/image-without-digest",
        &[(Gate::LivePod, Reason::ImageWithoutDigest)],
        |m| {
            Box::pin(async move {
                let app = vec![image("api", None)];
                m.pod_refused("nodigest-0", vec![], app, true, Reason::ImageWithoutDigest)
                    .await;
            })
        },
    ),
    steps(
        "gate4/init-image-not-approved",
        &[(Gate::LivePod, Reason::ImageNotApproved)],
        |m| {
            Box::pin(async move {
                let init = vec![image("migrate", Some('b'))];
                let app = vec![image("api", Some('a'))];
                m.pod_refused("badinit-0", init, app, true, Reason::ImageNotApproved)
                    .await;
            })
        },
    ),
    steps(
        "gate4/app-image-not-approved",
        &[(Gate::LivePod, Reason::ImageNotApproved)],
        |m| {
            Box::pin(async move {
                let app = vec![image("api", Some('c'))];
                m.pod_refused("badapp-0", vec![], app, true, Reason::ImageNotApproved)
                    .await;
            })
        },
    ),
    steps(
        "gate4/debug-container-before-the-session",
        &[(Gate::LivePod, Reason::DebugContainerNotApproved)],
        |m| {
            Box::pin(async move {
                m.s.create_pod(
                    "debugged-0",
                    "api",
                    vec![],
                    vec![image("api", Some('a'))],
                    true,
                );
                m.s.handle
                    .add_ephemeral_container("shop", "debugged-0", &image("debugger", Some('d')))
                    .unwrap();
                m.s.until_view(
                    "debugged-0",
                    |a| matches!(a, ViewAnswer::Present(f) if f.containers.len() == 2),
                )
                .await;
                refused(
                    &m.s.session(&m.s.pod("debugged-0", "api"), &m.key).await,
                    403,
                    Gate::LivePod,
                    Reason::DebugContainerNotApproved,
                );
            })
        },
    ),
    // An ephemeral container injected after the session started stops the next unwrap.
    steps(
        "gate4/debug-container-after-the-session",
        &[(Gate::LivePod, Reason::DebugContainerNotApproved)],
        |m| {
            Box::pin(async move {
                m.s.handle
                    .add_ephemeral_container("shop", "api-0", &image("debugger", Some('d')))
                    .unwrap();
                m.s.until_view(
                    "api-0",
                    |a| matches!(a, ViewAnswer::Present(f) if f.containers.len() == 3),
                )
                .await;
                refused(
                    &m.s.unwrap(&m.pod, &m.key, &m.session, &m.capsule).await,
                    403,
                    Gate::LivePod,
                    Reason::DebugContainerNotApproved,
                );
            })
        },
    ),
    // Recreated under the same name (new uid): the old token is refused; then deleted: not found.
    steps(
        "gate4/pod-recreated",
        &[(Gate::LivePod, Reason::PodUidMismatch)],
        |m| {
            Box::pin(async move {
                m.s.handle.recreate_pod("shop", "api-0").unwrap();
                m.s.handle.mark_running("shop", "api-0").unwrap();
                m.s.until_view(
                    "api-0",
                    |a| matches!(a, ViewAnswer::Present(f) if f.is_running() && f.containers.len() == 2),
                )
                .await;
                refused(
                    &m.s.session(&m.pod, &m.key).await,
                    403,
                    Gate::LivePod,
                    Reason::PodUidMismatch,
                );
            })
        },
    ),
    steps(
        "gate4/pod-deleted",
        &[(Gate::LivePod, Reason::PodNotFound)],
        |m| {
            Box::pin(async move {
                m.s.handle.delete_pod("shop", "api-0").unwrap();
                m.s.until_view("api-0", |a| *a == ViewAnswer::Absent).await;
                refused(
                    &m.s.session(&m.pod, &m.key).await,
                    403,
                    Gate::LivePod,
                    Reason::PodNotFound,
                );
            })
        },
    ),
    // Server nonces, for a policy that requires them.
    steps(
        "nonce/required",
        &[(Gate::Dpop, Reason::UseDpopNonce)],
        |m| {
            Box::pin(async move {
                m.s.create_pod(
                    "worker-0",
                    "worker",
                    vec![],
                    vec![image("worker", Some('a'))],
                    true,
                );
                m.s.policy("worker", &[digest('a')], true).await;
                let worker = m.s.pod("worker-0", "worker");
                let answer = m.s.session(&worker, &m.other_sa_key).await;
                refused(&answer, 401, Gate::Dpop, Reason::UseDpopNonce);
                assert!(
                    answer.headers["www-authenticate"]
                        .to_str()
                        .unwrap()
                        .contains(Reason::UseDpopNonce.code())
                );
                m.nonce = answer.headers[DPOP_NONCE_HEADER]
                    .to_str()
                    .unwrap()
                    .to_owned();
                m.worker = Some(worker);
            })
        },
    ),
    // A nonce issued long ago (with the server's own secret) is stale.
    steps("nonce/stale", &[(Gate::Dpop, Reason::UseDpopNonce)], |m| {
        Box::pin(async move {
            let secret = SqliteStorage::open(&m.s.config.database_path())
                .unwrap()
                .server_secret("dpop_nonce", [0; 32])
                .await
                .unwrap();
            let stale = NonceIssuer::new(&secret, 60).issue(now() - 600);
            let worker = m.worker();
            let proof = m.s.proof(&worker.dpop, "/v1/sessions", None, Some(&stale));
            refused(
                &m.s.session_with(worker, &m.other_sa_key, &worker.token, &[&proof])
                    .await,
                401,
                Gate::Dpop,
                Reason::UseDpopNonce,
            );
        })
    }),
    steps("nonce/session-and-unwrap", &[], |m| {
        Box::pin(async move {
            let worker = m.worker.as_ref().expect("nonce/required made worker-0");
            let proof =
                m.s.proof(&worker.dpop, "/v1/sessions", None, Some(&m.nonce));
            let answer =
                m.s.session_with(worker, &m.other_sa_key, &worker.token, &[&proof])
                    .await;
            assert_eq!(
                answer.status,
                201,
                "{}",
                String::from_utf8_lossy(&answer.body)
            );
            m.worker_session = serde_json::from_slice::<Value>(&answer.body).unwrap()["session_id"]
                .as_str()
                .unwrap()
                .to_owned();
            m.nonce = answer.headers[DPOP_NONCE_HEADER]
                .to_str()
                .unwrap()
                .to_owned();
            let worker_capsule = m.s.capsule("prod", "shop", "worker");
            let proof = m.s.proof(
                &worker.dpop,
                "/v1/unwrap",
                Some(&m.worker_session),
                Some(&m.nonce),
            );
            let answer =
                m.s.unwrap_raw(
                    worker,
                    &m.other_sa_key,
                    &m.worker_session,
                    &[&proof],
                    envelope_body(&worker_capsule),
                )
                .await;
            assert_eq!(
                m.s.open(worker, &m.worker_session, &worker_capsule, &answer, &proof),
                secret()
            );
            m.worker_capsule = Some(worker_capsule);
        })
    }),
    // A replayed proof stays refused after a restart (the record is in storage).
    steps(
        "nonce/replay-refused-after-a-restart",
        &[(Gate::Dpop, Reason::JtiReplayed)],
        |m| {
            Box::pin(async move {
                let worker = m.worker.as_ref().expect("nonce/required made worker-0");
                let worker_capsule = m.worker_capsule.as_ref().expect("a capsule for worker");
                let replay = m.s.proof(
                    &worker.dpop,
                    "/v1/unwrap",
                    Some(&m.worker_session),
                    Some(&m.nonce),
                );
                let answer =
                    m.s.unwrap_raw(
                        worker,
                        &m.other_sa_key,
                        &m.worker_session,
                        &[&replay],
                        envelope_body(worker_capsule),
                    )
                    .await;
                assert_eq!(answer.status, 200);
                m.s.restart().await;
                m.s.until_view(
                    "worker-0",
                    |a| matches!(a, ViewAnswer::Present(f) if f.is_running()),
                )
                .await;
                refused(
                    &m.s.unwrap_raw(
                        worker,
                        &m.other_sa_key,
                        &m.worker_session,
                        &[&replay],
                        envelope_body(worker_capsule),
                    )
                    .await,
                    401,
                    Gate::Dpop,
                    Reason::JtiReplayed,
                );
            })
        },
    ),
    // Tokens from a key the cluster rotated to, which was never pinned; and the
    // pinned kid on a token that key signed.
    steps(
        "gate2/rotated-key-not-pinned",
        &[(Gate::Token, Reason::KidUnknown)],
        |m| {
            Box::pin(async move {
                m.s.handle.rotate_signing_key(true).unwrap();
                m.unpinned = m.s.token("worker-0", "worker", &["podseal"]);
                let worker = m.worker();
                let proof =
                    m.s.proof(&worker.dpop, "/v1/sessions", None, Some(&m.nonce));
                refused(
                    &m.s.session_with(worker, &m.other_sa_key, &m.unpinned, &[&proof])
                        .await,
                    401,
                    Gate::Token,
                    Reason::KidUnknown,
                );
            })
        },
    ),
    steps(
        "gate2/pinned-kid-on-the-rotated-keys-token",
        &[(Gate::Token, Reason::SignatureInvalid)],
        |m| {
            Box::pin(async move {
                let mislabeled = m.token_signed(
                    &json!({ "alg": "RS256", "kid": m.pinned_kid }),
                    &claims_of(&m.unpinned),
                );
                let worker = m.worker();
                let proof =
                    m.s.proof(&worker.dpop, "/v1/sessions", None, Some(&m.nonce));
                refused(
                    &m.s.session_with(worker, &m.other_sa_key, &mislabeled, &[&proof])
                        .await,
                    401,
                    Gate::Token,
                    Reason::SignatureInvalid,
                );
            })
        },
    ),
    // Admin refusals.
    steps(
        "admin/wrong-token",
        &[(Gate::Admin, Reason::AdminTokenInvalid)],
        |m| {
            Box::pin(async move {
                let answer =
                    m.s.send(
                        Method::GET,
                        admin::API_KEYS_PATH,
                        admin::API_KEYS_PATH,
                        &[("authorization", "Bearer psa_wrong")],
                        None,
                    )
                    .await;
                refused(&answer, 401, Gate::Admin, Reason::AdminTokenInvalid);
            })
        },
    ),
    steps("admin/no-token", &[], |m| {
        Box::pin(async move {
            let answer =
                m.s.send(
                    Method::GET,
                    admin::POLICIES_PATH,
                    admin::POLICIES_PATH,
                    &[],
                    None,
                )
                .await;
            refused(&answer, 401, Gate::Admin, Reason::AdminTokenMissing);
        })
    }),
    // The audit export: every refusal above is in it, with gate and reason,
    // and it verifies. Those the HTTP layer answered before the release
    // service ran are aggregated (`request_audit`): their window ends now.
    steps("audit/every-refusal-recorded", &[], |m| {
        Box::pin(async move {
            m.s.running().flush_request_refusals().await;
            let text = m.s.audit_export().await;
            let public = parse_public_key(
                &std::fs::read_to_string(&m.s.running().audit_public_key_file).unwrap(),
            )
            .unwrap();
            let report = verify_export(&text, &public, None).unwrap();
            assert!(report.records > 60, "{report:?}");
            for (gate, reason) in &m.audited {
                assert!(
                    text.contains(&format!(
                        "\\\"gate\\\":\\\"{gate}\\\",\\\"reason\\\":\\\"{reason}\\\""
                    )),
                    "no audit record of gate {gate} refusing {reason}"
                );
            }
            m.export = text;
            m.audit_public = public;
        })
    }),
    steps("audit/no-secret-material", &[], |m| {
        Box::pin(async move {
            for secret in [
                SECRET.as_str(),
                &m.pod.token,
                &m.key,
                &m.session,
                &m.s.admin_token,
            ] {
                assert!(
                    !m.export.contains(secret),
                    "secret material in the audit log"
                );
            }
        })
    }),
    // Any single edit, removal, insertion or swap of a record is detected.
    steps("audit/tampering-detected", &[], |m| {
        Box::pin(async move {
            let lines: Vec<&str> = m.export.lines().collect();
            let records: Vec<usize> = (0..lines.len())
                .filter(|i| lines[*i].contains("\"type\":\"record\""))
                .collect();
            let (a, b) = (records[10], records[11]);
            let mut tampered: Vec<Vec<String>> = Vec::new();
            let owned = |v: &[&str]| v.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
            let mut edited = owned(&lines);
            edited[a] = edited[a].replacen("\\\"event\\\":\\\"", "\\\"event\\\":\\\"x", 1);
            assert_ne!(edited[a], lines[a], "the edit must change something");
            tampered.push(edited);
            let mut removed = owned(&lines);
            removed.remove(a);
            tampered.push(removed);
            let mut inserted = owned(&lines);
            inserted.insert(b, lines[a].to_owned());
            tampered.push(inserted);
            let mut swapped = owned(&lines);
            swapped.swap(a, b);
            tampered.push(swapped);
            let mut cut = owned(&lines);
            cut.truncate(cut.len() - 1);
            tampered.push(cut);
            for (i, lines) in tampered.iter().enumerate() {
                assert!(
                    verify_export(&lines.join("\n"), &m.audit_public, None).is_err(),
                    "tampering {i} went unnoticed"
                );
            }
        })
    }),
    // Every status the server answered is one ROUTES (and so the OpenAPI document) lists.
    steps("routes/every-status-documented", &[], |m| {
        Box::pin(async move { m.s.check_statuses() })
    }),
    // The leak canary: every secret the run minted or handed out, searched
    // in everything the server wrote while serving.
    steps("leak/canary-while-serving", &[], |m| {
        Box::pin(async move {
            for path in ["/metrics", "/readyz"] {
                let answer = m.s.send(Method::GET, path, path, &[], None).await;
                assert_eq!(answer.status, 200, "{path}");
                let place = format!("{path}'s body");
                m.s.written
                    .lock()
                    .unwrap()
                    .push((place, answer.body.to_vec()));
            }
            let mut places = m.s.written.lock().unwrap().clone();
            places.push(("the audit export".into(), m.export.clone().into_bytes()));
            m.s.leak_search("while serving", &places);
        })
    }),
    steps("shutdown", &[], |m| {
        Box::pin(async move {
            m.s.running.take().unwrap().shutdown().await.unwrap();
        })
    }),
    // The state directory again once the server has stopped (the WAL
    // checkpointed into the database), and the log of the shutdown.
    steps("leak/canary-after-shutdown", &[], |m| {
        Box::pin(async move { m.s.leak_search("after shutdown", &[]) })
    }),
];

/// Set-up shared by the focused tests below: the cluster registered, an API
/// key for shop/api, its policy, and a running pod `api-0`.
impl Suite {
    async fn registered(&self) -> String {
        self.admin(
            Method::POST,
            admin::CLUSTERS_PATH,
            admin::CLUSTERS_PATH,
            Some(json!({
                "name": "prod",
                "api_server_url": self.cluster.dev.url(),
                "ca_pem": std::fs::read_to_string(self.cluster.dir.path().join("ca.pem")).unwrap(),
                "reader_token": std::fs::read_to_string(self.cluster.dir.path().join("reader.token")).unwrap(),
            })),
        )
        .await;
        let (_, key) = self.api_key("shop", "api").await;
        self.policy("api", &[digest('a')], false).await;
        self.create_pod("api-0", "api", vec![], vec![image("api", Some('a'))], true);
        self.until_view(
            "api-0",
            |a| matches!(a, ViewAnswer::Present(f) if f.is_running()),
        )
        .await;
        key
    }

    /// Searches `places`, the state directory and the trace log for every
    /// watched secret (and the plaintext, and the org private key), raw,
    /// hex and base64 at every alignment; any hit fails.
    fn leak_search(&self, when: &str, places: &[(String, Vec<u8>)]) {
        let mut canary = Canary::new();
        canary.watch("the plaintext", secret());
        canary.watch_org_key("the org private key", &self.org.to_text());
        let watched = self.watched.lock().unwrap().clone();
        for (name, secret) in &watched {
            canary.watch(name, secret);
        }
        let mut hits = Vec::new();
        let mut bytes = 0;
        for (place, written) in places {
            hits.extend(canary.hits(place, written));
            bytes += written.len();
        }
        let log = LOG.lock().unwrap().clone();
        hits.extend(canary.hits("the trace log", &log));
        // The org key file is the org key's home; nothing else is exempt.
        let org_key_file = self.state.path().join("org.key");
        let (found, searched) = canary.hits_in_dir(self.state.path(), &[org_key_file]);
        hits.extend(found);
        assert!(
            hits.is_empty(),
            "secret material {when}:\n{}",
            hits.join("\n")
        );
        // The search covered what it claims to.
        assert!(!log.is_empty(), "nothing was logged");
        let files = canary::files(self.state.path());
        assert!(
            files.iter().any(|f| f.ends_with("podseal.db")),
            "no database among {files:?}"
        );
        println!(
            "leak canary {when}: {} secrets ({} needles) in {} answers and bodies ({bytes} bytes), \
             {} bytes of trace log, {} files ({} bytes) of the state directory",
            canary.names().len(),
            canary.needle_count(),
            places.len(),
            log.len(),
            searched.files,
            searched.bytes,
        );
    }

    /// The audit export, as text.
    async fn audit_export(&self) -> String {
        let authorization = format!("Bearer {}", self.admin_token);
        let export = self
            .send(
                Method::GET,
                admin::AUDIT_EXPORT_PATH,
                admin::AUDIT_EXPORT_PATH,
                &[("authorization", &authorization)],
                None,
            )
            .await;
        assert_eq!(export.status, 200);
        String::from_utf8(export.body.to_vec()).unwrap()
    }

    /// Every status seen is one `ROUTES` lists for its route.
    fn check_statuses(&self) {
        for (method, route, status) in self.seen.lock().unwrap().iter() {
            let documented = ROUTES
                .iter()
                .find(|r| r.method == method && r.path == route)
                .unwrap_or_else(|| panic!("{method} {route} is not in ROUTES"));
            assert!(
                documented.statuses.contains(status),
                "{method} {route} answered {status}, not in ROUTES"
            );
        }
    }
}

/// Every Wycheproof X25519 public key labelled low-order or non-canonical
/// is refused when a session opens (gate request, audited), before any pin;
/// the pod then opens a session with its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_recipient_keys_are_refused_when_a_session_opens() {
    let s = Suite::start().await;
    let key = s.registered().await;
    let file = podseal_test_support::testdata::shared_json("wycheproof/x25519_test.json");
    let mut hostile: Vec<(Vec<u8>, String)> = Vec::new();
    for group in file["testGroups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            let flags = test["flags"].as_array().unwrap();
            let flagged = |name: &str| flags.iter().any(|f| f == name);
            if !(flagged("LowOrderPublic") || flagged("NonCanonicalPublic")) {
                continue;
            }
            let hex = test["public"].as_str().unwrap();
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            if !hostile.iter().any(|(b, _)| *b == bytes) {
                hostile.push((bytes, format!("tcId {} {flags:?}", test["tcId"])));
            }
        }
    }
    let low_order = hostile
        .iter()
        .filter(|(_, l)| l.contains("LowOrder"))
        .count();
    let non_canonical = hostile
        .iter()
        .filter(|(_, l)| l.contains("NonCanonical"))
        .count();
    assert!(low_order > 0 && non_canonical > 0, "{hostile:?}");

    let pod = s.pod("api-0", "api");
    // Each hostile key comes with a DPoP key that is not the pod's: had any
    // refusal come after enrolment, that key would hold the container's pin
    // and the pod's own session below would be refused.
    let attacker = DpopKey::generate().unwrap();
    for (public, label) in &hostile {
        let proof = s.proof(&attacker, "/v1/sessions", None, None);
        let answer = s
            .send(
                Method::POST,
                "/v1/sessions",
                "/v1/sessions",
                &[
                    (API_KEY_HEADER, &key),
                    (TOKEN_HEADER, &pod.token),
                    ("dpop", &proof),
                ],
                Some(serde_json::to_vec(&json!({ "recipient_key": b64(public) })).unwrap()),
            )
            .await;
        assert_eq!(answer.status, 400, "{label}");
        refused(&answer, 400, Gate::Request, Reason::RecipientKeyInvalid);
    }
    // Nothing was pinned by the refusals: the pod's own, other key opens a session.
    s.open_session(&pod, &key).await;

    let text = s.audit_export().await;
    let refusals = text
        .matches("\\\"gate\\\":\\\"request\\\",\\\"reason\\\":\\\"recipient_key_invalid\\\"")
        .count();
    assert_eq!(refusals, hostile.len(), "one audit record per refusal");
    s.check_statuses();
}

/// A TLS connection to the server trusting its development certificate,
/// offering `alpn` (none when empty).
async fn tls_connect(
    running: &Running,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject as _;
    let pem = std::fs::read(running.dev_cert_file.as_ref().unwrap()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !alpn.is_empty() {
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    let tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

/// ES384 and ES512 clusters (an external signer, KEP-740) through the real
/// server: the stand-in's JWKS pinned at registration, a session opened and a
/// secret released with its tokens; a JWKS whose key claims another
/// algorithm than its curve's, or has a coordinate of the wrong length, is
/// refused at registration; a token naming another algorithm for the pinned
/// key, or carrying a signature of the wrong shape, is refused at gate 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es384_and_es512_clusters_are_released_to_and_their_bad_keys_refused() {
    for (algorithm, crv, len) in [
        (SigningAlgorithm::Es384, "P-384", 48),
        (SigningAlgorithm::Es512, "P-521", 66),
    ] {
        let name = algorithm.name();
        let s = Suite::start_signing(algorithm).await;
        let url = s.cluster.dev.url().to_owned();
        let published = serde_json::to_value(s.handle.jwks()).unwrap();
        let jwk = &published["keys"][0];
        assert_eq!(
            (jwk["alg"].as_str(), jwk["crv"].as_str()),
            (Some(name), Some(crv))
        );

        // Malformed or mismatched keys: refused when the cluster is added.
        let mut bad_keys = Vec::new();
        for alg in ["ES256", "ES384", "ES512", "RS256", "HS256", "none"] {
            if alg != name {
                let mut jwks = published.clone();
                jwks["keys"][0]["alg"] = alg.into();
                bad_keys.push((jwks, "alg is not the algorithm"));
            }
        }
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        assert_eq!(x.len(), len);
        let mut short = published.clone();
        short["keys"][0]["x"] = URL_SAFE_NO_PAD.encode(&x[1..]).into();
        bad_keys.push((short, "EC coordinates must be"));
        let mut other_curve = published.clone();
        other_curve["keys"][0]["crv"] = if crv == "P-384" { "P-521" } else { "P-384" }.into();
        bad_keys.push((other_curve, "EC coordinates must be"));
        for (jwks, detail) in &bad_keys {
            let answer = s
                .register_raw(&url, json!({ "jwks": jwks.to_string() }))
                .await;
            refused(&answer, 400, Gate::Admin, Reason::InvalidArgument);
            let body = String::from_utf8_lossy(&answer.body);
            assert!(body.contains(detail), "{name}: {body}");
        }

        // The cluster's own JWKS, fetched at registration: released to.
        let key = s.registered().await;
        let pinned = s.running().release().clusters().get("prod").unwrap();
        assert_eq!(pinned.tokens.jwks.kids(), [jwk["kid"].as_str().unwrap()]);
        let pod = s.pod("api-0", "api");
        let header = URL_SAFE_NO_PAD
            .decode(pod.token.split('.').next().unwrap())
            .unwrap();
        let header: Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header["alg"], name, "the stand-in signs with {name}");
        let session = s.open_session(&pod, &key).await;
        let capsule = s.capsule("prod", "shop", "api");
        let (pending, answer) = s.unwrap_pending(&pod, &key, &session, &capsule).await;
        assert_eq!(
            answer.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(
            Suite::open_pending(&pod, &pending, &capsule, &answer),
            secret()
        );

        // The pinned kid under any other algorithm: refused before the signature.
        let good = claims_of(&pod.token);
        let kid = jwk["kid"].as_str().unwrap();
        for alg in ["ES256", "ES384", "ES512", "RS256"] {
            if alg == name {
                continue;
            }
            let token = s
                .handle
                .sign_raw(&json!({ "alg": alg, "kid": kid }), &good)
                .unwrap();
            let proof = s.proof(&pod.dpop, "/v1/sessions", None, None);
            refused(
                &s.session_with(&pod, &key, &token, &[&proof]).await,
                401,
                Gate::Token,
                Reason::AlgKeyMismatch,
            );
        }
        // A signature of the wrong shape (one byte short, or the halves of
        // r ‖ s swapped) does not verify.
        let (input, signature) = pod.token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        assert_eq!(signature.len(), 2 * len);
        let swapped = [&signature[len..], &signature[..len]].concat();
        for bad in [&signature[1..], &swapped[..]] {
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(bad));
            let proof = s.proof(&pod.dpop, "/v1/sessions", None, None);
            refused(
                &s.session_with(&pod, &key, &token, &[&proof]).await,
                401,
                Gate::Token,
                Reason::SignatureInvalid,
            );
        }
        s.check_statuses();
    }
}

/// An HTTP/2 GET over TLS with ALPN `h2` only, through hyper's client.
async fn h2_get(
    running: &Running,
    path: &str,
    headers: &[(String, String)],
) -> (http::StatusCode, http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt as _;
    let tls = tls_connect(running, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut request =
        http::Request::get(format!("https://localhost:{}{path}", running.addr.port()));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = sender
        .send_request(
            request
                .body(http_body_util::Empty::<axum::body::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, body)
}

/// Request headers over the server's limits (200 KiB in 200 fields, or in
/// one) get 431 as problem+json, over HTTP/1.1 and HTTP/2 alike, and the
/// server keeps serving; headers within the limits are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_headers_are_refused_with_problem_json() {
    let s = Suite::start().await;
    let many: Vec<(String, String)> = (0..200)
        .map(|i| (format!("x-filler-{i}"), "a".repeat(1024)))
        .collect();
    let one = vec![("x-filler".to_owned(), "a".repeat(200 * 1024))];
    let within: Vec<(String, String)> = (0..40)
        .map(|i| (format!("x-filler-{i}"), "a".repeat(1024)))
        .collect();
    for headers in [&many, &one] {
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let answer = s
            .client
            .send(Method::GET, "/healthz", &pairs, None)
            .await
            .unwrap();
        refused(&answer, 431, Gate::Request, Reason::HeadersTooLarge);

        let (status, response_headers, body) = h2_get(s.running(), "/healthz", headers).await;
        let answer = Answer {
            status,
            headers: response_headers,
            body: body.into(),
        };
        refused(&answer, 431, Gate::Request, Reason::HeadersTooLarge);
    }
    // On an unknown path too: the limit applies before routing.
    let (status, response_headers, body) = h2_get(s.running(), "/nowhere", &many).await;
    refused(
        &Answer {
            status,
            headers: response_headers,
            body: body.into(),
        },
        431,
        Gate::Request,
        Reason::HeadersTooLarge,
    );
    // Within the limits: served, on both protocols.
    let pairs: Vec<(&str, &str)> = within
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let answer = s
        .send(Method::GET, "/healthz", "/healthz", &pairs, None)
        .await;
    assert_eq!(answer.status, 200);
    let (status, _, _) = h2_get(s.running(), "/healthz", &within).await;
    assert_eq!(status, 200);
    assert!(podseal_server::api::FALLBACK_STATUSES.contains(&431));
    s.check_statuses();
}

/// A server with no cluster under these connection bounds, and its state.
async fn bare_server(
    connections: podseal_server::config::ConnectionsSection,
) -> (Running, TempDir) {
    let state = TempDir::new().unwrap();
    let (mut config, _) = config_in(&state);
    config.connections = connections;
    (start(config).await.unwrap(), state)
}

/// Thousands of malformed release requests from one source, over HTTPS,
/// become two audit records — the first refusal, then one counting its
/// repeats when the window ends — in two commits, and the counts add up to
/// exactly the requests sent. Each is still answered as a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_is_two_audit_records_counted_exactly() {
    let (running, _state) = bare_server(Default::default()).await;
    let client = client_for(&running);
    let commits = || running.release().storage().stats().snapshot().1;
    let before = commits();
    let flood = 3000;
    let started = std::time::Instant::now();
    for _ in 0..flood {
        let answer = client
            .send(
                Method::POST,
                "/v1/sessions",
                &[("content-type", "application/json")],
                Some(b"{\"recipient_key\": ".to_vec()),
            )
            .await
            .unwrap();
        refused(&answer, 400, Gate::Request, Reason::MalformedBody);
    }
    let took = started.elapsed();
    running.flush_request_refusals().await;
    let written = commits() - before;
    eprintln!("{flood} malformed requests in {took:?}: {written} audit commits");
    assert!(written <= 2, "{written} commits for one source and reason");

    let authorization = format!("Bearer {}", running.admin_token.as_deref().unwrap());
    let export = client
        .send(
            Method::GET,
            admin::AUDIT_EXPORT_PATH,
            &[("authorization", &authorization)],
            None,
        )
        .await
        .unwrap();
    let text = String::from_utf8(export.body.to_vec()).unwrap();
    let records: Vec<AuditRecord> = text
        .lines()
        .filter_map(|line| match serde_json::from_str(line).unwrap() {
            ExportLine::Record { entry, .. } => Some(serde_json::from_str(&entry).unwrap()),
            ExportLine::Checkpoint(_) => None,
        })
        .filter(|record: &AuditRecord| record.reason == Some(Reason::MalformedBody))
        .collect();
    let summary: Vec<(&str, &str, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r.event.as_str(),
                r.details["aggregate"].as_str(),
                r.details["source"].as_str(),
                r.details["count"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("session", "first", "127.0.0.1", "1"),
            ("session", "repeats", "127.0.0.1", &*(flood - 1).to_string()),
        ]
    );
    running.shutdown().await.unwrap();
}

/// The HTTP/2 client connection preface and an empty SETTINGS frame.
const H2_PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Reads what the server sends until it closes `tls`; how long that took
/// from `since`, or `None` if it was still open at `deadline`.
async fn closed_by(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    since: std::time::Instant,
    deadline: Duration,
) -> Option<Duration> {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(deadline.saturating_sub(since.elapsed()), async {
        // The server's SETTINGS may come first; EOF or an error is the close.
        while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    closed.is_ok().then(|| since.elapsed())
}

/// An HTTP/2 connection that sends the preface and SETTINGS and never a
/// request is cut at `connections.first_request_timeout_secs` from accept,
/// like a silent HTTP/1.1 one, not after the idle timeout: by ALPN `h2`, and
/// by prior knowledge with the preface split over two TLS records. A
/// request within the bound is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_preface_without_a_request_is_cut_at_the_first_request_bound() {
    use tokio::io::AsyncWriteExt as _;
    let bound = Duration::from_secs(2);
    let (running, _state) = bare_server(podseal_server::config::ConnectionsSection {
        first_request_timeout_secs: bound.as_secs(),
        // Far above the bound: the cut must come from the bound.
        idle_timeout_secs: 60,
        ..Default::default()
    })
    .await;
    let deadline = bound + Duration::from_secs(4);
    let (first, rest) = H2_PREFACE_AND_SETTINGS.split_at(10);
    for (alpn, writes) in [
        (&b"h2"[..], vec![H2_PREFACE_AND_SETTINGS]),
        (b"", vec![first, rest]),
    ] {
        let since = std::time::Instant::now();
        let mut tls = tls_connect(&running, alpn).await;
        for bytes in writes {
            tls.write_all(bytes).await.unwrap();
            tls.flush().await.unwrap();
        }
        let took = closed_by(&mut tls, since, deadline).await;
        eprintln!(
            "HTTP/2 preface only (alpn {:?}): closed after {took:?}",
            String::from_utf8_lossy(alpn)
        );
        let took = took.unwrap_or_else(|| {
            panic!("an HTTP/2 connection without a request was open after {deadline:?}")
        });
        assert!(took >= bound - Duration::from_millis(500), "{took:?}");
    }
    // A client that asks within the bound is served, over the same protocol.
    let (status, _, _) = h2_get(&running, "/healthz", &[]).await;
    assert_eq!(status, 200);
    running.shutdown().await.unwrap();
}

/// Shutdown does not wait for a connection that never carried a request
/// (a client's spare connection, opened and pooled unused): it has
/// nothing to finish. It waited the whole grace for one, which is where
/// `podseal-dev demo` sometimes spent five seconds after its last step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_connection_that_never_asked() {
    let (running, _state) = bare_server(podseal_server::config::ConnectionsSection {
        first_request_timeout_secs: 60,
        idle_timeout_secs: 60,
        ..Default::default()
    })
    .await;
    use tokio::io::AsyncWriteExt as _;
    let mut spares = Vec::new();
    for alpn in [&b""[..], b"h2", b"http/1.1"] {
        spares.push(tls_connect(&running, alpn).await);
    }
    // And an HTTP/2 connection past its preface and SETTINGS, still without
    // a request.
    let mut preface_only = tls_connect(&running, b"h2").await;
    preface_only
        .write_all(H2_PREFACE_AND_SETTINGS)
        .await
        .unwrap();
    preface_only.flush().await.unwrap();
    spares.push(preface_only);
    // Served on another connection: the server is up and answering.
    let (status, _, _) = h2_get(&running, "/healthz", &[]).await;
    assert_eq!(status, 200);
    let since = std::time::Instant::now();
    tokio::time::timeout(podseal_https::SHUTDOWN_GRACE / 2, running.shutdown())
        .await
        .expect("shutdown waited for connections that never carried a request")
        .unwrap();
    for mut spare in spares {
        assert!(
            closed_by(&mut spare, since, Duration::from_secs(5))
                .await
                .is_some(),
            "a spare connection outlived the server"
        );
    }
}

impl Suite {
    /// `POST /v1/admin/clusters` with [`registration`]'s body and `extra`,
    /// answered as it is (a refusal is not a test failure here).
    async fn register_raw(&self, url: &str, extra: Value) -> Answer {
        let authorization = format!("Bearer {}", self.admin_token);
        let body = serde_json::to_vec(&registration(self, url, extra)).unwrap();
        self.send(
            Method::POST,
            admin::CLUSTERS_PATH,
            admin::CLUSTERS_PATH,
            &[("authorization", &authorization)],
            Some(body),
        )
        .await
    }
}

/// The registration body of `prod` at `url`, with the suite's CA and token files.
fn registration(s: &Suite, url: &str, extra: Value) -> Value {
    let mut body = json!({
        "name": "prod",
        "api_server_url": url,
        "ca_pem": std::fs::read_to_string(s.cluster.dir.path().join("ca.pem")).unwrap(),
        "reader_token": std::fs::read_to_string(s.cluster.dir.path().join("reader.token")).unwrap(),
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Waits until the view answers that `api-0` runs.
async fn until_running(s: &Suite) {
    s.until_view(
        "api-0",
        |a| matches!(a, ViewAnswer::Present(f) if f.is_running()),
    )
    .await;
}

/// True when the audit export holds a record detail `key` = `value`.
fn exported_detail(export: &str, key: &str, value: &str) -> bool {
    export.contains(&format!("\\\"{key}\\\":\\\"{value}\\\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_lifetime_and_extra_audiences_are_bounded_per_cluster() {
    let s = Suite::start().await;
    let url = s.cluster.dev.url().to_owned();
    let added = s
        .admin(
            Method::POST,
            admin::CLUSTERS_PATH,
            admin::CLUSTERS_PATH,
            Some(registration(&s, &url, json!({}))),
        )
        .await;
    assert_eq!(added["allow_extra_audiences"], false, "{added}");
    assert_eq!(added["max_token_lifetime_secs"], 86_400, "{added}");
    let pinned_kid = added["pinned_kids"][0].as_str().unwrap().to_owned();
    let (_, key) = s.api_key("shop", "api").await;
    s.policy("api", &[digest('a')], false).await;
    s.create_pod("api-0", "api", vec![], vec![image("api", Some('a'))], true);
    let pod = s.pod("api-0", "api");
    until_running(&s).await;
    let mint = |audiences: &[&str], seconds: i64| {
        let audiences: Vec<String> = audiences.iter().map(|a| (*a).to_owned()).collect();
        s.handle
            .issue_token("shop", "api", &audiences, seconds, Some("api-0"))
            .unwrap()
            .0
    };
    let session = async |token: &str| {
        let proof = s.proof(&pod.dpop, "/v1/sessions", None, None);
        s.session_with(&pod, &key, token, &[&proof]).await
    };

    // A token valid for ten years is refused, however right the rest of it is.
    let ten_years = mint(&["podseal"], 10 * 365 * 86_400);
    refused(
        &session(&ten_years).await,
        401,
        Gate::Token,
        Reason::TokenLifetimeTooLong,
    );
    // One within the bound (23 h) opens a session.
    let day = mint(&["podseal"], 23 * 3600);
    assert_eq!(session(&day).await.status, 201);
    // A token also meant for other relying parties is refused by default.
    let shared = mint(&["podseal", "kube", "vault"], 600);
    refused(
        &session(&shared).await,
        401,
        Gate::Token,
        Reason::AudienceExtra,
    );

    // kubernetes.io warnafter is the effective expiry of an extended token:
    // past it (and the leeway) refused, before it a session that ends by then.
    let good = claims_of(&pod.token);
    let kid_header = json!({ "alg": "RS256", "kid": pinned_kid });
    let forge = |edit: &dyn Fn(&mut Value)| {
        let mut claims = good.clone();
        edit(&mut claims);
        s.handle.sign_raw(&kid_header, &claims).unwrap()
    };
    let stale = forge(&|c| {
        let iat = now() - 7200;
        c["iat"] = json!(iat);
        c["nbf"] = json!(iat);
        c["exp"] = json!(iat + 365 * 86_400);
        c["kubernetes.io"]["warnafter"] = json!(iat + 3607);
    });
    refused(&session(&stale).await, 401, Gate::Token, Reason::TokenStale);
    let warn_soon = forge(&|c| {
        let iat = now();
        c["iat"] = json!(iat);
        c["nbf"] = json!(iat);
        c["exp"] = json!(iat + 365 * 86_400);
        c["kubernetes.io"]["warnafter"] = json!(iat + 600);
    });
    let opened = session(&warn_soon).await;
    assert_eq!(opened.status, 201);
    let body: Value = serde_json::from_slice(&opened.body).unwrap();
    assert!(
        body["expires_at"].as_i64().unwrap() <= now() + 600,
        "the session outlives the token's warnafter: {body}"
    );

    // The per-cluster settings, changed with --replace: extra audiences
    // allowed, the API server's own audience accepted, lifetimes bounded to 2 h.
    let out_of_range = s
        .register_raw(
            &url,
            json!({ "replace": true, "max_token_lifetime_secs": 10 * 365 * 86_400 }),
        )
        .await;
    refused(&out_of_range, 400, Gate::Admin, Reason::InvalidArgument);
    let issuer = "https://kubernetes.default.svc";
    let replaced = s
        .admin(
            Method::POST,
            admin::CLUSTERS_PATH,
            admin::CLUSTERS_PATH,
            Some(registration(
                &s,
                &url,
                json!({
                    "replace": true,
                    "audiences": ["podseal", issuer],
                    "allow_extra_audiences": true,
                    "max_token_lifetime_secs": 7200,
                }),
            )),
        )
        .await;
    assert_eq!(replaced["allow_extra_audiences"], true);
    assert_eq!(replaced["max_token_lifetime_secs"], 7200);
    let shown = s
        .admin(
            Method::GET,
            admin::CLUSTER_ROUTE,
            &admin::cluster_path("prod"),
            None,
        )
        .await;
    assert_eq!(
        (
            &shown["allow_extra_audiences"],
            &shown["max_token_lifetime_secs"]
        ),
        (&json!(true), &json!(7200))
    );
    until_running(&s).await;
    assert_eq!(
        session(&shared).await.status,
        201,
        "extra audiences allowed"
    );
    // Verified (and cached) under the old bound, refused under the new one.
    refused(
        &session(&day).await,
        401,
        Gate::Token,
        Reason::TokenLifetimeTooLong,
    );
    // What the kubelet's default token becomes under the API server's
    // extended expiration: a year to exp, warnafter after 3607 s. Bounded
    // by warnafter, it is accepted.
    let extended = mint(&[issuer], 3607);
    let claims = claims_of(&extended);
    assert_eq!(
        claims["kubernetes.io"]["warnafter"].as_i64(),
        Some(claims["iat"].as_i64().unwrap() + 3607),
        "{claims}"
    );
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() > 300 * 86_400);
    assert_eq!(session(&extended).await.status, 201);

    let text = s.audit_export().await;
    for reason in [
        Reason::TokenLifetimeTooLong,
        Reason::AudienceExtra,
        Reason::TokenStale,
    ] {
        assert!(
            exported_detail(&text, "reason", reason.code()),
            "no audit record for {reason}"
        );
    }
    assert!(exported_detail(&text, "allow_extra_audiences", "true"));
    assert!(exported_detail(&text, "old_allow_extra_audiences", "false"));
    assert!(exported_detail(&text, "max_token_lifetime_secs", "7200"));
    assert!(exported_detail(
        &text,
        "old_max_token_lifetime_secs",
        "86400"
    ));
}

/// A TCP forwarder in front of the stand-in, so the registered URL stays
/// the same while the API server behind it changes (a control plane rebuilt
/// under the same name). Counts the connections to each backend that ended.
struct Proxy {
    addr: std::net::SocketAddr,
    backend: std::sync::Arc<Mutex<std::net::SocketAddr>>,
    ended: std::sync::Arc<Mutex<std::collections::HashMap<std::net::SocketAddr, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(backend: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = std::sync::Arc::new(Mutex::new(backend));
        let ended = std::sync::Arc::new(Mutex::new(std::collections::HashMap::new()));
        let (to, counts) = (backend.clone(), ended.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = *to.lock().unwrap();
                let counts = counts.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                    *counts.lock().unwrap().entry(to).or_insert(0) += 1;
                });
            }
        });
        Self {
            addr,
            backend,
            ended,
            task,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn route_to(&self, backend: std::net::SocketAddr) {
        *self.backend.lock().unwrap() = backend;
    }

    fn ended(&self, backend: std::net::SocketAddr) -> usize {
        self.ended
            .lock()
            .unwrap()
            .get(&backend)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// SHA-256 fingerprints of the certificates of a PEM bundle.
fn ca_fingerprints(pem: &str) -> Vec<String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|cert| podseal_https::fingerprint(&cert.unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_ca_is_pinned_at_registration_and_changed_only_with_replace() {
    let mut s = Suite::start().await;
    let proxy = Proxy::start(s.cluster.dev.addr()).await;
    let rebuilt = support::Cluster::start().await;
    let ca_file = s.cluster.dir.path().join("ca.pem");
    let token_file = s.cluster.dir.path().join("reader.token");
    let pinned = ca_fingerprints(s.cluster.dev.ca_pem());
    let other = ca_fingerprints(rebuilt.dev.ca_pem());
    assert_ne!(pinned, other);

    let added = s
        .admin(
            Method::POST,
            admin::CLUSTERS_PATH,
            admin::CLUSTERS_PATH,
            Some(registration(&s, &proxy.url(), json!({}))),
        )
        .await;
    assert_eq!(added["ca_sha256"], json!(pinned), "{added}");
    let shown = s
        .admin(
            Method::GET,
            admin::CLUSTER_ROUTE,
            &admin::cluster_path("prod"),
            None,
        )
        .await;
    assert_eq!(shown["ca_sha256"], json!(pinned), "{shown}");
    let (_, key) = s.api_key("shop", "api").await;
    s.policy("api", &[digest('a')], false).await;
    s.create_pod("api-0", "api", vec![], vec![image("api", Some('a'))], true);
    let pod = s.pod("api-0", "api");
    let capsule = s.capsule("prod", "shop", "api");
    until_running(&s).await;
    let session = s.open_session(&pod, &key).await;
    let (pending, answer) = s.unwrap_pending(&pod, &key, &session, &capsule).await;
    assert_eq!(
        Suite::open_pending(&pod, &pending, &capsule, &answer),
        secret()
    );

    // The CA file is overwritten with another CA: the pinned bytes are still
    // what is trusted, also by the connection a restart makes anew.
    std::fs::write(&ca_file, rebuilt.dev.ca_pem()).unwrap();
    s.restart().await;
    until_running(&s).await;
    let session = s.open_session(&pod, &key).await;
    let (pending, answer) = s.unwrap_pending(&pod, &key, &session, &capsule).await;
    assert_eq!(
        Suite::open_pending(&pod, &pending, &capsule, &answer),
        secret()
    );

    // The API server behind the URL is rebuilt with that CA, and the reader
    // token file follows it. The pinned CA refuses it: gate 4 cannot decide,
    // and the old pod's unexpired token opens nothing.
    std::fs::write(&token_file, rebuilt.dev.reader_token()).unwrap();
    proxy.route_to(rebuilt.dev.addr());
    s.handle.pause();
    s.restart().await;
    let view = s
        .running()
        .release()
        .clusters()
        .get("prod")
        .unwrap()
        .view
        .clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    while proxy.ended(rebuilt.dev.addr()) == 0 && !view.is_fresh() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never contacted the rebuilt API server"
        );
        ticks.tick().await;
    }
    assert!(
        !view.is_fresh(),
        "the view trusted a CA that was never pinned"
    );
    refused(
        &s.session(&pod, &key).await,
        503,
        Gate::LivePod,
        Reason::ViewUnknown,
    );
    refused(
        &s.unwrap(&pod, &key, &session, &capsule).await,
        503,
        Gate::LivePod,
        Reason::ViewUnknown,
    );

    // Trusting the new CA is an admin action: --replace, audited with the
    // old and new fingerprints before the cluster is contacted.
    let replaced = s
        .admin(
            Method::POST,
            admin::CLUSTERS_PATH,
            admin::CLUSTERS_PATH,
            Some(registration(&s, &proxy.url(), json!({ "replace": true }))),
        )
        .await;
    assert_eq!(replaced["ca_sha256"], json!(other), "{replaced}");
    assert_ne!(replaced["pinned_kids"], added["pinned_kids"]);
    s.until_view("api-0", |a| matches!(a, ViewAnswer::Absent))
        .await;
    let text = s.audit_export().await;
    assert!(exported_detail(&text, "action", "cluster_replace"));
    assert!(exported_detail(&text, "old_ca_sha256", &pinned.join(",")));
    assert!(exported_detail(&text, "ca_sha256", &other.join(",")));
    s.running.take().unwrap().shutdown().await.unwrap();
}

/// An HTTPS listener of an admin's own, with its own CA (the one the
/// stand-in uses to make its certificate, freshly generated): it records
/// every request head it is sent and answers 401.
struct Catcher {
    url: String,
    ca_pem: String,
    heads: std::sync::Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Catcher {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let tls = podseal_dev_cluster::tls::generate(None).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let heads = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(inbound).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(buffer.get(..n).unwrap_or_default()),
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let _ = stream
                        .write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            url,
            ca_pem: tls.ca_pem,
            heads,
            task,
        }
    }

    /// Every request head received so far, joined.
    fn received(&self) -> String {
        self.heads.lock().unwrap().join("\n")
    }
}

impl Drop for Catcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Issue 21, item 5: an admin request cannot make the server read a file
/// of its choosing, or send one's content anywhere. Before, `cluster add`
/// took `ca_bundle` and `token_file` as paths on the server's machine, and
/// the server sent the token file's content as `Authorization: Bearer …`
/// to the `api_server_url` of the same request: a one-line file holding a
/// PostgreSQL URL with its password reached a listener of the caller's own.
/// Now no field names a path: the old fields are unknown (400), a path put
/// where content goes is taken as content (not a CA, not read), and the
/// listener receives no byte of the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_request_cannot_make_the_server_read_a_file_or_send_its_content() {
    let s = Suite::start().await;
    let catcher = Catcher::start().await;
    let secret_file = s.state.path().join("database.url");
    let password = "s3cr3t-from-the-servers-disk";
    std::fs::write(
        &secret_file,
        format!("postgres://podseal:{password}@db/podseal\n"),
    )
    .unwrap();
    let ca_file = s.state.path().join("catcher-ca.pem");
    std::fs::write(&ca_file, &catcher.ca_pem).unwrap();
    let authorization = format!("Bearer {}", s.admin_token);
    let post = async |body: Value| {
        s.send(
            Method::POST,
            admin::CLUSTERS_PATH,
            admin::CLUSTERS_PATH,
            &[("authorization", &authorization)],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    };

    // The request of the report: server-side paths for the CA and the token.
    let answer = post(json!({
        "name": "exfil",
        "api_server_url": catcher.url,
        "ca_bundle": ca_file,
        "token_file": secret_file,
        "allow_broad_token": true,
    }))
    .await;
    let received = catcher.received();
    assert!(
        !received.contains(password),
        "the server read a file the request named and sent its content: {received}"
    );
    let problem: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    assert_eq!(answer.status, 400, "{problem}");
    assert_eq!(problem["reason"], "malformed_body", "{problem}");
    assert_eq!(received, "", "nothing was sent anywhere");

    // Paths where content goes are content: not a CA, and never opened.
    let answer = post(json!({
        "name": "exfil",
        "api_server_url": catcher.url,
        "ca_pem": ca_file,
        "reader_token": secret_file,
        "allow_broad_token": true,
    }))
    .await;
    let problem: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    assert_eq!(answer.status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("ca_pem: the CA bundle holds no PEM certificate"),
        "{problem}"
    );

    // With the listener's CA as content and the file's path as the token,
    // the server presents that path, the caller's own bytes, and nothing else.
    let answer = post(json!({
        "name": "exfil",
        "api_server_url": catcher.url,
        "ca_pem": catcher.ca_pem,
        "reader_token": secret_file,
        "allow_broad_token": true,
    }))
    .await;
    assert!(!answer.status.is_success(), "{}", answer.status);
    let received = catcher.received();
    assert!(
        received.contains(&format!("Bearer {}", secret_file.display())),
        "the listener was contacted with the token as given: {received}"
    );
    assert!(!received.contains(password), "{received}");
    assert!(!received.contains("postgres://"), "{received}");
    let listed = s
        .admin(
            Method::GET,
            admin::CLUSTERS_PATH,
            admin::CLUSTERS_PATH,
            None,
        )
        .await;
    assert_eq!(listed["clusters"], json!([]), "{listed}");
    s.check_statuses();
}

/// The reader token is a credential: `cluster show` (and `-o json`, which
/// is the same body) never returns it, nor a path; the store holds it and a
/// restart connects with it, with no file left anywhere to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_token_is_stored_never_shown_and_needs_no_file() {
    let mut s = Suite::start().await;
    let token = s.cluster.dev.reader_token().to_owned();
    let added = s
        .admin(
            Method::POST,
            admin::CLUSTERS_PATH,
            admin::CLUSTERS_PATH,
            Some(json!({
                "name": "prod",
                "api_server_url": s.cluster.dev.url(),
                "ca_pem": s.cluster.dev.ca_pem(),
                "reader_token": format!("{token}\n"),
            })),
        )
        .await;
    // No file of the cluster's is left: what the server holds is its own.
    std::fs::remove_dir_all(s.cluster.dir.path()).unwrap();
    s.restart().await;
    let shown = s
        .admin(
            Method::GET,
            admin::CLUSTER_ROUTE,
            &admin::cluster_path("prod"),
            None,
        )
        .await;
    for body in [&added, &shown] {
        let text = body.to_string();
        assert!(!text.contains(&token), "{text}");
        assert!(body.get("token_file").is_none() && body.get("ca_bundle").is_none());
    }
    let (_, key) = s.api_key("shop", "api").await;
    s.policy("api", &[digest('a')], false).await;
    s.create_pod("api-0", "api", vec![], vec![image("api", Some('a'))], true);
    until_running(&s).await;
    let pod = s.pod("api-0", "api");
    let capsule = s.capsule("prod", "shop", "api");
    let session = s.open_session(&pod, &key).await;
    let (pending, answer) = s.unwrap_pending(&pod, &key, &session, &capsule).await;
    assert_eq!(
        Suite::open_pending(&pod, &pending, &capsule, &answer),
        secret()
    );
    let text = s.audit_export().await;
    assert!(!text.contains(&token), "the audit log holds the token");
    s.running.take().unwrap().shutdown().await.unwrap();
}
