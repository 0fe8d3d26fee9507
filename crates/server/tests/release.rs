//! The release path end to end without HTTP: the stand-in's tokens and pods,
//! the pod view, SQLite, real DPoP proofs and capsules. The happy path opens
//! the secret on the pod side; each attack is refused by the right gate and
//! audited; the audit export verifies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::sync::Arc;
use std::time::Duration;

use podseal_core::audit::{AuditKey, Event, verify_export};
use podseal_core::capsule::{Capsule, DekEnvelope, KubernetesScope, Scope};
use podseal_core::clock::{Clock as _, ManualClock, SharedClock, SystemClock};
use podseal_core::dpop::{DpopKey, ProofFor};
use podseal_core::envelope::{self, ReleaseBinding, SealParams};
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey};
use podseal_core::key_provider::KeyRing;
use podseal_core::org_key::OrgPrivateKey;
use podseal_dev_cluster::{ContainerImage, Handle};
use podseal_sdk::protocol::{self, Endpoint, Freshness, SessionInfo, SignedRequest};
use podseal_server::audit_log::AuditWriter;
use podseal_server::cluster::{ClusterRegistry, ConnectedCluster};
use podseal_server::gate::{Gate, Reason, Refusal};
use podseal_server::identity::{KubernetesTokens, PinnedJwks};
use podseal_server::nonce::NonceIssuer;
use podseal_server::pod_view::{PodView, ViewAnswer, ViewConfig};
use podseal_server::release::{
    Credentials, ReleaseConfig, ReleaseService, UnwrapRequest, api_key_hash,
};
use podseal_server::storage::{AdminStore as _, AuditStore as _, ReleaseStore as _};
use podseal_server::storage::{
    ApiKeyRecord, ClusterRecord, PolicyRecord, ReaderToken, SqliteStorage,
};
use podseal_test_support::fixtures::{kubernetes_scope, seal_params};

mod support;

use support::digest;

const URL: &str = "https://podseal.test:8443";
const API_KEY: &str = "psk_shop_api_0123456789";
const SECRET: &[u8] = b"postgres://app:hunter2@db/shop";

struct World {
    /// The clock the service decides by; the pod's proofs are dated by it.
    clock: SharedClock,
    cluster: support::Cluster,
    handle: Handle,
    storage: Arc<SqliteStorage>,
    service: Arc<ReleaseService<SqliteStorage>>,
    view: Arc<PodView>,
    org: OrgPrivateKey,
}

/// The release configuration of these tests.
fn release_config() -> ReleaseConfig {
    ReleaseConfig {
        external_url: URL.into(),
        // Short: a second key's refusal waits this long for a restart.
        enrolment_wait: Duration::from_secs(1),
        ..ReleaseConfig::default()
    }
}

async fn world() -> World {
    world_with(release_config(), podseal_core::clock::system()).await
}

async fn world_with(release: ReleaseConfig, clock: SharedClock) -> World {
    let cluster = support::Cluster::start().await;
    let handle = cluster.dev.handle();
    handle.create_pod(&support::api_pod("api-0")).unwrap();
    handle.mark_running("shop", "api-0").unwrap();
    let client = cluster.reader();
    let view = Arc::new(PodView::start(
        client,
        ViewConfig::with_max_staleness(Duration::from_secs(3)),
    ));
    let storage = Arc::new(SqliteStorage::open(&cluster.dir.path().join("podseal.db")).unwrap());
    let jwks_json = serde_json::to_string(&handle.jwks()).unwrap();
    storage
        .put_cluster(ClusterRecord {
            name: "prod".into(),
            issuer: "https://kubernetes.default.svc".into(),
            audiences: vec!["podseal".into()],
            api_server_url: cluster.dev.url().into(),
            ca_pem: cluster.dev.ca_pem().into(),
            reader_token: ReaderToken::new(cluster.dev.reader_token()),
            jwks: jwks_json.clone(),
            allow_extra_audiences: false,
            max_token_lifetime_secs: 86_400,
            created_at: 0,
            updated_at: 0,
        })
        .await
        .unwrap();
    for (id, key, namespace) in [
        ("key-shop", API_KEY, "shop"),
        ("key-other", "psk_other_ns", "payments"),
    ] {
        storage
            .insert_api_key(ApiKeyRecord {
                id: id.into(),
                key_hash: api_key_hash(key),
                cluster: "prod".into(),
                namespace: namespace.into(),
                service_account: "api".into(),
                created_at: 0,
                revoked_at: None,
            })
            .await
            .unwrap();
    }
    storage
        .set_policy(PolicyRecord {
            cluster: "prod".into(),
            namespace: "shop".into(),
            service_account: "api".into(),
            digests: vec![digest('a')],
            audit_mode: false,
            require_nonce: false,
            updated_at: 0,
        })
        .await
        .unwrap();
    let org = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    let service = service_over(
        storage.clone(),
        view.clone(),
        &jwks_json,
        &org,
        release,
        clock.clone(),
    );
    let world = World {
        clock,
        cluster,
        handle,
        storage,
        service,
        view,
        org,
    };
    world
        .until_view(|answer| matches!(answer, ViewAnswer::Present(f) if f.is_running()))
        .await;
    world
}

fn service_over(
    storage: Arc<SqliteStorage>,
    view: Arc<PodView>,
    jwks: &str,
    org: &OrgPrivateKey,
    release: ReleaseConfig,
    clock: SharedClock,
) -> Arc<ReleaseService<SqliteStorage>> {
    let tokens = KubernetesTokens::new(
        "https://kubernetes.default.svc".into(),
        vec!["podseal".into()],
        PinnedJwks::parse(jwks).unwrap(),
    );
    let ring = KeyRing::from(OrgPrivateKey::from_text(&org.to_text()).unwrap());
    let audit = Arc::new(AuditWriter::new(storage.clone(), clock));
    let clusters = Arc::new(
        ClusterRegistry::new(
            storage.clone(),
            audit.clone(),
            ViewConfig::with_max_staleness(Duration::from_secs(3)),
            30,
        )
        .with_jwks_check(Duration::from_millis(100)),
    );
    let service = Arc::new(ReleaseService::new(
        storage,
        clusters.clone(),
        audit,
        Arc::new(ring),
        NonceIssuer::new(&[7; 32], 60),
        release,
    ));
    clusters.add(
        "prod",
        ConnectedCluster {
            tokens,
            view,
            record: None,
            token_cache: Default::default(),
        },
    );
    service
}

/// What a pod's process holds in RAM (and the container it says it runs in).
struct Pod {
    dpop: DpopKey,
    recipient: LocalPrivateKey,
    token: String,
    container: Option<String>,
}

impl World {
    /// The HTTP API over this world's services.
    fn app(&self) -> axum::Router {
        let audit_log = Arc::new(podseal_server::audit_log::AuditLog::new(
            self.storage.clone(),
            AuditKey::generate().unwrap(),
            podseal_core::audit::LogOrigin::new("test").unwrap(),
        ));
        podseal_server::api::router(podseal_server::api::App {
            release: self.service.clone(),
            admin: Arc::new(podseal_server::admin::AdminService::new(
                self.service.clone(),
                audit_log,
            )),
            metrics: Arc::default(),
            refusals: Arc::default(),
        })
    }

    fn pod(&self) -> Pod {
        self.process_in("api-0", None)
    }

    /// A new process (new RAM-only keys) in pod `shop/NAME`, naming
    /// `container` as `PODSEAL_CONTAINER` would.
    fn process_in(&self, name: &str, container: Option<&str>) -> Pod {
        let (token, _) = self
            .handle
            .issue_token("shop", "api", &["podseal".into()], 600, Some(name))
            .unwrap();
        Pod {
            dpop: DpopKey::generate().unwrap(),
            recipient: LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap(),
            token,
            container: container.map(str::to_owned),
        }
    }

