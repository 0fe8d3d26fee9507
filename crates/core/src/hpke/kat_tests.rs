//! RFC 9180 Appendix A known-answer tests, base mode, read at run time from
//! `testdata/hpke/rfc9180-appendix-a-test-vectors.md`.
//!
//! Coverage, and how podseal's AES-256-GCM suite is covered:
//! - A.1 DHKEM(X25519)/HKDF-SHA256/AES-128-GCM, A.3 DHKEM(P-256)/HKDF-SHA256/
//!   AES-128-GCM and A.4 DHKEM(P-256)/HKDF-SHA512/AES-128-GCM run end to end
//!   through the production path: `DeriveKeyPair` of both key pairs, `enc`,
//!   the shared secret (sender `Encap` and recipient `Decap` through the
//!   [`RecipientKey`] trait), the key schedule's `key`, `base_nonce` and
//!   `exporter_secret`, and every listed message sealed and opened.
//! - Appendix A has no AES-256-GCM suite for our KEMs. A.6 (P-521/HKDF-SHA512/
//!   AES-256-GCM) is run from its published `shared_secret` through the same
//!   key schedule and AEAD code (podseal implements no P-521 KEM): `key`,
//!   `base_nonce`, `exporter_secret` and every message. With the KEM vectors
//!   above and the Wycheproof AES-256-GCM vectors through [`super::AeadKey`],
//!   every piece of DHKEM(X25519)/HKDF-SHA256/AES-256-GCM is covered; the
//!   round trip of the whole suite is property-tested in `envelope`.
//! - ChaCha20-Poly1305 and export-only suites, and the PSK/Auth modes, are not
//!   implemented by podseal and are skipped (counted below).

use std::collections::HashMap;

use super::kem::{decap, encap_with_ikm};
use super::*;
use crate::test_vectors::{hex, load_text};

type Record = HashMap<String, String>;

/// One `~~~` block of the file, with the headings it sits under.
struct Block {
    suite: String,
    setup: String,
    part: String,
    records: Vec<Record>,
}

fn parse_blocks(text: &str) -> Vec<Block> {
    let (mut suite, mut setup, mut part) = (String::new(), String::new(), String::new());
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix("#### ") {
            part = title.trim().to_owned();
        } else if let Some(title) = line.strip_prefix("### ") {
            setup = title.trim().to_owned();
            part = "setup".to_owned();
        } else if let Some(title) = line.strip_prefix("## ") {
            suite = title.trim().to_owned();
        } else if line.trim() == "~~~" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "~~~").collect();
            let records = parse_records(&body);
            blocks.push(Block {
                suite: suite.clone(),
                setup: setup.clone(),
                part: part.clone(),
                records,
            });
        }
    }
    blocks
}

/// `key: value` lines; a value may continue on following lines without a
/// colon; a blank line ends a record.
fn parse_records(lines: &[&str]) -> Vec<Record> {
    let mut records = vec![Record::new()];
    let mut last_key = None;
    for line in lines {
        let line = line.trim();
        if line.is_empty() {
            records.push(Record::new());
            last_key = None;
        } else if let Some((key, value)) = line.split_once(':') {
            let record = records.last_mut().unwrap();
            record.insert(key.trim().to_owned(), value.trim().to_owned());
            last_key = Some(key.trim().to_owned());
        } else {
            let key = last_key.as_ref().expect("continuation line after a key");
            records
                .last_mut()
                .unwrap()
                .get_mut(key)
                .unwrap()
                .push_str(line);
        }
    }
    records.retain(|r| !r.is_empty());
    records
}

fn field(record: &Record, name: &str) -> Vec<u8> {
    hex(record
        .get(name)
        .unwrap_or_else(|| panic!("field {name}"))
        .as_str())
}

fn id(record: &Record, name: &str) -> u16 {
    record[name].parse().unwrap()
}

