//! `podseal-dev demo`: the whole system on this machine in a few seconds — the
//! Kubernetes stand-in, the release server on SQLite in a temporary
//! directory, an org key, a sealed `Secret`, a pod that opens it through
//! the four gates — then the attacks of the security model, each refused
//! by the gate the server names, and the audit log verified. Exits 1 if any
//! step misbehaves (an attack that succeeds is a failure).

use podseal_command::outln;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::Method;
use podseal_core::audit::{parse_public_key, verify_export};
use podseal_core::capsule::{Capsule, KubernetesScope, RevealMode, Scope, SecretSlot};
use podseal_core::clock::{Clock as _, SystemClock};
use podseal_core::dpop::DpopKey;
use podseal_core::envelope::{self, SealParams};
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey as _};
use podseal_core::org_key::OrgPrivateKey;
use podseal_core::reason::Reason;
use podseal_core::wire::Problem;
use podseal_core::wire::admin::{ApiKeyRequest, ClusterRequest, PolicyRequest, ReaderToken};
use podseal_dev_cluster::{
    Config as ClusterConfig, ContainerImage, DevCluster, Handle, ImageVolume, PodTemplate,
};
use podseal_keys::key_file::write_new;
use podseal_sdk::admin::AdminClient;
use podseal_sdk::client::{Client, ClientConfig, Origin, SdkError};
use podseal_sdk::https::{Answer, HttpsClient, Trust};
use podseal_sdk::protocol::{
    self, Credentials, Endpoint, Freshness, PendingUnwrap, SessionInfo, SignedRequest,
};
use podseal_server::config::ServerConfig;
use podseal_server::pod_view::{PodView, ViewAnswer};
use podseal_server::startup::{Running, start};
use podseal_server::storage::ReleaseStore as _;
use serde::Serialize;

use podseal_command::CliError;
use podseal_command::output::{OutputFormat, counted};

const SECRET: &[u8] = b"postgres://shop:s3cr3t-hunter2@db.shop.svc/shop";

/// One step of the demo.
#[derive(Debug, Serialize)]
struct Step {
    title: String,
    /// `passed` (the legitimate path worked), `refused` (an attack was
    /// refused as expected), or `FAILED`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    gate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    detail: String,
    millis: u128,
}

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    steps: Vec<Step>,
    summary: String,
}

struct Printer {
    json: bool,
    colour: bool,
    steps: Vec<Step>,
    /// The first failed write to stdout (a closed pipe): nothing more is
    /// printed, the demo finishes its steps, and this is its result.
    unprinted: Option<CliError>,
}

impl Printer {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn say(&mut self, text: &str) {
        if !self.json {
            self.line(format_args!("{text}"));
        }
    }

    /// Prints a line for people, until stdout fails once.
    fn line(&mut self, text: std::fmt::Arguments<'_>) {
        if self.unprinted.is_none()
            && let Err(error) = outln!("{text}")
        {
            self.unprinted = Some(error);
        }
    }

    fn record(&mut self, step: Step) {
        if !self.json {
            let mark = match step.outcome {
                "passed" => self.paint("32", "✓ passed "),
                "refused" => self.paint("32", "✓ refused"),
                _ => self.paint("31;1", "✗ FAILED "),
            };
            let code = match (&step.gate, &step.reason) {
                (Some(gate), Some(reason)) => format!(" [{gate}/{reason}]"),
                _ => String::new(),
            };
            self.line(format_args!(
                "  {mark} {}{code} ({} ms)",
                step.title, step.millis
            ));
            if !step.detail.is_empty() {
                self.line(format_args!("             {}", step.detail));
            }
        }
        self.steps.push(step);
    }

    /// Records an attack: it must be refused with `reason`.
    fn attack(
        &mut self,
        title: &str,
        expected_reason: Reason,
        started: Instant,
        result: Result<(), (String, String, String)>,
    ) {
        self.attack_refused_as(title, expected_reason.code(), started, result);
    }

