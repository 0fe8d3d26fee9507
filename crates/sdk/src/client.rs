//! The pod-side client: RAM-only keys, release sessions, unwrap, and local
//! decryption.
//!
//! A [`Client`] generates an Ed25519 DPoP key and an X25519 recipient key in
//! memory when it is built; neither can be printed or serialised. Opening a
//! capsule sends only its header and wraps (never content) and decrypts the
//! returned DEK and the content locally. The projected token and the API key
//! are re-read from their files for every request, so the kubelet's token
//! rotation and an API key rotated in its Secret are picked up. A session is
//! renewed before it expires. Transient failures (network, 502/503/504) are
//! retried with exponential backoff and jitter; a refusal is never retried
//! (except once to follow an RFC 9449 `use_dpop_nonce` challenge, and once
//! to replace a session the server no longer accepts) and surfaces its gate
//! and reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, StatusCode};
use podseal_core::capsule::{Capsule, DekEnvelope, SecretSlot, SlotMismatch};
use podseal_core::clock::{Clock as _, SystemClock};
use podseal_core::dpop::DpopKey;
use podseal_core::envelope;
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey as _};
use podseal_core::reason::{Code, Gate, Reason};
use podseal_core::secret::Plaintext;
use podseal_core::wire::{DPOP_NONCE_HEADER, MAX_BATCH, Problem};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::https::{Answer, HttpsClient, TransportError, Trust};
pub use crate::protocol::SessionInfo;
use crate::protocol::{self, Credentials, Endpoint, Freshness, ProtocolError, SignedRequest};

/// Where the kubelet projects the ServiceAccount token (see the README's
/// Kubernetes walkthrough for the volume).
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/podseal/token";
/// Where the API key Secret is mounted.
pub const DEFAULT_API_KEY_FILE: &str = "/var/run/secrets/podseal/api-key";
/// Credential files larger than this are refused (a token is a few KiB).
const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;

/// Where a capsule was read from, as the pod spec says. The Secret writer
/// (etcd, git, a backup restore) can move a capsule between keys and
/// Secrets; it cannot change the pod spec nor the capsule's header, so
/// comparing the two catches the move before anything is asked of the
/// server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A Secret's data key (an env variable filled by `secretKeyRef`, a file
    /// of a Secret volume): the header must name exactly this Secret and key.
    Secret(SecretSlot),
    /// Given directly, not from a Secret (a literal value in the pod spec, a
    /// file in the image): there is nothing to compare.
    Direct,
}

impl Origin {
    /// Checks `capsule`'s header against this origin.
    pub fn check(&self, capsule: &Capsule) -> Result<(), SlotMismatch> {
        match self {
            Self::Secret(slot) => slot.check(&capsule.header().scope),
            Self::Direct => Ok(()),
        }
    }
}

/// Retries of transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// First backoff.
    pub base: Duration,
    /// Longest backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        }
    }
}

/// How a client reaches the server and finds its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The server's URL (its configured external URL: DPoP `htu` is built from it).
    pub server_url: String,
    /// How the server's certificate is trusted.
    pub trust: Trust,
    /// File holding the bound API key.
    pub api_key_file: PathBuf,
    /// File holding the projected ServiceAccount token.
    pub token_file: PathBuf,
    /// The container this process runs in (`PODSEAL_CONTAINER`), named in
    /// the session request: the DPoP key is pinned to that container's
    /// running instance. `None` is enough in a pod with one container.
    pub container: Option<String>,
    /// Renew a session this many seconds before it expires.
    pub renew_before_secs: i64,
    /// Deadline of one request.
    pub timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

/// The environment variables [`ClientConfig::from_env`] reads.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "PODSEAL_SERVER",
        "server URL, https://host[:port] (required)",
    ),
    ("PODSEAL_CA_FILE", "PEM CA bundle to trust for the server"),
    (
        "PODSEAL_SERVER_FINGERPRINT",
        "SHA-256 of the server's certificate (AA:BB:… as `podseal-server` prints), instead of a CA",
    ),
    (
        "PODSEAL_API_KEY_FILE",
        "API key file (default /var/run/secrets/podseal/api-key)",
    ),
    (
        "PODSEAL_TOKEN_FILE",
        "projected token file (default /var/run/secrets/podseal/token)",
    ),
    (
        "PODSEAL_CONTAINER",
        "this container's name, as the pod spec sets it in this container's env (needed when the pod has more than one container)",
    ),
];

