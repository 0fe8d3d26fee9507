//! Issue 13: the audit log's proofs as an auditor uses them, against real
//! processes (the stand-in and the server) and the real binary: a
//! checkpoint saved from one export, the log grown, `verify --since` and an
//! inclusion proof checked offline — then the database rewritten under the
//! running server by someone holding the audit key, so that the rewritten
//! log is self-consistent and freshly signed, and `verify --since` catching
//! it where a plain `verify` cannot.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use podseal_core::audit::{AuditKey, Frontier, LogOrigin, leaf_hash};
use tempfile::TempDir;

mod support;

fn bin() -> PathBuf {
    podseal_test_support::binaries::podseal()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn succeeds(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        text(&output.stderr)
    );
    text(&output.stdout)
}

#[track_caller]
fn fails(output: &Output, code: i32, needle: &str) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    stderr
}

/// What an attacker with write access to the database and the audit key
/// does: changes one record's bytes, re-hashes every leaf and the
/// frontier, drops the checkpoints and signs the rewritten tree — all in
/// one transaction, while the server runs.
fn rewrite_under_the_server(database: &Path, key_file: &Path, origin: &LogOrigin) -> u64 {
    let key = AuditKey::from_text(&std::fs::read_to_string(key_file).unwrap()).unwrap();
    let mut db = rusqlite::Connection::open(database).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let tx = db
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let rows: Vec<(i64, Vec<u8>)> = tx
        .prepare("SELECT seq, entry FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let (target, original) = rows
        .iter()
        .find(|(_, entry)| text(entry).contains("\"cluster\":\"prod\""))
        .cloned()
        .expect("a record naming the cluster");
    let edited = text(&original)
        .replacen("\"cluster\":\"prod\"", "\"cluster\":\"prox\"", 1)
        .into_bytes();
    tx.execute(
        "UPDATE audit_log SET entry = ?2 WHERE seq = ?1",
        rusqlite::params![target, edited],
    )
    .unwrap();
    let mut tree = Frontier::new();
    for (seq, entry) in &rows {
        let entry = if *seq == target { &edited } else { entry };
        let leaf = leaf_hash(entry);
        tree.push(leaf).unwrap();
        tx.execute(
            "UPDATE audit_log SET leaf_hash = ?2 WHERE seq = ?1",
            rusqlite::params![seq, leaf.to_vec()],
        )
        .unwrap();
    }
    tx.execute(
        "UPDATE audit_frontier SET size = ?1, nodes = ?2 WHERE id = 1",
        rusqlite::params![tree.size() as i64, tree.nodes_bytes()],
    )
    .unwrap();
    tx.execute("DELETE FROM audit_checkpoints", []).unwrap();
    let checkpoint = key.checkpoint(origin, tree.size(), &tree.root());
    tx.execute(
        "INSERT INTO audit_checkpoints (size, note) VALUES (?1, ?2)",
        rusqlite::params![tree.size() as i64, checkpoint.note()],
    )
    .unwrap();
    tx.commit().unwrap();
    u64::try_from(target).unwrap()
}

#[test]
fn an_auditor_with_a_saved_checkpoint_catches_a_rewritten_log() {
    let dir = TempDir::new().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let mut deployment = support::Deployment::start(&bin(), dir.path(), "info");
    let admin = deployment.admin_env();
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let public = path("state/audit.pub");

    // The server names its note verifier key at start, and the CLI derives
    // the same one from audit.pub and the origin.
    let port = deployment.url.rsplit(':').next().unwrap().to_owned();
    let origin = format!("localhost:{port}/podseal-audit");
    let vkey = succeeds(&run(
        &["audit", "public-key", "--key", &public, "--origin", &origin],
        &[],
    ));
    assert!(vkey.starts_with(&format!("{origin}+")), "{vkey}");
    std::fs::write(path("audit.vkey"), &vkey).unwrap();

    // An auditor saves a checkpoint from an export.
    succeeds(&run(
        &["audit", "export", "--out", &path("e1.jsonl")],
        &admin,
    ));
    // Given the export instead of an origin, the CLI takes the log's own
    // origin, once the export verifies with the key: the same verifier key.
    let from_log = succeeds(&run(
        &["audit", "public-key", "--key", &public, &path("e1.jsonl")],
        &[],
    ));
    assert_eq!(
        from_log, vkey,
        "the origin read from the export is the log's"
    );
    succeeds(&run(
        &[
            "audit",
            "checkpoint",
            "--key",
            &path("audit.vkey"),
            "--out",
            &path("saved.checkpoint"),
            &path("e1.jsonl"),
        ],
        &[],
    ));
    let saved = std::fs::read_to_string(path("saved.checkpoint")).unwrap();
    assert!(
        saved.starts_with(&format!("{origin}\n")),
        "a tlog checkpoint: {saved}"
    );
    assert!(
        saved.contains(&format!("\n\n\u{2014} {origin} ")),
        "{saved}"
    );

    // The log grows; the newer export extends the saved checkpoint.
    support::create_api_key(&bin(), &admin);
    support::create_api_key(&bin(), &admin);
    succeeds(&run(
        &["audit", "export", "--out", &path("e2.jsonl")],
        &admin,
    ));
    let consistent = succeeds(&run(
        &[
            "audit",
            "verify",
            "--key",
            &public,
            "--since",
            &path("saved.checkpoint"),
            &path("e2.jsonl"),
        ],
        &[],
    ));
    assert!(
        consistent.contains("consistent with the saved checkpoint"),
        "{consistent}"
    );

    // An inclusion proof of one record verifies offline, alone, and fails
    // once the record is edited.
    let proof = succeeds(&run(
        &[
            "audit",
            "prove",
            "--key",
            &public,
            "--seq",
            "2",
            "-o",
            "json",
            &path("e2.jsonl"),
        ],
        &[],
    ));
    std::fs::write(path("proof.json"), &proof).unwrap();
    let verified = succeeds(&run(
        &[
            "audit",
            "verify-proof",
            "--key",
            &public,
            &path("proof.json"),
        ],
        &[],
    ));
    assert!(
        verified.contains("inclusion proof verifies: record 2"),
        "{verified}"
    );
    // The outcome in the log's own word, as the entry spells it.
    assert!(
        verified.contains(", allowed) is in the log of "),
        "{verified}"
    );
    let mut edited: serde_json::Value = serde_json::from_str(&proof).unwrap();
    let entry = edited["entry"]
        .as_str()
        .unwrap()
        .replacen("allowed", "refused", 1);
    assert_ne!(entry, edited["entry"].as_str().unwrap());
    edited["entry"] = entry.into();
    std::fs::write(path("edited-proof.json"), edited.to_string()).unwrap();
    fails(
        &run(
            &[
                "audit",
                "verify-proof",
                "--key",
                &public,
                &path("edited-proof.json"),
            ],
            &[],
        ),
        1,
        "inclusion proof does NOT verify",
    );

    // The database is rewritten under the running server, re-signed with
    // its own key; the server keeps serving and exporting it.
    let origin = LogOrigin::new(&origin).unwrap();
    let target = rewrite_under_the_server(
        &dir.path().join("state/podseal.db"),
        &dir.path().join("state/audit.key"),
        &origin,
    );
    assert!(target >= 1);
    support::create_api_key(&bin(), &admin);
    succeeds(&run(
        &["audit", "export", "--out", &path("e3.jsonl")],
        &admin,
    ));
    // On its own the rewritten log verifies: it is self-consistent and signed.
    succeeds(&run(
        &["audit", "verify", "--key", &public, &path("e3.jsonl")],
        &[],
    ));
    // Against the saved checkpoint it does not.
    let stderr = fails(
        &run(
            &[
                "audit",
                "verify",
                "--key",
                &public,
                "--since",
                &path("saved.checkpoint"),
                &path("e3.jsonl"),
            ],
            &[],
        ),
        1,
        "REWRITTEN",
    );
    assert!(
        stderr.contains("does NOT extend the saved checkpoint"),
        "{stderr}"
    );
    // Nor does the old proof verify against the new log's checkpoint.
    let newer = succeeds(&run(
        &[
            "audit",
            "prove",
            "--key",
            &public,
            "--seq",
            &target.to_string(),
            "-o",
            "json",
            &path("e3.jsonl"),
        ],
        &[],
    ));
    let newer: serde_json::Value = serde_json::from_str(&newer).unwrap();
    let old: serde_json::Value = serde_json::from_str(&succeeds(&run(
        &[
            "audit",
            "prove",
            "--key",
            &public,
            "--seq",
            &target.to_string(),
            "-o",
            "json",
            &path("e2.jsonl"),
        ],
        &[],
    )))
    .unwrap();
    let mut spliced = old.clone();
    spliced["checkpoint"] = newer["checkpoint"].clone();
    spliced["tree_size"] = newer["tree_size"].clone();
    std::fs::write(path("spliced.json"), spliced.to_string()).unwrap();
    fails(
        &run(
            &[
                "audit",
                "verify-proof",
                "--key",
                &public,
                &path("spliced.json"),
            ],
            &[],
        ),
        1,
        "does NOT verify",
    );

    // Usage errors are exit 2.
    fails(
        &run(
            &[
                "audit",
                "verify",
                "--key",
                &path("missing.pub"),
                &path("e3.jsonl"),
            ],
            &[],
        ),
        2,
        "cannot read audit public key",
    );
    fails(
        &run(
            &[
                "audit",
                "public-key",
                "--key",
                &public,
                "--origin",
                "https://x",
            ],
            &[],
        ),
        2,
        "URL scheme",
    );
    deployment.stop();
}