    /// Records an attack: it must be refused with the reason code `expected`.
    fn attack_refused_as(
        &mut self,
        title: &str,
        expected: &str,
        started: Instant,
        result: Result<(), (String, String, String)>,
    ) {
        let millis = started.elapsed().as_millis();
        let step = match result {
            Err((gate, reason, detail)) => Step {
                title: title.to_owned(),
                outcome: if reason == expected {
                    "refused"
                } else {
                    "FAILED"
                },
                gate: Some(gate),
                reason: Some(reason),
                detail,
                millis,
            },
            Ok(()) => Step {
                title: title.to_owned(),
                outcome: "FAILED",
                gate: None,
                reason: None,
                detail: "the attack SUCCEEDED".into(),
                millis,
            },
        };
        self.record(step);
    }
}

/// The reason code the demo shows for a capsule found in another Secret or
/// key than its header names (refused by the pod side, not a gate).
const SECRET_MISMATCH: &str = "secret_mismatch";

fn failed(why: impl std::fmt::Display) -> CliError {
    CliError::failure(format!("the demo could not run: {why}"))
}

/// The refusal of an SDK call, as (gate, reason, detail).
fn sdk_refusal<T>(result: Result<T, SdkError>) -> Result<(), (String, String, String)> {
    match result {
        Ok(_) => Ok(()),
        Err(SdkError::Refused {
            gate,
            reason,
            detail,
            ..
        }) => Err((gate.to_string(), reason.to_string(), detail)),
        // Refused in the pod, before any request (`Origin::Secret`).
        Err(misplaced @ SdkError::Misplaced { .. }) => {
            Err(("pod".into(), SECRET_MISMATCH.into(), misplaced.to_string()))
        }
        Err(other) => Err(("client".into(), "error".into(), other.to_string())),
    }
}

/// The refusal of a raw answer, as (gate, reason, detail).
fn answer_refusal(answer: &Answer) -> Result<(), (String, String, String)> {
    if answer.status.is_success() {
        return Ok(());
    }
    let problem: Problem = serde_json::from_slice(&answer.body).map_err(|_| {
        (
            "http".to_owned(),
            answer.status.as_u16().to_string(),
            String::new(),
        )
    })?;
    Err((
        problem.gate.to_string(),
        problem.reason.to_string(),
        problem.detail,
    ))
}

/// A temporary directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// Waits (deadline 10 s) until the server's view of `namespace/pod` satisfies `condition`.
async fn until_view(
    view: &PodView,
    namespace: &str,
    pod: &str,
    condition: impl Fn(&ViewAnswer) -> bool,
) -> Result<(), CliError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    while !condition(&view.lookup(namespace, pod).await) {
        if Instant::now() > deadline {
            return Err(failed(format!(
                "the server's view never saw the change to {pod}"
            )));
        }
        ticks.tick().await;
    }
    Ok(())
}

struct Demo {
    dir: PathBuf,
    handle: Handle,
    running: Running,
    url: String,
    trust: Trust,
    http: HttpsClient,
    admin: AdminClient,
}

impl Demo {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn pod(
        &self,
        namespace: &str,
        name: &str,
        image_volumes: Vec<ImageVolume>,
    ) -> Result<(), CliError> {
        self.handle
            .create_pod(&PodTemplate {
                namespace: namespace.into(),
                name: name.into(),
                service_account: "api".into(),
                labels: Default::default(),
                sidecars: vec![],
                image_volumes,
                node: None,
                init_containers: vec![],
                containers: vec![ContainerImage {
                    name: "api".into(),
                    image: format!("registry.example/{namespace}/api:1.4"),
                    digest: Some(digest('a')),
                    env: Default::default(),
                }],
            })
            .map_err(failed)?;
        self.handle.mark_running(namespace, name).map_err(failed)?;
        Ok(())
    }

    /// What the kubelet projects into a pod: its token, in a file.
    fn token(&self, namespace: &str, pod: &str) -> Result<String, CliError> {
        let (token, _) = self
            .handle
            .issue_token(namespace, "api", &["podseal".into()], 600, Some(pod))
            .map_err(failed)?;
        Ok(token)
    }

    fn client(&self, api_key: &Path, token: &str, file: &str) -> Result<Client, CliError> {
        let token_file = self.path(file);
        std::fs::write(&token_file, token).map_err(failed)?;
        let mut config = ClientConfig::new(&self.url, self.trust.clone());
        config.api_key_file = api_key.to_owned();
        config.token_file = token_file;
        Client::new(config).map_err(failed)
    }

