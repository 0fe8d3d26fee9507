//! Writes the fuzz targets' seed corpora in `fuzz/corpus/<target>/`
//! (`cargo run -p xtask -- make-fuzz-seeds`): inputs that parse, so the
//! fuzzer starts from the shapes the parsers accept and mutates inward.
//!
//! - `armor`, `capsule`, `envelope`, `header`: every capsule of the core
//!   testkit (`crates/core/tests/testkit/`), as armored text, body,
//!   envelope and header bytes;
//! - `dpop`: proofs signed now for the fixed expectations of the `dpop`
//!   target (with and without `ath` and nonce);
//! - `checkpoint`: a signed note, its verifier key and public key texts;
//! - `audit_export`: a small export that verifies, signed by the key the
//!   `audit_export` target checks against;
//! - `org_public_key`: an org public key per KEM.
//!
//! The files are committed. Regenerating replaces the random parts; do it
//! when a parser's accepted shape changes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "generator"
)]

use std::path::{Path, PathBuf};

use podseal_core::audit::{
    AuditKey, AuditRecord, Event, ExportLine, LogOrigin, Outcome, leaf_hash, merkle,
    public_key_text, verifier_key_text,
};
use podseal_core::capsule::{Capsule, DekEnvelope};
use podseal_core::dpop::{DpopKey, ProofFor};
use podseal_core::hpke::KemId;
use podseal_core::org_key::OrgPrivateKey;

/// Writes `bytes` as `fuzz/corpus/<target>/<name>`.
fn seed(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// The armored capsule of each testkit file that has one.
fn testkit_capsules(root: &Path) -> Vec<(String, String)> {
    let dir = root.join("crates/core/tests/testkit");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            let armored = text
                .lines()
                .find_map(|line| line.strip_prefix("capsule: "))?
                .to_owned();
            Some((path.file_name()?.to_str()?.to_owned(), armored))
        })
        .collect()
}

pub fn run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (name, armored) in testkit_capsules(&root) {
        seed(&root, "armor", &name, armored.as_bytes());
        let Ok(body) = podseal_core::armor::decode(&armored) else {
            continue;
        };
        seed(&root, "capsule", &name, &body);
        if let Ok(capsule) = Capsule::from_bytes(&body) {
            let envelope: &DekEnvelope = &capsule.envelope;
            seed(&root, "header", &name, envelope.header_bytes());
            seed(&root, "envelope", &name, &envelope.to_bytes());
        }
    }

    let key = DpopKey::generate().unwrap();
    for (name, access_token, nonce) in [
        ("plain", None, None),
        ("bound", Some("a-session"), None),
        ("nonce", Some("a-session"), Some("a-nonce")),
    ] {
        let expect = podseal_fuzz::dpop_expectations();
        let (proof, _) = key
            .proof(&ProofFor {
                htm: expect.htm,
                htu: expect.htu,
                iat: expect.now,
                access_token,
                nonce,
            })
            .unwrap();
        seed(&root, "dpop", name, proof.as_bytes());
    }

    // The `audit_export` target verifies against this key's public half:
    // the export verifies, so mutations of it reach every check after
    // parsing.
    let audit = AuditKey::from_seed(&podseal_fuzz::AUDIT_KEY_SEED);
    let origin = LogOrigin::new("podseal.example/fuzz").unwrap();
    let records: Vec<String> = (1..=3u64)
        .map(|seq| {
            let record = AuditRecord {
                seq,
                time_ms: 1_795_000_000_000 + i64::try_from(seq).unwrap(),
                event: Event::Unwrap.into(),
                outcome: Outcome::Allowed,
                gate: None,
                reason: None,
                details: [("cluster".to_owned(), "prod".to_owned())].into(),
            };
            serde_json::to_string(&record).unwrap()
        })
        .collect();
    let leaves: Vec<_> = records.iter().map(|r| leaf_hash(r.as_bytes())).collect();
    let checkpoint = audit.checkpoint(&origin, 3, &merkle::root(&leaves));
    let mut export = String::new();
    for (i, (entry, leaf)) in records.iter().zip(&leaves).enumerate() {
        let line = ExportLine::record(i as u64 + 1, entry.as_bytes(), leaf);
        export.push_str(&serde_json::to_string(&line).unwrap());
        export.push('\n');
    }
    export.push_str(&serde_json::to_string(&ExportLine::Checkpoint(checkpoint.clone())).unwrap());
    export.push('\n');
    seed(&root, "audit_export", "three_records", export.as_bytes());
    seed(&root, "checkpoint", "note", checkpoint.note().as_bytes());
    seed(
        &root,
        "checkpoint",
        "verifier_key",
        verifier_key_text(&origin, &audit.public_key()).as_bytes(),
    );
    seed(
        &root,
        "checkpoint",
        "public_key",
        public_key_text(&audit.public_key()).as_bytes(),
    );

    for (name, kem) in [
        ("x25519", KemId::X25519HkdfSha256),
        ("p256", KemId::P256HkdfSha256),
    ] {
        let org = OrgPrivateKey::generate(kem).unwrap();
        seed(
            &root,
            "org_public_key",
            name,
            org.public().to_text().as_bytes(),
        );
    }
}