impl ClientConfig {
    /// A configuration for `server_url` with the default file locations.
    pub fn new(server_url: &str, trust: Trust) -> Self {
        Self {
            server_url: server_url.trim_end_matches('/').to_owned(),
            trust,
            api_key_file: PathBuf::from(DEFAULT_API_KEY_FILE),
            token_file: PathBuf::from(DEFAULT_TOKEN_FILE),
            container: None,
            renew_before_secs: 60,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }

    /// From the process environment (see [`ENV_VARS`]).
    pub fn from_env() -> Result<Self, SdkError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From any variable lookup.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SdkError> {
        let server = lookup("PODSEAL_SERVER").ok_or_else(|| {
            SdkError::Config(
                "PODSEAL_SERVER is not set (https://host[:port] of the release server)".into(),
            )
        })?;
        let trust =
            match (
                lookup("PODSEAL_CA_FILE"),
                lookup("PODSEAL_SERVER_FINGERPRINT"),
            ) {
                (Some(_), Some(_)) => {
                    return Err(SdkError::Config(
                        "set PODSEAL_CA_FILE or PODSEAL_SERVER_FINGERPRINT, not both".into(),
                    ));
                }
                (Some(ca), None) => Trust::CaPem(std::fs::read(&ca).map_err(|e| {
                    SdkError::Config(format!("cannot read PODSEAL_CA_FILE {ca}: {e}"))
                })?),
                (None, Some(fingerprint)) => Trust::fingerprint(&fingerprint)
                    .map_err(|e| SdkError::Config(format!("PODSEAL_SERVER_FINGERPRINT: {e}")))?,
                (None, None) => Trust::SystemRoots,
            };
        let mut config = Self::new(&server, trust);
        if let Some(path) = lookup("PODSEAL_API_KEY_FILE") {
            config.api_key_file = path.into();
        }
        if let Some(path) = lookup("PODSEAL_TOKEN_FILE") {
            config.token_file = path.into();
        }
        config.container = lookup("PODSEAL_CONTAINER").filter(|name| !name.is_empty());
        Ok(config)
    }
}

/// Why a capsule was not opened. Messages never hold a secret, token or key.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The configuration is incomplete or wrong.
    #[error("podseal client configuration: {0}")]
    Config(String),
    /// A credential file could not be read.
    #[error("cannot read the {what} file {}: {message}", .path.display())]
    Credentials {
        /// API key or token.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The server refused, naming the gate and reason. Never retried.
    #[error("refused by the release server ({gate}/{reason}): {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The gate (`api_key`, `token`, `dpop`, `live_pod`, `scope`, `request`).
        gate: Code<Gate>,
        /// The stable reason code.
        reason: Code<Reason>,
        /// The server's public sentence.
        detail: String,
    },
    /// The server could not be reached or stayed unavailable through every
    /// retry. When its last answer carried problem details (a 503 naming
    /// `live_pod`/`view_unknown`, say, or `audit_unavailable`), `last` reads
    /// `HTTP 503 (gate/reason): detail` and `gate` and `reason` keep them.
    #[error("the release server is unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
        /// The gate the last answer named, if it was problem details.
        gate: Option<Code<Gate>>,
        /// The reason code the last answer named, if it was problem details.
        reason: Option<Code<Reason>>,
    },
    /// The server answered something this client cannot use.
    #[error("unexpected answer from the release server: {0}")]
    Protocol(String),
    /// The released key or the capsule did not open (an altered capsule).
    #[error("the capsule did not open: {0}")]
    Capsule(String),
    /// A capsule was found in another Secret or key than its header names
    /// (see [`Origin`]); nothing was asked of the server.
    #[error("{mismatch}")]
    Misplaced {
        /// Its position in the batch.
        index: usize,
        /// Where it was found and what its header says.
        mismatch: SlotMismatch,
    },
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
}

impl SdkError {
    /// The gate the server named: of a refusal, or of the last answer of a
    /// server that stayed unavailable.
    pub fn gate(&self) -> Option<&Code<Gate>> {
        match self {
            Self::Refused { gate, .. } => Some(gate),
            Self::Unavailable { gate, .. } => gate.as_ref(),
            _ => None,
        }
    }

    /// The reason code the server named: of a refusal, or of the last answer
    /// of a server that stayed unavailable.
    pub fn reason(&self) -> Option<&Code<Reason>> {
        match self {
            Self::Refused { reason, .. } => Some(reason),
            Self::Unavailable { reason, .. } => reason.as_ref(),
            _ => None,
        }
    }
}

