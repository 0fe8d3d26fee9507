//! `podseal-dev demo` is the README's main command: it must run on a fresh
//! machine and every step must behave — the legitimate pod opens its secret,
//! and each attack is refused by the gate that should refuse it.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use serde_json::Value;

#[test]
fn the_demo_passes_every_step_and_each_attack_is_refused_by_its_gate() {
    // Its temporary directory (keys, database, tokens) is removed afterwards.
    let tmp = tempfile::TempDir::new().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_podseal-dev"))
        .args(["demo", "-o", "json"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the demo left files behind"
    );
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    let steps = report["steps"].as_array().unwrap();
    let seen: Vec<(String, String, String)> = steps
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or("").to_owned();
            (text("outcome"), text("gate"), text("reason"))
        })
        .collect();
    let expected: Vec<(&str, &str, &str)> = vec![
        ("passed", "", ""),
        ("refused", "capsule", "sealed"),
        ("passed", "", ""),
        ("refused", "api_key", "api_key_scope_mismatch"),
        ("refused", "dpop", "key_not_pinned"),
        ("refused", "dpop", "pod_key_already_pinned"),
        ("refused", "dpop", "jti_replayed"),
        ("refused", "live_pod", "debug_container_not_approved"),
        ("refused", "live_pod", "image_not_approved"),
        ("refused", "dpop", "session_revoked"),
        ("refused", "scope", "namespace_mismatch"),
        ("refused", "pod", "secret_mismatch"),
        ("passed", "", ""),
    ];
    let expected: Vec<(String, String, String)> = expected
        .into_iter()
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
        .collect();
    assert_eq!(seen, expected);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("hunter2"), "the demo printed the secret");
}