    /// A `POST /v1/sessions` as an attacker holding these credentials and
    /// this DPoP key would build it (through the one request builder).
    fn session_request(
        &self,
        key: &DpopKey,
        api_key: &str,
        token: &str,
        recipient: &LocalPrivateKey,
    ) -> Result<SignedRequest, CliError> {
        Endpoint::new(&self.url)
            .session(
                Credentials { api_key, token },
                key,
                recipient.public_key_bytes(),
                Freshness {
                    iat: SystemClock.now(),
                    nonce: None,
                },
            )
            .map_err(failed)
    }

    /// A `POST /v1/unwrap` of `capsule` in `session`, signed by `key`.
    fn unwrap_request(
        &self,
        key: &DpopKey,
        api_key: &str,
        token: &str,
        session: &str,
        capsule: &Capsule,
    ) -> Result<SignedRequest, CliError> {
        let session = SessionInfo {
            id: session.to_owned(),
            expires_at: 0,
        };
        Endpoint::new(&self.url)
            .unwrap(
                Credentials { api_key, token },
                key,
                &session,
                &[&capsule.envelope],
                Freshness {
                    iat: SystemClock.now(),
                    nonce: None,
                },
            )
            .map(PendingUnwrap::into_request)
            .map_err(failed)
    }

    /// Sends a signed request as it is (a replay sends the same one twice).
    async fn send(&self, request: &SignedRequest) -> Result<Answer, CliError> {
        self.http
            .send(
                Method::POST,
                request.path(),
                &request.headers(),
                Some(request.body().to_vec()),
            )
            .await
            .map_err(failed)
    }
}

fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(failed)
}

/// Runs the demo.
pub fn run(output: OutputFormat) -> Result<(), CliError> {
    podseal_command::runtime()?.block_on(demo(output))
}

