//! The stand-in as the real `kubectl` sees it (`/usr/bin/kubectl`, on the
//! image), a client none of us wrote: discovery, `get` with its columns,
//! `-o yaml`, selectors, a bounded `get -w`, client-side and server-side
//! `apply`, a stale `replace` (409), `delete`, `create token`, `auth can-i`
//! (`--list` too) and `auth whoami` (sent as protobuf), `version`, and a
//! restart with the state directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a test failure"
)]

use std::process::Command;

use podseal_dev_cluster::{Config, ContainerImage, DevCluster, PodTemplate};

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
        .arg(format!(
            "--cache-dir={}",
            dir.path().join("cache").display()
        ))
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

/// kubectl failed (exit 1) and said each of `needles` on stderr.
#[track_caller]
fn refused_saying(output: &std::process::Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "no {needle:?} in: {stderr}");
    }
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

/// Writes `contents` to a file in a new directory kept by the caller.
fn manifest(dir: &tempfile::TempDir, name: &str, contents: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The stand-in with one running pod `shop/api-0` (image by digest).
async fn cluster_with_a_pod() -> DevCluster {
    let cluster = DevCluster::start(Config::default()).await.unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    cluster
        .handle()
        .create_pod(&PodTemplate {
            namespace: "shop".into(),
            name: "api-0".into(),
            service_account: "api".into(),
            labels: [("app".to_owned(), "api".to_owned())].into(),
            init_containers: vec![],
            sidecars: vec![],
            containers: vec![ContainerImage {
                name: "api".into(),
                image: "registry.example/shop/api:1.4".into(),
                digest: Some(digest),
                env: Default::default(),
            }],
            image_volumes: vec![],
            node: None,
        })
        .unwrap();
    cluster.handle().mark_running("shop", "api-0").unwrap();
    cluster
}

/// `kubectl get pods -A` with the read-only token prints the columns a
/// real cluster prints (a `Table` from the server), `-o yaml` the pod
/// itself, and `get secrets -A` is refused in kube-apiserver's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_pods_as_from_a_real_cluster_and_the_reader_no_secrets() {
    let cluster = cluster_with_a_pod().await;
    let reader = cluster.reader_token();
    let table = kubectl(&cluster, reader, &["get", "pods", "-A"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..5],
        ["shop", "api-0", "1/1", "Running", "0"],
        "{table}"
    );
    let wide = kubectl(
        &cluster,
        reader,
        &["get", "pods", "-n", "shop", "-o", "wide"],
    )
    .await;
    assert!(wide.lines().next().unwrap().contains("NODE"), "{wide}");
    assert!(wide.contains("dev-node-1"), "{wide}");

    let yaml = kubectl(
        &cluster,
        reader,
        &["get", "pod", "api-0", "-n", "shop", "-o", "yaml"],
    )
    .await;
    let pod: k8s_openapi::api::core::v1::Pod = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("api-0"));
    let by_label = kubectl(
        &cluster,
        reader,
        &["get", "pods", "-A", "-l", "app in (api,web)", "-o", "name"],
    )
    .await;
    assert_eq!(by_label.trim(), "pod/api-0");
    let by_field = kubectl(
        &cluster,
        reader,
        &[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "status.phase!=Running",
            "-o",
            "name",
        ],
    )
    .await;
    assert_eq!(by_field.trim(), "");

    let refused = kubectl_output(&cluster, reader, &["get", "secrets", "-A"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim_end(),
        format!(
            "Error from server (Forbidden): secrets is forbidden: User \"{}\" cannot list resource \"secrets\" in API group \"\" at the cluster scope",
            podseal_dev_cluster::READER_USER
        )
    );
}

