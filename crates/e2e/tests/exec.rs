//! `podseal-exec` as a pod runs it: a real child process against a served
//! release server and the stand-in (both real processes, the server logging
//! at trace level). The program sees the plaintext in its environment and in
//! a file on tmpfs; nothing on disk — the temporary directories, the SQLite
//! database, the server's log, the audit export — holds the plaintext; a
//! refusal stops the program from starting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::LazyLock;

use podseal_test_support::canary::{self, Canary};

use tempfile::TempDir;

mod support;

/// The plaintexts: random per run, so that the leak canary finds each only
/// where this run put it.
static SECRET: LazyLock<String> = LazyLock::new(canary::random_text);
static OTHER_SECRET: LazyLock<String> = LazyLock::new(canary::random_text);

fn bin() -> PathBuf {
    podseal_test_support::binaries::podseal()
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    support::run_program(&bin(), args, env, stdin)
}

/// Runs the pod-side `podseal-exec ARGS`.
fn exec(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    support::run_program(&podseal_test_support::binaries::exec(), args, env, stdin)
}

#[track_caller]
fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn exec_gives_the_program_its_secrets_and_leaves_none_on_disk() {
    let dir = TempDir::new().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let mut deployment = support::Deployment::start(&bin(), dir.path(), "trace");
    let admin = deployment.admin_env();
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Two pods: each exec is a new process with a new DPoP key, and one key
    // is pinned per live pod.
    let first = deployment.pod("api-0");
    let pod_env: Vec<(&str, &str)> = first.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let second = deployment.pod("api-1");
    let second_pod: Vec<(&str, &str)> = second.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Seal from stdin (the plaintext never touches the disk here either).
    let seal = |secret: &str, namespace: &str, out: &str| {
        let capsule = ok(&run(
            &[
                "seal",
                "--key",
                &p("keys/org.pub"),
                "--cluster",
                "prod",
                "--namespace",
                namespace,
                "--service-account",
                "api",
                "--name",
                "db",
            ],
            &[],
            Some(secret),
        ));
        std::fs::write(p(out), &capsule).unwrap();
        capsule.trim().to_owned()
    };
    let env_capsule = seal(&SECRET, "shop", "db.capsule");
    seal(&OTHER_SECRET, "shop", "tls.capsule");
    seal(&SECRET, "payments", "foreign.capsule");

    let shm = PathBuf::from(format!("/dev/shm/podseal-exec-test-{}", std::process::id()));
    let _ = std::fs::remove_file(&shm);
    let mut env: Vec<(&str, &str)> = pod_env.to_vec();
    env.push(("FROM_ENV", &env_capsule));
    let file_arg = format!("{}={}", shm.display(), p("tls.capsule"));
    let output = exec(
        &[
            "--direct",
            "FROM_ENV",
            "--env",
            &format!("DB_PASSWORD={}", p("db.capsule")),
            "--file",
            &file_arg,
            "--",
            "sh",
            "-c",
            "printf '%s|%s|' \"$DB_PASSWORD\" \"$FROM_ENV\"; cat \"$0\"; stat -c '|%a' \"$0\"; exit 7",
            shm.to_str().unwrap(),
        ],
        &env,
        None,
    );
    let _ = std::fs::remove_file(&shm);
    assert_eq!(
        output.status.code(),
        Some(7),
        "the program's exit code passes through: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("{}|{}|{}|400\n", *SECRET, *SECRET, *OTHER_SECRET)
    );

    // A refusal: the program never starts, and the gate and reason are named.
    let output = exec(
        &[
            "--env",
            &format!("X={}", p("foreign.capsule")),
            "--",
            "sh",
            "-c",
            "echo started",
        ],
        &second_pod,
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output.stdout.is_empty(),
        "the program started after a refusal"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("scope/namespace_mismatch"), "{stderr}");

    // A mistyped program is refused before anything is opened, so it costs
    // no enrolment: the corrected command, in the same running container,
    // is not locked out by a pin.
    let third = deployment.pod("api-2");
    let third_pod: Vec<(&str, &str)> = third.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let capsule_arg = format!("X={}", p("db.capsule"));
    let output = exec(
        &["--env", &capsule_arg, "--", "no-such-program-podseal"],
        &third_pod,
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not found in PATH"), "{stderr}");
    let output = exec(
        &[
            "--env",
            &capsule_arg,
            "--",
            "sh",
            "-c",
            "printf '%s' \"$X\"",
        ],
        &third_pod,
        None,
    );
    assert_eq!(ok(&output), *SECRET);

    // A --file destination on disk is refused unless --allow-disk.
    let on_disk = format!("{}={}", p("plain.txt"), p("tls.capsule"));
    let output = exec(&["--file", &on_disk, "--", "true"], &pod_env, None);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not on a RAM-backed filesystem"));
    assert!(!Path::new(&p("plain.txt")).exists());

    // A --file destination that exists is never overwritten.
    let existing = format!("{}={}", shm.display(), p("tls.capsule"));
    std::fs::write(&shm, b"keep").unwrap();
    let output = exec(&["--file", &existing, "--", "true"], &second_pod, None);
    let kept = std::fs::read(&shm).unwrap();
    let _ = std::fs::remove_file(&shm);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("never overwrites"));
    assert_eq!(kept, b"keep");

    // The export, then the leak canary: no plaintext, DEK, org key, API key,
    // admin token or projected token anywhere on disk (the server's log, at
    // trace level, written out in full; the database; the export), in any
    // encoding, except in the one file that is each credential's home.
    ok(&run(
        &["audit", "export", "--out", &p("audit.jsonl")],
        &admin,
        None,
    ));
    let log = deployment.stop();
    std::fs::write(p("server.log"), log.join("\n")).unwrap();
    let mut canary = Canary::new();
    canary.watch("the db plaintext", SECRET.as_bytes());
    canary.watch("the tls plaintext", OTHER_SECRET.as_bytes());
    let org = std::fs::read_to_string(p("keys/org.key")).unwrap();
    let org = podseal_core::org_key::OrgPrivateKey::from_text(&org).unwrap();
    canary.watch_org_key("the org private key", &org.to_text());
    let ring = podseal_core::key_provider::KeyRing::from(org);
    for name in ["db.capsule", "tls.capsule", "foreign.capsule"] {
        let capsule = podseal_core::capsule::Capsule::from_armored(
            std::fs::read_to_string(p(name)).unwrap().trim(),
        )
        .unwrap();
        let dek = podseal_core::envelope::open_dek(&capsule.envelope, &ring).unwrap();
        canary.watch(&format!("the DEK of {name}"), dek.expose_secret_bytes());
    }
    let mut homes = vec![dir.path().join("keys/org.key")];
    for home in [
        "admin.token",
        "api-key",
        "api-0.token",
        "api-1.token",
        "api-2.token",
    ] {
        let credential = std::fs::read(p(home)).unwrap();
        canary.watch(
            &format!("the credential in {home}"),
            credential.trim_ascii(),
        );
        homes.push(dir.path().join(home));
    }
    let (hits, searched) = canary.hits_in_dir(dir.path(), &homes);
    assert!(hits.is_empty(), "secret material:\n{}", hits.join("\n"));
    let scanned = canary::files(dir.path());
    assert!(
        scanned.iter().any(|f| f.ends_with("podseal.db")),
        "{scanned:?}"
    );
    assert!(
        std::fs::metadata(p("server.log")).unwrap().len() > 0,
        "the server logged nothing"
    );
    println!(
        "leak canary: {} secrets ({} needles) in {} files, {} bytes",
        canary.names().len(),
        canary.needle_count(),
        searched.files,
        searched.bytes
    );
}

