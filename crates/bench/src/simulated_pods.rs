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
    self, Credentials, Endpoint, Freshness, PendingUnwrap, SessionInfo, SignedRequest,
};
use zeroize::Zeroizing;

use crate::deployment::{AUDIENCE, CLUSTER, Deployment, EXTERNAL_URL, NAMESPACE, SERVICE_ACCOUNT};
use crate::error::DeploymentError;
use crate::labels::{refusal_label, transport_label};

/// How long enrolment retries a session the server cannot decide yet (503).
const ENROL_DEADLINE: Duration = Duration::from_secs(30);
/// The secret every pod opens (not a real secret: a benchmark value).
const PLAINTEXT: &[u8] = b"benchmark value, 32 bytes long!!";

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

    fn pod(&self, i: u64) -> Result<(&Pod, &HttpsClient), String> {
        let count = self.pods.len().max(1) as u64;
        let pod = usize::try_from(i % count)
            .ok()
            .and_then(|i| self.pods.get(i))
            .ok_or("no pod")?;
        let client = self.clients.get(pod.replica).ok_or("no replica")?;
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
    pub async fn establish_session(&self, i: u64) -> Result<(), String> {
        let (pod, client) = self.pod(i)?;
        let answer = self
            .send_session(pod, client)
            .await
            .map_err(|e| transport_label(&e))?;
        if answer.status == StatusCode::CREATED {
            Ok(())
        } else {
            Err(refusal_label(&answer))
        }
    }

    /// Pod `i mod P` unwraps the capsule in its session (200); returns
    /// the request (to check the answer against) and the answer.
    async fn send_unwrap(
        &self,
        pod: &Pod,
        client: &HttpsClient,
    ) -> Result<(PendingUnwrap, Answer), String> {
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
            .map_err(|e| e.to_string())?;
        let answer = Self::send(client, pending.request())
            .await
            .map_err(|e| transport_label(&e))?;
        if answer.status == StatusCode::OK {
            Ok((pending, answer))
        } else {
            Err(refusal_label(&answer))
        }
    }

    /// Pod `i mod P` unwraps the capsule (one capsule, a fresh proof).
    pub async fn unwrap(&self, i: u64) -> Result<(), String> {
        let (pod, client) = self.pod(i)?;
        self.send_unwrap(pod, client).await.map(drop)
    }

    /// One unwrap by every replica's first pod, opened as the pod would:
    /// proves the benchmark measures real releases of the real capsule.
    pub async fn check_releases_open(&self) -> Result<(), String> {
        for replica in 0..self.clients.len() {
            let pod = self
                .pods
                .iter()
                .find(|p| p.replica == replica)
                .ok_or("a replica without pods")?;
            let client = self.clients.get(replica).ok_or("no replica")?;
            let (pending, answer) = self.send_unwrap(pod, client).await?;
            let deks = pending
                .open_answer(answer.status, &answer.body, &pod.recipient)
                .map_err(|e| e.to_string())?;
            let dek = deks.first().ok_or("no release")?;
            let plaintext = envelope::decrypt_content(&self.capsule, dek)
                .map_err(|_| "the capsule did not open with the released key".to_owned())?;
            if plaintext.expose_secret_bytes() != PLAINTEXT {
                return Err("the capsule opened to other bytes".into());
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
