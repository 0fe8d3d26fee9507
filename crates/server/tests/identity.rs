//! Gate 2 against tokens the stand-in issues (and forges): each refusal the
//! issue lists, with its own reason code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podseal_core::reason::Reason;
use podseal_dev_cluster::Handle;
use podseal_server::identity::cache::TokenCache;
use podseal_server::identity::{IdentityError, IdentityProvider, KubernetesTokens, PinnedJwks};
use serde_json::{Value, json};

mod support;

const ISSUER: &str = "https://kubernetes.default.svc";

struct Fixture {
    _cluster: support::Cluster,
    handle: Handle,
    provider: KubernetesTokens,
    now: i64,
}

async fn fixture() -> Fixture {
    let cluster = support::Cluster::start().await;
    let handle = cluster.dev.handle();
    handle.create_pod(&support::api_pod("api-0")).unwrap();
    // Pin the JWKS as `podseal cluster add` will: a snapshot taken once.
    let jwks = PinnedJwks::parse(&serde_json::to_string(&handle.jwks()).unwrap()).unwrap();
    let provider = KubernetesTokens::new(ISSUER.into(), vec!["podseal".into()], jwks);
    Fixture {
        _cluster: cluster,
        handle,
        provider,
        now: jiff::Timestamp::now().as_second(),
    }
}

impl Fixture {
    fn good_claims(&self) -> Value {
        let (_, claims) = self
            .handle
            .issue_token("shop", "api", &["podseal".into()], 600, Some("api-0"))
            .unwrap();
        serde_json::to_value(claims).unwrap()
    }

    fn kid(&self) -> String {
        self.provider.jwks.kids()[0].to_owned()
    }

    fn sign(&self, header: Value, claims: &Value) -> String {
        self.handle.sign_raw(&header, claims).unwrap()
    }

    fn signed(&self, claims: &Value) -> String {
        self.sign(json!({ "alg": "RS256", "kid": self.kid() }), claims)
    }

    fn refusal(&self, token: &str) -> IdentityError {
        self.provider.verify(token, self.now).unwrap_err()
    }
}

fn with(claims: &Value, path: &[&str], value: Value) -> Value {
    let mut claims = claims.clone();
    let mut target = &mut claims;
    for key in &path[..path.len() - 1] {
        target = &mut target[*key];
    }
    target[path[path.len() - 1]] = value;
    claims
}

fn without(claims: &Value, path: &[&str]) -> Value {
    let mut claims = claims.clone();
    let mut target = &mut claims;
    for key in &path[..path.len() - 1] {
        target = &mut target[*key];
    }
    target.as_object_mut().unwrap().remove(path[path.len() - 1]);
    claims
}

#[tokio::test]
async fn a_real_token_verifies_into_the_pod_identity() {
    let f = fixture().await;
    let pod = f.handle.pod("shop", "api-0").unwrap();
    let (token, _) = f
        .handle
        .issue_token("shop", "api", &["podseal".into()], 600, Some("api-0"))
        .unwrap();
    let identity = f.provider.verify(&token, f.now).unwrap();
    assert_eq!(
        (
            identity.namespace.as_str(),
            identity.service_account.as_str(),
            identity.pod_name.as_str()
        ),
        ("shop", "api", "api-0")
    );
    assert_eq!(Some(identity.pod_uid), pod.metadata.uid);
    assert!(f.provider.has_live_workload_view());
}

#[tokio::test]
async fn claim_checks_refuse_with_their_own_reason() {
    let f = fixture().await;
    let good = f.good_claims();
    let cases = [
        (
            with(&good, &["aud"], json!(["vault"])),
            Reason::AudienceMismatch,
        ),
        (
            with(&good, &["aud"], json!("https://kubernetes.default.svc")),
            Reason::AudienceMismatch,
        ),
        (
            with(&good, &["iss"], json!("https://evil.example")),
            Reason::IssuerMismatch,
        ),
        (
            with(&good, &["exp"], json!(f.now - 31)),
            Reason::TokenExpired,
        ),
        (
            with(&good, &["nbf"], json!(f.now + 600)),
            Reason::TokenNotYetValid,
        ),
        (with(&good, &["iat"], json!(f.now + 600)), Reason::IatFuture),
        (
            without(&good, &["kubernetes.io", "pod"]),
            Reason::NotPodBound,
        ),
        (
            with(&good, &["sub"], json!("system:serviceaccount:shop:admin")),
            Reason::SubjectMismatch,
        ),
        (
            with(&good, &["kubernetes.io", "namespace"], json!("payments")),
            Reason::SubjectMismatch,
        ),
        (without(&good, &["exp"]), Reason::ClaimMissing),
        (
            with(&good, &["exp"], json!("tomorrow")),
            Reason::ClaimMissing,
        ),
    ];
    for (claims, reason) in cases {
        assert_eq!(f.refusal(&f.signed(&claims)).reason(), reason, "{claims}");
    }
    // Within the leeway is fine.
    f.provider
        .verify(&f.signed(&with(&good, &["nbf"], json!(f.now + 20))), f.now)
        .unwrap();
}

