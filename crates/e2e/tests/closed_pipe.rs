//! Issue 22: every command of every binary that prints ends quietly when
//! its reader goes away, as Unix tools do (`podseal apikey list | head -1`):
//! exit 141 (what a shell shows for SIGPIPE), nothing on stderr, no panic
//! and no backtrace. The commands that need a server, a stand-in or a pod
//! are run here against real processes; the local ones of `podseal` are in
//! `crates/cli/tests/cli.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::path::Path;
use std::process::Command;

use podseal_test_support::binaries;
use podseal_test_support::closed_pipe::{assert_quiet_on_closed_pipe, run_with_closed_stdout};
use tempfile::TempDir;

mod support;

/// Runs `binary ARGS` with `env` and a closed stdout; it must end quietly.
fn quiet(binary: &Path, args: &[&str], env: &[(&str, String)], stdin: &[u8]) {
    let mut command = Command::new(binary);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let run = run_with_closed_stdout(command, stdin);
    let name = binary.file_name().unwrap().to_string_lossy();
    assert_quiet_on_closed_pipe(&format!("{name} {}", args.join(" ")), &run);
}

/// One command line: `head` then `tail`.
fn with(head: &[&str], tail: &[&str]) -> Vec<String> {
    head.iter().chain(tail).map(|s| (*s).to_owned()).collect()
}

