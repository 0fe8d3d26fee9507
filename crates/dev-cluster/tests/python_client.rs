//! The stand-in as the official Python client (PyPI `kubernetes`, a client
//! none of us wrote, provisioned at a pinned version by the test) uses it:
//! legacy discovery through its dynamic client, list and watch pods, Secrets created and updated with a conflict on a
//! stale resourceVersion, and a PodCertificateRequest created for a pod,
//! issued by a signer through the status subresource and read back, in v1
//! and v1beta1. The flows are `tests/python/kubernetes_client.py`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a test failure"
)]

use std::process::Command;

use podseal_dev_cluster::{Config, ContainerImage, DevCluster, PodTemplate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_discovers_lists_watches_writes_and_requests_pod_certificates() {
    let python =
        tokio::task::spawn_blocking(podseal_test_support::provision::python_with_kubernetes)
            .await
            .unwrap();
    let cluster = DevCluster::start(Config::default()).await.unwrap();
    let handle = cluster.handle();
    handle
        .create_pod(&PodTemplate {
            namespace: "shop".into(),
            name: "api-0".into(),
            service_account: "api".into(),
            labels: Default::default(),
            init_containers: vec![],
            sidecars: vec![],
            containers: vec![ContainerImage {
                name: "api".into(),
                image: "registry.example/shop/api:1.4".into(),
                digest: Some(format!("sha256:{}", "ab".repeat(32))),
                env: Default::default(),
            }],
            image_volumes: vec![],
            node: None,
        })
        .unwrap();
    handle.mark_running("shop", "api-0").unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cluster.ca_pem()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/kubernetes_client.py"
    );
    let mut command = Command::new(python);
    command
        .arg(script)
        .env("STANDIN_URL", cluster.url())
        .env("STANDIN_CA", &ca)
        .env("STANDIN_TOKEN", cluster.admin_token())
        .env("STANDIN_NODE_UID", handle.node_uid());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "all flows passed"
    );
    // What the client wrote is what the stand-in holds.
    assert!(
        handle.pod("shop", "py-0").is_none(),
        "the client deleted py-0"
    );
}
