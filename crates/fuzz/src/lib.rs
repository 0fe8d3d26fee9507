//! The fuzz targets' bodies: one function per parser of untrusted input,
//! each taking any bytes. A body may panic only when a property fails
//! (a parser that panics, or an encoder that does not give back the bytes
//! its parser took); every other outcome is a value or a typed error.
//!
//! `fuzz/fuzz_targets/<name>.rs` wraps [`TARGETS`]' entry of that name for
//! libFuzzer (`cargo fuzz run -s none <name>`), and
//! `crates/fuzz/tests/corpus.rs` replays `fuzz/corpus/<name>/` and
//! `fuzz/regressions/<name>/` through the same function in every test run,
//! so a crash found once stays fixed. `docs/fuzzing.md` says how to run
//! them for hours.

use std::hint::black_box;

use podseal_core::audit::{Checkpoint, parse_public_key, parse_verifier_key, verify_export};
use podseal_core::capsule::{Capsule, DekEnvelope, parse_header};
use podseal_core::dpop::{ProofExpectations, verify_proof};
use podseal_core::jws::CompactJws;
use podseal_core::org_key::OrgPublicKey;
use podseal_core::{armor, scope};

/// One fuzz target: its name (the directory of its corpus) and its body.
pub struct Target {
    /// The name `cargo fuzz run` takes.
    pub name: &'static str,
    /// What it parses.
    pub parses: &'static str,
    /// The body.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "armor",
        parses: "armored capsule text (`podseal:v1:…`); decode → encode → decode gives the same body",
        run: armor_text,
    },
    Target {
        name: "capsule",
        parses: "a capsule body; parse → encode gives the same bytes",
        run: capsule_body,
    },
    Target {
        name: "envelope",
        parses: "a release request's DEK envelope; parse → encode gives the same bytes",
        run: envelope_body,
    },
    Target {
        name: "header",
        parses: "capsule header JSON and its scope",
        run: header_json,
    },
    Target {
        name: "dpop",
        parses: "a DPoP proof: compact JWS, header, Ed25519 verification, claims",
        run: dpop_proof,
    },
    Target {
        name: "checkpoint",
        parses: "a C2SP signed checkpoint note, and audit key texts",
        run: checkpoint_note,
    },
    Target {
        name: "audit_export",
        parses: "an audit export (JSON lines of records and checkpoints) being verified",
        run: audit_export,
    },
    Target {
        name: "org_public_key",
        parses: "an org public key's text",
        run: org_public_key,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Armored text: a body that decodes encodes to text that decodes to it.
pub fn armor_text(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(body) = armor::decode(text) {
        let again = armor::decode(&armor::encode(&body));
        assert_eq!(
            again.ok().as_deref(),
            Some(body.as_slice()),
            "armor round trip"
        );
    }
    if let Ok(capsule) = Capsule::from_armored(text) {
        black_box(capsule.header());
    }
}

/// A capsule body: what parses encodes to exactly the bytes it came from
/// (a capsule's bytes are what is sealed and compared).
pub fn capsule_body(data: &[u8]) {
    if let Ok(capsule) = Capsule::from_bytes(data) {
        assert_eq!(capsule.to_bytes(), data, "capsule round trip");
    }
}

/// A DEK envelope (the only part of a capsule a release request carries).
pub fn envelope_body(data: &[u8]) {
    if let Ok(envelope) = DekEnvelope::from_bytes(data) {
        assert_eq!(envelope.to_bytes(), data, "envelope round trip");
        black_box(envelope.header());
    }
}

/// Header JSON, and the Secret slot syntax of a scope.
pub fn header_json(data: &[u8]) {
    black_box(parse_header(data).ok());
    if let Some(text) = text(data) {
        black_box(scope::SecretSlot::parse(text).ok());
    }
}

/// A DPoP proof against fixed expectations (the signature fails for any
/// input the fuzzer did not sign, so this reaches the JWS and header
/// checks; the corpus holds proofs that verify).
pub fn dpop_proof(data: &[u8]) {
    let Some(proof) = text(data) else { return };
    if let Ok(jws) = CompactJws::parse(proof) {
        black_box(jws.payload.len());
    }
    black_box(verify_proof(proof, &dpop_expectations()).ok());
}

/// What the `dpop` target verifies proofs against (its seeds are signed
/// for these).
pub fn dpop_expectations() -> ProofExpectations<'static> {
    ProofExpectations {
        htm: "POST",
        htu: "https://podseal.example/v1/unwrap",
        now: 1_795_000_000,
        max_age_secs: 60,
        max_skew_secs: 5,
        access_token: None,
        nonce: None,
    }
}

/// The seed of the audit key the `audit_export` target verifies with (its
/// seed export is signed by it).
pub const AUDIT_KEY_SEED: [u8; 32] = [7; 32];

/// A checkpoint note: one that parses prints back as the same text.
pub fn checkpoint_note(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(checkpoint) = Checkpoint::parse(text) {
        assert_eq!(checkpoint.note(), text, "checkpoint round trip");
    }
    black_box(parse_verifier_key(text));
    black_box(parse_public_key(text));
}

/// An export verified against the public key of the audit key with seed
/// `[7; 32]`, which signed the seed export: any outcome but a panic.
pub fn audit_export(data: &[u8]) {
    use std::sync::OnceLock;
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key =
        KEY.get_or_init(|| podseal_core::audit::AuditKey::from_seed(&AUDIT_KEY_SEED).public_key());
    let Some(text) = text(data) else { return };
    black_box(verify_export(text, key, None).ok());
}

/// An org public key's text.
pub fn org_public_key(data: &[u8]) {
    let Some(text) = text(data) else { return };
    black_box(OrgPublicKey::from_text(text).ok());
}