#[allow(
    clippy::too_many_lines,
    reason = "the demo reads top to bottom as a script"
)]
async fn demo(output: OutputFormat) -> Result<(), CliError> {
    let started = Instant::now();
    let mut out = Printer {
        json: output != OutputFormat::Text,
        colour: output == OutputFormat::Text && std::io::stdout().is_terminal(),
        steps: Vec::new(),
        unprinted: None,
    };
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "podseal-demo-{}",
        podseal_core::random_id::<9>().map_err(failed)?
    )));
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&scratch.0)
            .map_err(failed)?;
    }
    let dir = scratch.0.clone();
    out.say(&out.paint(
        "1",
        "podseal-dev demo: a Kubernetes stand-in, the release server and a pod, on this machine",
    ));

    // The cluster, the org key, the server.
    let cluster = DevCluster::start(ClusterConfig {
        bookmark_interval: Duration::from_millis(200),
        ..ClusterConfig::default()
    })
    .await
    .map_err(failed)?;
    let org = OrgPrivateKey::generate(KemId::X25519HkdfSha256).map_err(failed)?;
    write_new(&dir.join("org.key"), org.to_text().as_bytes(), 0o600).map_err(failed)?;
    let port = free_port()?;
    let url = format!("https://localhost:{port}");
    let running = start(ServerConfig {
        listen: format!("127.0.0.1:{port}"),
        external_url: url.clone(),
        state_dir: dir.join("state"),
        org_key_files: vec![dir.join("org.key")],
        // The stand-in reports a restart at once: a second key's refusal
        // need not wait long for one the API server has not shown yet.
        release: podseal_server::config::ReleaseSection {
            enrolment_wait_secs: 1,
            ..Default::default()
        },
        ..ServerConfig::default()
    })
    .await
    .map_err(failed)?;
    let trust = Trust::fingerprint(&running.tls_fingerprint).map_err(failed)?;
    let admin_token = running
        .admin_token
        .as_ref()
        .ok_or_else(|| failed("the new store showed no admin token"))?;
    let demo = Demo {
        http: HttpsClient::with_trust(&url, &trust).map_err(failed)?,
        admin: AdminClient::new(
            HttpsClient::with_trust(&url, &trust).map_err(failed)?,
            admin_token,
        ),
        handle: cluster.handle(),
        dir: dir.clone(),
        running,
        url,
        trust,
    };
    out.say(&format!(
        "  stand-in cluster at {}, release server at {} (TLS fingerprint {}…), SQLite in {}",
        cluster.url(),
        demo.url,
        demo.running.tls_fingerprint.get(..23).unwrap_or_default(),
        dir.display()
    ));

    // Registration, as an operator does it: the CA and the reader token are
    // sent as content (the server reads no file a request names).
    let step = Instant::now();
    demo.admin
        .add_cluster(&ClusterRequest {
            name: "prod".into(),
            api_server_url: cluster.url().into(),
            ca_pem: cluster.ca_pem().into(),
            reader_token: ReaderToken::new(cluster.reader_token()),
            ..ClusterRequest::default()
        })
        .await
        .map_err(failed)?;
    let mut keys = Vec::new();
    for namespace in ["shop", "payments"] {
        let created = demo
            .admin
            .create_api_key(&ApiKeyRequest {
                cluster: "prod".into(),
                namespace: namespace.into(),
                service_account: "api".into(),
            })
            .await
            .map_err(failed)?;
        let key = created.key;
        let path = dir.join(format!("{namespace}.api-key"));
        write_new(&path, key.as_bytes(), 0o600).map_err(failed)?;
        keys.push((path, key));
        demo.admin
            .set_policy(&PolicyRequest {
                cluster: "prod".into(),
                namespace: namespace.into(),
                service_account: "api".into(),
                digests: vec![digest('a')],
                audit_mode: false,
                require_nonce: false,
            })
            .await
            .map_err(failed)?;
    }
    let [(shop_key_file, shop_key), (payments_key_file, _)] = keys.as_slice() else {
        return Err(failed("API keys missing"));
    };
    out.record(Step {
        title: "admin: cluster registered (JWKS pinned), API keys and digest policies for shop/api and payments/api".into(),
        outcome: "passed",
        gate: None,
        reason: None,
        detail: String::new(),
        millis: step.elapsed().as_millis(),
    });

    // Seal into a Kubernetes Secret.
    let capsule = envelope::seal(
        SealParams {
            scope: Scope::Kubernetes(KubernetesScope {
                cluster: "prod".into(),
                namespace: "shop".into(),
                service_accounts: vec!["api".into()],
                name: "db".into(),
                key: Some("url".into()),
            }),
            purpose: None,
            reveal: RevealMode::Many,
            created_at: SystemClock.now(),
            not_after: None,
        },
        SECRET,
        &[org.public()],
    )
    .map_err(failed)?;
    let manifest =
        podseal_cli::manifest::sealed_secret("db", "shop", &[("url".into(), capsule.clone())])?;
    let stored = manifest
        .data
        .as_ref()
        .and_then(|d| d.get("url"))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default();
    let base64_value = STANDARD.encode(stored.as_bytes());
    let readable = stored.contains("hunter2") || base64_value.contains("hunter2");
    out.record(Step {
        title: "attack: read the Kubernetes Secret (get secrets, etcd, a backup, git)".into(),
        outcome: if readable || !stored.starts_with("podseal:v1:") {
            "FAILED"
        } else {
            "refused"
        },
        gate: Some("capsule".into()),
        reason: Some("sealed".into()),
        detail: format!(
            "data.url is a capsule: {}…",
            stored.get(..40).unwrap_or_default()
        ),
        millis: 0,
    });

    // The pod: its token, its API key, RAM-only keys; open through the four gates.
    demo.pod("shop", "api-0", vec![])?;
    demo.pod("shop", "api-1", vec![])?;
    demo.pod("payments", "api-0", vec![])?;
    let pod_token = demo.token("shop", "api-0")?;
    let pod = demo.client(shop_key_file, &pod_token, "shop-api-0.token")?;
    // The pod spec says where the capsule was read from (its secretKeyRef):
    // `podseal-exec --from DB_URL=db/url` does the same.
    let from_db = Origin::Secret(SecretSlot::new("db", "url").map_err(failed)?);
    let step = Instant::now();
    let secret = pod.open_from(&capsule, &from_db).await;
    let millis = step.elapsed().as_millis();
    let opened = secret
        .as_ref()
        .is_ok_and(|s| s.expose_secret_bytes() == SECRET);
    out.record(Step {
        title: "pod shop/api-0 opens the Secret: gate 1 API key, gate 2 projected token (pinned JWKS), gate 3 DPoP key pinned to its running container, gate 4 live pod with an approved image digest".into(),
        outcome: if opened { "passed" } else { "FAILED" },
        gate: None,
        reason: None,
        detail: match &secret {
Ok(s) => format!(
                "plaintext in the pod's memory only: {} bytes, {} (not printed)",
                s.len(),
                if opened { "the bytes that were sealed" } else { "NOT the bytes that were sealed" }
            ),
            Err(e) => e.to_string(),
        },
        millis,
    });
    drop(secret);
    let pod_session = pod.session().await.map(|s| s.id).unwrap_or_default();

    // Attacks.
    let attacker = DpopKey::generate().map_err(failed)?;
    let recipient = LocalPrivateKey::generate(KemId::X25519HkdfSha256).map_err(failed)?;

    let step = Instant::now();
    let payments_token = demo.token("payments", "api-0")?;
    let request = demo.session_request(&attacker, shop_key, &payments_token, &recipient)?;
    let answer = demo.send(&request).await?;
    out.attack(
        "attack: the shop API key, stolen and used from namespace payments",
        Reason::ApiKeyScopeMismatch,
        step,
        answer_refusal(&answer),
    );

    let step = Instant::now();
    let request = demo.unwrap_request(&attacker, shop_key, &pod_token, &pod_session, &capsule)?;
    let answer = demo.send(&request).await?;
    out.attack("attack: the pod's projected token, API key and session id, stolen, without its RAM-only DPoP key", Reason::KeyNotPinned, step, answer_refusal(&answer));

    let step = Instant::now();
    let request = demo.session_request(&attacker, shop_key, &pod_token, &recipient)?;
    let answer = demo.send(&request).await?;
    out.attack(
        "attack: a second DPoP key enrolling for the same running container",
        Reason::PodKeyAlreadyPinned,
        step,
        answer_refusal(&answer),
    );

    // A replay: a request captured from pod api-1's traffic, sent again.
    let step = Instant::now();
    let replay_key = DpopKey::generate().map_err(failed)?;
    let token_1 = demo.token("shop", "api-1")?;
    let request = demo.session_request(&replay_key, shop_key, &token_1, &recipient)?;
    let answer = demo.send(&request).await?;
    let session_1 = protocol::session_answer(answer.status, &answer.body)
        .map_err(|e| failed(format!("pod api-1 could not open a session: {e}")))?
        .id;
    let captured = demo.unwrap_request(&replay_key, shop_key, &token_1, &session_1, &capsule)?;
    let first = demo.send(&captured).await?;
    if !first.status.is_success() {
        return Err(failed(format!(
            "pod api-1 could not unwrap: HTTP {}",
            first.status
        )));
    }
    let answer = demo.send(&captured).await?;
    out.attack(
        "attack: a captured DPoP proof replayed",
        Reason::JtiReplayed,
        step,
        answer_refusal(&answer),
    );

    let step = Instant::now();
    demo.handle
        .add_ephemeral_container(
            "shop",
            "api-0",
            &ContainerImage {
                name: "debugger".into(),
                image: "busybox:1.36".into(),
                digest: Some(digest('d')),
                env: Default::default(),
            },
        )
        .map_err(failed)?;
    let view = demo
        .running
        .release()
        .clusters()
        .get("prod")
        .ok_or_else(|| failed("cluster prod is not connected"))?
        .view
        .clone();
    until_view(
        &view,
        "shop",
        "api-0",
        |a| matches!(a, ViewAnswer::Present(f) if f.containers.len() == 2),
    )
    .await?;
    out.attack("attack: `kubectl debug` injects an unapproved container into the running pod; its next open", Reason::DebugContainerNotApproved, step, sdk_refusal(pod.open(&capsule).await));

    let step = Instant::now();
    demo.pod(
        "shop",
        "tools-0",
        vec![ImageVolume {
            name: "tools".into(),
            reference: "registry.example/tools:latest".into(),
            mounted_digest: Some(digest('e')),
        }],
    )?;
    let tools_token = demo.token("shop", "tools-0")?;
    let tools = demo.client(shop_key_file, &tools_token, "shop-tools-0.token")?;
    out.attack("attack: a pod of the approved image mounts an image volume from an unapproved image (registry.example/tools:latest), whose files it can run", Reason::ImageNotApproved, step, sdk_refusal(tools.open(&capsule).await));

    let step = Instant::now();
    demo.handle.delete_pod("shop", "api-1").map_err(failed)?;
    let storage = demo.running.release().storage().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    loop {
        let revoked = storage
            .session(&session_1)
            .await
            .map_err(failed)?
            .is_some_and(|s| s.revoked_at.is_some());
        if revoked {
            break;
        }
        if Instant::now() > deadline {
            return Err(failed("the deleted pod's session was never revoked"));
        }
        ticks.tick().await;
    }
    let request = demo.unwrap_request(&replay_key, shop_key, &token_1, &session_1, &capsule)?;
    let answer = demo.send(&request).await?;
    out.attack(
        "attack: pod shop/api-1 deleted; its session (and key, and token) used again",
        Reason::SessionRevoked,
        step,
        answer_refusal(&answer),
    );

    let step = Instant::now();
    let elsewhere = demo.client(payments_key_file, &payments_token, "payments-api-0.token")?;
    out.attack("attack: the capsule copied into namespace payments and opened by a pod there (with its own valid credentials)", Reason::NamespaceMismatch, step, sdk_refusal(elsewhere.open(&capsule).await));

    let step = Instant::now();
    let from_api_url = Origin::Secret(SecretSlot::new("api-url", "url").map_err(failed)?);
    out.attack_refused_as("attack: a Secret writer moves the db capsule into Secret api-url (same service account), whose value the program sends to a URL", SECRET_MISMATCH, step, sdk_refusal(pod.open_from(&capsule, &from_api_url).await));

    // The audit log.
    let step = Instant::now();
    let export = demo.admin.audit_export().await.map_err(failed)?;
    let export = String::from_utf8_lossy(&export).into_owned();
    let public = std::fs::read_to_string(&demo.running.audit_public_key_file)
        .ok()
        .and_then(|text| parse_public_key(&text))
        .ok_or_else(|| failed("no audit public key"))?;
    let leaked = export.contains("hunter2")
        || export.contains(shop_key.as_str())
        || export.contains(&pod_token);
    let (outcome, detail) = match verify_export(&export, &public, None) {
        Ok(report) if !leaked => (
            "passed",
            format!(
                "{}, {}; no secret, token or API key in it",
                counted(report.records, "record", "records"),
                counted(
                    report.checkpoints,
                    "signed checkpoint",
                    "signed checkpoints"
                )
            ),
        ),
        Ok(_) => ("FAILED", "secret material in the audit log".into()),
        Err(e) => ("FAILED", e.to_string()),
    };
    out.record(Step {
        title: "audit verify: every decision above is in the signed Merkle-tree audit log".into(),
        outcome,
        gate: None,
        reason: None,
        detail,
        millis: step.elapsed().as_millis(),
    });

    let ok = out.steps.iter().all(|s| s.outcome != "FAILED");
    // The time in all counts the shutdown too (server, stand-in, scratch
    // directory): what the reader waits for before the prompt returns.
    demo.running.shutdown().await.map_err(failed)?;
    drop(cluster);
    drop(scratch);
    let total = started.elapsed();
    let summary = format!(
        "What you saw: the Secret holds only a capsule, so reading Kubernetes, etcd, a backup or git gives nothing. \
         The pod's secret was released only after four gates: its API key, its projected ServiceAccount token against \
         the pinned JWKS, a DPoP key that lives in its RAM and is pinned to its running container, and a live view showing it Running \
         with approved image digests. The server re-wrapped only the data key to the pod's ephemeral key; the pod \
         decrypted in memory. Each attack was refused by the gate named (a capsule moved to another Secret by the pod itself, \
         which compares the Secret its spec names with the capsule's header), and the audit log of it all verifies. \
         ({} ms in all.)",
        total.as_millis()
    );
    if out.json {
        podseal_command::output::print_data(
            output,
            &Report {
                ok,
                steps: std::mem::take(&mut out.steps),
                summary,
            },
        )?;
    } else {
        if let Some(error) = out.unprinted.take() {
            return Err(error);
        }
        outln!()?;
        outln!("{summary}")?;
    }
    if ok {
        Ok(())
    } else {
        Err(CliError::failure(
            "a step of the demo misbehaved (see FAILED above)",
        ))
    }
}
