//! Writes the fuzz targets' seed corpora in `fuzz/corpus/<target>/`
//! (`cargo run -p xtask -- make-fuzz-seeds`): inputs that parse, so the
//! fuzzer starts from the shapes the parsers accept and mutates inward.
//!
//! - `armor`, `capsule`, `envelope`, `header`: every capsule of the core
//!   testkit (`crates/core/tests/testkit/`), as armored text, body,
//!   envelope and header bytes;
//! - `dpop`: proofs signed now for the fixed expectations of the `dpop`
//!   target (with and without `ath` and nonce);
//! - `checkpoint`: a signed note, its verifier key and public key texts;
//! - `audit_export`: a small export that verifies, signed by the key the
//!   `audit_export` target checks against;
//! - `inclusion_proof`: the proof of each record of that export;
//! - `org_public_key`: an org public key per KEM;
//! - `release_request`: the bodies the SDK's request builder sends (a
//!   session with and without a container, unwraps of the testkit's
//!   envelopes, a key rotation whose proof verifies for the target's
//!   route), and some the server refuses;
//! - `admin_request`: the bodies the CLI sends (a cluster registration with
//!   a CA, a reader token and a JWKS of the stand-in, an API key, a policy,
//!   a digest change), and some the server refuses;
//! - `config`: the configuration `--print-config` prints, a production-like
//!   one, and some that are refused;
//! - `jwks`: the stand-in's JWKS for each algorithm, one with a key rotated
//!   in, the `projected_token` target's, and some that cannot be pinned;
//! - `projected_token`: tokens with the stand-in's claims, signed by the
//!   `projected_token` target's fixed key, that verify at its clock, and
//!   near misses (each fails one check);
//! - `secret_manifest`: the manifest `podseal seal --k8s-secret` writes,
//!   JSON and `stringData` ones, and some `mount-secret` refuses;
//! - `kube_protobuf`: the protobuf TokenRequest and reviews kubectl sends,
//!   and bodies cut short;
//! - `kube_patch`: the patches `kubectl apply` and `kubectl patch` send
//!   (strategic merge with directives) and apply configurations.
//!
//! The files are committed. Regenerating replaces the random parts; do it
//! when a parser's accepted shape changes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "generator"
)]

use std::path::{Path, PathBuf};

use podseal_core::audit::{
    AuditKey, AuditRecord, Event, ExportLine, LogOrigin, Outcome, TrustedKey, leaf_hash, merkle,
    public_key_text, verifier_key_text, verify_log,
};
use podseal_core::capsule::{Capsule, DekEnvelope};
use podseal_core::dpop::{DpopKey, ProofFor};
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey as _};
use podseal_core::org_key::OrgPrivateKey;
use podseal_core::wire::admin::{
    ApiKeyRequest, ClusterRequest, PolicyDigestsRequest, PolicyRequest, ReaderToken,
};
use podseal_dev_cluster::issuer::{
    Issuer, KubernetesClaim, NameUid, SigningAlgorithm, TokenClaims,
};
use podseal_fuzz::{
    FUZZ_NOW, RELEASE_SERVER_URL, RELEASE_SESSION_ID, TOKEN_AUDIENCE, TOKEN_ISSUER,
};
use podseal_server::config::{ServerConfig, StorageSection, TlsSection};
use serde_json::{Value, json};

/// Writes `bytes` as `fuzz/corpus/<target>/<name>`.
fn seed(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// The armored capsule of each testkit file that has one.
fn testkit_capsules(root: &Path) -> Vec<(String, String)> {
    let dir = root.join("crates/core/tests/testkit");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            let armored = text
                .lines()
                .find_map(|line| line.strip_prefix("capsule: "))?
                .to_owned();
            Some((path.file_name()?.to_str()?.to_owned(), armored))
        })
        .collect()
}

