//! Simulated pods: each has its own running pod in the stand-in, its own
//! projected token, its own Ed25519 DPoP key (pinned by its first session)
//! and X25519 recipient key, all in this process's memory, and is served by
//! one replica (pods are spread round-robin, as a Service would).
//!
//! A request is what a pod sends: a fresh DPoP proof signed at send time
//! (`ath` bound to the session for an unwrap), the API key and the token.
//! Keys, tokens and session ids never appear in a message or a label.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use podseal_core::capsule::{Capsule, KubernetesScope, RevealMode, Scope};
use podseal_core::clock::{Clock as _, SystemClock};
use podseal_core::dpop::DpopKey;
use podseal_core::envelope::{self, SealParams};
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey as _};
use podseal_sdk::https::{Answer, HttpsClient, TransportError};
use podseal_sdk::protocol::{
    self, Credentials, Endpoint, Freshness, PendingUnwrap, ProtocolError, SessionInfo,
    SignedRequest,
};
use zeroize::Zeroizing;

use crate::deployment::{AUDIENCE, CLUSTER, Deployment, EXTERNAL_URL, NAMESPACE, SERVICE_ACCOUNT};
use crate::error::DeploymentError;
use crate::labels::{refusal_label, transport_label};

/// How long enrolment retries a session the server cannot decide yet (503).
const ENROL_DEADLINE: Duration = Duration::from_secs(30);
/// The secret every pod opens (not a real secret: a benchmark value).
const PLAINTEXT: &[u8] = b"benchmark value, 32 bytes long!!";

/// Why a simulated pod's request failed, or a release did not check out.
/// What it says is the label the report counts the failure under (a
/// bounded set): never a token, key or session id.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// There are no pods.
    #[error("no pod")]
    NoPod,
    /// A pod's replica has no client.
    #[error("no replica")]
    NoReplica,
    /// A replica serves none of the pods.
    #[error("a replica without pods")]
    ReplicaWithoutPods,
    /// The request could not be built (its proof or its body).
    #[error(transparent)]
    Request(ProtocolError),
    /// No answer: counted as `transport: timeout`, `transport:
    /// unreachable` or `transport: request`; the error is its source.
    #[error("{}", transport_label(.0))]
    Transport(#[source] TransportError),
    /// Not the status the request should get: `401 dpop/key_not_pinned`,
    /// or `HTTP 502` for an answer without a problem document.
    #[error("{0}")]
    Refused(String),
    /// The answer did not open as the pod opens it.
    #[error(transparent)]
    Answer(ProtocolError),
    /// The answer released no key.
    #[error("no release")]
    NoRelease,
    /// The released key does not open the capsule (the error is not
    /// kept: what a failed decryption says is not shown).
    #[error("the capsule did not open with the released key")]
    DidNotOpen,
    /// The capsule opened, to other bytes than were sealed.
    #[error("the capsule opened to other bytes")]
    OtherBytes,
}

impl PodError {
    fn refused(answer: &Answer) -> Self {
        Self::Refused(refusal_label(answer))
    }
}

/// One simulated pod.
struct Pod {
    replica: usize,
    dpop: DpopKey,
    recipient: LocalPrivateKey,
    token: Zeroizing<String>,
    session: SessionInfo,
}

/// Every simulated pod, the capsule they open, and a client per replica.
pub struct Pods {
    pods: Vec<Pod>,
    clients: Vec<HttpsClient>,
    api_key: Zeroizing<String>,
    endpoint: Endpoint,
    capsule: Capsule,
}

/// The name of simulated pod `i` in the stand-in.
pub fn pod_name(i: usize) -> String {
    format!("load-{i}")
}

impl Pods {
    /// Creates `count` pods in the stand-in, gets their tokens, and opens
    /// one session each through its replica (which pins its DPoP key).
    pub async fn enrol(deployment: &Deployment, count: usize) -> Result<Self, DeploymentError> {
        let capsule = seal_capsule(deployment)?;
        let mut pods = Self {
            pods: Vec::with_capacity(count),
            clients: deployment
                .replicas
                .iter()
                .map(|r| r.client.clone())
                .collect(),
            api_key: Zeroizing::new(deployment.api_key().to_owned()),
            endpoint: Endpoint::new(EXTERNAL_URL),
            capsule,
        };
        let replicas = pods.clients.len().max(1);
        for i in 0..count {
            let name = pod_name(i);
            deployment.create_pod(&name).await?;
            let token = deployment.token(&name, AUDIENCE).await?;
            let recipient =
                LocalPrivateKey::generate(KemId::X25519HkdfSha256).map_err(|e| generation(&e))?;
            let mut pod = Pod {
                replica: i % replicas,
                dpop: DpopKey::generate().map_err(|e| generation(&e))?,
                recipient,
                token,
                session: SessionInfo {
                    id: String::new(),
                    expires_at: 0,
                },
            };
            pod.session = pods.first_session(&pod, &name).await?;
            pods.pods.push(pod);
        }
        Ok(pods)
    }

