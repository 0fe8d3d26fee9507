//! The stand-in as the real `kubectl` sees it (`/usr/bin/kubectl`, on the
//! image): what a token may do, listed by `kubectl auth can-i --list`
//! through the stand-in's SelfSubjectRulesReview (kubectl sends it as
//! protobuf), and the server version `kubectl version` reads from
//! `/version`, which every token may read. Discovery (`/api`, `/apis`) is not
//! served yet, so `kubectl get` is not a client of the stand-in yet.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a test failure"
)]

use std::process::Command;

use podseal_dev_cluster::{Config, DevCluster};

/// `kubectl ARGS` against the stand-in with `token`, no kubeconfig: what
/// it printed, and whether it succeeded.
async fn kubectl_output(cluster: &DevCluster, token: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::TempDir::new().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cluster.ca_pem()).unwrap();
    let mut command = Command::new("kubectl");
    command
        .env("KUBECONFIG", dir.path().join("none"))
        .arg(format!("--server={}", cluster.url()))
        .arg(format!("--certificate-authority={}", ca.display()))
        .arg(format!("--token={token}"))
        .args(args);
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("kubectl is on the image (/usr/bin/kubectl)")
}

/// `kubectl ARGS`, which must succeed: its stdout.
async fn kubectl(cluster: &DevCluster, token: &str, args: &[&str]) -> String {
    let output = kubectl_output(cluster, token, args).await;
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_what_each_token_may_do() {
    let cluster = DevCluster::start(Config::default()).await.unwrap();
    let rules = kubectl(
        &cluster,
        cluster.reader_token(),
        &["auth", "can-i", "--list"],
    )
    .await;
    let line = |resource: &str| {
        rules
            .lines()
            .find(|l| l.split_whitespace().next() == Some(resource))
            .unwrap_or_else(|| panic!("no {resource} in\n{rules}"))
            .to_owned()
    };
    assert!(line("pods").ends_with("[get list watch]"), "{rules}");
    assert!(
        line("selfsubjectrulesreviews.authorization.k8s.io").ends_with("[create]"),
        "{rules}"
    );
    assert!(
        !rules.contains("secrets") && !rules.contains("[*]"),
        "{rules}"
    );
    let admin = kubectl(
        &cluster,
        cluster.admin_token(),
        &["auth", "can-i", "--list"],
    )
    .await;
    assert!(
        admin
            .lines()
            .any(|l| l.starts_with("*.*") && l.ends_with("[*]")),
        "{admin}"
    );
}

/// A path the stand-in serves nothing at answers as kube-apiserver does,
/// so kubectl shows its usual words, not a made-up resource name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_a_missing_path_as_from_kube_apiserver() {
    let cluster = DevCluster::start(Config::default()).await.unwrap();
    let output = kubectl_output(
        &cluster,
        cluster.admin_token(),
        &["get", "--raw", "/api/v1/nosuchresource"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "Error from server (NotFound): the server could not find the requested resource"
    );
}

/// `kubectl version -o json` with the read-only token (which may read
/// nothing but pods) reads the stand-in's `/version`, as
/// `system:public-info-viewer` allows every user, and gets the Kubernetes
/// release the stand-in serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_the_server_version_with_any_token() {
    let cluster = DevCluster::start(Config::default()).await.unwrap();
    let output = kubectl_output(&cluster, cluster.reader_token(), &["version", "-o", "json"]).await;
    assert!(
        output.status.success(),
        "kubectl version: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let version: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let server = &version["serverVersion"];
    assert_eq!(server["major"], "1", "{version}");
    assert_eq!(
        server["minor"],
        podseal_dev_cluster::KUBERNETES_MINOR.to_string(),
        "{version}"
    );
    assert!(
        server["gitVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.")),
        "{version}"
    );
}
