//! SIGKILL of the release server (SQLite) in the middle of session
//! establishments, unwraps and admin writes, as real processes: the
//! stand-in (`podseal-dev cluster serve`) and `podseal-server`, driven over
//! HTTPS by the SDK's request builders and admin client.
//!
//! For about two seconds, concurrently:
//! - enrolments: each a new pod (created in the stand-in just before) and
//!   a new DPoP key, `POST /v1/sessions`;
//! - unwraps: eight pods with sessions established before the load, each
//!   unwrapping a new capsule per request;
//! - admin writes: API key creations, and policy changes each approving a
//!   new digest.
//!
//! Then the server is frozen (SIGSTOP) until a request of every kind is in
//! flight to it, the kill flag is raised, and it is killed (SIGKILL): no
//! final checkpoint, nothing flushed. Each request is logged: started
//! before the kill, ended after it, acknowledged (2xx received). The server
//! is started again on the same state directory and port, and once
//! `/readyz` answers 200:
//! - the audit export verifies with the audit public key, and goes on
//!   verifying as one log once the restarted server has appended to it;
//! - every acknowledged unwrap has its allowed `unwrap` record;
//! - every acknowledged session has its allowed `session` record and its
//!   pin: another key enrolling for the pod is refused
//!   `dpop/pod_key_already_pinned`, while the session still serves its key;
//! - an enrolment cut off by the kill leaves nothing that stops the pod:
//!   its own key enrols again and its new session serves it;
//! - every acknowledged API key is listed, has its allowed `apikey_create`
//!   record and authenticates a session; a listed key nobody was told of
//!   (its creation was in flight) is whole, bound and audited, and there
//!   are no more of them than creations in flight;
//! - every acknowledged digest is in the policy with its allowed
//!   `policy_digests` record; one that was in flight is either absent or
//!   present and audited; the approved image's digest is still there.
//!
//! The freeze makes sure requests are in flight at the kill (on a loaded
//! machine a request seen in flight could finish before the signal); it
//! stops the server at an arbitrary point of its work, as the kill would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use podseal_core::audit::event::{AdminAction, AdminDetails, ReleaseDetails, from_map};
use podseal_core::audit::{AuditRecord, Event, Outcome, verify_export};
use podseal_core::capsule::Capsule;
use podseal_core::dpop::DpopKey;
use podseal_core::envelope::seal;
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey as _};
use podseal_core::org_key::OrgPublicKey;
use podseal_core::wire::UnwrapAnswer;
use podseal_core::wire::admin::{ApiKeyInfo, ApiKeyRequest, PolicyDigestsRequest};
use podseal_sdk::admin::{AdminClient, AdminError};
use podseal_sdk::https::{Answer, HttpsClient, TransportError};
use podseal_sdk::protocol::{self, Credentials, Endpoint, Freshness, SessionInfo, SignedRequest};
use podseal_test_support::fixtures::{kubernetes_scope, seal_params};
use support::Deployment;
use support::faults::{KillFlag, allowed_unwraps, audit_records, reason, wait_until};

mod support;

/// Pods unwrapping through sessions established before the load.
const UNWRAPPING_PODS: usize = 8;
/// Clients enrolling new pods.
const ENROLLING_CLIENTS: usize = 2;
/// The load runs at least this long before the kill.
const LOAD_AT_LEAST: Duration = Duration::from_millis(1500);
/// The most requests one client sends (a bound, never reached).
const MAX_REQUESTS_PER_CLIENT: usize = 5000;

/// The kinds of request of the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Session,
    Unwrap,
    ApiKeyCreate,
    PolicyDigest,
}

const KINDS: [Kind; 4] = [
    Kind::Session,
    Kind::Unwrap,
    Kind::ApiKeyCreate,
    Kind::PolicyDigest,
];

/// A pod with a session: its name, projected token, pinned key and session.
struct Pod {
    name: String,
    token: String,
    key: DpopKey,
    session: SessionInfo,
}

/// What one request of the load was about.
enum Subject {
    /// An enrolment of `key` for the new pod `pod`, and the session when granted.
    Session {
        pod: String,
        token: String,
        key: Box<DpopKey>,
        session: Option<SessionInfo>,
    },
    /// An unwrap of the capsule `capsule`.
    Unwrap { capsule: String },
    /// An API key creation, and the key (`id`, `key`) when created.
    ApiKey { created: Option<(String, String)> },
    /// A policy change approving `digest`.
    Digest { digest: String },
}

