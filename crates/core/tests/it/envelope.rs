//! Property tests of seal, open and re-wrap through the public API.

use std::collections::BTreeMap;

use podseal_core::capsule::{
    Capsule, CapsuleError, Header, KubernetesScope, OidcScope, RevealMode, Scope, SpiffeScope,
    Stanza, TransitStanza, UnknownStanza,
};
use podseal_core::envelope::{
    self, OpenError, ReleaseBinding, SealParams, open, open_release, rewrap_for_release,
    rewrap_to_org_key,
};
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey};
use podseal_core::key_provider::KeyRing;
use podseal_core::org_key::OrgPrivateKey;
use podseal_core::reason::Reason;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn params() -> SealParams {
    SealParams {
        scope: Scope::Kubernetes(KubernetesScope {
            cluster: "prod-eu".into(),
            namespace: "payments".into(),
            service_accounts: vec!["api".into()],
            name: "db-password".into(),
            key: None,
        }),
        purpose: Some("postgres-login".into()),
        reveal: RevealMode::Many,
        created_at: 1_790_000_000,
        not_after: Some(1_800_000_000),
    }
}

/// Deterministic bytes of any length from a seed (cheaper than asking
/// proptest for a million individually shrinkable bytes).
fn bytes_from_seed(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        let block = Sha256::new()
            .chain_update(seed.to_le_bytes())
            .chain_update(counter.to_le_bytes())
            .finalize();
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(len);
    out
}

fn org_key() -> OrgPrivateKey {
    OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap()
}

fn sealed(plaintext: &[u8]) -> (OrgPrivateKey, Capsule) {
    let key = org_key();
    let capsule = envelope::seal(params(), plaintext, &[key.public()]).unwrap();
    (key, capsule)
}

