//! The release protocol, without I/O: the one builder of signed release
//! requests and the one checker of their answers.
//!
//! Every client of the release API — the SDK's [`Client`](crate::client::Client),
//! `podseal-exec`, the demo, the load benchmark and the tests — builds its
//! requests here, so the headers, the DPoP proof (`htm`, `htu`, `iat`,
//! `ath` bound to the session, the server's nonce) and the body are made in
//! one place, and every answer is checked in one place:
//!
//! - a session answer must name a session;
//! - an unwrap answer must hold one release per capsule, in order, each for
//!   the capsule it answers, each bound to the `jti` of the proof **this**
//!   request sent, and its DEK must open with the pod's key under the
//!   binding (header, session id, `jti`) the pod itself holds — never the
//!   one the server reports. A server (or anything between) that answers
//!   with a release made for another proof or another session is refused.
//!
//! Sending is the caller's: [`SignedRequest`] is a path, headers and a body.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use podseal_core::capsule::DekEnvelope;
use podseal_core::dpop::{DpopKey, ProofFor};
use podseal_core::envelope::{self, ReleaseBinding, ReleasedDek};
use podseal_core::hpke::LocalPrivateKey;
use podseal_core::reason::{Code, Gate, Reason};
use podseal_core::secret::Dek;
use podseal_core::wire::{
    API_KEY_HEADER, MAX_BATCH, Problem, ROTATE_KEY_PATH, RotateAnswer, RotateBody, SESSIONS_PATH,
    SessionAnswer, SessionBody, TOKEN_HEADER, UNWRAP_PATH, UnwrapAnswer, UnwrapBody,
};
use zeroize::Zeroizing;

/// The DPoP proof header.
pub const DPOP_HEADER: &str = "dpop";
/// The header that carries the session (`DPoP <session id>`).
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// Why a request could not be built or its answer was not accepted.
/// Messages never hold a secret, token, key or session id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The server refused, naming the gate and reason.
    #[error("refused by the release server ({gate}/{reason}): {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The gate.
        gate: Code<Gate>,
        /// The reason.
        reason: Code<Reason>,
        /// The server's public sentence.
        detail: String,
    },
    /// The answer is not what the protocol allows.
    #[error("unexpected answer from the release server: {0}")]
    Answer(String),
    /// The released key or the capsule did not open.
    #[error("the capsule did not open: {0}")]
    DidNotOpen(String),
    /// The request cannot be made (a batch of the wrong size).
    #[error("{0}")]
    Request(String),
    /// The system random generator failed (no `jti` can be drawn).
    #[error("the system random generator failed")]
    Random,
}

/// The credentials every release request carries (re-read by the caller
/// for every request, so rotated files are picked up).
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The bound API key.
    pub api_key: &'a str,
    /// The projected ServiceAccount token.
    pub token: &'a str,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

/// A session the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id (the DPoP access token of later requests).
    pub id: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The parts of a proof that change per request: when, and the server's
/// nonce if it sent one.
#[derive(Debug, Clone, Copy)]
pub struct Freshness<'a> {
    /// Issued-at, Unix seconds.
    pub iat: i64,
    /// The last `DPoP-Nonce` the server sent, if any.
    pub nonce: Option<&'a str>,
}

/// One signed request, ready to send as `POST path`.
pub struct SignedRequest {
    path: &'static str,
    headers: Vec<(&'static str, Zeroizing<String>)>,
    body: Vec<u8>,
    jti: String,
}

impl std::fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedRequest")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AsRef<SignedRequest> for SignedRequest {
    fn as_ref(&self) -> &SignedRequest {
        self
    }
}

impl AsRef<SignedRequest> for PendingUnwrap {
    fn as_ref(&self) -> &SignedRequest {
        &self.request
    }
}

impl SignedRequest {
    /// The route (always `POST`).
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// The headers, as the transport takes them.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        self.headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect()
    }

    /// The value of one header, if the request carries it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The `jti` of this request's proof.
    pub fn jti(&self) -> &str {
        &self.jti
    }
}

/// Where the requests go: the server's external URL (DPoP `htu` is built
/// from it, and must be what the server is configured with).
#[derive(Debug, Clone)]
pub struct Endpoint {
    server_url: String,
}

