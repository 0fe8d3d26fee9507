//! `docs/openapi.yaml` against a served instance: schemathesis (pinned,
//! installed by this test when it is missing) generates requests for every
//! operation from the document and sends them to a real `podseal-server`
//! with the stand-in cluster registered. The run fails on any 5xx, any
//! answer that is not as documented (status, media type, headers, body
//! schema), any schema-valid request that is refused (with the few
//! documented exceptions of `tests/openapi/schemathesis.toml`, held to their
//! reasons by `tests/openapi/hooks.py`), and any schema-invalid request that
//! is accepted.
//!
//! Admin operations run with the admin token; release operations with a
//! real API key and projected token and a DPoP proof that is not one (gate
//! 3's 401 is their documented answer to a fuzzer).
//!
//! Bounded: a fixed number of examples per operation, a fixed seed, no
//! example database, and a deadline after which schemathesis is killed and
//! the test fails. The figures (operations, cases, failures, time) are
//! printed for the record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use podseal_test_support::provision::SCHEMATHESIS_VERSION;

mod support;

/// Test cases per operation and phase.
const EXAMPLES_PER_OPERATION: u32 = 100;
/// Hypothesis seed: the same run every time.
const SEED: u32 = 20_260_113;
/// schemathesis is killed, and the test fails, past this.
const DEADLINE: Duration = Duration::from_secs(240);

fn bin() -> PathBuf {
    podseal_test_support::binaries::podseal()
}

fn here(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Waits (deadline 30 s) until `/readyz` answers 200: the document says a
/// ready server answers 200, and schemathesis holds it to that.
fn wait_ready(url: &str, ca: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = support::https_get(url, ca, "/readyz", Duration::from_secs(5));
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready after 30 s: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a run reports, from its JSON report.
struct Figures {
    operations: u64,
    cases: u64,
    failures: u64,
}

fn count(report: &Value, pointer: &str) -> u64 {
    report.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

#[test]
fn schemathesis_finds_the_served_api_as_documented() {
    let python = podseal_test_support::provision::python_with_schemathesis();
    let dir = tempfile::TempDir::new().unwrap();
    let deployment = support::Deployment::start(&bin(), dir.path(), "warn");
    let pod = deployment.pod("fuzz");
    let setting = |name: &str| {
        pod.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
            .unwrap()
    };
    let pod_token = std::fs::read_to_string(setting("PODSEAL_TOKEN_FILE")).unwrap();
    let admin_token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let ca = dir.path().join("state/tls-dev.crt");
    wait_ready(&deployment.url, &ca);

    let report = dir.path().join("schemathesis-report.json");
    let checks = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "positive_data_acceptance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "ignored_auth",
        "podseal_bad_requests_are_explained",
    ]
    .join(",");
    let started = Instant::now();
    let mut child = Command::new(&python)
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(here("tests/openapi/schemathesis.toml"))
        .arg("run")
        .arg(here("../../docs/openapi.yaml"))
        .args(["--url", &deployment.url, "--tls-verify"])
        .arg(&ca)
        .args([
            "--checks",
            &checks,
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            &EXAMPLES_PER_OPERATION.to_string(),
            "--seed",
            &SEED.to_string(),
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
            "--report",
            "json",
            "--report-json-path",
        ])
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", here("tests/openapi/hooks.py"))
        .env("PODSEAL_ADMIN_TOKEN", admin_token.trim())
        .env("PODSEAL_API_KEY", &deployment.api_key)
        .env("PODSEAL_POD_TOKEN", pod_token.trim())
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let drain = |stream: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis did not finish within {DEADLINE:?}:\n{}",
                stdout.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    println!("{stdout}");
    let summary: Value = std::fs::read(&report)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| {
            panic!("no JSON report from schemathesis ({status}):\n{stdout}\n{stderr}")
        });
    let errors = summary["errors"].as_array().map_or(0, Vec::len) as u64;
    let figures = Figures {
        operations: count(&summary, "/operations/tested"),
        cases: count(&summary, "/test_cases/generated"),
        failures: count(&summary, "/test_cases/with_failures") + errors,
    };
    println!(
        "schemathesis {SCHEMATHESIS_VERSION}: {} operations, {} cases, {} failing or errored, {:.1} s (seed {SEED}, {EXAMPLES_PER_OPERATION} examples per operation)",
        figures.operations,
        figures.cases,
        figures.failures,
        elapsed.as_secs_f64()
    );
    assert!(
        status.success() && figures.failures == 0,
        "schemathesis found the API not as documented ({status}):\n{stdout}\n{stderr}"
    );
    let documented = documented_operations();
    assert_eq!(
        figures.operations, documented,
        "every documented operation is tested"
    );
}

/// The number of operations in `docs/openapi.yaml`.
fn documented_operations() -> u64 {
    let text = std::fs::read_to_string(here("../../docs/openapi.yaml")).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len() as u64)
        .sum()
}
