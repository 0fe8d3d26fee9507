//! Three `podseal-server` processes on one PostgreSQL, as replicas behind one
//! Service: one external URL (the DPoP `htu`), one org key, one audit key,
//! one TLS certificate, one database; the stand-in runs as
//! `podseal-dev cluster serve`. The Service is played by this test: it
//! spreads requests round-robin over the replicas in its rotation, and
//! (where a scenario says so) retries a request that could not reach a
//! replica on the next one.
//!
//! One start of the three serves every scenario, in this order:
//! 1. 32 concurrent session establishments for one pod UID, each with its
//!    own DPoP key, spread over the replicas: exactly one pin.
//! 2. A second DPoP key enrolling for a pinned pod on another replica is
//!    refused (`dpop/pod_key_already_pinned`).
//! 3. A DPoP proof used on replica 0 and replayed on the others is refused
//!    (`dpop/jti_replayed`).
//! 4. An API key revoked through one replica (`podseal apikey revoke`) is
//!    refused by the others on the next request (`api_key/api_key_revoked`):
//!    every request reads the key from the database, so that is the bound.
//! 5. A replica killed with SIGKILL mid-burst: no acknowledged unwrap lacks
//!    its allowed `unwrap` audit record, and the export verifies.
//! 6. A rolling restart of all three (SIGTERM, exit, start, `/readyz`) under
//!    a steady client: every request is served, none is refused, and the
//!    export verifies.
//! 7. A replaced JWKS (`podseal cluster add --replace` through one replica)
//!    refuses tokens of the old key on that replica at once and on the
//!    others within `clusters.refresh_secs`, cached verifications included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use podseal_core::audit::parse_public_key;
use podseal_core::capsule::Capsule;
use podseal_core::dpop::DpopKey;
use podseal_core::envelope::seal;
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey as _};
use podseal_core::org_key::OrgPublicKey;
use podseal_core::wire::UnwrapAnswer;
use podseal_keys::key_file::read_public_key;
use podseal_sdk::https::{Answer, HttpsClient, TransportError};
use podseal_sdk::protocol::{
    self, Credentials, Endpoint, Freshness, PendingUnwrap, SessionInfo, SignedRequest,
};
use podseal_test_support::fixtures::{kubernetes_scope, seal_params};
use serde_json::Value;
use support::faults::{KillFlag, allowed_unwraps, audit_records, reason, wait_until};
use support::{Replicas, SERVICE_URL};

mod support;

const REPLICAS: usize = 3;

/// A pod with a session: its projected token, its pinned DPoP key, the session.
struct Pod {
    token: String,
    key: DpopKey,
    session: SessionInfo,
}

/// The clients' side of the Service: one HTTPS client per replica (all
/// trusting the one certificate), the replicas in rotation, and how many
/// requests are in flight to each.
struct Service {
    clients: Vec<HttpsClient>,
    api_key: String,
    org: OrgPublicKey,
    in_rotation: Vec<AtomicBool>,
    in_flight: Vec<AtomicUsize>,
    next: AtomicUsize,
}

