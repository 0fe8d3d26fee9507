//! Issue 21 §1 end to end with real processes: gate 4 covers every image
//! whose content runs in the pod, image volumes (KEP-4639) and native
//! sidecars included. The stand-in and the release server run as
//! processes, pods are created with `podseal-dev cluster pod create` in the
//! shapes of a 1.36 API server, and `podseal-exec` opens a capsule over
//! HTTPS as a pod's container runs it.
//!
//! A pod whose app image is approved is refused when it mounts an image
//! volume by tag that no status resolved, an image volume by an unapproved
//! digest, or a tag the kubelet reports it resolved to an unapproved digest
//! (KEP-5365's `volumeStatus.image.imageRef`); the refusal names the volume.
//! An image volume whose digest is approved (by reference, or as resolved)
//! is released to. A native sidecar (`restartPolicy: Always`) of an
//! unapproved image is refused, naming it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::path::Path;
use std::process::Output;

use tempfile::TempDir;

mod support;

const SECRET: &str = "image-volume-secret-51a7";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// `podseal-exec` in pod `shop/NAME`, printing the secret.
fn exec(deployment: &support::Deployment, pod: &str, capsule: &Path) -> Output {
    support::exec_printing_secret(&deployment.process_env(pod, "api"), capsule)
}

/// Creates running pod `shop/NAME` with the approved app image and `extra`
/// arguments of `pod create`.
fn create(deployment: &support::Deployment, name: &str, extra: &[&str]) {
    support::create_pod_with(
        &deployment.dev_cluster_dir(),
        &deployment.digest,
        name,
        extra,
    );
}

#[track_caller]
fn refused(output: &Output, code: &str, names: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "the program started after a refusal"
    );
    assert!(stderr.contains(code), "expected {code}: {stderr}");
    assert!(
        stderr.contains(names),
        "expected it to name {names}: {stderr}"
    );
}

#[track_caller]
fn released(output: &Output) {
    support::assert_released(output, SECRET);
}

#[test]
fn image_volumes_and_native_sidecars_pass_gate_4_only_with_approved_digests() {
    let dir = TempDir::new().unwrap();
    let binary = podseal_test_support::binaries::podseal();
    let mut deployment = support::Deployment::start(&binary, dir.path(), "info");
    // The tools image is approved too (the app image's digest is `a`).
    let admin = deployment.admin_env();
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tools = digest('b');
    support::run_ok(
        &binary,
        &[
            "policy",
            "add-digest",
            "--cluster",
            "prod",
            "--namespace",
            "shop",
            "--service-account",
            "api",
            &tools,
        ],
        &admin,
    );
    let capsule = dir.path().join("secret.capsule");
    std::fs::write(&capsule, deployment.seal(SECRET).to_armored()).unwrap();
    let unapproved = digest('e');

    create(
        &deployment,
        "by-tag",
        &["--image-volume", "tools=registry.example/tools:latest"],
    );
    refused(
        &exec(&deployment, "by-tag", &capsule),
        "live_pod/image_without_digest",
        "image volume tools",
    );

    let by_bad_digest = format!("tools=registry.example/tools@{unapproved}");
    create(
        &deployment,
        "by-bad-digest",
        &["--image-volume", &by_bad_digest],
    );
    refused(
        &exec(&deployment, "by-bad-digest", &capsule),
        "live_pod/image_not_approved",
        "image volume tools",
    );

    let resolved_bad = format!("tools={unapproved}");
    create(
        &deployment,
        "resolved-bad",
        &[
            "--image-volume",
            "tools=registry.example/tools:latest",
            "--image-volume-digest",
            &resolved_bad,
        ],
    );
    refused(
        &exec(&deployment, "resolved-bad", &capsule),
        "live_pod/image_not_approved",
        "image volume tools",
    );

    let by_digest = format!("tools=registry.example/tools@{tools}");
    create(&deployment, "by-digest", &["--image-volume", &by_digest]);
    released(&exec(&deployment, "by-digest", &capsule));

    let resolved = format!("tools={tools}");
    create(
        &deployment,
        "resolved",
        &[
            "--image-volume",
            "tools=registry.example/tools:1",
            "--image-volume-digest",
            &resolved,
        ],
    );
    released(&exec(&deployment, "resolved", &capsule));

    let sidecar = format!("proxy=registry.example/proxy:1@{unapproved}");
    create(&deployment, "sidecar", &["--sidecar", &sidecar]);
    refused(
        &exec(&deployment, "sidecar", &capsule),
        "live_pod/image_not_approved",
        "sidecar container proxy",
    );
    let approved_sidecar = format!("proxy=registry.example/proxy:1@{tools}");
    create(&deployment, "sidecar-ok", &["--sidecar", &approved_sidecar]);
    released(&exec(&deployment, "sidecar-ok", &capsule));

    // Each refusal is in the audit log with its gate and reason.
    let export = dir.path().join("audit.jsonl");
    support::run_ok(
        &binary,
        &["audit", "export", "--out", export.to_str().unwrap()],
        &admin,
    );
    deployment.stop();
    let refusals: Vec<(String, String)> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let entry: serde_json::Value = serde_json::from_str(value["entry"].as_str()?).unwrap();
            Some((
                entry["details"]["pod"].as_str()?.to_owned(),
                entry["reason"].as_str()?.to_owned(),
            ))
        })
        .collect();
    for (pod, reason) in [
        ("by-tag", "image_without_digest"),
        ("by-bad-digest", "image_not_approved"),
        ("resolved-bad", "image_not_approved"),
        ("sidecar", "image_not_approved"),
    ] {
        assert!(
            refusals.iter().any(|(p, r)| p == pod && r == reason),
            "no {reason} audited for {pod}: {refusals:?}"
        );
    }
}
