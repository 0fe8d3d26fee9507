//! Seal, open and re-wrap, measured against one raw X25519 scalar
//! multiplication in the same run.
//!
//! Run: `cargo bench -p podseal-core --bench envelope`. After criterion's own
//! report, a table gives each operation's median as a multiple of the median
//! X25519 operation, which is what `docs/benchmarks.md` records: ratios stay
//! meaningful across machines where absolute times do not.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark harness"
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::Criterion;
use podseal_core::dpop::{DpopKey, ProofExpectations, ProofFor, verify_proof};
use podseal_core::envelope::{self, ReleaseBinding, SealParams};
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey};
use podseal_core::key_provider::KeyRing;
use podseal_core::org_key::OrgPrivateKey;
use podseal_test_support::fixtures::{kubernetes_scope, seal_params};

const BASELINE: &str = "raw_x25519";
const HTU: &str = "https://podseal.example/v1/unwrap";

fn params() -> SealParams {
    SealParams {
        created_at: 1_790_000_000,
        ..seal_params(kubernetes_scope("prod", "shop", "api"))
    }
}

fn benches(c: &mut Criterion) {
    let scalar = [0x42u8; 32];
    let point = x25519_dalek::X25519_BASEPOINT_BYTES;
    c.bench_function(BASELINE, |b| {
        b.iter(|| x25519_dalek::x25519(black_box(scalar), black_box(point)))
    });

    let org = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    let public = org.public().clone();
    let ring = KeyRing::from(org);
    let secret = [7u8; 32];
    let big = vec![7u8; 64 * 1024];
    c.bench_function("seal_32B", |b| {
        b.iter(|| envelope::seal(params(), black_box(&secret), &[&public]).unwrap())
    });
    c.bench_function("seal_64KiB", |b| {
        b.iter(|| envelope::seal(params(), black_box(&big), &[&public]).unwrap())
    });

    let capsule = envelope::seal(params(), &secret, &[&public]).unwrap();
    c.bench_function("open_32B", |b| {
        b.iter(|| envelope::open(black_box(&capsule), &ring).unwrap())
    });

    let pod = LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    let binding = ReleaseBinding {
        session_id: "session-0123456789",
        jti: "jti-0123456789abcdef",
    };
    c.bench_function("rewrap_for_release", |b| {
        b.iter(|| {
            envelope::rewrap_for_release(
                black_box(&capsule.envelope),
                &ring,
                pod.public_key_bytes(),
                binding,
            )
            .unwrap()
        })
    });
    let released =
        envelope::rewrap_for_release(&capsule.envelope, &ring, pod.public_key_bytes(), binding)
            .unwrap();
    c.bench_function("pod_open_release", |b| {
        b.iter(|| {
            let dek = envelope::open_release(
                black_box(&released),
                &pod,
                capsule.envelope.header_bytes(),
                binding,
            )
            .unwrap();
            envelope::decrypt_content(&capsule, &dek).unwrap()
        })
    });

    let dpop = DpopKey::generate().unwrap();
    let (proof, _) = dpop
        .proof(&ProofFor {
            htm: "POST",
            htu: HTU,
            iat: 1000,
            access_token: Some("session-token"),
            nonce: None,
        })
        .unwrap();
    let expect = ProofExpectations {
        htm: "POST",
        htu: HTU,
        now: 1000,
        max_age_secs: 60,
        max_skew_secs: 5,
        access_token: Some("session-token"),
        nonce: None,
    };
    c.bench_function("dpop_verify", |b| {
        b.iter(|| verify_proof(black_box(&proof), &expect).unwrap())
    });
}

fn median_ns(dir: &Path, name: &str) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(name).join("new/estimates.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("median")?.get("point_estimate")?.as_f64()
}

fn print_ratios(dir: &Path) {
    let Some(baseline) = median_ns(dir, BASELINE) else {
        println!("(no baseline measured; run without a filter to get ratios)");
        return;
    };
    println!("\n| operation | median | × raw X25519 |\n|---|---|---|");
    for name in [
        BASELINE,
        "seal_32B",
        "seal_64KiB",
        "open_32B",
        "rewrap_for_release",
        "pod_open_release",
        "dpop_verify",
    ] {
        if let Some(ns) = median_ns(dir, name) {
            println!("| {name} | {:.1} µs | {:.2} |", ns / 1000.0, ns / baseline);
        }
    }
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion");
    let mut criterion = Criterion::default()
        .output_directory(&dir)
        .configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    print_ratios(&dir);
}
