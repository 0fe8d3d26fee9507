//! `podseal-server` and the admin commands as an operator runs them: real
//! processes (the stand-in, the server), the admin token file from the first
//! start, every admin command with `-o json`, exit codes, the audit export
//! verified offline, and a clean SIGTERM shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

mod support;

use support::{port_of, wait_for_line};

fn bin() -> PathBuf {
    podseal_test_support::binaries::podseal()
}

fn spawn_server(
    args: &[&str],
    env: &[(&str, &str)],
    from_stderr: bool,
    ready: &str,
) -> (support::Process, String, std::sync::mpsc::Receiver<String>) {
    support::spawn(
        &podseal_test_support::binaries::server(),
        args,
        env,
        from_stderr,
        ready,
    )
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn server(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(podseal_test_support::binaries::server())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn ok_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[track_caller]
fn fails(output: &Output, code: i32, needle: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
}

#[test]
fn print_config_and_configuration_errors() {
    let dir = TempDir::new().unwrap();
    let printed = server(
        &["--print-config"],
        &[
            ("PODSEAL_LISTEN", "0.0.0.0:9443"),
            ("PODSEAL_RELEASE_MAX_SESSION_SECS", "900"),
        ],
    );
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let printed = text(&printed.stdout);
    // Issue 14 §4: every key, also the ones that are not set (as a comment
    // naming its variable), and every variable in `--help`.
    for (var, key) in podseal_server::config::env_overrides() {
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            printed
                .lines()
                .any(|l| l.starts_with(&format!("{leaf} = ")))
                || printed.contains(&format!("# {leaf} is not set ({var})")),
            "{key} ({var}) missing from --print-config:\n{printed}"
        );
    }
    let help = text(&server(&["--help"], &[]).stdout);
    for var in podseal_server::config::env_override_names() {
        assert!(help.contains(var), "{var} missing from --help:\n{help}");
    }
    assert!(printed.contains("listen = \"0.0.0.0:9443\""), "{printed}");
    assert!(printed.contains("max_session_secs = 900"), "{printed}");
    // What --print-config prints is a configuration file serve accepts.
    let file = dir.path().join("podseal.toml");
    std::fs::write(&file, &printed).unwrap();
    let again = server(&["--print-config", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(text(&again.stdout), printed);

    // A TOML error is one line saying where and what, then the hint.
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:9443\"\n[release]\nmax_session_secs = \"long\"\n",
    )
    .unwrap();
    let bad = server(&["--config", file.to_str().unwrap()], &[]);
    fails(
        &bad,
        2,
        "line 3, column 20 (max_session_secs): invalid type: string \"long\", expected i64",
    );
    assert_eq!(
        text(&bad.stderr).lines().count(),
        2,
        "{}",
        text(&bad.stderr)
    );
    std::fs::write(&file, "[release]\nmax_sesion_secs = 10\n").unwrap();
    fails(
        &server(&["--config", file.to_str().unwrap()], &[]),
        2,
        "max_sesion_secs",
    );
    fails(
        &server(
            &["--print-config"],
            &[("PODSEAL_RELEASE_MAX_SESSION_SECS", "soon")],
        ),
        2,
        "PODSEAL_RELEASE_MAX_SESSION_SECS",
    );
    let state = dir.path().join("state");
    fails(
        &server(
            &[],
            &[
                ("PODSEAL_STATE_DIR", state.to_str().unwrap()),
                ("PODSEAL_LISTEN", "127.0.0.1:0"),
            ],
        ),
        2,
        "no org key",
    );
    assert!(
        !state.exists(),
        "a failed first start must not create the store (and consume an unseen admin token)"
    );
    // A state directory open to others is refused (it holds the audit key and the database).
    let keys = dir.path().join("keys");
    assert!(
        run(&["keys", "init", "--out", keys.to_str().unwrap()], &[])
            .status
            .success()
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    fails(
        &server(
            &[],
            &[
                ("PODSEAL_STATE_DIR", state.to_str().unwrap()),
                ("PODSEAL_LISTEN", "127.0.0.1:0"),
                (
                    "PODSEAL_ORG_KEY_FILES",
                    keys.join("org.key").to_str().unwrap(),
                ),
            ],
        ),
        1,
        "chmod 700",
    );
}

#[test]
fn serve_then_administer_it_from_the_command_line() {
    let dir = TempDir::new().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (_cluster, line, _) = support::spawn(
        &podseal_test_support::binaries::dev(),
        &[
            "cluster",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            &path("dc"),
        ],
        &[],
        false,
        "dev-cluster serving",
    );
    let cluster_url = line.split_whitespace().nth(2).unwrap().to_owned();
    assert!(
        run(&["keys", "init", "--out", &path("keys")], &[])
            .status
            .success()
    );

    let env_server = [
        ("PODSEAL_ORG_KEY_FILES", path("keys/org.key")),
        ("PODSEAL_STATE_DIR", path("state")),
        ("PODSEAL_LISTEN", "127.0.0.1:0".to_owned()),
        ("PODSEAL_EXTERNAL_URL", "https://localhost".to_owned()),
        ("PODSEAL_CLUSTERS_JWKS_CHECK_SECS", "1".to_owned()),
    ];
    let env_server: Vec<(&str, &str)> = env_server.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let token_file = path("admin.token");
    let (mut server, line, lines) = spawn_server(
        &["--admin-token-file", &token_file],
        &env_server,
        true,
        "listening on",
    );
    let port = port_of(&line);
    // The token file is written (and said) after the listening line.
    wait_for_line(&lines, "admin token written to");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let server_url = format!("https://localhost:{port}");
    let admin_env_owned = [
        ("PODSEAL_SERVER", server_url.clone()),
        ("PODSEAL_CA_FILE", path("state/tls-dev.crt")),
        ("PODSEAL_ADMIN_TOKEN_FILE", token_file.clone()),
    ];
    let admin: Vec<(&str, &str)> = admin_env_owned
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();

    // Register the stand-in: the JWKS is fetched once and pinned.
    let added = ok_json(&run(
        &[
            "cluster",
            "add",
            "prod",
            "--api-server",
            &cluster_url,
            "--ca-bundle",
            &path("dc/ca.pem"),
            "--token-file",
            &path("dc/reader.token"),
            "-o",
            "json",
        ],
        &admin,
    ));
    assert_eq!(added["name"], "prod");
    assert_eq!(added["pinned_kids"].as_array().unwrap().len(), 1);
    // Issue 14 §3: a token file as `kubectl create token > FILE` writes it
    // (a newline at the end) is taken; a CA that did not sign the API
    // server's certificate is named as a TLS trust failure, with the
    // fingerprint of the CA pinned.
    // Issue 21, item 5: `cluster add` works from a machine that shares no
    // file with the server. The CLI runs in a directory of its own and names
    // its files relatively: before, the server looked for them in ITS
    // working directory (it read whatever path a request named); now the
    // CLI reads them and uploads their content, and the files can go.
    let reader_token = std::fs::read_to_string(path("dc/reader.token")).unwrap();
    let client_dir = dir.path().join("client");
    std::fs::create_dir(&client_dir).unwrap();
    std::fs::copy(path("dc/ca.pem"), client_dir.join("ca.pem")).unwrap();
    std::fs::write(
        client_dir.join("reader.token"),
        format!("{}\n", reader_token.trim()),
    )
    .unwrap();
    let newline = Command::new(bin())
        .current_dir(&client_dir)
        .args([
            "cluster",
            "add",
            "newline",
            "--api-server",
            &cluster_url,
            "--ca-bundle",
            "ca.pem",
            "--token-file",
            "reader.token",
            "-o",
            "json",
        ])
        .envs(admin.iter().copied())
        .output()
        .unwrap();
    std::fs::remove_dir_all(&client_dir).unwrap();
    let newline = ok_json(&newline);
    let shown = text(&run(&["cluster", "show", "newline", "-o", "json"], &admin).stdout);
    for answer in [newline.to_string(), shown] {
        assert!(!answer.contains(reader_token.trim()), "{answer}");
        assert!(!answer.contains("reader.token"), "{answer}");
    }
    assert_eq!(newline["pinned_kids"], added["pinned_kids"]);
    // Issue 14 §2: a token that may do far more than read pods (the
    // stand-in's admin token) is refused, naming its rights, unless the
    // admin accepts it by name.
    let (ca, admin_token) = (path("dc/ca.pem"), path("dc/admin.token"));
    let broad = |extra: &[&str]| {
        let mut args = vec![
            "cluster",
            "add",
            "broad",
            "--api-server",
            &cluster_url,
            "--ca-bundle",
            &ca,
            "--token-file",
            &admin_token,
        ];
        args.extend_from_slice(extra);
        run(&args, &admin)
    };
    fails(
        &broad(&[]),
        2,
        "reader_token: it may do more than read pods (* on *.*; * on *): bind it to get, list and watch on pods only (docs/rbac.md), or pass --allow-broad-token",
    );
    fails(&run(&["cluster", "show", "broad"], &admin), 1, "not_found");
    let accepted = broad(&["--allow-broad-token", "-o", "json"]);
    assert_eq!(ok_json(&accepted)["name"], "broad");
    let mut other_ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = other_ca
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(path("other-ca.pem"), other_ca.pem()).unwrap();
    let untrusted = run(
        &[
            "cluster",
            "add",
            "untrusted",
            "--api-server",
            &cluster_url,
            "--ca-bundle",
            &path("other-ca.pem"),
            "--token-file",
            &path("dc/reader.token"),
        ],
        &admin,
    );
    fails(
        &untrusted,
        1,
        &format!(
            "TLS: the API server's certificate is not trusted by the CA pinned at registration (sha256 {})",
            pem_fingerprint(&other_ca.pem())
        ),
    );
    assert_eq!(
        text(&untrusted.stderr).lines().count(),
        1,
        "{}",
        text(&untrusted.stderr)
    );
    fails(
        &run(
            &[
                "cluster",
                "add",
                "prod",
                "--api-server",
                &cluster_url,
                "--ca-bundle",
                &path("dc/ca.pem"),
                "--token-file",
                &path("dc/reader.token"),
            ],
            &admin,
        ),
        1,
        "already_exists",
    );
    let shown = ok_json(&run(&["cluster", "show", "prod", "-o", "json"], &admin));
    assert_eq!(shown["pinned_kids"], added["pinned_kids"]);
    // The CA is pinned too: its fingerprint, and the token rules, are shown.
    let ca_fingerprint = pem_fingerprint(&std::fs::read_to_string(path("dc/ca.pem")).unwrap());
    assert_eq!(
        shown["ca_sha256"],
        serde_json::json!([ca_fingerprint]),
        "{shown}"
    );
    assert_eq!(shown["allow_extra_audiences"], false);
    assert_eq!(shown["max_token_lifetime_secs"], 86_400);
    let human = run(&["cluster", "show", "prod"], &admin);
    assert!(human.status.success());
    let human = text(&human.stdout);
    assert!(
        human.contains(&format!("ca sha256:    {ca_fingerprint}")),
        "{human}"
    );
    assert!(human.contains("extra audiences: refused"), "{human}");
    fails(&run(&["cluster", "show", "nope"], &admin), 1, "not_found");
    let replaced = ok_json(&run(
        &[
            "cluster",
            "add",
            "prod",
            "--api-server",
            &cluster_url,
            "--ca-bundle",
            &path("dc/ca.pem"),
            "--token-file",
            &path("dc/reader.token"),
            "--replace",
            "--allow-extra-audiences",
            "--max-token-lifetime",
            "7200",
            "-o",
            "json",
        ],
        &admin,
    ));
    assert_eq!(replaced["allow_extra_audiences"], true, "{replaced}");
    assert_eq!(replaced["max_token_lifetime_secs"], 7200);
    assert_eq!(replaced["ca_sha256"], shown["ca_sha256"]);

    // API keys: shown once, listed without the key, revoked.
    let created = ok_json(&run(
        &[
            "apikey",
            "create",
            "--cluster",
            "prod",
            "--namespace",
            "shop",
            "--service-account",
            "api",
            "-o",
            "json",
        ],
        &admin,
    ));
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("psk_"));
    let listed = run(&["apikey", "list", "-o", "json"], &admin);
    assert!(!text(&listed.stdout).contains(key), "a listing shows a key");
    let listed = ok_json(&listed);
    assert_eq!(listed[0]["id"], created["id"]);
    assert_eq!(listed[0]["revoked_at"], Value::Null);
    let id = created["id"].as_str().unwrap();
    ok_json(&run(&["apikey", "revoke", id, "-o", "json"], &admin));
    assert!(ok_json(&run(&["apikey", "list", "-o", "json"], &admin))[0]["revoked_at"].is_i64());
    fails(&run(&["apikey", "revoke", id], &admin), 1, "not_found");

    // --out: the key to a new 0600 file, the rest printed, never the key;
    // an existing file is refused before a key is made.
    let key_file = dir.path().join("api.key");
    let create_to_file = || {
        run(
            &[
                "apikey",
                "create",
                "--cluster",
                "prod",
                "--namespace",
                "shop",
                "--service-account",
                "api",
                "--out",
                key_file.to_str().unwrap(),
                "-o",
                "json",
            ],
            &admin,
        )
    };
    let written = create_to_file();
    let written_json = ok_json(&written);
    let stored = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        stored.starts_with("psk_") && stored.ends_with('\n'),
        "the key file holds the key"
    );
    assert!(
        !text(&written.stdout).contains(stored.trim()),
        "the key was printed"
    );
    assert_eq!(written_json["key_file"], key_file.to_str().unwrap());
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let keys_before = ok_json(&run(&["apikey", "list", "-o", "json"], &admin));
    fails(&create_to_file(), 1, "already exists");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), stored);
    assert_eq!(
        ok_json(&run(&["apikey", "list", "-o", "json"], &admin)),
        keys_before,
        "a refused --out made a key anyway"
    );
    fails(
        &run(
            &[
                "apikey",
                "create",
                "--cluster",
                "prod",
                "--namespace",
                "Shop!",
                "--service-account",
                "api",
            ],
            &admin,
        ),
        2,
        "invalid_argument",
    );

    // Policies: digests checked, audit mode loud.
    let digest = format!("sha256:{}", "a".repeat(64));
    let set = run(
        &[
            "policy",
            "set",
            "--cluster",
            "prod",
            "--namespace",
            "shop",
            "--service-account",
            "api",
            "--allow-digest",
            &digest,
            "--audit-mode",
            "-o",
            "json",
        ],
        &admin,
    );
    assert!(
        text(&set.stderr).contains("WARNING: AUDIT MODE"),
        "{}",
        text(&set.stderr)
    );
    assert_eq!(ok_json(&set)["audit_mode"], true);
    fails(
        &run(
            &[
                "policy",
                "set",
                "--cluster",
                "prod",
                "--namespace",
                "shop",
                "--service-account",
                "api",
                "--allow-digest",
                "sha256:abc",
            ],
            &admin,
        ),
        2,
        "not a digest",
    );
    let shown = ok_json(&run(
        &["policy", "show", "--namespace", "shop", "-o", "json"],
        &admin,
    ));
    assert_eq!(shown[0]["digests"][0], digest.as_str());

    // Issue 14 §2: `policy set` never empties the allowlist unasked, says
    // which mode it turns off, and digests change without touching the rest.
    let policy = |verb: &str, extra: &[&str]| {
        let mut args = vec![
            "policy",
            verb,
            "--cluster",
            "prod",
            "--namespace",
            "shop",
            "--service-account",
            "api",
        ];
        args.extend_from_slice(extra);
        run(&args, &admin)
    };
    fails(&policy("set", &["--require-nonce"]), 2, "--allow-digest");
    let nonce = policy(
        "set",
        &["--allow-digest", &digest, "--require-nonce", "-o", "json"],
    );
    assert_eq!(ok_json(&nonce)["require_nonce"], true);
    let other = format!("sha256:{}", "b".repeat(64));
    let with_other = ok_json(&policy("add-digest", &[&other, "-o", "json"]));
    assert_eq!(with_other["digests"], serde_json::json!([digest, other]));
    assert_eq!(
        with_other["require_nonce"], true,
        "add-digest keeps the modes"
    );
    let removed = ok_json(&policy("remove-digest", &[&digest, "-o", "json"]));
    assert_eq!(removed["digests"], serde_json::json!([other]));
    assert_eq!(removed["require_nonce"], true);
    fails(
        &policy("remove-digest", &[&digest]),
        2,
        "is not approved for prod/shop/api",
    );
    let emptied = policy("remove-digest", &[&other]);
    assert!(
        text(&emptied.stderr).contains("approves no digest now"),
        "{}",
        text(&emptied.stderr)
    );
    let turned_off = policy("set", &["--allow-digest", &digest]);
    assert!(turned_off.status.success(), "{}", text(&turned_off.stderr));
    assert!(
        text(&turned_off.stderr).contains("note: require nonce was on and is now off"),
        "{}",
        text(&turned_off.stderr)
    );
    let cleared = policy("set", &["--no-digests", "-o", "json"]);
    assert_eq!(ok_json(&cleared)["digests"], serde_json::json!([]));
    ok_json(&policy("set", &["--allow-digest", &digest, "-o", "json"]));

    // A wrong admin token, and none.
    let wrong = dir.path().join("wrong.token");
    podseal_keys::key_file::write_new(&wrong, b"psa_wrong\n", 0o600).unwrap();
    let mut wrong_env = admin.clone();
    wrong_env[2].1 = wrong.to_str().unwrap();
    fails(
        &run(&["apikey", "list"], &wrong_env),
        1,
        "admin_token_invalid",
    );
    fails(&run(&["apikey", "list"], &admin[..2]), 2, "no admin token");

    // The export verifies offline with the public key the server wrote.
    let export = path("audit.jsonl");
    let exported = run(&["audit", "export", "--out", &export], &admin);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let verified = ok_json(&run(
        &[
            "audit",
            "verify",
            "--key",
            &path("state/audit.pub"),
            &export,
            "-o",
            "json",
        ],
        &[],
    ));
    assert!(verified["records"].as_u64().unwrap() >= 8, "{verified}");

    // SIGTERM: a clean exit with a final checkpoint.
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        let _ = lines.recv_timeout(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");

    // A second start on the same state shows no new admin token and keeps the
    // registrations. The cluster's files are gone from this machine, which
    // does not matter (issue 21, item 5): the CA was pinned and the reader
    // token uploaded at registration; the server reads neither from a path.
    std::fs::rename(path("dc/ca.pem"), path("dc/ca.pem.moved")).unwrap();
    std::fs::rename(path("dc/reader.token"), path("dc/reader.token.moved")).unwrap();
    let (_server, line, _) = spawn_server(
        &["--admin-token-file", &path("second.token")],
        &env_server,
        true,
        "listening on",
    );
    let mut again = admin.clone();
    let second_url = format!("https://localhost:{}", port_of(&line));
    again[0].1 = &second_url;
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        let shown = ok_json(&run(&["cluster", "show", "prod", "-o", "json"], &again));
        if shown["ready"] == true {
            break shown;
        }
        assert!(Instant::now() < deadline, "never connected: {shown}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(shown["pinned_kids"], added["pinned_kids"]);
    assert_eq!(shown["ca_sha256"], serde_json::json!([ca_fingerprint]));
    assert!(!Path::new(&path("second.token")).exists());

    // Issue 14 §3: a dead registration (an API server that never answers,
    // registered with its JWKS and issuer given and its rights unchecked)
    // keeps the server not ready until it is removed, with what was bound
    // to it.
    let (status, jwks) = support::https_get(
        &cluster_url,
        Path::new(&path("dc/ca.pem.moved")),
        "/openid/v1/jwks",
        Duration::from_secs(10),
    );
    assert_eq!(status, 200, "{jwks}");
    std::fs::write(path("jwks.json"), jwks).unwrap();
    ok_json(&run(
        &[
            "cluster",
            "add",
            "dead",
            "--api-server",
            "https://127.0.0.1:1",
            "--ca-bundle",
            &path("dc/ca.pem.moved"),
            "--token-file",
            &path("dc/reader.token.moved"),
            "--jwks-file",
            &path("jwks.json"),
            "--issuer",
            "https://kubernetes.default.svc",
            "--allow-broad-token",
            "-o",
            "json",
        ],
        &again,
    ));
    let bind = [
        "--cluster",
        "dead",
        "--namespace",
        "shop",
        "--service-account",
        "api",
    ];
    ok_json(&run(
        &[&["apikey", "create"][..], &bind, &["-o", "json"]].concat(),
        &again,
    ));
    ok_json(&run(
        &[
            &["policy", "set"][..],
            &bind,
            &["--allow-digest", &digest, "-o", "json"],
        ]
        .concat(),
        &again,
    ));
    let shown = ok_json(&run(&["cluster", "show", "dead", "-o", "json"], &again));
    assert_eq!(shown["ready"], false, "{shown}");
    let ready = || {
        support::https_get(
            &second_url,
            Path::new(&path("state/tls-dev.crt")),
            "/readyz",
            Duration::from_secs(10),
        )
    };
    let (status, body) = ready();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cluster dead"), "{body}");
    let removed = ok_json(&run(&["cluster", "remove", "dead", "-o", "json"], &again));
    assert_eq!(removed["removed"], "dead");
    assert_eq!(removed["api_keys_deleted"], 1, "{removed}");
    assert_eq!(removed["policies_deleted"], 1, "{removed}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = ready();
        if status == 200 {
            break;
        }
        assert!(!body.contains("cluster dead"), "{body}");
        assert!(Instant::now() < deadline, "not ready: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    fails(&run(&["cluster", "show", "dead"], &again), 1, "not_found");
    fails(&run(&["cluster", "remove", "dead"], &again), 1, "not_found");
    let keys = ok_json(&run(&["apikey", "list", "-o", "json"], &again));
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .all(|k| k["cluster"] != "dead"),
        "{keys}"
    );

    // Issue 14 §3: the cluster rotates its token-signing key; `cluster
    // show` names the key id it publishes that is not pinned, and how on.
    std::fs::rename(path("dc/ca.pem.moved"), path("dc/ca.pem")).unwrap();
    std::fs::rename(path("dc/reader.token.moved"), path("dc/reader.token")).unwrap();
    support::run_ok(
        &podseal_test_support::binaries::dev(),
        &[
            "cluster",
            "rotate-signing-key",
            "--keep-old",
            "--dir",
            &path("dc"),
        ],
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let unpinned = loop {
        let shown = ok_json(&run(&["cluster", "show", "newline", "-o", "json"], &again));
        if let Some(kids) = shown["unpinned_kids"].as_array().filter(|k| !k.is_empty()) {
            break kids.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the rotation was never shown: {shown}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(unpinned.len(), 1);
    let human = text(&run(&["cluster", "show", "newline"], &again).stdout);
    assert!(
        human.contains(&format!("UNPINNED KIDS: {}", unpinned[0].as_str().unwrap()))
            && human.contains("podseal cluster add newline … --replace"),
        "{human}"
    );
}

/// Issue 12, item 3: the audit key is continuous. A start whose key did not
/// sign the log (deleted and so regenerated, or another deployment's key)
/// refuses, writes no key material and leaves `audit.pub` alone; the
/// audited hand-over is the one way to a new key, and the export then
/// verifies with the original `audit.pub`.
#[test]
fn the_audit_key_cannot_change_under_the_log() {
    let dir = TempDir::new().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    assert!(
        run(&["keys", "init", "--out", &path("keys")], &[])
            .status
            .success()
    );
    let env = |extra: &[(&'static str, String)]| {
        let mut env = vec![
            ("PODSEAL_ORG_KEY_FILES", path("keys/org.key")),
            ("PODSEAL_STATE_DIR", path("state")),
            ("PODSEAL_LISTEN", "127.0.0.1:0".to_owned()),
            ("PODSEAL_EXTERNAL_URL", "https://localhost".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        env
    };
    let serve_until_ready = |extra: &[(&'static str, String)]| {
        let env = env(extra);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (server, line, lines) = spawn_server(
            &["--admin-token-file", &path("admin.token")],
            &env,
            true,
            "listening on",
        );
        (server, port_of(&line), lines)
    };
    let serve_fails = |extra: &[(&'static str, String)], needle: &str| {
        let env = env(extra);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let output = server(&["--admin-token-file", &path("admin.token")], &env);
        assert!(
            !output.status.success(),
            "serve started with a key that forks the log"
        );
        let stderr = text(&output.stderr);
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    };
    // A first start, an audited (refused) admin request, a final checkpoint.
    let (mut server, port, lines) = serve_until_ready(&[]);
    wait_for_line(&lines, "admin token written to");
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path("wrong.token"))
            .unwrap();
        std::io::Write::write_all(&mut file, b"psa_wrong").unwrap();
    }
    let admin = [
        ("PODSEAL_SERVER", format!("https://localhost:{port}")),
        ("PODSEAL_CA_FILE", path("state/tls-dev.crt")),
        ("PODSEAL_ADMIN_TOKEN_FILE", path("wrong.token")),
    ];
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = run(&["cluster", "list"], &admin);
    assert!(
        text(&refused.stderr).contains("admin"),
        "{}",
        text(&refused.stderr)
    );
    support::terminate(&mut server, &lines);
    let public = std::fs::read(path("state/audit.pub")).unwrap();

    // The key deleted: refused, twice, and no new key is written.
    std::fs::rename(path("state/audit.key"), path("kept-audit.key")).unwrap();
    for _ in 0..2 {
        serve_fails(&[], "is missing");
        assert!(
            !Path::new(&path("state/audit.key")).exists(),
            "a failed start wrote a key"
        );
    }
    // Another deployment's key named by audit.key_file: refused.
    let other = TempDir::new().unwrap();
    let (mut foreign, _, foreign_lines) = {
        let env = [
            ("PODSEAL_ORG_KEY_FILES", path("keys/org.key")),
            (
                "PODSEAL_STATE_DIR",
                other.path().join("state").to_str().unwrap().to_owned(),
            ),
            ("PODSEAL_LISTEN", "127.0.0.1:0".to_owned()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let token = other.path().join("admin.token");
        spawn_server(
            &["--admin-token-file", token.to_str().unwrap()],
            &env,
            true,
            "listening on",
        )
    };
    support::terminate(&mut foreign, &foreign_lines);
    let foreign_key = other
        .path()
        .join("state/audit.key")
        .to_str()
        .unwrap()
        .to_owned();
    std::fs::rename(path("kept-audit.key"), path("state/audit.key")).unwrap();
    serve_fails(
        &[("PODSEAL_AUDIT_KEY_FILE", foreign_key.clone())],
        "not this log's key",
    );
    assert_eq!(
        std::fs::read(path("state/audit.pub")).unwrap(),
        public,
        "audit.pub rewritten"
    );

    // The hand-over: the old key signs it, the new key serves, the export
    // verifies with the original audit.pub, and the old key is refused after.
    let (mut server, port, lines) =
        serve_until_ready(&[("PODSEAL_AUDIT_ROTATE_TO_KEY_FILE", foreign_key.clone())]);
    let admin = [
        ("PODSEAL_SERVER", format!("https://localhost:{port}")),
        ("PODSEAL_CA_FILE", path("state/tls-dev.crt")),
        ("PODSEAL_ADMIN_TOKEN_FILE", path("admin.token")),
    ];
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let export = run(&["audit", "export"], &admin);
    assert!(export.status.success(), "{}", text(&export.stderr));
    support::terminate(&mut server, &lines);
    std::fs::write(path("export.jsonl"), &export.stdout).unwrap();
    assert!(text(&export.stdout).contains("audit_key_rotated"));
    let verify = run(
        &[
            "audit",
            "verify",
            "--key",
            &path("state/audit.pub"),
            &path("export.jsonl"),
        ],
        &[],
    );
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert_eq!(
        std::fs::read(path("state/audit.pub")).unwrap(),
        public,
        "audit.pub rewritten"
    );
    let retired = std::fs::read_dir(path("state"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("audit.key.retired-")
        })
        .expect("the old key kept beside the new one");
    serve_fails(
        &[(
            "PODSEAL_AUDIT_KEY_FILE",
            retired.path().to_str().unwrap().to_owned(),
        )],
        "not this log's key",
    );
}

/// The SHA-256 fingerprint of the one certificate in `pem`.
fn pem_fingerprint(pem: &str) -> String {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    podseal_https::fingerprint(&der)
}

#[test]
fn a_staleness_bound_out_of_range_is_refused_with_exit_2() {
    // A view allowed to be a day old would keep granting pods that are gone.
    let dir = TempDir::new().unwrap();
    let state = dir.path().join("state");
    let file = dir.path().join("podseal.toml");
    std::fs::write(&file, "[clusters]\nmax_staleness_secs = 999999999\n").unwrap();
    let state_env = ("PODSEAL_STATE_DIR", state.to_str().unwrap());
    fails(
        &server(
            &["--config", file.to_str().unwrap()],
            &[state_env, ("PODSEAL_LISTEN", "127.0.0.1:0")],
        ),
        2,
        "clusters.max_staleness_secs = 999999999 must be between 1 and 60",
    );
    fails(
        &server(
            &[],
            &[
                state_env,
                ("PODSEAL_LISTEN", "127.0.0.1:0"),
                ("PODSEAL_CLUSTERS_MAX_STALENESS_SECS", "61"),
            ],
        ),
        2,
        "clusters.max_staleness_secs = 61 must be between 1 and 60",
    );
    // The audit origin is the checkpoints' signed-note key name (issue 13).
    fails(
        &server(
            &[],
            &[
                state_env,
                ("PODSEAL_LISTEN", "127.0.0.1:0"),
                ("PODSEAL_AUDIT_ORIGIN", "podseal audit+1"),
            ],
        ),
        2,
        "audit.origin: the audit log origin \"podseal audit+1\" holds a space, a '+' or a control character",
    );
    assert!(!state.exists(), "a refused configuration created the store");
    // The default is the documented 5 s.
    let printed = server(&["--print-config"], &[]);
    assert!(
        text(&printed.stdout).contains("max_staleness_secs = 5\n"),
        "{}",
        text(&printed.stdout)
    );
}

/// Spawns `podseal-server` and returns it with every line of its stderr up
/// to and including the one containing `until` (deadline 60 s).
fn serve_lines(env: &[(&str, &str)], until: &str) -> (support::Process, Vec<String>) {
    use std::io::BufRead as _;
    let mut child = Command::new(podseal_test_support::binaries::server())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let process = support::Process(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {until:?} in time; stderr so far: {lines:#?}"));
        let done = line.contains(until);
        lines.push(line);
        if done {
            return (process, lines);
        }
    }
}

#[test]
fn a_misspelled_variable_is_named_with_the_nearest_known_one() {
    let dir = TempDir::new().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    assert!(
        run(&["keys", "init", "--out", &path("keys")], &[])
            .status
            .success()
    );
    // The value is distinctive so that it can be looked for, and must never be printed.
    let value = "7331-not-to-be-printed";
    let (_server, lines) = serve_lines(
        &[
            ("PODSEAL_ORG_KEY_FILES", &path("keys/org.key")),
            ("PODSEAL_STATE_DIR", &path("state")),
            ("PODSEAL_LISTEN", "127.0.0.1:0"),
            ("PODSEAL_EXTERNAL_URL", "https://localhost"),
            ("PODSEAL_MAX_STALENES_SECS", value),
            // Read by other podseal commands, so not a mistake here.
            ("PODSEAL_SERVER", "https://localhost:1"),
        ],
        "listening on",
    );
    let all = lines.join("\n");
    let named = |line: &&String| {
        line.contains("PODSEAL_MAX_STALENES_SECS")
            && line.contains("PODSEAL_CLUSTERS_MAX_STALENESS_SECS")
    };
    assert!(
        lines
            .iter()
            .any(|l| named(&l) && l.starts_with("warning: ")),
        "no warning on stderr: {all}"
    );
    assert!(
        lines.iter().any(|l| named(&l) && l.contains(" WARN ")),
        "no warn-level log line: {all}"
    );
    assert!(!all.contains(value), "the value was printed: {all}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("PODSEAL_SERVER") && !l.contains("listening")),
        "a client variable was warned about: {all}"
    );
}

/// Claim: the development certificate survives a restart (clients' `--ca`
/// and pinned fingerprints keep working); its key is kept beside it, 0600;
/// a server whose external host changed gets a new one.
#[test]
fn the_development_certificate_survives_a_restart() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    assert!(
        run(&["keys", "init", "--out", &path("keys")], &[])
            .status
            .success()
    );
    let start = |external: &str| {
        let (mut server, lines) = serve_lines(
            &[
                ("PODSEAL_ORG_KEY_FILES", &path("keys/org.key")),
                ("PODSEAL_STATE_DIR", &path("state")),
                ("PODSEAL_LISTEN", "127.0.0.1:0"),
                ("PODSEAL_EXTERNAL_URL", external),
            ],
            "fingerprint",
        );
        let line = lines.iter().find(|l| l.contains("fingerprint")).unwrap();
        let fingerprint = line.rsplit(' ').next().unwrap().to_owned();
        let cert = std::fs::read_to_string(path("state/tls-dev.crt")).unwrap();
        let _ = server.0.kill();
        let _ = server.0.wait();
        (fingerprint, cert)
    };
    let (first, first_cert) = start("https://localhost:8443");
    assert_eq!(first, pem_fingerprint(&first_cert));
    let key_mode = std::fs::metadata(path("state/tls-dev.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    let (again, again_cert) = start("https://localhost:8443");
    assert_eq!(again, first, "a restart kept the certificate");
    assert_eq!(again_cert, first_cert);

    let (renamed, renamed_cert) = start("https://podseal.example:8443");
    assert_ne!(renamed, first, "a new external host gets a new certificate");
    assert_eq!(renamed, pem_fingerprint(&renamed_cert));
}