/// A bounded `kubectl get pods -w`: the pod created while it watches
/// appears as a new row, within a deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_watch_shows_a_pod_created_while_it_watches() {
    use std::io::BufRead as _;
    let cluster = cluster_with_a_pod().await;
    let dir = tempfile::TempDir::new().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cluster.ca_pem()).unwrap();
    let mut watch = Command::new("kubectl")
        .env("KUBECONFIG", dir.path().join("none"))
        .arg(format!("--server={}", cluster.url()))
        .arg(format!("--certificate-authority={}", ca.display()))
        .arg(format!("--token={}", cluster.reader_token()))
        .args(["get", "pods", "-n", "shop", "-w"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let next = |what: &str| loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = seen
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("kubectl get -w printed no {what} within 20 s"));
        if line.contains(what) {
            return line;
        }
    };
    assert!(next("api-0").contains("Running"));
    let mut template =
        podseal_dev_cluster::pods::template_of(&cluster.handle().pod("shop", "api-0").unwrap())
            .unwrap();
    template.name = "api-1".into();
    cluster.handle().create_pod(&template).unwrap();
    let row: Vec<String> = next("api-1")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(row[..4], ["api-1", "0/1", "Pending", "0"]);
    watch.kill().unwrap();
    watch.wait().unwrap();
}

/// `kubectl apply -f` twice (client-side: create, then a strategic merge
/// patch computed from the last-applied annotation), `apply
/// --server-side` with a conflict between field managers and
/// `--force-conflicts`, a `replace` from a stale resourceVersion (409),
/// and `delete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_replaces_and_deletes_as_against_kube_apiserver() {
    let cluster = DevCluster::start(Config::default()).await.unwrap();
    let admin = cluster.admin_token();
    let dir = tempfile::TempDir::new().unwrap();
    let secret = |value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: default\n  labels: {{app: shop}}\ntype: Opaque\ndata:\n  password: {value}\n"
        )
    };
    let first = manifest(&dir, "first.yaml", &secret("b25l"));
    assert_eq!(
        kubectl(&cluster, admin, &["apply", "-f", &first])
            .await
            .trim(),
        "secret/db created"
    );
    let second = manifest(&dir, "second.yaml", &secret("dHdv"));
    assert_eq!(
        kubectl(&cluster, admin, &["apply", "-f", &second])
            .await
            .trim(),
        "secret/db configured"
    );
    assert_eq!(
        kubectl(&cluster, admin, &["apply", "-f", &second])
            .await
            .trim(),
        "secret/db unchanged"
    );
    let yaml = kubectl(&cluster, admin, &["get", "secret", "db", "-o", "yaml"]).await;
    let stored: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(stored["data"]["password"], "dHdv");
    let annotation =
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap();
    let last: serde_json::Value = serde_json::from_str(annotation).unwrap();
    assert_eq!(last["data"]["password"], "dHdv");

    // A strict server: a field the schema does not declare is refused.
    let unknown = manifest(
        &dir,
        "unknown.yaml",
        &secret("dHdv").replace("type: Opaque", "type: Opaque\nflavour: mint"),
    );
    let refused = kubectl_output(&cluster, admin, &["apply", "-f", &unknown]).await;
    refused_saying(
        &refused,
        &["strict decoding error: unknown field \"flavour\""],
    );

    let config = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: default\ndata:\n  level: \"{value}\"\n"
        )
    };
    let mine = manifest(&dir, "mine.yaml", &config("1"));
    let theirs = manifest(&dir, "theirs.yaml", &config("2"));
    assert_eq!(
        kubectl(&cluster, admin, &["apply", "--server-side", "-f", &mine])
            .await
            .trim(),
        "configmap/cfg serverside-applied"
    );
    let conflict = kubectl_output(
        &cluster,
        admin,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &theirs,
        ],
    )
    .await;
    refused_saying(
        &conflict,
        &["Apply failed with 1 conflict: conflict with \"kubectl\" using v1: .data.level"],
    );
    kubectl(
        &cluster,
        admin,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=other",
            "-f",
            &theirs,
        ],
    )
    .await;
    let managers = kubectl(
        &cluster,
        admin,
        &[
            "get",
            "cm",
            "cfg",
            "-o",
            "jsonpath={.data.level} {.metadata.managedFields[*].manager}",
            "--show-managed-fields",
        ],
    )
    .await;
    assert_eq!(managers, "2 other");

    let stale = kubectl(&cluster, admin, &["get", "secret", "db", "-o", "json"]).await;
    let stale = manifest(&dir, "stale.json", &stale);
    kubectl(&cluster, admin, &["label", "secret", "db", "tier=backend"]).await;
    let replaced = kubectl_output(&cluster, admin, &["replace", "-f", &stale]).await;
    refused_saying(
        &replaced,
        &[
            "Error from server (Conflict): error when replacing \"",
            "Operation cannot be fulfilled on secrets \"db\": the object has been modified; please apply your changes to the latest version and try again",
        ],
    );

    assert_eq!(
        kubectl(&cluster, admin, &["delete", "secret", "db"])
            .await
            .trim(),
        "secret \"db\" deleted"
    );
    let gone = kubectl_output(&cluster, admin, &["get", "secret", "db"]).await;
    assert_eq!(
        String::from_utf8_lossy(&gone.stderr).trim_end(),
        "Error from server (NotFound): secrets \"db\" not found"
    );
    // Namespaces are real: nothing is stored in one that does not exist.
    let elsewhere = manifest(
        &dir,
        "elsewhere.yaml",
        &secret("b25l").replace("default", "nowhere"),
    );
    let nowhere = kubectl_output(&cluster, admin, &["apply", "-f", &elsewhere]).await;
    refused_saying(&nowhere, &["namespaces \"nowhere\" not found"]);
}

