//! Release sessions and unwraps: the four gates composed, with storage and
//! the audit log. HTTP-free, so every refusal is testable directly; the
//! HTTPS layer only translates requests and [`Refusal`]s.
//!
//! Session establishment runs gate 1 (API key), gate 2 (projected token,
//! scope equal to the key's), gate 3 (one fresh DPoP proof, `jti` recorded),
//! gate 4 (live pod, approved digests), and only then pins the DPoP key to
//! the pod uid — so a stolen token cannot pin a key for a pod that is not
//! live. Unwrap repeats gates 1, 2 and 4, checks the proof is from the
//! session's pinned key and bound to the session (`ath`), checks each
//! capsule's scope against the verified identity, and re-wraps only the DEK.
//!
//! Every decision is audited; the answer is given only after its audit
//! records are durable, and a failed audit write refuses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podseal_core::audit::event::{Enrolment, ReleaseDetails};
use podseal_core::audit::{Event, Outcome};
use podseal_core::capsule::{DekEnvelope, RevealMode};
use podseal_core::clock::SharedClock;
use podseal_core::dpop::VerifiedProof;
use podseal_core::envelope::{OpenError, ReleaseBinding, ReleasedDek, rewrap_for_release};
use podseal_core::key_provider::OrgKeyProvider;
use podseal_core::scope::{self, KubernetesIdentity, ScopeMismatch, VerifiedIdentity};
use sha2::{Digest, Sha256};

use crate::audit_log::AuditWriter;
use crate::cluster::{ClusterRegistry, ConnectedCluster};
use crate::gate::live_pod::{self, LivePodDecision};
use crate::gate::{Gate, Reason, Refusal};
use crate::gate::{api_key, dpop, enrolment, token};
use crate::identity::WorkloadIdentity;
use crate::nonce::NonceIssuer;
use crate::pod_view::ViewAnswer;
use crate::storage::{
    ApiKeyRecord, CommitItem, ContainerInstance, JtiRecord, PinOutcome, PolicyRecord,
    SessionRecord, Storage,
};

/// Tunables of the release path.
#[derive(Debug, Clone)]
pub struct ReleaseConfig {
    /// The server's external URL (DPoP `htu` is compared against it, never the Host header).
    pub external_url: String,
    /// Longest session, seconds (also bounded by the token's `exp`).
    pub max_session_secs: i64,
    /// How old a DPoP proof's `iat` may be, seconds.
    pub dpop_max_age_secs: i64,
    /// How far in the future `iat` may be, seconds.
    pub dpop_max_skew_secs: i64,
    /// How long a session request waits for the pod view to show its
    /// container's running instance (a restarted container runs before the
    /// kubelet reports it).
    pub enrolment_wait: Duration,
}

impl Default for ReleaseConfig {
    fn default() -> Self {
        Self {
            external_url: "https://127.0.0.1:8443".into(),
            max_session_secs: 3600,
            dpop_max_age_secs: 60,
            dpop_max_skew_secs: 5,
            enrolment_wait: Duration::from_secs(5),
        }
    }
}

/// How session requests enrolled, for `/metrics`.
#[derive(Debug, Default)]
pub struct EnrolmentCounts {
    pinned: AtomicU64,
    same_key: AtomicU64,
    after_restart: AtomicU64,
    conflict: AtomicU64,
}

impl EnrolmentCounts {
    /// (kind, count) for every kind: `pinned` (a container's first key),
    /// `same_key`, `after_restart` (a restarted container's new key
    /// replaced the old one), `conflict` (another key holds the running
    /// instance's pin: refused; an enrolment race or a second process).
    pub fn snapshot(&self) -> [(&'static str, u64); 4] {
        [
            ("pinned", self.pinned.load(Ordering::Relaxed)),
            ("same_key", self.same_key.load(Ordering::Relaxed)),
            ("after_restart", self.after_restart.load(Ordering::Relaxed)),
            ("conflict", self.conflict.load(Ordering::Relaxed)),
        ]
    }

    /// Another key holds the pin of the running instance: refused, counted.
    fn conflict(&self) -> Refusal {
        self.conflict.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "enrolment conflict: another DPoP key is pinned to this container instance; if it just started, another process enrolled first"
        );
        Refusal::new(
            Gate::Dpop,
            Reason::PodKeyAlreadyPinned,
            "another DPoP key is pinned to this container while it runs; a restarted container enrols afresh (if this container just started, another process enrolled first: treat the API key and token as exposed)",
        )
    }
}

