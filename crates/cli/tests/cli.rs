//! Runs the real `podseal` binary: the happy paths a user takes, and bad
//! input to every command, which must give one `error:` line (optionally a
//! `hint:` line), a non-zero exit code, and never a panic or a secret.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use k8s_openapi::api::core::v1::Secret;
use tempfile::TempDir;

const MARKER: &str = "S3CRET-MARKER-7f3a";

fn podseal() -> Command {
    Command::cargo_bin("podseal").unwrap()
}

fn cmd(args: &[&str]) -> Command {
    let mut command = podseal();
    command.args(args);
    command
}

struct Workspace {
    dir: TempDir,
}

impl Workspace {
    fn new() -> Self {
        let ws = Self {
            dir: TempDir::new().unwrap(),
        };
        podseal()
            .args(["keys", "init", "--out"])
            .arg(ws.keys())
            .assert()
            .success();
        ws
    }
    fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }
    fn public(&self) -> PathBuf {
        self.keys().join("org.pub")
    }
    fn private(&self) -> PathBuf {
        self.keys().join("org.key")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn seal_args(&self) -> Vec<String> {
        [
            "seal",
            "--key",
            self.public().to_str().unwrap(),
            "--cluster",
            "prod",
            "--namespace",
            "shop",
        ]
        .into_iter()
        .chain(["--service-account", "api"])
        .map(str::to_owned)
        .collect()
    }
    fn seal(&self, secret: &[u8]) -> String {
        let out = podseal()
            .args(self.seal_args())
            .args(["--name", "db"])
            .write_stdin(secret)
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }
}

/// Asserts a clean failure: exit code, one error line (plus an optional
/// hint), no panic, no secret. Returns the error line.
fn assert_clean_failure(output: &std::process::Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        !lines.is_empty() && lines.len() <= 2,
        "one error line and at most one hint: {stderr}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    if let Some(hint) = lines.get(1) {
        assert!(hint.starts_with("hint: "), "{stderr}");
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(MARKER),
        "secret leaked into an error: {stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains(MARKER));
    lines[0].to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keys_init_writes_private_0600_and_refuses_to_overwrite() {
    let ws = Workspace::new();
    assert_eq!(mode(&ws.private()), 0o600);
    assert_eq!(mode(&ws.keys()), 0o700);
    let out = podseal()
        .args(["keys", "init", "--out"])
        .arg(ws.keys())
        .output()
        .unwrap();
    assert!(assert_clean_failure(&out, 2).contains("refusing to overwrite"));

    let shown = |file: &Path| {
        let out = podseal()
            .args(["keys", "show", "-o", "json"])
            .arg(file)
            .assert()
            .success();
        serde_json::from_slice::<serde_json::Value>(&out.get_output().stdout).unwrap()
    };
    let (public, private) = (shown(&ws.public()), shown(&ws.private()));
    assert_eq!(public["kid"], private["kid"]);
    assert_eq!(public["kid"].as_str().unwrap().len(), 22);
    let private_text = std::fs::read_to_string(ws.private()).unwrap();
    let secret_line = private_text
        .lines()
        .find(|l| l.starts_with("PODSEAL-ORG-PRIVATE-KEY"))
        .unwrap();
    let secret_part = secret_line.rsplit(':').next().unwrap();
    assert!(
        !private.to_string().contains(secret_part),
        "keys show printed the private key"
    );
}

#[test]
fn seal_inspect_open_round_trip() {
    let ws = Workspace::new();
    let capsule = ws.seal(MARKER.as_bytes());
    assert!(capsule.starts_with("podseal:v1:"));
    assert!(!capsule.contains(MARKER));
    std::fs::write(ws.path("c"), &capsule).unwrap();

    let inspected = podseal()
        .args(["inspect", "-o", "json"])
        .arg(ws.path("c"))
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&inspected.get_output().stdout).unwrap();
    assert_eq!(json["header"]["scope"]["kubernetes"]["namespace"], "shop");
    assert_eq!(json["header"]["reveal"], "many");
    assert!(!String::from_utf8_lossy(&inspected.get_output().stdout).contains(MARKER));
    podseal()
        .args(["inspect", capsule.trim()])
        .assert()
        .success();
    podseal()
        .args(["inspect", "-"])
        .write_stdin(capsule.clone())
        .assert()
        .success();

    let opened = podseal()
        .args(["open", "--key"])
        .arg(ws.private())
        .arg(ws.path("c"))
        .assert()
        .success();
    assert_eq!(opened.get_output().stdout, MARKER.as_bytes());
    assert!(String::from_utf8_lossy(&opened.get_output().stderr).contains("break-glass"));
}