    fn capsule(&self, namespace: &str, service_account: &str) -> Capsule {
        self.capsule_of_key(namespace, service_account, None)
    }

    /// A capsule of Secret `db`, data key `key` when given.
    fn capsule_of_key(&self, namespace: &str, service_account: &str, key: Option<&str>) -> Capsule {
        let params = seal_params(KubernetesScope {
            key: key.map(str::to_owned),
            ..kubernetes_scope("prod", namespace, service_account)
        });
        envelope::seal(params, SECRET, &[self.org.public()]).unwrap()
    }

    async fn until_view(&self, mut condition: impl FnMut(&ViewAnswer) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        loop {
            if condition(&self.view.lookup("shop", "api-0").await) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the view never reached the expected state"
            );
            ticks.tick().await;
        }
    }

    /// Waits (with a deadline) until storage shows the session revoked.
    async fn until_revoked(&self, session: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        while self
            .storage
            .session(session)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the session was not revoked"
            );
            ticks.tick().await;
        }
    }

    async fn session(&self, pod: &Pod, api_key: &str) -> Result<String, Refusal> {
        self.session_signed_at(pod, api_key, self.clock.now()).await
    }

    /// [`World::session`] with the proof signed at `iat` by the pod's clock.
    async fn session_signed_at(
        &self,
        pod: &Pod,
        api_key: &str,
        iat: i64,
    ) -> Result<String, Refusal> {
        let (proof, _) = pod
            .dpop
            .proof(&ProofFor {
                htm: "POST",
                htu: &format!("{URL}/v1/sessions"),
                iat,
                access_token: None,
                nonce: None,
            })
            .unwrap();
        let credentials = Credentials {
            api_key,
            token: &pod.token,
            dpop: &[&proof],
        };
        self.service
            .establish_session(
                credentials,
                pod.recipient.public_key_bytes(),
                pod.container.as_deref(),
            )
            .await
            .map(|g| g.session_id)
    }

    async fn unwrap_with(
        &self,
        pod: &Pod,
        dpop: &DpopKey,
        session: &str,
        capsule: &Capsule,
        ath: bool,
    ) -> Result<Vec<u8>, Refusal> {
        let access_token = ath.then_some(session);
        let (proof, _) = dpop
            .proof(&ProofFor {
                htm: "POST",
                htu: &format!("{URL}/v1/unwrap"),
                iat: self.clock.now(),
                access_token,
                nonce: None,
            })
            .unwrap();
        let credentials = Credentials {
            api_key: API_KEY,
            token: &pod.token,
            dpop: &[&proof],
        };
        let request = UnwrapRequest {
            session_id: session.into(),
            capsules: vec![capsule.envelope.clone()],
        };
        let releases = self.service.unwrap(credentials, request).await?;
        let binding = ReleaseBinding {
            session_id: session,
            jti: &releases[0].jti,
        };
        let dek = envelope::open_release(
            &releases[0].released,
            &pod.recipient,
            capsule.envelope.header_bytes(),
            binding,
        )
        .unwrap();
        Ok(envelope::decrypt_content(capsule, &dek)
            .unwrap()
            .expose_secret_bytes()
            .to_vec())
    }

    async fn unwrap(
        &self,
        pod: &Pod,
        session: &str,
        capsule: &Capsule,
    ) -> Result<Vec<u8>, Refusal> {
        self.unwrap_with(pod, &pod.dpop, session, capsule, true)
            .await
    }
}

/// An unwrap with exactly the DPoP header values given.
async fn raw_unwrap(
    service: &ReleaseService<SqliteStorage>,
    pod: &Pod,
    dpop: &[&str],
    session: &str,
    capsule: &Capsule,
) -> Result<Vec<podseal_server::release::Release>, Refusal> {
    let credentials = Credentials {
        api_key: API_KEY,
        token: &pod.token,
        dpop,
    };
    let request = UnwrapRequest {
        session_id: session.into(),
        capsules: vec![capsule.envelope.clone()],
    };
    service.unwrap(credentials, request).await
}

fn now() -> i64 {
    SystemClock.now()
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, Refusal>, gate: Gate, reason: Reason) {
    let refusal = result.expect_err("expected a refusal");
    assert_eq!((refusal.gate, refusal.reason), (gate, reason), "{refusal}");
    assert!(
        !refusal.detail.contains("eyJ"),
        "no token in a refusal: {}",
        refusal.detail
    );
}