/// What every request carries. `Debug` redacts all of it: each is a
/// credential.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The bound API key.
    pub api_key: &'a str,
    /// The projected ServiceAccount token.
    pub token: &'a str,
    /// Every `DPoP` header value the request carried (exactly one is allowed).
    pub dpop: &'a [&'a str],
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials([redacted], {} DPoP)", self.dpop.len())
    }
}

/// A granted session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGrant {
    /// The session id; also the access token DPoP proofs bind to with `ath`.
    pub session_id: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Everything an unwrap needs besides the credentials.
#[derive(Debug, Clone)]
pub struct UnwrapRequest {
    /// The session.
    pub session_id: String,
    /// Capsule headers and wraps only (never content).
    pub capsules: Vec<DekEnvelope>,
}

/// One capsule's release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Capsule id.
    pub capsule_id: String,
    /// The DEK sealed to the session's recipient key.
    pub released: ReleasedDek,
    /// The `jti` the release is bound to.
    pub jti: String,
}

/// The release service.
pub struct ReleaseService<S: Storage> {
    storage: Arc<S>,
    clusters: Arc<ClusterRegistry<S>>,
    org_keys: Arc<dyn OrgKeyProvider + Send + Sync>,
    nonces: NonceIssuer,
    config: ReleaseConfig,
    audit: Arc<AuditWriter<S>>,
    enrolments: EnrolmentCounts,
}

/// SHA-256 of an API key, as stored.
pub fn api_key_hash(api_key: &str) -> [u8; 32] {
    Sha256::digest(api_key.as_bytes()).into()
}

/// The Secret name and key a released capsule's header names, so that the
/// audit record says which Secret's value a pod received.
fn note_secret(audit: &mut ReleaseDetails, header: &podseal_core::capsule::Header) {
    if let Some(scope) = header.scope.as_kubernetes() {
        audit.secret = Some(scope.name.clone());
        audit.secret_key.clone_from(&scope.key);
    }
}

/// Who gate 2 says is asking, for the audit record.
fn note_identity(audit: &mut ReleaseDetails, identity: &WorkloadIdentity) {
    audit.namespace = Some(identity.namespace.clone());
    audit.service_account = Some(identity.service_account.clone());
    audit.pod = Some(identity.pod_name.clone());
    audit.pod_uid = Some(identity.pod_uid.clone());
    audit.credential_id.clone_from(&identity.credential_id);
    if let Some(node) = &identity.node {
        audit.node = Some(node.name.clone());
        audit.node_uid = Some(node.uid.clone());
    }
}

/// A short, non-reversible label for a session id in audit records.
fn session_label(session_id: &str) -> String {
    let digest = Sha256::digest(session_id.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.get(..9).unwrap_or_default())
}

fn random_id() -> Result<String, Refusal> {
    podseal_core::random_id::<32>()
        .map_err(|_| Refusal::new(Gate::Request, Reason::ServerError, "randomness unavailable"))
}

/// Storage that failed on the release path: refused, logged.
fn storage_refusal(error: crate::storage::StorageError) -> Refusal {
    tracing::error!(%error, "storage failed on the release path");
    Refusal::new(
        Gate::Request,
        Reason::StorageUnavailable,
        "the server cannot decide right now",
    )
}

/// The replay record of a verified proof, kept while it could be fresh.
fn jti_record(config: &ReleaseConfig, proof: &VerifiedProof) -> JtiRecord {
    JtiRecord {
        jkt: proof.thumbprint.clone(),
        jti: proof.claims.jti.clone(),
        expires_at: proof.claims.iat + config.dpop_max_age_secs + config.dpop_max_skew_secs,
    }
}

struct Verified {
    key: ApiKeyRecord,
    cluster: Arc<ConnectedCluster>,
    identity: WorkloadIdentity,
    policy: Option<PolicyRecord>,
}

impl Verified {
    fn require_nonce(&self) -> bool {
        self.policy.as_ref().is_some_and(|p| p.require_nonce)
    }
}

impl<S: Storage> ReleaseService<S> {
    /// A service over `storage`, the clusters of `clusters` and the org
    /// keys, auditing through `audit`.
    pub fn new(
        storage: Arc<S>,
        clusters: Arc<ClusterRegistry<S>>,
        audit: Arc<AuditWriter<S>>,
        org_keys: Arc<dyn OrgKeyProvider + Send + Sync>,
        nonces: NonceIssuer,
        config: ReleaseConfig,
    ) -> Self {
        Self {
            audit,
            storage,
            clusters,
            org_keys,
            nonces,
            config,
            enrolments: EnrolmentCounts::default(),
        }
    }