/// Rebuilds a capsule with other header bytes, keeping stanzas and content.
fn with_header_bytes(capsule: &Capsule, header_bytes: Vec<u8>) -> Result<Capsule, CapsuleError> {
    let envelope =
        podseal_core::capsule::DekEnvelope::new(header_bytes, capsule.envelope.stanzas().to_vec())?;
    Ok(Capsule {
        envelope,
        nonce: capsule.nonce,
        ciphertext: capsule.ciphertext.clone(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn seal_then_open_round_trips_up_to_one_mib(
        len in prop_oneof![0usize..=64, 0usize..=(1 << 20), Just(1usize << 20)],
        seed in any::<u64>(),
    ) {
        let plaintext = bytes_from_seed(len, seed);
        let (key, capsule) = sealed(&plaintext);
        let armored = capsule.to_armored();
        let reparsed = Capsule::from_armored(&armored).unwrap();
        prop_assert_eq!(&reparsed, &capsule);
        let opened = open(&reparsed, &KeyRing::from(key)).unwrap();
        prop_assert_eq!(opened.expose_secret_bytes(), plaintext.as_slice());
    }

    #[test]
    fn flipping_any_byte_of_any_part_is_refused(
        len in 0usize..2048, seed in any::<u64>(), position in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        let (key, capsule) = sealed(&bytes_from_seed(len, seed));
        let mut body = capsule.to_bytes();
        let at = position.index(body.len());
        body[at] ^= flip;
        let ring = KeyRing::from(key);
        match Capsule::from_bytes(&body) {
            Err(parse_error) => prop_assert!(!parse_error.to_string().is_empty()),
            Ok(tampered) => {
                let refused = open(&tampered, &ring).unwrap_err();
                prop_assert!(
                    matches!(
                        refused,
                        OpenError::DidNotOpen
                            | OpenError::NoMatchingKey { .. }
                            // The stanza's kind byte flipped: an unknown kind now.
                            | OpenError::NoKnownStanzaKind { .. }
                    ),
                    "byte {} flipped: {:?}", at, refused
                );
            }
        }
    }

    #[test]
    fn a_rewrapped_dek_opens_only_with_its_exact_binding(
        session in "[a-zA-Z0-9]{1,24}", jti in "[a-zA-Z0-9_-]{1,32}", other in "[a-z]{1,8}",
    ) {
        let (key, capsule) = sealed(b"db password");
        let ring = KeyRing::from(key);
        let pod = LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
        let binding = ReleaseBinding { session_id: &session, jti: &jti };
        let released = rewrap_for_release(&capsule.envelope, &ring, pod.public_key_bytes(), binding).unwrap();
        let header = capsule.envelope.header_bytes();

        let dek = open_release(&released, &pod, header, binding).unwrap();
        let opened = envelope::decrypt_content(&capsule, &dek).unwrap();
        prop_assert_eq!(opened.expose_secret_bytes(), b"db password");

        let other_session = format!("{session}{other}");
        let other_jti = format!("{jti}{other}");
        let another_pod = LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
        let mut other_header = header.to_vec();
        other_header.push(b' ');
        let refusals = [
            open_release(&released, &another_pod, header, binding),
            open_release(&released, &pod, &other_header, binding),
            open_release(&released, &pod, header, ReleaseBinding { session_id: &other_session, jti: &jti }),
            open_release(&released, &pod, header, ReleaseBinding { session_id: &session, jti: &other_jti }),
            // Moving bytes between session id and jti must not keep the binding.
            open_release(&released, &pod, header, ReleaseBinding { session_id: &format!("{session}{jti}"), jti: "" }),
        ];
        for refusal in refusals {
            prop_assert_eq!(refusal.unwrap_err(), OpenError::DidNotOpen);
        }
    }
}

#[test]
fn editing_any_header_field_is_refused() {
    let (key, capsule) = sealed(b"s3cret");
    let ring = KeyRing::from(key);
    let original: Header = capsule.header().clone();
    type Edit = Box<dyn Fn(&mut Header)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "cluster",
            Box::new(|h| h.scope.as_kubernetes_mut().unwrap().cluster = "staging".into()),
        ),
        (
            "namespace",
            Box::new(|h| h.scope.as_kubernetes_mut().unwrap().namespace = "attacker".into()),
        ),
        (
            "service account",
            Box::new(|h| {
                h.scope.as_kubernetes_mut().unwrap().service_accounts = vec!["default".into()]
            }),
        ),
        (
            "extra service account",
            Box::new(|h| {
                h.scope
                    .as_kubernetes_mut()
                    .unwrap()
                    .service_accounts
                    .push("default".into())
            }),
        ),
        (
            "name",
            Box::new(|h| h.scope.as_kubernetes_mut().unwrap().name = "other".into()),
        ),
        (
            "key",
            Box::new(|h| h.scope.as_kubernetes_mut().unwrap().key = Some("password".into())),
        ),
        ("purpose", Box::new(|h| h.purpose = None)),
        ("reveal", Box::new(|h| h.reveal = RevealMode::Once)),
        ("created_at", Box::new(|h| h.created_at += 1)),
        ("not_after", Box::new(|h| h.not_after = Some(i64::MAX))),
        ("id", Box::new(|h| h.id = "AAAAAAAAAAAAAAAAAAAAAA".into())),
    ];
    for (what, edit) in edits {
        let mut header = original.clone();
        edit(&mut header);
        let tampered = with_header_bytes(&capsule, serde_json::to_vec(&header).unwrap()).unwrap();
        assert_eq!(
            open(&tampered, &ring).unwrap_err(),
            OpenError::DidNotOpen,
            "edit of {what} was not refused"
        );
    }
    // Same JSON meaning, different bytes: still refused (no canonicalization).
    let mut spaced = capsule.envelope.header_bytes().to_vec();
    spaced.insert(1, b' ');
    let tampered = with_header_bytes(&capsule, spaced).unwrap();
    assert_eq!(open(&tampered, &ring).unwrap_err(), OpenError::DidNotOpen);
    // An unknown field is a parse error, not a silently ignored extra.
    let mut extra = original.clone();
    extra.purpose = None;
    let mut json: serde_json::Value = serde_json::to_value(&extra).unwrap();
    json["admin"] = true.into();
    let err = with_header_bytes(&capsule, serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert!(matches!(err, CapsuleError::HeaderSyntax(_)), "{err}");
}

#[test]
fn another_org_key_cannot_open() {
    let (_key, capsule) = sealed(b"s3cret");
    let stranger = KeyRing::from(org_key());
    assert!(matches!(
        open(&capsule, &stranger).unwrap_err(),
        OpenError::NoMatchingKey { .. }
    ));

    // Even when the stanza is relabelled with the stranger's kid.
    let stranger_key = org_key();
    let mut stanzas = capsule.envelope.stanzas().to_vec();
    let Stanza::Hpke(stanza) = &mut stanzas[0] else {
        panic!("sealing writes hpke stanzas")
    };
    stanza.kid = stranger_key.kid().clone();
    let relabelled = Capsule {
        envelope: capsule.envelope.with_stanzas(stanzas).unwrap(),
        nonce: capsule.nonce,
        ciphertext: capsule.ciphertext.clone(),
    };
    assert_eq!(
        open(&relabelled, &KeyRing::from(stranger_key)).unwrap_err(),
        OpenError::DidNotOpen
    );
}

#[test]
fn several_stanzas_and_rotation_keep_header_and_content() {
    let (old, dr) = (
        org_key(),
        OrgPrivateKey::generate(KemId::P256HkdfSha256).unwrap(),
    );
    let capsule = envelope::seal(params(), b"rotate me", &[old.public(), dr.public()]).unwrap();
    assert_eq!(
        open(&capsule, &KeyRing::from(dr))
            .unwrap()
            .expose_secret_bytes(),
        b"rotate me"
    );

    let new = org_key();
    let old_ring = KeyRing::from(old);
    let rotated_envelope = rewrap_to_org_key(&capsule.envelope, &old_ring, new.public()).unwrap();
    assert_eq!(
        rotated_envelope.header_bytes(),
        capsule.envelope.header_bytes()
    );
    assert_eq!(
        rotated_envelope.stanzas().len(),
        2,
        "old stanza replaced, DR stanza kept"
    );
    let rotated = Capsule {
        envelope: rotated_envelope,
        nonce: capsule.nonce,
        ciphertext: capsule.ciphertext.clone(),
    };
    assert_eq!(
        open(&rotated, &KeyRing::from(new))
            .unwrap()
            .expose_secret_bytes(),
        b"rotate me"
    );
    assert!(matches!(
        open(&rotated, &old_ring).unwrap_err(),
        OpenError::NoMatchingKey { .. }
    ));
}

#[test]
fn release_refuses_bad_pod_keys() {
    let (key, capsule) = sealed(b"x");
    let ring = KeyRing::from(key);
    let binding = ReleaseBinding {
        session_id: "s",
        jti: "j",
    };
    for bad in [&[0u8; 31][..], &[0u8; 32][..], &[0u8; 33][..]] {
        assert_eq!(
            rewrap_for_release(&capsule.envelope, &ring, bad, binding).unwrap_err(),
            OpenError::BadRecipientKey
        );
    }
}

#[test]
fn oversized_secrets_are_refused() {
    let key = org_key();
    let too_big = vec![0u8; (1 << 20) + 1];
    let err = envelope::seal(params(), &too_big, &[key.public()]).unwrap_err();
    assert!(err.to_string().contains("1 MiB"), "{err}");
}

#[test]
fn the_envelope_encoding_carries_no_content_and_refuses_content() {
    let (_key, capsule) = sealed(b"content that must never reach the server");
    let bytes = capsule.envelope.to_bytes();
    assert_eq!(
        podseal_core::capsule::DekEnvelope::from_bytes(&bytes).unwrap(),
        capsule.envelope
    );
    assert!(
        !bytes
            .windows(capsule.ciphertext.len())
            .any(|w| w == capsule.ciphertext.as_slice())
    );
    // A whole capsule body sent where an envelope belongs is named for what it is.
    assert_eq!(
        podseal_core::capsule::DekEnvelope::from_bytes(&capsule.to_bytes()),
        Err(CapsuleError::ContentPresent)
    );
}

fn unknown_stanza(kind: u8) -> Stanza {
    Stanza::Unknown(UnknownStanza {
        kind,
        body: b"a wrap from a future podseal".to_vec(),
    })
}

fn transit_stanza() -> Stanza {
    Stanza::Transit(TransitStanza {
        key_name: "podseal-org".into(),
        key_version: 3,
        ciphertext: b"vault:v3:8SDd3WHDOjf7mq69CyCqYjBXAiQQAVZRkFM13ok481zo".to_vec(),
    })
}

/// The capsule with `stanzas` as its wraps, header and content unchanged.
fn rewrapped(capsule: &Capsule, stanzas: Vec<Stanza>) -> Capsule {
    Capsule {
        envelope: capsule.envelope.with_stanzas(stanzas).unwrap(),
        nonce: capsule.nonce,
        ciphertext: capsule.ciphertext.clone(),
    }
}

/// Claim: a stanza of a kind this build does not know, or a transit stanza
/// (no transit provider yet), is kept and skipped; the hpke stanza beside it
/// opens, break-glass and through the release re-wrap alike. A capsule with
/// only unknown kinds is refused with its own reason, one whose known kinds
/// are all for keys not held keeps `no_matching_key`.
#[test]
fn unknown_and_transit_stanzas_are_skipped_and_kept() {
    let (key, capsule) = sealed(b"s3cret");
    let ring = KeyRing::from(key);
    let hpke = capsule.envelope.stanzas()[0].clone();
    let mixed = rewrapped(
        &capsule,
        vec![unknown_stanza(0x7f), transit_stanza(), hpke.clone()],
    );
    let reparsed = Capsule::from_armored(&mixed.to_armored()).unwrap();
    assert_eq!(reparsed, mixed, "unknown and transit stanzas round-trip");
    assert_eq!(
        reparsed
            .envelope
            .stanzas()
            .iter()
            .map(Stanza::kind_name)
            .collect::<Vec<_>>(),
        ["unknown", "transit", "hpke"]
    );
    assert_eq!(
        open(&reparsed, &ring).unwrap().expose_secret_bytes(),
        b"s3cret"
    );
    let pod = LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    let binding = ReleaseBinding {
        session_id: "s",
        jti: "j",
    };
    let released =
        rewrap_for_release(&reparsed.envelope, &ring, pod.public_key_bytes(), binding).unwrap();
    let dek = open_release(&released, &pod, reparsed.envelope.header_bytes(), binding).unwrap();
    assert_eq!(
        envelope::decrypt_content(&reparsed, &dek)
            .unwrap()
            .expose_secret_bytes(),
        b"s3cret"
    );

    let only_unknown = rewrapped(&capsule, vec![unknown_stanza(0x7f), unknown_stanza(0x00)]);
    let refused = open(&only_unknown, &ring).unwrap_err();
    assert_eq!(
        refused,
        OpenError::NoKnownStanzaKind {
            kinds: vec![0x7f, 0x00]
        }
    );
    assert_eq!(refused.reason(), Reason::NoKnownStanzaKind);
    assert!(refused.to_string().contains("0x7f, 0x00"), "{refused}");

    let only_transit = rewrapped(&capsule, vec![transit_stanza(), unknown_stanza(0x7f)]);
    let refused = open(&only_transit, &ring).unwrap_err();
    assert_eq!(refused.reason(), Reason::NoMatchingKey);
    assert!(
        refused
            .to_string()
            .contains("transit key podseal-org version 3"),
        "{refused}"
    );
    let stranger = KeyRing::from(org_key());
    assert_eq!(
        open(&mixed, &stranger).unwrap_err().reason(),
        Reason::NoMatchingKey
    );
}

/// Claim: a held key whose stanza does not open is a refusal, even when a
/// later stanza for another held key would open (no fall-through).
#[test]
fn a_held_key_that_does_not_open_is_not_skipped() {
    let (x25519, p256) = (
        org_key(),
        OrgPrivateKey::generate(KemId::P256HkdfSha256).unwrap(),
    );
    let capsule = envelope::seal(params(), b"s3cret", &[x25519.public(), p256.public()]).unwrap();
    let mut stanzas = capsule.envelope.stanzas().to_vec();
    let Stanza::Hpke(first) = &mut stanzas[0] else {
        panic!("sealing writes hpke stanzas")
    };
    first.wrapped_dek[0] ^= 1;
    let altered = rewrapped(&capsule, stanzas);
    let mut ring = KeyRing::from(x25519);
    ring.add(p256);
    assert_eq!(open(&altered, &ring).unwrap_err(), OpenError::DidNotOpen);
}

/// Claim: moving a capsule to a new org key replaces only the hpke stanza
/// of the held key; transit and unknown stanzas, other org keys' stanzas,
/// the header and the content stay exactly as they were.
#[test]
fn rewrapping_to_a_new_org_key_keeps_transit_and_unknown_stanzas() {
    let (old, dr) = (
        org_key(),
        OrgPrivateKey::generate(KemId::P256HkdfSha256).unwrap(),
    );
    let capsule = envelope::seal(params(), b"rotate me", &[old.public(), dr.public()]).unwrap();
    let [old_stanza, dr_stanza] = capsule.envelope.stanzas() else {
        panic!("two stanzas")
    };
    let before = rewrapped(
        &capsule,
        vec![
            transit_stanza(),
            old_stanza.clone(),
            unknown_stanza(0x7f),
            dr_stanza.clone(),
        ],
    );
    let new = org_key();
    let old_ring = KeyRing::from(old);
    let envelope = rewrap_to_org_key(&before.envelope, &old_ring, new.public()).unwrap();
    assert_eq!(envelope.header_bytes(), capsule.envelope.header_bytes());
    let stanzas = envelope.stanzas();
    assert_eq!(stanzas.len(), 4);
    assert_eq!(stanzas[0].hpke_kid(), Some(new.kid()));
    assert_eq!(
        &stanzas[1..],
        &[transit_stanza(), unknown_stanza(0x7f), dr_stanza.clone()]
    );
    let after = Capsule {
        envelope,
        ..before.clone()
    };
    let after = Capsule::from_bytes(&after.to_bytes()).unwrap();
    assert_eq!(
        open(&after, &KeyRing::from(new))
            .unwrap()
            .expose_secret_bytes(),
        b"rotate me"
    );
    assert_eq!(
        open(&after, &old_ring).unwrap_err().reason(),
        Reason::NoMatchingKey
    );
}

/// Claim: each scope kind is sealed into the header, round-trips byte for
/// byte through the armor and the envelope encoding, and opens with the
/// org key (the scope is checked by the release server, not by opening).
#[test]
fn each_scope_kind_round_trips_byte_exactly_and_opens() {
    let scopes = [
        params().scope,
        Scope::Spiffe(SpiffeScope {
            trust_domain: "example.org".into(),
            ids: vec!["spiffe://example.org/ns/payments/sa/api".into()],
        }),
        Scope::Oidc(OidcScope {
            issuer: "https://gitlab.example.com".into(),
            claims: BTreeMap::from([("project_path".into(), vec!["group/app".into()])]),
        }),
    ];
    for scope in scopes {
        let key = org_key();
        let capsule = envelope::seal(
            SealParams {
                scope: scope.clone(),
                ..params()
            },
            b"s3cret",
            &[key.public()],
        )
        .unwrap();
        let armored = capsule.to_armored();
        let reparsed = Capsule::from_armored(&armored).unwrap();
        assert_eq!(reparsed.to_armored(), armored);
        assert_eq!(reparsed.header().scope, scope);
        let envelope_bytes = capsule.envelope.to_bytes();
        let envelope = podseal_core::capsule::DekEnvelope::from_bytes(&envelope_bytes).unwrap();
        assert_eq!(envelope.to_bytes(), envelope_bytes);
        assert_eq!(
            open(&reparsed, &KeyRing::from(key))
                .unwrap()
                .expose_secret_bytes(),
            b"s3cret"
        );
    }
}

/// Claim: a scope of a kind this build does not know is a header error that
/// names the kind (bounded and escaped), not a silently ignored field.
#[test]
fn an_unknown_scope_kind_is_named() {
    let (_key, capsule) = sealed(b"s3cret");
    let header = std::str::from_utf8(capsule.envelope.header_bytes()).unwrap();
    for (kind, named) in [
        ("aws_iam", "aws_iam".to_owned()),
        ("x\u{1b}[31m", "x\\u{1b}[31m".to_owned()),
        (&"k".repeat(200), "k".repeat(64)),
    ] {
        let edited = header.replacen(
            "\"scope\":{\"kubernetes\":",
            &format!("\"scope\":{{{}:", serde_json::to_string(kind).unwrap()),
            1,
        );
        let err = podseal_core::capsule::parse_header(edited.as_bytes()).unwrap_err();
        assert_eq!(err, CapsuleError::UnknownScopeKind(named.clone()));
        assert_eq!(err.reason(), Reason::CapsuleScopeKindUnknown);
        assert!(err.to_string().contains(&format!("`{named}`")), "{err}");
    }
}