/// Clock skew between pod and server, with the server's clock injected
/// (the machine's is never changed). The pod reads its clock as the token's
/// `iat` and signs its DPoP proof at that time; the server's clock is set
/// at each skew in turn. Within the token's leeway (30 s) and the DPoP
/// window (5 s ahead, 60 s behind) a session opens; beyond either it is
/// refused by the gate whose window was left.
#[tokio::test]
async fn clock_skew_between_pod_and_server_is_accepted_within_leeway_and_refused_beyond() {
    use base64::Engine as _;
    let clock = ManualClock::at(now() - 60);
    let w = world_with(release_config(), clock.clone()).await;
    let pod = w.pod();
    let payload = pod.token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let pod_now = claims["iat"].as_i64().unwrap();
    let cases: &[(i64, Option<(Gate, Reason)>)] = &[
        (-40, Some((Gate::Token, Reason::TokenNotYetValid))),
        (-8, Some((Gate::Dpop, Reason::IatFuture))),
        (-4, None),
        (0, None),
        (50, None),
        (70, Some((Gate::Dpop, Reason::IatStale))),
        (600 + 31, Some((Gate::Token, Reason::TokenExpired))),
    ];
    for (skew, expected) in cases {
        let target = pod_now + skew;
        let behind = target - clock.now();
        assert!(behind >= 0, "the cases run in increasing skew");
        clock.advance(Duration::from_secs(u64::try_from(behind).unwrap()));
        assert_eq!(clock.now(), target);
        let outcome = w.session_signed_at(&pod, API_KEY, pod_now).await;
        match expected {
            None => assert!(
                outcome.is_ok(),
                "server {skew} s from the pod: {:?}",
                outcome.err()
            ),
            Some((gate, reason)) => {
                let refusal = outcome.expect_err(&format!("server {skew} s from the pod"));
                assert_eq!(
                    (refusal.gate, refusal.reason),
                    (*gate, *reason),
                    "server {skew} s from the pod: {refusal}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_release_path_and_its_refusals() {
    let w = world().await;
    let pod = w.pod();
    let capsule = w.capsule("shop", "api");

    // Happy path: session, unwrap, open in the pod's memory.
    let session = w.session(&pod, API_KEY).await.unwrap();
    assert_eq!(w.unwrap(&pod, &session, &capsule).await.unwrap(), SECRET);

    // Gate 1: unknown key; a key bound to another namespace.
    assert_refused(
        w.session(&pod, "psk_stolen_guess").await,
        Gate::ApiKey,
        Reason::ApiKeyUnknown,
    );
    assert_refused(
        w.session(&pod, "psk_other_ns").await,
        Gate::ApiKey,
        Reason::ApiKeyScopeMismatch,
    );

    // Gate 3: a second key for the same live pod uid cannot enroll.
    let thief = Pod {
        dpop: DpopKey::generate().unwrap(),
        ..w.pod()
    };
    assert_refused(
        w.session(&thief, API_KEY).await,
        Gate::Dpop,
        Reason::PodKeyAlreadyPinned,
    );
    // A stolen token and API key with another DPoP key cannot use the session.
    assert_refused(
        w.unwrap_with(&pod, &thief.dpop, &session, &capsule, true)
            .await,
        Gate::Dpop,
        Reason::KeyNotPinned,
    );
    // Missing ath on unwrap.
    assert_refused(
        w.unwrap_with(&pod, &pod.dpop, &session, &capsule, false)
            .await,
        Gate::Dpop,
        Reason::AthMissing,
    );
    // A replayed proof, and two DPoP headers.
    let (proof, _) = pod
        .dpop
        .proof(&ProofFor {
            htm: "POST",
            htu: &format!("{URL}/v1/unwrap"),
            iat: now(),
            access_token: Some(&session),
            nonce: None,
        })
        .unwrap();
    raw_unwrap(&w.service, &pod, &[&proof], &session, &capsule)
        .await
        .unwrap();
    assert_refused(
        raw_unwrap(&w.service, &pod, &[&proof], &session, &capsule).await,
        Gate::Dpop,
        Reason::JtiReplayed,
    );
    assert_refused(
        raw_unwrap(&w.service, &pod, &[&proof, &proof], &session, &capsule).await,
        Gate::Dpop,
        Reason::DpopHeaderCount,
    );
    // The replay record survives a restart of the server.
    let restarted = service_over(
        Arc::new(SqliteStorage::open(&w.cluster.dir.path().join("podseal.db")).unwrap()),
        w.view.clone(),
        &serde_json::to_string(&w.handle.jwks()).unwrap(),
        &w.org,
        release_config(),
        w.clock.clone(),
    );
    assert_refused(
        raw_unwrap(&restarted, &pod, &[&proof], &session, &capsule).await,
        Gate::Dpop,
        Reason::JtiReplayed,
    );

    // Scope: a capsule for another namespace or service account; a header edited after sealing.
    assert_refused(
        w.unwrap(&pod, &session, &w.capsule("payments", "api"))
            .await,
        Gate::Scope,
        Reason::NamespaceMismatch,
    );
    assert_refused(
        w.unwrap(&pod, &session, &w.capsule("shop", "worker")).await,
        Gate::Scope,
        Reason::ServiceAccountMismatch,
    );
    let mut edited_header = capsule.envelope.header().clone();
    edited_header
        .scope
        .as_kubernetes_mut()
        .unwrap()
        .service_accounts
        .push("worker".into());
    let edited = Capsule {
        envelope: DekEnvelope::new(
            serde_json::to_vec(&edited_header).unwrap(),
            capsule.envelope.stanzas().to_vec(),
        )
        .unwrap(),
        ..capsule.clone()
    };
    assert_refused(
        w.unwrap(&pod, &session, &edited).await,
        Gate::Scope,
        Reason::DidNotOpen,
    );

    // Gate 4: a debug container injected after the session started stops the next unwrap.
    let debugger = ContainerImage {
        name: "debugger".into(),
        image: "busybox:1.36".into(),
        digest: Some(digest('d')),
        env: Default::default(),
    };
    w.handle
        .add_ephemeral_container("shop", "api-0", &debugger)
        .unwrap();
    w.until_view(|answer| matches!(answer, ViewAnswer::Present(f) if f.containers.len() == 2))
        .await;
    assert_refused(
        w.unwrap(&pod, &session, &capsule).await,
        Gate::LivePod,
        Reason::DebugContainerNotApproved,
    );

    // Gate 4: the pod recreated under the same name has another uid than the token's.
    w.handle.recreate_pod("shop", "api-0").unwrap();
    w.handle.mark_running("shop", "api-0").unwrap();
    w.until_view(|answer| matches!(answer, ViewAnswer::Present(f) if f.is_running() && f.containers.len() == 1)).await;
    // The old pod's token (still unexpired) cannot open a session for the new pod...
    assert_refused(
        w.session(&pod, API_KEY).await,
        Gate::LivePod,
        Reason::PodUidMismatch,
    );
    // ...and the old session was revoked when the view saw the uid change.
    w.until_revoked(&session).await;
    assert_refused(
        w.unwrap(&pod, &session, &capsule).await,
        Gate::Dpop,
        Reason::SessionRevoked,
    );
    // And deleted: not found.
    w.handle.delete_pod("shop", "api-0").unwrap();
    w.until_view(|answer| *answer == ViewAnswer::Absent).await;
    assert_refused(
        w.session(&pod, API_KEY).await,
        Gate::LivePod,
        Reason::PodNotFound,
    );

    // Gate 1 again: a revoked key.
    w.storage.revoke_api_key("key-shop", now()).await.unwrap();
    assert_refused(
        w.session(&pod, API_KEY).await,
        Gate::ApiKey,
        Reason::ApiKeyRevoked,
    );

    // Every decision above is in the audit log, and the log verifies.
    // (Revocations may still be appending: the export ends at the checkpoint it signs.)
    let key = AuditKey::generate().unwrap();
    let public_key = key.public_key();
    let log = podseal_server::audit_log::AuditLog::new(
        w.storage.clone(),
        key,
        podseal_core::audit::LogOrigin::new("test").unwrap(),
    );
    let export: Vec<String> = log
        .export()
        .await
        .unwrap()
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect();
    let text = export.join("\n");
    let report = verify_export(&text, &public_key, None).unwrap();
    assert!(report.records >= 18, "{report:?}");
    for reason in [
        Reason::ApiKeyUnknown,
        Reason::PodKeyAlreadyPinned,
        Reason::JtiReplayed,
        Reason::NamespaceMismatch,
        Reason::DebugContainerNotApproved,
        Reason::PodUidMismatch,
        Reason::PodNotFound,
        Reason::ApiKeyRevoked,
    ] {
        assert!(
            text.contains(&format!("\\\"reason\\\":\\\"{reason}\\\"")),
            "no audit record for {reason}"
        );
    }
    assert!(
        !text.contains(std::str::from_utf8(SECRET).unwrap())
            && !text.contains(&pod.token)
            && !text.contains(API_KEY)
            && !text.contains(&session),
        "secret material in the audit log"
    );
}

/// Sends one request to the router in-process.
/// Sends a request made by the SDK's request builder through the router.
async fn call_signed(
    app: &axum::Router,
    request: &SignedRequest,
) -> (u16, http::HeaderMap, serde_json::Value) {
    call(
        app,
        "POST",
        request.path(),
        &request.headers(),
        "application/json",
        request.body().to_vec(),
    )
    .await
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: Vec<u8>,
) -> (u16, http::HeaderMap, serde_json::Value) {
    use tower::ServiceExt as _;
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(axum::body::Body::from(body)).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (parts.status.as_u16(), parts.headers, json)
}

#[tokio::test]
async fn the_http_api_releases_and_answers_refusals_with_problem_json() {
    use base64::Engine as _;
    use podseal_server::api::{self, API_KEY_HEADER, SessionAnswer, TOKEN_HEADER, UnwrapAnswer};
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let w = world().await;
    let app = w.app();
    let pod = w.pod();
    let capsule = w.capsule("shop", "api");
    let json = "application/json";

    let (proof, _) = pod
        .dpop
        .proof(&ProofFor {
            htm: "POST",
            htu: &format!("{URL}/v1/sessions"),
            iat: now(),
            access_token: None,
            nonce: None,
        })
        .unwrap();
    let body = serde_json::to_vec(
        &serde_json::json!({ "recipient_key": b64(pod.recipient.public_key_bytes()) }),
    )
    .unwrap();
    let headers = [
        (API_KEY_HEADER, API_KEY),
        (TOKEN_HEADER, pod.token.as_str()),
        ("dpop", proof.as_str()),
    ];
    let (status, _, answer) =
        call(&app, "POST", "/v1/sessions", &headers, json, body.clone()).await;
    assert_eq!(status, 201, "{answer}");
    let session: SessionAnswer = serde_json::from_value(answer).unwrap();

    let unwrap_body = |capsules: Vec<String>| {
        serde_json::to_vec(&serde_json::json!({ "capsules": capsules })).unwrap()
    };
    let proof_for_unwrap = || {
        pod.dpop
            .proof(&ProofFor {
                htm: "POST",
                htu: &format!("{URL}/v1/unwrap"),
                iat: now(),
                access_token: Some(&session.session_id),
                nonce: None,
            })
            .unwrap()
            .0
    };
    let authorization = format!("DPoP {}", session.session_id);
    let proof = proof_for_unwrap();
    let headers = [
        (API_KEY_HEADER, API_KEY),
        (TOKEN_HEADER, pod.token.as_str()),
        ("dpop", proof.as_str()),
        ("authorization", authorization.as_str()),
    ];
    let (status, _, answer) = call(
        &app,
        "POST",
        "/v1/unwrap",
        &headers,
        json,
        unwrap_body(vec![b64(&capsule.envelope.to_bytes())]),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let answer: UnwrapAnswer = serde_json::from_value(answer).unwrap();
    let decode = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap()
    };
    let released = podseal_core::envelope::ReleasedDek {
        enc: decode(&answer.releases[0].enc),
        wrapped_dek: decode(&answer.releases[0].wrapped_dek),
    };
    let binding = ReleaseBinding {
        session_id: &session.session_id,
        jti: &answer.releases[0].jti,
    };
    let dek = envelope::open_release(
        &released,
        &pod.recipient,
        capsule.envelope.header_bytes(),
        binding,
    )
    .unwrap();
    assert_eq!(
        envelope::decrypt_content(&capsule, &dek)
            .unwrap()
            .expose_secret_bytes(),
        SECRET
    );

    // Refusals, each as problem+json with its gate and reason.
    let replayed = [
        (API_KEY_HEADER, API_KEY),
        (TOKEN_HEADER, pod.token.as_str()),
        ("dpop", proof.as_str()),
        ("authorization", authorization.as_str()),
    ];
    let fresh = proof_for_unwrap();
    let two_proofs = [
        (API_KEY_HEADER, API_KEY),
        (TOKEN_HEADER, pod.token.as_str()),
        ("dpop", fresh.as_str()),
        ("dpop", fresh.as_str()),
        ("authorization", authorization.as_str()),
    ];
    let fresh2 = proof_for_unwrap();
    let ok_headers = [
        (API_KEY_HEADER, API_KEY),
        (TOKEN_HEADER, pod.token.as_str()),
        ("dpop", fresh2.as_str()),
        ("authorization", authorization.as_str()),
    ];
    let no_key = [
        (TOKEN_HEADER, pod.token.as_str()),
        ("dpop", fresh2.as_str()),
    ];
    let envelope_only = b64(&capsule.envelope.to_bytes());
    /// Path, headers, content type, body, then the expected status, gate and reason.
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a str,
        Vec<u8>,
        u16,
        Gate,
        Reason,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "/v1/unwrap",
            &replayed,
            json,
            unwrap_body(vec![envelope_only.clone()]),
            401,
            Gate::Dpop,
            Reason::JtiReplayed,
        ),
        (
            "/v1/unwrap",
            &two_proofs,
            json,
            unwrap_body(vec![envelope_only.clone()]),
            400,
            Gate::Dpop,
            Reason::DpopHeaderCount,
        ),
        (
            "/v1/unwrap",
            &ok_headers,
            json,
            unwrap_body(vec![b64(&capsule.to_bytes())]),
            400,
            Gate::Request,
            Reason::ContentCiphertextPresent,
        ),
        (
            "/v1/unwrap",
            &ok_headers,
            json,
            serde_json::to_vec(
                &serde_json::json!({ "capsules": [envelope_only], "ciphertext": "AAAA" }),
            )
            .unwrap(),
            400,
            Gate::Request,
            Reason::MalformedBody,
        ),
        (
            "/v1/unwrap",
            &ok_headers,
            json,
            b"{not json".to_vec(),
            400,
            Gate::Request,
            Reason::MalformedBody,
        ),
        (
            "/v1/unwrap",
            &ok_headers,
            json,
            vec![b' '; api::MAX_BODY_BYTES + 1],
            413,
            Gate::Request,
            Reason::BodyTooLarge,
        ),
        (
            "/v1/unwrap",
            &ok_headers,
            "text/plain",
            b"{}".to_vec(),
            415,
            Gate::Request,
            Reason::UnsupportedMediaType,
        ),
        (
            "/v1/sessions",
            &no_key,
            json,
            body.clone(),
            401,
            Gate::ApiKey,
            Reason::ApiKeyMissing,
        ),
        (
            "/v1/nothing",
            &no_key,
            json,
            b"{}".to_vec(),
            404,
            Gate::Request,
            Reason::NotFound,
        ),
    ];
    for (path, headers, content_type, body, status, gate, reason) in cases {
        let (got, response_headers, problem) =
            call(&app, "POST", path, headers, content_type, body).await;
        assert_eq!(
            (got, problem["gate"].as_str(), problem["reason"].as_str()),
            (status, Some(gate.code()), Some(reason.code())),
            "{problem}"
        );
        assert_eq!(response_headers["content-type"], "application/problem+json");
        assert_eq!(problem["status"], status);
        let text = problem.to_string();
        assert!(
            !text.contains(&pod.token)
                && !text.contains(API_KEY)
                && !text.contains(&session.session_id),
            "secret in a problem: {text}"
        );
        if gate == Gate::Dpop && status == 401 {
            assert!(
                response_headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("DPoP error=\"invalid_dpop_proof\"")
            );
        }
    }

    let (status, _, health) = call(&app, "GET", "/healthz", &[], json, Vec::new()).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, _, ready) = call(&app, "GET", "/readyz", &[], json, Vec::new()).await;
    assert_eq!(
        (status, ready["ready"].as_bool()),
        (200, Some(true)),
        "{ready}"
    );
    w.cluster.dev.handle().pause();
    w.until_view(|answer| matches!(answer, ViewAnswer::Unknown { .. }))
        .await;
    let (status, _, ready) = call(&app, "GET", "/readyz", &[], json, Vec::new()).await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["not_ready"][0]
            .as_str()
            .unwrap()
            .starts_with("cluster prod:"),
        "{ready}"
    );
}

