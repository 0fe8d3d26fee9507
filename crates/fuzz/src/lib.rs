//! The fuzz targets' bodies: one function per parser of untrusted input,
//! each taking any bytes. A body may panic only when a property fails
//! (a parser that panics, an encoder that does not give back what its
//! parser took, or the property a body states); every other outcome is a
//! value or a typed error.
//!
//! `fuzz/fuzz_targets/<name>.rs` wraps [`TARGETS`]' entry of that name for
//! libFuzzer (`cargo fuzz run -s none <name>`), and
//! `crates/fuzz/tests/corpus.rs` replays `fuzz/corpus/<name>/` and
//! `fuzz/regressions/<name>/` through the same function in every test run,
//! so a crash found once stays fixed. `docs/fuzzing.md` says how to run
//! them for hours.

use std::hint::black_box;
use std::path::{Component, Path};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use podseal_core::audit::{Checkpoint, parse_public_key, parse_verifier_key, verify_export};
use podseal_core::capsule::{Capsule, DekEnvelope, parse_header};
use podseal_core::dpop::{ProofExpectations, verify_proof};
use podseal_core::hpke::{KemId, validate_public_key};
use podseal_core::jws::CompactJws;
use podseal_core::org_key::OrgPublicKey;
use podseal_core::scope::{NameRule, check_name};
use podseal_core::wire::admin::{
    ApiKeyRequest, ClusterRequest, PolicyDigestsRequest, PolicyRequest,
};
use podseal_core::wire::{MAX_BODY_BYTES, RotateBody, SessionBody, UnwrapBody};
use podseal_core::{armor, scope};
use podseal_dev_cluster::secret_volume;
use podseal_server::cluster::client::{check_api_server_url, check_ca_pem};
use podseal_server::config::ServerConfig;
use podseal_server::gate::admin::check_field;
use podseal_server::identity::cache::TokenCache;
use podseal_server::identity::jwks::TokenAlgorithm;
use podseal_server::identity::kubernetes::{KubernetesTokens, MAX_LIFETIME_RANGE_SECS};
use podseal_server::identity::{IdentityError, IdentityProvider as _, PinnedJwks};