fn assert_schedule(context: &Context, setup: &Record, suite: &str) {
    assert_eq!(*context.key, field(setup, "key"), "{suite}: key");
    assert_eq!(
        context.base_nonce.to_vec(),
        field(setup, "base_nonce"),
        "{suite}: base_nonce"
    );
    assert_eq!(
        *context.exporter_secret,
        field(setup, "exporter_secret"),
        "{suite}: exporter_secret"
    );
}

fn check_encryptions(
    sender: &mut Context,
    receiver: &mut Context,
    encryptions: &[Record],
    suite: &str,
) {
    assert!(!encryptions.is_empty());
    for record in encryptions {
        let seq: u64 = record["sequence number"].parse().unwrap();
        let (pt, aad, ct) = (
            field(record, "pt"),
            field(record, "aad"),
            field(record, "ct"),
        );
        sender.seq = seq;
        assert_eq!(
            sender.next_nonce().unwrap().to_vec(),
            field(record, "nonce"),
            "{suite} seq {seq}"
        );
        sender.seq = seq;
        assert_eq!(
            sender.seal(&aad, &pt).unwrap(),
            ct,
            "{suite}: seal seq {seq}"
        );
        receiver.seq = seq;
        assert_eq!(
            *receiver.open(&aad, &ct).unwrap(),
            pt,
            "{suite}: open seq {seq}"
        );
        receiver.seq = seq;
        assert_eq!(
            receiver.open(b"other aad", &ct).err(),
            Some(HpkeError::DidNotOpen)
        );
    }
}

fn run_full_suite(suite: Suite, setup: &Record, encryptions: &[Record], name: &str) {
    let info = field(setup, "info");
    let recipient = LocalPrivateKey::derive(suite.kem, &field(setup, "ikmR")).unwrap();
    assert_eq!(
        recipient.secret_bytes().expose_secret_bytes(),
        field(setup, "skRm"),
        "{name}: skRm"
    );
    assert_eq!(
        recipient.public_key_bytes(),
        field(setup, "pkRm"),
        "{name}: pkRm"
    );
    let ephemeral = LocalPrivateKey::derive(suite.kem, &field(setup, "ikmE")).unwrap();
    assert_eq!(
        ephemeral.secret_bytes().expose_secret_bytes(),
        field(setup, "skEm"),
        "{name}: skEm"
    );
    assert_eq!(
        ephemeral.public_key_bytes(),
        field(setup, "pkEm"),
        "{name}: pkEm"
    );

    let pk_r = field(setup, "pkRm");
    let encapsulation = encap_with_ikm(suite.kem, &pk_r, &field(setup, "ikmE")).unwrap();
    assert_eq!(encapsulation.enc, field(setup, "enc"), "{name}: enc");
    assert_eq!(
        *encapsulation.shared_secret,
        field(setup, "shared_secret"),
        "{name}: Encap"
    );
    let decapped = decap(&encapsulation.enc, &recipient).unwrap();
    assert_eq!(*decapped, field(setup, "shared_secret"), "{name}: Decap");

    let (enc, mut sender) = suite
        .setup_base_sender_with_ikm(&pk_r, &info, &field(setup, "ikmE"))
        .unwrap();
    assert_eq!(enc, field(setup, "enc"));
    let mut receiver = suite.setup_base_receiver(&enc, &recipient, &info).unwrap();
    assert_schedule(&sender, setup, name);
    assert_schedule(&receiver, setup, name);
    check_encryptions(&mut sender, &mut receiver, encryptions, name);
}

fn run_key_schedule_only(
    kem_id: u16,
    kdf: KdfId,
    aead: AeadId,
    setup: &Record,
    encryptions: &[Record],
    name: &str,
) {
    let info = field(setup, "info");
    let shared = field(setup, "shared_secret");
    let mut sender = key_schedule_base(kem_id, kdf, aead, &shared, &info).unwrap();
    let mut receiver = key_schedule_base(kem_id, kdf, aead, &shared, &info).unwrap();
    assert_schedule(&sender, setup, name);
    check_encryptions(&mut sender, &mut receiver, encryptions, name);
}