/// `kubectl create token` (sent as protobuf) for the `podseal` audience,
/// plain and bound to a pod: the claims a real API server writes, signed
/// with a key of the stand-in's JWKS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_token_issues_pod_bound_tokens_for_podseal() {
    use base64::Engine as _;
    let cluster = cluster_with_a_pod().await;
    let admin = cluster.admin_token();
    let claims = |token: &str| -> serde_json::Value {
        let payload = token.trim().split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    let plain = kubectl(
        &cluster,
        admin,
        &[
            "create",
            "token",
            "api",
            "-n",
            "shop",
            "--audience",
            "podseal",
        ],
    )
    .await;
    let plain = claims(&plain);
    assert_eq!(plain["aud"], serde_json::json!(["podseal"]));
    assert_eq!(plain["sub"], "system:serviceaccount:shop:api");
    assert_eq!(
        plain["exp"].as_i64().unwrap() - plain["iat"].as_i64().unwrap(),
        3600
    );
    let bound = kubectl(
        &cluster,
        admin,
        &[
            "create",
            "token",
            "api",
            "-n",
            "shop",
            "--audience",
            "podseal",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "api-0",
            "--duration",
            "15m",
        ],
    )
    .await;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(bound.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(
        cluster
            .handle()
            .jwks()
            .keys
            .iter()
            .any(|k| header["kid"] == k.kid.as_str())
    );
    let bound = claims(&bound);
    let pod = cluster.handle().pod("shop", "api-0").unwrap();
    assert_eq!(
        bound["kubernetes.io"]["pod"]["uid"],
        pod.metadata.uid.unwrap().as_str()
    );
    assert_eq!(
        bound["exp"].as_i64().unwrap() - bound["iat"].as_i64().unwrap(),
        900
    );
    let missing = kubectl_output(
        &cluster,
        admin,
        &["create", "token", "nobody", "-n", "shop"],
    )
    .await;
    refused_saying(&missing, &["serviceaccounts \"nobody\" not found"]);
}

/// `kubectl auth can-i` (an access review, sent as protobuf) and `kubectl
/// auth whoami` answer for each token as RBAC would for its bindings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_and_whoami_answer_for_each_token() {
    let cluster = DevCluster::start(Config::default()).await.unwrap();
    let reader = cluster.reader_token();
    let can_i = |args: &'static [&'static str]| {
        let cluster = &cluster;
        async move {
            let output = kubectl_output(cluster, reader, args).await;
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            )
        }
    };
    assert_eq!(
        can_i(&["auth", "can-i", "watch", "pods", "-A"]).await,
        (Some(0), "yes".into())
    );
    assert_eq!(
        can_i(&["auth", "can-i", "get", "secrets", "-n", "shop"]).await,
        (Some(1), "no".into())
    );
    assert_eq!(
        can_i(&["auth", "can-i", "create", "serviceaccounts/token"]).await,
        (Some(1), "no".into())
    );
    assert_eq!(
        can_i(&["auth", "can-i", "get", "/version"]).await,
        (Some(0), "yes".into())
    );
    let admin = kubectl(
        &cluster,
        cluster.admin_token(),
        &["auth", "can-i", "delete", "deployments.apps"],
    )
    .await;
    assert_eq!(admin.trim(), "yes");
    let whoami = kubectl(
        &cluster,
        reader,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )
    .await;
    assert_eq!(whoami, podseal_dev_cluster::READER_USER);
}