/// How a request ended.
#[derive(Debug)]
enum Ending {
    /// A 2xx answer.
    Acknowledged,
    /// A refusal (`gate/reason`).
    Refused(String),
    /// No answer: the transport's error.
    Lost(String),
}

/// One request of the load.
struct Request {
    subject: Subject,
    /// Started before the kill flag was raised (which precedes the SIGKILL).
    started_before_kill: bool,
    /// Ended after the kill flag was raised.
    ended_after_kill: bool,
    ending: Ending,
}

impl Request {
    fn kind(&self) -> Kind {
        match self.subject {
            Subject::Session { .. } => Kind::Session,
            Subject::Unwrap { .. } => Kind::Unwrap,
            Subject::ApiKey { .. } => Kind::ApiKeyCreate,
            Subject::Digest { .. } => Kind::PolicyDigest,
        }
    }

    fn acknowledged(&self) -> bool {
        matches!(self.ending, Ending::Acknowledged)
    }

    /// Sent before the kill and not answered before it.
    fn spans_kill(&self) -> bool {
        self.started_before_kill && self.ended_after_kill
    }
}

/// How a release request ended.
fn release_ending(result: &Result<Answer, TransportError>) -> Ending {
    match result {
        Ok(answer) if answer.status.is_success() => Ending::Acknowledged,
        Ok(answer) => Ending::Refused(reason(answer)),
        Err(error) => Ending::Lost(error.to_string()),
    }
}

/// How an admin request ended.
fn admin_ending<T>(result: &Result<T, AdminError>) -> Ending {
    match result {
        Ok(_) => Ending::Acknowledged,
        Err(AdminError::Transport(error)) => Ending::Lost(error.to_string()),
        Err(other) => Ending::Refused(other.to_string()),
    }
}

fn fresh() -> Freshness<'static> {
    Freshness {
        iat: jiff::Timestamp::now().as_second(),
        nonce: None,
    }
}

