//! The capsule testkit: one file per input in `tests/testkit/`, each with an
//! `expect:` line (`success` or a stable error reason), run from the list
//! below so that a missing or an unlisted file fails the test. The files
//! were written by `crates/xtask/src/make_testkit.rs` (`cargo run -p xtask -- make-testkit`) and are kept as they are: they
//! also prove that capsules written by earlier builds still parse and open.
//! (They were regenerated once, when stanza kinds and the tagged scope
//! changed v1 in place; `earlier_stanza_layout` shows a capsule of the
//! layout before is refused, never misread.) The testkit holds two org
//! keys, X25519 and P-256; every other key a case names is not held.

use std::collections::HashMap;
use std::path::PathBuf;

use podseal_core::capsule::Capsule;
use podseal_core::envelope::open;
use podseal_core::key_provider::KeyRing;
use podseal_core::org_key::OrgPrivateKey;

const CASES: &[&str] = &[
    "valid_minimal",
    "valid_two_stanzas",
    "valid_manifest_value",
    // Stanza kinds.
    "stanza_hpke_x25519",
    "stanza_hpke_p256",
    "stanza_unknown_beside_hpke",
    "stanza_transit_beside_hpke",
    "stanza_transit_only",
    "stanza_unknown_only",
    // Scope kinds.
    "scope_kubernetes",
    "scope_spiffe",
    "scope_oidc",
    "scope_unknown_kind",
    "scope_two_kinds",
    "scope_kubernetes_unknown_field",
    "scope_spiffe_id_outside_trust_domain",
    "scope_spiffe_dot_segment",
    "scope_oidc_http_issuer",
    "scope_oidc_no_claims",
    "scope_oidc_duplicate_claim",
    // Parse errors.
    "armor_empty",
    "armor_missing_prefix",
    "armor_unsupported_version",
    "armor_padding",
    "armor_standard_alphabet",
    "truncated_in_header",
    "truncated_in_ciphertext",
    "trailing_bytes",
    "earlier_stanza_layout",
    "header_not_json",
    "header_unknown_field",
    "header_bad_namespace",
    "header_version_2",
    "zero_stanzas",
    "seventeen_stanzas",
    "unsupported_suite",
    "bad_kid",
    "enc_wrong_length",
    "stanza_body_truncated",
    "stanza_body_trailing_bytes",
    "stanza_body_too_large",
    "transit_key_version_zero",
    "transit_bad_key_name",
    "ciphertext_too_large",
    // Opening errors.
    "header_edited",
    "ciphertext_flipped",
    "nonce_flipped",
    "wrapped_dek_flipped",
    "enc_flipped",
    "held_key_fails_before_another_would_open",
    "stanza_for_another_key",
];

const KEY_FILES: &[&str] = &["testkit-org-key.txt", "testkit-org-key-p256.txt"];

fn testkit_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testkit")
}

fn fields(name: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(testkit_dir().join(name)).unwrap();
    text.lines()
        .filter_map(|line| {
            line.split_once(": ")
                .or_else(|| line.strip_suffix(':').map(|k| (k, "")))
        })
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// What happened to an input: `success`, or the stable error reason.
fn outcome(capsule_text: &str, ring: &KeyRing) -> (String, Option<Vec<u8>>) {
    match Capsule::from_armored(capsule_text) {
        Err(e) => (e.reason().code().to_owned(), None),
        Ok(capsule) => {
            // A capsule that parses must re-encode to the same text.
            assert_eq!(capsule.to_armored(), capsule_text.trim());
            match open(&capsule, ring) {
                Ok(plaintext) => (
                    "success".into(),
                    Some(plaintext.expose_secret_bytes().to_vec()),
                ),
                Err(e) => (e.reason().code().to_owned(), None),
            }
        }
    }
}

#[test]
fn every_testkit_file_gives_its_expected_outcome() {
    let mut ring = KeyRing::new();
    for file in KEY_FILES {
        let key_text = std::fs::read_to_string(testkit_dir().join(file)).unwrap();
        ring.add(OrgPrivateKey::from_text(&key_text).unwrap());
    }
    for name in CASES {
        let case = fields(name);
        let (got, plaintext) = outcome(&case["capsule"], &ring);
        assert_eq!(got, case["expect"], "{name}: {}", case["comment"]);
        if let Some(expected) = case.get("plaintext") {
            assert_eq!(plaintext.as_deref(), Some(expected.as_bytes()), "{name}");
        }
    }
}

#[test]
fn every_testkit_file_is_listed() {
    let mut on_disk: Vec<String> = std::fs::read_dir(testkit_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| !KEY_FILES.contains(&name.as_str()))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CASES.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}
