//! Projected ServiceAccount tokens, verified as `kube-apiserver` issues them:
//! RS256/ES256 over a pinned JWKS, `iss` equal to the registered issuer,
//! `aud` containing the podseal server's audience and (unless the cluster
//! allows it) nothing else, `exp`/`nbf`/`iat` within a small leeway, a
//! bounded lifetime, and the `kubernetes.io` claims binding the token to a
//! pod. The `jti` and the `kubernetes.io` `node` (1.32+, KEP-4193) are kept
//! when present: the `jti` goes into every audit record of the request
//! (`credential_id`, to join the cluster's audit log), and gate 4 checks the
//! node against the live pod's `spec.nodeName`. A token without them (a
//! cluster before 1.32) is accepted as before.
//!
//! Checks run in this order and stop at the first failure: size and shape;
//! `alg` against the allowlist (before anything else in the header is
//! believed); header parameters (only `alg`, `kid`, `typ`); the pinned key
//! for `kid`, of the same algorithm; the signature; then the claims.
//!
//! The lifetime is `exp − iat`, except for a token the API server extended
//! (`--service-account-extend-token-expiration`: the kubelet asked for
//! 3607 s and got a year, with `kubernetes.io` `warnafter` at the 3607 s it
//! asked for). Such a token's effective expiry is `warnafter`: past it (and
//! the leeway) it is refused as stale, and its lifetime is `warnafter − iat`.
//! The kubelet replaces a token at 80 % of the lifetime it asked for, so a
//! live pod never presents one past `warnafter`; a stolen one is worth an
//! hour, not a year.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::jwks::{PinnedJwks, TokenAlgorithm};
use super::{IdentityError, IdentityProvider, NodeRef, WorkloadIdentity};

/// The largest token accepted.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Clock leeway for `exp`, `nbf`, `iat` and `warnafter`, seconds.
pub const DEFAULT_LEEWAY_SECS: i64 = 30;
/// The longest token lifetime a cluster accepts unless registered with
/// another bound: 24 hours.
pub const DEFAULT_MAX_LIFETIME_SECS: i64 = 24 * 3600;
/// The bounds a cluster's maximum token lifetime may be set to: from the
/// shortest token the API server issues (10 minutes) to 48 hours.
pub const MAX_LIFETIME_RANGE_SECS: std::ops::RangeInclusive<i64> = 600..=48 * 3600;

