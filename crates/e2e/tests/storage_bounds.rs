//! A storage that hangs must not hang the server (issue 12, item 7): the
//! server's state directory on a real ext4 file system (a loop device) that
//! the test freezes with `fsfreeze`, as an operator's snapshot or a stuck
//! disk would. While frozen, releases are refused and `/readyz` answers 503
//! naming storage, each within the storage bound; once thawed, releases
//! work again without a restart. Needs root (mount, fsfreeze): without it
//! the test fails, it does not skip.
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

use tempfile::TempDir;

fn bin() -> PathBuf {
    podseal_test_support::binaries::podseal()
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed for this test (as root): {e}");
        });
    assert!(
        output.status.success(),
        "{program} {}: {} (this test needs root: mount and fsfreeze)",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An ext4 file system on a loop device, thawed and unmounted on drop.
struct Volume {
    mount: PathBuf,
    _dir: TempDir,
}

impl Volume {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("volume.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        run("mkfs.ext4", &["-q", image.to_str().unwrap()]);
        run(
            "mount",
            &[
                "-o",
                "loop",
                image.to_str().unwrap(),
                mount.to_str().unwrap(),
            ],
        );
        Self { mount, _dir: dir }
    }

    fn freeze(&self) {
        run("fsfreeze", &["-f", self.mount.to_str().unwrap()]);
    }

    fn thaw(&self) {
        let _ = Command::new("fsfreeze")
            .args(["-u", self.mount.to_str().unwrap()])
            .output();
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        self.thaw();
        let _ = Command::new("umount")
            .args(["-l", self.mount.to_str().unwrap()])
            .output();
    }
}

#[test]
fn a_frozen_disk_refuses_releases_in_time_and_recovers() {
    let volume = Volume::new();
    let dir = volume.mount.join("deployment");
    std::fs::create_dir(&dir).unwrap();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let deployment = support::Deployment::start_with_env(
        &bin(),
        &dir,
        "info",
        &[("PODSEAL_STORAGE_TIMEOUT_SECS", "2")],
    );
    let pod = deployment.pod("web-0");
    let capsule = deployment.seal("frozen-disk-secret");
    let client = support::Deployment::client(&pod);
    assert_eq!(
        client.open(&capsule).unwrap().expose_secret_bytes(),
        b"frozen-disk-secret"
    );
    let ca = Path::new(&p("state/tls-dev.crt")).to_owned();

    volume.freeze();
    let started = Instant::now();
    let refused = client.open(&capsule);
    let took = started.elapsed();
    eprintln!(
        "a release on a frozen disk answered after {took:?}: {:?}",
        refused.as_ref().err().map(ToString::to_string)
    );
    assert!(
        refused.is_err(),
        "released while the audit record could not be made durable"
    );
    // The SDK retries a 503 a few times; each attempt is bounded by the server.
    assert!(took < Duration::from_secs(40), "the server hung: {took:?}");
    let started = Instant::now();
    let (status, body) =
        support::https_get(&deployment.url, &ca, "/readyz", Duration::from_secs(20));
    eprintln!(
        "/readyz on a frozen disk: {status} after {:?}: {body}",
        started.elapsed()
    );
    assert_eq!(status, 503);
    assert!(body.contains("storage"), "{body}");

    volume.thaw();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.open(&capsule) {
            Ok(plain) => {
                assert_eq!(plain.expose_secret_bytes(), b"frozen-disk-secret");
                break;
            }
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "no recovery after the thaw: {error}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let (status, body) =
        support::https_get(&deployment.url, &ca, "/readyz", Duration::from_secs(20));
    assert_eq!(status, 200, "{body}");
}