/// One fuzz target: its name (the directory of its corpus) and its body.
pub struct Target {
    /// The name `cargo fuzz run` takes.
    pub name: &'static str,
    /// What it parses.
    pub parses: &'static str,
    /// The body.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "armor",
        parses: "armored capsule text (`podseal:v1:…`); decode → encode → decode gives the same body",
        run: armor_text,
    },
    Target {
        name: "capsule",
        parses: "a capsule body; parse → encode gives the same bytes",
        run: capsule_body,
    },
    Target {
        name: "envelope",
        parses: "a release request's DEK envelope; parse → encode gives the same bytes",
        run: envelope_body,
    },
    Target {
        name: "header",
        parses: "capsule header JSON and its scope",
        run: header_json,
    },
    Target {
        name: "dpop",
        parses: "a DPoP proof: compact JWS, header, Ed25519 verification, claims",
        run: dpop_proof,
    },
    Target {
        name: "checkpoint",
        parses: "a C2SP signed checkpoint note, and audit key texts",
        run: checkpoint_note,
    },
    Target {
        name: "audit_export",
        parses: "an audit export (JSON lines of records and checkpoints) being verified",
        run: audit_export,
    },
    Target {
        name: "inclusion_proof",
        parses: "an inclusion proof file (`podseal audit verify-proof`) checked offline; parse → encode → parse gives the same proof, and one that verifies names its own record",
        run: inclusion_proof,
    },
    Target {
        name: "org_public_key",
        parses: "an org public key's text",
        run: org_public_key,
    },
    Target {
        name: "release_request",
        parses: "a release API request body (session, unwrap, rotate-key) and what the server decodes from it; parse → serialize → parse gives the same body",
        run: release_request,
    },
    Target {
        name: "admin_request",
        parses: "an admin API request body (cluster registration, API key, policy, policy digests) and the server's checks of it; parse → serialize → parse gives the same body",
        run: admin_request,
    },
    Target {
        name: "config",
        parses: "the server's TOML configuration; a config that loads prints (`--print-config`) as text that loads as the same config",
        run: server_config,
    },
    Target {
        name: "jwks",
        parses: "a JWKS being pinned; every pinned key is found by its kid and verifies no all-zero signature",
        run: jwks,
    },
    Target {
        name: "projected_token",
        parses: "a projected ServiceAccount token verified against a fixed pinned key and clock, also re-signed by that key; the token cache answers what verifying answers",
        run: projected_token,
    },
    Target {
        name: "secret_manifest",
        parses: "a Secret manifest as `podseal-dev cluster mount-secret` mounts it; every name it would write is one path component",
        run: secret_manifest,
    },
    Target {
        name: "kube_protobuf",
        parses: "a protobuf request body as the stand-in reads those kubectl sends only as protobuf (TokenRequest, access and rules reviews)",
        run: kube_protobuf,
    },
    Target {
        name: "kube_patch",
        parses: "a strategic merge patch and a server-side apply configuration, as the stand-in applies them to a stored pod",
        run: kube_patch,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Armored text: a body that decodes encodes to text that decodes to it.
pub fn armor_text(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(body) = armor::decode(text) {
        let again = armor::decode(&armor::encode(&body));
        assert_eq!(
            again.ok().as_deref(),
            Some(body.as_slice()),
            "armor round trip"
        );
    }
    if let Ok(capsule) = Capsule::from_armored(text) {
        black_box(capsule.header());
    }
}

/// A capsule body: what parses encodes to exactly the bytes it came from
/// (a capsule's bytes are what is sealed and compared).
pub fn capsule_body(data: &[u8]) {
    if let Ok(capsule) = Capsule::from_bytes(data) {
        assert_eq!(capsule.to_bytes(), data, "capsule round trip");
    }
}

/// A DEK envelope (the only part of a capsule a release request carries).
pub fn envelope_body(data: &[u8]) {
    if let Ok(envelope) = DekEnvelope::from_bytes(data) {
        assert_eq!(envelope.to_bytes(), data, "envelope round trip");
        black_box(envelope.header());
    }
}

/// Header JSON, and the Secret slot syntax of a scope.
pub fn header_json(data: &[u8]) {
    black_box(parse_header(data).ok());
    if let Some(text) = text(data) {
        black_box(scope::SecretSlot::parse(text).ok());
    }
}

/// A DPoP proof against fixed expectations (the signature fails for any
/// input the fuzzer did not sign, so this reaches the JWS and header
/// checks; the corpus holds proofs that verify).
pub fn dpop_proof(data: &[u8]) {
    let Some(proof) = text(data) else { return };
    if let Ok(jws) = CompactJws::parse(proof) {
        black_box(jws.payload.len());
    }
    black_box(verify_proof(proof, &dpop_expectations()).ok());
}

/// What the `dpop` target verifies proofs against (its seeds are signed
/// for these).
pub fn dpop_expectations() -> ProofExpectations<'static> {
    ProofExpectations {
        htm: "POST",
        htu: "https://podseal.example/v1/unwrap",
        now: 1_795_000_000,
        max_age_secs: 60,
        max_skew_secs: 5,
        access_token: None,
        nonce: None,
    }
}

/// The seed of the audit key the `audit_export` target verifies with (its
/// seed export is signed by it).
pub const AUDIT_KEY_SEED: [u8; 32] = [7; 32];

/// A checkpoint note: one that parses prints back as the same text.
pub fn checkpoint_note(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(checkpoint) = Checkpoint::parse(text) {
        assert_eq!(checkpoint.note(), text, "checkpoint round trip");
    }
    black_box(parse_verifier_key(text));
    black_box(parse_public_key(text));
}

