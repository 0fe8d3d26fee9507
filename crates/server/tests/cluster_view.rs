//! The server's Kubernetes client code against the local stand-in: raw
//! `kube::runtime::watcher` semantics, JSON shapes, RBAC refusals, token
//! claims, and the pod view's facts, events and bounded staleness.
//!
//! Waits are on conditions with deadlines, never bare sleeps.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::runtime::watcher;
use podseal_dev_cluster::{Config, ContainerImage, DevCluster, PodTemplate};
use podseal_server::cluster::client::{ClusterRegistration, ReaderToken, kube_client};
use podseal_server::pod_view::{
    ContainerKind, PodEvent, PodView, ViewAnswer, ViewConfig, pod_facts,
};
use tokio::sync::mpsc;

mod support;

use support::{Cluster, digest};

const DEADLINE: Duration = Duration::from_secs(20);

fn template(name: &str) -> PodTemplate {
    PodTemplate {
        namespace: "shop".into(),
        name: name.into(),
        service_account: "api".into(),
        labels: [("app".to_owned(), "api".to_owned())].into(),
        sidecars: vec![],
        image_volumes: vec![],
        node: None,
        init_containers: vec![ContainerImage {
            name: "migrate".into(),
            image: "registry.example/shop/migrate:1".into(),
            digest: Some(digest('1')),
            env: Default::default(),
        }],
        containers: vec![
            ContainerImage {
                name: "api".into(),
                image: "registry.example/shop/api:1.4".into(),
                digest: Some(digest('a')),
                env: Default::default(),
            },
            ContainerImage {
                name: "proxy".into(),
                image: "registry.example/mesh/proxy:2".into(),
                digest: Some(digest('b')),
                env: Default::default(),
            },
        ],
    }
}

fn debugger() -> ContainerImage {
    ContainerImage {
        name: "debugger-x7k2p".into(),
        image: "busybox:1.36".into(),
        digest: Some(digest('d')),
        env: Default::default(),
    }
}

/// Polls `condition` until it holds, failing the test at the deadline.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        ticks.tick().await;
    }
}

