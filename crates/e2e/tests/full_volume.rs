//! The SQLite store on a small volume, with real processes: the server's
//! state directory is a tmpfs of its own. The write-ahead log stays within
//! its bound under load; when the volume fills, releases are refused
//! (fail closed) and the log names the cause; when space is freed, releases
//! work again without a restart.
//!
//! Mounting needs root (or CAP_SYS_ADMIN): without it this test FAILS, it
//! never skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod support;

const SECRET: &str = "small-volume-secret-41d7";
/// What the WAL may reach: the autocheckpoint's 256 pages of 4 KiB (plus
/// frame headers) and one group commit on top, with room to spare; the
/// default (1000 pages, ~4 MiB, never truncated) is far above it.
const WAL_BOUND: u64 = 1536 * 1024;

fn bin() -> PathBuf {
    podseal_test_support::binaries::podseal()
}

/// A tmpfs mounted at a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let options = format!("size={size},mode=0700");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            output.status.success(),
            "this test puts the server's state directory on a {size} tmpfs and must mount it, \
             which needs root or CAP_SYS_ADMIN (run it as root or in a privileged container): \
             `mount -t tmpfs` said {:?}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Self(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the server may still hold its files open while it is reaped.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    support::run_program(&bin(), args, env, stdin)
}

/// Runs the pod-side `podseal-exec ARGS`.
fn exec(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    support::run_program(&podseal_test_support::binaries::exec(), args, env, stdin)
}

/// Fills the volume holding `path` with one file until the system says it
/// is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

fn wal_size(state: &Path) -> u64 {
    std::fs::metadata(state.join("podseal.db-wal")).map_or(0, |m| m.len())
}

#[test]
fn a_full_state_volume_refuses_names_the_cause_and_recovers_when_space_returns() {
    let dir = TempDir::new().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let state = dir.path().join("state");
    // Declared before the deployment, so the server is gone before the unmount.
    let _volume = Tmpfs::mount(&state, "8m");
    let deployment = support::Deployment::start(&bin(), dir.path(), "info");
    // Two pods: each `podseal-exec` has a new DPoP key, and one key is
    // pinned per live pod.
    let pods = [deployment.pod("api-0"), deployment.pod("api-1")];
    let sealed = run(
        &[
            "seal",
            "--key",
            &p("keys/org.pub"),
            "--cluster",
            "prod",
            "--namespace",
            "shop",
            "--service-account",
            "api",
            "--name",
            "db",
        ],
        &[],
        Some(SECRET),
    );
    assert!(sealed.status.success(), "{:?}", sealed);
    std::fs::write(p("db.capsule"), &sealed.stdout).unwrap();
    let release = |pod: &[(&'static str, String)]| {
        let pod: Vec<(&str, &str)> = pod.iter().map(|(k, v)| (*k, v.as_str())).collect();
        exec(
            &[
                "--env",
                &format!("X={}", p("db.capsule")),
                "--",
                "sh",
                "-c",
                "printf %s \"$X\"",
            ],
            &pod,
            None,
        )
    };
    let released = release(&pods[0]);
    assert_eq!(
        String::from_utf8_lossy(&released.stdout),
        SECRET,
        "{}",
        String::from_utf8_lossy(&released.stderr)
    );

    let ca = std::fs::read(state.join("tls-dev.crt")).unwrap();
    let client = podseal_sdk::https::HttpsClient::new(&deployment.url, Some(&ca))
        .unwrap()
        .with_timeout(Duration::from_secs(20));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A request the server refuses (unknown API key) and audits: one commit each.
    let client = &client;
    let refused = move || async move {
        let answer = client
            .send(
                http::Method::POST,
                "/v1/sessions",
                &[
                    ("x-podseal-api-key", "psk_unknown"),
                    ("x-podseal-token", "not-a-token"),
                ],
                Some(br#"{"recipient_key":"AAAA"}"#.to_vec()),
            )
            .await
            .unwrap();
        (
            answer.status.as_u16(),
            String::from_utf8_lossy(&answer.body).into_owned(),
        )
    };

    // 1. Under load the WAL stays bounded: 1,500 commits are well past the
    // autocheckpoint, and would be ~6 MiB of frames if nothing bounded them.
    runtime.block_on(async {
        for i in 0..1500 {
            let (status, body) = refused().await;
            assert_eq!(status, 401, "request {i}: {body}");
        }
    });
    let wal = wal_size(&state);
    assert!(
        wal <= WAL_BOUND,
        "the WAL is {wal} bytes after 1,500 commits, over its bound of {WAL_BOUND}"
    );

    // 2. The volume fills up: audited requests are refused, fail closed.
    let filler = state.join("filler");
    fill(&filler);
    let (started, mut sent) = (Instant::now(), 0);
    runtime.block_on(async {
        loop {
            let (status, body) = refused().await;
            if status == 503 {
                assert!(body.contains("audit_unavailable"), "{body}");
                break;
            }
            assert_eq!(status, 401, "{body}");
            sent += 1;
            assert!(
                sent < 20_000 && started.elapsed() < Duration::from_secs(120),
                "{sent} audited requests on a full volume and none refused"
            );
        }
    });
    // The log names the real cause and the file, never just "disk I/O".
    let line = support::wait_for_line(&deployment.server_log, "audit write failed");
    assert!(
        line.contains("no space left on device") && line.contains("podseal.db"),
        "{line}"
    );

    // 3. Space returns: the same process audits and releases again, no restart.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    runtime.block_on(async {
        loop {
            let (status, body) = refused().await;
            if status == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still refused 30 s after space was freed: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let released = release(&pods[1]);
    assert_eq!(
        String::from_utf8_lossy(&released.stdout),
        SECRET,
        "{}",
        String::from_utf8_lossy(&released.stderr)
    );
    let mut deployment = deployment;
    assert!(
        deployment.server.0.try_wait().unwrap().is_none(),
        "the server exited"
    );
    let wal = wal_size(&state);
    assert!(wal <= WAL_BOUND, "the WAL is {wal} bytes after recovery");
    deployment.stop();
}