#[test]
fn every_command_that_prints_ends_quietly_on_a_closed_pipe() {
    let dir = TempDir::new().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (podseal, dev) = (binaries::podseal(), binaries::dev());
    let deployment = support::Deployment::start(&podseal, dir.path(), "info");
    let admin = deployment.admin_env();
    let admin_pairs: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dc = path("dc");
    let (ca_bundle, reader_token) = (path("dc/ca.pem"), path("dc/reader.token"));
    let cluster_file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path("dc/cluster.json")).unwrap()).unwrap();
    let cluster_url = cluster_file["url"].as_str().unwrap().to_owned();
    let pod = "shop/api-0";
    deployment.pod("api-0");
    let public = path("state/audit.pub");
    support::run_ok(
        &podseal,
        &["audit", "export", "--out", &path("log.jsonl")],
        &admin_pairs,
    );
    let proof = support::run_ok(
        &podseal,
        &[
            "audit",
            "prove",
            "--key",
            &public,
            "--seq",
            "1",
            "-o",
            "json",
            &path("log.jsonl"),
        ],
        &[],
    );
    std::fs::write(path("proof.json"), proof).unwrap();
    let spare = support::create_api_key(&podseal, &admin_pairs);
    let spare_id = spare["id"].as_str().unwrap().to_owned();
    let manifest = support::run_ok_stdin(
        &podseal,
        &[
            "seal",
            "--key",
            &path("keys/org.pub"),
            "--cluster",
            "prod",
            "--namespace",
            "shop",
            "--service-account",
            "api",
            "--k8s-secret",
            "db",
            "--from-file",
            "password=-",
        ],
        "a password",
    );
    std::fs::write(path("db.yaml"), manifest).unwrap();
    let shop = [
        "--cluster",
        "prod",
        "--namespace",
        "shop",
        "--service-account",
        "api",
    ];
    let digest = format!("sha256:{}", "b".repeat(64));

    // The operator CLI against the server.
    let rows: Vec<Vec<String>> = vec![
        with(
            &[
                "cluster",
                "add",
                "prod",
                "--replace",
                "--api-server",
                &cluster_url,
            ],
            &["--ca-bundle", &ca_bundle, "--token-file", &reader_token],
        ),
        with(&["cluster", "list"], &[]),
        with(&["cluster", "list", "-o", "json"], &[]),
        with(&["cluster", "show", "prod"], &[]),
        with(&["apikey", "list"], &[]),
        with(&["apikey", "list", "-o", "yaml"], &[]),
        with(&["apikey", "create"], &shop),
        with(&["apikey", "create", "-o", "json"], &shop),
        with(&["apikey", "create", "--out", &path("new.key")], &shop),
        with(&["apikey", "revoke", &spare_id], &[]),
        with(&["policy", "show"], &shop),
        with(&["policy", "show", "-o", "json"], &[]),
        with(&["policy", "add-digest", &digest], &shop),
        with(&["policy", "remove-digest", &digest], &shop),
        with(
            &["policy", "set", "--allow-digest", &deployment.digest],
            &shop,
        ),
        with(&["audit", "export"], &[]),
        with(
            &["audit", "verify", "--key", &public, &path("log.jsonl")],
            &[],
        ),
        with(
            &["audit", "checkpoint", "--key", &public, &path("log.jsonl")],
            &[],
        ),
        with(
            &[
                "audit",
                "prove",
                "--key",
                &public,
                "--seq",
                "1",
                &path("log.jsonl"),
            ],
            &[],
        ),
        with(
            &[
                "audit",
                "verify-proof",
                "--key",
                &public,
                &path("proof.json"),
            ],
            &[],
        ),
        with(
            &["audit", "public-key", "--key", &public, &path("log.jsonl")],
            &[],
        ),
    ];
    for args in &rows {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        quiet(&podseal, &args, &admin, b"");
    }
    // A key printed to nobody is revoked: the API keys left are the
    // deployment's and the one written to new.key, not the three made
    // above for a closed stdout, nor the spare revoked on purpose.
    let keys: serde_json::Value = serde_json::from_str(&support::run_ok(
        &podseal,
        &["apikey", "list", "-o", "json"],
        &admin_pairs,
    ))
    .unwrap();
    let live = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revoked_at"].is_null())
        .count();
    assert_eq!(live, 2, "{keys:#}");

    // podseal-dev against the stand-in, and the demo.
    let rows: Vec<Vec<String>> = vec![
        with(&["cluster", "pod", "list", "--dir", &dc], &[]),
        with(&["cluster", "pod", "list", "--dir", &dc, "-o", "yaml"], &[]),
        with(
            &[
                "cluster",
                "pod",
                "create",
                "--dir",
                &dc,
                "--namespace",
                "shop",
                "--name",
                "api-1",
            ],
            &[
                "--service-account",
                "api",
                "--container",
                "api=registry.example/shop/api:1",
            ],
        ),
        with(
            &["cluster", "pod", "running", "--dir", &dc, "shop/api-1"],
            &[],
        ),
        with(
            &[
                "cluster",
                "pod",
                "restart",
                "--dir",
                &dc,
                pod,
                "--container",
                "api",
            ],
            &[],
        ),
        with(
            &[
                "cluster",
                "pod",
                "debug",
                "--dir",
                &dc,
                pod,
                "--image",
                "busybox:1",
            ],
            &[],
        ),
        with(&["cluster", "pod", "recreate", "--dir", &dc, pod], &[]),
        with(
            &["cluster", "pod", "delete", "--dir", &dc, "shop/api-1"],
            &[],
        ),
        with(
            &["cluster", "token", "--dir", &dc, "--namespace", "shop"],
            &["--service-account", "api", "--audience", "podseal"],
        ),
        with(
            &[
                "cluster",
                "mount-secret",
                &path("db.yaml"),
                "--secrets-dir",
                &path("secrets"),
            ],
            &[],
        ),
        with(&["cluster", "add-verification-key", "--dir", &dc], &[]),
        with(
            &["cluster", "rotate-signing-key", "--dir", &dc, "--keep-old"],
            &[],
        ),
        with(&["cluster", "compact-history", "--dir", &dc], &[]),
        with(&["cluster", "reset-state", "--dir", &dc], &[]),
        with(&["demo"], &[]),
        with(&["demo", "-o", "json"], &[]),
        with(
            &[
                "bench",
                "--duration",
                "0.5",
                "--pods",
                "2",
                "--concurrency",
                "2",
            ],
            &["--ceiling-secs", "0.1"],
        ),
    ];
    for args in &rows {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        quiet(&dev, &args, &[], b"");
    }

    // The server's configuration, and the last operator command.
    quiet(&binaries::server(), &["--print-config"], &[], b"");
    quiet(&podseal, &["cluster", "remove", "prod"], &admin, b"");

    // Help and version of every binary (clap's own printing): no panic and
    // nothing on stderr; clap exits 0 whether or not its text was read.
    for binary in [podseal, dev, binaries::server(), binaries::exec()] {
        for flag in ["--help", "--version"] {
            let mut command = Command::new(&binary);
            command.arg(flag);
            let flagged = run_with_closed_stdout(command, b"");
            let name = binary.file_name().unwrap().to_string_lossy();
            assert!(
                matches!(flagged.status.code(), Some(0 | 141)) && flagged.stderr.is_empty(),
                "`{name} {flag}` with its stdout closed: {} and stderr {:?}",
                flagged.status,
                flagged.stderr
            );
        }
    }
}