    /// How session requests enrolled so far.
    pub fn enrolments(&self) -> &EnrolmentCounts {
        &self.enrolments
    }

    /// A fresh DPoP server nonce (sent as `DPoP-Nonce` on every release answer).
    pub fn issue_nonce(&self) -> String {
        self.nonces.issue(self.now())
    }

    /// The storage this service decides from.
    pub fn storage(&self) -> &Arc<S> {
        &self.storage
    }

    /// Seconds since the Unix epoch, by the injected clock.
    fn now(&self) -> i64 {
        self.clock().now()
    }

    /// The clock every decision on time reads (session and capsule expiry,
    /// nonces, pins): the audit writer's, so records and decisions share
    /// one time; the system clock, or a test's `ManualClock`.
    pub fn clock(&self) -> &SharedClock {
        self.audit.clock()
    }

    /// The release configuration.
    pub fn config(&self) -> &ReleaseConfig {
        &self.config
    }

    /// The clusters this service releases to.
    pub fn clusters(&self) -> &Arc<ClusterRegistry<S>> {
        &self.clusters
    }

    /// What keeps the server from deciding now (empty when ready): storage,
    /// and each cluster's pod view.
    pub async fn readiness(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(error) = self.storage.audit_head().await {
            problems.push(format!("storage: {error}"));
        } else if self.audit.failing() {
            // Reads can succeed on a disk gone read-only: after a failed
            // commit, ready means a write can be made durable again.
            match self.storage.probe_write().await {
                Ok(()) => self.audit.recovered(),
                Err(error) => problems.push(format!("storage: writes fail: {error}")),
            }
        }
        problems.extend(self.clusters.readiness());
        problems
    }

    /// Audits a refusal, then returns it.
    async fn refused<T>(
        &self,
        event: Event,
        audit: &ReleaseDetails,
        refusal: Refusal,
    ) -> Result<T, Refusal> {
        tracing::info!(
            gate = refusal.gate.code(),
            reason = refusal.reason.code(),
            "{event} refused"
        );
        self.audit
            .write(vec![self.audit.record(
                event,
                Outcome::Refused,
                Some(&refusal),
                audit,
            )])
            .await?;
        Err(refusal)
    }

    /// The writer this service audits through (the admin service holds it too).
    pub fn audit_writer(&self) -> &Arc<AuditWriter<S>> {
        &self.audit
    }

    /// Gates 1 and 2: the API key, the token, and their agreement. The key,
    /// its policy and the session `session_id` (returned as is) come from
    /// storage in one read.
    async fn verify_caller(
        &self,
        credentials: &Credentials<'_>,
        session_id: Option<&str>,
        audit: &mut ReleaseDetails,
    ) -> Result<(Verified, Option<SessionRecord>), Refusal> {
        let context = self
            .storage
            .request_context(api_key_hash(credentials.api_key), session_id)
            .await
            .map_err(storage_refusal)?;
        let key = api_key::known(context.api_key)?;
        audit.api_key = Some(key.id.clone());
        audit.cluster = Some(key.cluster.clone());
        api_key::not_revoked(&key)?;
        let cluster = api_key::cluster_registered(self.clusters.get(&key.cluster))?;
        let identity = token::verify(
            &key.cluster,
            &cluster.tokens,
            &cluster.token_cache,
            credentials.token,
            self.now(),
        )?;
        note_identity(audit, &identity);
        api_key::bound_to(&key, &identity)?;
        // The read took the policy of the key's namespace and service
        // account, which are the token's (checked just above).
        let verified = Verified {
            key,
            cluster,
            identity,
            policy: context.policy,
        };
        Ok((verified, context.session))
    }

    /// Gate 3's stateless checks plus the replay record.
    async fn verify_dpop(
        &self,
        proofs: &[&str],
        route: &str,
        access_token: Option<&str>,
        require_nonce: bool,
        audit: &mut ReleaseDetails,
    ) -> Result<VerifiedProof, Refusal> {
        let verified = self.check_proof(proofs, route, access_token, require_nonce, audit)?;
        let jti = jti_record(&self.config, &verified);
        let fresh = self
            .storage
            .record_jti(&jti.jkt, &jti.jti, jti.expires_at)
            .await
            .map_err(storage_refusal)?;
        if !fresh {
            return Err(replayed());
        }
        Ok(verified)
    }