/// An export verified against the public key of the audit key with seed
/// `[7; 32]`, which signed the seed export: any outcome but a panic.
pub fn audit_export(data: &[u8]) {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key =
        KEY.get_or_init(|| podseal_core::audit::AuditKey::from_seed(&AUDIT_KEY_SEED).public_key());
    let Some(text) = text(data) else { return };
    black_box(verify_export(text, key, None).ok());
}

/// An inclusion proof file, as `podseal audit verify-proof` reads it,
/// checked against the audit key with seed [`AUDIT_KEY_SEED`] (which signed
/// the seed proofs' checkpoints): a proof that parses round-trips through
/// JSON, and one that verifies answers the record at its own `seq`.
pub fn inclusion_proof(data: &[u8]) {
    use podseal_core::audit::{InclusionProof, TrustedKey};
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let public_key =
        *KEY.get_or_init(|| podseal_core::audit::AuditKey::from_seed(&AUDIT_KEY_SEED).public_key());
    let Ok(proof) = serde_json::from_slice::<InclusionProof>(data) else {
        return;
    };
    let again = serde_json::to_string(&proof)
        .ok()
        .and_then(|json| serde_json::from_str::<InclusionProof>(&json).ok());
    assert_eq!(again.as_ref(), Some(&proof), "inclusion proof round trip");
    let trusted = TrustedKey {
        public_key,
        origin: None,
    };
    if let Ok(record) = proof.verify(&trusted) {
        assert_eq!(record.seq, proof.seq, "a proof verified another record");
    }
}

/// An org public key's text.
pub fn org_public_key(data: &[u8]) {
    let Some(text) = text(data) else { return };
    black_box(OrgPublicKey::from_text(text).ok());
}

/// Parses `data` as `T` as the server does (a body of at most
/// [`MAX_BODY_BYTES`], `serde_json`), and checks that
/// what parses serializes to JSON that parses to the same value (compared
/// as JSON: the wire types have no `PartialEq`).
fn json_body<T: DeserializeOwned + Serialize>(data: &[u8]) -> Option<T> {
    if data.len() > MAX_BODY_BYTES {
        return None;
    }
    let body: T = serde_json::from_slice(data).ok()?;
    let json = serde_json::to_string(&body).ok();
    let again = json
        .as_deref()
        .and_then(|json| serde_json::from_str::<T>(json).ok())
        .and_then(|again| serde_json::to_string(&again).ok());
    assert!(
        json.is_some() && again == json,
        "{} round trip: {json:?} then {again:?}",
        std::any::type_name::<T>()
    );
    Some(body)
}

/// The server URL the `release_request` seeds are built for (their
/// rotate-key proofs are signed for its route).
pub const RELEASE_SERVER_URL: &str = "https://podseal.example";
/// The session the `release_request` rotate-key seeds are bound to.
pub const RELEASE_SESSION_ID: &str = "ps_fuzz-session";
/// The clock of the `release_request` and `projected_token` targets (Unix seconds).
pub const FUZZ_NOW: i64 = 1_795_000_000;

/// What the `release_request` target verifies a rotate-key body's
/// `new_proof` against (the route, the seeds' session, [`FUZZ_NOW`]).
pub fn rotate_expectations() -> ProofExpectations<'static> {
    ProofExpectations {
        htm: "POST",
        htu: "https://podseal.example/v1/sessions/rotate-key",
        now: FUZZ_NOW,
        max_age_secs: 60,
        max_skew_secs: 5,
        access_token: Some(RELEASE_SESSION_ID),
        nonce: None,
    }
}