impl Service {
    fn new(replicas: &Replicas) -> Self {
        let clients = replicas
            .replicas
            .iter()
            .map(|r| {
                HttpsClient::new(&r.url, Some(&replicas.ca_pem))
                    .unwrap()
                    .with_timeout(Duration::from_secs(15))
            })
            .collect();
        Self {
            clients,
            api_key: replicas.api_key.clone(),
            org: read_public_key(&replicas.org_pub).unwrap(),
            in_rotation: (0..REPLICAS).map(|_| AtomicBool::new(true)).collect(),
            in_flight: (0..REPLICAS).map(|_| AtomicUsize::new(0)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    fn fresh() -> Freshness<'static> {
        Freshness {
            iat: jiff::Timestamp::now().as_second(),
            nonce: None,
        }
    }

    /// `POST /v1/sessions` on `replica` for the pod holding `token`, enrolling `key`.
    async fn open_session(
        &self,
        replica: usize,
        api_key: &str,
        token: &str,
        key: &DpopKey,
    ) -> Answer {
        let recipient = LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
        let request = Endpoint::new(SERVICE_URL)
            .session(
                Credentials { api_key, token },
                key,
                recipient.public_key_bytes(),
                Self::fresh(),
            )
            .unwrap();
        self.send(replica, &request).await.unwrap()
    }

    async fn send(
        &self,
        replica: usize,
        request: &SignedRequest,
    ) -> Result<Answer, TransportError> {
        self.clients[replica]
            .send(
                Method::POST,
                request.path(),
                &request.headers(),
                Some(request.body().to_vec()),
            )
            .await
    }

    /// A session on `replica` for the pod holding `token`, with a new key.
    async fn enrol(&self, replica: usize, api_key: &str, token: &str) -> Pod {
        let key = DpopKey::generate().unwrap();
        let answer = self.open_session(replica, api_key, token, &key).await;
        assert_eq!(answer.status, 201, "a session: {}", reason(&answer));
        Pod {
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

    /// An unwrap of `capsule` by `pod`, built by the SDK's request builder
    /// with a fresh proof.
    fn unwrap_request(api_key: &str, pod: &Pod, capsule: &Capsule) -> PendingUnwrap {
        Endpoint::new(SERVICE_URL)
            .unwrap(
                Credentials {
                    api_key,
                    token: &pod.token,
                },
                &pod.key,
                &pod.session,
                &[&capsule.envelope],
                Self::fresh(),
            )
            .unwrap()
    }

    /// `POST /v1/unwrap` of a new capsule on `replica` with a fresh proof;
    /// answered, not refused.
    async fn unwrap_ok(&self, replica: usize, api_key: &str, pod: &Pod) {
        let capsule = self.capsule();
        let pending = Self::unwrap_request(api_key, pod, &capsule);
        let answer = self.send(replica, pending.request()).await.unwrap();
        assert_eq!(answer.status, 200, "replica {replica}: {}", reason(&answer));
    }

    /// The next replica in rotation (round-robin).
    fn pick(&self) -> usize {
        for _ in 0..REPLICAS {
            let replica = self.next.fetch_add(1, SeqCst) % REPLICAS;
            if self.in_rotation[replica].load(SeqCst) {
                return replica;
            }
        }
        panic!("no replica in rotation");
    }

    /// The replica in rotation after `replica` (where a retry goes).
    fn after(&self, replica: usize) -> usize {
        (1..=REPLICAS)
            .map(|step| (replica + step) % REPLICAS)
            .find(|r| self.in_rotation[*r].load(SeqCst))
            .expect("a replica in rotation")
    }
}

/// Scenario 1: Concurrent enrolments for one pod UID across replicas pin one key.
async fn concurrent_enrolments_pin_one_key(service: &Arc<Service>, token: &str) {
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (service, token) = (service.clone(), token.to_owned());
            tokio::spawn(async move {
                let key = DpopKey::generate().unwrap();
                let answer = service
                    .open_session(i % REPLICAS, &service.api_key, &token, &key)
                    .await;
                (key, answer)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let granted: Vec<usize> = (0..answers.len())
        .filter(|i| answers[*i].1.status == 201)
        .collect();
    let reasons: Vec<String> = answers.iter().map(|(_, a)| reason(a)).collect();
    assert_eq!(granted.len(), 1, "one pin, not {granted:?}: {reasons:?}");
    for (i, answer) in answers.iter().enumerate() {
        if i != granted[0] {
            assert_eq!(
                reason(&answer.1),
                "dpop/pod_key_already_pinned",
                "{reasons:?}"
            );
        }
    }
    // The winner's session works on every replica.
    let (key, answer) = answers.swap_remove(granted[0]);
    let pod = Pod {
        token: token.to_owned(),
        key,
        session: protocol::session_answer(answer.status, &answer.body).unwrap(),
    };
    for replica in 0..REPLICAS {
        service.unwrap_ok(replica, &service.api_key, &pod).await;
    }
}

/// Scenario 2: A second key for a pinned pod is refused on another replica (and on
/// every one), while the pinned key enrols there.
async fn second_key_refused_on_other_replicas(service: &Service, token: &str) -> Pod {
    let pod = service.enrol(0, &service.api_key, token).await;
    let other = DpopKey::generate().unwrap();
    for replica in [1, 2, 0] {
        let answer = service
            .open_session(replica, &service.api_key, token, &other)
            .await;
        assert_eq!(
            reason(&answer),
            "dpop/pod_key_already_pinned",
            "replica {replica}"
        );
    }
    let again = service
        .open_session(2, &service.api_key, token, &pod.key)
        .await;
    assert_eq!(again.status, 201, "the pinned key: {}", reason(&again));
    pod
}

/// Scenario 3: A proof used on replica 0 is refused when replayed on 1 and 2, which
/// serve the same session with fresh proofs.
async fn proof_replayed_on_other_replicas(service: &Service, pod: &Pod) {
    let capsule = service.capsule();
    let used = Service::unwrap_request(&service.api_key, pod, &capsule);
    let answer = service.send(0, used.request()).await.unwrap();
    assert_eq!(answer.status, 200, "{}", reason(&answer));
    for replica in [1, 2] {
        let replayed = service.send(replica, used.request()).await.unwrap();
        assert_eq!(reason(&replayed), "dpop/jti_replayed", "replica {replica}");
        service.unwrap_ok(replica, &service.api_key, pod).await;
    }
}

/// Scenario 4: An API key revoked through replica 2 is refused by 0 and 1 (and 2) on
/// the next request; the other API key is unaffected.
fn revoked_api_key_refused_on_other_replicas(
    runtime: &tokio::runtime::Runtime,
    service: &Service,
    replicas: &Replicas,
    token: &str,
    bystander: &Pod,
) {
    let created: Value = serde_json::from_str(&replicas.admin(
        1,
        &[
            "apikey",
            "create",
            "--cluster",
            "prod",
            "--namespace",
            "shop",
            "--service-account",
            "api",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let pod = runtime.block_on(async {
        let pod = service.enrol(0, key, token).await;
        for replica in 0..REPLICAS {
            service.unwrap_ok(replica, key, &pod).await;
        }
        pod
    });
    replicas.admin(2, &["apikey", "revoke", id]);
    runtime.block_on(async {
        for replica in [0, 1, 2] {
            let capsule = service.capsule();
            let pending = Service::unwrap_request(key, &pod, &capsule);
            let answer = service.send(replica, pending.request()).await.unwrap();
            assert_eq!(
                reason(&answer),
                "api_key/api_key_revoked",
                "replica {replica}, the next request after the revocation"
            );
        }
        let answer = service
            .open_session(1, key, token, &DpopKey::generate().unwrap())
            .await;
        assert_eq!(reason(&answer), "api_key/api_key_revoked");
        service.unwrap_ok(0, &service.api_key, bystander).await;
    });
}

/// One attempt of a request on one replica.
#[derive(Debug)]
struct Attempt {
    replica: usize,
    /// Started before the kill flag was raised (which precedes the SIGKILL).
    started_before_kill: bool,
    /// Ended after the kill flag was raised.
    ended_after_kill: bool,
    /// Status and reason, or the transport error.
    result: Result<(u16, String), String>,
}

/// One unwrap request (one capsule) and its attempts.
#[derive(Debug)]
struct Request {
    capsule: String,
    attempts: Vec<Attempt>,
}

impl Request {
    fn acknowledged(&self) -> bool {
        self.attempts
            .last()
            .is_some_and(|a| matches!(a.result, Ok((200, _))))
    }
}

/// Clients sending unwraps through the Service until `stop`.
struct Load {
    stop: AtomicBool,
    killed: KillFlag,
    /// Answered 200, in all and per replica.
    acknowledged: AtomicUsize,
    served: Vec<AtomicUsize>,
    retries: AtomicUsize,
    requests: Mutex<Vec<Request>>,
}

/// Most requests per client, and attempts per request (bounds, never reached).
const MAX_REQUESTS_PER_CLIENT: usize = 2000;
const MAX_ATTEMPTS: usize = 6;

impl Load {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            stop: AtomicBool::new(false),
            killed: KillFlag::default(),
            acknowledged: AtomicUsize::new(0),
            served: (0..REPLICAS).map(|_| AtomicUsize::new(0)).collect(),
            retries: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        })
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.load(SeqCst)
    }

    /// One client: unwraps of a new capsule each, with a fresh proof per
    /// attempt, round-robin; with `retry`, a request that cannot reach a
    /// replica goes to the next one (the Service).
    async fn client(self: Arc<Self>, service: Arc<Service>, pod: Arc<Pod>, retry: bool) {
        for _ in 0..MAX_REQUESTS_PER_CLIENT {
            if self.stop.load(SeqCst) {
                return;
            }
            let sealed = service.capsule();
            let capsule = sealed.header().id.clone();
            let mut replica = service.pick();
            let mut attempts = Vec::new();
            for _ in 0..MAX_ATTEMPTS {
                let pending = Service::unwrap_request(&service.api_key, &pod, &sealed);
                service.in_flight[replica].fetch_add(1, SeqCst);
                let timed = self
                    .killed
                    .time(service.send(replica, pending.request()))
                    .await;
                service.in_flight[replica].fetch_sub(1, SeqCst);
                let mut attempt = Attempt {
                    replica,
                    started_before_kill: timed.started_before_kill,
                    ended_after_kill: timed.ended_after_kill,
                    result: Err(String::new()),
                };
                match timed.value {
                    Ok(answer) => {
                        if answer.status == 200 {
                            let released: UnwrapAnswer =
                                serde_json::from_slice(&answer.body).unwrap();
                            assert_eq!(released.releases.len(), 1);
                            assert_eq!(released.releases[0].capsule_id, capsule);
                            self.served[replica].fetch_add(1, SeqCst);
                            self.acknowledged.fetch_add(1, SeqCst);
                        }
                        attempt.result = Ok((answer.status.as_u16(), reason(&answer)));
                        attempts.push(attempt);
                        break;
                    }
                    Err(error) => {
                        attempt.result = Err(error.to_string());
                        attempts.push(attempt);
                        if !retry {
                            break;
                        }
                        self.retries.fetch_add(1, SeqCst);
                        replica = service.after(replica);
                    }
                }
            }
            self.requests
                .lock()
                .unwrap()
                .push(Request { capsule, attempts });
        }
    }

    /// Starts one client per pod on `runtime`.
    fn start(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Runtime,
        service: &Arc<Service>,
        pods: &[Arc<Pod>],
        retry: bool,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        pods.iter()
            .map(|pod| runtime.spawn(self.clone().client(service.clone(), pod.clone(), retry)))
            .collect()
    }

    /// Stops the clients and returns every request.
    fn finish(
        &self,
        runtime: &tokio::runtime::Runtime,
        clients: Vec<tokio::task::JoinHandle<()>>,
    ) -> Vec<Request> {
        self.stop.store(true, SeqCst);
        runtime.block_on(async {
            for client in clients {
                client.await.unwrap();
            }
        });
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

/// Exports the audit log through replica `via` (`podseal audit export`),
/// checks it with `podseal audit verify` and the shared audit public key,
/// and returns the verifier's report and the ids of capsules with an
/// allowed `unwrap` record.
fn export_and_verify(
    replicas: &Replicas,
    dir: &Path,
    via: usize,
    name: &str,
) -> (Value, BTreeSet<String>) {
    let file = dir.join(name);
    let file = file.to_str().unwrap();
    let key = dir.join("audit.pub");
    replicas.admin(via, &["audit", "export", "--out", file]);
    let report: Value = serde_json::from_str(&replicas.run(&[
        "audit",
        "verify",
        "--key",
        key.to_str().unwrap(),
        file,
        "-o",
        "json",
    ]))
    .unwrap();
    let records = audit_records(&std::fs::read_to_string(file).unwrap());
    (report, allowed_unwraps(&records))
}

/// Every acknowledged unwrap in `requests` has an allowed record in `unwrapped`.
fn assert_recorded(requests: &[Request], unwrapped: &BTreeSet<String>, what: &str) {
    let missing: Vec<&str> = requests
        .iter()
        .filter(|r| r.acknowledged() && !unwrapped.contains(&r.capsule))
        .map(|r| r.capsule.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: {} acknowledged unwraps have no audit record: {missing:?}",
        missing.len()
    );
}

/// Scenario 5: SIGKILL to replica 2 (frozen with SIGSTOP first) while requests are in flight to it, after some
/// were served: every unwrap answered 200 has its allowed record in the
/// export (through replica 0), which verifies. No retries here: each
/// request has one attempt, so each acknowledged capsule was answered by
/// exactly one replica.
fn sigkill_mid_burst(
    runtime: &tokio::runtime::Runtime,
    service: &Arc<Service>,
    replicas: &mut Replicas,
    dir: &Path,
    pods: &[Arc<Pod>],
) -> Vec<Request> {
    const KILLED: usize = 2;
    let load = Load::new();
    let clients = load.start(runtime, service, pods, false);
    wait_until("100 unwraps are served", Duration::from_secs(30), || {
        load.acknowledged() >= 100
    });
    // Frozen first, so that the requests caught in flight cannot finish in
    // the moment between seeing them and the kill (on a loaded machine they
    // did, and the scenario then tested nothing).
    replicas.freeze(KILLED);
    wait_until(
        "two requests are in flight to the frozen replica",
        Duration::from_secs(30),
        || service.in_flight[KILLED].load(SeqCst) >= 2,
    );
    let in_flight_at_kill = service.in_flight[KILLED].load(SeqCst);
    load.killed.raise();
    replicas.kill(KILLED);
    service.in_rotation[KILLED].store(false, SeqCst);
    let at_kill = load.acknowledged();
    wait_until(
        "the survivors serve 100 more unwraps",
        Duration::from_secs(30),
        || load.acknowledged() >= at_kill + 100,
    );
    let requests = load.finish(runtime, clients);

    let mut lost_in_flight = 0;
    for attempt in requests.iter().flat_map(|r| &r.attempts) {
        match &attempt.result {
            Ok((200, _)) => {}
            Ok((status, why)) => panic!("refused during the burst: {status} {why} {attempt:?}"),
            Err(_) if attempt.replica == KILLED && attempt.ended_after_kill => {
                lost_in_flight += usize::from(attempt.started_before_kill);
            }
            Err(error) => panic!("a request failed without the kill: {error} {attempt:?}"),
        }
    }
    assert!(
        lost_in_flight > 0,
        "no request was in flight to the killed replica"
    );
    let acknowledged: Vec<&Request> = requests.iter().filter(|r| r.acknowledged()).collect();
    let (report, unwrapped) = export_and_verify(replicas, dir, 0, "after-kill.jsonl");
    assert_recorded(&requests, &unwrapped, "after SIGKILL");
    let lost_but_recorded = requests
        .iter()
        .filter(|r| !r.acknowledged() && unwrapped.contains(&r.capsule))
        .count();
    eprintln!(
        "SIGKILL mid-burst: {} requests, {} acknowledged (all recorded), {in_flight_at_kill} in flight to the killed replica at the kill, {lost_in_flight} lost ({lost_but_recorded} of the unacknowledged recorded anyway), export {report}",
        requests.len(),
        acknowledged.len(),
    );
    requests
}

/// Scenario 6: The killed replica comes back, then each replica in turn is stopped
/// with SIGTERM, started again with the same config and put back in
/// rotation once `/readyz` answers 200, while clients keep unwrapping: every
/// request is served (a request that cannot reach a stopping replica is
/// retried on the next, as the Service does), none is refused, each
/// restarted replica serves again, and the export (through replica 1)
/// verifies with every acknowledged unwrap recorded.
fn rolling_restart(
    runtime: &tokio::runtime::Runtime,
    service: &Arc<Service>,
    replicas: &mut Replicas,
    dir: &Path,
    pods: &[Arc<Pod>],
    earlier: &[Request],
) {
    replicas.start_replica(2);
    replicas.wait_ready(2);
    service.in_rotation[2].store(true, SeqCst);
    let load = Load::new();
    let clients = load.start(runtime, service, pods, true);
    wait_until("20 unwraps are served", Duration::from_secs(30), || {
        load.acknowledged() >= 20
    });
    for replica in 0..REPLICAS {
        replicas.terminate(replica);
        // The Service drops the endpoint once the pod is gone ...
        service.in_rotation[replica].store(false, SeqCst);
        replicas.start_replica(replica);
        replicas.wait_ready(replica);
        // ... and adds it back once it is ready.
        let served = load.served[replica].load(SeqCst);
        service.in_rotation[replica].store(true, SeqCst);
        wait_until(
            &format!("restarted replica {replica} serves 10 unwraps"),
            Duration::from_secs(30),
            || load.served[replica].load(SeqCst) >= served + 10,
        );
    }
    let requests = load.finish(runtime, clients);
    for request in &requests {
        assert!(
            request.acknowledged(),
            "a request was never served: {request:?}"
        );
        for attempt in &request.attempts {
            if let Ok((status, why)) = &attempt.result {
                assert_eq!(
                    *status, 200,
                    "refused during the restart: {why} {request:?}"
                );
            }
        }
    }
    let (report, unwrapped) = export_and_verify(replicas, dir, 1, "after-restart.jsonl");
    assert_recorded(&requests, &unwrapped, "after the rolling restart");
    assert_recorded(earlier, &unwrapped, "the burst, after the rolling restart");
    eprintln!(
        "rolling restart: {} requests, all served, {} retried on the next replica, export {report}",
        requests.len(),
        load.retries.load(SeqCst),
    );
}

/// The replicas' `clusters.refresh_secs` (set by the fixture).
const REFRESH_SECS: u64 = 1;

/// Scenario 7: The cluster's token-signing key is replaced (the stand-in
/// rotates it; `podseal cluster add --replace` through replica 0 pins the
/// new JWKS). A token signed by the old key, verified and cached by every
/// replica just before, is refused by replica 0 at once and by the others
/// within `clusters.refresh_secs` (plus scheduling slack), each emptying its
/// token cache; a token from the new key is then served by all three.
fn replaced_jwks_reaches_every_replica(
    runtime: &tokio::runtime::Runtime,
    service: &Service,
    replicas: &Replicas,
) {
    let old_token = replicas.pod("rotating");
    let pod = runtime.block_on(async {
        let pod = service.enrol(0, &service.api_key, &old_token).await;
        for replica in 0..REPLICAS {
            service.unwrap_ok(replica, &service.api_key, &pod).await;
        }
        pod
    });
    let dc = replicas.dev_cluster_dir();
    let file = |name: &str| dc.join(name).to_str().unwrap().to_owned();
    replicas.dev(&["cluster", "rotate-signing-key", "--dir", &file("")]);
    replicas.admin(
        0,
        &[
            "cluster",
            "add",
            "prod",
            "--api-server",
            &replicas.cluster_url,
            "--ca-bundle",
            &file("ca.pem"),
            "--token-file",
            &file("reader.token"),
            "--replace",
        ],
    );
    let replaced = Instant::now();
    let bound = Duration::from_secs(REFRESH_SECS) + Duration::from_secs(4);
    let attempt = |replica: usize, pod: &Pod| {
        runtime.block_on(async {
            let capsule = service.capsule();
            let pending = Service::unwrap_request(&service.api_key, pod, &capsule);
            let answer = service.send(replica, pending.request()).await.unwrap();
            reason(&answer)
        })
    };
    assert_eq!(attempt(0, &pod), "token/kid_unknown", "replica 0, at once");
    let mut picked_up = Vec::new();
    for replica in 1..REPLICAS {
        loop {
            match attempt(replica, &pod).as_str() {
                "token/kid_unknown" => break,
                "HTTP 200" => assert!(
                    replaced.elapsed() < bound,
                    "replica {replica} still accepts a token of the replaced key after {:?}",
                    replaced.elapsed()
                ),
                other => panic!("replica {replica}: {other}"),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        picked_up.push(replaced.elapsed());
    }
    let pod = Pod {
        token: replicas.token("rotating"),
        ..pod
    };
    for replica in 0..REPLICAS {
        assert_eq!(
            attempt(replica, &pod),
            "HTTP 200",
            "replica {replica}, a token of the new key"
        );
    }
    eprintln!("replaced JWKS: refused by replicas 1 and 2 after {picked_up:?}");
}

#[test]
fn three_replica_processes_on_one_postgres() {
    let started = Instant::now();
    let dir = tempfile::TempDir::new().unwrap();
    let mut replicas = Replicas::start(
        &podseal_test_support::binaries::podseal(),
        dir.path(),
        REPLICAS,
        "warn",
    );
    eprintln!("three replicas ready in {:?}", started.elapsed());
    std::fs::write(dir.path().join("audit.pub"), &replicas.audit_public_key).unwrap();
    for replica in &replicas.replicas {
        let written = std::fs::read_to_string(replica.state_dir.join("audit.pub")).unwrap();
        assert_eq!(
            parse_public_key(&written),
            parse_public_key(&replicas.audit_public_key),
            "one audit key"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let service = Arc::new(Service::new(&replicas));
    let enrolling = replicas.pod("enrolling");
    let pinned = replicas.pod("pinned");
    let revoking = replicas.pod("revoking");
    let busy: Vec<String> = (0..8).map(|i| replicas.pod(&format!("busy-{i}"))).collect();

    runtime.block_on(concurrent_enrolments_pin_one_key(&service, &enrolling));
    let pod = runtime.block_on(second_key_refused_on_other_replicas(&service, &pinned));
    runtime.block_on(proof_replayed_on_other_replicas(&service, &pod));
    revoked_api_key_refused_on_other_replicas(&runtime, &service, &replicas, &revoking, &pod);
    eprintln!("pins, replays and revocation in {:?}", started.elapsed());

    let pods: Vec<Arc<Pod>> = runtime.block_on(async {
        let mut pods = Vec::new();
        for (i, token) in busy.iter().enumerate() {
            pods.push(Arc::new(
                service.enrol(i % REPLICAS, &service.api_key, token).await,
            ));
        }
        pods
    });
    let burst = sigkill_mid_burst(&runtime, &service, &mut replicas, dir.path(), &pods);
    eprintln!("SIGKILL mid-burst done in {:?}", started.elapsed());
    rolling_restart(
        &runtime,
        &service,
        &mut replicas,
        dir.path(),
        &pods[..3],
        &burst,
    );
    replaced_jwks_reaches_every_replica(&runtime, &service, &replicas);
    for replica in 0..REPLICAS {
        replicas.terminate(replica);
    }
    eprintln!("all done in {:?}", started.elapsed());
}