    /// Gate 3's stateless checks: one proof, its signature and claims, and
    /// the server nonce when the policy requires one. The `jti` is recorded
    /// by the caller.
    fn check_proof(
        &self,
        proofs: &[&str],
        route: &str,
        access_token: Option<&str>,
        require_nonce: bool,
        audit: &mut ReleaseDetails,
    ) -> Result<VerifiedProof, Refusal> {
        let proof = dpop::one_header(proofs)?;
        let rules = dpop::ProofRules {
            external_url: self.config.external_url.trim_end_matches('/'),
            max_age_secs: self.config.dpop_max_age_secs,
            max_skew_secs: self.config.dpop_max_skew_secs,
        };
        let now = self.now();
        let verified = dpop::verify(proof, rules, route, access_token, now)?;
        audit.jkt = Some(verified.thumbprint.clone());
        dpop::nonce_as_required(&verified, require_nonce, |nonce| {
            self.nonces.is_fresh(nonce, now)
        })?;
        Ok(verified)
    }

    /// Gate 4 with audit mode recorded loudly; the pod's facts when the view
    /// had them.
    async fn check_live_pod(
        &self,
        verified: &Verified,
        audit: &mut ReleaseDetails,
    ) -> Result<ViewAnswer, Refusal> {
        let identity = &verified.identity;
        let answer = verified
            .cluster
            .view
            .lookup(&identity.namespace, &identity.pod_name)
            .await;
        self.decide_live_pod(answer, verified, audit).await
    }

    /// Gate 4 on an answer of the pod view.
    async fn decide_live_pod(
        &self,
        answer: ViewAnswer,
        verified: &Verified,
        audit: &mut ReleaseDetails,
    ) -> Result<ViewAnswer, Refusal> {
        match live_pod::decide(&answer, &verified.identity, verified.policy.as_ref())? {
            LivePodDecision::Allowed => Ok(answer),
            LivePodDecision::AuditOnly(refusal) => {
                tracing::warn!(
                    gate = refusal.gate.code(),
                    reason = refusal.reason.code(),
                    "AUDIT MODE: strict mode would refuse this release"
                );
                self.audit
                    .write(vec![self.audit.record(
                        Event::AuditMode,
                        Outcome::AuditModeWouldRefuse,
                        Some(&refusal),
                        audit,
                    )])
                    .await?;
                Ok(answer)
            }
        }
    }

    /// The running instance of `container` in `answer` (gate 4's answer for
    /// this request) when it is not `not`; otherwise waits (up to
    /// `deadline`) for the pod view to show one: a restarted container's
    /// process runs before the kubelet reports its new instance. Gate 4 is
    /// decided again on an answer waited for (a restart may have brought
    /// another image, and a debug container may have joined).
    async fn running_instance(
        &self,
        verified: &Verified,
        answer: Option<&ViewAnswer>,
        container: &str,
        not: Option<&str>,
        deadline: Instant,
        audit: &mut ReleaseDetails,
    ) -> Result<Option<ContainerInstance>, Refusal> {
        let identity = &verified.identity;
        let fits = |answer: &ViewAnswer| {
            enrolment::running_id(answer, container).is_some_and(|id| Some(id) != not)
        };
        let waited;
        let answer = match answer.filter(|a| fits(a)) {
            Some(answer) => answer,
            None => {
                let seen = verified
                    .cluster
                    .view
                    .lookup_until(&identity.namespace, &identity.pod_name, deadline, fits)
                    .await;
                waited = self.decide_live_pod(seen, verified, audit).await?;
                &waited
            }
        };
        Ok(enrolment::running_id(answer, container)
            .filter(|id| Some(*id) != not)
            .map(|id| ContainerInstance {
                pod_uid: identity.pod_uid.clone(),
                container: container.to_owned(),
                container_id: id.to_owned(),
            }))
    }