/// A new approvable digest, `sha256:` and 64 random lowercase hex digits.
fn random_digest() -> String {
    let mut bytes = [0u8; 32];
    podseal_core::fill_random(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// What every client needs: the server, its admin API, the org key, the
/// stand-in, the API key.
struct Clients {
    http: HttpsClient,
    admin: AdminClient,
    endpoint: Endpoint,
    org: OrgPublicKey,
    api_key: String,
    dev_cluster: std::path::PathBuf,
    digest: String,
}

impl Clients {
    fn new(deployment: &Deployment) -> Self {
        Self {
            http: deployment
                .https_client()
                .with_timeout(Duration::from_secs(30)),
            admin: deployment.admin_client(),
            endpoint: Endpoint::new(&deployment.url),
            org: deployment.org_public_key(),
            api_key: deployment.api_key.clone(),
            dev_cluster: deployment.dev_cluster_dir(),
            digest: deployment.digest.clone(),
        }
    }

    async fn send(&self, request: &SignedRequest) -> Result<Answer, TransportError> {
        self.http
            .send(
                Method::POST,
                request.path(),
                &request.headers(),
                Some(request.body().to_vec()),
            )
            .await
    }

    /// `POST /v1/sessions` for the pod holding `token`, enrolling `key`,
    /// with `api_key`.
    async fn open_session(
        &self,
        api_key: &str,
        token: &str,
        key: &DpopKey,
    ) -> Result<Answer, TransportError> {
        let recipient = LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
        let request = self
            .endpoint
            .session(
                Credentials { api_key, token },
                key,
                recipient.public_key_bytes(),
                fresh(),
            )
            .unwrap();
        self.send(&request).await
    }

    /// A session for the pod holding `token` with a new key (granted, not refused).
    async fn enrol(&self, name: &str, token: &str) -> Pod {
        let key = DpopKey::generate().unwrap();
        let answer = self.open_session(&self.api_key, token, &key).await.unwrap();
        assert_eq!(answer.status, 201, "a session: {}", reason(&answer));
        Pod {
            name: name.to_owned(),
            token: token.to_owned(),
            key,
            session: protocol::session_answer(answer.status, &answer.body).unwrap(),
        }
    }

    /// A new capsule for `prod/shop/api`.
    fn capsule(&self) -> Capsule {
        let params = seal_params(kubernetes_scope("prod", "shop", "api"));
        seal(params, b"s3cret", &[&self.org]).unwrap()
    }

    /// `POST /v1/unwrap` of `capsule` in `session` (of the pod holding
    /// `token`, pinned to `key`) with a fresh proof; the answer is checked
    /// to release that capsule when it is 200.
    async fn unwrap(
        &self,
        token: &str,
        key: &DpopKey,
        session: &SessionInfo,
        capsule: &Capsule,
    ) -> Result<Answer, TransportError> {
        let pending = self
            .endpoint
            .unwrap(
                Credentials {
                    api_key: &self.api_key,
                    token,
                },
                key,
                session,
                &[&capsule.envelope],
                fresh(),
            )
            .unwrap();
        let result = self.send(pending.request()).await;
        if let Ok(answer) = &result
            && answer.status == 200
        {
            let released: UnwrapAnswer = serde_json::from_slice(&answer.body).unwrap();
            assert_eq!(released.releases.len(), 1);
            assert_eq!(released.releases[0].capsule_id, capsule.header().id);
        }
        result
    }

    fn api_key_request() -> ApiKeyRequest {
        ApiKeyRequest {
            cluster: "prod".into(),
            namespace: "shop".into(),
            service_account: "api".into(),
        }
    }
}

/// The clients of the load, their counters and their log.
#[derive(Default)]
struct Load {
    kill: KillFlag,
    in_flight: [AtomicUsize; KINDS.len()],
    acknowledged: [AtomicUsize; KINDS.len()],
    /// Requests that ended, answered or not.
    ended: AtomicUsize,
    requests: Mutex<Vec<Request>>,
}

impl Load {
    fn in_flight(&self, kind: Kind) -> usize {
        self.in_flight[kind as usize].load(SeqCst)
    }

    fn acknowledged(&self, kind: Kind) -> usize {
        self.acknowledged[kind as usize].load(SeqCst)
    }

    /// Runs one request of `kind` (counted in flight while it runs) and
    /// logs it: how it ended by `ending`, what it was by `subject`.
    async fn run<T>(
        &self,
        kind: Kind,
        work: impl Future<Output = T>,
        ending: impl FnOnce(&T) -> Ending,
        subject: impl FnOnce(T) -> Subject,
    ) {
        self.in_flight[kind as usize].fetch_add(1, SeqCst);
        let timed = self.kill.time(work).await;
        self.in_flight[kind as usize].fetch_sub(1, SeqCst);
        self.ended.fetch_add(1, SeqCst);
        let ending = ending(&timed.value);
        if matches!(ending, Ending::Acknowledged) {
            self.acknowledged[kind as usize].fetch_add(1, SeqCst);
        }
        let request = Request {
            subject: subject(timed.value),
            started_before_kill: timed.started_before_kill,
            ended_after_kill: timed.ended_after_kill,
            ending,
        };
        assert_eq!(request.kind(), kind);
        self.requests.lock().unwrap().push(request);
    }

    /// Unwraps of a new capsule each by `pod`, until the kill.
    async fn unwrapping(self: Arc<Self>, clients: Arc<Clients>, pod: Arc<Pod>) {
        for _ in 0..MAX_REQUESTS_PER_CLIENT {
            if self.kill.raised() {
                return;
            }
            let capsule = clients.capsule();
            let id = capsule.header().id.clone();
            self.run(
                Kind::Unwrap,
                clients.unwrap(&pod.token, &pod.key, &pod.session, &capsule),
                release_ending,
                |_| Subject::Unwrap { capsule: id },
            )
            .await;
        }
    }

    /// Enrolments of a new key each for a new pod `fresh-CLIENT-I`, until the kill.
    async fn enrolling(self: Arc<Self>, clients: Arc<Clients>, client: usize) {
        for i in 0..MAX_REQUESTS_PER_CLIENT {
            if self.kill.raised() {
                return;
            }
            let name = format!("fresh-{client}-{i}");
            let (dc, digest, pod) = (
                clients.dev_cluster.clone(),
                clients.digest.clone(),
                name.clone(),
            );
            let token =
                tokio::task::spawn_blocking(move || support::create_pod(&dc, &digest, &pod))
                    .await
                    .unwrap();
            if self.kill.raised() {
                return;
            }
            let key = Box::new(DpopKey::generate().unwrap());
            let clients = &clients;
            let sent = async move {
                let result = clients.open_session(&clients.api_key, &token, &key).await;
                (result, token, key)
            };
            self.run(
                Kind::Session,
                sent,
                |sent| release_ending(&sent.0),
                |(result, token, key)| {
                    let session = result
                        .ok()
                        .filter(|a| a.status == 201)
                        .map(|a| protocol::session_answer(a.status, &a.body).unwrap());
                    Subject::Session {
                        pod: name,
                        token,
                        key,
                        session,
                    }
                },
            )
            .await;
        }
    }

    /// API key creations, until the kill.
    async fn creating_api_keys(self: Arc<Self>, clients: Arc<Clients>) {
        for _ in 0..MAX_REQUESTS_PER_CLIENT {
            if self.kill.raised() {
                return;
            }
            let request = Clients::api_key_request();
            self.run(
                Kind::ApiKeyCreate,
                clients.admin.create_api_key(&request),
                admin_ending,
                |result| Subject::ApiKey {
                    created: result.ok().map(|c| (c.id, c.key)),
                },
            )
            .await;
        }
    }

    /// Policy changes each approving a new digest, until the kill.
    async fn approving_digests(self: Arc<Self>, clients: Arc<Clients>) {
        for _ in 0..MAX_REQUESTS_PER_CLIENT {
            if self.kill.raised() {
                return;
            }
            let digest = random_digest();
            let request = PolicyDigestsRequest {
                cluster: "prod".into(),
                namespace: "shop".into(),
                service_account: "api".into(),
                add: vec![digest.clone()],
                remove: Vec::new(),
            };
            self.run(
                Kind::PolicyDigest,
                clients.admin.change_policy_digests(&request),
                admin_ending,
                |_| Subject::Digest { digest },
            )
            .await;
        }
    }
}

/// The `admin` records of `action` allowed (the intent, written before the change).
fn admin_intents(records: &[AuditRecord], action: AdminAction) -> Vec<AdminDetails> {
    records
        .iter()
        .filter(|r| r.event == Event::Admin && r.outcome == Outcome::Allowed)
        .map(|r| from_map::<AdminDetails>(&r.details).unwrap())
        .filter(|d| d.action.as_ref().is_some_and(|a| *a == action))
        .collect()
}

/// `(pod, jkt)` of every allowed `session` record.
fn sessions_recorded(records: &[AuditRecord]) -> BTreeSet<(String, String)> {
    records
        .iter()
        .filter(|r| r.event == Event::Session && r.outcome == Outcome::Allowed)
        .map(|r| from_map::<ReleaseDetails>(&r.details).unwrap())
        .map(|d| (d.pod.unwrap_or_default(), d.jkt.unwrap_or_default()))
        .collect()
}

/// Started, acknowledged and in flight at the kill, per kind.
fn figures(requests: &[Request]) -> BTreeMap<Kind, (usize, usize, usize, usize)> {
    let mut figures = BTreeMap::new();
    for kind in KINDS {
        let of: Vec<&Request> = requests.iter().filter(|r| r.kind() == kind).collect();
        let spanning: Vec<&&Request> = of.iter().filter(|r| r.spans_kill()).collect();
        figures.insert(
            kind,
            (
                of.len(),
                of.iter().filter(|r| r.acknowledged()).count(),
                spanning.len(),
                spanning.iter().filter(|r| !r.acknowledged()).count(),
            ),
        );
    }
    figures
}

/// The log sorted by what the checks after the restart need.
#[derive(Default)]
struct Outcomes {
    /// Each unwrap's capsule, and whether it was acknowledged.
    unwraps: Vec<(String, bool)>,
    /// The sessions granted during the load.
    established: Vec<Arc<Pod>>,
    /// The enrolments not answered: pod, token, key.
    cut_off: Vec<(String, String, DpopKey)>,
    /// The API keys created: id, key.
    created: Vec<(String, String)>,
    /// API key creations not answered.
    creations_lost: usize,
    /// Each approved digest, and whether its change was acknowledged.
    digests: Vec<(String, bool)>,
}

impl Outcomes {
    /// Sorts `requests`, each of which must have been acknowledged, or
    /// lost (no answer) after the kill flag was raised.
    fn of(requests: Vec<Request>) -> Self {
        let mut outcomes = Self::default();
        for request in requests {
            let kind = request.kind();
            match &request.ending {
                Ending::Acknowledged => {}
                Ending::Refused(why) => panic!("{kind:?} refused during the load: {why}"),
                Ending::Lost(error) => assert!(
                    request.ended_after_kill,
                    "{kind:?} failed before the kill: {error}"
                ),
            }
            let acknowledged = request.acknowledged();
            match request.subject {
                Subject::Unwrap { capsule } => outcomes.unwraps.push((capsule, acknowledged)),
                Subject::Session {
                    pod,
                    token,
                    key,
                    session,
                } => match session {
                    Some(session) => outcomes.established.push(Arc::new(Pod {
                        name: pod,
                        token,
                        key: *key,
                        session,
                    })),
                    None => outcomes.cut_off.push((pod, token, *key)),
                },
                Subject::ApiKey { created: Some(key) } => outcomes.created.push(key),
                Subject::ApiKey { created: None } => outcomes.creations_lost += 1,
                Subject::Digest { digest } => outcomes.digests.push((digest, acknowledged)),
            }
        }
        outcomes
    }
}

/// Runs the load until it has run [`LOAD_AT_LEAST`] with every kind
/// acknowledged, freezes the server until a request of every kind is in
/// flight to it, raises the kill flag and kills it. Returns every request
/// and how many of each kind were in flight just before the kill.
fn load_then_kill(
    runtime: &tokio::runtime::Runtime,
    clients: &Arc<Clients>,
    deployment: &mut Deployment,
    pods: &[Arc<Pod>],
) -> (Vec<Request>, Vec<usize>) {
    let load = Arc::new(Load::default());
    let mut tasks = Vec::new();
    for pod in pods {
        tasks.push(runtime.spawn(load.clone().unwrapping(clients.clone(), pod.clone())));
    }
    for client in 0..ENROLLING_CLIENTS {
        tasks.push(runtime.spawn(load.clone().enrolling(clients.clone(), client)));
    }
    tasks.push(runtime.spawn(load.clone().creating_api_keys(clients.clone())));
    tasks.push(runtime.spawn(load.clone().approving_digests(clients.clone())));
    let started = Instant::now();
    wait_until(
        "the load has run 1.5 s with every kind acknowledged several times",
        Duration::from_secs(60),
        || started.elapsed() >= LOAD_AT_LEAST && KINDS.iter().all(|k| load.acknowledged(*k) >= 3),
    );
    deployment.freeze();
    // Frozen, the server answers nothing more: once no request has ended
    // for 100 ms, the answers it wrote before the freeze have been read,
    // and what is in flight stays so until the kill.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ended = load.ended.load(SeqCst);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = load.ended.load(SeqCst);
        if now == ended && KINDS.iter().all(|k| load.in_flight(*k) >= 1) {
            break;
        }
        ended = now;
        assert!(
            Instant::now() < deadline,
            "timed out waiting until a request of every kind is in flight to the frozen server"
        );
    }
    let in_flight: Vec<usize> = KINDS.iter().map(|k| load.in_flight(*k)).collect();
    load.kill.raise();
    deployment.kill();
    runtime.block_on(async {
        for task in tasks {
            task.await.unwrap();
        }
    });
    let requests = std::mem::take(&mut *load.requests.lock().unwrap());
    (requests, in_flight)
}

/// The audit export, verified with the audit public key; its records.
fn verified_export(
    runtime: &tokio::runtime::Runtime,
    clients: &Clients,
    deployment: &Deployment,
    when: &str,
) -> Vec<AuditRecord> {
    let export = runtime.block_on(clients.admin.audit_export()).unwrap();
    let export = String::from_utf8(export).unwrap();
    let report = verify_export(&export, &deployment.audit_public_key(), None)
        .unwrap_or_else(|e| panic!("the export {when} does not verify: {e}"));
    let records = audit_records(&export);
    assert_eq!(report.records, records.len() as u64);
    records
}

/// Every acknowledged unwrap has its allowed record. Returns how many
/// unacknowledged unwraps were recorded all the same.
fn check_unwraps(outcomes: &Outcomes, records: &[AuditRecord]) -> usize {
    let unwrapped = allowed_unwraps(records);
    let missing: Vec<&String> = outcomes
        .unwraps
        .iter()
        .filter(|(capsule, acknowledged)| *acknowledged && !unwrapped.contains(capsule))
        .map(|(capsule, _)| capsule)
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged unwraps have no audit record: {missing:?}",
        missing.len()
    );
    outcomes
        .unwraps
        .iter()
        .filter(|(capsule, acknowledged)| !*acknowledged && unwrapped.contains(capsule))
        .count()
}