impl From<ProtocolError> for SdkError {
    fn from(error: ProtocolError) -> Self {
        match error {
            ProtocolError::Refused {
                status,
                gate,
                reason,
                detail,
            } => Self::Refused {
                status,
                gate,
                reason,
                detail,
            },
            ProtocolError::Answer(message) => Self::Protocol(message),
            ProtocolError::DidNotOpen(message) => Self::Capsule(message),
            ProtocolError::Request(message) => Self::Config(message),
            ProtocolError::Random => Self::Random,
        }
    }
}

fn read_credential(what: &'static str, path: &Path) -> Result<Zeroizing<String>, SdkError> {
    use std::io::Read as _;
    let error = |message: String| SdkError::Credentials {
        what,
        path: path.to_owned(),
        message,
    };
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CREDENTIAL_BYTES).read_to_string(&mut text))
        .map_err(|e| error(e.to_string()))?;
    let trimmed = Zeroizing::new(text.trim().to_owned());
    if trimmed.is_empty() {
        return Err(error("it is empty".into()));
    }
    Ok(trimmed)
}

struct State {
    dpop: DpopKey,
    session: Option<SessionInfo>,
    nonce: Option<String>,
}

/// The pod-side client. Cheap to share behind an `Arc`; requests are serialised.
pub struct Client {
    config: ClientConfig,
    endpoint: Endpoint,
    http: HttpsClient,
    recipient: LocalPrivateKey,
    state: Mutex<State>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server_url", &self.config.server_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with fresh RAM-only keys.
    pub fn new(config: ClientConfig) -> Result<Self, SdkError> {
        let http = HttpsClient::with_trust(&config.server_url, &config.trust)
            .map_err(|e| SdkError::Config(e.to_string()))?
            .with_timeout(config.timeout)
            // 64 releases are a few KiB; nothing a pod reads is larger than this.
            .with_max_answer_bytes(1024 * 1024);
        Ok(Self {
            endpoint: Endpoint::new(&config.server_url),
            http,
            recipient: LocalPrivateKey::generate(KemId::X25519HkdfSha256)
                .map_err(|_| SdkError::Random)?,
            state: Mutex::new(State {
                dpop: DpopKey::generate().map_err(|_| SdkError::Random)?,
                session: None,
                nonce: None,
            }),
            config,
        })
    }

    /// A client configured from the environment (see [`ENV_VARS`]).
    pub fn from_env() -> Result<Self, SdkError> {
        Self::new(ClientConfig::from_env()?)
    }

    /// The current session, if one is open.
    pub async fn session(&self) -> Option<SessionInfo> {
        self.state.lock().await.session.clone()
    }

    /// The thumbprint of the current DPoP key.
    pub async fn dpop_thumbprint(&self) -> String {
        self.state.lock().await.dpop.thumbprint().to_owned()
    }

    /// Opens one capsule. It checks nothing about where the capsule was
    /// found: for one read from a Secret, use [`Client::open_from`].
    pub async fn open(&self, capsule: &Capsule) -> Result<Plaintext, SdkError> {
        self.open_from(capsule, &Origin::Direct).await
    }

    /// Opens one capsule read from `origin`: refused, before any request,
    /// when its header names another Secret or key than `origin`.
    ///
    /// The check is only as good as `origin`: take the Secret's name and key
    /// from what a Secret writer cannot change (the pod spec's
    /// `secretKeyRef`, the Secret volume's `secretName`, this program's own
    /// configuration), never from the Secret or the capsule. It cannot tell
    /// whether an environment variable really was filled from that Secret,
    /// and a capsule of the same Secret and key in another namespace or
    /// cluster is the server's scope check to refuse.
    pub async fn open_from(
        &self,
        capsule: &Capsule,
        origin: &Origin,
    ) -> Result<Plaintext, SdkError> {
        let mut opened = self.open_checked(&[(capsule, origin)]).await?;
        opened
            .pop()
            .ok_or_else(|| SdkError::Protocol("no release in the answer".into()))
    }

    /// Opens up to 64 capsules in one request (all or nothing). It checks
    /// nothing about where they were found: see [`Client::open_many_from`].
    pub async fn open_many(&self, capsules: &[Capsule]) -> Result<Vec<Plaintext>, SdkError> {
        let direct: Vec<(&Capsule, &Origin)> =
            capsules.iter().map(|c| (c, &Origin::Direct)).collect();
        self.open_checked(&direct).await
    }

    /// Opens up to 64 capsules, each read from its [`Origin`], in one
    /// request (all or nothing): if any header names another Secret or key
    /// than its origin, nothing is asked of the server and
    /// [`SdkError::Misplaced`] names the first. What the check cannot
    /// catch: see [`Client::open_from`].
    pub async fn open_many_from(
        &self,
        capsules: &[(Capsule, Origin)],
    ) -> Result<Vec<Plaintext>, SdkError> {
        let pairs: Vec<(&Capsule, &Origin)> = capsules.iter().map(|(c, o)| (c, o)).collect();
        self.open_checked(&pairs).await
    }