    /// Pins the proof's key to the running instance of the request's
    /// container (see [`enrolment`]), starting from gate 4's `answer`: a
    /// container's first key, the same key again, or a restarted
    /// container's new key (the old instance's pin and sessions end).
    /// Another key for the instance that still runs is refused, after
    /// waiting for a restart the view has not shown yet.
    async fn enrol(
        &self,
        verified: &Verified,
        answer: &ViewAnswer,
        declared: Option<&str>,
        jkt: &str,
        expires_at: i64,
        audit: &mut ReleaseDetails,
    ) -> Result<ContainerInstance, Refusal> {
        let ViewAnswer::Present(facts) = answer else {
            // Only audit mode lets an absent or unknown pod past gate 4, and
            // a pin needs the container's running instance.
            return Err(enrolment::not_running(declared.unwrap_or("(none named)")));
        };
        let container = enrolment::choose(facts, declared)?.name.clone();
        audit.container = Some(container.clone());
        let deadline = Instant::now() + self.config.enrolment_wait;
        let mut first = Some(answer);
        let mut not = None;
        loop {
            let Some(instance) = self
                .running_instance(
                    verified,
                    first.take(),
                    &container,
                    not.as_deref(),
                    deadline,
                    audit,
                )
                .await?
            else {
                return Err(match not {
                    None => enrolment::not_running(&container),
                    Some(_) => self.enrolments.conflict(),
                });
            };
            audit.container_id = Some(instance.container_id.clone());
            let outcome = self
                .storage
                .pin_dpop_key(
                    &verified.key.cluster,
                    &instance,
                    jkt,
                    expires_at,
                    self.now(),
                )
                .await
                .map_err(storage_refusal)?;
            let (kind, counter) = match outcome {
                PinOutcome::Pinned => (Enrolment::Pinned, &self.enrolments.pinned),
                PinOutcome::AlreadyPinned => (Enrolment::SameKey, &self.enrolments.same_key),
                PinOutcome::Replaced {
                    old_jkt,
                    old_container_id,
                    sessions_revoked,
                } => {
                    audit.replaced_jkt = Some(old_jkt);
                    audit.replaced_container_id = Some(old_container_id);
                    audit.sessions_revoked = Some(sessions_revoked);
                    (Enrolment::AfterRestart, &self.enrolments.after_restart)
                }
                PinOutcome::OtherKeyPinned if Instant::now() < deadline => {
                    // Perhaps a restart the API server has not shown yet:
                    // wait for another instance, and refuse if none comes.
                    not = Some(instance.container_id);
                    continue;
                }
                PinOutcome::OtherKeyPinned => return Err(self.enrolments.conflict()),
            };
            audit.enrolment = Some(kind);
            counter.fetch_add(1, Ordering::Relaxed);
            return Ok(instance);
        }
    }

    /// `POST /v1/sessions`: the four gates, then the pin and the session.
    pub async fn establish_session(
        &self,
        credentials: Credentials<'_>,
        recipient_key: &[u8],
        container: Option<&str>,
    ) -> Result<SessionGrant, Refusal> {
        let mut audit = ReleaseDetails::default();
        match self
            .try_establish(credentials, recipient_key, container, &mut audit)
            .await
        {
            Ok(grant) => {
                audit.session = Some(session_label(&grant.session_id));
                let record = self
                    .audit
                    .record(Event::Session, Outcome::Allowed, None, &audit);
                self.audit.write(vec![record]).await?;
                Ok(grant)
            }
            Err(refusal) => self.refused(Event::Session, &audit, refusal).await,
        }
    }

