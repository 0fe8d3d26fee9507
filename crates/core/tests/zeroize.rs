//! Key material is zeroized on drop, and parsing a key file leaves no copy
//! in memory it frees: this binary's allocator searches every block freed
//! while a watch is armed for the secret's bytes
//! (`podseal_test_support::freed_memory`). Each check boxes the value, so
//! that its memory is a heap block the allocator sees freed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a test failure"
)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podseal_core::audit::AuditKey;
use podseal_core::hpke::{KemId, LocalPrivateKey};
use podseal_core::org_key::OrgPrivateKey;
use podseal_core::secret::{Dek, Plaintext};
use podseal_test_support::freed_memory::{self, FreedMemory, PATTERN_LEN};

#[global_allocator]
static ALLOCATOR: FreedMemory = FreedMemory;

fn pattern(bytes: &[u8]) -> [u8; PATTERN_LEN] {
    bytes.try_into().unwrap()
}

fn random() -> [u8; PATTERN_LEN] {
    let mut bytes = [0_u8; PATTERN_LEN];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

/// The hook itself: a plain `Vec` freed with a watched pattern in it is
/// found (so a check below that finds nothing has looked).
#[test]
fn memory_freed_without_zeroizing_is_found() {
    let secret = random();
    let watch = freed_memory::watch(&secret);
    let mut buffer = vec![0_u8; 100];
    buffer[40..72].copy_from_slice(&secret);
    drop(std::hint::black_box(buffer));
    assert_eq!(watch.found(), 1);
}

/// Removing `ZeroizeOnDrop` from `Dek`, `Zeroizing` from `Plaintext`, or
/// the zeroize feature of a key crate fails here.
#[test]
fn secrets_and_keys_are_zeroized_when_dropped() {
    // A DEK.
    let dek = Box::new(Dek::generate().unwrap());
    let watch = freed_memory::watch(&pattern(dek.expose_secret_bytes()));
    drop(std::hint::black_box(dek));
    assert_eq!(watch.found(), 0, "a dropped Dek left its bytes");
    drop(watch);

    // A plaintext.
    let secret = random();
    let plaintext = Plaintext::new(secret.to_vec());
    let watch = freed_memory::watch(&secret);
    drop(std::hint::black_box(plaintext));
    assert_eq!(watch.found(), 0, "a dropped Plaintext left its bytes");
    drop(watch);

    // An X25519 and a P-256 private key.
    for kem in [KemId::X25519HkdfSha256, KemId::P256HkdfSha256] {
        let key = Box::new(LocalPrivateKey::generate(kem).unwrap());
        let watch = freed_memory::watch(&pattern(key.secret_bytes().expose_secret_bytes()));
        drop(std::hint::black_box(key));
        assert_eq!(
            watch.found(),
            0,
            "a dropped {kem:?} private key left its bytes"
        );
    }

    // The audit key.
    let seed = random();
    let key = Box::new(AuditKey::from_seed(&seed));
    let watch = freed_memory::watch(&seed);
    drop(std::hint::black_box(key));
    assert_eq!(watch.found(), 0, "a dropped AuditKey left its seed");
}

/// Reading an org key's and the audit key's text form, then dropping the
/// key: no buffer freed on the way holds the key's bytes.
#[test]
fn key_files_are_parsed_without_leaving_copies() {
    for kem in [KemId::X25519HkdfSha256, KemId::P256HkdfSha256] {
        let key = OrgPrivateKey::generate(kem).unwrap();
        let text = key.to_text();
        // Writing the text form leaves no copy of it.
        let watch = freed_memory::watch(&pattern(&text.as_bytes()[text.len() - PATTERN_LEN..]));
        drop(std::hint::black_box(key.to_text()));
        assert_eq!(
            watch.found(),
            0,
            "writing a {kem:?} org key's text left a copy"
        );
        drop(watch);
        let raw = zeroize::Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(text.rsplit(':').next().unwrap())
                .unwrap(),
        );
        let secret = pattern(&raw);
        drop(raw);
        drop(key);
        let watch = freed_memory::watch(&secret);
        let parsed = Box::new(OrgPrivateKey::from_text(&text).unwrap());
        drop(std::hint::black_box(parsed));
        assert_eq!(
            watch.found(),
            0,
            "parsing and dropping a {kem:?} org key left a copy of its bytes"
        );
    }

    let seed = random();
    let key = AuditKey::from_seed(&seed);
    let text = key.to_text();
    // Writing the text form leaves no copy of it either.
    let watch = freed_memory::watch(&pattern(&text.as_bytes()[text.len() - PATTERN_LEN..]));
    drop(std::hint::black_box(key.to_text()));
    assert_eq!(watch.found(), 0, "writing the audit key's text left a copy");
    drop(watch);
    drop(key);
    let watch = freed_memory::watch(&seed);
    let parsed = Box::new(AuditKey::from_text(&text).unwrap());
    drop(std::hint::black_box(parsed));
    assert_eq!(
        watch.found(),
        0,
        "parsing and dropping the audit key left a copy of its seed"
    );
}
