//! The stand-in as a cluster people use with the real `kubectl`
//! (`/usr/bin/kubectl`), beside a real release server: a manifest from
//! `podseal seal --k8s-secret` applied with `kubectl apply -f` holds only
//! capsules wherever the cluster keeps it (the object, the last-applied
//! annotation, the stand-in's state directory), and the stand-in restarted
//! between two releases is the same cluster: no `cluster add --replace`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use podseal_test_support::canary::{self, Canary};
use tempfile::TempDir;

fn bin() -> PathBuf {
    podseal_test_support::binaries::podseal()
}

/// `kubectl ARGS` against the stand-in whose files are in `dc`, as its
/// admin, with no kubeconfig.
fn kubectl(dc: &Path, args: &[&str]) -> Output {
    let cluster: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dc.join("cluster.json")).unwrap()).unwrap();
    let token = std::fs::read_to_string(dc.join("admin.token")).unwrap();
    Command::new("kubectl")
        .env("KUBECONFIG", dc.join("no-kubeconfig"))
        .arg(format!("--server={}", cluster["url"].as_str().unwrap()))
        .arg(format!(
            "--certificate-authority={}",
            dc.join("ca.pem").display()
        ))
        .arg(format!("--token={}", token.trim()))
        .arg(format!(
            "--cache-dir={}",
            dc.join("kubectl-cache").display()
        ))
        .args(args)
        .output()
        .expect("kubectl is on the image (/usr/bin/kubectl)")
}

#[track_caller]
fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "kubectl exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// `kubectl apply -f` of a sealed Secret manifest: the Secret the cluster
/// stores, its `last-applied-configuration`, what `kubectl get -o yaml`
/// prints and what the stand-in writes to its state directory hold the
/// capsules and never the plaintext; each capsule opens in the pod.
#[test]
fn a_sealed_manifest_applied_with_kubectl_holds_only_capsules() {
    let secret = canary::random_text();
    let mut canary = Canary::new();
    canary.watch("plaintext", secret.as_bytes());
    let dir = TempDir::new().unwrap();
    let deployment = support::Deployment::start(&bin(), dir.path(), "info");
    let pod = deployment.pod("api-0");
    let dc = deployment.dev_cluster_dir();
    let value = dir.path().join("password.txt");
    std::fs::write(&value, &secret).unwrap();
    let manifest = dir.path().join("db.yaml");
    support::run_ok(
        &bin(),
        &[
            "seal",
            "--key",
            dir.path().join("keys/org.pub").to_str().unwrap(),
            "--cluster",
            "prod",
            "--namespace",
            "shop",
            "--service-account",
            "api",
            "--k8s-secret",
            "db",
            "--from-file",
            &format!("password={}", value.display()),
            "--out",
            manifest.to_str().unwrap(),
        ],
        &[],
    );
    std::fs::remove_file(&value).unwrap();

    let applied = ok(&kubectl(&dc, &["apply", "-f", manifest.to_str().unwrap()]));
    assert_eq!(applied.trim(), "secret/db created");
    let yaml = ok(&kubectl(
        &dc,
        &["get", "secret", "db", "-n", "shop", "-o", "yaml"],
    ));
    let stored: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    let data = stored["data"]["password"].as_str().unwrap().to_owned();
    let last_applied: serde_json::Value = serde_json::from_str(
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("kubectl's last-applied annotation"),
    )
    .unwrap();
    assert_eq!(last_applied["data"]["password"], data.as_str(), "{yaml}");

    // The stored value is the capsule the pod opens.
    use base64::Engine as _;
    let armored = base64::engine::general_purpose::STANDARD
        .decode(&data)
        .unwrap();
    let capsule =
        podseal_core::capsule::Capsule::from_armored(std::str::from_utf8(&armored).unwrap().trim())
            .expect("the stored value is a capsule");
    let client = support::Deployment::client(&pod);
    assert_eq!(
        client.open(&capsule).unwrap().expose_secret_bytes(),
        secret.as_bytes()
    );

    let listed = ok(&kubectl(&dc, &["get", "secrets", "-A"]));
    let row: Vec<&str> = listed
        .lines()
        .find(|l| l.contains(" db "))
        .unwrap_or_else(|| panic!("no db in\n{listed}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..4],
        ["shop", "db", "podseal.dev/sealed", "1"],
        "{listed}"
    );

    for (place, bytes) in [
        ("get -o yaml", yaml.as_bytes()),
        ("get secrets", listed.as_bytes()),
    ] {
        assert!(canary.hits(place, bytes).is_empty(), "{place}");
    }
    let (hits, searched) = canary.hits_in_dir(&dc, &[]);
    assert!(hits.is_empty(), "{hits:?}");
    assert!(
        searched.files >= 2,
        "the stand-in's state directory was not searched"
    );
}

/// The stand-in stopped and started again with the same directory between
/// two releases: same URL, CA, signing keys and reader token, so the
/// release server's registration still holds and the running pod (kept in
/// the stand-in's state, same uid, same container) is released to again,
/// with no `cluster add --replace`.
#[test]
fn a_restarted_stand_in_is_the_same_cluster_to_the_release_server() {
    let dir = TempDir::new().unwrap();
    let mut deployment = support::Deployment::start(&bin(), dir.path(), "info");
    let pod = deployment.pod("api-0");
    let capsule = deployment.seal("released-before-and-after-a-restart");
    let before = support::Deployment::client(&pod);
    assert_eq!(
        before.open(&capsule).unwrap().expose_secret_bytes(),
        b"released-before-and-after-a-restart"
    );
    let dc = deployment.dev_cluster_dir();
    let files = |dir: &Path| {
        ["ca.pem", "reader.token", "cluster.json"].map(|f| std::fs::read(dir.join(f)).unwrap())
    };
    let connection = files(&dc);
    let pod_uid = || {
        ok(&kubectl(
            &dc,
            &[
                "get",
                "pod",
                "api-0",
                "-n",
                "shop",
                "-o",
                "jsonpath={.metadata.uid}",
            ],
        ))
    };
    let pods_before = pod_uid();

    deployment.restart_cluster();

    assert_eq!(files(&dc), connection, "the connection files changed");
    let pods_after = pod_uid();
    assert_eq!(
        pods_after, pods_before,
        "the pod did not survive the restart"
    );
    // The pod's process goes on (its DPoP key stays pinned to the running
    // container) and asks again once the stand-in is back.
    let after = before;
    // The server's pod view reconnects to the restarted stand-in and
    // relists (the restarted stand-in kept no watch history).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match after.open(&capsule) {
            Ok(opened) => {
                assert_eq!(
                    opened.expose_secret_bytes(),
                    b"released-before-and-after-a-restart"
                );
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "no release within 30 s of the stand-in's restart: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