/// Every acknowledged session in `sessions` has its allowed record; its pin
/// refuses another key (`dpop/pod_key_already_pinned`), and the session
/// still serves its key.
fn check_sessions(
    runtime: &tokio::runtime::Runtime,
    clients: &Arc<Clients>,
    sessions: &[Arc<Pod>],
    records: &[AuditRecord],
) {
    let recorded = sessions_recorded(records);
    for pod in sessions {
        assert!(
            recorded.contains(&(pod.name.clone(), pod.key.thumbprint().to_owned())),
            "the acknowledged session of {} has no audit record",
            pod.name
        );
    }
    runtime.block_on(async {
        let checks: Vec<_> = sessions
            .iter()
            .map(|pod| {
                let (clients, pod) = (clients.clone(), pod.clone());
                tokio::spawn(async move {
                    let other = DpopKey::generate().unwrap();
                    let refused = clients
                        .open_session(&clients.api_key, &pod.token, &other)
                        .await
                        .unwrap();
                    assert_eq!(
                        reason(&refused),
                        "dpop/pod_key_already_pinned",
                        "another key for {}, whose session was acknowledged before the kill",
                        pod.name
                    );
                    let served = clients
                        .unwrap(&pod.token, &pod.key, &pod.session, &clients.capsule())
                        .await
                        .unwrap();
                    assert_eq!(
                        served.status,
                        200,
                        "the session of {} after the restart: {}",
                        pod.name,
                        reason(&served)
                    );
                })
            })
            .collect();
        for check in checks {
            check.await.unwrap();
        }
    });
}