pub fn run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (name, armored) in testkit_capsules(&root) {
        seed(&root, "armor", &name, armored.as_bytes());
        let Ok(body) = podseal_core::armor::decode(&armored) else {
            continue;
        };
        seed(&root, "capsule", &name, &body);
        if let Ok(capsule) = Capsule::from_bytes(&body) {
            let envelope: &DekEnvelope = &capsule.envelope;
            seed(&root, "header", &name, envelope.header_bytes());
            seed(&root, "envelope", &name, &envelope.to_bytes());
        }
    }

    let key = DpopKey::generate().unwrap();
    for (name, access_token, nonce) in [
        ("plain", None, None),
        ("bound", Some("a-session"), None),
        ("nonce", Some("a-session"), Some("a-nonce")),
    ] {
        let expect = podseal_fuzz::dpop_expectations();
        let (proof, _) = key
            .proof(&ProofFor {
                htm: expect.htm,
                htu: expect.htu,
                iat: expect.now,
                access_token,
                nonce,
            })
            .unwrap();
        seed(&root, "dpop", name, proof.as_bytes());
    }

    // The `audit_export` target verifies against this key's public half:
    // the export verifies, so mutations of it reach every check after
    // parsing.
    let audit = AuditKey::from_seed(&podseal_fuzz::AUDIT_KEY_SEED);
    let origin = LogOrigin::new("podseal.example/fuzz").unwrap();
    let records: Vec<String> = (1..=3u64)
        .map(|seq| {
            let record = AuditRecord {
                seq,
                time_ms: 1_795_000_000_000 + i64::try_from(seq).unwrap(),
                event: Event::Unwrap.into(),
                outcome: Outcome::Allowed,
                gate: None,
                reason: None,
                details: [("cluster".to_owned(), "prod".to_owned())].into(),
            };
            serde_json::to_string(&record).unwrap()
        })
        .collect();
    let leaves: Vec<_> = records.iter().map(|r| leaf_hash(r.as_bytes())).collect();
    let checkpoint = audit.checkpoint(&origin, 3, &merkle::root(&leaves));
    let mut export = String::new();
    for (i, (entry, leaf)) in records.iter().zip(&leaves).enumerate() {
        let line = ExportLine::record(i as u64 + 1, entry.as_bytes(), leaf);
        export.push_str(&serde_json::to_string(&line).unwrap());
        export.push('\n');
    }
    export.push_str(&serde_json::to_string(&ExportLine::Checkpoint(checkpoint.clone())).unwrap());
    export.push('\n');
    seed(&root, "audit_export", "three_records", export.as_bytes());
    // Inclusion proofs of each record, made as `podseal audit prove` makes
    // them from that export.
    let trusted = TrustedKey {
        public_key: audit.public_key(),
        origin: Some(origin.clone()),
    };
    let log = verify_log(&export, &trusted, None).unwrap();
    for seq in 1..=3u64 {
        let proof = log.inclusion_proof(seq).unwrap();
        seed(
            &root,
            "inclusion_proof",
            &format!("record_{seq}_of_3"),
            serde_json::to_string_pretty(&proof).unwrap().as_bytes(),
        );
    }
    seed(&root, "checkpoint", "note", checkpoint.note().as_bytes());
    seed(
        &root,
        "checkpoint",
        "verifier_key",
        verifier_key_text(&origin, &audit.public_key()).as_bytes(),
    );
    seed(
        &root,
        "checkpoint",
        "public_key",
        public_key_text(&audit.public_key()).as_bytes(),
    );

    for (name, kem) in [
        ("x25519", KemId::X25519HkdfSha256),
        ("p256", KemId::P256HkdfSha256),
    ] {
        let org = OrgPrivateKey::generate(kem).unwrap();
        seed(
            &root,
            "org_public_key",
            name,
            org.public().to_text().as_bytes(),
        );
    }

    let envelopes: Vec<DekEnvelope> = testkit_capsules(&root)
        .iter()
        .filter_map(|(_, armored)| Capsule::from_armored(armored).ok())
        .map(|capsule| capsule.envelope)
        .collect();
    release_requests(&root, &envelopes);
    admin_requests(&root);
    configs(&root);
    jwks(&root);
    projected_tokens(&root);
    secret_manifests(&root);
    kube_protobuf(&root);
    kube_patches(&root);
}