#[tokio::test]
async fn deleting_the_pod_revokes_its_session() {
    let w = world().await;
    let pod = w.pod();
    let session = w.session(&pod, API_KEY).await.unwrap();
    let stored = w.storage.session(&session).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, None);

    w.handle.delete_pod("shop", "api-0").unwrap();
    w.until_revoked(&session).await;
    assert_refused(
        w.unwrap(&pod, &session, &w.capsule("shop", "api")).await,
        Gate::Dpop,
        Reason::SessionRevoked,
    );
    let export = w.storage.audit_export().await.unwrap();
    assert!(export.iter().any(|line| {
        serde_json::to_string(line)
            .unwrap()
            .contains(Reason::SessionRevoked.code())
    }));
}

/// Every audit record so far, parsed.
async fn audit_records(w: &World) -> Vec<podseal_core::audit::AuditRecord> {
    w.storage
        .audit_export()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|line| match line {
            podseal_core::audit::ExportLine::Record { entry, .. } => {
                Some(serde_json::from_str(&entry).unwrap())
            }
            _ => None,
        })
        .collect()
}

/// The `session` records, as (outcome, reason, enrolment detail).
async fn enrolments(w: &World) -> Vec<(String, Option<Reason>, Option<String>)> {
    audit_records(w)
        .await
        .into_iter()
        .filter(|r| r.event == Event::Session)
        .map(|r| {
            (
                serde_json::to_value(r.outcome)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned(),
                r.reason,
                r.details.get("enrolment").cloned(),
            )
        })
        .collect()
}