#[tokio::test]
async fn header_and_key_checks_refuse_with_their_own_reason() {
    let f = fixture().await;
    let good = f.good_claims();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good).unwrap());

    // alg: none, unsigned.
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#)
    );
    assert_eq!(
        f.refusal(&none),
        IdentityError::AlgorithmNotAllowed("none".into())
    );

    // HS256 "signed" with the public key's bytes as the HMAC secret (the classic confusion).
    let jwks = serde_json::to_value(f.handle.jwks()).unwrap();
    let modulus = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["n"].as_str().unwrap())
        .unwrap();
    for secret in [modulus, serde_json::to_vec(&jwks["keys"][0]).unwrap()] {
        let header = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&json!({ "alg": "HS256", "kid": f.kid() })).unwrap());
        let input = format!("{header}.{payload}");
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(
            f.refusal(&token),
            IdentityError::AlgorithmNotAllowed("HS256".into())
        );
    }

    // A kid that names no pinned key, and no kid at all.
    assert_eq!(
        f.refusal(&f.sign(json!({ "alg": "RS256", "kid": "not-pinned" }), &good)),
        IdentityError::UnknownKid
    );
    assert_eq!(
        f.refusal(&f.sign(json!({ "alg": "RS256" }), &good)),
        IdentityError::MissingKid
    );
    // The pinned kid with another algorithm.
    assert_eq!(
        f.refusal(&f.sign(json!({ "alg": "ES256", "kid": f.kid() }), &good)),
        IdentityError::AlgorithmMismatch
    );

    // jku / x5u / jwk / x5c pointing at a listener that must never be contacted.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    for (name, value) in [
        ("jku", json!(url)),
        ("x5u", json!(url)),
        ("jwk", jwks["keys"][0].clone()),
        ("x5c", json!(["MIIB"])),
        ("crit", json!(["exp"])),
    ] {
        let mut header = json!({ "alg": "RS256", "kid": f.kid() });
        header[name] = value;
        assert_eq!(
            f.refusal(&f.sign(header, &good)),
            IdentityError::HeaderNotAllowed(name.into())
        );
    }
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a key URL from a token header was fetched"
    );

    // Signed by a key that was never pinned: the cluster rotated after we pinned.
    f.handle.rotate_signing_key(false).unwrap();
    let (rotated, _) = f
        .handle
        .issue_token("shop", "api", &["podseal".into()], 600, Some("api-0"))
        .unwrap();
    assert_eq!(f.refusal(&rotated), IdentityError::UnknownKid);
    // The same new key claiming the pinned kid: the signature fails.
    assert_eq!(f.refusal(&f.signed(&good)), IdentityError::BadSignature);

    // Shape.
    for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"a".repeat(20_000)] {
        assert_eq!(f.refusal(bad).reason(), Reason::TokenMalformed, "{bad:.20}");
    }
}

/// Claims of a good token issued at `iat` and expiring at `exp`.
fn timed(good: &Value, iat: i64, exp: i64) -> Value {
    let claims = with(good, &["iat"], json!(iat));
    let claims = with(&claims, &["nbf"], json!(iat));
    with(&claims, &["exp"], json!(exp))
}

#[tokio::test]
async fn the_lifetime_is_bounded_and_extra_audiences_are_refused_unless_allowed() {
    let mut f = fixture().await;
    let good = f.good_claims();
    let now = f.now;
    let max = f.provider.max_lifetime_secs;
    assert_eq!(max, 24 * 3600, "the default bound");
    // Exactly the bound is accepted, a second more is not; nor ten years.
    f.provider
        .verify(&f.signed(&timed(&good, now, now + max)), now)
        .unwrap();
    assert_eq!(
        f.refusal(&f.signed(&timed(&good, now, now + max + 1))),
        IdentityError::LifetimeTooLong {
            lifetime_secs: max + 1,
            max_secs: max
        }
    );
    let ten_years = f.signed(&timed(&good, now - 60, now + 10 * 365 * 86_400));
    assert_eq!(f.refusal(&ten_years).reason(), Reason::TokenLifetimeTooLong);
    // The message names the numbers, never the token.
    assert!(!f.refusal(&ten_years).to_string().contains(&ten_years[..20]));

    // Audiences: all must be ours, unless the cluster allows more.
    let shared = with(&good, &["aud"], json!(["podseal", "kube", "vault"]));
    assert_eq!(f.refusal(&f.signed(&shared)), IdentityError::ExtraAudience);
    let not_strings = with(&good, &["aud"], json!(["podseal", 7]));
    assert_eq!(
        f.refusal(&f.signed(&not_strings)).reason(),
        Reason::ClaimMissing
    );
    f.provider.allow_extra_audiences = true;
    f.provider.verify(&f.signed(&shared), now).unwrap();
    // Still one of them must be ours.
    let others = with(&good, &["aud"], json!(["kube", "vault"]));
    assert_eq!(f.refusal(&f.signed(&others)), IdentityError::WrongAudience);
    f.provider.allow_extra_audiences = false;
    // Several audiences of our own are fine.
    f.provider.audiences.push("podseal-b".into());
    let both = with(&good, &["aud"], json!(["podseal-b", "podseal"]));
    f.provider.verify(&f.signed(&both), now).unwrap();
}