/// A protobuf field: `number` length-delimited holding `bytes`.
fn pb_bytes(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut len = bytes.len();
    loop {
        let byte = u8::try_from(len & 0x7f).unwrap();
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(bytes);
    out
}

/// A protobuf field: `number` varint holding `value`.
fn pb_varint(number: u8, mut value: u64) -> Vec<u8> {
    let mut out = vec![number << 3];
    loop {
        let byte = u8::try_from(value & 0x7f).unwrap();
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// `k8s\0` + `runtime.Unknown{typeMeta, raw: object}`.
fn pb_envelope(api_version: &str, kind: &str, object: &[u8]) -> Vec<u8> {
    let type_meta = [
        pb_bytes(1, api_version.as_bytes()),
        pb_bytes(2, kind.as_bytes()),
    ]
    .concat();
    let unknown = [pb_bytes(1, &type_meta), pb_bytes(2, object)].concat();
    [b"k8s\0".as_slice(), &unknown].concat()
}

/// The bodies kubectl sends as protobuf, as the stand-in reads them.
fn kube_protobuf(root: &Path) {
    let target = "kube_protobuf";
    let bound = [
        pb_bytes(1, b"Pod"),
        pb_bytes(2, b"v1"),
        pb_bytes(3, b"api-0"),
        pb_bytes(4, b"5e1b7a2c-0000-4000-8000-000000000001"),
    ]
    .concat();
    let spec = [
        pb_bytes(1, b"podseal"),
        pb_bytes(1, b"https://kubernetes.default.svc"),
        pb_bytes(3, &bound),
        pb_varint(4, 900),
    ]
    .concat();
    let token_request = pb_envelope(
        "authentication.k8s.io/v1",
        "TokenRequest",
        &[pb_bytes(1, &[]), pb_bytes(2, &spec)].concat(),
    );
    seed(root, target, "token_request", &token_request);
    let attributes = [
        pb_bytes(1, b"shop"),
        pb_bytes(2, b"get"),
        pb_bytes(3, b""),
        pb_bytes(5, b"pods"),
    ]
    .concat();
    let access = pb_envelope(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &[pb_bytes(1, &[]), pb_bytes(2, &pb_bytes(1, &attributes))].concat(),
    );
    seed(root, target, "access_review", &access);
    let non_resource = [pb_bytes(1, b"/version"), pb_bytes(2, b"get")].concat();
    let access_path = pb_envelope(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &[pb_bytes(1, &[]), pb_bytes(2, &pb_bytes(2, &non_resource))].concat(),
    );
    seed(root, target, "access_review_path", &access_path);
    let rules = pb_envelope(
        "authorization.k8s.io/v1",
        "SelfSubjectRulesReview",
        &[pb_bytes(1, &[]), pb_bytes(2, &pb_bytes(1, b"shop"))].concat(),
    );
    seed(root, target, "rules_review", &rules);
    // `kubectl create namespace|secret generic` bodies: gogo protobuf
    // writes unset strings as empty ones.
    let meta = |name: &str, namespace: &str| {
        [
            pb_bytes(1, name.as_bytes()),
            pb_bytes(2, b""),
            pb_bytes(3, namespace.as_bytes()),
            pb_bytes(11, &[pb_bytes(1, b"app"), pb_bytes(2, b"shop")].concat()),
        ]
        .concat()
    };
    let namespace = pb_envelope(
        "v1",
        "Namespace",
        &[
            pb_bytes(1, &meta("team", "")),
            pb_bytes(2, &[]),
            pb_bytes(3, &[]),
        ]
        .concat(),
    );
    seed(root, target, "namespace", &namespace);
    let entry = |key: &[u8], value: &[u8]| [pb_bytes(1, key), pb_bytes(2, value)].concat();
    let secret = pb_envelope(
        "v1",
        "Secret",
        &[
            pb_bytes(1, &meta("db", "shop")),
            pb_bytes(2, &entry(b"password", b"\x00\xffbinary")),
            pb_bytes(3, b""),
            pb_bytes(4, &entry(b"user", b"app")),
            pb_varint(5, 1),
        ]
        .concat(),
    );
    seed(root, target, "secret", &secret);
    seed(
        root,
        target,
        "cut_short",
        &token_request[..token_request.len() - 7],
    );
    seed(root, target, "no_envelope", &token_request[4..]);
}

/// Patches as kubectl sends them, and apply configurations.
fn kube_patches(root: &Path) {
    let target = "kube_patch";
    let patches = [
        (
            "apply_containers",
            serde_json::json!({"spec": {
                "$setElementOrder/containers": [{"name": "api"}, {"name": "sidecar"}],
                "containers": [{"name": "api", "image": "a:2"}, {"name": "sidecar", "image": "s:1"}]
            }}),
        ),
        (
            "delete_directive",
            serde_json::json!({"spec": {"containers": [{"name": "api", "$patch": "delete"}]},
                               "metadata": {"labels": {"app": null}}}),
        ),
        (
            "retain_keys",
            serde_json::json!({"spec": {"$retainKeys": ["containers"], "containers": [{"name": "api", "env": [{"name": "B", "value": "2"}]}]}}),
        ),
        (
            "replace",
            serde_json::json!({"spec": {"$patch": "replace", "containers": [{"name": "new"}]}}),
        ),
        (
            "delete_from_list",
            serde_json::json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["b"]}}),
        ),
        (
            "apply_configuration",
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-0", "namespace": "shop", "labels": {"app": "web", "tier": "front"}},
                               "spec": {"containers": [{"name": "api", "image": "a:3"}]}}),
        ),
    ];
    for (name, patch) in patches {
        seed(root, target, name, patch.to_string().as_bytes());
    }
}

