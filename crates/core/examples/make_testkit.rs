//! Writes the capsule testkit in `crates/core/tests/testkit/`: one file per
//! input, each with an `expect:` line, read by `tests/it/testkit.rs`.
//!
//! The files are committed; this program documents how they were made and
//! regenerates them (`cargo run -p podseal-core --example make_testkit`).
//! Regenerating replaces the random parts (keys, nonces), so do it only when
//! the cases change: the committed files are also the proof that capsules
//! written by earlier builds still open.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "generator"
)]

use std::path::{Path, PathBuf};

use podseal_core::armor;
use podseal_core::capsule::{Capsule, RevealMode, Scope};
use podseal_core::envelope::{self, SealParams};
use podseal_core::hpke::KemId;
use podseal_core::org_key::OrgPrivateKey;

struct Stanza {
    kid: Vec<u8>,
    ids: [u16; 3],
    enc: Vec<u8>,
    wrapped: Vec<u8>,
}

/// A capsule body taken apart, so that each case can break one thing.
struct Parts {
    header: Vec<u8>,
    stanzas: Vec<Stanza>,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Parts {
    fn of(capsule: &Capsule) -> Self {
        Self {
            header: capsule.envelope.header_bytes().to_vec(),
            stanzas: capsule
                .envelope
                .stanzas()
                .iter()
                .map(|s| Stanza {
                    kid: s.kid.as_str().as_bytes().to_vec(),
                    ids: [s.suite.kem.id(), s.suite.kdf.id(), s.suite.aead.id()],
                    enc: s.enc.clone(),
                    wrapped: s.wrapped_dek.clone(),
                })
                .collect(),
            nonce: capsule.nonce.to_vec(),
            ciphertext: capsule.ciphertext.clone(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.header.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.header);
        out.push(self.stanzas.len() as u8);
        for s in &self.stanzas {
            out.push(s.kid.len() as u8);
            out.extend_from_slice(&s.kid);
            for id in s.ids {
                out.extend_from_slice(&id.to_be_bytes());
            }
            out.extend_from_slice(&(s.enc.len() as u16).to_be_bytes());
            out.extend_from_slice(&s.enc);
            out.extend_from_slice(&(s.wrapped.len() as u16).to_be_bytes());
            out.extend_from_slice(&s.wrapped);
        }
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&(self.ciphertext.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    fn armored(&self) -> String {
        armor::encode(&self.encode())
    }
}

fn params(key: Option<&str>, reveal: RevealMode, not_after: Option<i64>) -> SealParams {
    SealParams {
        scope: Scope {
            cluster: "testkit".into(),
            namespace: "shop".into(),
            service_accounts: vec!["api".into(), "worker".into()],
            name: "db".into(),
            key: key.map(str::to_owned),
        },
        purpose: Some("testkit".into()),
        reveal,
        created_at: 1_795_000_000,
        not_after,
    }
}

fn write(
    dir: &Path,
    name: &str,
    expect: &str,
    comment: &str,
    capsule: &str,
    plaintext: Option<&str>,
) {
    let mut text = format!("expect: {expect}\ncomment: {comment}\n");
    if let Some(plaintext) = plaintext {
        text.push_str(&format!("plaintext: {plaintext}\n"));
    }
    text.push_str(&format!("capsule: {capsule}\n"));
    std::fs::write(dir.join(name), text).unwrap();
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testkit");
    let key_path = dir.join("testkit-org-key.txt");
    let key = match std::fs::read_to_string(&key_path) {
        Ok(text) => OrgPrivateKey::from_text(&text).unwrap(),
        Err(_) => {
            let key = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
            let text = format!(
                "# TEST-ONLY org key for the capsule testkit. Never use it for anything else.\n{}\n",
                key.to_text().as_str()
            );
            std::fs::write(&key_path, text).unwrap();
            key
        }
    };
    let stranger = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    let hsm_like = OrgPrivateKey::generate(KemId::P256HkdfSha256).unwrap();
    let secret = "correct horse battery staple";
    let seal = |params, keys: &[&OrgPrivateKey]| {
        let publics: Vec<_> = keys.iter().map(|k| k.public()).collect();
        envelope::seal(params, secret.as_bytes(), &publics).unwrap()
    };
    let base = seal(params(None, RevealMode::Many, None), &[&key]);
    let ok = |name: &str, comment: &str, capsule: &Capsule| {
        write(
            &dir,
            name,
            "success",
            comment,
            &capsule.to_armored(),
            Some(secret),
        )
    };
    ok(
        "valid_minimal",
        "one stanza, reveal many, no deadline",
        &base,
    );
    ok(
        "valid_two_stanzas",
        "an X25519 stanza for the testkit key and a P-256 stanza for a key not held",
        &seal(params(None, RevealMode::Many, None), &[&hsm_like, &key]),
    );
    ok(
        "valid_manifest_value",
        "a Secret data value: scope key, reveal once, not_after",
        &seal(
            params(Some("password"), RevealMode::Once, Some(1_900_000_000)),
            &[&key],
        ),
    );

    let fail = |name: &str, expect: &str, comment: &str, capsule: &str| {
        write(&dir, name, expect, comment, capsule, None)
    };
    let armored = base.to_armored();
    let body = armored.strip_prefix(armor::PREFIX).unwrap();
    fail("armor_empty", "armor_empty", "nothing at all", "");
    fail(
        "armor_missing_prefix",
        "armor_missing_prefix",
        "an age recipient is not a capsule",
        "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
    );
    fail(
        "armor_unsupported_version",
        "armor_unsupported_version",
        "a v2 capsule from the future",
        &format!("podseal:v2:{body}"),
    );
    fail(
        "armor_padding",
        "armor_base64",
        "base64 padding is not allowed",
        &format!("{armored}="),
    );
    fail(
        "armor_standard_alphabet",
        "armor_base64",
        "'+' is not in the URL-safe alphabet",
        &format!("{}+", &armored[..armored.len() - 1]),
    );

    let parts = || Parts::of(&base);
    let encoded = parts().encode();
    let cut = |n: usize| armor::encode(&encoded[..n]);
    fail(
        "truncated_in_header",
        "capsule_truncated",
        "the body ends inside the header",
        &cut(10),
    );
    fail(
        "truncated_in_ciphertext",
        "capsule_truncated",
        "the last ciphertext byte is missing",
        &cut(encoded.len() - 1),
    );
    let mut trailing = encoded.clone();
    trailing.push(0);
    fail(
        "trailing_bytes",
        "capsule_trailing_bytes",
        "one byte after the ciphertext",
        &armor::encode(&trailing),
    );

    let with = |edit: &dyn Fn(&mut Parts)| {
        let mut p = parts();
        edit(&mut p);
        p.armored()
    };
    let header_json = String::from_utf8(base.envelope.header_bytes().to_vec()).unwrap();
    fail(
        "header_not_json",
        "capsule_header_syntax",
        "the header is not JSON",
        &with(&|p| p.header = b"not json".to_vec()),
    );
    fail(
        "header_unknown_field",
        "capsule_header_syntax",
        "an extra header field is refused, not ignored",
        &with(&|p| {
            p.header = header_json
                .replacen('{', "{\"admin\":true,", 1)
                .into_bytes()
        }),
    );
    fail(
        "header_bad_namespace",
        "capsule_header_field",
        "namespace with upper case",
        &with(&|p| p.header = header_json.replace("\"shop\"", "\"Shop\"").into_bytes()),
    );
    fail(
        "header_version_2",
        "capsule_header_field",
        "header version 2",
        &with(&|p| p.header = header_json.replacen("\"v\":1", "\"v\":2", 1).into_bytes()),
    );
    fail(
        "zero_stanzas",
        "capsule_stanza_count",
        "no wrap at all",
        &with(&|p| p.stanzas.clear()),
    );
    fail(
        "unsupported_suite",
        "capsule_unsupported_suite",
        "ChaCha20-Poly1305 (0x0003) is not implemented",
        &with(&|p| p.stanzas[0].ids[2] = 3),
    );
    fail(
        "bad_kid",
        "capsule_bad_kid",
        "a kid with characters outside base64url",
        &with(&|p| p.stanzas[0].kid = b"kid with spaces!!!!!!!".to_vec()),
    );
    fail(
        "enc_wrong_length",
        "capsule_malformed_stanza",
        "an X25519 enc of 31 bytes",
        &with(&|p| {
            p.stanzas[0].enc.pop();
        }),
    );
    fail(
        "ciphertext_too_large",
        "capsule_too_large",
        "a ciphertext length over 1 MiB + tag",
        &{
            let mut bytes = parts().encode();
            let at = bytes.len() - base.ciphertext.len() - 4;
            bytes[at..at + 4].copy_from_slice(&(2u32 << 20).to_be_bytes());
            armor::encode(&bytes)
        },
    );

    fail(
        "header_edited",
        "did_not_open",
        "namespace changed to another valid one",
        &with(&|p| p.header = header_json.replace("\"shop\"", "\"attacker\"").into_bytes()),
    );
    fail(
        "ciphertext_flipped",
        "did_not_open",
        "one ciphertext bit flipped",
        &with(&|p| p.ciphertext[0] ^= 1),
    );
    fail(
        "nonce_flipped",
        "did_not_open",
        "one content nonce bit flipped",
        &with(&|p| p.nonce[0] ^= 1),
    );
    fail(
        "wrapped_dek_flipped",
        "did_not_open",
        "one bit of the wrapped DEK flipped",
        &with(&|p| p.stanzas[0].wrapped[0] ^= 1),
    );
    fail(
        "enc_flipped",
        "did_not_open",
        "one bit of the HPKE enc flipped",
        &with(&|p| p.stanzas[0].enc[0] ^= 1),
    );
    fail(
        "stanza_for_another_key",
        "no_matching_key",
        "sealed to a key the testkit does not hold",
        &seal(params(None, RevealMode::Many, None), &[&stranger]).to_armored(),
    );
    println!("wrote testkit to {}", dir.display());
}