/// A release API body (`POST /v1/sessions`, `/v1/unwrap`,
/// `/v1/sessions/rotate-key`), tried as each, then decoded as the handler
/// does: the recipient key and the container name of a session, each
/// capsule envelope of an unwrap, the new key's proof of a rotation.
pub fn release_request(data: &[u8]) {
    if let Some(body) = json_body::<SessionBody>(data) {
        if let Ok(key) = URL_SAFE_NO_PAD.decode(&body.recipient_key) {
            black_box(validate_public_key(KemId::X25519HkdfSha256, &key).is_ok());
        }
        if let Some(container) = &body.container {
            black_box(check_name(container, NameRule::Label).is_ok());
        }
    }
    if let Some(body) = json_body::<UnwrapBody>(data) {
        for capsule in &body.capsules {
            if let Ok(bytes) = URL_SAFE_NO_PAD.decode(capsule) {
                black_box(DekEnvelope::from_bytes(&bytes).ok());
            }
        }
    }
    if let Some(body) = json_body::<RotateBody>(data) {
        black_box(verify_proof(&body.new_proof, &rotate_expectations()).ok());
    }
}

/// An admin API body (`POST /v1/admin/clusters`, `/v1/admin/apikeys`,
/// `PUT /v1/admin/policies`, `POST /v1/admin/policies/digests`), tried as
/// each, then through the checks the server makes before it touches its
/// store or the cluster: names, the API server URL, the CA bundle, the
/// reader token, the lifetime bound, the JWKS, digests.
pub fn admin_request(data: &[u8]) {
    let service_account = |namespace: &str, service_account: &str| {
        black_box(check_field("namespace", namespace, NameRule::Label).is_ok());
        black_box(check_field("service_account", service_account, NameRule::Subdomain).is_ok());
    };
    if let Some(body) = json_body::<ClusterRequest>(data) {
        black_box(check_field("name", &body.name, NameRule::Subdomain).is_ok());
        black_box(check_api_server_url(&body.api_server_url).is_ok());
        black_box(check_ca_pem(&body.ca_pem).is_ok());
        black_box(body.reader_token.check().is_ok());
        if let Some(secs) = body.max_token_lifetime_secs {
            black_box(MAX_LIFETIME_RANGE_SECS.contains(&secs));
        }
        if let Some(jwks) = &body.jwks {
            black_box(PinnedJwks::parse(jwks).is_ok());
        }
    }
    if let Some(body) = json_body::<ApiKeyRequest>(data) {
        service_account(&body.namespace, &body.service_account);
    }
    if let Some(body) = json_body::<PolicyRequest>(data) {
        service_account(&body.namespace, &body.service_account);
        black_box(
            body.digests
                .iter()
                .all(|d| podseal_server::admin::is_digest(d)),
        );
    }
    if let Some(body) = json_body::<PolicyDigestsRequest>(data) {
        service_account(&body.namespace, &body.service_account);
        let digests = body.add.iter().chain(&body.remove);
        black_box(
            digests
                .filter(|d| podseal_server::admin::is_digest(d))
                .count(),
        );
    }
}

/// The file name the `config` target's configurations are read as.
pub const CONFIG_SOURCE: &str = "podseal.toml";

/// A server configuration file, with no environment override: one that
/// loads is printed as `podseal-server --print-config` prints it, and that
/// text loads as the same configuration.
pub fn server_config(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let source = Path::new(CONFIG_SOURCE);
    let Ok(config) = ServerConfig::from_toml(text, source, |_| None) else {
        return;
    };
    let printed = config.to_toml();
    let again = ServerConfig::from_toml(&printed, source, |_| None);
    assert_eq!(
        again.as_ref().ok(),
        Some(&config),
        "--print-config round trip: {printed:?} gives {again:?}"
    );
}

/// A JWKS as registration pins it: every key it keeps is found by its
/// kid, and none verifies an all-zero signature.
pub fn jwks(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(jwks) = PinnedJwks::parse(text) else {
        return;
    };
    assert!(!jwks.kids().is_empty(), "a pinned JWKS with no key");
    for kid in jwks.kids() {
        let key = jwks.key(kid);
        assert!(key.is_some(), "pinned kid {kid:?} is not found");
        if let Some(key) = key {
            let len = match key.algorithm {
                TokenAlgorithm::Rs256 => 256,
                TokenAlgorithm::Es256 => 64,
                TokenAlgorithm::Es384 => 96,
                TokenAlgorithm::Es512 => 132,
            };
            assert!(
                !key.verify(b"podseal", &vec![0; len]),
                "an all-zero signature verifies under pinned kid {kid:?}"
            );
        }
    }
}