/// Release API bodies, built by the SDK's one request builder.
fn release_requests(root: &Path, envelopes: &[DekEnvelope]) {
    use podseal_sdk::protocol::{Credentials, Endpoint, Freshness, SessionInfo, SignedRequest};
    let endpoint = Endpoint::new(RELEASE_SERVER_URL);
    let credentials = Credentials {
        api_key: "psk_fuzz",
        token: "a.projected.token",
    };
    let freshness = Freshness {
        iat: FUZZ_NOW,
        nonce: None,
    };
    let dpop = DpopKey::generate().unwrap();
    let recipient = LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    let session = SessionInfo {
        id: RELEASE_SESSION_ID.to_owned(),
        expires_at: FUZZ_NOW + 3600,
    };
    let target = "release_request";
    let body = endpoint
        .session(credentials, &dpop, recipient.public_key_bytes(), freshness)
        .unwrap();
    seed(root, target, "session", body.body());
    let body = endpoint
        .session_in(
            credentials,
            &dpop,
            recipient.public_key_bytes(),
            Some("app"),
            freshness,
        )
        .unwrap();
    seed(root, target, "session_container", body.body());
    let one: Vec<&DekEnvelope> = envelopes.iter().take(1).collect();
    let body = endpoint
        .unwrap(credentials, &dpop, &session, &one, freshness)
        .unwrap();
    seed(
        root,
        target,
        "unwrap_one",
        AsRef::<SignedRequest>::as_ref(&body).body(),
    );
    let batch: Vec<&DekEnvelope> = envelopes.iter().take(8).collect();
    let body = endpoint
        .unwrap(credentials, &dpop, &session, &batch, freshness)
        .unwrap();
    seed(
        root,
        target,
        "unwrap_batch",
        AsRef::<SignedRequest>::as_ref(&body).body(),
    );
    let next = DpopKey::generate().unwrap();
    let body = endpoint
        .rotate_key(credentials, &dpop, &next, &session, freshness)
        .unwrap();
    seed(root, target, "rotate_key", body.body());
    // Refused by the server: a field it does not know, a container that is
    // no container name, a key that is not base64url, a capsule that is not.
    for (name, body) in [
        (
            "session_unknown_field",
            json!({ "recipient_key": "AAAA", "pod": "x" }),
        ),
        (
            "session_bad_container",
            json!({ "recipient_key": "AAAA", "container": "App_1" }),
        ),
        (
            "session_not_base64url",
            json!({ "recipient_key": "a+b/c=" }),
        ),
        (
            "unwrap_not_base64url",
            json!({ "capsules": ["not base64url!"] }),
        ),
        ("unwrap_empty", json!({ "capsules": [] })),
    ] {
        seed(root, target, name, body.to_string().as_bytes());
    }
}