/// Stopped and started again with its state directory, the stand-in is
/// the same cluster: the same address, CA, token signing keys and bearer
/// tokens, the objects and their resourceVersions; kubectl with the old
/// connection files reads what was stored before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_stand_in_keeps_its_ca_keys_tokens_and_objects() {
    let state = tempfile::TempDir::new().unwrap();
    let config = || Config {
        state_dir: Some(state.path().join("state")),
        ..Config::default()
    };
    let first = DevCluster::start(config()).await.unwrap();
    let admin = first.admin_token().to_owned();
    let (url, ca, reader, jwks) = (
        first.url().to_owned(),
        first.ca_pem().to_owned(),
        first.reader_token().to_owned(),
        first.handle().jwks(),
    );
    let dir = tempfile::TempDir::new().unwrap();
    let cm = manifest(
        &dir,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: default\ndata:\n  a: b\n",
    );
    kubectl(&first, &admin, &["apply", "-f", &cm]).await;
    let before = kubectl(
        &first,
        &admin,
        &[
            "get",
            "cm",
            "kept",
            "-o",
            "jsonpath={.metadata.uid} {.metadata.resourceVersion}",
        ],
    )
    .await;
    first.stop().await;

    let second = DevCluster::start(config()).await.unwrap();
    assert_eq!(
        (
            second.url(),
            second.ca_pem(),
            second.reader_token(),
            second.admin_token()
        ),
        (url.as_str(), ca.as_str(), reader.as_str(), admin.as_str())
    );
    assert_eq!(second.handle().jwks(), jwks);
    let after = kubectl(
        &second,
        &admin,
        &[
            "get",
            "cm",
            "kept",
            "-o",
            "jsonpath={.metadata.uid} {.metadata.resourceVersion}",
        ],
    )
    .await;
    assert_eq!(after, before);
    // The counter goes on from where it was: a new write is later.
    kubectl(&second, &admin, &["label", "cm", "kept", "x=y"]).await;
    let rv: u64 = kubectl(
        &second,
        &admin,
        &[
            "get",
            "cm",
            "kept",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
    )
    .await
    .parse()
    .unwrap();
    assert!(rv > before.split(' ').nth(1).unwrap().parse().unwrap());
    // reset-state keeps its meaning: an empty cluster, kept empty.
    second.handle().reset_state().unwrap();
    second.stop().await;
    let third = DevCluster::start(config()).await.unwrap();
    let gone = kubectl_output(&third, &admin, &["get", "cm", "kept"]).await;
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(third.ca_pem(), ca);
}

