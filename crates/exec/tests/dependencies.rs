//! The pod-side binary carries only what a pod needs: the image that runs
//! `podseal-exec` must not ship the release server, a storage engine, the
//! Kubernetes client or the stand-in's RSA signer. This reads the resolved
//! dependency graph (`cargo tree`, normal and build edges, as linked) and
//! fails on any of them.
#![allow(clippy::expect_used, reason = "test code: a panic is a test failure")]

use std::process::Command;

/// Crates that must never be in the pod-side binary.
const FORBIDDEN: &[&str] = &[
    "rusqlite",
    "libsqlite3-sys",
    "tokio-postgres",
    "deadpool-postgres",
    "rsa",
    "kube",
    "kube-client",
    "kube-runtime",
    "k8s-openapi",
    "axum",
    "podseal-server",
    "podseal-dev-cluster",
    "podseal-bench",
    "podseal-cli",
];

#[test]
fn the_pod_side_binary_links_no_server_storage_kubernetes_or_rsa_crate() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--package",
            "podseal-exec",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("UTF-8 from cargo tree");
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    // The graph was read: the binary's own crates are in it.
    for needed in ["podseal-exec", "podseal-core", "podseal-sdk"] {
        assert!(names.contains(&needed), "{needed} missing from:\n{tree}");
    }
    let found: Vec<&&str> = FORBIDDEN.iter().filter(|f| names.contains(f)).collect();
    assert!(
        found.is_empty(),
        "podseal-exec must not depend on {found:?}; its tree:\n{tree}"
    );
}
