//! `podseal-dev cluster serve` as a real process, driven by the control verbs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tempfile::TempDir;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn podseal(dir: &TempDir, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_podseal-dev"));
    command
        .arg("cluster")
        .args(args)
        .arg("--dir")
        .arg(dir.path());
    command.output().unwrap()
}

/// `cluster serve` on a free port with its files in `dir`, once ready.
fn serve(dir: &TempDir) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podseal-dev"))
        .args(["cluster", "serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    // Ready when it prints its first line (written after every connection file).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("dev-cluster did not start in time");
    assert!(
        ready.starts_with("dev-cluster serving https://127.0.0.1:"),
        "{ready}"
    );
    server
}

/// `kubectl ARGS` with the kubeconfig `cluster serve` wrote in `dir`.
fn kubectl(dir: &TempDir, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .arg(format!(
            "--cache-dir={}",
            dir.path().join("kubectl-cache").display()
        ))
        .args(args)
        .output()
        .expect("kubectl is on the image (/usr/bin/kubectl)")
}

#[test]
fn serve_then_control_verbs() {
    let dir = TempDir::new().unwrap();
    let _server = serve(&dir);
    for (file, mode) in [
        ("reader.token", 0o600),
        ("admin.token", 0o600),
        ("ca.pem", 0o644),
    ] {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            mode,
            "{file}"
        );
    }

    let digest = format!("sha256:{}", "c".repeat(64));
    let container = format!("api=registry.example/shop/api:1.4@{digest}");
    let out = podseal(
        &dir,
        &[
            "pod",
            "create",
            "--namespace",
            "shop",
            "--name",
            "api-0",
            "--service-account",
            "api",
            "--container",
            &container,
            "--running",
            "-o",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod: Pod = serde_json::from_slice(&out.stdout).unwrap();
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(
        status.container_statuses.unwrap()[0].image_id,
        format!("registry.example/shop/api@{digest}")
    );

    // `pod list` shows what the list API holds, per namespace or all.
    let listed = |args: &[&str]| {
        let out = podseal(&dir, args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Pod>>(&out.stdout).unwrap()
    };
    let all = listed(&["pod", "list", "-o", "json"]);
    assert!(
        all.iter()
            .any(|p| p.metadata.name.as_deref() == Some("api-0")
                && p.metadata.namespace.as_deref() == Some("shop")),
        "{all:?}"
    );
    assert_eq!(
        listed(&["pod", "list", "--namespace", "shop", "-o", "json"]).len(),
        1
    );
    assert!(listed(&["pod", "list", "--namespace", "other", "-o", "json"]).is_empty());
    // For people, `pod list` is a `kubectl get pods` table: readiness,
    // phase, restarts and the containers.
    let text = podseal(&dir, &["pod", "list"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "NAMESPACE",
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "CONTAINERS"
            ],
            vec!["shop", "api-0", "1/1", "Running", "0", "api"],
        ],
        "{text}"
    );

    // Each verb says what it changed, then shows the pod's containers.
    let text = podseal(
        &dir,
        &["pod", "restart", "shop/api-0", "--container", "api"],
    );
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.starts_with("pod shop/api-0: container api restarted (a new instance"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  container api: registry.example/shop/api:1.4; running, 1 restart, image id registry.example/shop/api@{digest}"
        )),
        "{text}"
    );
    let listed_text = podseal(&dir, &["pod", "list", "--namespace", "shop"]);
    assert!(
        String::from_utf8_lossy(&listed_text.stdout)
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["shop", "api-0", "1/1", "Running", "1", "api"]),
        "{}",
        String::from_utf8_lossy(&listed_text.stdout)
    );

    let out = podseal(
        &dir,
        &[
            "pod",
            "debug",
            "shop/api-0",
            "--image",
            &format!("busybox:1.36@{digest}"),
            "-o",
            "json",
        ],
    );
    let pod: Pod = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pod.spec.unwrap().ephemeral_containers.unwrap().len(), 1);
    let text = podseal(
        &dir,
        &[
            "pod",
            "debug",
            "shop/api-0",
            "--image",
            "busybox:1.36",
            "--name",
            "second",
        ],
    );
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.starts_with(
            "pod shop/api-0: ephemeral container second (busybox:1.36) added and running"
        ),
        "{text}"
    );
    assert!(
        text.contains("  ephemeral second: busybox:1.36; running, 0 restarts"),
        "{text}"
    );

    let out = podseal(
        &dir,
        &[
            "token",
            "--namespace",
            "shop",
            "--service-account",
            "api",
            "--pod",
            "api-0",
            "--audience",
            "podseal",
            "-o",
            "json",
        ],
    );
    let token: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(token["token"].as_str().unwrap().split('.').count(), 3);

    // --out replaces the token file whole, 0600, as the kubelet rotates a
    // projected token; nothing of the token reaches stdout.
    let token_file = dir.path().join("projected-token");
    std::fs::write(&token_file, "the old token").unwrap();
    for _ in 0..2 {
        let out = podseal(
            &dir,
            &[
                "token",
                "--namespace",
                "shop",
                "--service-account",
                "api",
                "--pod",
                "api-0",
                "--audience",
                "podseal",
                "--out",
                token_file.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        let written = std::fs::read_to_string(&token_file).unwrap();
        assert_eq!(written.split('.').count(), 3, "{written}");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let out = podseal(&dir, &["pod", "recreate", "shop/api-0", "-o", "json"]);
    let recreated: Pod = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(recreated.metadata.uid, pod.metadata.uid);
    let text = podseal(&dir, &["pod", "recreate", "shop/api-0"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.starts_with(
            "recreated pod shop/api-0 with a new uid; Pending until `podseal-dev cluster pod running shop/api-0`"
        ),
        "{text}"
    );
    assert!(
        text.contains("  container api: registry.example/shop/api:1.4; not started"),
        "{text}"
    );

    let out = podseal(&dir, &["pod", "delete", "shop/missing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("error: dev-cluster refused: pods \"missing\" not found")
    );
    let out = podseal(&dir, &["pod", "running", "no-slash"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `pod certificate-request` makes a PodCertificateRequest as the kubelet
/// does (its key in a new 0600 file, never overwritten); a signer issues it
/// through the status subresource (`kubectl patch --subresource=status`,
/// with the kubeconfig `cluster serve` writes), after which its status is
/// final.
#[test]
fn a_pod_certificate_request_is_made_as_the_kubelet_makes_one_and_issued_by_a_signer() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new().unwrap();
    let _server = serve(&dir);
    let created = podseal(
        &dir,
        &[
            "pod",
            "create",
            "--namespace",
            "shop",
            "--name",
            "api-0",
            "--service-account",
            "api",
            "--container",
            "api=registry.example/shop/api:1.4",
            "--running",
        ],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = dir.path().join("api-0.key");
    let key_arg = key.to_str().unwrap();
    let requested = podseal(
        &dir,
        &[
            "pod",
            "certificate-request",
            "shop/api-0",
            "--signer",
            "podseal.dev/workload",
            "--key-out",
            key_arg,
            "-o",
            "json",
        ],
    );
    assert!(
        requested.status.success(),
        "{}",
        String::from_utf8_lossy(&requested.stderr)
    );
    let request: serde_json::Value = serde_json::from_slice(&requested.stdout).unwrap();
    let name = request["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("api-0-"), "{name}");
    assert_eq!(request["spec"]["podName"], "api-0");
    assert_eq!(request["spec"]["maxExpirationSeconds"], 86400);
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = podseal(
        &dir,
        &[
            "pod",
            "certificate-request",
            "shop/api-0",
            "--signer",
            "podseal.dev/workload",
            "--key-out",
            key_arg,
        ],
    );
    assert!(!again.status.success());
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        pem,
        "the key was overwritten"
    );
    let unknown = podseal(
        &dir,
        &[
            "pod",
            "certificate-request",
            "shop/nope",
            "--signer",
            "podseal.dev/workload",
            "--key-out",
            dir.path().join("nope.key").to_str().unwrap(),
        ],
    );
    assert!(!unknown.status.success());
    assert!(!dir.path().join("nope.key").exists());

    let pending = kubectl(
        &dir,
        &[
            "get",
            "podcertificaterequests",
            "-n",
            "shop",
            "--no-headers",
        ],
    );
    let pending = String::from_utf8_lossy(&pending.stdout).to_string();
    let columns: Vec<&str> = pending.split_whitespace().collect();
    assert_eq!(
        &columns[..4],
        [name.as_str(), "api-0", "podseal.dev/workload", "Pending"],
        "{pending}"
    );

    let now = jiff::Timestamp::now().as_second();
    let at = |seconds: i64| {
        jiff::Timestamp::from_second(now + seconds)
            .unwrap()
            .to_string()
    };
    let issued = serde_json::json!({"status": {
        "certificateChain": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "notBefore": at(0), "notAfter": at(86400), "beginRefreshAt": at(43200),
        "conditions": [{"type": "Issued", "status": "True", "reason": "Issued",
                        "message": "issued by the test signer", "lastTransitionTime": at(0)}],
    }})
    .to_string();
    let patch = |body: &str| {
        kubectl(
            &dir,
            &[
                "patch",
                "podcertificaterequest",
                &name,
                "-n",
                "shop",
                "--subresource=status",
                "--type=merge",
                "-p",
                body,
            ],
        )
    };
    let first = patch(&issued);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let state = kubectl(
        &dir,
        &[
            "get",
            "pcr",
            &name,
            "-n",
            "shop",
            "-o",
            "jsonpath={.status.conditions[0].type}",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&state.stdout), "Issued");
    let denied = issued.replace("Issued", "Denied");
    let refused = patch(&denied);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("immutable once it is Issued"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
