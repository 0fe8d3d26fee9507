//! Issue 14 §1 end to end with real processes: the stand-in and the
//! release server as processes, `podseal-exec` as a pod's containers run it,
//! and the stand-in's `pod restart` as the kubelet reports a restart.
//!
//! One pod, two containers that each declare `PODSEAL_CONTAINER`: each
//! enrols its own key; a second process in a running container is refused;
//! a restarted container enrols afresh and its old instance's session ends;
//! an attacker holding the API key and the token who wins the enrolment
//! after a restart is visible (the legitimate process is refused as an
//! enrolment conflict, in the audit log and in `/metrics`), and loses the
//! session at the legitimate container's next restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use podseal_core::audit::{AuditRecord, Event};
use podseal_core::reason::Reason;
use tempfile::TempDir;

mod support;

const SECRET: &str = "restart-proof-secret-7d1c";

fn exec(env: &[(&'static str, String)], capsule: &Path) -> Output {
    support::exec_printing_secret(env, capsule)
}

#[track_caller]
fn released(output: &Output) {
    support::assert_released(output, SECRET);
}

#[track_caller]
fn refused_as_conflict(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "the program started after a refusal"
    );
    assert!(stderr.contains("dpop/pod_key_already_pinned"), "{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
}

fn dev(dc: &Path, args: &[&str]) {
    let mut all = vec!["cluster"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--dir", dc.to_str().unwrap()]);
    support::run_ok(&podseal_test_support::binaries::dev(), &all, &[]);
}

fn restart(dc: &Path, container: &str) {
    dev(
        dc,
        &["pod", "restart", "shop/multi-0", "--container", container],
    );
}

#[test]
fn restarts_two_containers_and_an_enrolment_race_with_real_processes() {
    let dir = TempDir::new().unwrap();
    let binary = podseal_test_support::binaries::podseal();
    // A second key's refusal waits this long for a restart the API server
    // has not shown yet.
    let mut deployment = support::Deployment::start_with_env(
        &binary,
        dir.path(),
        "info",
        &[("PODSEAL_RELEASE_ENROLMENT_WAIT_SECS", "2")],
    );
    let dc = deployment.dev_cluster_dir();
    let image = format!("registry.example/shop/api:1@{}", deployment.digest);
    dev(
        &dc,
        &[
            "pod",
            "create",
            "--namespace",
            "shop",
            "--name",
            "multi-0",
            "--service-account",
            "api",
            "--container",
            &format!("api={image}"),
            "--container",
            &format!("worker={image}"),
            "--env",
            "api:PODSEAL_CONTAINER=api",
            "--env",
            "worker:PODSEAL_CONTAINER=worker",
            "--running",
        ],
    );
    let capsule = dir.path().join("secret.capsule");
    std::fs::write(&capsule, deployment.seal(SECRET).to_armored()).unwrap();
    let api = deployment.process_env("multi-0", "api");
    let worker = deployment.process_env("multi-0", "worker");

    // Two containers of one pod, each its own key.
    released(&exec(&api, &capsule));
    released(&exec(&worker, &capsule));
    // A second process in the running api container: refused.
    refused_as_conflict(&exec(&api, &capsule));

    // The api container restarts: its new process enrols.
    restart(&dc, "api");
    released(&exec(&api, &capsule));

    // Restarted again, and an attacker holding the API key and the token
    // enrols first, keeping its session open (an SDK client).
    restart(&dc, "api");
    let attacker = support::Deployment::client(&api);
    let stolen = attacker.open(&deployment.seal(SECRET)).unwrap();
    assert_eq!(stolen.expose_secret_bytes(), SECRET.as_bytes());
    // The legitimate process loses the race: refused, as a conflict.
    refused_as_conflict(&exec(&api, &capsule));
    // Its exit restarts the container: the attacker's session ends, the
    // legitimate process enrols, and the attacker cannot come back.
    restart(&dc, "api");
    released(&exec(&api, &capsule));
    let error = attacker.open(&deployment.seal(SECRET)).unwrap_err();
    assert!(
        error.to_string().contains("pod_key_already_pinned")
            || error.to_string().contains("container_restarted"),
        "{error}"
    );
    // The worker container's pin was never touched by the api restarts.
    refused_as_conflict(&exec(&worker, &capsule));

    // The metrics count the conflicts (the two lost by the api's
    // processes, the worker's second process and the attacker's last try).
    let (status, metrics) = support::https_get(
        &deployment.url,
        &dir.path().join("state/tls-dev.crt"),
        "/metrics",
        Duration::from_secs(10),
    );
    assert_eq!(status, 200);
    for line in [
        "podseal_enrolments_total{kind=\"conflict\"} 4",
        "podseal_refusals_total{gate=\"dpop\",reason=\"pod_key_already_pinned\"} 4",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line} in\n{metrics}"
        );
    }

    // The audit log: every enrolment, refusal and revocation.
    let admin = deployment.admin_env();
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let export = dir.path().join("audit.jsonl");
    support::run_ok(
        &binary,
        &["audit", "export", "--out", export.to_str().unwrap()],
        &admin,
    );
    deployment.stop();
    let records: Vec<AuditRecord> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["entry"]
                .as_str()
                .map(|entry| serde_json::from_str(entry).unwrap())
        })
        .collect();
    let of = |container: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| {
                r.event == Event::Session
                    && r.details.get("container").map(String::as_str) == Some(container)
            })
            .map(|r| match &r.reason {
                Some(reason) => format!("refused {reason}"),
                None => "allowed".to_owned(),
            })
            .collect()
    };
    assert_eq!(
        of("api"),
        [
            "allowed",
            "refused pod_key_already_pinned",
            "allowed",
            "allowed",
            "refused pod_key_already_pinned",
            "allowed",
            "refused pod_key_already_pinned",
        ],
        "api: the first process, the second refused, after restart 1, the attacker after restart 2, the legitimate process refused, after restart 3, the attacker refused"
    );
    assert_eq!(of("worker"), ["allowed", "refused pod_key_already_pinned"]);
    // Each of the three restarts ended the session of the instance before
    // it: by the view's revocation, or inside the enrolment that replaced
    // the pin (when the new process came first).
    let revoked = records
        .iter()
        .filter(|r| {
            r.event == Event::SessionRevoked
                && r.reason == Some(Reason::ContainerRestarted)
                && r.details.get("container").map(String::as_str) == Some("api")
        })
        .count();
    let replaced = records
        .iter()
        .filter(|r| r.details.get("enrolment").map(String::as_str) == Some("after_restart"))
        .count();
    assert_eq!(revoked + replaced, 3, "{records:#?}");
}