/// The next item on `rx` that `pick` accepts, within the deadline.
async fn next_matching<T: std::fmt::Debug, R>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    what: &str,
    mut pick: impl FnMut(&T) -> Option<R>,
) -> R {
    let wait = async {
        loop {
            let item = rx
                .recv()
                .await
                .unwrap_or_else(|| panic!("stream ended waiting for {what}"));
            if let Some(found) = pick(&item) {
                return found;
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn spawn_watcher(client: kube::Client) -> mpsc::UnboundedReceiver<watcher::Event<Pod>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let api: Api<Pod> = Api::all(client);
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(item) = stream.next().await {
            // Errors (connection dropped) are retried by the next poll.
            if let Ok(event) = item
                && tx.send(event).is_err()
            {
                return;
            }
        }
    });
    rx
}

fn applied(event: &watcher::Event<Pod>) -> Option<&Pod> {
    match event {
        watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => Some(pod),
        _ => None,
    }
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap()
}

#[tokio::test]
async fn watcher_sees_add_modify_ephemeral_recreate_delete() {
    let cluster = Cluster::start().await;
    let handle = cluster.dev.handle();
    let mut events = spawn_watcher(cluster.reader());
    next_matching(&mut events, "initial list", |e| {
        matches!(e, watcher::Event::InitDone).then_some(())
    })
    .await;

    let created = handle.create_pod(&template("api-0")).unwrap();
    let seen = next_matching(&mut events, "ADDED", |e| applied(e).cloned()).await;
    assert_eq!(uid(&seen), uid(&created));
    assert_eq!(seen.status.unwrap().phase.as_deref(), Some("Pending"));

    handle.mark_running("shop", "api-0").unwrap();
    let running = next_matching(&mut events, "MODIFIED to Running", |e| applied(e).cloned()).await;
    let facts = pod_facts(&running);
    assert!(facts.is_running());
    assert!(
        facts.containers.iter().all(|c| c.digest.is_some()),
        "{facts:?}"
    );

    handle
        .add_ephemeral_container("shop", "api-0", &debugger())
        .unwrap();
    let debugged = next_matching(&mut events, "ephemeral container", |e| applied(e).cloned()).await;
    let ephemeral: Vec<_> = pod_facts(&debugged)
        .containers
        .into_iter()
        .filter(|c| c.kind == ContainerKind::Ephemeral)
        .collect();
    assert_eq!(ephemeral.len(), 1);
    assert_eq!(ephemeral[0].digest.as_deref(), Some(digest('d').as_str()));

    let recreated = handle.recreate_pod("shop", "api-0").unwrap();
    let deleted = next_matching(&mut events, "DELETED of the old uid", |e| match e {
        watcher::Event::Delete(pod) => Some(uid(pod)),
        _ => None,
    })
    .await;
    assert_eq!(deleted, uid(&created));
    let again = next_matching(&mut events, "ADDED of the new uid", |e| applied(e).cloned()).await;
    assert_eq!(uid(&again), uid(&recreated));
    assert_ne!(uid(&again), uid(&created));

    handle.delete_pod("shop", "api-0").unwrap();
    let gone = next_matching(&mut events, "final DELETED", |e| match e {
        watcher::Event::Delete(pod) => Some(uid(pod)),
        _ => None,
    })
    .await;
    assert_eq!(gone, uid(&recreated));
}

#[tokio::test]
async fn a_too_old_resource_version_gets_410_and_the_watcher_relists() {
    let cluster = Cluster::start().await;
    let handle = cluster.dev.handle();
    handle.create_pod(&template("old")).unwrap();

    // The raw protocol: an ERROR event carrying a 410 Status.
    handle.compact_history();
    let api: Api<Pod> = Api::all(cluster.reader());
    let mut raw = std::pin::pin!(api.watch(&WatchParams::default(), "1").await.unwrap());
    match tokio::time::timeout(DEADLINE, raw.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // The watcher: its watch is cut, history is compacted while it is away,
    // and on return it must relist and see the world as it is now.
    let mut events = spawn_watcher(cluster.reader());
    next_matching(&mut events, "first list", |e| {
        matches!(e, watcher::Event::InitDone).then_some(())
    })
    .await;
    handle.pause();
    handle.delete_pod("shop", "old").unwrap();
    handle.create_pod(&template("new")).unwrap();
    handle.compact_history();
    handle.resume();
    next_matching(&mut events, "relist after 410", |e| {
        matches!(e, watcher::Event::Init).then_some(())
    })
    .await;
    let mut relisted = Vec::new();
    next_matching(&mut events, "end of relist", |e| match e {
        watcher::Event::InitApply(pod) => {
            relisted.push(pod.metadata.name.clone().unwrap());
            None
        }
        watcher::Event::InitDone => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(relisted, ["new"]);
}

#[tokio::test]
async fn every_body_round_trips_through_its_k8s_openapi_type() {
    let cluster = Cluster::start().await;
    let handle = cluster.dev.handle();
    handle.create_pod(&template("api-0")).unwrap();
    handle.mark_running("shop", "api-0").unwrap();
    handle
        .add_ephemeral_container("shop", "api-0", &debugger())
        .unwrap();
    let admin = cluster.admin();

    async fn body(
        client: &kube::Client,
        method: &str,
        path: &str,
        json: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let builder = http::Request::builder().method(method).uri(path);
        let request = match json {
            Some(json) => builder
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&json).unwrap()),
            None => builder.body(Vec::new()),
        };
        let text = client.request_text(request.unwrap()).await;
        let text = match text {
            Ok(text) => text,
            Err(kube::Error::Api(status)) => return serde_json::to_value(status).unwrap(),
            Err(e) => panic!("{method} {path}: {e}"),
        };
        serde_json::from_str(&text).unwrap()
    }
    fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(
        value: &serde_json::Value,
        what: &str,
    ) {
        let typed: T = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{what}: {e}\n{value}"));
        assert_eq!(
            &serde_json::to_value(typed).unwrap(),
            value,
            "{what} changed in a round trip"
        );
    }
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    round_trips::<Pod>(
        &body(&admin, "GET", "/api/v1/namespaces/shop/pods/api-0", None).await,
        "pod",
    );
    round_trips::<k8s_openapi::List<Pod>>(
        &body(&admin, "GET", "/api/v1/pods", None).await,
        "pod list",
    );
    round_trips::<k8s_openapi::List<Pod>>(&body(&admin, "GET", "/api/v1/namespaces/shop/pods?labelSelector=app%3Dapi&fieldSelector=status.phase%3DRunning", None).await, "filtered list");
    round_trips::<ServiceAccount>(
        &body(
            &admin,
            "GET",
            "/api/v1/namespaces/shop/serviceaccounts/api",
            None,
        )
        .await,
        "service account",
    );
    round_trips::<k8s_openapi::List<ServiceAccount>>(
        &body(&admin, "GET", "/api/v1/serviceaccounts", None).await,
        "service account list",
    );
    let request = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["podseal"], "expirationSeconds": 600, "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "api-0"}}
    });
    round_trips::<TokenRequest>(
        &body(
            &admin,
            "POST",
            "/api/v1/namespaces/shop/serviceaccounts/api/token",
            Some(request),
        )
        .await,
        "token request",
    );
    let missing = body(&admin, "GET", "/api/v1/namespaces/shop/pods/nope", None).await;
    assert_eq!(missing["code"], 404);

    // Watch events, line by line, as k8s-openapi's WatchEvent<Pod>.
    let response = reqwest_like_watch(
        &admin,
        "/api/v1/namespaces/shop/pods?watch=true&allowWatchBookmarks=true&timeoutSeconds=1",
    )
    .await;
    let mut kinds = Vec::new();
    for line in response.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        kinds.push(value["type"].as_str().unwrap().to_owned());
        if value["type"] == "BOOKMARK" {
            // As the API server sends it: the object keeps kind and apiVersion.
            assert_eq!(
                (
                    value["object"]["kind"].as_str(),
                    value["object"]["apiVersion"].as_str()
                ),
                (Some("Pod"), Some("v1"))
            );
            let event: k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent<Pod> =
                serde_json::from_value(value).unwrap();
            assert!(matches!(
                event,
                k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent::Bookmark { .. }
            ));
        } else {
            round_trips::<k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent<Pod>>(
                &value,
                "watch event",
            );
        }
    }
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("ADDED"),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k == "BOOKMARK"),
        "a bookmark within a second: {kinds:?}"
    );
}

