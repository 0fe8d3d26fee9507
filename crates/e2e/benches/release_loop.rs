//! The release server measured as it runs: `podseal-server` and the stand-in
//! as separate processes, one pod, one session, then a simple loop of
//! unwraps over HTTPS (one capsule each, sequential, keep-alive) and a loop
//! of refused requests. Reports the server's RSS idle and at the end, and
//! unwrap latency (median, p99) as a multiple of one raw X25519 operation
//! timed in the same run.
//!
//! Run: `cargo bench -p podseal-e2e --bench release_loop` (UNWRAPS=N to change the count).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark code: a panic is a failed run"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use http::Method;
use podseal_core::dpop::DpopKey;
use podseal_core::envelope;
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey as _};
use podseal_keys::key_file::read_public_key;
use podseal_sdk::https::HttpsClient;
use podseal_sdk::protocol::{self, Credentials, Endpoint, Freshness, SignedRequest};
use podseal_test_support::fixtures::{kubernetes_scope, seal_params};

#[path = "../tests/support/mod.rs"]
mod support;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Median of `runs` timings of one X25519 scalar multiplication.
fn raw_x25519() -> Duration {
    let secret = x25519_dalek::StaticSecret::from([7u8; 32]);
    let public = x25519_dalek::PublicKey::from([9u8; 32]);
    let mut samples: Vec<Duration> = (0..2000)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(secret.diffie_hellman(std::hint::black_box(&public)));
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let unwraps: usize = std::env::var("UNWRAPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::TempDir::new().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let mut deployment = support::Deployment::start(
        &podseal_test_support::binaries::podseal(),
        dir.path(),
        "warn",
    );
    let pid = deployment.server.0.id();
    let external = deployment.url.clone();
    let key = deployment.api_key.clone();
    let pem = std::fs::read(path("state/tls-dev.crt")).unwrap();
    let client = HttpsClient::new(&external, Some(&pem)).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pod = deployment.pod("api-0");
    let token = std::fs::read_to_string(&pod[3].1).unwrap();
    let idle_rss = rss_kib(pid);

    let org = read_public_key(Path::new(&path("keys/org.pub"))).unwrap();
    let capsule = envelope::seal(
        seal_params(kubernetes_scope("prod", "shop", "api")),
        b"postgres://app:hunter2@db/shop",
        &[&org],
    )
    .unwrap();
    let dpop = DpopKey::generate().unwrap();
    let recipient = LocalPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
    let now = || jiff::Timestamp::now().as_second();
    let endpoint = Endpoint::new(&external);
    let credentials = Credentials {
        api_key: &key,
        token: &token,
    };
    let fresh = || Freshness {
        iat: now(),
        nonce: None,
    };
    let send = |request: &SignedRequest| {
        runtime
            .block_on(client.send(
                Method::POST,
                request.path(),
                &request.headers(),
                Some(request.body().to_vec()),
            ))
            .unwrap()
    };

    let request = endpoint
        .session(credentials, &dpop, recipient.public_key_bytes(), fresh())
        .unwrap();
    let answer = send(&request);
    let session = protocol::session_answer(answer.status, &answer.body).unwrap();

    let unwrap_request = |key: &DpopKey| {
        endpoint
            .unwrap(credentials, key, &session, &[&capsule.envelope], fresh())
            .unwrap()
    };
    let mut latencies = Vec::with_capacity(unwraps);
    for _ in 0..unwraps {
        let pending = unwrap_request(&dpop);
        let start = Instant::now();
        let answer = send(pending.request());
        latencies.push(start.elapsed());
        assert_eq!(
            pending
                .open_answer(answer.status, &answer.body, &recipient)
                .unwrap()
                .len(),
            1
        );
    }
    // Refusals: a replayed request, and a proof from a key that is not pinned.
    let replayed = unwrap_request(&dpop).into_request();
    assert_eq!(send(&replayed).status, 200);
    let thief = DpopKey::generate().unwrap();
    for i in 0..unwraps {
        let answer = if i % 2 == 0 {
            send(&replayed)
        } else {
            send(unwrap_request(&thief).request())
        };
        assert_eq!(answer.status, 401);
    }
    let end_rss = rss_kib(pid);

    // The pod side. Each pod is new: one DPoP key is pinned per live pod.
    std::fs::write(path("db.capsule"), capsule.to_armored()).unwrap();
    // SDK resident memory: this process before and after a client opens one capsule.
    let sdk_pod = deployment.pod("sdk-0");
    let before_sdk = rss_kib(std::process::id());
    let opened = runtime.block_on(async {
        let mut config = podseal_sdk::client::ClientConfig::new(
            &external,
            podseal_sdk::https::Trust::CaPem(pem.clone()),
        );
        config.api_key_file = path("api-key").into();
        config.token_file = sdk_pod[3].1.clone().into();
        let client = podseal_sdk::client::Client::new(config).unwrap();
        let secret = client.open(&capsule).await.unwrap();
        let after = rss_kib(std::process::id());
        drop(secret);
        after
    });
    let sdk_rss = opened.saturating_sub(before_sdk);
    // `podseal-exec` from process start to the program running (`true`), one new pod each.
    let runs = 20;
    let exec = podseal_test_support::binaries::exec();
    let mut exec_times = Vec::with_capacity(runs);
    for i in 0..runs {
        let pod_env = deployment.pod(&format!("exec-{i}"));
        let start = Instant::now();
        let status = Command::new(&exec)
            .args(["--env", &format!("DB={}", path("db.capsule")), "--", "true"])
            .envs(pod_env)
            .status()
            .unwrap();
        exec_times.push(start.elapsed());
        assert!(status.success());
    }
    exec_times.sort();
    let raw = raw_x25519();

    latencies.sort();
    let median = percentile(&latencies, 0.5);
    let p99 = percentile(&latencies, 0.99);
    let ratio = |d: Duration| d.as_secs_f64() / raw.as_secs_f64();
    println!(
        "release_loop: {unwraps} unwraps then {unwraps} refusals over HTTPS (one connection, sequential)"
    );
    println!(
        "raw X25519 (same run, median):  {:>9.1} µs",
        raw.as_secs_f64() * 1e6
    );
    println!(
        "unwrap latency median:          {:>9.1} µs  = {:>6.1} × X25519",
        median.as_secs_f64() * 1e6,
        ratio(median)
    );
    println!(
        "unwrap latency p99:             {:>9.1} µs  = {:>6.1} × X25519",
        p99.as_secs_f64() * 1e6,
        ratio(p99)
    );
    println!("server RSS idle (registered):   {:>9} KiB", idle_rss);
    println!("server RSS at the end:          {:>9} KiB", end_rss);
    println!(
        "podseal-exec start → program running, median of {runs} (new pod each): {:.1} ms (p90 {:.1} ms)",
        percentile(&exec_times, 0.5).as_secs_f64() * 1e3,
        percentile(&exec_times, 0.9).as_secs_f64() * 1e3
    );
    println!("SDK client + one open, added RSS in this process: {sdk_rss} KiB");
    deployment.stop();
}
