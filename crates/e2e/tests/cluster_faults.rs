//! Gate 4 when the cluster's API server fails, with real processes (the
//! stand-in as `podseal-dev cluster serve`, the release server): hung
//! (SIGSTOP: connections are accepted by the kernel, nothing answers), then
//! continued, then dead (SIGKILL: its connections reset, new ones are
//! refused). While it cannot answer, every release is refused by gate 4
//! within the documented bound (`live_pod`/`view_unknown`), and `/readyz`
//! answers 503 naming the cluster; once it answers again, releases resume
//! without a restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use podseal_core::capsule::Capsule;
use podseal_core::reason::{Code, Gate, Reason};
use podseal_sdk::blocking::BlockingClient;
use tempfile::TempDir;

const SECRET: &[u8] = b"cluster-fault-secret-7c1e";

fn bin() -> PathBuf {
    podseal_test_support::binaries::podseal()
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// The documented bound (docs/design.md §3 gate 4 and §8.41): the view
/// refuses once it has not reconciled with the API server within the
/// staleness bound (5 s by default), a probe taking up to 3 s; 2 s more
/// for this machine's scheduling.
const BOUND: Duration = Duration::from_secs(5 + 3 + 2);

/// Asks until refused (within [`BOUND`]), and checks the refusal is gate 4's
/// `view_unknown`; returns how long it took.
fn refused_within_bound(client: &BlockingClient, capsule: &Capsule, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        match client.open(capsule) {
            Ok(_) => {
                assert!(
                    started.elapsed() < BOUND,
                    "still released {BOUND:?} after the cluster API {what}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => {
                let took = started.elapsed();
                eprintln!("cluster API {what}: first refusal after {took:?}: {error}");
                assert!(took < BOUND, "refused only after {took:?}");
                assert_eq!(
                    (
                        error.gate().and_then(Code::known),
                        error.reason().and_then(Code::known)
                    ),
                    (Some(Gate::LivePod), Some(Reason::ViewUnknown)),
                    "{error}"
                );
                return took;
            }
        }
    }
}

/// `/readyz` answers 503 naming the cluster whose view is unknown.
fn not_ready(url: &str, ca: &Path, what: &str) {
    let (status, body) = support::https_get(url, ca, "/readyz", Duration::from_secs(20));
    eprintln!("/readyz with the cluster API {what}: {status} {body}");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("prod"),
        "/readyz does not name the cluster: {body}"
    );
}

#[test]
fn a_hung_or_dead_cluster_api_is_refused_within_the_bound_and_readyz_says_why() {
    let dir = TempDir::new().unwrap();
    let deployment = support::Deployment::start(&bin(), dir.path(), "info");
    let ca = dir.path().join("state/tls-dev.crt");
    let pod = deployment.pod("web-0");
    let capsule = deployment.seal(std::str::from_utf8(SECRET).unwrap());
    let client = support::Deployment::client(&pod);
    assert_eq!(client.open(&capsule).unwrap().expose_secret_bytes(), SECRET);
    let cluster = deployment.cluster_process_id();

    // Hung.
    signal(cluster, "STOP");
    refused_within_bound(&client, &capsule, "hung");
    not_ready(&deployment.url, &ca, "hung");

    // Answering again: releases resume, /readyz is 200, without a restart.
    signal(cluster, "CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.open(&capsule) {
            Ok(plain) => {
                assert_eq!(plain.expose_secret_bytes(), SECRET);
                break;
            }
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "no release 30 s after the cluster API answered again: {error}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let (status, body) =
        support::https_get(&deployment.url, &ca, "/readyz", Duration::from_secs(20));
    assert_eq!(status, 200, "{body}");

    // Dead: its connections reset, new ones refused.
    signal(cluster, "KILL");
    refused_within_bound(&client, &capsule, "dead");
    not_ready(&deployment.url, &ca, "dead");
    // And it stays refused.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert!(
            client.open(&capsule).is_err(),
            "a release while the cluster API is dead"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