impl Endpoint {
    /// The endpoint at `server_url` (`https://host[:port]`).
    pub fn new(server_url: &str) -> Self {
        Self {
            server_url: server_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The server URL.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    fn sign(
        &self,
        path: &'static str,
        credentials: Credentials<'_>,
        dpop: &DpopKey,
        session: Option<&str>,
        freshness: Freshness<'_>,
        body: Vec<u8>,
    ) -> Result<SignedRequest, ProtocolError> {
        let htu = format!("{}{path}", self.server_url);
        let (proof, claims) = dpop
            .proof(&ProofFor {
                htm: "POST",
                htu: &htu,
                iat: freshness.iat,
                access_token: session,
                nonce: freshness.nonce,
            })
            .map_err(|_| random_failed())?;
        let mut headers = vec![
            (
                API_KEY_HEADER,
                Zeroizing::new(credentials.api_key.to_owned()),
            ),
            (TOKEN_HEADER, Zeroizing::new(credentials.token.to_owned())),
            (DPOP_HEADER, Zeroizing::new(proof)),
        ];
        if let Some(session) = session {
            headers.push((
                AUTHORIZATION_HEADER,
                Zeroizing::new(format!("DPoP {session}")),
            ));
        }
        Ok(SignedRequest {
            path,
            headers,
            body,
            jti: claims.jti,
        })
    }

    /// `POST /v1/sessions`: opens a session for `recipient` (the pod's
    /// X25519 public key), signed by `dpop`, naming no container (enough
    /// for a pod with one container that declares none).
    pub fn session(
        &self,
        credentials: Credentials<'_>,
        dpop: &DpopKey,
        recipient_public_key: &[u8],
        freshness: Freshness<'_>,
    ) -> Result<SignedRequest, ProtocolError> {
        self.session_in(credentials, dpop, recipient_public_key, None, freshness)
    }

    /// [`Endpoint::session`] from the container named `container` (what
    /// `PODSEAL_CONTAINER` says): the DPoP key is pinned to that
    /// container's running instance.
    pub fn session_in(
        &self,
        credentials: Credentials<'_>,
        dpop: &DpopKey,
        recipient_public_key: &[u8],
        container: Option<&str>,
        freshness: Freshness<'_>,
    ) -> Result<SignedRequest, ProtocolError> {
        let body = json(&SessionBody {
            recipient_key: URL_SAFE_NO_PAD.encode(recipient_public_key),
            container: container.map(str::to_owned),
        })?;
        self.sign(SESSIONS_PATH, credentials, dpop, None, freshness, body)
    }

    /// `POST /v1/unwrap` for up to [`MAX_BATCH`] capsules' envelopes
    /// (header and wraps only, never content), in `session`.
    pub fn unwrap(
        &self,
        credentials: Credentials<'_>,
        dpop: &DpopKey,
        session: &SessionInfo,
        envelopes: &[&DekEnvelope],
        freshness: Freshness<'_>,
    ) -> Result<PendingUnwrap, ProtocolError> {
        if envelopes.is_empty() || envelopes.len() > MAX_BATCH {
            return Err(ProtocolError::Request(format!(
                "one request opens 1 to {MAX_BATCH} capsules"
            )));
        }
        let body = json(&UnwrapBody {
            capsules: envelopes
                .iter()
                .map(|e| URL_SAFE_NO_PAD.encode(e.to_bytes()))
                .collect(),
        })?;
        let request = self.sign(
            UNWRAP_PATH,
            credentials,
            dpop,
            Some(&session.id),
            freshness,
            body,
        )?;
        Ok(PendingUnwrap {
            request,
            session_id: session.id.clone(),
            capsules: envelopes
                .iter()
                .map(|e| (e.header().id.clone(), e.header_bytes().to_vec()))
                .collect(),
        })
    }

    /// `POST /v1/sessions/rotate-key`: signed by the `current` key, carrying
    /// a proof by `next` for the same route and session.
    pub fn rotate_key(
        &self,
        credentials: Credentials<'_>,
        current: &DpopKey,
        next: &DpopKey,
        session: &SessionInfo,
        freshness: Freshness<'_>,
    ) -> Result<SignedRequest, ProtocolError> {
        let htu = format!("{}{ROTATE_KEY_PATH}", self.server_url);
        let (new_proof, _) = next
            .proof(&ProofFor {
                htm: "POST",
                htu: &htu,
                iat: freshness.iat,
                access_token: Some(&session.id),
                nonce: freshness.nonce,
            })
            .map_err(|_| random_failed())?;
        let body = json(&RotateBody { new_proof })?;
        self.sign(
            ROTATE_KEY_PATH,
            credentials,
            current,
            Some(&session.id),
            freshness,
            body,
        )
    }
}

/// An unwrap request, and what its answer must match.
#[derive(Debug)]
pub struct PendingUnwrap {
    request: SignedRequest,
    session_id: String,
    /// Capsule id and exact header bytes, in request order.
    capsules: Vec<(String, Vec<u8>)>,
}

impl PendingUnwrap {
    /// The request to send.
    pub fn request(&self) -> &SignedRequest {
        &self.request
    }

    /// The request alone, for a caller that will not open the answer (a
    /// replay, an attack in the demo).
    pub fn into_request(self) -> SignedRequest {
        self.request
    }

    /// Checks a `200` answer and opens each released DEK with the pod's
    /// recipient key, bound to this request's own session and `jti`.
    pub fn open(
        &self,
        answer: &UnwrapAnswer,
        recipient: &LocalPrivateKey,
    ) -> Result<Vec<Dek>, ProtocolError> {
        if answer.releases.len() != self.capsules.len() {
            return Err(ProtocolError::Answer(format!(
                "{} releases for {} capsules",
                answer.releases.len(),
                self.capsules.len()
            )));
        }
        let binding = ReleaseBinding {
            session_id: &self.session_id,
            jti: self.request.jti(),
        };
        self.capsules
            .iter()
            .zip(&answer.releases)
            .map(|((capsule_id, header_bytes), release)| {
                if release.capsule_id != *capsule_id {
                    return Err(ProtocolError::Answer(
                        "a release answers another capsule than the one asked in its place".into(),
                    ));
                }
                if release.jti != binding.jti {
                    return Err(ProtocolError::Answer(
                        "a release is bound to another DPoP proof than the one this request sent"
                            .into(),
                    ));
                }
                let decode = |field: &str| {
                    URL_SAFE_NO_PAD
                        .decode(field)
                        .map_err(|_| ProtocolError::Answer("a release is not base64url".into()))
                };
                let released = ReleasedDek {
                    enc: decode(&release.enc)?,
                    wrapped_dek: decode(&release.wrapped_dek)?,
                };
                envelope::open_release(&released, recipient, header_bytes, binding)
                    .map_err(|e| ProtocolError::DidNotOpen(e.to_string()))
            })
            .collect()
    }

    /// Checks an answer as it came off the wire: a `200` with an unwrap
    /// body is opened as [`PendingUnwrap::open`]; anything else is a refusal.
    pub fn open_answer(
        &self,
        status: StatusCode,
        body: &[u8],
        recipient: &LocalPrivateKey,
    ) -> Result<Vec<Dek>, ProtocolError> {
        if status != StatusCode::OK {
            return Err(refusal(status, body));
        }
        self.open(&parse(body)?, recipient)
    }
}

/// Checks a `POST /v1/sessions` answer: `201` with a session.
pub fn session_answer(status: StatusCode, body: &[u8]) -> Result<SessionInfo, ProtocolError> {
    if status != StatusCode::CREATED {
        return Err(refusal(status, body));
    }
    let granted: SessionAnswer = parse(body)?;
    if granted.session_id.is_empty() {
        return Err(ProtocolError::Answer(
            "the session answer names no session".into(),
        ));
    }
    Ok(SessionInfo {
        id: granted.session_id,
        expires_at: granted.expires_at,
    })
}

/// Checks a `POST /v1/sessions/rotate-key` answer: `200` naming the
/// thumbprint of the key that was meant to be pinned.
pub fn rotate_answer(status: StatusCode, body: &[u8], next: &DpopKey) -> Result<(), ProtocolError> {
    if status != StatusCode::OK {
        return Err(refusal(status, body));
    }
    let answer: RotateAnswer = parse(body)?;
    if answer.jkt != next.thumbprint() {
        return Err(ProtocolError::Answer(
            "the server pinned another key than the one sent".into(),
        ));
    }
    Ok(())
}

/// A non-success answer as a refusal: its problem details, or a protocol
/// error when it carries none.
pub fn refusal(status: StatusCode, body: &[u8]) -> ProtocolError {
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => ProtocolError::Refused {
            status: status.as_u16(),
            gate: problem.gate,
            reason: problem.reason,
            detail: problem.detail,
        },
        Err(_) => {
            ProtocolError::Answer(format!("HTTP {} without problem details", status.as_u16()))
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ProtocolError> {
    serde_json::from_slice(body).map_err(|e| ProtocolError::Answer(e.to_string()))
}

fn json<T: serde::Serialize>(body: &T) -> Result<Vec<u8>, ProtocolError> {
    serde_json::to_vec(body).map_err(|e| ProtocolError::Request(e.to_string()))
}

fn random_failed() -> ProtocolError {
    ProtocolError::Random
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use podseal_core::capsule::{Capsule, KubernetesScope, RevealMode, Scope};
    use podseal_core::dpop::{ProofExpectations, verify_proof};
    use podseal_core::envelope::{SealParams, rewrap_for_release, seal};
    use podseal_core::hpke::{KemId, RecipientKey as _};
    use podseal_core::key_provider::KeyRing;
    use podseal_core::org_key::OrgPrivateKey;
    use podseal_core::wire::ReleaseAnswer;

    use super::*;

    const URL: &str = "https://podseal.test";

    struct Fixture {
        org: KeyRing,
        capsule: Capsule,
        pod_key: LocalPrivateKey,
        dpop: DpopKey,
        session: SessionInfo,
    }

    fn fixture() -> Fixture {
        let org = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
        let capsule = seal(
            SealParams {
                scope: Scope::Kubernetes(KubernetesScope {
                    cluster: "c1".into(),
                    namespace: "shop".into(),
                    service_accounts: vec!["api".into()],
                    name: "db".into(),
                    key: None,
                }),
                purpose: None,
                reveal: RevealMode::Many,
                created_at: 1_800_000_000,
                not_after: None,
            },
            b"correct horse",
            &[org.public()],
        )
        .unwrap();
        Fixture {
            org: KeyRing::from(org),
            capsule,
            pod_key: LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap(),
            dpop: DpopKey::generate().unwrap(),
            session: SessionInfo {
                id: "session-1".into(),
                expires_at: 1_900_000_000,
            },
        }
    }

    const CREDENTIALS: Credentials<'static> = Credentials {
        api_key: "psk_test",
        token: "header.claims.signature",
    };

    fn pending(f: &Fixture) -> PendingUnwrap {
        Endpoint::new(URL)
            .unwrap(
                CREDENTIALS,
                &f.dpop,
                &f.session,
                &[&f.capsule.envelope],
                Freshness {
                    iat: 1_800_000_100,
                    nonce: Some("n-1"),
                },
            )
            .unwrap()
    }

    /// What a server answers: the DEK re-wrapped under `binding`, reporting `jti`.
    fn answer(f: &Fixture, session_id: &str, bound_jti: &str, reported_jti: &str) -> UnwrapAnswer {
        let released = rewrap_for_release(
            &f.capsule.envelope,
            &f.org,
            f.pod_key.public_key_bytes(),
            ReleaseBinding {
                session_id,
                jti: bound_jti,
            },
        )
        .unwrap();
        UnwrapAnswer {
            releases: vec![ReleaseAnswer {
                capsule_id: f.capsule.header().id.clone(),
                enc: URL_SAFE_NO_PAD.encode(&released.enc),
                wrapped_dek: URL_SAFE_NO_PAD.encode(&released.wrapped_dek),
                jti: reported_jti.into(),
            }],
        }
    }

    #[test]
    fn the_request_carries_a_proof_bound_to_its_session_nonce_and_route() {
        let f = fixture();
        let pending = pending(&f);
        let request = pending.request();
        assert_eq!(request.path(), UNWRAP_PATH);
        assert_eq!(request.header(AUTHORIZATION_HEADER), Some("DPoP session-1"));
        assert_eq!(request.header(API_KEY_HEADER), Some("psk_test"));
        let verified = verify_proof(
            request.header(DPOP_HEADER).unwrap(),
            &ProofExpectations {
                htm: "POST",
                htu: &format!("{URL}{UNWRAP_PATH}"),
                now: 1_800_000_100,
                max_age_secs: 60,
                max_skew_secs: 5,
                access_token: Some("session-1"),
                nonce: Some("n-1"),
            },
        )
        .unwrap();
        assert_eq!(verified.claims.jti, request.jti());
        let body: UnwrapBody = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(body.capsules.len(), 1);
        assert!(!format!("{request:?}").contains("psk_test"));
    }

    #[test]
    fn a_release_bound_to_this_requests_jti_and_session_opens() {
        let f = fixture();
        let pending = pending(&f);
        let jti = pending.request().jti().to_owned();
        let deks = pending
            .open(&answer(&f, "session-1", &jti, &jti), &f.pod_key)
            .unwrap();
        let plaintext = envelope::decrypt_content(&f.capsule, &deks[0]).unwrap();
        assert_eq!(plaintext.expose_secret_bytes(), b"correct horse");
    }

    /// The pod checks the release binding itself: a release made for
    /// another proof is refused even when it would open under the `jti` the
    /// server names (a replayed release), and one made for another session
    /// does not open under this pod's own binding.
    #[test]
    fn a_release_naming_another_jti_or_bound_to_another_session_is_refused() {
        let f = fixture();
        let pending = pending(&f);
        let jti = pending.request().jti().to_owned();

        let replayed = answer(&f, "session-1", "an-older-jti", "an-older-jti");
        assert!(matches!(
            pending.open(&replayed, &f.pod_key),
            Err(ProtocolError::Answer(message)) if message.contains("another DPoP proof")
        ));

        let relabelled = answer(&f, "session-1", "an-older-jti", &jti);
        assert!(matches!(
            pending.open(&relabelled, &f.pod_key),
            Err(ProtocolError::DidNotOpen(_))
        ));

        let other_session = answer(&f, "session-2", &jti, &jti);
        assert!(matches!(
            pending.open(&other_session, &f.pod_key),
            Err(ProtocolError::DidNotOpen(_))
        ));

        let mut other_capsule = answer(&f, "session-1", &jti, &jti);
        other_capsule.releases[0].capsule_id = "AAAAAAAAAAAAAAAAAAAAAA".into();
        assert!(matches!(
            pending.open(&other_capsule, &f.pod_key),
            Err(ProtocolError::Answer(message)) if message.contains("another capsule")
        ));

        let mut none = answer(&f, "session-1", &jti, &jti);
        none.releases.clear();
        assert!(matches!(
            pending.open(&none, &f.pod_key),
            Err(ProtocolError::Answer(_))
        ));
    }

    #[test]
    fn refusals_keep_codes_a_newer_server_added() {
        let body = br#"{"status":401,"gate":"dpop","reason":"jti_replayed","detail":"seen"}"#;
        let known = refusal(StatusCode::UNAUTHORIZED, body);
        assert!(matches!(
            known,
            ProtocolError::Refused { ref reason, .. } if *reason == Reason::JtiReplayed
        ));
        let newer = br#"{"status":403,"gate":"posture","reason":"purpose_overdue","detail":"x"}"#;
        let ProtocolError::Refused { gate, reason, .. } = refusal(StatusCode::FORBIDDEN, newer)
        else {
            panic!("not a refusal")
        };
        assert_eq!(gate, Code::Unknown("posture".into()));
        assert_eq!(reason, Code::Unknown("purpose_overdue".into()));
    }

    #[test]
    fn a_rotation_answer_must_name_the_new_key() {
        let next = DpopKey::generate().unwrap();
        let other = DpopKey::generate().unwrap();
        let body = |jkt: &str| serde_json::to_vec(&RotateAnswer { jkt: jkt.into() }).unwrap();
        rotate_answer(StatusCode::OK, &body(next.thumbprint()), &next).unwrap();
        assert!(rotate_answer(StatusCode::OK, &body(other.thumbprint()), &next).is_err());
    }
}