    async fn open_checked(
        &self,
        pairs: &[(&Capsule, &Origin)],
    ) -> Result<Vec<Plaintext>, SdkError> {
        for (index, (capsule, origin)) in pairs.iter().enumerate() {
            origin
                .check(capsule)
                .map_err(|mismatch| SdkError::Misplaced { index, mismatch })?;
        }
        let capsules: Vec<&Capsule> = pairs.iter().map(|(c, _)| *c).collect();
        if capsules.is_empty() || capsules.len() > MAX_BATCH {
            return Err(SdkError::Config(format!(
                "one request opens 1 to {MAX_BATCH} capsules"
            )));
        }
        let mut state = self.state.lock().await;
        let mut replaced = false;
        loop {
            let session = self.ensure_session(&mut state).await?;
            match self.unwrap(&mut state, &session, &capsules).await {
                Err(SdkError::Refused { ref reason, .. })
                    if !replaced
                        && matches!(
                            reason.known(),
                            Some(
                                Reason::SessionExpired
                                    | Reason::SessionUnknown
                                    | Reason::SessionRevoked
                            )
                        ) =>
                {
                    // The server no longer holds this session (expired, or
                    // its store was reset): open a new one, once.
                    state.session = None;
                    replaced = true;
                }
                other => return other,
            }
        }
    }

    /// Opens a session if there is none or it expires within the renewal margin.
    async fn ensure_session(&self, state: &mut State) -> Result<SessionInfo, SdkError> {
        if let Some(session) = &state.session
            && session.expires_at - SystemClock.now() > self.config.renew_before_secs
        {
            return Ok(session.clone());
        }
        let recipient_key = self.recipient.public_key_bytes();
        let container = self.config.container.as_deref();
        let (_, answer) = self
            .request(state, |dpop, credentials, freshness| {
                self.endpoint
                    .session_in(credentials, dpop, recipient_key, container, freshness)
            })
            .await?;
        let session = protocol::session_answer(answer.status, &answer.body)?;
        tracing::debug!(expires_at = session.expires_at, "release session opened");
        state.session = Some(session.clone());
        Ok(session)
    }

    async fn unwrap(
        &self,
        state: &mut State,
        session: &SessionInfo,
        capsules: &[&Capsule],
    ) -> Result<Vec<Plaintext>, SdkError> {
        let envelopes: Vec<&DekEnvelope> = capsules.iter().map(|c| &c.envelope).collect();
        let (pending, answer) = self
            .request(state, |dpop, credentials, freshness| {
                self.endpoint
                    .unwrap(credentials, dpop, session, &envelopes, freshness)
            })
            .await?;
        let deks = pending.open_answer(answer.status, &answer.body, &self.recipient)?;
        capsules
            .iter()
            .zip(deks)
            .map(|(capsule, dek)| {
                envelope::decrypt_content(capsule, &dek)
                    .map_err(|e| SdkError::Capsule(e.to_string()))
            })
            .collect()
    }

    /// Replaces the pinned DPoP key: the request is signed by the current
    /// key and carries a proof from the new one; on success the new key is
    /// the only one this client holds.
    pub async fn rotate_dpop_key(&self) -> Result<(), SdkError> {
        let mut state = self.state.lock().await;
        let session = self.ensure_session(&mut state).await?;
        let next = DpopKey::generate().map_err(|_| SdkError::Random)?;
        let (_, answer) = self
            .request(&mut state, |current, credentials, freshness| {
                self.endpoint
                    .rotate_key(credentials, current, &next, &session, freshness)
            })
            .await?;
        protocol::rotate_answer(answer.status, &answer.body, &next)?;
        state.dpop = next;
        Ok(())
    }