    async fn try_establish(
        &self,
        credentials: Credentials<'_>,
        recipient_key: &[u8],
        container: Option<&str>,
        audit: &mut ReleaseDetails,
    ) -> Result<SessionGrant, Refusal> {
        let (verified, _) = self.verify_caller(&credentials, None, audit).await?;
        let proof = self
            .verify_dpop(
                credentials.dpop,
                "/v1/sessions",
                None,
                verified.require_nonce(),
                audit,
            )
            .await?;
        // Refused here, before gate 4 and the pin, not at the first unwrap:
        // a low-order key makes every release's DH all zero, and a
        // non-canonical one is not a key the pod's own code produced.
        if podseal_core::hpke::validate_public_key(
            podseal_core::hpke::KemId::X25519HkdfSha256,
            recipient_key,
        )
        .is_err()
        {
            return Err(Refusal::new(
                Gate::Request,
                Reason::RecipientKeyInvalid,
                "the recipient key must be a canonical 32-byte X25519 public key of large order",
            ));
        }
        let answer = self.check_live_pod(&verified, audit).await?;
        let identity = &verified.identity;
        let expires_at = identity
            .expires_at
            .min(self.now() + self.config.max_session_secs);
        let instance = self
            .enrol(
                &verified,
                &answer,
                container,
                &proof.thumbprint,
                expires_at,
                audit,
            )
            .await?;
        let now = self.now();
        let session_id = random_id()?;
        let session = SessionRecord {
            id: session_id.clone(),
            cluster: verified.key.cluster.clone(),
            namespace: identity.namespace.clone(),
            service_account: identity.service_account.clone(),
            pod_name: identity.pod_name.clone(),
            pod_uid: identity.pod_uid.clone(),
            container: instance.container,
            container_id: instance.container_id,
            jkt: proof.thumbprint,
            recipient_key: recipient_key.to_vec(),
            api_key_id: verified.key.id.clone(),
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        self.storage
            .insert_session(session)
            .await
            .map_err(storage_refusal)?;
        Ok(SessionGrant {
            session_id,
            expires_at,
        })
    }

    /// `POST /v1/unwrap`: gates again, then one re-wrap per capsule. The
    /// proof's `jti` is recorded in the same transaction as the audit
    /// records (group commit), so an unwrap costs one read and a share of
    /// one commit; a replayed proof is refused there, after the re-wrap was
    /// computed and before anything is answered.
    pub async fn unwrap(
        &self,
        credentials: Credentials<'_>,
        request: UnwrapRequest,
    ) -> Result<Vec<Release>, Refusal> {
        let mut audit = ReleaseDetails {
            session: Some(session_label(&request.session_id)),
            ..ReleaseDetails::default()
        };
        let mut jti = None;
        let outcome = self
            .try_unwrap(credentials, &request, &mut audit, &mut jti)
            .await;
        let replay = self
            .audit
            .record(Event::Unwrap, Outcome::Refused, Some(&replayed()), &audit);
        match outcome {
            Ok(releases) => {
                let records = releases
                    .iter()
                    .zip(&request.capsules)
                    .map(|(release, envelope)| {
                        let mut context = audit.clone();
                        context.capsule = Some(release.capsule_id.clone());
                        note_secret(&mut context, envelope.header());
                        self.audit
                            .record(Event::Unwrap, Outcome::Allowed, None, &context)
                    })
                    .collect();
                let item = CommitItem {
                    jti,
                    records,
                    if_replayed: vec![replay],
                };
                if self.audit.commit(item).await? {
                    Ok(releases)
                } else {
                    tracing::info!(
                        gate = "dpop",
                        reason = Reason::JtiReplayed.code(),
                        "unwrap refused"
                    );
                    Err(replayed())
                }
            }
            Err(refusal) => {
                tracing::info!(
                    gate = refusal.gate.code(),
                    reason = refusal.reason.code(),
                    "unwrap refused"
                );
                // A proof that got this far is used up, refused or not.
                let item = CommitItem {
                    jti,
                    records: vec![self.audit.record(
                        Event::Unwrap,
                        Outcome::Refused,
                        Some(&refusal),
                        &audit,
                    )],
                    if_replayed: vec![replay],
                };
                if self.audit.commit(item).await? {
                    Err(refusal)
                } else {
                    Err(replayed())
                }
            }
        }
    }

    async fn try_unwrap(
        &self,
        credentials: Credentials<'_>,
        request: &UnwrapRequest,
        audit: &mut ReleaseDetails,
        jti: &mut Option<JtiRecord>,
    ) -> Result<Vec<Release>, Refusal> {
        if request.capsules.is_empty() || request.capsules.len() > MAX_BATCH {
            return Err(Refusal::new(
                Gate::Request,
                Reason::BatchSize,
                format!("an unwrap carries 1 to {MAX_BATCH} capsules"),
            ));
        }
        let (verified, session) = self
            .verify_caller(&credentials, Some(&request.session_id), audit)
            .await?;
        let session = live_session(session, &verified, self.now())?;
        let proof = self.check_proof(
            credentials.dpop,
            "/v1/unwrap",
            Some(&request.session_id),
            verified.require_nonce(),
            audit,
        )?;
        *jti = Some(jti_record(&self.config, &proof));
        if proof.thumbprint != session.jkt {
            return Err(Refusal::new(
                Gate::Dpop,
                Reason::KeyNotPinned,
                "the proof is not signed by the session's pinned key",
            ));
        }
        let answer = self.check_live_pod(&verified, audit).await?;
        check_instance(&session, &answer)?;
        let binding = ReleaseBinding {
            session_id: &request.session_id,
            jti: &proof.claims.jti,
        };
        let mut releases = Vec::with_capacity(request.capsules.len());
        for envelope in &request.capsules {
            let header = envelope.header();
            audit.capsule = Some(header.id.clone());
            check_scope(envelope, &verified, self.now())?;
            let released = rewrap_for_release(
                envelope,
                self.org_keys.as_ref(),
                &session.recipient_key,
                binding,
            )
            .map_err(|e| Refusal::new(Gate::Scope, e.reason(), open_refusal_detail(&e)))?;
            releases.push(Release {
                capsule_id: header.id.clone(),
                released,
                jti: proof.claims.jti.clone(),
            });
        }
        Ok(releases)
    }

    /// `POST /v1/sessions/rotate-key`: the `DPoP` header holds a proof from
    /// the session's current key, `new_proof` one from the new key; both bound
    /// to the session (`ath`) and fresh. The pin and the session move to the
    /// new key atomically, or nothing changes.
    pub async fn rotate_key(
        &self,
        credentials: Credentials<'_>,
        session_id: &str,
        new_proof: &str,
    ) -> Result<String, Refusal> {
        let mut audit = ReleaseDetails {
            session: Some(session_label(session_id)),
            ..ReleaseDetails::default()
        };
        match self
            .try_rotate(credentials, session_id, new_proof, &mut audit)
            .await
        {
            Ok(new_jkt) => {
                audit.new_jkt = Some(new_jkt.clone());
                let record = self
                    .audit
                    .record(Event::RotateKey, Outcome::Allowed, None, &audit);
                self.audit.write(vec![record]).await?;
                Ok(new_jkt)
            }
            Err(refusal) => self.refused(Event::RotateKey, &audit, refusal).await,
        }
    }

    async fn try_rotate(
        &self,
        credentials: Credentials<'_>,
        session_id: &str,
        new_proof: &str,
        audit: &mut ReleaseDetails,
    ) -> Result<String, Refusal> {
        const ROUTE: &str = "/v1/sessions/rotate-key";
        let (verified, session) = self
            .verify_caller(&credentials, Some(session_id), audit)
            .await?;
        let session = live_session(session, &verified, self.now())?;
        let old = self
            .verify_dpop(
                credentials.dpop,
                ROUTE,
                Some(session_id),
                verified.require_nonce(),
                audit,
            )
            .await?;
        if old.thumbprint != session.jkt {
            return Err(Refusal::new(
                Gate::Dpop,
                Reason::KeyNotPinned,
                "rotation needs a proof signed by the session's current key",
            ));
        }
        let new = self
            .verify_dpop(
                &[new_proof],
                ROUTE,
                Some(session_id),
                verified.require_nonce(),
                audit,
            )
            .await?;
        if new.thumbprint == old.thumbprint {
            return Err(Refusal::new(
                Gate::Dpop,
                Reason::SameKey,
                "the new key is the current key",
            ));
        }
        let rotated = self
            .storage
            .rotate_pin(
                &session.cluster,
                &session.pod_uid,
                &session.container,
                &old.thumbprint,
                &new.thumbprint,
            )
            .await
            .map_err(storage_refusal)?;
        if !rotated {
            return Err(Refusal::new(
                Gate::Dpop,
                Reason::KeyNotPinned,
                "the pin moved meanwhile; rotation refused",
            ));
        }
        self.storage
            .set_session_jkt(session_id, &new.thumbprint)
            .await
            .map_err(storage_refusal)?;
        Ok(new.thumbprint)
    }
}

/// The session of an unwrap or rotation, checked against the verified caller.
fn live_session(
    session: Option<SessionRecord>,
    verified: &Verified,
    now: i64,
) -> Result<SessionRecord, Refusal> {
    let session = session
        .ok_or_else(|| Refusal::new(Gate::Dpop, Reason::SessionUnknown, "no such session"))?;
    if session.revoked_at.is_some() {
        return Err(Refusal::new(
            Gate::Dpop,
            Reason::SessionRevoked,
            "the session was revoked (its pod is gone)",
        ));
    }
    if session.expires_at <= now {
        return Err(Refusal::new(
            Gate::Dpop,
            Reason::SessionExpired,
            "the session has expired",
        ));
    }
    let identity = &verified.identity;
    let same = session.cluster == verified.key.cluster
        && session.pod_uid == identity.pod_uid
        && session.namespace == identity.namespace
        && session.service_account == identity.service_account
        && session.api_key_id == verified.key.id;
    if !same {
        return Err(Refusal::new(
            Gate::Dpop,
            Reason::SessionMismatch,
            "the session belongs to another pod or key",
        ));
    }
    Ok(session)
}

/// The session's container instance is still the running one (sessions
/// opened before version 5 carry none and are bound to the pod only).
fn check_instance(session: &SessionRecord, answer: &ViewAnswer) -> Result<(), Refusal> {
    if session.container_id.is_empty()
        || enrolment::running_id(answer, &session.container) == Some(session.container_id.as_str())
    {
        return Ok(());
    }
    Err(Refusal::new(
        Gate::LivePod,
        Reason::ContainerRestarted,
        format!(
            "container {} restarted or stopped since this session was opened; its new process opens a new session",
            session.container
        ),
    ))
}

pub use podseal_core::wire::MAX_BATCH;

fn replayed() -> Refusal {
    Refusal::new(
        Gate::Dpop,
        Reason::JtiReplayed,
        "this DPoP proof was already used",
    )
}

/// Public text for a capsule that did not open (never which check failed).
fn open_refusal_detail(error: &OpenError) -> &'static str {
    match error {
        OpenError::NoKnownStanzaKind { .. } => {
            "the capsule has no wrap of a kind this server knows (wrapped by a newer podseal)"
        }
        _ => {
            "the capsule did not open with this server's org keys (altered, or sealed to another key)"
        }
    }
}