/// `kubectl create namespace|secret|configmap|serviceaccount` send their
/// objects as protobuf, which the stand-in reads; a kind it does not read
/// as protobuf is a JSON `Status` 415 that says what to do instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_sends_protobuf_the_stand_in_reads() {
    let cluster = DevCluster::start(Config::default()).await.unwrap();
    let admin = cluster.admin_token();
    for (args, said) in [
        (
            &["create", "namespace", "team"][..],
            "namespace/team created",
        ),
        (
            &[
                "create",
                "secret",
                "generic",
                "db",
                "-n",
                "team",
                "--from-literal=password=hunter2",
                "--from-literal=user=app",
            ],
            "secret/db created",
        ),
        (
            &[
                "create",
                "configmap",
                "cfg",
                "-n",
                "team",
                "--from-literal=level=debug",
            ],
            "configmap/cfg created",
        ),
        (
            &["create", "serviceaccount", "robot", "-n", "team"],
            "serviceaccount/robot created",
        ),
    ] {
        assert_eq!(kubectl(&cluster, admin, args).await.trim(), said);
    }
    let secret = kubectl(
        &cluster,
        admin,
        &["get", "secret", "db", "-n", "team", "-o", "json"],
    )
    .await;
    let secret: serde_json::Value = serde_json::from_str(&secret).unwrap();
    assert_eq!(
        secret["data"],
        serde_json::json!({"password": "aHVudGVyMg==", "user": "YXBw"})
    );
    assert_eq!(secret["type"], "Opaque");
    let namespace = kubectl(&cluster, admin, &["get", "namespace", "team", "-o", "json"]).await;
    let namespace: serde_json::Value = serde_json::from_str(&namespace).unwrap();
    assert_eq!(
        namespace["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );
    assert!(
        namespace["metadata"].get("generateName").is_none(),
        "{namespace}"
    );
    let level = kubectl(
        &cluster,
        admin,
        &[
            "get",
            "cm",
            "cfg",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.level}",
        ],
    )
    .await;
    assert_eq!(level, "debug");

    let refused = kubectl_output(
        &cluster,
        admin,
        &["create", "deployment", "web", "--image=nginx", "-n", "team"],
    )
    .await;
    refused_saying(&refused, &["not a Deployment", "kubectl apply -f"]);
}

/// Discovery lists every served kind as kubectl shows it
/// (`kubectl api-resources`), with short names, scope and versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_discovers_the_served_kinds() {
    let cluster = DevCluster::start(Config::default()).await.unwrap();
    let resources = kubectl(
        &cluster,
        cluster.reader_token(),
        &["api-resources", "--no-headers"],
    )
    .await;
    let row = |name: &str| -> Vec<String> {
        resources
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in\n{resources}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("pods"), ["pods", "po", "v1", "true", "Pod"]);
    assert_eq!(row("secrets"), ["secrets", "v1", "true", "Secret"]);
    assert_eq!(
        row("deployments"),
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    assert_eq!(
        row("podcertificaterequests"),
        [
            "podcertificaterequests",
            "pcr",
            "certificates.k8s.io/v1",
            "true",
            "PodCertificateRequest"
        ]
    );
    assert_eq!(
        row("mutatingwebhookconfigurations"),
        [
            "mutatingwebhookconfigurations",
            "admissionregistration.k8s.io/v1",
            "false",
            "MutatingWebhookConfiguration"
        ]
    );
    for name in [
        "clustertrustbundles",
        "networkpolicies",
        "rolebindings",
        "clusterrolebindings",
        "cronjobs",
        "jobs",
        "statefulsets",
        "daemonsets",
        "configmaps",
        "serviceaccounts",
        "namespaces",
        "mutatingadmissionpolicies",
    ] {
        row(name);
    }
    let versions = kubectl(&cluster, cluster.reader_token(), &["api-versions"]).await;
    assert!(
        versions.lines().any(|l| l == "certificates.k8s.io/v1beta1"),
        "{versions}"
    );
}
