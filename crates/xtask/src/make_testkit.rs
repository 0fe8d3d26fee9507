//! Writes the capsule testkit in `crates/core/tests/testkit/`: one file per
//! input, each with an `expect:` line, read by `tests/it/testkit.rs`.
//!
//! The files are committed; this program documents how they were made and
//! regenerates them (`cargo run -p xtask -- make-testkit`).
//! Regenerating replaces the random parts (keys, nonces), so do it only when
//! the cases change: the committed files are also the proof that capsules
//! written by earlier builds still open.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "generator"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use podseal_core::armor;
use podseal_core::capsule::{
    Capsule, HPKE_STANZA, KubernetesScope, OidcScope, RevealMode, Scope, SpiffeScope, Stanza,
    TRANSIT_STANZA,
};
use podseal_core::envelope::{self, SealParams};
use podseal_core::hpke::KemId;
use podseal_core::org_key::OrgPrivateKey;

/// One stanza as bytes go: an hpke stanza's fields (so a case can break
/// one), or a kind and a body written as given.
#[derive(Clone)]
enum Raw {
    Hpke {
        kid: Vec<u8>,
        ids: [u16; 3],
        enc: Vec<u8>,
        wrapped: Vec<u8>,
    },
    Body {
        kind: u8,
        body: Vec<u8>,
    },
}

impl Raw {
    fn hpke_body(&self) -> Vec<u8> {
        let Raw::Hpke {
            kid,
            ids,
            enc,
            wrapped,
        } = self
        else {
            panic!("not an hpke stanza")
        };
        let mut out = vec![kid.len() as u8];
        out.extend_from_slice(kid);
        for id in ids {
            out.extend_from_slice(&id.to_be_bytes());
        }
        out.extend_from_slice(&(enc.len() as u16).to_be_bytes());
        out.extend_from_slice(enc);
        out.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
        out.extend_from_slice(wrapped);
        out
    }

    fn kind_and_body(&self) -> (u8, Vec<u8>) {
        match self {
            Raw::Hpke { .. } => (HPKE_STANZA, self.hpke_body()),
            Raw::Body { kind, body } => (*kind, body.clone()),
        }
    }
}

fn transit_body(key_name: &str, version: u32, ciphertext: &str) -> Vec<u8> {
    let mut out = vec![key_name.len() as u8];
    out.extend_from_slice(key_name.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(ciphertext.len() as u16).to_be_bytes());
    out.extend_from_slice(ciphertext.as_bytes());
    out
}

/// A transit stanza as OpenBao's transit engine would return its ciphertext.
fn transit(version: u32) -> Raw {
    Raw::Body {
        kind: TRANSIT_STANZA,
        body: transit_body(
            "podseal-org",
            version,
            "vault:v3:8SDd3WHDOjf7mq69CyCqYjBXAiQQAVZRkFM13ok481zoCmHnSeDX9vyf7w==",
        ),
    }
}

/// A stanza of a kind no build knows (yet): tag 0x7f, a short body.
fn unknown() -> Raw {
    Raw::Body {
        kind: 0x7f,
        body: b"a wrap from a future podseal".to_vec(),
    }
}

