//! `docs/openapi.yaml` is kept true: its paths, methods and response codes
//! are exactly the server's route table (`api::ROUTES`), and every route in
//! that table is one the router really serves (not the 404/405 fallback).
//! The HTTPS suite checks every status it sees is in the table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use podseal_core::audit::AuditKey;
use podseal_core::key_provider::KeyRing;
use podseal_server::admin::AdminService;
use podseal_server::api::{App, FALLBACK_STATUSES, ROUTES, router};
use podseal_server::audit_log::AuditLog;
use podseal_server::nonce::NonceIssuer;
use podseal_server::pod_view::ViewConfig;
use podseal_server::release::{ReleaseConfig, ReleaseService};
use podseal_server::storage::SqliteStorage;
use serde_json::Value;

type Operations = BTreeSet<(String, String, Vec<u16>)>;

fn documented() -> (Operations, Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let mut statuses: Vec<u16> = operation["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|code| code.parse().unwrap())
                .collect();
            statuses.sort_unstable();
            operations.insert((method.to_uppercase(), path.clone(), statuses));
        }
    }
    (operations, doc)
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_and_statuses_of_the_server() {
    let (documented, doc) = documented();
    let served: Operations = ROUTES
        .iter()
        .map(|r| {
            let mut statuses = r.statuses.to_vec();
            statuses.sort_unstable();
            (r.method.to_owned(), r.path.to_owned(), statuses)
        })
        .collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not documented: {missing:?}\ndocumented but not served: {extra:?}"
    );
    // Every $ref points at something that exists.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", reference.split('"').next().unwrap());
        assert!(doc.pointer(&pointer).is_some(), "dangling $ref {pointer}");
    }
    // Statuses any path answers are described once, not per operation.
    assert_eq!(FALLBACK_STATUSES, &[404, 405, 431]);
    assert!(
        doc.pointer("/components/responses/HeadersTooLarge")
            .is_some()
    );
}

/// The router over a fresh SQLite store (no cluster registered); the
/// store's directory lives as long as the router is used.
fn app() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::TempDir::new().unwrap();
    let storage = Arc::new(SqliteStorage::open(&dir.path().join("db")).unwrap());
    let audit = Arc::new(podseal_server::audit_log::AuditWriter::new(
        storage.clone(),
        podseal_core::clock::system(),
    ));
    let clusters = Arc::new(podseal_server::cluster::ClusterRegistry::new(
        storage.clone(),
        audit.clone(),
        ViewConfig::with_max_staleness(Duration::from_secs(5)),
        30,
    ));
    let release = Arc::new(ReleaseService::new(
        storage.clone(),
        clusters,
        audit,
        Arc::new(KeyRing::new()),
        NonceIssuer::new(&[1; 32], 60),
        ReleaseConfig::default(),
    ));
    let audit_log = Arc::new(AuditLog::new(
        storage,
        AuditKey::generate().unwrap(),
        podseal_core::audit::LogOrigin::new("test").unwrap(),
    ));
    let app = router(App {
        admin: Arc::new(AdminService::new(release.clone(), audit_log)),
        release,
        metrics: Arc::default(),
        refusals: Arc::default(),
    });
    (app, dir)
}

#[tokio::test]
async fn every_route_in_the_table_is_served() {
    use tower::ServiceExt as _;
    let (app, _dir) = app();
    for route in ROUTES {
        let path = route.path.replace('{', "x").replace('}', "");
        let request = http::Request::builder()
            .method(route.method)
            .uri(&path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let problem: Value = serde_json::from_slice(&body).unwrap_or_default();
        let fallback = problem["gate"] == "request"
            && (problem["reason"] == "not_found" || problem["reason"] == "method_not_allowed");
        assert!(
            !fallback,
            "{} {} is in ROUTES but the router does not serve it",
            route.method, route.path
        );
        assert!(
            route.statuses.contains(&status),
            "{} {} answered {status}, not in ROUTES",
            route.method,
            route.path
        );
    }
}

/// The document's `Gate` and `Reason` schemas list exactly the codes of the
/// Rust enums every part of podseal uses (server, audit records, metrics,
/// SDK), in the same order; and the problem schema refers to them.
#[test]
fn the_openapi_document_lists_exactly_the_gate_and_reason_codes() {
    let (_, doc) = documented();
    let listed = |schema: &str| -> Vec<String> {
        doc["components"]["schemas"][schema]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("components.schemas.{schema} has no enum"))
            .iter()
            .map(|code| code.as_str().unwrap().to_owned())
            .collect()
    };
    let gates: Vec<String> = podseal_core::reason::Gate::ALL
        .iter()
        .map(|g| g.code().to_owned())
        .collect();
    let reasons: Vec<String> = podseal_core::reason::Reason::ALL
        .iter()
        .map(|r| r.code().to_owned())
        .collect();
    assert_eq!(
        listed("Gate"),
        gates,
        "docs/openapi.yaml Gate vs the Gate enum"
    );
    assert_eq!(
        listed("Reason"),
        reasons,
        "docs/openapi.yaml Reason vs the Reason enum"
    );
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    assert_eq!(problem["gate"]["$ref"], "#/components/schemas/Gate");
    assert_eq!(problem["reason"]["$ref"], "#/components/schemas/Reason");
}

/// `/metrics` labels are bounded (docs/design.md): a request is counted
/// under its route's pattern, and every path no route matches under
/// `unmatched`, however many distinct paths a client sends. Counting by the
/// raw path would grow a label per path and fails here.
#[tokio::test]
async fn metrics_count_requests_by_route_pattern_not_by_path() {
    use tower::ServiceExt as _;
    let (app, _dir) = app();
    let get = async |path: String| {
        let request = http::Request::builder()
            .uri(&path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
    };
    for i in 0..40 {
        get(podseal_core::wire::admin::cluster_path(&format!("c{i}"))).await;
        get(format!("/no/such/path/{i}")).await;
    }
    let text = String::from_utf8(get("/metrics".to_owned()).await.to_vec()).unwrap();
    let routes: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("podseal_requests_total{"))
        .filter_map(|l| l.split("route=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        routes,
        std::collections::BTreeSet::from([podseal_core::wire::admin::CLUSTER_ROUTE, "unmatched"]),
        "{text}"
    );
    let count = |route: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("podseal_requests_total{{route=\"{route}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(
        count(podseal_core::wire::admin::CLUSTER_ROUTE),
        40,
        "{text}"
    );
    assert_eq!(count("unmatched"), 40, "{text}");
}