    /// How many pods.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// No pods.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    fn pod(&self, i: u64) -> Result<(&Pod, &HttpsClient), PodError> {
        let count = self.pods.len().max(1) as u64;
        let pod = usize::try_from(i % count)
            .ok()
            .and_then(|i| self.pods.get(i))
            .ok_or(PodError::NoPod)?;
        let client = self.clients.get(pod.replica).ok_or(PodError::NoReplica)?;
        Ok((pod, client))
    }

    /// The first session of a new pod, retried while the server answers
    /// 503 (its view has not seen the pod yet), for [`ENROL_DEADLINE`].
    async fn first_session(&self, pod: &Pod, name: &str) -> Result<SessionInfo, DeploymentError> {
        let until = Instant::now() + ENROL_DEADLINE;
        let client = self
            .clients
            .get(pod.replica)
            .ok_or_else(|| DeploymentError::Timeout("no replica".into()))?;
        loop {
            let failed = |reason: String| DeploymentError::Request {
                what: format!("the first session of pod {name}"),
                reason,
            };
            let answer = self
                .send_session(pod, client)
                .await
                .map_err(|e| failed(transport_label(&e)))?;
            if answer.status == StatusCode::CREATED {
                return protocol::session_answer(answer.status, &answer.body)
                    .map_err(|e| failed(e.to_string()));
            }
            if answer.status != StatusCode::SERVICE_UNAVAILABLE || Instant::now() >= until {
                return Err(failed(refusal_label(&answer)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn credentials<'a>(&'a self, pod: &'a Pod) -> Credentials<'a> {
        Credentials {
            api_key: &self.api_key,
            token: &pod.token,
        }
    }

    async fn send(client: &HttpsClient, request: &SignedRequest) -> Result<Answer, TransportError> {
        client
            .send(
                Method::POST,
                request.path(),
                &request.headers(),
                Some(request.body().to_vec()),
            )
            .await
    }

    async fn send_session(
        &self,
        pod: &Pod,
        client: &HttpsClient,
    ) -> Result<Answer, TransportError> {
        let request = self
            .endpoint
            .session(
                self.credentials(pod),
                &pod.dpop,
                pod.recipient.public_key_bytes(),
                Freshness {
                    iat: SystemClock.now(),
                    nonce: None,
                },
            )
            .map_err(|e| TransportError::Request(e.to_string()))?;
        Self::send(client, &request).await
    }

    /// Pod `i mod P` establishes a new session with its pinned key (201).
    pub async fn establish_session(&self, i: u64) -> Result<(), PodError> {
        let (pod, client) = self.pod(i)?;
        let answer = self
            .send_session(pod, client)
            .await
            .map_err(PodError::Transport)?;
        if answer.status == StatusCode::CREATED {
            Ok(())
        } else {
            Err(PodError::refused(&answer))
        }
    }

    /// Pod `i mod P` unwraps the capsule in its session (200); returns
    /// the request (to check the answer against) and the answer.
    async fn send_unwrap(
        &self,
        pod: &Pod,
        client: &HttpsClient,
    ) -> Result<(PendingUnwrap, Answer), PodError> {
        let pending = self
            .endpoint
            .unwrap(
                self.credentials(pod),
                &pod.dpop,
                &pod.session,
                &[&self.capsule.envelope],
                Freshness {
                    iat: SystemClock.now(),
                    nonce: None,
                },
            )
            .map_err(PodError::Request)?;
        let answer = Self::send(client, pending.request())
            .await
            .map_err(PodError::Transport)?;
        if answer.status == StatusCode::OK {
            Ok((pending, answer))
        } else {
            Err(PodError::refused(&answer))
        }
    }

    /// Pod `i mod P` unwraps the capsule (one capsule, a fresh proof).
    pub async fn unwrap(&self, i: u64) -> Result<(), PodError> {
        let (pod, client) = self.pod(i)?;
        self.send_unwrap(pod, client).await.map(drop)
    }

    /// One unwrap by every replica's first pod, opened as the pod would:
    /// proves the benchmark measures real releases of the real capsule.
    pub async fn check_releases_open(&self) -> Result<(), PodError> {
        for replica in 0..self.clients.len() {
            let pod = self
                .pods
                .iter()
                .find(|p| p.replica == replica)
                .ok_or(PodError::ReplicaWithoutPods)?;
            let client = self.clients.get(replica).ok_or(PodError::NoReplica)?;
            let (pending, answer) = self.send_unwrap(pod, client).await?;
            let deks = pending
                .open_answer(answer.status, &answer.body, &pod.recipient)
                .map_err(PodError::Answer)?;
            let dek = deks.first().ok_or(PodError::NoRelease)?;
            let plaintext =
                envelope::decrypt_content(&self.capsule, dek).map_err(|_| PodError::DidNotOpen)?;
            if plaintext.expose_secret_bytes() != PLAINTEXT {
                return Err(PodError::OtherBytes);
            }
        }
        Ok(())
    }

    /// A shareable handle for the load driver's closures.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}

fn generation(error: &dyn std::fmt::Display) -> DeploymentError {
    DeploymentError::Generate {
        what: "a pod key",
        reason: error.to_string(),
    }
}

/// The capsule every pod opens: one 32-byte value for `bench/bench/load`.
fn seal_capsule(deployment: &Deployment) -> Result<Capsule, DeploymentError> {
    envelope::seal(
        SealParams {
            scope: Scope::Kubernetes(KubernetesScope {
                cluster: CLUSTER.into(),
                namespace: NAMESPACE.into(),
                service_accounts: vec![SERVICE_ACCOUNT.into()],
                name: "bench-value".into(),
                key: None,
            }),
            purpose: None,
            reveal: RevealMode::Many,
            created_at: SystemClock.now(),
            not_after: None,
        },
        PLAINTEXT,
        &[deployment.org_public()],
    )
    .map_err(|e| DeploymentError::Generate {
        what: "the capsule",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::chain;

    #[test]
    fn a_failure_is_counted_under_its_label_and_shown_with_its_cause() {
        let timeout = PodError::Transport(TransportError::Timeout("https://127.0.0.1:1".into()));
        assert_eq!(timeout.to_string(), "transport: timeout");
        assert_eq!(
            chain(&timeout),
            "transport: timeout: the server at https://127.0.0.1:1 did not answer in time"
        );
        let built = PodError::Request(ProtocolError::Request("a batch of 0".into()));
        assert_eq!(chain(&built), "a batch of 0");
        assert_eq!(chain(&PodError::NoRelease), "no release");
    }
}