/// Reads a whole (short) watch response as text.
async fn reqwest_like_watch(client: &kube::Client, path: &str) -> String {
    let request = http::Request::builder().uri(path).body(Vec::new()).unwrap();
    let mut lines = std::pin::pin!(client.request_stream(request).await.unwrap());
    let mut out = Vec::new();
    use futures_util::AsyncReadExt as _;
    tokio::time::timeout(DEADLINE, lines.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn the_read_only_identity_gets_403_for_everything_but_pod_reads() {
    let cluster = Cluster::start().await;
    cluster.dev.handle().create_pod(&template("api-0")).unwrap();
    let reader = cluster.reader();
    // And the version, which kube-apiserver shows every user
    // (`system:public-info-viewer`).
    let allowed = [
        ("GET", "/api/v1/pods"),
        ("GET", "/api/v1/namespaces/shop/pods"),
        ("GET", "/api/v1/namespaces/shop/pods/api-0"),
        ("GET", "/version"),
    ];
    for (method, path) in allowed {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .body(Vec::new())
            .unwrap();
        reader
            .request_text(request)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    }
    let refused = [
        ("POST", "/api/v1/namespaces/shop/pods"),
        ("DELETE", "/api/v1/namespaces/shop/pods/api-0"),
        ("PATCH", "/api/v1/namespaces/shop/pods/api-0"),
        ("GET", "/api/v1/namespaces/shop/pods/api-0/log"),
        (
            "POST",
            "/api/v1/namespaces/shop/pods/api-0/ephemeralcontainers",
        ),
        ("GET", "/api/v1/namespaces/shop/secrets"),
        ("GET", "/api/v1/namespaces/shop/secrets/db"),
        ("GET", "/api/v1/serviceaccounts"),
        ("GET", "/api/v1/namespaces/shop/serviceaccounts/api"),
        ("POST", "/api/v1/namespaces/shop/serviceaccounts/api/token"),
        ("GET", "/api/v1/namespaces"),
        ("POST", "/dev-cluster/v1/pods"),
    ];
    for (method, path) in refused {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(b"{}".to_vec())
            .unwrap();
        match reader.request_text(request).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(
                    (status.code, status.reason.as_str()),
                    (403, "Forbidden"),
                    "{method} {path}"
                );
                assert!(
                    status.message.contains("podseal-reader"),
                    "{}",
                    status.message
                );
            }
            other => panic!("{method} {path}: expected 403, got {other:?}"),
        }
    }
    // No token, or a wrong one: 401.
    std::fs::write(cluster.dir.path().join("wrong.token"), "not-a-token").unwrap();
    let stranger = cluster.client_with("wrong.token");
    let request = http::Request::builder()
        .uri("/api/v1/pods")
        .body(Vec::new())
        .unwrap();
    match stranger.request_text(request).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
async fn token_claims_have_the_documented_shape() {
    use base64::Engine as _;
    let cluster = Cluster::start().await;
    let handle = cluster.dev.handle();
    let pod = handle.create_pod(&template("api-0")).unwrap();
    let (token, _) = handle
        .issue_token("shop", "api", &["podseal".into()], 600, Some("api-0"))
        .unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();

    let documented = shared_json("kubernetes/projected-sa-token-claims.json")["claims"].clone();
    // Claims a real API server adds only behind feature gates or for kubelet-projected tokens.
    let optional = ["kubernetes.io.warnafter"];
    let ours = key_paths(&claims, "");
    let theirs = key_paths(&documented, "");
    for path in &theirs {
        assert!(
            ours.contains(path) || optional.contains(&path.as_str()),
            "claim {path} is missing"
        );
    }
    for path in &ours {
        assert!(
            theirs.contains(path),
            "claim {path} is not in the documented shape"
        );
    }
    assert_eq!(claims["sub"], "system:serviceaccount:shop:api");
    assert_eq!(claims["aud"], serde_json::json!(["podseal"]));
    assert_eq!(
        claims["kubernetes.io"]["pod"]["uid"],
        serde_json::json!(uid(&pod))
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    assert!(handle.jwks().keys.iter().any(|k| k.kid == header["kid"]));

    // OIDC discovery and JWKS have exactly the documented members.
    let served = fetch_json(&cluster, "/.well-known/openid-configuration").await;
    let typed: podseal_dev_cluster::issuer::OidcDiscovery =
        serde_json::from_value(served.clone()).unwrap();
    let discovery = serde_json::to_value(typed).unwrap();
    assert_eq!(discovery, served);
    assert_eq!(
        key_paths(&discovery, ""),
        key_paths(
            &shared_json("kubernetes/oidc-discovery.json")["document"],
            ""
        )
    );
    let jwks = fetch_json(&cluster, "/openid/v1/jwks").await;
    let documented_rsa = &shared_json("kubernetes/jwks.json")["document"]["keys"][0];
    assert_eq!(
        key_paths(&jwks["keys"][0], ""),
        key_paths(documented_rsa, "")
    );
}

async fn fetch_json(cluster: &Cluster, path: &str) -> serde_json::Value {
    let request = http::Request::builder().uri(path).body(Vec::new()).unwrap();
    serde_json::from_str(&cluster.reader().request_text(request).await.unwrap()).unwrap()
}

use podseal_test_support::testdata::shared_json;

/// Dotted paths of every object key (arrays are leaves).
fn key_paths(value: &serde_json::Value, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.extend(key_paths(v, &path));
            out.push(path);
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn the_view_answers_facts_and_reports_changes() {
    let cluster = Cluster::start().await;
    let handle = cluster.dev.handle();
    let view = PodView::start(
        cluster.reader(),
        ViewConfig::with_max_staleness(Duration::from_secs(2)),
    );
    let mut changes = view.subscribe();
    eventually("the view is fresh", || view.is_fresh()).await;

    assert_eq!(view.lookup("shop", "api-0").await, ViewAnswer::Absent);
    let created = handle.create_pod(&template("api-0")).unwrap();
    handle.mark_running("shop", "api-0").unwrap();
    let facts = loop {
        if let ViewAnswer::Present(facts) = view.lookup("shop", "api-0").await
            && facts.is_running()
        {
            break facts;
        }
        changes.recv().await.unwrap();
    };
    assert_eq!(facts.uid, uid(&created));
    assert_eq!(facts.service_account.as_deref(), Some("api"));
    let kinds: Vec<_> = facts
        .containers
        .iter()
        .map(|c| (c.kind, c.name.as_str(), c.digest.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ContainerKind::Init, "migrate", Some(digest('1'))),
            (ContainerKind::App, "api", Some(digest('a'))),
            (ContainerKind::App, "proxy", Some(digest('b'))),
        ]
    );

    handle
        .add_ephemeral_container("shop", "api-0", &debugger())
        .unwrap();
    let changed = tokio::time::timeout(DEADLINE, async {
        loop {
            if let PodEvent::Changed { uid, .. } = changes.recv().await.unwrap() {
                break uid;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(changed, uid(&created));
    let ViewAnswer::Present(debugged) = view.lookup("shop", "api-0").await else {
        panic!("pod vanished")
    };
    assert!(
        debugged
            .containers
            .iter()
            .any(|c| c.kind == ContainerKind::Ephemeral && c.digest == Some(digest('d')))
    );

    let recreated = handle.recreate_pod("shop", "api-0").unwrap();
    let revoked = tokio::time::timeout(DEADLINE, async {
        loop {
            if let PodEvent::Deleted { uid, .. } = changes.recv().await.unwrap() {
                break uid;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        revoked,
        uid(&created),
        "recreating the pod ends the old uid"
    );
    eventually_present_with_uid(&view, &uid(&recreated)).await;

    handle.delete_pod("shop", "api-0").unwrap();
    let deleted = tokio::time::timeout(DEADLINE, async {
        loop {
            if let PodEvent::Deleted { uid, .. } = changes.recv().await.unwrap() {
                break uid;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(deleted, uid(&recreated));
    assert_eq!(view.lookup("shop", "api-0").await, ViewAnswer::Absent);
}

async fn eventually_present_with_uid(view: &PodView, expected: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    loop {
        if let ViewAnswer::Present(facts) = view.lookup("shop", "api-0").await
            && facts.uid == expected
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the view never showed uid {expected}"
        );
        ticks.tick().await;
    }
}

#[tokio::test]
async fn the_view_goes_unknown_when_the_api_stops_answering_and_recovers() {
    let cluster = Cluster::start().await;
    let handle = cluster.dev.handle();
    handle.create_pod(&template("api-0")).unwrap();
    let view = PodView::start(
        cluster.reader(),
        ViewConfig::with_max_staleness(Duration::from_millis(600)),
    );
    eventually("the view is fresh", || view.is_fresh()).await;
    assert!(matches!(
        view.lookup("shop", "api-0").await,
        ViewAnswer::Present(_)
    ));

    handle.pause();
    eventually("the view reports unknown", || !view.is_fresh()).await;
    match view.lookup("shop", "api-0").await {
        ViewAnswer::Unknown { reason } => assert!(!reason.is_empty()),
        other => panic!("a stale view answered {other:?}"),
    }

    handle.resume();
    eventually("the view recovers", || view.is_fresh()).await;
    assert!(matches!(
        view.lookup("shop", "api-0").await,
        ViewAnswer::Present(_)
    ));
}

#[test]
fn facts_of_the_documented_pod_with_a_debug_container() {
    let pod: Pod = serde_json::from_value(
        shared_json("kubernetes/pod-with-ephemeral-containers.json")["pod"].clone(),
    )
    .unwrap();
    let facts = pod_facts(&pod);
    assert!(facts.is_running());
    assert_eq!(facts.uid, "778a530c-b3f4-47c0-9cd5-ab018fb64f33");
    let ephemeral: Vec<_> = facts
        .containers
        .iter()
        .filter(|c| c.kind == ContainerKind::Ephemeral)
        .collect();
    assert_eq!(ephemeral.len(), 1);
    assert!(
        facts
            .containers
            .iter()
            .filter(|c| c.kind == ContainerKind::App)
            .all(|c| c.digest.is_some())
    );
}

#[test]
fn rbac_document_grants_only_pod_reads() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let parts = yaml_documents("rbac.md");
    assert_eq!(parts.len(), 3);
    let _: k8s_openapi::api::core::v1::ServiceAccount = serde_saphyr::from_str(&parts[0]).unwrap();
    let role: ClusterRole = serde_saphyr::from_str(&parts[1]).unwrap();
    let binding: ClusterRoleBinding = serde_saphyr::from_str(&parts[2]).unwrap();
    let rules = role.rules.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].api_groups.as_deref(), Some(&[String::new()][..]));
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["pods".to_owned()][..])
    );
    assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
}

/// The YAML documents of the first yaml block in `docs/NAME`.
fn yaml_documents(name: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs")
            .join(name),
    )
    .unwrap();
    let yaml = doc
        .split("```yaml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    yaml.split("\n---\n").map(str::to_owned).collect()
}

#[test]
fn kubernetes_walkthrough_manifests_are_real_objects() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let parts = yaml_documents("kubernetes.md");
    assert_eq!(parts.len(), 4);
    let account: ServiceAccount = serde_saphyr::from_str(&parts[0]).unwrap();
    assert_eq!(account.automount_service_account_token, Some(false));
    let deployment: Deployment = serde_saphyr::from_str(&parts[1]).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("api"));
    let container = &pod.containers[0];
    assert!(container.image.as_deref().unwrap().contains("@sha256:"));
    let command = container.command.as_ref().unwrap();
    assert_eq!(command[0], "podseal-exec");
    let volumes = pod.volumes.unwrap();
    // Every capsule from a Secret is opened from the Secret and key the spec
    // names (issue 21): a secretKeyRef variable by `--from NAME=SECRET/KEY`,
    // a Secret volume mounted where `secret:SECRET/KEY` reads it.
    for env in container.env.iter().flatten() {
        if let Some(from) = env
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
        {
            let expected = format!("{}={}/{}", env.name, from.name, from.key);
            assert!(
                command
                    .windows(2)
                    .any(|w| w[0] == "--from" && w[1] == expected),
                "{command:?} lacks --from {expected}"
            );
        }
    }
    for volume in &volumes {
        if let Some(secret) = volume.secret.as_ref() {
            let name = secret.secret_name.as_deref().unwrap();
            let mount = container
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.name == volume.name)
                .unwrap();
            assert_eq!(mount.mount_path, format!("/etc/podseal/secrets/{name}"));
            assert!(
                command
                    .iter()
                    .any(|a| a.contains(&format!("=secret:{name}/"))),
                "{command:?} reads Secret {name} unchecked"
            );
        }
    }
    let token = volumes
        .iter()
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .find_map(|s| s.service_account_token.as_ref())
        .unwrap();
    assert_eq!(token.audience.as_deref(), Some("podseal"));
    assert!(volumes.iter().any(|v| {
        v.empty_dir
            .as_ref()
            .is_some_and(|e| e.medium.as_deref() == Some("Memory"))
    }));
    let egress: NetworkPolicy = serde_saphyr::from_str(&parts[2]).unwrap();
    assert!(
        egress.spec.unwrap().egress.unwrap()[0]
            .ports
            .as_ref()
            .unwrap()[0]
            .port
            .is_some()
    );
    let ingress: NetworkPolicy = serde_saphyr::from_str(&parts[3]).unwrap();
    let spec = ingress.spec.unwrap();
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);
    assert!(spec.ingress.is_some());
}

#[tokio::test]
async fn the_connection_trusts_only_the_registered_ca() {
    let cluster = Cluster::start().await;
    let other = DevCluster::start(Config::default()).await.unwrap();
    let registration = ClusterRegistration {
        name: "dev".into(),
        api_server_url: cluster.dev.url().into(),
        ca_pem: other.ca_pem().to_owned(),
        token: ReaderToken::new(cluster.dev.reader_token()),
    };
    let client = kube_client(&registration).unwrap();
    let api: Api<Pod> = Api::all(client);
    let refused = api
        .list(&kube::api::ListParams::default())
        .await
        .unwrap_err();
    assert!(
        !matches!(refused, kube::Error::Api(_)),
        "TLS must fail before any API answer: {refused}"
    );

    let plain_http = ClusterRegistration {
        api_server_url: cluster.dev.url().replace("https://", "http://"),
        ..registration.clone()
    };
    assert!(
        kube_client(&plain_http).is_err(),
        "only https:// is accepted"
    );
    let missing = ClusterRegistration {
        token: ReaderToken::default(),
        ..registration
    };
    let Err(error) = kube_client(&missing) else {
        panic!("a registration without a token was accepted")
    };
    assert!(error.to_string().contains("token file"), "{error}");
}
