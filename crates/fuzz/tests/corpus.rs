//! Every fuzz target's committed corpus (`fuzz/corpus/<target>/`) and every
//! input that once crashed it (`fuzz/regressions/<target>/`) run through
//! its body in the normal test run: a crash found once cannot come back
//! unnoticed, and a target without seeds fails here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a test failure"
)]

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_replays_its_corpus_and_past_crashes() {
    for target in podseal_fuzz::TARGETS {
        let seeds = inputs(&fuzz_dir().join("corpus").join(target.name));
        assert!(
            !seeds.is_empty(),
            "fuzz target {} has no committed seed in fuzz/corpus/{}",
            target.name,
            target.name
        );
        let crashes = inputs(&fuzz_dir().join("regressions").join(target.name));
        for input in seeds.iter().chain(&crashes) {
            let data = std::fs::read(input).unwrap();
            let outcome = std::panic::catch_unwind(|| (target.run)(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target {} fails on {}",
                target.name,
                input.display()
            );
        }
        println!(
            "{}: {} seeds, {} past crashes replayed",
            target.name,
            seeds.len(),
            crashes.len()
        );
    }
}

#[test]
fn every_target_has_its_cargo_fuzz_entry_and_no_entry_is_orphaned() {
    let listed: Vec<String> = inputs(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    let mut names: Vec<String> = podseal_fuzz::TARGETS
        .iter()
        .map(|t| t.name.to_owned())
        .collect();
    names.sort();
    assert_eq!(
        listed, names,
        "fuzz/fuzz_targets/ and podseal_fuzz::TARGETS"
    );
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for name in &names {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        let source =
            std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs"))).unwrap();
        assert!(
            source.contains(&format!("podseal_fuzz::target(\"{name}\")")),
            "fuzz/fuzz_targets/{name}.rs runs another target's body"
        );
    }
}

/// The seeds are inputs the parsers accept all the way (a proof that
/// verifies, an export that verifies, a note that parses), so that the
/// fuzzer's mutations start past the first check.
#[test]
fn the_seeds_pass_every_check_of_their_parser() {
    use podseal_core::audit::{AuditKey, Checkpoint, verify_export};
    use podseal_core::dpop::verify_proof;
    let read = |target: &str| {
        inputs(&fuzz_dir().join("corpus").join(target))
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect::<Vec<_>>()
    };
    for proof in read("dpop") {
        let expect = podseal_fuzz::dpop_expectations();
        // `ath` and `nonce` are not expected here: the proof's signature
        // and claims check before those are compared.
        if let Err(error) = verify_proof(&proof, &expect) {
            assert!(
                error.to_string().contains("ath") || error.to_string().contains("nonce"),
                "a dpop seed does not verify: {error}"
            );
        }
    }
    let key = AuditKey::from_seed(&podseal_fuzz::AUDIT_KEY_SEED).public_key();
    for export in read("audit_export") {
        verify_export(&export, &key, None).expect("the export seed verifies");
    }
    assert!(
        read("checkpoint")
            .iter()
            .any(|note| Checkpoint::parse(note).is_ok()),
        "no checkpoint seed parses"
    );
}