/// `podseal seal --k8s-secret NAME --from-file KEY=-` for `prod/shop/api`:
/// the capsule of each key, by key.
fn seal_secret(keys: &Path, name: &str, values: &[(&str, &str)]) -> Vec<(String, String)> {
    use base64::Engine as _;
    let dir = TempDir::new().unwrap();
    let mut args = vec![
        "seal".to_owned(),
        "--key".to_owned(),
        keys.join("org.pub").to_str().unwrap().to_owned(),
        "--cluster".into(),
        "prod".into(),
        "--namespace".into(),
        "shop".into(),
        "--service-account".into(),
        "api".into(),
        "--k8s-secret".into(),
        name.into(),
        "-o".into(),
        "json".into(),
    ];
    for (key, value) in values {
        let file = dir.path().join(key);
        std::fs::write(&file, value).unwrap();
        args.push("--from-file".into());
        args.push(format!("{key}={}", file.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let secret: serde_json::Value = serde_json::from_str(&ok(&run(&args, &[], None))).unwrap();
    values
        .iter()
        .map(|(key, _)| {
            let data = secret["data"][key].as_str().unwrap();
            let armored = base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap();
            ((*key).to_owned(), String::from_utf8(armored).unwrap())
        })
        .collect()
}

/// A Secret writer (etcd, git, a backup restore) moves capsules: the two
/// keys of Secret `db` swapped, the `db` password put into Secret
/// `api-url` of the same service account, both as environment variables
/// (`--from`) and as files of Secret volumes (`secret:`). `podseal-exec`
/// compares the Secret and key the pod spec names with the capsule's
/// header, refuses naming both (never the plaintext), starts nothing, and
/// asks nothing of the server: the same container then opens the right
/// capsules. A capsule in a variable no `--from` names is refused.
#[test]
fn a_capsule_moved_to_another_key_or_secret_is_refused_by_the_pod_side() {
    const PASSWORD: &str = "db-password-7f3a";
    const USERNAME: &str = "db-username-2c9d";
    const URL: &str = "https://pay.example/hook-51e0";
    let dir = TempDir::new().unwrap();
    let mut deployment = support::Deployment::start(&bin(), dir.path(), "info");
    let pod = deployment.pod("api-0");
    let pod: Vec<(&str, &str)> = pod.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let keys = dir.path().join("keys");
    let db = seal_secret(
        &keys,
        "db",
        &[("password", PASSWORD), ("username", USERNAME)],
    );
    let api_url = seal_secret(&keys, "api-url", &[("url", URL)]);
    let [(_, password), (_, username)] = [db[0].clone(), db[1].clone()];
    let url = api_url[0].1.clone();

    let print = [
        "--",
        "sh",
        "-c",
        "echo started; printf '%s|%s' \"$DB_PASSWORD\" \"$API_URL\"",
    ];
    let refused = |args: &[&str], env: &[(&str, &str)], found: &str, sealed: &str| {
        let args: Vec<&str> = args.iter().chain(&print).copied().collect();
        let mut all = pod.clone();
        all.extend_from_slice(env);
        let output = exec(&args, &all, None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(output.stdout.is_empty(), "the program started: {stderr}");
        assert!(
            stderr.contains(&format!(
                "the capsule found in {found} was sealed for {sealed}"
            )),
            "{stderr}"
        );
        for plaintext in [PASSWORD, USERNAME, URL] {
            assert!(!stderr.contains(plaintext), "{stderr}");
        }
    };
    // The two keys of Secret db swapped.
    refused(
        &["--from", "DB_PASSWORD=db/password"],
        &[("DB_PASSWORD", username.as_str())],
        "Secret db key password",
        "Secret db key username",
    );
    // The db password moved into Secret api-url (same service account).
    refused(
        &[
            "--from",
            "DB_PASSWORD=db/password",
            "--from",
            "API_URL=api-url/url",
        ],
        &[
            ("DB_PASSWORD", password.as_str()),
            ("API_URL", password.as_str()),
        ],
        "Secret api-url key url",
        "Secret db key password",
    );
    // The same through Secret volumes mounted at SECRETS_DIR/<Secret>.
    let secrets = dir.path().join("secrets");
    for (secret, key, capsule) in [("db", "password", &username), ("api-url", "url", &url)] {
        std::fs::create_dir_all(secrets.join(secret)).unwrap();
        std::fs::write(secrets.join(secret).join(key), capsule).unwrap();
    }
    let secrets_dir = secrets.to_str().unwrap();
    refused(
        &[
            "--secrets-dir",
            secrets_dir,
            "--env",
            "DB_PASSWORD=secret:db/password",
        ],
        &[],
        "Secret db key password",
        "Secret db key username",
    );

    // A capsule in a variable that no --from (nor --direct) names.
    let mut env = pod.clone();
    env.push(("DB_PASSWORD", password.as_str()));
    let output = exec(&print, &env, None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty(), "the program started: {stderr}");
    assert!(
        stderr.contains("environment variable DB_PASSWORD holds a capsule, but no --from names the Secret and key"),
        "{stderr}"
    );

    // Nothing above enrolled: the same running container opens the
    // capsules where they belong, by env and by Secret volume.
    std::fs::write(secrets.join("db").join("password"), &password).unwrap();
    let mut env = pod.clone();
    env.push(("API_URL", url.as_str()));
    let args: Vec<&str> = [
        "--from",
        "API_URL=api-url/url",
        "--secrets-dir",
        secrets_dir,
        "--env",
        "DB_PASSWORD=secret:db/password",
    ]
    .iter()
    .chain(&print)
    .copied()
    .collect();
    assert_eq!(
        ok(&exec(&args, &env, None)),
        format!("started\n{PASSWORD}|{URL}")
    );
    deployment.stop();
}