    /// Sends one request with a fresh proof per attempt: retries transient
    /// failures with backoff and jitter, follows one nonce challenge, and
    /// turns any other non-success into a refusal.
    async fn request<T: AsRef<SignedRequest>>(
        &self,
        state: &mut State,
        build: impl Fn(&DpopKey, Credentials<'_>, Freshness<'_>) -> Result<T, ProtocolError>,
    ) -> Result<(T, Answer), SdkError> {
        let policy = self.config.retry;
        let mut followed_nonce = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let api_key = read_credential("API key", &self.config.api_key_file)?;
            let token = read_credential("token", &self.config.token_file)?;
            let built = build(
                &state.dpop,
                Credentials {
                    api_key: &api_key,
                    token: &token,
                },
                Freshness {
                    iat: SystemClock.now(),
                    nonce: state.nonce.as_deref(),
                },
            )?;
            let request = built.as_ref();
            let outcome = self
                .http
                .send(
                    Method::POST,
                    request.path(),
                    &request.headers(),
                    Some(request.body().to_vec()),
                )
                .await;
            let (failure, problem) = match outcome {
                Ok(answer) => {
                    if let Some(nonce) = answer
                        .headers
                        .get(DPOP_NONCE_HEADER)
                        .and_then(|v| v.to_str().ok())
                    {
                        state.nonce = Some(nonce.to_owned());
                    }
                    if answer.status.is_success() {
                        return Ok((built, answer));
                    }
                    if !is_transient(answer.status) {
                        let refusal =
                            SdkError::from(protocol::refusal(answer.status, &answer.body));
                        if !followed_nonce
                            && refusal.reason().is_some_and(|r| *r == Reason::UseDpopNonce)
                        {
                            followed_nonce = true;
                            attempt -= 1;
                            continue;
                        }
                        return Err(refusal);
                    }
                    // A 503 may say why the server cannot decide (problem
                    // details); a proxy's 502 usually does not.
                    match serde_json::from_slice::<Problem>(&answer.body) {
                        Ok(problem) => (
                            format!(
                                "HTTP {} ({}/{}): {}",
                                answer.status.as_u16(),
                                problem.gate,
                                problem.reason,
                                problem.detail
                            ),
                            Some((problem.gate, problem.reason)),
                        ),
                        Err(_) => (format!("HTTP {}", answer.status.as_u16()), None),
                    }
                }
                Err(error @ TransportError::Unreachable { .. })
                | Err(error @ TransportError::Timeout(_)) => (error.to_string(), None),
                Err(error) => return Err(SdkError::Config(error.to_string())),
            };
            if attempt >= policy.attempts {
                let (gate, reason) = problem.unzip();
                return Err(SdkError::Unavailable {
                    attempts: attempt,
                    last: failure,
                    gate,
                    reason,
                });
            }
            let delay = backoff(policy, attempt);
            tracing::debug!(attempt, ?delay, %failure, "release server unavailable; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}

/// Full jitter over an exponential backoff: a random delay in [d/2, d],
/// d = min(cap, base·2^(attempt−1)).
fn backoff(policy: RetryPolicy, attempt: u32) -> Duration {
    let exponential = policy
        .base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let ceiling = exponential.min(policy.cap);
    let mut random = [0u8; 2];
    let fraction = match podseal_core::fill_random(&mut random) {
        Ok(()) => f64::from(u16::from_be_bytes(random)) / f64::from(u16::MAX),
        Err(_) => 1.0,
    };
    ceiling.mul_f64(0.5 + fraction / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        for (attempt, ceiling_ms) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (9, 1000)]
        {
            for _ in 0..50 {
                let delay = backoff(policy, attempt).as_millis();
                assert!(
                    (ceiling_ms / 2..=ceiling_ms).contains(&delay),
                    "attempt {attempt}: {delay} ms"
                );
            }
        }
    }

    fn lookup(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn configuration_from_the_environment() {
        let fingerprint = vec!["ab"; 32].join(":");
        let config = ClientConfig::from_lookup(lookup(vec![
            ("PODSEAL_SERVER", "https://podseal.example/".into()),
            ("PODSEAL_SERVER_FINGERPRINT", fingerprint),
            ("PODSEAL_TOKEN_FILE", "/t".into()),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.server_url, "https://podseal.example");
        assert_eq!(config.trust, Trust::Fingerprint([0xab; 32]));
        assert_eq!(config.token_file, PathBuf::from("/t"));
        assert_eq!(config.api_key_file, PathBuf::from(DEFAULT_API_KEY_FILE));
        for (pairs, needle) in [
            (vec![], "PODSEAL_SERVER"),
            (
                vec![
                    ("PODSEAL_SERVER", "https://x".to_owned()),
                    ("PODSEAL_CA_FILE", "/nonexistent/ca.pem".to_owned()),
                ],
                "PODSEAL_CA_FILE",
            ),
            (
                vec![
                    ("PODSEAL_SERVER", "https://x".to_owned()),
                    ("PODSEAL_SERVER_FINGERPRINT", "zz".to_owned()),
                ],
                "PODSEAL_SERVER_FINGERPRINT",
            ),
        ] {
            let error = ClientConfig::from_lookup(lookup(pairs))
                .unwrap_err()
                .to_string();
            assert!(error.contains(needle), "{error}");
        }
    }
}
