//! Every fuzz target's committed corpus (`fuzz/corpus/<target>/`) and every
//! input that once crashed it (`fuzz/regressions/<target>/`) run through
//! its body in the normal test run: a crash found once cannot come back
//! unnoticed, and a target without seeds fails here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a test failure"
)]

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_replays_its_corpus_and_past_crashes() {
    for target in podseal_fuzz::TARGETS {
        let seeds = inputs(&fuzz_dir().join("corpus").join(target.name));
        assert!(
            !seeds.is_empty(),
            "fuzz target {} has no committed seed in fuzz/corpus/{}",
            target.name,
            target.name
        );
        let crashes = inputs(&fuzz_dir().join("regressions").join(target.name));
        for input in seeds.iter().chain(&crashes) {
            let data = std::fs::read(input).unwrap();
            let outcome = std::panic::catch_unwind(|| (target.run)(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target {} fails on {}",
                target.name,
                input.display()
            );
        }
        println!(
            "{}: {} seeds, {} past crashes replayed",
            target.name,
            seeds.len(),
            crashes.len()
        );
    }
}

#[test]
fn every_target_has_its_cargo_fuzz_entry_and_no_entry_is_orphaned() {
    let listed: Vec<String> = inputs(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    let mut names: Vec<String> = podseal_fuzz::TARGETS
        .iter()
        .map(|t| t.name.to_owned())
        .collect();
    names.sort();
    assert_eq!(
        listed, names,
        "fuzz/fuzz_targets/ and podseal_fuzz::TARGETS"
    );
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for name in &names {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        let source =
            std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs"))).unwrap();
        assert!(
            source.contains(&format!("podseal_fuzz::target(\"{name}\")")),
            "fuzz/fuzz_targets/{name}.rs runs another target's body"
        );
    }
}

/// The seeds are inputs the parsers accept all the way (a proof that
/// verifies, an export that verifies, a note that parses), so that the
/// fuzzer's mutations start past the first check.
#[test]
fn the_seeds_pass_every_check_of_their_parser() {
    use podseal_core::audit::{AuditKey, Checkpoint, verify_export};
    use podseal_core::dpop::verify_proof;
    let read = |target: &str| {
        inputs(&fuzz_dir().join("corpus").join(target))
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect::<Vec<_>>()
    };
    for proof in read("dpop") {
        let expect = podseal_fuzz::dpop_expectations();
        // `ath` and `nonce` are not expected here: the proof's signature
        // and claims check before those are compared.
        if let Err(error) = verify_proof(&proof, &expect) {
            assert!(
                error.to_string().contains("ath") || error.to_string().contains("nonce"),
                "a dpop seed does not verify: {error}"
            );
        }
    }
    let key = AuditKey::from_seed(&podseal_fuzz::AUDIT_KEY_SEED).public_key();
    for export in read("audit_export") {
        verify_export(&export, &key, None).expect("the export seed verifies");
    }
    let trusted = podseal_core::audit::TrustedKey {
        public_key: key,
        origin: None,
    };
    let proofs = read("inclusion_proof");
    assert!(!proofs.is_empty(), "no inclusion proof seed");
    for proof in proofs {
        let proof: podseal_core::audit::InclusionProof = serde_json::from_str(&proof).unwrap();
        proof
            .verify(&trusted)
            .expect("the inclusion proof seed verifies");
    }
    assert!(
        read("checkpoint")
            .iter()
            .any(|note| Checkpoint::parse(note).is_ok()),
        "no checkpoint seed parses"
    );
}

/// The seeds of the server's parsers reach past parsing: a body of each
/// kind that passes every check the server makes of it, a configuration
/// that loads, a JWKS of each algorithm that pins, tokens that verify, a
/// manifest that mounts.
#[test]
fn the_server_parsers_seeds_pass_their_checks() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use podseal_core::capsule::DekEnvelope;
    use podseal_core::dpop::verify_proof;
    use podseal_core::hpke::{KemId, validate_public_key};
    use podseal_core::scope::NameRule;
    use podseal_core::wire::admin::{
        ApiKeyRequest, ClusterRequest, PolicyDigestsRequest, PolicyRequest,
    };
    use podseal_core::wire::{RotateBody, SessionBody, UnwrapBody};
    use podseal_server::admin::is_digest;
    use podseal_server::cluster::client::{check_api_server_url, check_ca_pem};
    use podseal_server::gate::admin::check_field;
    use podseal_server::identity::kubernetes::MAX_LIFETIME_RANGE_SECS;
    use podseal_server::identity::{IdentityProvider as _, PinnedJwks};

    let read = |target: &str| {
        inputs(&fuzz_dir().join("corpus").join(target))
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect::<Vec<_>>()
    };
    let parsed = |target: &str| -> Vec<serde_json::Value> {
        read(target)
            .iter()
            .filter_map(|body| serde_json::from_slice(body).ok())
            .collect()
    };

    // Release bodies.
    let sessions: Vec<SessionBody> = read("release_request")
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .filter(|b: &SessionBody| {
            let key = URL_SAFE_NO_PAD.decode(&b.recipient_key).unwrap_or_default();
            validate_public_key(KemId::X25519HkdfSha256, &key).is_ok()
                && b.container
                    .as_deref()
                    .is_none_or(|c| check_field("container", c, NameRule::Label).is_ok())
        })
        .collect();
    assert!(sessions.len() >= 2, "no session body passes");
    let unwraps = read("release_request")
        .iter()
        .filter_map(|b| serde_json::from_slice::<UnwrapBody>(b).ok())
        .filter(|b| {
            (1..=podseal_core::wire::MAX_BATCH).contains(&b.capsules.len())
                && b.capsules.iter().all(|c| {
                    URL_SAFE_NO_PAD
                        .decode(c)
                        .is_ok_and(|bytes| DekEnvelope::from_bytes(&bytes).is_ok())
                })
        })
        .count();
    assert!(unwraps >= 2, "no unwrap body passes");
    assert!(
        read("release_request").iter().any(|b| {
            serde_json::from_slice::<RotateBody>(b).is_ok_and(|b| {
                verify_proof(&b.new_proof, &podseal_fuzz::rotate_expectations()).is_ok()
            })
        }),
        "no rotate-key body's proof verifies"
    );

    // Admin bodies.
    let admin = read("admin_request");
    assert!(
        admin.iter().any(|b| {
            serde_json::from_slice::<ClusterRequest>(b).is_ok_and(|r| {
                check_field("name", &r.name, NameRule::Subdomain).is_ok()
                    && check_api_server_url(&r.api_server_url).is_ok()
                    && check_ca_pem(&r.ca_pem).is_ok()
                    && r.reader_token.check().is_ok()
                    && r.max_token_lifetime_secs
                        .is_some_and(|s| MAX_LIFETIME_RANGE_SECS.contains(&s))
                    && r.jwks
                        .as_deref()
                        .is_some_and(|j| PinnedJwks::parse(j).is_ok())
            })
        }),
        "no cluster registration passes every check"
    );
    let scope_ok = |namespace: &str, service_account: &str| {
        check_field("namespace", namespace, NameRule::Label).is_ok()
            && check_field("service_account", service_account, NameRule::Subdomain).is_ok()
    };
    assert!(admin.iter().any(|b| {
        serde_json::from_slice::<ApiKeyRequest>(b)
            .is_ok_and(|r| scope_ok(&r.namespace, &r.service_account))
    }));
    assert!(admin.iter().any(|b| {
        serde_json::from_slice::<PolicyRequest>(b).is_ok_and(|r| {
            scope_ok(&r.namespace, &r.service_account)
                && !r.digests.is_empty()
                && r.digests.iter().all(|d| is_digest(d))
        })
    }));
    assert!(admin.iter().any(|b| {
        serde_json::from_slice::<PolicyDigestsRequest>(b).is_ok_and(|r| {
            scope_ok(&r.namespace, &r.service_account)
                && r.add.iter().chain(&r.remove).all(|d| is_digest(d))
        })
    }));

    // Configurations: the printed ones load.
    let loaded = read("config")
        .iter()
        .filter_map(|text| {
            podseal_server::config::ServerConfig::from_toml(
                std::str::from_utf8(text).ok()?,
                std::path::Path::new(podseal_fuzz::CONFIG_SOURCE),
                |_| None,
            )
            .ok()
        })
        .count();
    assert!(loaded >= 3, "only {loaded} config seeds load");

    // JWKS: every algorithm is pinned by some seed.
    let mut algorithms: Vec<String> = parsed("jwks")
        .iter()
        .filter(|doc| PinnedJwks::parse(&doc.to_string()).is_ok())
        .flat_map(|doc| {
            doc["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["alg"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    algorithms.sort();
    algorithms.dedup();
    assert_eq!(algorithms, ["ES256", "ES384", "ES512", "RS256"]);

    // Tokens: some verify at the target's clock.
    let verifier = podseal_fuzz::token_verifier().expect("the fixed key builds");
    let verified = read("projected_token")
        .iter()
        .filter_map(|token| std::str::from_utf8(token).ok())
        .filter(|token| verifier.verify(token, podseal_fuzz::FUZZ_NOW).is_ok())
        .count();
    assert!(verified >= 3, "only {verified} token seeds verify");

    // Manifests: some mount.
    assert!(
        read("secret_manifest").iter().any(|m| {
            std::str::from_utf8(m)
                .is_ok_and(|m| podseal_dev_cluster::secret_volume::parse_manifest(m).is_ok())
        }),
        "no manifest seed mounts"
    );
}