#[test]
fn rfc9180_appendix_a_base_mode() {
    let blocks = parse_blocks(&load_text("hpke/rfc9180-appendix-a-test-vectors.md"));
    let (mut full, mut schedule_only, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for setup_block in blocks
        .iter()
        .filter(|b| b.setup == "Base Setup Information" && b.part == "setup")
    {
        let setup = &setup_block.records[0];
        let name = setup_block.suite.as_str();
        assert_eq!(setup["mode"], "0");
        let encryptions = blocks
            .iter()
            .find(|b| b.suite == name && b.setup == setup_block.setup && b.part == "Encryptions")
            .map(|b| b.records.as_slice())
            .unwrap_or_default();
        let (kem_id, kdf_id, aead_id) = (
            id(setup, "kem_id"),
            id(setup, "kdf_id"),
            id(setup, "aead_id"),
        );
        if let Some(suite) = Suite::from_ids(kem_id, kdf_id, aead_id) {
            run_full_suite(suite, setup, encryptions, name);
            full.push(name);
        } else if let (Some(kdf), Some(aead)) = (KdfId::from_id(kdf_id), AeadId::from_id(aead_id)) {
            run_key_schedule_only(kem_id, kdf, aead, setup, encryptions, name);
            schedule_only.push(name);
        } else {
            skipped.push(name);
        }
    }
    assert_eq!(
        full,
        [
            "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM",
            "DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM",
            "DHKEM(P-256, HKDF-SHA256), HKDF-SHA512, AES-128-GCM",
        ]
    );
    assert_eq!(
        schedule_only,
        ["DHKEM(P-521, HKDF-SHA512), HKDF-SHA512, AES-256-GCM"]
    );
    assert_eq!(
        skipped.len(),
        3,
        "ChaCha20-Poly1305 x2 and export-only: {skipped:?}"
    );
}

#[test]
fn interoperates_with_the_hpke_crate() {
    use hpke::{Deserializable, Serializable};
    type TheirKem = hpke::kem::X25519HkdfSha256;
    type TheirAead = hpke::aead::AesGcm256;
    type TheirKdf = hpke::kdf::HkdfSha256;
    let suite = Suite::X25519_SHA256_AES256GCM;
    let (info, aad, message) = (
        b"podseal/v1 wrap".as_slice(),
        b"header".as_slice(),
        b"thirty-two bytes of data key!!!!".as_slice(),
    );

    // podseal seals, the hpke crate opens.
    let ours = LocalPrivateKey::generate(suite.kem).unwrap();
    let their_view_of_ours =
        <TheirKem as hpke::Kem>::PrivateKey::from_bytes(ours.secret_bytes().expose_secret_bytes())
            .unwrap();
    let (enc, ct) = suite
        .seal(ours.public_key_bytes(), info, aad, message)
        .unwrap();
    let enc = <TheirKem as hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap();
    let opened = hpke::single_shot_open::<TheirAead, TheirKdf, TheirKem>(
        &hpke::OpModeR::Base,
        &their_view_of_ours,
        &enc,
        info,
        &ct,
        aad,
    )
    .unwrap();
    assert_eq!(opened, message);

    // The hpke crate seals, podseal opens.
    let pk = <TheirKem as hpke::Kem>::PublicKey::from_bytes(ours.public_key_bytes()).unwrap();
    let (enc, ct) = hpke::single_shot_seal::<TheirAead, TheirKdf, TheirKem>(
        &hpke::OpModeS::Base,
        &pk,
        info,
        message,
        aad,
    )
    .unwrap();
    let opened = suite.open(&enc.to_bytes(), &ours, info, aad, &ct).unwrap();
    assert_eq!(*opened, message);
}