/// The issuer the `projected_token` target's tokens are checked against.
pub const TOKEN_ISSUER: &str = "https://kubernetes.default.svc";
/// The audience the `projected_token` target accepts.
pub const TOKEN_AUDIENCE: &str = "podseal";
/// The kid of the `projected_token` target's one pinned key.
pub const TOKEN_KID: &str = "fuzz-es256";
/// The P-256 private scalar of that key: a test key, fixed so that the
/// committed seeds verify in every run.
pub const TOKEN_KEY_SEED: [u8; 32] = [0x11; 32];

/// The fixed ES256 key: its ring key pair and its public point.
fn token_key() -> Option<&'static (ring::signature::EcdsaKeyPair, Vec<u8>)> {
    use p256::elliptic_curve::sec1::ToSec1Point as _;
    static KEY: OnceLock<Option<(ring::signature::EcdsaKeyPair, Vec<u8>)>> = OnceLock::new();
    KEY.get_or_init(|| {
        let secret = p256::SecretKey::from_slice(&TOKEN_KEY_SEED).ok()?;
        let public = secret.public_key().to_sec1_point(false).as_bytes().to_vec();
        let pair = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &TOKEN_KEY_SEED,
            &public,
            &ring::rand::SystemRandom::new(),
        )
        .ok()?;
        Some((pair, public))
    })
    .as_ref()
}

/// The JWKS the `projected_token` target pins: the fixed key's public JWK,
/// as `kube-apiserver` publishes an EC key.
pub fn token_jwks() -> String {
    let point = token_key()
        .map(|(_, public)| public.as_slice())
        .unwrap_or_default();
    let (x, y) = point
        .get(1..)
        .unwrap_or_default()
        .split_at(point.len().saturating_sub(1) / 2);
    serde_json::json!({ "keys": [{
        "use": "sig", "kty": "EC", "kid": TOKEN_KID, "crv": "P-256", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    }] })
    .to_string()
}