/// The projected-token provider of one registered cluster.
#[derive(Debug, Clone)]
pub struct KubernetesTokens {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted audiences (the server's).
    pub audiences: Vec<String>,
    /// The pinned keys.
    pub jwks: PinnedJwks,
    /// Clock leeway, seconds.
    pub leeway_secs: i64,
    /// The longest lifetime accepted (`exp − iat`, `warnafter − iat` for
    /// an extended token), seconds.
    pub max_lifetime_secs: i64,
    /// Accept tokens whose `aud` also names other relying parties.
    pub allow_extra_audiences: bool,
}

fn decode_json(part: &str, what: &'static str) -> Result<Map<String, Value>, IdentityError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| IdentityError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| IdentityError::Malformed(what))
}

fn string<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, IdentityError> {
    object
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(IdentityError::MissingClaim(name))
}

fn integer(object: &Map<String, Value>, name: &'static str) -> Result<i64, IdentityError> {
    object
        .get(name)
        .and_then(Value::as_i64)
        .ok_or(IdentityError::MissingClaim(name))
}

fn object<'a>(
    parent: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a Map<String, Value>, IdentityError> {
    parent
        .get(name)
        .and_then(Value::as_object)
        .ok_or(IdentityError::MissingClaim(name))
}

/// The longest `jti` accepted (the API server writes a 36-character UUID).
const MAX_JTI_LEN: usize = 128;

/// `JTI=<jti>` when the token has a `jti` (1.32+), as the API server's audit
/// log names the credential. A `jti` that is not a short printable string
/// is refused: it goes into audit records.
fn credential_id(claims: &Map<String, Value>) -> Result<Option<String>, IdentityError> {
    let Some(jti) = claims.get("jti") else {
        return Ok(None);
    };
    let jti = jti
        .as_str()
        .filter(|jti| {
            !jti.is_empty() && jti.len() <= MAX_JTI_LEN && jti.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or(IdentityError::MissingClaim("jti"))?;
    Ok(Some(format!("JTI={jti}")))
}

/// `kubernetes.io` `node` (1.32+): the node the bound pod was scheduled on.
/// Absent on older clusters; present, it must name a node and its uid.
fn node(kubernetes: &Map<String, Value>) -> Result<Option<NodeRef>, IdentityError> {
    let Some(node) = kubernetes.get("node") else {
        return Ok(None);
    };
    let node = node
        .as_object()
        .ok_or(IdentityError::MissingClaim("kubernetes.io.node"))?;
    let name =
        string(node, "name").map_err(|_| IdentityError::MissingClaim("kubernetes.io.node.name"))?;
    let uid =
        string(node, "uid").map_err(|_| IdentityError::MissingClaim("kubernetes.io.node.uid"))?;
    Ok(Some(NodeRef {
        name: name.to_owned(),
        uid: uid.to_owned(),
    }))
}

impl KubernetesTokens {
    /// A provider with the default leeway and lifetime bound that refuses
    /// extra audiences.
    pub fn new(issuer: String, audiences: Vec<String>, jwks: PinnedJwks) -> Self {
        Self {
            issuer,
            audiences,
            jwks,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS,
            allow_extra_audiences: false,
        }
    }

    fn check_header(
        &self,
        header: &Map<String, Value>,
    ) -> Result<&super::jwks::PinnedKey, IdentityError> {
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("(missing)");
        let algorithm = TokenAlgorithm::from_name(alg)
            .ok_or_else(|| IdentityError::AlgorithmNotAllowed(alg.chars().take(16).collect()))?;
        if let Some(name) = header
            .keys()
            .find(|k| !matches!(k.as_str(), "alg" | "kid" | "typ"))
        {
            return Err(IdentityError::HeaderNotAllowed(
                name.chars().take(16).collect(),
            ));
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(IdentityError::MissingKid)?;
        let key = self.jwks.key(kid).ok_or(IdentityError::UnknownKid)?;
        if key.algorithm != algorithm {
            return Err(IdentityError::AlgorithmMismatch);
        }
        Ok(key)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<WorkloadIdentity, IdentityError> {
        if string(claims, "iss")? != self.issuer {
            return Err(IdentityError::WrongIssuer);
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many
                .iter()
                .map(Value::as_str)
                .collect::<Option<_>>()
                .ok_or(IdentityError::MissingClaim("aud"))?,
            _ => return Err(IdentityError::MissingClaim("aud")),
        };
        let ours = |aud: &&str| self.audiences.iter().any(|ours| ours == aud);
        if !audiences.iter().any(ours) {
            return Err(IdentityError::WrongAudience);
        }
        if !self.allow_extra_audiences && !audiences.iter().all(ours) {
            return Err(IdentityError::ExtraAudience);
        }
        let exp = integer(claims, "exp")?;
        if exp <= now.saturating_sub(self.leeway_secs) {
            return Err(IdentityError::Expired);
        }
        if integer(claims, "nbf")? > now.saturating_add(self.leeway_secs) {
            return Err(IdentityError::NotYetValid);
        }
        let iat = integer(claims, "iat")?;
        if iat > now.saturating_add(self.leeway_secs) {
            return Err(IdentityError::IssuedInFuture);
        }
        let kubernetes = object(claims, "kubernetes.io")?;
        let expires_at = match kubernetes.get("warnafter") {
            None => exp,
            Some(warnafter) => warnafter
                .as_i64()
                .ok_or(IdentityError::MissingClaim("kubernetes.io.warnafter"))?
                .min(exp),
        };
        if expires_at <= now.saturating_sub(self.leeway_secs) {
            return Err(IdentityError::Stale);
        }
        let lifetime_secs = expires_at.saturating_sub(iat);
        if lifetime_secs > self.max_lifetime_secs {
            return Err(IdentityError::LifetimeTooLong {
                lifetime_secs,
                max_secs: self.max_lifetime_secs,
            });
        }
        let namespace = string(kubernetes, "namespace")?;
        let service_account = object(kubernetes, "serviceaccount")?;
        let pod = kubernetes
            .get("pod")
            .and_then(Value::as_object)
            .ok_or(IdentityError::NotPodBound)?;
        let identity = WorkloadIdentity {
            namespace: namespace.to_owned(),
            service_account: string(service_account, "name")?.to_owned(),
            service_account_uid: string(service_account, "uid")?.to_owned(),
            pod_name: string(pod, "name")?.to_owned(),
            pod_uid: string(pod, "uid")?.to_owned(),
            credential_id: credential_id(claims)?,
            node: node(kubernetes)?,
            expires_at,
        };
        let subject = format!(
            "system:serviceaccount:{}:{}",
            identity.namespace, identity.service_account
        );
        if string(claims, "sub")? != subject {
            return Err(IdentityError::SubjectMismatch);
        }
        Ok(identity)
    }
}

impl IdentityProvider for KubernetesTokens {
    fn verify(&self, token: &str, now: i64) -> Result<WorkloadIdentity, IdentityError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(IdentityError::Malformed("token too large"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(IdentityError::Malformed("not a compact JWS"));
        };
        let key = self.check_header(&decode_json(header, "header is not base64url JSON")?)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| IdentityError::Malformed("signature is not base64url"))?;
        let signing_input_len = header.len() + 1 + payload.len();
        let signing_input = token
            .get(..signing_input_len)
            .ok_or(IdentityError::Malformed("not a compact JWS"))?;
        if !key.verify(signing_input.as_bytes(), &signature) {
            return Err(IdentityError::BadSignature);
        }
        self.check_claims(&decode_json(payload, "payload is not base64url JSON")?, now)
    }

    fn has_live_workload_view(&self) -> bool {
        true
    }
}