/// An enrolment cut off by the kill stops nothing: the pod's own key
/// enrols again and its new session serves it. Returns how many of them
/// had been recorded all the same.
fn check_cut_off(
    runtime: &tokio::runtime::Runtime,
    clients: &Clients,
    cut_off: &[(String, String, DpopKey)],
    records: &[AuditRecord],
) -> usize {
    let recorded = sessions_recorded(records);
    runtime.block_on(async {
        for (pod, token, key) in cut_off {
            let answer = clients
                .open_session(&clients.api_key, token, key)
                .await
                .unwrap();
            assert_eq!(
                answer.status,
                201,
                "{pod}'s key, whose enrolment the kill cut off: {}",
                reason(&answer)
            );
            let session = protocol::session_answer(answer.status, &answer.body).unwrap();
            let served = clients
                .unwrap(token, key, &session, &clients.capsule())
                .await
                .unwrap();
            assert_eq!(served.status, 200, "{pod}: {}", reason(&served));
        }
    });
    cut_off
        .iter()
        .filter(|(pod, _, key)| recorded.contains(&(pod.clone(), key.thumbprint().to_owned())))
        .count()
}

/// The API key `info` is bound to `prod/shop/api` and not revoked.
#[track_caller]
fn assert_bound(info: &ApiKeyInfo, what: &str) {
    assert_eq!(
        (
            info.cluster.as_str(),
            info.namespace.as_str(),
            info.service_account.as_str(),
            info.revoked_at
        ),
        ("prod", "shop", "api", None),
        "{what} {}",
        info.id
    );
}

