//! Every parser of attacker-controlled input returns a value or a typed
//! error for any input: no panic, whatever the bytes.

use podseal_core::capsule::{Capsule, DekEnvelope, HPKE_STANZA, TRANSIT_STANZA, parse_header};
use podseal_core::dpop::{ProofExpectations, verify_proof};
use podseal_core::envelope::{self, open};
use podseal_core::hpke::KemId;
use podseal_core::key_provider::KeyRing;
use podseal_core::org_key::{OrgPrivateKey, OrgPublicKey};
use podseal_test_support::fixtures::{kubernetes_scope, seal_params};
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

/// A stanza frame: kind, u16 body length, body.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Stanza bytes that reach every branch of the stanza parser: any kind with
/// any body, hpke- and transit-shaped bodies with fields near the valid
/// ones, and frames whose length lies.
fn stanza_bytes() -> impl Strategy<Value = Vec<u8>> {
    let bytes = |max| prop::collection::vec(any::<u8>(), 0..max);
    let hpke = (
        prop_oneof![9 => "[A-Za-z0-9_-]{22}", 1 => "[ -~]{0,30}"],
        prop::sample::select(vec![0x10u16, 0x20, 0x21]),
        prop::sample::select(vec![1u16, 1, 1, 2]),
        prop::sample::select(vec![2u16, 2, 2, 3]),
        (
            prop::collection::vec(any::<u8>(), 65),
            prop_oneof![4 => Just(None), 1 => (0usize..70).prop_map(Some)],
        ),
        prop_oneof![4 => prop::collection::vec(any::<u8>(), 48), 1 => bytes(60)],
        prop_oneof![4 => Just(Vec::new()), 1 => bytes(3)],
    )
        .prop_map(
            |(kid, kem, kdf, aead, (enc_bytes, enc_len), wrapped, extra)| {
                // Mostly the KEM's own enc length, sometimes any length.
                let enc_len = enc_len.unwrap_or(if kem == 0x10 { 65 } else { 32 });
                let enc: Vec<u8> = enc_bytes.iter().copied().cycle().take(enc_len).collect();
                let mut body = vec![kid.len() as u8];
                body.extend_from_slice(kid.as_bytes());
                for id in [kem, kdf, aead] {
                    body.extend_from_slice(&id.to_be_bytes());
                }
                body.extend_from_slice(&(enc.len() as u16).to_be_bytes());
                body.extend_from_slice(&enc);
                body.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
                body.extend_from_slice(&wrapped);
                body.extend_from_slice(&extra);
                frame(HPKE_STANZA, &body)
            },
        );
    let transit = (
        "[A-Za-z0-9./ _-]{0,12}",
        any::<u32>(),
        bytes(40),
        prop_oneof![4 => Just(Vec::new()), 1 => bytes(2)],
    )
        .prop_map(|(name, version, ciphertext, extra)| {
            let mut body = vec![name.len() as u8];
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(&version.to_be_bytes());
            body.extend_from_slice(&(ciphertext.len() as u16).to_be_bytes());
            body.extend_from_slice(&ciphertext);
            body.extend_from_slice(&extra);
            frame(TRANSIT_STANZA, &body)
        });
    prop_oneof![
        (any::<u8>(), bytes(300)).prop_map(|(kind, body)| frame(kind, &body)),
        hpke,
        transit,
        (any::<u8>(), any::<u16>(), bytes(40)).prop_map(|(kind, len, body)| {
            let mut out = vec![kind];
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&body);
            out
        }),
    ]
}

/// A valid header and its sealed content, as the frame around the stanzas.
fn valid_parts() -> (Vec<u8>, Vec<u8>, KeyRing) {
    let key = podseal_core::org_key::OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    let params = seal_params(kubernetes_scope("c1", "shop", "api"));
    let capsule = envelope::seal(params, b"s3cret", &[key.public()]).unwrap();
    let header = capsule.envelope.header_bytes();
    let mut prefix = (header.len() as u16).to_be_bytes().to_vec();
    prefix.extend_from_slice(header);
    let mut content = capsule.nonce.to_vec();
    content.extend_from_slice(&(capsule.ciphertext.len() as u32).to_be_bytes());
    content.extend_from_slice(&capsule.ciphertext);
    (prefix, content, KeyRing::from(key))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Claim: whatever the stanza bytes, the parser returns a value or a
    /// typed error, never panics; what parses re-encodes to the very same
    /// bytes (a stanza of an unknown kind included), and opening it never
    /// panics either.
    #[test]
    fn arbitrary_stanza_bytes_never_panic_and_what_parses_re_encodes_exactly(
        stanzas in prop::collection::vec(stanza_bytes(), 0..5),
        count in prop_oneof![3 => Just(None), 1 => any::<u8>().prop_map(Some)],
    ) {
        thread_local! {
            static PARTS: (Vec<u8>, Vec<u8>, KeyRing) = valid_parts();
        }
        PARTS.with(|(prefix, content, ring)| {
            let mut envelope_bytes = prefix.clone();
            envelope_bytes.push(count.unwrap_or(stanzas.len() as u8));
            for stanza in &stanzas {
                envelope_bytes.extend_from_slice(stanza);
            }
            let mut body = envelope_bytes.clone();
            body.extend_from_slice(content);
            if let Ok(envelope) = DekEnvelope::from_bytes(&envelope_bytes) {
                prop_assert_eq!(envelope.to_bytes(), envelope_bytes);
            }
            if let Ok(capsule) = Capsule::from_bytes(&body) {
                prop_assert_eq!(capsule.to_bytes(), body);
                let _ = open(&capsule, ring);
            }
            Ok(())
        })?;
    }

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