#[tokio::test]
async fn warnafter_is_the_effective_expiry_of_an_extended_token() {
    let f = fixture().await;
    let good = f.good_claims();
    let now = f.now;
    let year = 365 * 86_400;
    let extended = |iat: i64, warnafter: Value| {
        with(
            &timed(&good, iat, iat + year),
            &["kubernetes.io", "warnafter"],
            warnafter,
        )
    };
    // Before warnafter: accepted, and the identity expires at warnafter
    // (which bounds the session), not in a year.
    let identity = f
        .provider
        .verify(&f.signed(&extended(now - 60, json!(now - 60 + 3607))), now)
        .unwrap();
    assert_eq!(identity.expires_at, now - 60 + 3607);
    // Within the leeway after it: accepted; past it: stale.
    f.provider
        .verify(&f.signed(&extended(now - 3620, json!(now - 13))), now)
        .unwrap();
    assert_eq!(
        f.refusal(&f.signed(&extended(now - 7200, json!(now - 7200 + 3607)))),
        IdentityError::Stale
    );
    // The lifetime counts to warnafter: a warnafter a year out is refused.
    assert_eq!(
        f.refusal(&f.signed(&extended(now, json!(now + year))))
            .reason(),
        Reason::TokenLifetimeTooLong
    );
    // A warnafter after exp changes nothing; one that is not a number is refused.
    let late = with(
        &timed(&good, now, now + 600),
        &["kubernetes.io", "warnafter"],
        json!(now + 900),
    );
    assert_eq!(
        f.provider.verify(&f.signed(&late), now).unwrap().expires_at,
        now + 600
    );
    assert_eq!(
        f.refusal(&f.signed(&extended(now, json!("soon")))),
        IdentityError::MissingClaim("kubernetes.io.warnafter")
    );

    // A cached verification keeps to the same expiry: no hit past warnafter.
    let cache = TokenCache::default();
    let token = f.signed(&extended(now - 60, json!(now + 100)));
    cache.verify(&f.provider, 30, &token, now).unwrap();
    cache.verify(&f.provider, 30, &token, now + 120).unwrap();
    assert_eq!(
        cache.verify(&f.provider, 30, &token, now + 131),
        Err(IdentityError::Stale)
    );
}

#[tokio::test]
async fn the_stand_in_extends_kubelet_tokens_as_the_api_server_does() {
    let f = fixture().await;
    // The kubelet's default: 3607 s for the API server's own audience.
    let (_, claims) = f
        .handle
        .issue_token("shop", "api", &[], 3607, Some("api-0"))
        .unwrap();
    assert_eq!(claims.kubernetes_io.warnafter, Some(claims.iat + 3607));
    assert_eq!(claims.exp - claims.iat, 365 * 86_400);
    // Another audience, another lifetime or no pod: not extended.
    for (audiences, seconds, pod) in [
        (vec!["podseal".to_owned()], 3607, Some("api-0")),
        (vec![], 3600, Some("api-0")),
        (vec![], 3607, None),
    ] {
        let (_, claims) = f
            .handle
            .issue_token("shop", "api", &audiences, seconds, pod)
            .unwrap();
        assert_eq!(claims.kubernetes_io.warnafter, None);
        assert_eq!(claims.exp - claims.iat, seconds);
    }
}

/// Issue 21 §2: the `jti` (as `JTI=<jti>`) and the `kubernetes.io` node of a
/// 1.32+ token are kept; a token without them (an older cluster) verifies
/// as before; present but malformed, they are refused (they go into audit
/// records and gate 4's node check).
#[tokio::test]
async fn the_jti_and_node_are_kept_and_their_absence_is_accepted() {
    let f = fixture().await;
    let good = f.good_claims();
    let identity = f.provider.verify(&f.signed(&good), f.now).unwrap();
    assert_eq!(
        identity.credential_id,
        Some(format!("JTI={}", good["jti"].as_str().unwrap()))
    );
    let node = identity.node.unwrap();
    assert_eq!(
        (node.name.as_str(), node.uid.as_str()),
        (
            good["kubernetes.io"]["node"]["name"].as_str().unwrap(),
            good["kubernetes.io"]["node"]["uid"].as_str().unwrap()
        )
    );
    let old = without(&without(&good, &["jti"]), &["kubernetes.io", "node"]);
    let identity = f.provider.verify(&f.signed(&old), f.now).unwrap();
    assert_eq!((identity.credential_id, identity.node), (None, None));
    for bad in [
        with(&good, &["jti"], json!(42)),
        with(&good, &["jti"], json!("")),
        with(&good, &["jti"], json!("a b")),
        with(&good, &["jti"], json!("x".repeat(129))),
        with(&good, &["kubernetes.io", "node"], json!("node-a")),
        without(&good, &["kubernetes.io", "node", "uid"]),
        with(&good, &["kubernetes.io", "node", "name"], json!("")),
    ] {
        assert_eq!(
            f.refusal(&f.signed(&bad)).reason(),
            Reason::ClaimMissing,
            "{bad}"
        );
    }
}