/// Admin API bodies, serialized as the CLI's admin client sends them.
fn admin_requests(root: &Path) {
    let target = "admin_request";
    // What the CLI's admin client sends: `serde_json::to_vec` of the request.
    let write = |name: &str, body: Vec<u8>| seed(root, target, name, &body);
    let issuer = Issuer::new(TOKEN_ISSUER.into()).unwrap();
    // A reader token as `kubectl create token podseal-reader` makes one.
    let mut reader_claims = issuer_claims();
    reader_claims.aud = vec![TOKEN_ISSUER.into()];
    reader_claims.sub = "system:serviceaccount:podseal:podseal-reader".into();
    reader_claims.kubernetes_io.namespace = "podseal".into();
    reader_claims.kubernetes_io.serviceaccount.name = "podseal-reader".into();
    reader_claims.kubernetes_io.pod = None;
    reader_claims.kubernetes_io.node = None;
    let reader_token = issuer.sign(&reader_claims).unwrap();
    let ca_pem = podseal_dev_cluster::tls::generate(None).unwrap().ca_pem;
    let full = ClusterRequest {
        name: "prod-eu1".into(),
        api_server_url: "https://10.0.0.1:6443".into(),
        ca_pem: ca_pem.clone(),
        reader_token: ReaderToken::new(&format!("{reader_token}\n")),
        issuer: Some(TOKEN_ISSUER.into()),
        audiences: vec![TOKEN_AUDIENCE.into()],
        jwks: Some(serde_json::to_string(&issuer.jwks()).unwrap()),
        allow_extra_audiences: false,
        max_token_lifetime_secs: Some(7200),
        replace: false,
        allow_broad_token: false,
    };
    write("cluster", serde_json::to_vec(&full).unwrap());
    write(
        "cluster_fetched",
        serde_json::to_vec(&ClusterRequest {
            name: "dev".into(),
            api_server_url: "https://127.0.0.1:6443".into(),
            ca_pem,
            reader_token: ReaderToken::new(&reader_token),
            ..ClusterRequest::default()
        })
        .unwrap(),
    );
    write(
        "cluster_replace",
        serde_json::to_vec(&ClusterRequest {
            replace: true,
            allow_broad_token: true,
            allow_extra_audiences: true,
            audiences: vec![TOKEN_AUDIENCE.into(), "vault".into()],
            ..full.clone()
        })
        .unwrap(),
    );
    write(
        "apikey",
        serde_json::to_vec(&ApiKeyRequest {
            cluster: "prod-eu1".into(),
            namespace: "shop".into(),
            service_account: "api".into(),
        })
        .unwrap(),
    );
    let digest = |byte: char| format!("sha256:{}", byte.to_string().repeat(64));
    write(
        "policy",
        serde_json::to_vec(&PolicyRequest {
            cluster: "prod-eu1".into(),
            namespace: "shop".into(),
            service_account: "api".into(),
            digests: vec![digest('a'), digest('0')],
            audit_mode: false,
            require_nonce: true,
        })
        .unwrap(),
    );
    write(
        "policy_digests",
        serde_json::to_vec(&PolicyDigestsRequest {
            cluster: "prod-eu1".into(),
            namespace: "shop".into(),
            service_account: "api".into(),
            add: vec![digest('b')],
            remove: vec![digest('a')],
        })
        .unwrap(),
    );
    // Refused by the server, or by its checks: a lifetime with a fraction
    // (3600.0 is an integer), a path where content goes, a name with a
    // slash, a digest in capitals.
    let mut value = serde_json::to_value(&full).unwrap();
    value["max_token_lifetime_secs"] = json!(3600.5);
    seed(
        root,
        target,
        "cluster_fractional_lifetime",
        value.to_string().as_bytes(),
    );
    value["max_token_lifetime_secs"] = json!(3600.0);
    seed(
        root,
        target,
        "cluster_integral_float_lifetime",
        value.to_string().as_bytes(),
    );
    let mut value = serde_json::to_value(&full).unwrap();
    value["ca_file"] = json!("/etc/kubernetes/pki/ca.crt");
    seed(
        root,
        target,
        "cluster_path_field",
        value.to_string().as_bytes(),
    );
    let bad = json!({ "cluster": "prod/eu1", "namespace": "Shop", "service_account": "api",
        "digests": [format!("sha256:{}", "A".repeat(64))] });
    seed(root, target, "policy_bad_names", bad.to_string().as_bytes());
}