/// The capsule's release scope against the verified caller, by the one
/// scope check in core. This server verifies Kubernetes identities only, so
/// a capsule of another scope kind is refused by name before any stanza is
/// opened.
fn check_scope(envelope: &DekEnvelope, verified: &Verified, now: i64) -> Result<(), Refusal> {
    let header = envelope.header();
    let identity = VerifiedIdentity::Kubernetes(KubernetesIdentity {
        cluster: &verified.key.cluster,
        namespace: &verified.identity.namespace,
        service_account: &verified.identity.service_account,
    });
    scope::check(&header.scope, &identity).map_err(|mismatch| match mismatch {
        ScopeMismatch::Kind { scope, identity } => Refusal::new(
            Gate::Scope,
            Reason::ScopeKindUnsupported,
            format!(
                "this capsule's scope is {scope}; this server verifies {identity} identities only"
            ),
        ),
        other => Refusal::new(Gate::Scope, other.reason(), other.to_string()),
    })?;
    if header.not_after.is_some_and(|t| t <= now) {
        return Err(Refusal::new(
            Gate::Scope,
            Reason::CapsuleExpired,
            "the capsule's not-after time has passed",
        ));
    }
    if header.reveal == RevealMode::Once {
        return Err(Refusal::new(
            Gate::Scope,
            Reason::RevealOnceUnsupported,
            "reveal-once capsules are not released by this server version",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use crate::pod_view::{ContainerFacts, ContainerKind, PodFacts};

    fn session(container_id: &str) -> SessionRecord {
        SessionRecord {
            id: "s".into(),
            cluster: "prod".into(),
            namespace: "shop".into(),
            service_account: "api".into(),
            pod_name: "api-0".into(),
            pod_uid: "uid".into(),
            container: "api".into(),
            container_id: container_id.into(),
            jkt: "jkt".into(),
            recipient_key: vec![7; 32],
            api_key_id: "key".into(),
            created_at: 0,
            expires_at: i64::MAX,
            revoked_at: None,
        }
    }

    fn pod(running_id: Option<&str>) -> ViewAnswer {
        ViewAnswer::Present(PodFacts {
            namespace: "shop".into(),
            name: "api-0".into(),
            uid: "uid".into(),
            phase: Some("Running".into()),
            terminating: false,
            service_account: Some("api".into()),
            node_name: Some("node-1".into()),
            image_volumes: Vec::new(),
            git_repo_volumes: Vec::new(),
            containers: vec![ContainerFacts {
                kind: ContainerKind::App,
                name: "api".into(),
                image: "registry.example/api:1".into(),
                image_id: None,
                digest: None,
                running_id: running_id.map(str::to_owned),
                restart_count: 0,
                declares_podseal: false,
            }],
        })
    }

    /// An unwrap from a session whose container instance is no longer the
    /// running one is refused, even when no revocation reached storage (a
    /// missed watch event): a dead instance's session releases nothing.
    #[test]
    fn a_session_releases_only_while_its_container_instance_runs() {
        let reason = |session: &SessionRecord, answer: &ViewAnswer| {
            check_instance(session, answer).err().map(|r| r.reason)
        };
        assert_eq!(reason(&session("cid-1"), &pod(Some("cid-1"))), None);
        for answer in [pod(Some("cid-2")), pod(None), ViewAnswer::Absent] {
            assert_eq!(
                reason(&session("cid-1"), &answer),
                Some(Reason::ContainerRestarted),
                "{answer:?}"
            );
        }
        // A session opened before version 5 is bound to the pod only.
        assert_eq!(reason(&session(""), &pod(Some("cid-2"))), None);
    }

    /// A derived `Debug` would print the API key, the token and the proof.
    #[test]
    fn credentials_never_print_what_they_hold() {
        let credentials = Credentials {
            api_key: "psk_secret-api-key",
            token: "eyJ.secret-token.sig",
            dpop: &["eyJ.secret-proof.sig"],
        };
        let printed = format!("{credentials:?}");
        for secret in ["psk_secret", "secret-token", "secret-proof"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