/// A capsule body taken apart, so that each case can break one thing.
#[derive(Clone)]
struct Parts {
    header: Vec<u8>,
    stanzas: Vec<Raw>,
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
                .map(|s| match s {
                    Stanza::Hpke(s) => Raw::Hpke {
                        kid: s.kid.as_str().as_bytes().to_vec(),
                        ids: [s.suite.kem.id(), s.suite.kdf.id(), s.suite.aead.id()],
                        enc: s.enc.clone(),
                        wrapped: s.wrapped_dek.clone(),
                    },
                    other => panic!("sealing wrote a {} stanza", other.kind_name()),
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
            let (kind, body) = s.kind_and_body();
            out.push(kind);
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            out.extend_from_slice(&body);
        }
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&(self.ciphertext.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// The body in the layout before stanza kinds (hpke fields directly,
    /// no kind, no body length), as capsules were written until then.
    fn encode_earlier_layout(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.header.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.header);
        out.push(self.stanzas.len() as u8);
        for s in &self.stanzas {
            out.extend_from_slice(&s.hpke_body());
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

fn kubernetes(key: Option<&str>) -> Scope {
    Scope::Kubernetes(KubernetesScope {
        cluster: "testkit".into(),
        namespace: "shop".into(),
        service_accounts: vec!["api".into(), "worker".into()],
        name: "db".into(),
        key: key.map(str::to_owned),
    })
}

fn spiffe() -> Scope {
    Scope::Spiffe(SpiffeScope {
        trust_domain: "testkit.example".into(),
        ids: vec![
            "spiffe://testkit.example/ns/shop/sa/api".into(),
            "spiffe://testkit.example/billing/worker".into(),
        ],
    })
}

fn oidc() -> Scope {
    Scope::Oidc(OidcScope {
        issuer: "https://token.actions.githubusercontent.com".into(),
        claims: BTreeMap::from([
            ("repository".into(), vec!["octo-org/shop".into()]),
            (
                "ref".into(),
                vec!["refs/heads/main".into(), "refs/tags/v1".into()],
            ),
        ]),
    })
}

fn scoped(scope: Scope) -> SealParams {
    SealParams {
        scope,
        purpose: Some("testkit".into()),
        reveal: RevealMode::Many,
        created_at: 1_795_000_000,
        not_after: None,
    }
}

fn params(key: Option<&str>, reveal: RevealMode, not_after: Option<i64>) -> SealParams {
    SealParams {
        scope: kubernetes(key),
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

/// The testkit key of `kem` in `file`, made once and then kept.
fn testkit_key(dir: &Path, file: &str, kem: KemId) -> OrgPrivateKey {
    let path = dir.join(file);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return OrgPrivateKey::from_text(&text).unwrap();
    }
    let key = OrgPrivateKey::generate(kem).unwrap();
    let text = format!(
        "# TEST-ONLY org key for the capsule testkit. Never use it for anything else.\n{}\n",
        key.to_text().as_str()
    );
    std::fs::write(&path, text).unwrap();
    key
}

/// Writes every testkit file into `crates/core/tests/testkit/`.
pub fn run() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/testkit");
    let key = testkit_key(&dir, "testkit-org-key.txt", KemId::X25519HkdfSha256);
    let p256 = testkit_key(&dir, "testkit-org-key-p256.txt", KemId::P256HkdfSha256);
    let stranger = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    let hsm_like = OrgPrivateKey::generate(KemId::P256HkdfSha256).unwrap();
    let secret = "correct horse battery staple";
    let seal = |params, keys: &[&OrgPrivateKey]| {
        let publics: Vec<_> = keys.iter().map(|k| k.public()).collect();
        envelope::seal(params, secret.as_bytes(), &publics).unwrap()
    };
    let base = seal(params(None, RevealMode::Many, None), &[&key]);
    let ok = |name: &str, comment: &str, capsule: &str| {
        write(&dir, name, "success", comment, capsule, Some(secret))
    };
    ok(
        "valid_minimal",
        "one hpke X25519 stanza, kubernetes scope, reveal many, no deadline",
        &base.to_armored(),
    );
    ok(
        "valid_two_stanzas",
        "a P-256 stanza for a key not held, then an X25519 stanza for the testkit key",
        &seal(params(None, RevealMode::Many, None), &[&hsm_like, &key]).to_armored(),
    );
    ok(
        "valid_manifest_value",
        "a Secret data value: scope key, reveal once, not_after",
        &seal(
            params(Some("password"), RevealMode::Once, Some(1_900_000_000)),
            &[&key],
        )
        .to_armored(),
    );

    // Stanza kinds.
    ok(
        "stanza_hpke_x25519",
        "kind 0x01 hpke, DHKEM(X25519, HKDF-SHA256), the testkit X25519 key",
        &seal(scoped(kubernetes(None)), &[&key]).to_armored(),
    );
    ok(
        "stanza_hpke_p256",
        "kind 0x01 hpke, DHKEM(P-256, HKDF-SHA256), the testkit P-256 key",
        &seal(scoped(kubernetes(None)), &[&p256]).to_armored(),
    );
    let with_stanzas = |capsule: &Capsule, edit: &dyn Fn(&mut Vec<Raw>)| {
        let mut p = Parts::of(capsule);
        edit(&mut p.stanzas);
        p.armored()
    };
    let x25519 = seal(scoped(kubernetes(None)), &[&key]);
    ok(
        "stanza_unknown_beside_hpke",
        "an unknown kind (0x7f) first, then an hpke stanza: the unknown one is skipped",
        &with_stanzas(&x25519, &|s| s.insert(0, unknown())),
    );
    ok(
        "stanza_transit_beside_hpke",
        "a transit stanza first (no transit provider here), then an hpke stanza",
        &with_stanzas(&x25519, &|s| s.insert(0, transit(3))),
    );
    let fail = |name: &str, expect: &str, comment: &str, capsule: &str| {
        write(&dir, name, expect, comment, capsule, None)
    };
    fail(
        "stanza_transit_only",
        "no_matching_key",
        "only a transit stanza: a known kind, but no key for it is held here",
        &with_stanzas(&x25519, &|s| *s = vec![transit(3)]),
    );
    fail(
        "stanza_unknown_only",
        "no_known_stanza_kind",
        "two stanzas, both of kinds this build does not know",
        &with_stanzas(&x25519, &|s| {
            *s = vec![
                unknown(),
                Raw::Body {
                    kind: 0x00,
                    body: Vec::new(),
                },
            ]
        }),
    );

    // Scope kinds: each round-trips byte-exactly and opens with the org key.
    ok(
        "scope_kubernetes",
        "kubernetes scope: cluster, namespace, two service accounts, name",
        &seal(scoped(kubernetes(None)), &[&key]).to_armored(),
    );
    ok(
        "scope_spiffe",
        "spiffe scope: a trust domain and two SPIFFE IDs in it",
        &seal(scoped(spiffe()), &[&key]).to_armored(),
    );
    ok(
        "scope_oidc",
        "oidc scope: an https issuer and two claims, one with two allowed values",
        &seal(scoped(oidc()), &[&key]).to_armored(),
    );

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
    fail(
        "earlier_stanza_layout",
        "capsule_too_large",
        "valid_minimal in the layout before stanza kinds: its kid length reads as a kind, two kid characters as a body length over 4 KiB",
        &armor::encode(&parts().encode_earlier_layout()),
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
    let scope_edit = |from: &str, to: &str| {
        assert!(header_json.contains(from), "{from}");
        with(&|p| p.header = header_json.replacen(from, to, 1).into_bytes())
    };
    fail(
        "scope_unknown_kind",
        "capsule_scope_kind_unknown",
        "a scope of kind aws_iam, which this build does not know: a header error naming it",
        &scope_edit("\"scope\":{\"kubernetes\":", "\"scope\":{\"aws_iam\":"),
    );
    fail(
        "scope_two_kinds",
        "capsule_header_syntax",
        "a scope object naming two kinds",
        &scope_edit(
            "\"scope\":{\"kubernetes\":",
            "\"scope\":{\"spiffe\":{\"trust_domain\":\"x\",\"ids\":[\"spiffe://x/a\"]},\"kubernetes\":",
        ),
    );
    fail(
        "scope_kubernetes_unknown_field",
        "capsule_header_syntax",
        "an extra field inside the kubernetes scope is refused, not ignored",
        &scope_edit("\"cluster\":", "\"admin\":true,\"cluster\":"),
    );
    let scope_header = |scope: Scope, edit: &dyn Fn(&str) -> String| {
        let capsule = seal(scoped(scope), &[&key]);
        let mut p = Parts::of(&capsule);
        p.header = edit(std::str::from_utf8(&p.header).unwrap()).into_bytes();
        p.armored()
    };
    fail(
        "scope_spiffe_id_outside_trust_domain",
        "capsule_header_field",
        "a SPIFFE ID of another trust domain than the scope's",
        &scope_header(spiffe(), &|h| {
            h.replacen(
                "spiffe://testkit.example/billing",
                "spiffe://other.example/billing",
                1,
            )
        }),
    );
    fail(
        "scope_spiffe_dot_segment",
        "capsule_header_field",
        "a SPIFFE ID path with a '..' segment",
        &scope_header(spiffe(), &|h| {
            h.replacen("/billing/worker", "/billing/../worker", 1)
        }),
    );
    fail(
        "scope_oidc_http_issuer",
        "capsule_header_field",
        "an OIDC issuer over plain http",
        &scope_header(oidc(), &|h| h.replacen("https://", "http://", 1)),
    );
    fail(
        "scope_oidc_no_claims",
        "capsule_header_field",
        "an OIDC scope with an empty claims map",
        &scope_header(oidc(), &|h| {
            let at = h.find("\"claims\":").unwrap();
            let end = h[at..].find("]}").unwrap() + at + 2;
            format!("{}\"claims\":{{}}{}", &h[..at], &h[end..])
        }),
    );
    fail(
        "scope_oidc_duplicate_claim",
        "capsule_header_syntax",
        "an OIDC claim named twice (JSON readers disagree on which one counts)",
        &scope_header(oidc(), &|h| {
            h.replacen(
                "\"claims\":{",
                "\"claims\":{\"repository\":[\"evil/repo\"],",
                1,
            )
        }),
    );

    fail(
        "zero_stanzas",
        "capsule_stanza_count",
        "no wrap at all",
        &with(&|p| p.stanzas.clear()),
    );
    fail(
        "seventeen_stanzas",
        "capsule_stanza_count",
        "sixteen unknown stanzas beside the hpke one: over the bound of 16, whatever the kinds",
        &with(&|p| p.stanzas.extend(std::iter::repeat_n(unknown(), 16))),
    );
    fail(
        "unsupported_suite",
        "capsule_unsupported_suite",
        "ChaCha20-Poly1305 (0x0003) is not implemented",
        &with(&|p| {
            if let Raw::Hpke { ids, .. } = &mut p.stanzas[0] {
                ids[2] = 3;
            }
        }),
    );
    fail(
        "bad_kid",
        "capsule_bad_kid",
        "a kid with characters outside base64url",
        &with(&|p| {
            if let Raw::Hpke { kid, .. } = &mut p.stanzas[0] {
                *kid = b"kid with spaces!!!!!!!".to_vec();
            }
        }),
    );
    fail(
        "enc_wrong_length",
        "capsule_malformed_stanza",
        "an X25519 enc of 31 bytes",
        &with(&|p| {
            if let Raw::Hpke { enc, .. } = &mut p.stanzas[0] {
                enc.pop();
            }
        }),
    );
    let hpke_body = parts().stanzas[0].hpke_body();
    fail(
        "stanza_body_truncated",
        "capsule_stanza_truncated",
        "an hpke stanza whose body length ends one byte before its wrapped key does",
        &with(&|p| {
            p.stanzas[0] = Raw::Body {
                kind: HPKE_STANZA,
                body: hpke_body[..hpke_body.len() - 1].to_vec(),
            }
        }),
    );
    fail(
        "stanza_body_trailing_bytes",
        "capsule_malformed_stanza",
        "an hpke stanza whose body holds one byte after its last field",
        &with(&|p| {
            let mut body = hpke_body.clone();
            body.push(0);
            p.stanzas[0] = Raw::Body {
                kind: HPKE_STANZA,
                body,
            }
        }),
    );
    fail(
        "stanza_body_too_large",
        "capsule_too_large",
        "an unknown stanza with a 4097-byte body (over the 4 KiB bound)",
        &with(&|p| {
            p.stanzas.insert(
                0,
                Raw::Body {
                    kind: 0x7f,
                    body: vec![0; 4097],
                },
            )
        }),
    );
    fail(
        "transit_key_version_zero",
        "capsule_malformed_stanza",
        "a transit stanza of key version 0 (versions start at 1)",
        &with(&|p| p.stanzas.insert(0, transit(0))),
    );
    fail(
        "transit_bad_key_name",
        "capsule_malformed_stanza",
        "a transit key name holding a '/'",
        &with(&|p| {
            p.stanzas.insert(
                0,
                Raw::Body {
                    kind: TRANSIT_STANZA,
                    body: transit_body("org/../root", 1, "vault:v1:AAAA"),
                },
            )
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
        &with(&|p| {
            if let Raw::Hpke { wrapped, .. } = &mut p.stanzas[0] {
                wrapped[0] ^= 1;
            }
        }),
    );
    fail(
        "enc_flipped",
        "did_not_open",
        "one bit of the HPKE enc flipped",
        &with(&|p| {
            if let Raw::Hpke { enc, .. } = &mut p.stanzas[0] {
                enc[0] ^= 1;
            }
        }),
    );
    fail(
        "held_key_fails_before_another_would_open",
        "did_not_open",
        "the first hpke stanza is for the held X25519 key but altered; a good P-256 stanza follows: no fall-through",
        &{
            let both = seal(scoped(kubernetes(None)), &[&key, &p256]);
            let mut p = Parts::of(&both);
            if let Raw::Hpke { wrapped, .. } = &mut p.stanzas[0] {
                wrapped[0] ^= 1;
            }
            p.armored()
        },
    );
    fail(
        "stanza_for_another_key",
        "no_matching_key",
        "sealed to a key the testkit does not hold",
        &seal(params(None, RevealMode::Many, None), &[&stranger]).to_armored(),
    );
    println!("wrote testkit to {}", dir.display());
}