/// Server configurations: as `--print-config` prints them, and by hand.
fn configs(root: &Path) {
    let target = "config";
    seed(
        root,
        target,
        "print_config_default",
        ServerConfig::default().to_toml().as_bytes(),
    );
    let mut production = ServerConfig {
        listen: "0.0.0.0:8443".into(),
        external_url: "https://secrets.example.com".into(),
        state_dir: "/var/lib/podseal".into(),
        org_key_files: vec![
            "/etc/podseal/org-2026.key".into(),
            "/etc/podseal/org-2025.key".into(),
        ],
        log_level: "warn".into(),
        tls: TlsSection {
            cert_file: Some("/etc/podseal/tls.crt".into()),
            key_file: Some("/etc/podseal/tls.key".into()),
        },
        storage: StorageSection {
            engine: "postgres".into(),
            url_file: Some("/etc/podseal/postgres-url".into()),
            ..StorageSection::default()
        },
        ..ServerConfig::default()
    };
    production.audit.origin = Some("secrets.example.com/podseal-audit".into());
    production.audit.key_file = Some("/etc/podseal/audit.key".into());
    production.release.max_session_secs = 900;
    production.clusters.max_staleness_secs = 3;
    production.connections.max_per_source = 64;
    seed(
        root,
        target,
        "print_config_production",
        production.to_toml().as_bytes(),
    );
    for (name, text) in [
        ("empty", ""),
        (
            "hand_written",
            "# podseal-server\nlisten = \"[::]:8443\"\nexternal_url = \"https://[2001:db8::1]:8443/\"\n\n[release]\ndpop_max_age_secs = 30\n\n[storage]\npath = \"/var/lib/podseal/podseal.db\"\ntimeout_secs = 10\n",
        ),
        ("unknown_key", "lisen = \"0.0.0.0:8443\"\n"),
        ("out_of_range", "[clusters]\nmax_staleness_secs = 61\n"),
        (
            "postgres_without_url_file",
            "[storage]\nengine = \"postgres\"\n",
        ),
        ("tls_half", "[tls]\ncert_file = \"tls.crt\"\n"),
        ("origin_with_space", "[audit]\norigin = \"podseal audit\"\n"),
        ("not_toml", "listen = [\n"),
    ] {
        seed(root, target, name, text.as_bytes());
    }
}