/// Issue 14 §1: a container restart (a new `containerID`, as the pod view
/// shows it) ends the old instance's pin and session, and the restarted
/// process enrols its new key; while the instance that enrolled runs, a
/// second key is still refused; each step is audited.
#[tokio::test]
async fn a_restarted_container_enrols_afresh_and_its_old_session_ends() {
    let w = world().await;
    let capsule = w.capsule("shop", "api");
    let first = w.pod();
    let session = w.session(&first, API_KEY).await.unwrap();
    let stored = w.storage.session(&session).await.unwrap().unwrap();
    assert_eq!(stored.container, "api");
    assert!(
        stored.container_id.starts_with("containerd://"),
        "{stored:?}"
    );

    // The stolen-credential case: the instance still runs.
    let thief = w.pod();
    assert_refused(
        w.session(&thief, API_KEY).await,
        Gate::Dpop,
        Reason::PodKeyAlreadyPinned,
    );

    // The container restarts: the view sees the instance end, and its
    // pin and session go at that moment (not at the session's expiry).
    w.handle.restart_container("shop", "api-0", "api").unwrap();
    w.until_revoked(&session).await;
    assert_refused(
        w.unwrap(&first, &session, &capsule).await,
        Gate::Dpop,
        Reason::SessionRevoked,
    );
    // Had the revocation been missed (a lost watch event), the unwrap's own
    // check of the instance still refuses.
    let raw = rusqlite::Connection::open(w.cluster.dir.path().join("podseal.db")).unwrap();
    raw.execute("UPDATE sessions SET revoked_at = NULL", [])
        .unwrap();
    assert_refused(
        w.unwrap(&first, &session, &capsule).await,
        Gate::LivePod,
        Reason::ContainerRestarted,
    );
    let restarted = w.pod();
    let new_session = w.session(&restarted, API_KEY).await.unwrap();
    assert_eq!(
        w.unwrap(&restarted, &new_session, &capsule).await.unwrap(),
        SECRET
    );
    let new_stored = w.storage.session(&new_session).await.unwrap().unwrap();
    assert_ne!(new_stored.container_id, stored.container_id);

    let records = audit_records(&w).await;
    let revoked = records
        .iter()
        .find(|r| r.event == Event::SessionRevoked && r.reason == Some(Reason::ContainerRestarted))
        .expect("the restart's revocation is audited");
    assert_eq!(revoked.details["container"], "api");
    assert_eq!(revoked.details["container_id"], stored.container_id);
    assert_eq!(revoked.details["sessions_revoked"], "1");
    let kinds = enrolments(&w).await;
    assert_eq!(
        kinds,
        [
            ("allowed".into(), None, Some("pinned".into())),
            ("refused".into(), Some(Reason::PodKeyAlreadyPinned), None),
            ("allowed".into(), None, Some("pinned".into())),
        ]
    );
}

/// A restarted container's process runs before the kubelet reports its new
/// instance: its request waits (bounded) for the view to show it, and then
/// replaces the old instance's pin, ending that instance's session.
#[tokio::test]
async fn a_restart_the_api_server_has_not_shown_yet_is_waited_for() {
    let w = world().await;
    let first = w.pod();
    let session = w.session(&first, API_KEY).await.unwrap();
    let restarted = w.pod();
    let (answer, ()) = tokio::join!(w.session(&restarted, API_KEY), async {
        // Only once the request waits does the kubelet's report arrive.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while w.view.waiting() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the request never waited"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        w.handle.restart_container("shop", "api-0", "api").unwrap();
    });
    let new_session = answer.unwrap();
    assert_eq!(
        w.unwrap(&restarted, &new_session, &w.capsule("shop", "api"))
            .await
            .unwrap(),
        SECRET
    );
    w.until_revoked(&session).await;
    let kinds = enrolments(&w).await;
    // The pin is replaced in the request's transaction, or dropped by the
    // view's event first: either way the old session ended.
    assert!(
        matches!(
            kinds.as_slice(),
            [(_, None, Some(first)), (ok, None, Some(second))]
                if first == "pinned" && ok == "allowed" && (second == "after_restart" || second == "pinned")
        ),
        "{kinds:?}"
    );
}

/// Gate 4 is decided again on the answer a request waited for: a debug
/// container with an unapproved image that joined while it waited (with
/// the restart it waited for) refuses it, as it would any request.
#[tokio::test]
async fn the_answer_waited_for_passes_gate_4_again() {
    let w = world().await;
    w.session(&w.pod(), API_KEY).await.unwrap();
    let restarted = w.pod();
    let (answer, ()) = tokio::join!(w.session(&restarted, API_KEY), async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while w.view.waiting() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the request never waited"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let debugger = ContainerImage {
            name: "debugger".into(),
            image: "busybox:1.36".into(),
            digest: Some(digest('f')),
            env: Default::default(),
        };
        w.handle
            .add_ephemeral_container("shop", "api-0", &debugger)
            .unwrap();
        w.handle.restart_container("shop", "api-0", "api").unwrap();
    });
    assert_refused(answer, Gate::LivePod, Reason::DebugContainerNotApproved);
}

/// Two containers of one pod each run `podseal exec`: each declares
/// `PODSEAL_CONTAINER` and enrols its own key; a sidecar that declares
/// nothing is no slot for a thief; a request naming no container in such a
/// pod is refused with what to set.
#[tokio::test]
async fn two_containers_of_one_pod_each_enrol_their_own_key() {
    let w = world().await;
    let declared = |name: &str| ContainerImage {
        env: [("PODSEAL_CONTAINER".to_owned(), name.to_owned())].into(),
        ..support::api_pod("x").containers.remove(0)
    };
    let mut template = support::api_pod("multi-0");
    template.containers = vec![
        ContainerImage {
            name: "api".into(),
            ..declared("api")
        },
        ContainerImage {
            name: "worker".into(),
            ..declared("worker")
        },
        ContainerImage {
            name: "proxy".into(),
            ..support::api_pod("x").containers.remove(0)
        },
    ];
    w.handle.create_pod(&template).unwrap();
    w.handle.mark_running("shop", "multi-0").unwrap();
    let capsule = w.capsule("shop", "api");
    let api = w.process_in("multi-0", Some("api"));
    let worker = w.process_in("multi-0", Some("worker"));
    let mut sessions = Vec::new();
    for process in [&api, &worker] {
        // The pod may not be in the view's cache yet: the lookup GETs it.
        let session = w.session(process, API_KEY).await.unwrap();
        assert_eq!(w.unwrap(process, &session, &capsule).await.unwrap(), SECRET);
        sessions.push(session);
    }
    for (container, reason) in [
        (Some("proxy"), Reason::ContainerNotDeclared),
        (Some("nope"), Reason::ContainerUnknown),
        (None, Reason::ContainerRequired),
    ] {
        assert_refused(
            w.session(&w.process_in("multi-0", container), API_KEY)
                .await,
            Gate::LivePod,
            reason,
        );
    }
    // Each container's pin is its own: a second key in one is refused ...
    assert_refused(
        w.session(&w.process_in("multi-0", Some("api")), API_KEY)
            .await,
        Gate::Dpop,
        Reason::PodKeyAlreadyPinned,
    );
    // ... and restarting one ends that one's session only.
    w.handle
        .restart_container("shop", "multi-0", "worker")
        .unwrap();
    w.until_revoked(&sessions[1]).await;
    assert_eq!(
        w.unwrap(&api, &sessions[0], &capsule).await.unwrap(),
        SECRET
    );
    let again = w.process_in("multi-0", Some("worker"));
    let session = w.session(&again, API_KEY).await.unwrap();
    assert_eq!(w.unwrap(&again, &session, &capsule).await.unwrap(), SECRET);
}

