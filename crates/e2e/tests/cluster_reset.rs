//! Gate 4 after the cluster's state is reset (issue 12, item 1): the
//! stand-in as a real process is emptied as a restore of etcd from an empty
//! backup would empty it — same CA, same signing keys, so old unexpired
//! projected tokens still verify — while the release server (a real
//! process) holds a pod view full of pods that no longer exist. The pod
//! keeps its session and asks again and again; every release after the
//! reset must be refused, including for a pod recreated under the same
//! name, and the time to the first refusal is printed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use podseal_core::reason::{Code, Gate};
use tempfile::TempDir;

fn bin() -> PathBuf {
    podseal_test_support::binaries::podseal()
}

#[test]
fn a_reset_cluster_state_stops_every_release_from_the_old_view() {
    let dir = TempDir::new().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let deployment = support::Deployment::start(&bin(), dir.path(), "info");
    // Enough pods that the reset history stays below the old resourceVersion.
    let pod = deployment.pod("web-0");
    for i in 1..6 {
        deployment.pod(&format!("web-{i}"));
    }
    let capsule = deployment.seal("s3cret-for-reset-test");
    let client = support::Deployment::client(&pod);
    assert_eq!(
        client.open(&capsule).unwrap().expose_secret_bytes(),
        b"s3cret-for-reset-test",
        "released before the reset"
    );

    support::run_ok(
        &podseal_test_support::binaries::dev(),
        &["cluster", "reset-state", "--dir", &p("dc")],
        &[],
    );
    let reset_at = Instant::now();
    // The documented bound (docs/design.md §3 gate 4 and §8.41): the view
    // refuses once it cannot reconcile with the API server within the
    // staleness bound (5 s by default), and a probe the API server answers
    // 504 takes up to 3 s; 2 s more for this machine's scheduling.
    let bound = Duration::from_secs(5 + 3 + 2);
    let deadline = reset_at + bound;
    let first_refusal = loop {
        match client.open(&capsule) {
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "still released {bound:?} after the cluster state was reset"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => break (reset_at.elapsed(), error),
        }
    };
    eprintln!(
        "first refusal {:?} after the reset: {}",
        first_refusal.0, first_refusal.1
    );
    for line in deployment.server_log.try_iter() {
        if line.contains("pod view") {
            eprintln!("server: {line}");
        }
    }
    // Refused for good: across several staleness bounds (default 5 s), by
    // gate 4 (the pod is gone or the view is relisting) or by the session
    // the pod's deletion revoked — never released again.
    let until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < until {
        let Err(error) = client.open(&capsule) else {
            panic!("a release after the cluster state was reset");
        };
        // Gate 4, or gate 3 refusing the session the deletion revoked.
        assert!(
            matches!(
                error.gate().and_then(Code::known),
                Some(Gate::LivePod | Gate::Dpop)
            ),
            "refused by an unexpected gate: {error}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // A pod recreated under the same name has a new uid: the old token
    // (bound to the old uid) still verifies, and must not open anything.
    support::create_pod(&dir.path().join("dc"), &deployment.digest, "web-0");
    let fresh = support::Deployment::client(&pod);
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let Err(error) = fresh.open(&capsule) else {
            panic!("the old token of a recreated pod opened a session");
        };
        assert!(error.gate().is_some(), "refused without a gate: {error}");
        std::thread::sleep(Duration::from_millis(250));
    }
}
