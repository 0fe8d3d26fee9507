//! Every parser of attacker-controlled input returns a value or a typed
//! error for any input: no panic, whatever the bytes.

use podseal_core::capsule::{Capsule, parse_header};
use podseal_core::dpop::{ProofExpectations, verify_proof};
use podseal_core::org_key::{OrgPrivateKey, OrgPublicKey};
use proptest::prelude::*;

fn expectations() -> ProofExpectations<'static> {
    ProofExpectations {
        htm: "POST",
        htu: "https://podseal.example/v1/unwrap",
        now: 1000,
        max_age_secs: 60,
        max_skew_secs: 5,
        access_token: None,
        nonce: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn capsule_body_parser_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Capsule::from_bytes(&body);
        let _ = parse_header(&body);
    }

    #[test]
    fn armor_parser_never_panics(text in "(podseal:v[0-9]:)?[A-Za-z0-9_=+/:-]{0,300}") {
        let _ = Capsule::from_armored(&text);
    }

    #[test]
    fn dpop_verifier_never_panics(
        header in "[ -~]{0,120}", payload in "[ -~]{0,160}", signature in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let proof = format!("{}.{}.{}", b64.encode(header), b64.encode(payload), b64.encode(signature));
        prop_assert!(verify_proof(&proof, &expectations()).is_err());
    }

    #[test]
    fn key_file_parsers_never_panic(text in "[ -~\n]{0,200}") {
        let _ = OrgPublicKey::from_text(&text);
        let _ = OrgPrivateKey::from_text(&text);
    }
}