/// A container that is not running (its process exited; the kubelet waits
/// to restart it) enrols nothing: the request waits for it, then is refused.
#[tokio::test]
async fn a_container_that_is_not_running_enrols_nothing() {
    let w = world().await;
    w.handle.stop_container("shop", "api-0", "api").unwrap();
    w.until_view(|answer| {
        matches!(answer, ViewAnswer::Present(f) if f.containers.iter().all(|c| c.running_id.is_none()))
    })
    .await;
    assert_refused(
        w.session(&w.pod(), API_KEY).await,
        Gate::LivePod,
        Reason::ContainerNotRunning,
    );
    // Started again while a request waits: that request enrols.
    let process = w.pod();
    let (answer, ()) = tokio::join!(w.session(&process, API_KEY), async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while w.view.waiting() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the request never waited"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        w.handle.start_container("shop", "api-0", "api").unwrap();
    });
    answer.unwrap();
}

/// Issue 14 §3: a cluster that rotated its token-signing key. Its pods' new
/// tokens are refused `kid_unknown` (the new key is never trusted by
/// itself), and the drift is reported: the key ids in `unpinned_kids`
/// (`cluster show`, the metric), a `/readyz` warning that does not make it
/// 503, and a refusal that names `cluster add --replace`.
#[tokio::test]
async fn a_rotated_token_signing_key_is_reported_and_never_trusted() {
    let w = world().await;
    let clusters = w.service.clusters();
    // Nothing to report while the published keys are the pinned ones.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let app = w.app();
    let (status, _, ready) =
        call(&app, "GET", "/readyz", &[], "application/json", Vec::new()).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["warnings"], serde_json::json!([]));

    let new_kid = w.handle.rotate_signing_key(true).unwrap();
    while clusters.unpinned_kids("prod") != [new_kid.clone()] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotation was never noticed: {:?}",
            clusters.unpinned_kids("prod")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refusal = w.session(&w.pod(), API_KEY).await.unwrap_err();
    assert_eq!(
        (refusal.gate, refusal.reason),
        (Gate::Token, Reason::KidUnknown)
    );
    assert!(
        refusal
            .detail
            .contains("podseal cluster add prod … --replace"),
        "{}",
        refusal.detail
    );
    let (status, _, ready) =
        call(&app, "GET", "/readyz", &[], "application/json", Vec::new()).await;
    assert_eq!(status, 200, "drift is a warning, not unreadiness: {ready}");
    let warning = ready["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains(&format!(
            "cluster prod signs tokens with key ids not pinned here ({new_kid})"
        )),
        "{warning}"
    );
}