/// Every acknowledged API key is listed, bound, audited, and authenticates
/// a session; a listed key nobody was told of (its creation was cut off)
/// is bound and audited, and there are no more of those, with the
/// creations audited but not made, than creations cut off. Returns how
/// many were listed and how many audited without being made.
fn check_api_keys(
    runtime: &tokio::runtime::Runtime,
    clients: &Arc<Clients>,
    deployment: &Deployment,
    outcomes: &Outcomes,
    before: &BTreeSet<String>,
    records: &[AuditRecord],
) -> (usize, usize) {
    let listed: BTreeMap<String, ApiKeyInfo> = runtime
        .block_on(clients.admin.api_keys())
        .unwrap()
        .into_iter()
        .map(|k| (k.id.clone(), k))
        .collect();
    let audited: BTreeSet<String> = admin_intents(records, AdminAction::ApiKeyCreate)
        .into_iter()
        .filter_map(|d| d.api_key)
        .collect();
    let created: BTreeSet<&String> = outcomes.created.iter().map(|(id, _)| id).collect();
    for id in &created {
        let info = listed
            .get(*id)
            .unwrap_or_else(|| panic!("acknowledged API key {id} is not listed after the restart"));
        assert_bound(info, "acknowledged API key");
        assert!(
            audited.contains(*id),
            "acknowledged API key {id} has no audit record"
        );
    }
    let unacknowledged: Vec<&ApiKeyInfo> = listed
        .values()
        .filter(|k| !before.contains(&k.id) && !created.contains(&k.id))
        .collect();
    for info in &unacknowledged {
        assert_bound(info, "API key whose creation the kill cut off");
        assert!(
            audited.contains(&info.id),
            "API key {} is listed but its creation was never audited",
            info.id
        );
    }
    let audited_not_made = audited
        .iter()
        .filter(|id| !listed.contains_key(*id))
        .count();
    assert!(
        unacknowledged.len() + audited_not_made <= outcomes.creations_lost,
        "{} API keys made unacknowledged and {audited_not_made} audited but not made: more than the {} creations cut off",
        unacknowledged.len(),
        outcomes.creations_lost
    );
    let token = support::create_pod(&deployment.dev_cluster_dir(), &deployment.digest, "keys");
    let key = Arc::new(DpopKey::generate().unwrap());
    runtime.block_on(async {
        let checks: Vec<_> = outcomes
            .created
            .iter()
            .map(|(id, api_key)| {
                let (clients, id, api_key) = (clients.clone(), id.clone(), api_key.clone());
                let (token, key) = (token.clone(), key.clone());
                tokio::spawn(async move {
                    let answer = clients.open_session(&api_key, &token, &key).await.unwrap();
                    assert_eq!(
                        answer.status,
                        201,
                        "a session with acknowledged API key {id}: {}",
                        reason(&answer)
                    );
                })
            })
            .collect();
        for check in checks {
            check.await.unwrap();
        }
    });
    (unacknowledged.len(), audited_not_made)
}

