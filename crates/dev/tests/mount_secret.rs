//! `podseal-dev cluster mount-secret`: a Secret manifest's keys as the
//! kubelet mounts a Secret volume, for trying `podseal-exec` locally.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

fn mount(manifest: &Path, secrets_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podseal-dev"))
        .args(["cluster", "mount-secret"])
        .arg(manifest)
        .arg("--secrets-dir")
        .arg(secrets_dir)
        .output()
        .unwrap()
}

#[test]
fn a_secret_manifest_is_mounted_key_by_key_and_a_bad_one_writes_nothing() {
    let dir = TempDir::new().unwrap();
    let secrets = dir.path().join("secrets");
    // `data` is base64 (decoded in the files), `stringData` as written and
    // winning over `data` for the same key, as the API server merges them.
    let manifest = dir.path().join("db.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ntype: podseal.dev/sealed\n\
         data:\n  password: cG9kc2VhbDp2MTpjYXBzdWxl\n  user: b2xk\nstringData:\n  user: app\n",
    )
    .unwrap();
    let out = mount(&manifest, &secrets);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "secret/db mounted at {}: password, user",
            secrets.join("db").display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(secrets.join("db/password")).unwrap(),
        "podseal:v1:capsule"
    );
    assert_eq!(
        std::fs::read_to_string(secrets.join("db/user")).unwrap(),
        "app"
    );

    // Mounted again (the kubelet updating a changed Secret): files replaced.
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: new\n",
    )
    .unwrap();
    assert!(mount(&manifest, &secrets).status.success());
    assert_eq!(
        std::fs::read_to_string(secrets.join("db/password")).unwrap(),
        "new"
    );

    // Refused, writing nothing: a key or name that would leave the volume,
    // another kind, no data, not YAML at all, a missing file.
    let cases = [
        (
            "key",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  ../../escape: v\n  ok: v\n",
        ),
        (
            "name",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ../x\nstringData:\n  ok: v\n",
        ),
        (
            "kind",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  ok: v\n",
        ),
        (
            "empty",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n",
        ),
        ("garbage", "{{{ not yaml"),
    ];
    for (what, text) in cases {
        let bad = dir.path().join(format!("{what}.yaml"));
        std::fs::write(&bad, text).unwrap();
        let target = dir.path().join(format!("volumes-{what}"));
        let out = mount(&bad, &target);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(stderr.starts_with("error: "), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(!target.exists(), "{what}: something was written");
    }
    assert!(!dir.path().join("escape").exists());
    let out = mount(&dir.path().join("missing.yaml"), &secrets);
    assert_eq!(out.status.code(), Some(2));
}
