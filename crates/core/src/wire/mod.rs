//! The wire contracts: [`admin`] for `/v1/admin/…`; here, the release
//! API's, shared by the server and every client:
//! header names, route paths, and the JSON bodies (`docs/openapi.yaml`
//! describes them). Request bodies refuse unknown fields; answers accept
//! them, so a newer server can add fields.

pub mod admin;

use serde::{Deserialize, Serialize};

use crate::reason::{Code, Gate, Reason};

/// The largest request body the server accepts (64 capsules with room to spare).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Header carrying the bound API key.
pub const API_KEY_HEADER: &str = "x-podseal-api-key";
/// Header carrying the projected ServiceAccount token.
pub const TOKEN_HEADER: &str = "x-podseal-token";
/// RFC 9449 server nonce header, sent on every release answer.
pub const DPOP_NONCE_HEADER: &str = "dpop-nonce";
/// Route that opens a session.
pub const SESSIONS_PATH: &str = "/v1/sessions";
/// Route that re-wraps DEKs.
pub const UNWRAP_PATH: &str = "/v1/unwrap";
/// Route that rotates the pinned DPoP key.
pub const ROTATE_KEY_PATH: &str = "/v1/sessions/rotate-key";
/// The most capsules one unwrap may carry.
pub const MAX_BATCH: usize = 64;

/// `POST /v1/sessions` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    /// The pod's ephemeral X25519 public key, base64url.
    pub recipient_key: String,
    /// The container the process runs in (`PODSEAL_CONTAINER`); may be left
    /// out when the pod has one container and declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// `POST /v1/sessions` answer.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SessionAnswer {
    /// The session id (the DPoP access token of later requests).
    pub session_id: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// `POST /v1/unwrap` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnwrapBody {
    /// Each capsule's header and wraps (`DekEnvelope` bytes), base64url. Never content.
    pub capsules: Vec<String>,
}

/// One release in an unwrap answer.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ReleaseAnswer {
    /// Capsule id.
    pub capsule_id: String,
    /// HPKE enc, base64url.
    pub enc: String,
    /// The DEK sealed to the session key, base64url.
    pub wrapped_dek: String,
    /// The DPoP `jti` the release is bound to.
    pub jti: String,
}

/// `POST /v1/unwrap` answer.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UnwrapAnswer {
    /// One release per capsule, in request order.
    pub releases: Vec<ReleaseAnswer>,
}

/// `POST /v1/sessions/rotate-key` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// A DPoP proof signed by the new key (same route, bound to the session).
    pub new_proof: String,
}

/// `POST /v1/sessions/rotate-key` answer.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RotateAnswer {
    /// RFC 7638 thumbprint of the now pinned key.
    pub jkt: String,
}

/// A refusal as the server sends it (RFC 9457 problem details).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Problem {
    /// HTTP status.
    pub status: u16,
    /// The gate or check that refused (a code a newer server added reads
    /// as [`Code::Unknown`]).
    pub gate: Code<Gate>,
    /// The stable reason code.
    pub reason: Code<Reason>,
    /// A public sentence.
    #[serde(default)]
    pub detail: String,
}