/// Every acknowledged digest is approved and audited; one whose change was
/// cut off is absent, or approved and audited; the image's digest is
/// still approved, and nothing else is. Returns how many cut-off changes
/// were made.
fn check_digests(
    runtime: &tokio::runtime::Runtime,
    clients: &Clients,
    deployment: &Deployment,
    outcomes: &Outcomes,
    records: &[AuditRecord],
) -> usize {
    let policy = runtime
        .block_on(clients.admin.policies())
        .unwrap()
        .into_iter()
        .find(|p| {
            (
                p.cluster.as_str(),
                p.namespace.as_str(),
                p.service_account.as_str(),
            ) == ("prod", "shop", "api")
        })
        .expect("the policy of prod/shop/api");
    let approved: BTreeSet<String> = policy.digests.into_iter().collect();
    let audited: BTreeSet<String> = admin_intents(records, AdminAction::PolicyDigests)
        .into_iter()
        .flat_map(|d| d.added.unwrap_or_default())
        .collect();
    assert!(
        approved.contains(&deployment.digest),
        "the image's digest is no longer approved"
    );
    let mut made = 0;
    for (digest, acknowledged) in &outcomes.digests {
        if *acknowledged {
            assert!(
                approved.contains(digest),
                "acknowledged digest {digest} is not approved after the restart"
            );
            assert!(
                audited.contains(digest),
                "acknowledged digest {digest} has no audit record"
            );
        } else if approved.contains(digest) {
            assert!(
                audited.contains(digest),
                "digest {digest} is approved but its change was never audited"
            );
            made += 1;
        }
    }
    let sent: BTreeSet<&String> = outcomes
        .digests
        .iter()
        .map(|(d, _)| d)
        .chain([&deployment.digest])
        .collect();
    assert!(
        approved.iter().all(|d| sent.contains(d)),
        "digests approved that nobody sent"
    );
    made
}