/// Claim: `podseal inspect` names each stanza's kind and key (kid and
/// suite for hpke, key name and version for transit, the type tag of an
/// unknown kind) and says in words who may open the capsule, for every
/// scope kind, in text and in `-o json`; never the secret.
#[test]
fn inspect_names_stanza_kinds_and_who_may_open() {
    use podseal_core::capsule::{
        Capsule, OidcScope, Scope, SpiffeScope, Stanza, TransitStanza, UnknownStanza,
    };
    use podseal_core::envelope::{self, SealParams};
    use podseal_core::org_key::OrgPublicKey;
    use podseal_test_support::fixtures::seal_params;

    let ws = Workspace::new();
    let inspect = |capsule: &str| {
        let text = podseal().args(["inspect", capsule]).assert().success();
        let json = podseal()
            .args(["inspect", "-o", "json", capsule])
            .assert()
            .success();
        let text = String::from_utf8(text.get_output().stdout.clone()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json.get_output().stdout).unwrap();
        assert!(!text.contains(MARKER) && !json.to_string().contains(MARKER));
        (text, json)
    };

    // A kubernetes capsule sealed by the CLI.
    let (text, json) = inspect(ws.seal(MARKER.as_bytes()).trim());
    let who = "pods running as service account api in namespace shop on cluster prod";
    assert!(text.contains("scope          kubernetes\n"), "{text}");
    assert!(text.contains(&format!("may open       {who}\n")), "{text}");
    assert_eq!(json["scope_kind"], "kubernetes");
    assert_eq!(json["who_may_open"], who);
    let kid = json["wraps"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(json["wraps"][0]["kind"], "hpke");
    assert!(
        text.contains(&format!(
            "wrapped to     hpke kid {kid} (X25519-HKDF-SHA256, HKDF-SHA256, AES-256-GCM)"
        )),
        "{text}"
    );

    // A spiffe capsule with a transit and an unknown stanza beside its hpke one.
    let public = OrgPublicKey::from_text(&std::fs::read_to_string(ws.public()).unwrap()).unwrap();
    let sealed = |scope: Scope| {
        let params = SealParams {
            created_at: 1_790_000_000,
            ..seal_params(scope)
        };
        envelope::seal(params, MARKER.as_bytes(), &[&public]).unwrap()
    };
    let spiffe = sealed(Scope::Spiffe(SpiffeScope {
        trust_domain: "prod.example".into(),
        ids: vec![
            "spiffe://prod.example/ns/shop/sa/api".into(),
            "spiffe://prod.example/web".into(),
        ],
    }));
    let mut stanzas = spiffe.envelope.stanzas().to_vec();
    stanzas.push(Stanza::Transit(TransitStanza {
        key_name: "podseal-org".into(),
        key_version: 3,
        ciphertext: b"vault:v3:AAAA".to_vec(),
    }));
    stanzas.push(Stanza::Unknown(UnknownStanza {
        kind: 0x7f,
        body: vec![0; 12],
    }));
    let spiffe = Capsule {
        envelope: spiffe.envelope.with_stanzas(stanzas).unwrap(),
        ..spiffe
    };
    let (text, json) = inspect(&spiffe.to_armored());
    let who = "workloads holding the SPIFFE ID spiffe://prod.example/ns/shop/sa/api or spiffe://prod.example/web (trust domain prod.example)";
    for line in [
        "scope          spiffe",
        "trust domain   prod.example",
        &format!("may open       {who}"),
        "wrapped to     transit key podseal-org version 3",
        "wrapped to     unknown kind 0x7f (12 bytes, kept but not opened by this build)",
    ] {
        assert!(text.contains(&format!("{line}\n")), "{line}: {text}");
    }
    assert_eq!(json["scope_kind"], "spiffe");
    assert_eq!(json["who_may_open"], who);
    assert_eq!(
        json["header"]["scope"]["spiffe"]["trust_domain"],
        "prod.example"
    );
    let wraps = json["wraps"].as_array().unwrap();
    assert_eq!(wraps.len(), 3);
    assert_eq!(
        (wraps[0]["kind"].as_str(), wraps[0]["kid"].as_str()),
        (Some("hpke"), Some(kid.as_str()))
    );
    assert_eq!(wraps[1]["kind"], "transit");
    assert_eq!(wraps[1]["key_name"], "podseal-org");
    assert_eq!(wraps[1]["key_version"], 3);
    assert_eq!(wraps[2]["kind"], "unknown");
    assert_eq!(wraps[2]["type_tag"], 0x7f);
    assert_eq!(wraps[2]["body_len"], 12);

    // An oidc capsule.
    let oidc = sealed(Scope::Oidc(OidcScope {
        issuer: "https://token.actions.githubusercontent.com".into(),
        claims: std::collections::BTreeMap::from([
            ("ref".into(), vec!["refs/heads/main".into()]),
            (
                "repository".into(),
                vec!["octo/shop".into(), "octo/web".into()],
            ),
        ]),
    }));
    let (text, json) = inspect(&oidc.to_armored());
    let who = "holders of a token issued by https://token.actions.githubusercontent.com whose claim ref is refs/heads/main and whose claim repository is octo/shop or octo/web";
    assert!(
        text.contains("claim          repository = octo/shop | octo/web\n"),
        "{text}"
    );
    assert!(text.contains(&format!("may open       {who}\n")), "{text}");
    assert_eq!(json["scope_kind"], "oidc");
    assert_eq!(json["who_may_open"], who);

    // Break-glass open still works for a non-kubernetes scope, and says which.
    std::fs::write(ws.path("spiffe"), spiffe.to_armored()).unwrap();
    let opened = podseal()
        .args(["open", "--key"])
        .arg(ws.private())
        .arg(ws.path("spiffe"))
        .assert()
        .success();
    assert_eq!(opened.get_output().stdout, MARKER.as_bytes());
    assert!(String::from_utf8_lossy(&opened.get_output().stderr).contains("(spiffe scope)"));
}

#[test]
fn k8s_secret_manifest_deserializes_into_k8s_openapi_secret() {
    let ws = Workspace::new();
    std::fs::write(ws.path("user"), "app-user").unwrap();
    for format in ["text", "json"] {
        let out = podseal()
            .args(ws.seal_args())
            .args([
                "--k8s-secret",
                "db",
                "--from-file",
                "password=-",
                "--from-file",
            ])
            .arg(format!("user={}", ws.path("user").display()))
            .args(["-o", format])
            .write_stdin(MARKER)
            .assert()
            .success();
        let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        assert!(!text.contains(MARKER));
        let secret: Secret = if format == "json" {
            serde_json::from_str(&text).unwrap()
        } else {
            serde_saphyr::from_str(&text).unwrap()
        };
        assert_eq!(secret.metadata.name.as_deref(), Some("db"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(secret.type_.as_deref(), Some("podseal.dev/sealed"));
        assert_eq!(
            secret.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
            "podseal"
        );
        let annotations = secret.metadata.annotations.unwrap();
        assert_eq!(annotations["podseal.dev/cluster"], "prod");
        assert_eq!(annotations["podseal.dev/kids"].len(), 22);
        let data = secret.data.unwrap();
        assert_eq!(data.len(), 2);
        for (key, expected) in [("password", MARKER), ("user", "app-user")] {
            let capsule = String::from_utf8(data[key].0.clone()).unwrap();
            let inspected = podseal()
                .args(["inspect", "-o", "json", &capsule])
                .assert()
                .success();
            let json: serde_json::Value =
                serde_json::from_slice(&inspected.get_output().stdout).unwrap();
            assert_eq!(json["header"]["scope"]["kubernetes"]["name"], "db");
            assert_eq!(
                json["header"]["scope"]["kubernetes"]["key"], key,
                "each capsule is bound to its data key"
            );
            let opened = podseal()
                .args(["open", "--key"])
                .arg(ws.private())
                .arg(&capsule)
                .assert()
                .success();
            assert_eq!(opened.get_output().stdout, expected.as_bytes());
        }
    }
}

#[test]
fn bad_input_to_every_command_fails_cleanly() {
    let ws = Workspace::new();
    let capsule = ws.seal(MARKER.as_bytes()).trim().to_owned();
    let body = capsule.strip_prefix("podseal:v1:").unwrap();
    std::fs::write(ws.path("garbage.key"), "not a key\n").unwrap();
    std::fs::set_permissions(
        ws.path("garbage.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::copy(ws.private(), ws.path("loose.key")).unwrap();
    std::fs::set_permissions(ws.path("loose.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(ws.path("big"), vec![b'x'; (1 << 20) + 1]).unwrap();
    let other = TempDir::new().unwrap();
    podseal()
        .args(["keys", "init", "--out"])
        .arg(other.path())
        .assert()
        .success();
    let mut tampered = capsule.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    let seal = |extra: &[&str]| {
        let mut cmd = podseal();
        cmd.args(ws.seal_args()).args(extra);
        cmd
    };
    let open = |key: &Path, capsule: &str| {
        let mut cmd = podseal();
        cmd.args(["open", "--key"]).arg(key).arg(capsule);
        cmd
    };
    let inspect = |capsule: &str| {
        let mut cmd = podseal();
        cmd.args(["inspect", capsule]);
        cmd
    };
    let key_arg = |path: PathBuf| path.to_str().unwrap().to_owned();
    let cases: Vec<(&str, Command, &[u8], i32, &str)> = vec![
        (
            "truncated capsule",
            inspect(&capsule[..capsule.len() / 2]),
            b"",
            2,
            "truncated",
        ),
        (
            "wrong prefix",
            inspect(&format!("sealed:v1:{body}")),
            b"",
            2,
            "neither a capsule nor an existing file",
        ),
        (
            "wrong prefix on stdin",
            inspect("-"),
            b"age1abc",
            2,
            "must start with `podseal:v1:`",
        ),
        (
            "unknown version",
            inspect(&format!("podseal:v2:{body}")),
            b"",
            2,
            "version `v2` is not supported",
        ),
        (
            "bad base64",
            inspect(&format!("podseal:v1:{body}=")),
            b"",
            2,
            "not valid base64url",
        ),
        (
            "empty capsule on stdin",
            inspect("-"),
            b"",
            2,
            "capsule is empty",
        ),
        (
            "missing key file",
            seal(&["--name", "x", "--key", "/nonexistent/org.pub"]),
            MARKER.as_bytes(),
            2,
            "does not exist",
        ),
        (
            "private key for sealing",
            cmd(&[
                "seal",
                "--key",
                &key_arg(ws.private()),
                "--cluster",
                "c",
                "--namespace",
                "n",
                "--service-account",
                "s",
                "--name",
                "x",
            ]),
            MARKER.as_bytes(),
            2,
            "PRIVATE key",
        ),
        (
            "garbage key file",
            open(&ws.path("garbage.key"), &capsule),
            b"",
            2,
            "no podseal org key found",
        ),
        (
            "public key for opening",
            open(&ws.public(), &capsule),
            b"",
            2,
            "opening needs the private key",
        ),
        (
            "key file with loose permissions",
            open(&ws.path("loose.key"), &capsule),
            b"",
            2,
            "mode 0644",
        ),
        (
            "another org key",
            open(&other.path().join("org.key"), &capsule),
            b"",
            1,
            "none of which is held here",
        ),
        (
            "tampered capsule",
            open(&ws.private(), &tampered),
            b"",
            1,
            "did not open",
        ),
        ("empty stdin", seal(&["--name", "x"]), b"", 2, "is empty"),
        (
            "secret over the size limit (stdin)",
            seal(&["--name", "x"]),
            &[b'x'; (1 << 20) + 1],
            2,
            "over the 1048576-byte limit",
        ),
        (
            "secret over the size limit (file)",
            seal(&["--name", "x", "--from-file", &key_arg(ws.path("big"))]),
            b"",
            2,
            "over the 1048576-byte limit",
        ),
        (
            "missing secret file",
            seal(&["--name", "x", "--from-file", "/nonexistent/secret"]),
            b"",
            2,
            "cannot read /nonexistent/secret",
        ),
        (
            "not-after in the past",
            seal(&["--name", "x", "--not-after", "2001-01-01T00:00:00Z"]),
            MARKER.as_bytes(),
            2,
            "not in the future",
        ),
        (
            "not-after not a time",
            seal(&["--name", "x", "--not-after", "soon"]),
            MARKER.as_bytes(),
            2,
            "is not a time",
        ),
        (
            "invalid namespace",
            cmd(&[
                "seal",
                "--key",
                &key_arg(ws.public()),
                "--cluster",
                "c",
                "--namespace",
                "Shop_1",
                "--service-account",
                "s",
                "--name",
                "x",
            ]),
            MARKER.as_bytes(),
            2,
            "--namespace `Shop_1` is invalid",
        ),
        (
            "seal without a name",
            seal(&[]),
            MARKER.as_bytes(),
            2,
            "--name is required",
        ),
        (
            "manifest without files",
            seal(&["--k8s-secret", "db"]),
            MARKER.as_bytes(),
            2,
            "needs at least one --from-file",
        ),
        (
            "manifest with a bad key",
            seal(&["--k8s-secret", "db", "--from-file", "a/b=-"]),
            MARKER.as_bytes(),
            2,
            "Secret key `a/b` is invalid",
        ),
        (
            "manifest with a duplicate key",
            seal(&[
                "--k8s-secret",
                "db",
                "--from-file",
                "a=-",
                "--from-file",
                "a=-",
            ]),
            MARKER.as_bytes(),
            2,
            "given twice",
        ),
        (
            "keys show of a missing file",
            cmd(&["keys", "show", "/nonexistent/org.pub"]),
            b"",
            2,
            "does not exist",
        ),
    ];
    for (name, mut command, stdin, code, expected) in cases {
        let output = command.write_stdin(stdin).output().unwrap();
        let line = assert_clean_failure(&output, code);
        assert!(
            line.contains(expected),
            "{name}: expected `{expected}` in `{line}`"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_help_teaches() {
    // One error line and one hint naming the command's --help, not clap's
    // five-to-seven-line report.
    // --version names the commit it was built from.
    let version = podseal().arg("--version").assert().success();
    let version = String::from_utf8_lossy(&version.get_output().stdout).into_owned();
    assert!(version.starts_with("podseal 0."), "{version}");
    assert!(version.contains("(commit "), "{version}");
    let out = podseal().args(["seal", "--bogus"]).output().unwrap();
    assert_clean_failure(&out, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--bogus"), "{stderr}");
    assert!(stderr.contains("hint: `podseal seal --help`"), "{stderr}");
    let out = podseal().arg("sael").output().unwrap();
    assert_clean_failure(&out, 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean `seal`?"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = podseal().args(["open", "--help"]).assert().success();
    let help = String::from_utf8(help.get_output().stdout.clone()).unwrap();
    assert!(help.contains("BREAK-GLASS"), "{help}");
    let help = podseal().args(["seal", "--help"]).assert().success();
    assert!(String::from_utf8_lossy(&help.get_output().stdout).contains("never from an argument"));
}

#[test]
fn audit_verify_passes_on_an_intact_export_and_fails_on_an_edited_one() {
    use podseal_core::audit::{
        AuditKey, AuditRecord, Event, ExportLine, Frontier, LogOrigin, Outcome, leaf_hash,
        public_key_text,
    };
    let dir = TempDir::new().unwrap();
    let key = AuditKey::generate().unwrap();
    std::fs::write(
        dir.path().join("audit.pub"),
        public_key_text(&key.public_key()),
    )
    .unwrap();
    let mut lines = Vec::new();
    let mut tree = Frontier::new();
    for seq in 1..=3 {
        let record = AuditRecord {
            seq,
            time_ms: 1,
            event: Event::Unwrap.into(),
            outcome: Outcome::Allowed,
            gate: None,
            reason: None,
            details: Default::default(),
        };
        let bytes = serde_json::to_vec(&record).unwrap();
        let leaf = leaf_hash(&bytes);
        tree.push(leaf).unwrap();
        lines.push(serde_json::to_string(&ExportLine::record(seq, &bytes, &leaf)).unwrap());
    }
    let origin = LogOrigin::new("test").unwrap();
    lines.push(
        serde_json::to_string(&ExportLine::Checkpoint(key.checkpoint(
            &origin,
            3,
            &tree.root(),
        )))
        .unwrap(),
    );
    std::fs::write(dir.path().join("audit.jsonl"), lines.join("\n")).unwrap();
    let verify = |file: &str| {
        podseal()
            .args(["audit", "verify", "--key"])
            .arg(dir.path().join("audit.pub"))
            .arg(dir.path().join(file))
            .output()
            .unwrap()
    };

    let ok = verify("audit.jsonl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout)
            .starts_with("audit log verifies: 3 records, 1 checkpoint,")
    );

    let mut swapped = lines.clone();
    swapped.swap(0, 1);
    std::fs::write(dir.path().join("swapped.jsonl"), swapped.join("\n")).unwrap();
    let line = assert_clean_failure(&verify("swapped.jsonl"), 1);
    assert!(
        line.contains("does NOT verify") && line.contains("removed, inserted or reordered"),
        "{line}"
    );

    let line = assert_clean_failure(&verify("missing.jsonl"), 2);
    assert!(line.contains("cannot read the export"), "{line}");

    // An empty export, or records without any checkpoint, is not a log a
    // key vouches for: it fails rather than "verifying 0 records".
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let line = assert_clean_failure(&verify("empty.jsonl"), 1);
    assert!(line.contains("no signed checkpoint"), "{line}");
    let unsigned = &lines[..3];
    std::fs::write(dir.path().join("unsigned.jsonl"), unsigned.join("\n")).unwrap();
    let line = assert_clean_failure(&verify("unsigned.jsonl"), 1);
    assert!(line.contains("no signed checkpoint"), "{line}");
}

/// Claim: what `seal` writes, the release server and the API server can
/// take. A reveal-once capsule, which the release server cannot release
/// yet, is refused at seal time; a Secret manifest whose data would pass
/// Kubernetes' 1 MiB limit is refused at seal time, naming the limit.
#[test]
fn seal_refuses_what_the_server_or_the_api_server_would_refuse() {
    let ws = Workspace::new();
    let once = podseal()
        .args(ws.seal_args())
        .args(["--name", "db", "--reveal", "once"])
        .write_stdin(MARKER)
        .output()
        .unwrap();
    let line = assert_clean_failure(&once, 2);
    assert!(line.contains("--reveal once"), "{line}");
    assert!(once.stdout.is_empty());

    // 450,000 bytes each: a capsule of each is about 600 kB, so one fits
    // in a Secret and two do not.
    let big = vec![b'x'; 450_000];
    std::fs::write(ws.path("a"), &big).unwrap();
    std::fs::write(ws.path("b"), &big).unwrap();
    let manifest = |files: &[&str]| {
        let mut command = podseal();
        command.args(ws.seal_args()).args(["--k8s-secret", "big"]);
        for file in files {
            command
                .arg("--from-file")
                .arg(format!("{file}={}", ws.path(file).display()));
        }
        command.output().unwrap()
    };
    let one = manifest(&["a"]);
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let two = manifest(&["a", "b"]);
    let line = assert_clean_failure(&two, 2);
    assert!(line.contains("1048576 bytes (1 MiB)"), "{line}");
    assert!(two.stdout.is_empty(), "nothing is written when refused");
}

/// Claim: `open -o json` prints one JSON document (the plaintext as text,
/// or as base64 when it is not UTF-8), never raw bytes.
#[test]
fn open_prints_json_with_dash_o_json() {
    let ws = Workspace::new();
    let open_json = |secret: &[u8]| {
        std::fs::write(ws.path("c"), ws.seal(secret)).unwrap();
        let out = podseal()
            .args(["open", "-o", "json", "--key"])
            .arg(ws.private())
            .arg(ws.path("c"))
            .assert()
            .success();
        serde_json::from_slice::<serde_json::Value>(&out.get_output().stdout).unwrap()
    };
    let text = open_json(MARKER.as_bytes());
    assert_eq!(text["plaintext"], MARKER);
    assert!(text["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(text.get("plaintext_base64").is_none());
    let binary = open_json(&[0xff, 0x00, 0xfe]);
    assert_eq!(binary["plaintext_base64"], "/wD+");
    assert!(binary.get("plaintext").is_none());
}

/// Claim: `inspect` says the header is unverified without the org key,
/// and `inspect --key` verifies it: a header edited after sealing is shown
/// as unverified, and refused (exit 1) with the key.
#[test]
fn inspect_says_the_header_is_unverified_and_verifies_it_with_the_key() {
    let ws = Workspace::new();
    let capsule = ws.seal(MARKER.as_bytes());
    std::fs::write(ws.path("good"), &capsule).unwrap();
    // The same capsule with its namespace edited: "shop" -> "shoq".
    let mut bytes = podseal_core::armor::decode(capsule.trim()).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"shop")
        .expect("the namespace in the header");
    bytes[at + 3] = b'q';
    std::fs::write(ws.path("edited"), podseal_core::armor::encode(&bytes)).unwrap();

    let inspect = |file: &str, key: bool| {
        let mut command = podseal();
        command.args(["inspect", "-o", "json"]);
        if key {
            command.arg("--key").arg(ws.private());
        }
        command.arg(ws.path(file)).output().unwrap()
    };
    let unverified = inspect("edited", false);
    assert!(unverified.status.success());
    let json: serde_json::Value = serde_json::from_slice(&unverified.stdout).unwrap();
    assert_eq!(json["header_verified"], false);
    assert_eq!(json["header"]["scope"]["kubernetes"]["namespace"], "shoq");
    let text = podseal()
        .arg("inspect")
        .arg(ws.path("edited"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("UNVERIFIED"));

    let verified = inspect("good", true);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(json["header_verified"], true);
    assert!(!String::from_utf8_lossy(&verified.stdout).contains(MARKER));

    let refused = inspect("edited", true);
    assert_clean_failure(&refused, 1);
    assert!(refused.stdout.is_empty());
}

/// Claim: `inspect` and `open` read the capsule the same way: an argument,
/// a file, or stdin when none is given.
#[test]
fn inspect_and_open_read_stdin_by_default() {
    let ws = Workspace::new();
    let capsule = ws.seal(MARKER.as_bytes());
    let inspected = podseal()
        .args(["inspect", "-o", "json"])
        .write_stdin(capsule.clone())
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&inspected.get_output().stdout).unwrap();
    assert_eq!(json["header"]["scope"]["kubernetes"]["name"], "db");
    let opened = podseal()
        .args(["open", "--key"])
        .arg(ws.private())
        .write_stdin(capsule)
        .assert()
        .success();
    assert_eq!(opened.get_output().stdout, MARKER.as_bytes());
}

/// Claim: the binary works as a kubectl plugin: named `kubectl-podseal` on
/// PATH, `kubectl podseal …` runs it (checked with the real kubectl).
#[test]
fn podseal_runs_as_a_kubectl_plugin() {
    let ws = Workspace::new();
    let bin = ws.path("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(
        assert_cmd::cargo::cargo_bin("podseal"),
        bin.join("kubectl-podseal"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl = |args: &[&str]| {
        std::process::Command::new("kubectl")
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", ws.path("no-kubeconfig"))
            .output()
            .expect("kubectl is on the machine (/usr/bin/kubectl)")
    };
    let listed = kubectl(&["plugin", "list"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("kubectl-podseal"),
        "{}{}",
        String::from_utf8_lossy(&listed.stdout),
        String::from_utf8_lossy(&listed.stderr)
    );
    let shown = kubectl(&[
        "podseal",
        "keys",
        "show",
        "-o",
        "json",
        ws.public().to_str().unwrap(),
    ]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(
        json["kid"].as_str().is_some_and(|kid| !kid.is_empty()),
        "{json}"
    );
}

/// Claim: a secret file that others can read is refused under its own
/// name: an admin token file at 0644 is an "admin token file", not a
/// "private key file", and the hint says how to fix it.
#[test]
fn a_loose_admin_token_file_is_named_as_what_it_is() {
    let ws = Workspace::new();
    let token = ws.path("admin.token");
    std::fs::write(&token, "psa_not-a-real-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = podseal()
        .args([
            "cluster",
            "show",
            "prod",
            "--server",
            "https://127.0.0.1:1",
            "--admin-token-file",
        ])
        .arg(&token)
        .output()
        .unwrap();
    let line = assert_clean_failure(&out, 2);
    assert!(
        line.contains("admin token file") && line.contains("0644"),
        "{line}"
    );
    assert!(!line.contains("private key"), "{line}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("psa_not-a-real-token"));
}

/// Claim: `cluster add` reads its CA bundle and token file here, on the
/// client (the server reads no path a request names), and a file that is
/// missing, too large or holds no token is named (exit 2) before anything
/// is sent, never quoting the token.
#[test]
fn cluster_add_reads_its_files_on_the_client_and_names_a_bad_one() {
    let ws = Workspace::new();
    let token = ws.path("admin.token");
    std::fs::write(&token, "psa_not-a-real-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(ws.path("ca.pem"), "not a CA, the server says so\n").unwrap();
    std::fs::write(ws.path("two.token"), "secret-part-one\nsecret-part-two\n").unwrap();
    std::fs::write(ws.path("large.token"), "a".repeat(20 * 1024)).unwrap();
    std::fs::write(ws.path("large.pem"), "a".repeat(300 * 1024)).unwrap();
    let add = |ca: &str, reader: &str| {
        podseal()
            .args([
                "cluster",
                "add",
                "prod",
                "--api-server",
                "https://10.0.0.1:6443",
                "--server",
                "https://127.0.0.1:1",
                "--admin-token-file",
            ])
            .arg(&token)
            .arg("--ca-bundle")
            .arg(ws.path(ca))
            .arg("--token-file")
            .arg(ws.path(reader))
            .output()
            .unwrap()
    };
    for (ca, reader, expected) in [
        ("absent.pem", "two.token", "cannot read the CA bundle"),
        ("large.pem", "two.token", "is larger than 262144 bytes"),
        ("ca.pem", "absent.token", "cannot read the token file"),
        ("ca.pem", "large.token", "is larger than"),
        (
            "ca.pem",
            "two.token",
            "holds characters a bearer token cannot have",
        ),
    ] {
        let out = add(ca, reader);
        let line = assert_clean_failure(&out, 2);
        assert!(line.contains(expected), "{ca} {reader}: {line}");
        assert!(line.contains(ca) || line.contains(reader), "{line}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("secret-part"));
    }
    // Good files are read, and only then is the server asked (here: none
    // listens, a failure of the connection, exit 1).
    std::fs::write(ws.path("one.token"), "a-reader-token\n").unwrap();
    let out = add("ca.pem", "one.token");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// Claim: `podseal completion SHELL` prints a completion script the shell
/// accepts (bash checks its syntax with `bash -n`).
#[test]
fn completion_scripts_are_printed_for_each_shell() {
    let ws = Workspace::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = podseal().args(["completion", shell]).assert().success();
        let script = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        assert!(script.contains("podseal"), "{shell}: {script}");
        assert!(
            script.contains("seal") && script.contains("inspect"),
            "{shell}"
        );
        if shell == "bash" {
            let file = ws.path("podseal.bash");
            std::fs::write(&file, &script).unwrap();
            let checked = std::process::Command::new("bash")
                .arg("-n")
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                checked.status.success(),
                "{}",
                String::from_utf8_lossy(&checked.stderr)
            );
        }
    }
    let out = podseal().args(["completion", "tcsh"]).output().unwrap();
    assert_clean_failure(&out, 2);
}

/// Claim: `-o yaml` works wherever `-o json` does, with the same fields.
#[test]
fn yaml_output_carries_what_json_does() {
    let ws = Workspace::new();
    std::fs::write(ws.path("c"), ws.seal(MARKER.as_bytes())).unwrap();
    let public = ws.public();
    let capsule = ws.path("c");
    for args in [
        vec!["keys", "show", public.to_str().unwrap()],
        vec!["inspect", capsule.to_str().unwrap()],
    ] {
        let json = podseal()
            .args(&args)
            .args(["-o", "json"])
            .assert()
            .success();
        let yaml = podseal()
            .args(&args)
            .args(["-o", "yaml"])
            .assert()
            .success();
        let json: serde_json::Value = serde_json::from_slice(&json.get_output().stdout).unwrap();
        let yaml: serde_json::Value = serde_saphyr::from_slice(&yaml.get_output().stdout).unwrap();
        assert_eq!(yaml, json, "{args:?}");
    }
}

/// Issue 14 §3, one rule for inputs: a file named on the command line that
/// cannot be read — missing, or a directory — is a usage error in every
/// command: exit 2, one `error:` line naming it. (Exit 1 is for an
/// operation that was tried and failed: refused, did not open, did not
/// verify.)
#[test]
fn an_input_that_cannot_be_read_exits_2_naming_it_in_every_command() {
    let ws = Workspace::new();
    let capsule = ws.path("db.capsule");
    std::fs::write(&capsule, ws.seal(MARKER.as_bytes())).unwrap();
    let audit_pub = ws.path("audit.pub");
    std::fs::write(
        &audit_pub,
        podseal_core::audit::public_key_text(
            &podseal_core::audit::AuditKey::generate()
                .unwrap()
                .public_key(),
        ) + "\n",
    )
    .unwrap();
    let missing = ws.path("missing");
    let directory = ws.path("a-directory");
    std::fs::create_dir(&directory).unwrap();
    let text = |p: &Path| p.to_str().unwrap().to_owned();
    let (public, private, capsule, audit_pub) = (
        text(&ws.public()),
        text(&ws.private()),
        text(&capsule),
        text(&audit_pub),
    );
    // Each command with {BAD} where the unreadable input goes.
    let seal_tail = [
        "--cluster",
        "prod",
        "--namespace",
        "shop",
        "--service-account",
        "api",
        "--name",
        "db",
    ];
    let commands: Vec<Vec<&str>> = vec![
        [&["seal", "--key", "{BAD}"][..], &seal_tail].concat(),
        [
            &["seal", "--key", &public, "--from-file", "{BAD}"][..],
            &seal_tail,
        ]
        .concat(),
        [
            &[
                "seal",
                "--key",
                &public,
                "--k8s-secret",
                "db",
                "--from-file",
                "a={BAD}",
            ][..],
            &seal_tail,
        ]
        .concat(),
        vec!["inspect", "{BAD}"],
        vec!["inspect", "--key", "{BAD}", &capsule],
        vec!["open", "--key", "{BAD}", &capsule],
        vec!["open", "--key", &private, "{BAD}"],
        vec!["audit", "verify", "--key", "{BAD}", &capsule],
        vec!["audit", "verify", "--key", &audit_pub, "{BAD}"],
        vec![
            "audit", "verify", "--key", &audit_pub, "--since", "{BAD}", &capsule,
        ],
        vec!["audit", "checkpoint", "--key", &audit_pub, "{BAD}"],
        vec!["audit", "prove", "--key", &audit_pub, "--seq", "1", "{BAD}"],
        vec!["audit", "verify-proof", "--key", &audit_pub, "{BAD}"],
        vec!["audit", "verify-proof", "--key", "{BAD}", &capsule],
        vec![
            "audit",
            "public-key",
            "--key",
            "{BAD}",
            "--origin",
            "podseal",
        ],
        vec!["audit", "public-key", "--key", &audit_pub, "{BAD}"],
    ];
    for bad in [&missing, &directory] {
        let bad = text(bad);
        for command in &commands {
            let args: Vec<String> = command.iter().map(|a| a.replace("{BAD}", &bad)).collect();
            let output = podseal()
                .args(&args)
                .write_stdin("a secret")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(2),
                "podseal {}: {stderr}",
                args.join(" ")
            );
            let first = stderr.lines().next().unwrap_or_default();
            assert!(
                first.starts_with("error: ") && first.contains(&bad),
                "podseal {}: {stderr}",
                args.join(" ")
            );
            assert!(stderr.lines().count() <= 2, "{stderr}");
        }
    }
}

/// `seal --out` writes the capsule or manifest only once it is sealed: a
/// seal that fails leaves no file (where a shell's `>` leaves an empty one
/// the next command trips on), and an existing file is never overwritten.
#[test]
fn seal_out_writes_only_a_whole_capsule_and_never_overwrites() {
    let ws = Workspace::new();
    let out = ws.path("db.capsule");
    let out_arg = out.to_str().unwrap();

    // A failed seal (nothing on stdin) leaves no file behind.
    let failed = podseal()
        .args(ws.seal_args())
        .args(["--name", "db", "--out", out_arg])
        .write_stdin("")
        .output()
        .unwrap();
    assert_clean_failure(&failed, 2);
    assert!(!out.exists(), "a failed seal left {}", out.display());

    let sealed = podseal()
        .args(ws.seal_args())
        .args(["--name", "db", "--out", out_arg])
        .write_stdin(MARKER)
        .assert()
        .success();
    assert!(
        sealed.get_output().stdout.is_empty(),
        "--out prints nothing on stdout"
    );
    let capsule = std::fs::read_to_string(&out).unwrap();
    assert!(capsule.starts_with("podseal:v1:") && capsule.ends_with('\n'));
    assert_eq!(mode(&out), 0o644, "a capsule is safe to share");
    let opened = podseal()
        .args(["open", "--key"])
        .arg(ws.private())
        .arg(&out)
        .assert()
        .success();
    assert_eq!(opened.get_output().stdout, MARKER.as_bytes());

    // A second seal to the same file is refused and changes nothing.
    let again = podseal()
        .args(ws.seal_args())
        .args(["--name", "db", "--out", out_arg])
        .write_stdin("another secret")
        .output()
        .unwrap();
    let error = assert_clean_failure(&again, 1);
    assert!(error.contains("already exists"), "{error}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), capsule);

    // A manifest, as -o json too.
    std::fs::write(ws.path("pw"), MARKER).unwrap();
    let manifest = ws.path("db.json");
    podseal()
        .args(ws.seal_args())
        .args(["--k8s-secret", "db", "-o", "json", "--out"])
        .arg(&manifest)
        .arg("--from-file")
        .arg(format!("password={}", ws.path("pw").display()))
        .assert()
        .success();
    let secret: Secret =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert!(secret.data.unwrap().contains_key("password"));
}

/// Claim: every command that prints ends quietly when its reader goes away
/// (`podseal completion bash | head -1`): exit 141 as for SIGPIPE, nothing
/// on stderr, no panic. The commands that talk to a server are checked in
/// `crates/e2e/tests/closed_pipe.rs`.
#[test]
fn every_local_command_ends_quietly_on_a_closed_pipe() {
    use podseal_test_support::closed_pipe::{assert_ends_on_closed_pipe, run_with_closed_stdout};
    let ws = Workspace::new();
    let capsule_file = ws.path("db.capsule");
    std::fs::write(&capsule_file, ws.seal(MARKER.as_bytes())).unwrap();
    let (public, private, capsule) = (
        ws.public().to_str().unwrap().to_owned(),
        ws.private().to_str().unwrap().to_owned(),
        capsule_file.to_str().unwrap().to_owned(),
    );
    let new_keys = ws.path("new-keys").to_str().unwrap().to_owned();
    let seal = ws.seal_args();
    let seal: Vec<&str> = seal.iter().map(String::as_str).collect();
    let with = |extra: &[&'static str]| -> Vec<&str> {
        seal.iter().copied().chain(extra.iter().copied()).collect()
    };
    let rows: Vec<Vec<&str>> = vec![
        vec!["completion", "bash"],
        vec!["completion", "zsh"],
        vec!["completion", "fish"],
        vec!["keys", "init", "--out", &new_keys],
        vec!["keys", "show", &public],
        vec!["keys", "show", &public, "-o", "json"],
        vec!["keys", "show", &public, "-o", "yaml"],
        with(&["--name", "db"]),
        with(&["--name", "db", "-o", "json"]),
        with(&["--k8s-secret", "db", "--from-file", "password=-"]),
        vec!["inspect", &capsule],
        vec!["inspect", "--key", &private, &capsule],
        vec!["inspect", &capsule, "-o", "json"],
        vec!["open", "--key", &private, &capsule],
        vec!["open", "--key", &private, &capsule, "-o", "json"],
    ];
    for args in rows {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_podseal"));
        command.args(&args);
        let run = run_with_closed_stdout(command, MARKER.as_bytes());
        let what = format!("podseal {}", args.join(" "));
        // The break-glass warning comes first, whatever happens to stdout.
        let warning = (args[0] == "open").then_some("warning: break-glass open of capsule ");
        assert_ends_on_closed_pipe(&what, &run, warning);
    }
}