/// `signing_input` (`header.payload`) signed by the fixed key, as a compact JWS.
pub fn sign_token_input(signing_input: &str) -> Option<String> {
    let (pair, _) = token_key()?;
    let signature = pair
        .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
        .ok()?;
    Some(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

/// A token of `header` and `claims` signed by the fixed key.
pub fn sign_token(header: &serde_json::Value, claims: &serde_json::Value) -> Option<String> {
    let part = |value: &serde_json::Value| {
        serde_json::to_vec(value).map(|json| URL_SAFE_NO_PAD.encode(json))
    };
    sign_token_input(&format!("{}.{}", part(header).ok()?, part(claims).ok()?))
}

/// The verifier of the `projected_token` target: [`token_jwks`] pinned,
/// issuer [`TOKEN_ISSUER`], audience [`TOKEN_AUDIENCE`], the default
/// leeway and lifetime bound (`None` only if the fixed key did not build).
pub fn token_verifier() -> Option<&'static KubernetesTokens> {
    static VERIFIER: OnceLock<Option<KubernetesTokens>> = OnceLock::new();
    VERIFIER
        .get_or_init(|| {
            let jwks = PinnedJwks::parse(&token_jwks()).ok()?;
            Some(KubernetesTokens::new(
                TOKEN_ISSUER.to_owned(),
                vec![TOKEN_AUDIENCE.to_owned()],
                jwks,
            ))
        })
        .as_ref()
}

/// A projected ServiceAccount token, verified at [`FUZZ_NOW`] against the
/// fixed pinned key, directly and through a token cache (a hit must answer
/// exactly what verifying answers); then the same header and payload
/// signed by that key, so the claims' checks are reached whatever the
/// fuzzer made of them: that token fails for anything but its signature.
pub fn projected_token(data: &[u8]) {
    let Some(token) = text(data) else { return };
    let Some(verifier) = token_verifier() else {
        return;
    };
    let direct = verifier.verify(token, FUZZ_NOW);
    let cache = TokenCache::default();
    let leeway = verifier.leeway_secs;
    assert_eq!(
        cache.verify(verifier, leeway, token, FUZZ_NOW),
        direct,
        "cache miss"
    );
    assert_eq!(
        cache.verify(verifier, leeway, token, FUZZ_NOW),
        direct,
        "cache hit"
    );
    if let Ok(identity) = &direct {
        assert!(
            identity.expires_at > FUZZ_NOW - leeway,
            "an expired token verifies: {identity:?}"
        );
    }
    if let Some((signing_input, _)) = token.rsplit_once('.')
        && let Some(signed) = sign_token_input(signing_input)
    {
        let verdict = verifier.verify(&signed, FUZZ_NOW);
        assert_ne!(
            verdict,
            Err(IdentityError::BadSignature),
            "a token signed by the pinned key fails its signature check"
        );
        black_box(verdict.ok());
    }
}

/// Whether `name` is exactly one normal path component: joined to a
/// directory, it names an entry of that directory and nothing else.
fn one_path_component(name: &str) -> bool {
    let mut components = Path::new(name).components();
    !name.is_empty()
        && !name.contains(['/', '\0'])
        && name != "."
        && name != ".."
        && matches!(
            (components.next(), components.next()),
            (Some(Component::Normal(only)), None) if only == name
        )
}

/// A Secret manifest as `podseal-dev cluster mount-secret` reads it: the
/// Secret's name (the volume's directory) and every key it would write
/// (a file in it) are each one path component, so mounting never writes
/// outside the secrets directory.
pub fn secret_manifest(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(volume) = secret_volume::parse_manifest(text) else {
        return;
    };
    assert!(
        one_path_component(&volume.name),
        "the Secret name {:?} is not one path component",
        volume.name
    );
    for key in volume.files.keys() {
        assert!(
            one_path_component(key),
            "the key {key:?} is not one path component"
        );
    }
}

/// The stand-in's protobuf reader: any bytes are read or refused, never a
/// panic.
pub fn kube_protobuf(data: &[u8]) {
    black_box(podseal_dev_cluster::protobuf::read_any(data));
}

/// A pod as the stand-in stores one, for [`kube_patch`].
const STORED_POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"api-0","namespace":"shop","labels":{"app":"api"},
"managedFields":[{"manager":"kubectl","operation":"Apply","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{}}}}]},
"spec":{"containers":[{"name":"api","image":"a:1","env":[{"name":"A","value":"1"}]}],"tolerations":[{"key":"k"}]}}"#;

/// A patch (any JSON) applied to a stored pod both ways: a strategic
/// merge patch never panics and leaves an object an object; a forced
/// server-side apply never conflicts and leaves every field it names with
/// the value it gives.
pub fn kube_patch(data: &[u8]) {
    use podseal_dev_cluster::patch;
    let Ok(patch_body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(stored) = serde_json::from_str::<serde_json::Value>(STORED_POD) else {
        unreachable!("the stored pod is a JSON literal");
    };
    let mut merged = stored.clone();
    if patch::strategic_merge(&mut merged, &patch_body).is_ok() && patch_body.is_object() {
        assert!(
            merged.is_object() || merged.is_null(),
            "a strategic merge patch object made {merged}"
        );
    }
    if !patch_body.is_object() {
        return;
    }
    let applied = patch::apply(Some(&stored), &patch_body, "fuzz", true);
    assert!(applied.is_ok(), "a forced apply conflicted: {applied:?}");
    let Ok(applied) = applied else { return };
    for leaf in patch::leaves(&patch_body) {
        let given = leaf.iter().try_fold(&patch_body, |v, k| v.get(k));
        let kept = leaf.iter().try_fold(&applied, |v, k| v.get(k));
        assert_eq!(given, kept, "the applied field {leaf:?} was not kept");
    }
}