#[test]
fn sigkill_mid_sessions_unwraps_and_admin_writes_loses_nothing_acknowledged() {
    let started = Instant::now();
    let dir = tempfile::TempDir::new().unwrap();
    let mut deployment = Deployment::start(
        &podseal_test_support::binaries::podseal(),
        dir.path(),
        "warn",
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clients = Arc::new(Clients::new(&deployment));
    let keys_before: BTreeSet<String> = runtime
        .block_on(clients.admin.api_keys())
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    let pods: Vec<Arc<Pod>> = (0..UNWRAPPING_PODS)
        .map(|i| {
            let name = format!("busy-{i}");
            let token =
                support::create_pod(&deployment.dev_cluster_dir(), &deployment.digest, &name);
            Arc::new(runtime.block_on(clients.enrol(&name, &token)))
        })
        .collect();
    eprintln!(
        "deployment and {UNWRAPPING_PODS} sessions ready in {:?}",
        started.elapsed()
    );

    let loading = Instant::now();
    let (requests, in_flight) = load_then_kill(&runtime, &clients, &mut deployment, &pods);
    let load_time = loading.elapsed();
    let figures = figures(&requests);
    for kind in KINDS {
        assert!(
            figures[&kind].2 > 0,
            "no {kind:?} request was in flight at the kill"
        );
    }
    let outcomes = Outcomes::of(requests);

    let restarting = Instant::now();
    deployment.restart();
    let restart_time = restarting.elapsed();
    // The killed server's connections are gone: new clients.
    let clients = Arc::new(Clients::new(&deployment));

    let records = verified_export(&runtime, &clients, &deployment, "after the restart");
    let unacknowledged_unwraps_recorded = check_unwraps(&outcomes, &records);
    let sessions: Vec<Arc<Pod>> = pods.iter().chain(&outcomes.established).cloned().collect();
    check_sessions(&runtime, &clients, &sessions, &records);
    let cut_off_recorded = check_cut_off(&runtime, &clients, &outcomes.cut_off, &records);
    let (keys_unacknowledged, keys_audited_not_made) = check_api_keys(
        &runtime,
        &clients,
        &deployment,
        &outcomes,
        &keys_before,
        &records,
    );
    let digests_unacknowledged =
        check_digests(&runtime, &clients, &deployment, &outcomes, &records);
    // The restarted server continues the log: it verifies, and begins
    // with every record of the first export.
    let last = verified_export(&runtime, &clients, &deployment, "after the checks");
    assert!(last.len() > records.len());
    assert_eq!(last[..records.len()], records[..], "the log was rewritten");
    deployment.stop();

    let names = [
        "sessions",
        "unwraps",
        "API key creations",
        "digest approvals",
    ];
    for (i, (kind, name)) in KINDS.iter().zip(names).enumerate() {
        let (started, acknowledged, spanning, lost) = figures[kind];
        eprintln!(
            "{name}: {started} started, {acknowledged} acknowledged, {spanning} in flight at the kill ({lost} unanswered; {} seen in flight to the frozen server)",
            in_flight[i]
        );
    }
    eprintln!(
        "export: {} records after the restart, verified; {} after the checks, verified, the first {} unchanged",
        records.len(),
        last.len(),
        records.len()
    );
    eprintln!(
        "unwraps: every acknowledged one recorded; {unacknowledged_unwraps_recorded} unacknowledged recorded too"
    );
    eprintln!(
        "sessions: {} acknowledged (8 before the load) recorded, pinned against another key and serving; {} cut off re-enrolled with their key ({cut_off_recorded} of them recorded)",
        sessions.len(),
        outcomes.cut_off.len()
    );
    eprintln!(
        "API keys: {} acknowledged listed, audited and authenticating; {keys_unacknowledged} unacknowledged listed (bound, audited); {keys_audited_not_made} audited but not made",
        outcomes.created.len()
    );
    eprintln!(
        "digests: {} acknowledged approved and audited; {digests_unacknowledged} unacknowledged approved (audited)",
        outcomes.digests.iter().filter(|(_, a)| *a).count()
    );
    eprintln!(
        "load {load_time:?}, restart to ready {restart_time:?}, all done in {:?}",
        started.elapsed()
    );
}