/// JWKS documents: the stand-in's, as `kube-apiserver` publishes them.
fn jwks(root: &Path) {
    let target = "jwks";
    for algorithm in SigningAlgorithm::ALL {
        let issuer = Issuer::with_algorithm(TOKEN_ISSUER.into(), algorithm).unwrap();
        let name = algorithm.name().to_ascii_lowercase();
        seed(
            root,
            target,
            &name,
            &serde_json::to_vec(&issuer.jwks()).unwrap(),
        );
    }
    let mut issuer = Issuer::new(TOKEN_ISSUER.into()).unwrap();
    issuer.rotate_signing_key(true).unwrap();
    seed(
        root,
        target,
        "rs256_rotated",
        &serde_json::to_vec(&issuer.jwks()).unwrap(),
    );
    seed(
        root,
        target,
        "projected_token",
        podseal_fuzz::token_jwks().as_bytes(),
    );
    // Refused at pin time: private material, a short modulus, an `alg`
    // another than the curve's, no signing key at all.
    let mut jwk: Value = serde_json::from_str(&podseal_fuzz::token_jwks()).unwrap();
    jwk["keys"][0]["d"] = json!("c2VjcmV0");
    seed(root, target, "private_member", jwk.to_string().as_bytes());
    jwk["keys"][0].as_object_mut().unwrap().remove("d");
    jwk["keys"][0]["alg"] = json!("ES384");
    seed(
        root,
        target,
        "alg_not_the_curves",
        jwk.to_string().as_bytes(),
    );
    jwk["keys"][0]["alg"] = json!("ES256");
    jwk["keys"][0]["use"] = json!("enc");
    seed(root, target, "no_signing_key", jwk.to_string().as_bytes());
    let short = json!({ "keys": [{ "kty": "RSA", "kid": "short", "alg": "RS256",
        "n": base64_url(&[0xc5; 128]), "e": "AQAB" }] });
    seed(root, target, "rsa_1024", short.to_string().as_bytes());
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The claims the stand-in puts in a pod-bound token (1.32+: `jti` and
/// node), issued a minute before the `projected_token` target's clock for
/// an hour.
fn issuer_claims() -> TokenClaims {
    TokenClaims {
        aud: vec![TOKEN_AUDIENCE.into()],
        exp: FUZZ_NOW - 60 + 3600,
        iat: FUZZ_NOW - 60,
        iss: TOKEN_ISSUER.into(),
        jti: "ea28ed49-2e11-4280-9ec5-bc3d1d84661a".into(),
        kubernetes_io: KubernetesClaim {
            namespace: "shop".into(),
            serviceaccount: NameUid {
                name: "api".into(),
                uid: "a087d5a0-e1dd-43ec-93ac-f13d89cd13af".into(),
            },
            node: Some(NameUid {
                name: "node-1".into(),
                uid: "58456cb0-dd00-45ed-b797-5578fdceaced".into(),
            }),
            pod: Some(NameUid {
                name: "api-7d9f8b6c5-x2x4q".into(),
                uid: "778a530c-b3f4-47c0-9cd5-ab018fb64f33".into(),
            }),
            warnafter: None,
        },
        nbf: FUZZ_NOW - 60,
        sub: "system:serviceaccount:shop:api".into(),
    }
}

/// A change to a token's claims that makes it fail one check.
type ClaimsEdit = fn(&mut Value);

/// Projected tokens signed by the `projected_token` target's fixed key.
fn projected_tokens(root: &Path) {
    let target = "projected_token";
    let header = json!({ "alg": "ES256", "kid": podseal_fuzz::TOKEN_KID });
    let base = serde_json::to_value(issuer_claims()).unwrap();
    let sign = |name: &str, header: &Value, claims: &Value| {
        let token = podseal_fuzz::sign_token(header, claims).unwrap();
        seed(root, target, name, token.as_bytes());
        token
    };
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut claims = base.clone();
        edit(&mut claims);
        claims
    };
    // Verify: a 1.32+ pod-bound token; one of an older cluster (no `jti`,
    // no node); one the API server extended (a year, `warnafter` an hour).
    let bound = sign("pod_bound", &header, &base);
    sign(
        "before_1_32",
        &header,
        &with(&|c| {
            c.as_object_mut().unwrap().remove("jti");
            c["kubernetes.io"].as_object_mut().unwrap().remove("node");
        }),
    );
    sign(
        "extended",
        &header,
        &with(&|c| {
            c["exp"] = json!(FUZZ_NOW - 60 + 365 * 24 * 3600);
            c["kubernetes.io"]["warnafter"] = json!(FUZZ_NOW - 60 + 3607);
        }),
    );
    // Each fails one check.
    let near_misses: [(&str, ClaimsEdit); 11] = [
        ("expired", |c| c["exp"] = json!(FUZZ_NOW - 3600)),
        ("wrong_issuer", |c| {
            c["iss"] = json!("https://other.example")
        }),
        ("wrong_audience", |c| c["aud"] = json!(["vault"])),
        ("extra_audience", |c| {
            c["aud"] = json!([TOKEN_AUDIENCE, "vault"])
        }),
        ("not_yet_valid", |c| c["nbf"] = json!(FUZZ_NOW + 600)),
        ("lifetime_too_long", |c| {
            c["exp"] = json!(FUZZ_NOW + 2 * 24 * 3600)
        }),
        ("stale", |c| {
            c["exp"] = json!(FUZZ_NOW + 300 * 24 * 3600);
            c["iat"] = json!(FUZZ_NOW - 7200);
            c["kubernetes.io"]["warnafter"] = json!(FUZZ_NOW - 3600);
        }),
        ("not_pod_bound", |c| {
            c["kubernetes.io"].as_object_mut().unwrap().remove("pod");
        }),
        ("subject_mismatch", |c| {
            c["sub"] = json!("system:serviceaccount:shop:admin");
        }),
        ("jti_not_printable", |c| {
            c["jti"] = json!("a jti with spaces")
        }),
        ("node_without_uid", |c| {
            c["kubernetes.io"]["node"]
                .as_object_mut()
                .unwrap()
                .remove("uid");
        }),
    ];
    for (name, edit) in near_misses {
        sign(name, &header, &with(&edit));
    }
    for (name, header) in [
        (
            "alg_none",
            json!({ "alg": "none", "kid": podseal_fuzz::TOKEN_KID }),
        ),
        (
            "alg_rs256",
            json!({ "alg": "RS256", "kid": podseal_fuzz::TOKEN_KID }),
        ),
        (
            "unknown_kid",
            json!({ "alg": "ES256", "kid": "rotated-away" }),
        ),
        ("no_kid", json!({ "alg": "ES256" })),
        (
            "jku_header",
            json!({ "alg": "ES256", "kid": podseal_fuzz::TOKEN_KID, "jku": "https://attacker.example/jwks" }),
        ),
    ] {
        sign(name, &header, &base);
    }
    // A signature that does not verify.
    let mut tampered = bound.into_bytes();
    if let Some(last) = tampered.last_mut() {
        *last = if *last == b'A' { b'B' } else { b'A' };
    }
    seed(root, target, "bad_signature", &tampered);
}

/// Secret manifests as `mount-secret` reads them.
fn secret_manifests(root: &Path) {
    let target = "secret_manifest";
    let testkit = testkit_capsules(root);
    let entries: Vec<(String, Capsule)> = testkit
        .iter()
        .filter(|(name, _)| name.starts_with("scope_kubernetes") || name.starts_with("stanza_hpke"))
        .filter_map(|(_, armored)| Capsule::from_armored(armored).ok())
        .filter(|capsule| capsule.header().scope.as_kubernetes().is_some())
        .enumerate()
        .map(|(i, capsule)| (format!("key-{i}.txt"), capsule))
        .collect();
    let secret = podseal_cli::manifest::sealed_secret("db", "shop", &entries).unwrap();
    let yaml = podseal_cli::manifest::to_yaml(&secret).unwrap();
    seed(root, target, "sealed_yaml", yaml.as_bytes());
    seed(
        root,
        target,
        "sealed_json",
        serde_json::to_string_pretty(&secret).unwrap().as_bytes(),
    );
    for (name, text) in [
        (
            "string_data",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ntype: Opaque\ndata:\n  password: aHVudGVyMg==\n  user: b2xk\nstringData:\n  user: app\n  ..data: kubelet-like\n",
        ),
        (
            "key_escapes",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  ../../escape: v\n  ok: v\n",
        ),
        (
            "name_escapes",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ../db\nstringData:\n  password: v\n",
        ),
        (
            "config_map",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: db\ndata:\n  password: v\n",
        ),
        (
            "anchors",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: &n db\nstringData:\n  a: &v value\n  b: *v\n  c: *n\n",
        ),
        (
            "no_data",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n",
        ),
    ] {
        seed(root, target, name, text.as_bytes());
    }
}