/// A TLS client trusting exactly `leaf_pem`, offering `alpn` and `versions`.
fn tls_client(
    leaf_pem: &str,
    alpn: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(leaf_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn the_api_is_served_over_tls_13_with_http1_and_http2() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use podseal_https::{self as tls, TlsSource};
    let w = world().await;
    let tls = tls::load(&TlsSource::SelfSigned {
        names: vec!["localhost".into()],
    })
    .unwrap();
    assert_eq!(tls.fingerprint_sha256.len(), 32 * 3 - 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tls::serve_connections(
        listener,
        tls.config.clone(),
        w.app(),
        tls::ConnectionLimits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();

    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let stream = tls_client(&tls.leaf_pem, alpn, &[&rustls::version::TLS13])
            .connect(name.clone(), tcp)
            .await
            .unwrap();
        let (_, session) = stream.get_ref();
        assert_eq!(session.alpn_protocol(), Some(alpn));
        assert_eq!(
            session.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        let io = TokioIo::new(stream);
        let send = |path: &str, method: &str| {
            http::Request::builder()
                .method(method)
                .uri(format!("https://localhost{path}"))
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(axum::body::Bytes::from_static(
                    b"{\"capsules\":[]}",
                )))
                .unwrap()
        };
        let (health, refused) = if alpn == b"h2" {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let health = sender
                .send_request(send("/healthz", "GET"))
                .await
                .unwrap()
                .status();
            (
                health,
                sender
                    .send_request(send("/v1/unwrap", "POST"))
                    .await
                    .unwrap(),
            )
        } else {
            use http_body_util::BodyExt as _;
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            let response = sender.send_request(send("/healthz", "GET")).await.unwrap();
            let health = response.status();
            response.into_body().collect().await.unwrap();
            // Keep-alive: the second request goes over the same connection.
            (
                health,
                sender
                    .send_request(send("/v1/unwrap", "POST"))
                    .await
                    .unwrap(),
            )
        };
        assert_eq!(health, 200);
        assert_eq!(refused.status(), 401);
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
    }

    // A client that only speaks TLS 1.2 is refused.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(
        tls_client(&tls.leaf_pem, b"http/1.1", &[&rustls::version::TLS12])
            .connect(name, tcp)
            .await
            .is_err()
    );
    stop.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn rotating_the_dpop_key_needs_the_previous_keys_proof() {
    let w = world().await;
    let pod = w.pod();
    let session = w.session(&pod, API_KEY).await.unwrap();
    let capsule = w.capsule("shop", "api");
    let route = format!("{URL}/v1/sessions/rotate-key");
    let proof = |key: &DpopKey| {
        key.proof(&ProofFor {
            htm: "POST",
            htu: &route,
            iat: now(),
            access_token: Some(&session),
            nonce: None,
        })
        .unwrap()
        .0
    };
    let rotate = |old_proof: String, new_proof: String| {
        let service = w.service.clone();
        let (token, session) = (pod.token.clone(), session.clone());
        async move {
            service
                .rotate_key(
                    Credentials {
                        api_key: API_KEY,
                        token: &token,
                        dpop: &[&old_proof],
                    },
                    &session,
                    &new_proof,
                )
                .await
        }
    };
    let new_key = DpopKey::generate().unwrap();
    let attacker = DpopKey::generate().unwrap();

    // Without the previous key's proof: refused, and nothing moves.
    assert_refused(
        rotate(proof(&attacker), proof(&attacker)).await,
        Gate::Dpop,
        Reason::KeyNotPinned,
    );
    assert_refused(
        rotate(proof(&attacker), proof(&new_key)).await,
        Gate::Dpop,
        Reason::KeyNotPinned,
    );
    assert_eq!(
        w.unwrap(&pod, &session, &capsule).await.unwrap(),
        SECRET,
        "the old key still works"
    );
    // A replayed old-key proof cannot rotate either.
    let used = proof(&pod.dpop);
    assert_refused(
        rotate(used.clone(), proof(&pod.dpop)).await,
        Gate::Dpop,
        Reason::SameKey,
    );
    assert_refused(
        rotate(used, proof(&new_key)).await,
        Gate::Dpop,
        Reason::JtiReplayed,
    );

    // With it: the pin and the session move to the new key.
    let jkt = rotate(proof(&pod.dpop), proof(&new_key)).await.unwrap();
    assert_eq!(jkt, new_key.thumbprint());
    assert_eq!(
        w.unwrap_with(&pod, &new_key, &session, &capsule, true)
            .await
            .unwrap(),
        SECRET
    );
    assert_refused(
        w.unwrap(&pod, &session, &capsule).await,
        Gate::Dpop,
        Reason::KeyNotPinned,
    );
}

#[tokio::test]
async fn a_release_that_cannot_be_audited_is_refused() {
    let w = world().await;
    let pod = w.pod();
    let session = w.session(&pod, API_KEY).await.unwrap();
    let capsule = w.capsule("shop", "api");
    // The audit table stops accepting records (as a full disk would).
    let raw = rusqlite::Connection::open(w.cluster.dir.path().join("podseal.db")).unwrap();
    raw.execute_batch("CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full'); END;").unwrap();
    assert_refused(
        w.unwrap(&pod, &session, &capsule).await,
        Gate::Request,
        Reason::AuditUnavailable,
    );
    let fresh_pod = Pod {
        dpop: DpopKey::generate().unwrap(),
        ..w.pod()
    };
    assert_refused(
        w.session(&fresh_pod, API_KEY).await,
        Gate::Request,
        Reason::AuditUnavailable,
    );
    // A session that passes every gate (the pinned key again) is refused
    // too: its grant is never answered unaudited.
    assert_refused(
        w.session(&pod, API_KEY).await,
        Gate::Request,
        Reason::AuditUnavailable,
    );
    // Once records can be written again, releases resume.
    raw.execute_batch("DROP TRIGGER audit_down;").unwrap();
    assert_eq!(w.unwrap(&pod, &session, &capsule).await.unwrap(), SECRET);
}

/// An admin change is audited before it is made: when its record cannot be
/// written it is refused and not made (the policy keeps its digests, no API
/// key appears, the cluster stays registered), and it is made once records
/// can be written again.
#[tokio::test]
async fn an_admin_change_that_cannot_be_audited_is_not_made() {
    use podseal_core::wire::admin::{ApiKeyRequest, PolicyRequest};
    let w = world().await;
    let admin = podseal_server::admin::AdminService::new(
        w.service.clone(),
        Arc::new(podseal_server::audit_log::AuditLog::new(
            w.storage.clone(),
            AuditKey::generate().unwrap(),
            podseal_core::audit::LogOrigin::new("test").unwrap(),
        )),
    );
    let policy = PolicyRequest {
        cluster: "prod".into(),
        namespace: "shop".into(),
        service_account: "api".into(),
        digests: vec![digest('b')],
        audit_mode: false,
        require_nonce: false,
    };
    let api_key = ApiKeyRequest {
        cluster: "prod".into(),
        namespace: "shop".into(),
        service_account: "api".into(),
    };
    let keys_before = w.storage.api_keys().await.unwrap().len();
    let raw = rusqlite::Connection::open(w.cluster.dir.path().join("podseal.db")).unwrap();
    raw.execute_batch("CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full'); END;").unwrap();
    let unaudited = |result: Result<(), Refusal>| {
        let refusal = result.expect_err("an unaudited admin change was made");
        assert_eq!(
            (refusal.gate, refusal.reason),
            (Gate::Request, Reason::AuditUnavailable)
        );
    };
    unaudited(admin.set_policy(policy.clone()).await.map(|_| ()));
    unaudited(admin.create_api_key(api_key.clone()).await.map(|_| ()));
    unaudited(admin.remove_cluster("prod").await.map(|_| ()));
    let digests = |policies: Vec<PolicyRecord>| -> Vec<String> {
        policies
            .into_iter()
            .find(|p| p.namespace == "shop")
            .map(|p| p.digests)
            .unwrap_or_default()
    };
    assert_eq!(digests(w.storage.policies().await.unwrap()), [digest('a')]);
    assert_eq!(w.storage.api_keys().await.unwrap().len(), keys_before);
    assert!(w.storage.cluster("prod").await.unwrap().is_some());

    raw.execute_batch("DROP TRIGGER audit_down;").unwrap();
    admin.set_policy(policy).await.unwrap();
    admin.create_api_key(api_key).await.unwrap();
    assert_eq!(digests(w.storage.policies().await.unwrap()), [digest('b')]);
    assert_eq!(w.storage.api_keys().await.unwrap().len(), keys_before + 1);
}

/// Claims, over the HTTP API: today's server verifies Kubernetes identities
/// only, so a capsule whose scope is `spiffe` or `oidc` is refused by name
/// (403, gate `scope`, `scope_kind_unsupported`, the kind in the detail)
/// before any stanza is opened — its stanza is for this server's own org
/// key — and each refusal is audited with that reason. A capsule with a
/// stanza of an unknown kind beside its hpke stanza is released and opens
/// in the pod; one with only unknown kinds is refused as
/// `no_known_stanza_kind`.
#[tokio::test]
async fn scope_kinds_and_stanza_kinds_through_the_http_api() {
    use std::collections::BTreeMap;

    use podseal_core::capsule::{OidcScope, SpiffeScope, Stanza, UnknownStanza};
    use podseal_server::api::{SessionAnswer, UnwrapAnswer};
    let w = world().await;
    let app = w.app();
    let pod = w.pod();

    let endpoint = Endpoint::new(URL);
    let credentials = protocol::Credentials {
        api_key: API_KEY,
        token: &pod.token,
    };
    let fresh = || Freshness {
        iat: now(),
        nonce: None,
    };
    let request = endpoint
        .session(
            credentials,
            &pod.dpop,
            pod.recipient.public_key_bytes(),
            fresh(),
        )
        .unwrap();
    let (status, _, answer) = call_signed(&app, &request).await;
    assert_eq!(status, 201, "{answer}");
    let session: SessionAnswer = serde_json::from_value(answer).unwrap();
    let session = SessionInfo {
        id: session.session_id,
        expires_at: session.expires_at,
    };
    let unwrap_pending = async |capsule: &Capsule| {
        let pending = endpoint
            .unwrap(
                credentials,
                &pod.dpop,
                &session,
                &[&capsule.envelope],
                fresh(),
            )
            .unwrap();
        let (status, headers, answer) = call_signed(&app, pending.request()).await;
        (pending, status, headers, answer)
    };
    let unwrap = async |capsule: &Capsule| {
        let (_, status, headers, answer) = unwrap_pending(capsule).await;
        (status, headers, answer)
    };
    let sealed =
        |scope: Scope| envelope::seal(seal_params(scope), SECRET, &[w.org.public()]).unwrap();
    let with_stanzas = |capsule: &Capsule, stanzas: Vec<Stanza>| Capsule {
        envelope: capsule.envelope.with_stanzas(stanzas).unwrap(),
        ..capsule.clone()
    };
    let unknown = |kind: u8| {
        Stanza::Unknown(UnknownStanza {
            kind,
            body: b"a wrap from a future podseal".to_vec(),
        })
    };

    // An unknown stanza kind beside the hpke stanza: released, opens in the pod.
    let capsule = w.capsule("shop", "api");
    let mixed = with_stanzas(
        &capsule,
        vec![unknown(0x7f), capsule.envelope.stanzas()[0].clone()],
    );
    let (pending, status, _, answer) = unwrap_pending(&mixed).await;
    assert_eq!(status, 200, "{answer}");
    let answer: UnwrapAnswer = serde_json::from_value(answer).unwrap();
    let deks = pending.open(&answer, &pod.recipient).unwrap();
    assert_eq!(
        envelope::decrypt_content(&mixed, &deks[0])
            .unwrap()
            .expose_secret_bytes(),
        SECRET
    );

    // Only unknown kinds: refused with their own reason.
    let only_unknown = with_stanzas(&capsule, vec![unknown(0x7f), unknown(0x80)]);
    let (status, _, problem) = unwrap(&only_unknown).await;
    assert_eq!(
        (status, problem["gate"].as_str(), problem["reason"].as_str()),
        (403, Some("scope"), Some("no_known_stanza_kind")),
        "{problem}"
    );

    // A spiffe or an oidc scope: refused by name, before any stanza is opened.
    let spiffe = sealed(Scope::Spiffe(SpiffeScope {
        trust_domain: "prod.example".into(),
        ids: vec!["spiffe://prod.example/ns/shop/sa/api".into()],
    }));
    let oidc = sealed(Scope::Oidc(OidcScope {
        issuer: "https://token.actions.githubusercontent.com".into(),
        claims: BTreeMap::from([("repository".into(), vec!["octo/shop".into()])]),
    }));
    // Its stanza altered: opening would refuse with `did_not_open`, so the
    // scope's refusal shows no stanza was opened first.
    let mut stanzas = spiffe.envelope.stanzas().to_vec();
    let Stanza::Hpke(stanza) = &mut stanzas[0] else {
        panic!("sealing writes hpke stanzas")
    };
    stanza.wrapped_dek[0] ^= 1;
    let spiffe_altered = with_stanzas(&spiffe, stanzas);
    let org_ring = KeyRing::from(OrgPrivateKey::from_text(&w.org.to_text()).unwrap());
    for (capsule, kind, opens) in [
        (&spiffe, "spiffe", true),
        (&oidc, "oidc", true),
        (&spiffe_altered, "spiffe", false),
    ] {
        // Sealed to this server's key: only the scope refuses the intact ones.
        assert_eq!(envelope::open(capsule, &org_ring).is_ok(), opens);
        let (status, headers, problem) = unwrap(capsule).await;
        assert_eq!(
            (status, problem["gate"].as_str(), problem["reason"].as_str()),
            (403, Some("scope"), Some("scope_kind_unsupported")),
            "{problem}"
        );
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(
            problem["detail"],
            format!(
                "this capsule's scope is {kind}; this server verifies kubernetes identities only"
            )
        );
    }

    // Each refusal is audited with its reason, naming the capsule.
    let export: Vec<String> = w
        .storage
        .audit_export()
        .await
        .unwrap()
        .iter()
        .map(|line| serde_json::to_string(line).unwrap())
        .collect();
    for (capsule, reason) in [
        (&spiffe, "scope_kind_unsupported"),
        (&oidc, "scope_kind_unsupported"),
        (&only_unknown, "no_known_stanza_kind"),
    ] {
        let id = &capsule.header().id;
        assert!(
            export.iter().any(|line| line.contains(reason)
                && line.contains(id.as_str())
                && line.contains("unwrap")),
            "no audit record of {reason} for capsule {id}"
        );
    }
}

/// Issue 21 §2: every session and release record carries the token's `jti`
/// as the API server's audit log names it (`credential_id`, `JTI=<uuid>`)
/// and the node it names, so an auditor can join the two logs; a token (a
/// valid signature, the pod's uid) that names another node than the one the
/// live pod runs on is refused by gate 2 as `node_mismatch`, and audited.
#[tokio::test]
async fn the_token_node_and_jti_bind_and_are_audited() {
    let w = world().await;
    let (token, claims) = w
        .handle
        .issue_token("shop", "api", &["podseal".into()], 600, Some("api-0"))
        .unwrap();
    let node = claims.kubernetes_io.node.clone().unwrap();
    assert_eq!(node.name, "dev-node-1");
    let pod = Pod { token, ..w.pod() };
    let session = w.session(&pod, API_KEY).await.unwrap();
    assert_eq!(
        w.unwrap(&pod, &session, &w.capsule("shop", "api"))
            .await
            .unwrap(),
        SECRET
    );

    // The same claims, signed by the cluster's key, naming another node.
    let mut moved = serde_json::to_value(&claims).unwrap();
    moved["kubernetes.io"]["node"]["name"] = "dev-node-2".into();
    let kid = w.handle.jwks().keys[0].kid.clone();
    let forged = w
        .handle
        .sign_raw(&serde_json::json!({ "alg": "RS256", "kid": kid }), &moved)
        .unwrap();
    let elsewhere = Pod {
        token: forged,
        ..w.pod()
    };
    assert_refused(
        w.session(&elsewhere, API_KEY).await,
        Gate::Token,
        Reason::NodeMismatch,
    );

    let credential = format!("JTI={}", claims.jti);
    let records = audit_records(&w).await;
    let of_token: Vec<_> = records
        .iter()
        .filter(|r| r.details.get("credential_id") == Some(&credential))
        .map(|r| {
            (
                r.event.as_str(),
                r.reason,
                r.details.get("node").cloned(),
                r.details.get("node_uid").cloned(),
            )
        })
        .collect();
    let on = |event, reason, node_name: &str| {
        (
            event,
            reason,
            Some(node_name.to_owned()),
            Some(node.uid.clone()),
        )
    };
    // The forged token kept the jti it was copied from.
    assert_eq!(
        of_token,
        vec![
            on("session", None, "dev-node-1"),
            on("unwrap", None, "dev-node-1"),
            on("session", Some(Reason::NodeMismatch), "dev-node-2"),
        ]
    );
}

/// The unwrap's audit record names the Secret and key whose value was
/// released (the header's `name` and `key`), beside the capsule id.
#[tokio::test]
async fn an_unwrap_record_names_the_secret_and_key_it_released() {
    let w = world().await;
    let pod = w.pod();
    let keyed = w.capsule_of_key("shop", "api", Some("password"));
    let keyless = w.capsule("shop", "api");
    let session = w.session(&pod, API_KEY).await.unwrap();
    assert_eq!(w.unwrap(&pod, &session, &keyed).await.unwrap(), SECRET);
    assert_eq!(w.unwrap(&pod, &session, &keyless).await.unwrap(), SECRET);
    let released: Vec<(String, Option<String>, Option<String>)> = audit_records(&w)
        .await
        .into_iter()
        .filter(|r| r.event == Event::Unwrap)
        .map(|r| {
            (
                r.details["capsule"].clone(),
                r.details.get("secret").cloned(),
                r.details.get("secret_key").cloned(),
            )
        })
        .collect();
    assert_eq!(
        released,
        [
            (
                keyed.header().id.clone(),
                Some("db".to_owned()),
                Some("password".to_owned())
            ),
            (keyless.header().id.clone(), Some("db".to_owned()), None),
        ]
    );
}

/// Time moves by the injected clock, without sleeping (issue 23 §9): a
/// capsule is refused the moment the clock passes its not-after while one
/// without a deadline still opens, and the session ends at its expiry.
#[tokio::test]
async fn capsules_and_sessions_expire_by_the_injected_clock() {
    let started = now();
    let clock = ManualClock::at(started);
    let w = world_with(
        ReleaseConfig {
            // Shorter than the pod's token (600 s): the session's own expiry.
            max_session_secs: 60,
            ..release_config()
        },
        clock.clone(),
    )
    .await;
    let pod = w.pod();
    // The clock catches up with the wall clock the token was issued by.
    let base = now();
    clock.advance(Duration::from_secs(u64::try_from(base - started).unwrap()));
    let session = w.session(&pod, API_KEY).await.unwrap();
    let lasting = w.capsule("shop", "api");
    let mut dated = w.capsule("shop", "api");
    let scope = dated.envelope.header().scope.clone();
    dated = envelope::seal(
        SealParams {
            created_at: base,
            not_after: Some(base + 30),
            ..seal_params(scope)
        },
        SECRET,
        &[w.org.public()],
    )
    .unwrap();
    assert_eq!(w.unwrap(&pod, &session, &dated).await.unwrap(), SECRET);

    clock.advance(Duration::from_secs(31));
    assert_refused(
        w.unwrap(&pod, &session, &dated).await,
        Gate::Scope,
        Reason::CapsuleExpired,
    );
    assert_eq!(w.unwrap(&pod, &session, &lasting).await.unwrap(), SECRET);

    clock.advance(Duration::from_secs(30));
    assert_refused(
        w.unwrap(&pod, &session, &lasting).await,
        Gate::Dpop,
        Reason::SessionExpired,
    );
}
