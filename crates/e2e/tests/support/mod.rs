//! Running podseal's binaries as child processes, shared by the end-to-end
//! tests and the `release_loop` benchmark.
#![allow(dead_code, reason = "each binary uses a different subset")]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod faults;

/// A child killed (and reaped) on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `binary ARGS` and waits (deadline 60 s) for a line of stdout, or
/// of stderr when `from_stderr`, containing `ready`. Returns the process,
/// that line, and the later lines (the stream is drained so the child never
/// blocks on a full pipe).
pub fn spawn(
    binary: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    from_stderr: bool,
    ready: &str,
) -> (Process, String, mpsc::Receiver<String>) {
    let mut command = Command::new(binary);
    command.args(args).envs(env.iter().copied());
    if from_stderr {
        command.stderr(Stdio::piped()).stdout(Stdio::null());
    } else {
        command.stdout(Stdio::piped());
    }
    let mut process = Process(command.spawn().expect("spawn podseal"));
    let stream: Box<dyn std::io::Read + Send> = if from_stderr {
        Box::new(process.0.stderr.take().expect("piped stderr"))
    } else {
        Box::new(process.0.stdout.take().expect("piped stdout"))
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keeps reading after the receiver is gone, so the pipe never fills.
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "`podseal {}` did not print {ready:?} in time",
                args.join(" ")
            )
        });
        if line.contains(ready) {
            return (process, line, rx);
        }
    }
}

/// The port in `podseal-server`'s `... listening on 127.0.0.1:PORT (...)`.
pub fn port_of(line: &str) -> String {
    let addr = line
        .split("listening on ")
        .nth(1)
        .expect("a listening line");
    addr.split([' ', ':']).nth(1).expect("a port").to_owned()
}

/// Waits (deadline 30 s) for a line containing `needle` on `lines`.
pub fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no line containing {needle:?} in time"));
        if line.contains(needle) {
            return line;
        }
    }
}

/// Runs `program ARGS` with `stdin` (when given) and returns its output,
/// whatever its exit code.
pub fn run_program(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

/// Runs `binary ARGS` to completion and returns its stdout; panics on failure.
pub fn run_ok(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(binary)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run podseal");
    assert!(
        output.status.success(),
        "podseal {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Runs `binary ARGS` with `stdin` as its standard input; asserts success
/// and returns stdout.
pub fn run_ok_stdin(binary: &Path, args: &[&str], stdin: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run podseal");
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let output = child.wait_with_output().expect("run podseal");
    assert!(
        output.status.success(),
        "podseal {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// The stand-in and a release server as processes, registered through the
/// admin commands: cluster `prod`, an API key and a digest policy for
/// `shop/api`. Pods come from [`Deployment::pod`].
pub struct Deployment {
    binary: std::path::PathBuf,
    dir: std::path::PathBuf,
    cluster: Process,
    /// The server (SIGTERM it with [`Deployment::stop`]).
    pub server: Process,
    /// The server's stderr, line by line (its log).
    pub server_log: mpsc::Receiver<String>,
    /// The server's URL (also its external URL).
    pub url: String,
    /// The approved image digest.
    pub digest: String,
    /// The API key bound to `prod/shop/api`.
    pub api_key: String,
    /// The server's `PODSEAL_*` settings, for [`Deployment::restart`].
    server_env: Vec<(String, String)>,
}

impl Deployment {
    /// Starts everything under `dir`, the server logging at `log_level`.
    pub fn start(binary: &Path, dir: &Path, log_level: &str) -> Self {
        Self::start_with_env(binary, dir, log_level, &[])
    }

    /// [`Deployment::start`] with more `PODSEAL_*` settings for the server.
    pub fn start_with_env(
        binary: &Path,
        dir: &Path,
        log_level: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let p = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_owned();
        let (cluster, cluster_url) = start_dev_cluster(&dir.join("dc"));
        run_ok(binary, &["keys", "init", "--out", &p("keys")], &[]);
        // The external URL must name the port clients use (DPoP htu), so pick it first.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("https://localhost:{port}");
        let (keys, state, listen) = (p("keys/org.key"), p("state"), format!("127.0.0.1:{port}"));
        let mut env = vec![
            ("PODSEAL_ORG_KEY_FILES", keys.as_str()),
            ("PODSEAL_STATE_DIR", state.as_str()),
            ("PODSEAL_LISTEN", listen.as_str()),
            ("PODSEAL_EXTERNAL_URL", url.as_str()),
            ("PODSEAL_LOG_LEVEL", log_level),
        ];
        env.extend_from_slice(extra);
        let server_env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (server, server_log) = spawn_server(dir, &server_env);
        wait_for_line(&server_log, "admin token written to");
        let mut deployment = Self {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            cluster,
            server,
            server_log,
            url,
            digest: format!("sha256:{}", "a".repeat(64)),
            api_key: String::new(),
            server_env,
        };
        let admin = deployment.admin_env();
        let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let created = register_shop(
            binary,
            &dir.join("dc"),
            &cluster_url,
            &deployment.digest,
            &admin,
        );
        deployment.api_key = created["key"].as_str().expect("a key").to_owned();
        std::fs::write(dir.join("api-key"), &deployment.api_key).expect("write the API key");
        deployment
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().expect("utf-8 path").to_owned()
    }

    /// What admin commands need: server, CA, token file.
    pub fn admin_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PODSEAL_SERVER", self.url.clone()),
            ("PODSEAL_CA_FILE", self.path("state/tls-dev.crt")),
            ("PODSEAL_ADMIN_TOKEN_FILE", self.path("admin.token")),
        ]
    }

    /// A running pod `shop/NAME` (service account `api`, approved image)
    /// and its projected token in `NAME.token`; returns the pod's client
    /// environment.
    pub fn pod(&self, name: &str) -> Vec<(&'static str, String)> {
        let token = create_pod(&self.dir.join("dc"), &self.digest, name);
        let token_file = self.path(&format!("{name}.token"));
        std::fs::write(&token_file, &token).expect("write the token");
        vec![
            ("PODSEAL_SERVER", self.url.clone()),
            ("PODSEAL_CA_FILE", self.path("state/tls-dev.crt")),
            ("PODSEAL_API_KEY_FILE", self.path("api-key")),
            ("PODSEAL_TOKEN_FILE", token_file),
        ]
    }

    /// The stand-in's connection files (for `podseal-dev cluster … --dir`).
    pub fn dev_cluster_dir(&self) -> std::path::PathBuf {
        self.dir.join("dc")
    }

    /// The stand-in's process id (to stop, continue or kill it).
    pub fn cluster_process_id(&self) -> u32 {
        self.cluster.0.id()
    }

    /// SIGKILL to the stand-in, then `cluster serve` again with the same
    /// directory: it comes back from its state directory as the same
    /// cluster (address, CA, keys, tokens, objects).
    pub fn restart_cluster(&mut self) {
        kill(&mut self.cluster);
        let (cluster, _url) = start_dev_cluster(&self.dev_cluster_dir());
        self.cluster = cluster;
    }

    /// The client environment of a process in the existing pod `shop/NAME`
    /// that runs in `container` (a fresh projected token, and
    /// `PODSEAL_CONTAINER`).
    pub fn process_env(&self, name: &str, container: &str) -> Vec<(&'static str, String)> {
        let token = pod_token(&self.dev_cluster_dir(), name);
        let token_file = self.path(&format!("{name}.{container}.token"));
        std::fs::write(&token_file, &token).expect("write the token");
        vec![
            ("PODSEAL_SERVER", self.url.clone()),
            ("PODSEAL_CA_FILE", self.path("state/tls-dev.crt")),
            ("PODSEAL_API_KEY_FILE", self.path("api-key")),
            ("PODSEAL_TOKEN_FILE", token_file),
            ("PODSEAL_CONTAINER", container.to_owned()),
        ]
    }

    /// A capsule for `prod/shop/api` named `db`, sealed by the CLI from stdin.
    pub fn seal(&self, secret: &str) -> podseal_core::capsule::Capsule {
        let key = self.path("keys/org.pub");
        let armored = run_ok_stdin(
            &self.binary,
            &[
                "seal",
                "--key",
                &key,
                "--cluster",
                "prod",
                "--namespace",
                "shop",
                "--service-account",
                "api",
                "--name",
                "db",
            ],
            secret,
        );
        podseal_core::capsule::Capsule::from_armored(armored.trim()).expect("a capsule")
    }

    /// A pod's SDK client, configured from [`Deployment::pod`]'s environment.
    pub fn client(pod: &[(&'static str, String)]) -> podseal_sdk::blocking::BlockingClient {
        let lookup = |name: &str| pod.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        let config =
            podseal_sdk::client::ClientConfig::from_lookup(lookup).expect("a client config");
        podseal_sdk::blocking::BlockingClient::new(config).expect("a client")
    }

    /// SIGTERM to the server (it signs a final checkpoint); waits (deadline
    /// 30 s) for it to exit and returns its log.
    pub fn stop(&mut self) -> Vec<String> {
        terminate(&mut self.server, &self.server_log)
    }

    /// SIGSTOP to the server: it keeps its connections but answers nothing
    /// until it is killed, so requests sent to it stay in flight.
    pub fn freeze(&self) {
        freeze(&self.server);
    }

    /// SIGKILL to the server (no final checkpoint, nothing flushed),
    /// reaped before this returns.
    pub fn kill(&mut self) {
        kill(&mut self.server);
    }

    /// Starts the server again (after [`Deployment::kill`] or
    /// [`Deployment::stop`]) with the same settings: state directory,
    /// port, org key, log level. Returns once it answers `/readyz` with 200.
    pub fn restart(&mut self) {
        let (server, server_log) = spawn_server(&self.dir, &self.server_env);
        self.server = server;
        self.server_log = server_log;
        wait_ready(&self.url, &self.ca_pem(), "the restarted server");
    }

    /// The server's (development) certificate, which clients trust.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("state/tls-dev.crt")).expect("the server's certificate")
    }

    /// The audit public key the server wrote to its state directory.
    pub fn audit_public_key(&self) -> [u8; 32] {
        let text = std::fs::read_to_string(self.dir.join("state/audit.pub")).expect("audit.pub");
        podseal_core::audit::parse_public_key(&text).expect("an audit public key")
    }

    /// The org public key capsules are sealed to.
    pub fn org_public_key(&self) -> podseal_core::org_key::OrgPublicKey {
        podseal_keys::key_file::read_public_key(&self.dir.join("keys/org.pub")).expect("org.pub")
    }

    /// An HTTPS client of the server (trusting its certificate).
    pub fn https_client(&self) -> podseal_sdk::https::HttpsClient {
        podseal_sdk::https::HttpsClient::new(&self.url, Some(&self.ca_pem())).expect("a client")
    }

    /// An admin API client of the server, with the admin token.
    pub fn admin_client(&self) -> podseal_sdk::admin::AdminClient {
        let token = std::fs::read_to_string(self.dir.join("admin.token")).expect("admin.token");
        podseal_sdk::admin::AdminClient::new(self.https_client(), &token)
    }
}

/// Spawns `podseal-server` with `env` and the admin token file in `dir`;
/// returns once it listens.
fn spawn_server(dir: &Path, env: &[(String, String)]) -> (Process, mpsc::Receiver<String>) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let token_file = dir.join("admin.token");
    let (server, _, server_log) = spawn(
        &podseal_test_support::binaries::server(),
        &[
            "--admin-token-file",
            token_file.to_str().expect("utf-8 path"),
        ],
        &env,
        true,
        "listening on",
    );
    (server, server_log)
}

/// SIGSTOP to `process`: it answers nothing until it is continued or killed.
pub fn freeze(process: &Process) {
    let status = Command::new("kill")
        .args(["-STOP", &process.0.id().to_string()])
        .status()
        .expect("run kill -STOP");
    assert!(status.success(), "kill -STOP failed: {status}");
}

/// SIGKILL to `process`, reaped before this returns.
pub fn kill(process: &mut Process) {
    process.0.kill().expect("SIGKILL");
    let status = process.0.wait().expect("reaped");
    assert!(!status.success(), "killed, not exited: {status}");
}

/// Waits (deadline 30 s) until the server at `url` (whose certificate is
/// `ca_pem`) answers `/readyz` with 200; `what` names it in the failure.
pub fn wait_ready(url: &str, ca_pem: &[u8], what: &str) {
    let client = podseal_sdk::https::HttpsClient::new(url, Some(ca_pem))
        .expect("a client")
        .with_timeout(Duration::from_secs(5));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    runtime.block_on(async {
        loop {
            match client.send(http::Method::GET, "/readyz", &[], None).await {
                Ok(answer) if answer.status == 200 => return,
                Ok(answer) => last = String::from_utf8_lossy(&answer.body).into_owned(),
                Err(e) => last = e.to_string(),
            }
            assert!(
                Instant::now() < deadline,
                "{what} is not ready after 30 s: {last}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// Starts the stand-in (`podseal-dev cluster serve`) with its files in
/// `dir`; returns the process and its URL.
pub fn start_dev_cluster(dir: &Path) -> (Process, String) {
    let dir = dir.to_str().expect("utf-8 path");
    let (cluster, line, _) = spawn(
        &podseal_test_support::binaries::dev(),
        &["cluster", "serve", "--listen", "127.0.0.1:0", "--dir", dir],
        &[],
        false,
        "dev-cluster serving",
    );
    let url = line.split_whitespace().nth(2).expect("a URL").to_owned();
    (cluster, url)
}

/// Registers the stand-in (files in `dc`) as cluster `prod`, creates an API
/// key for `prod/shop/api` and allows `digest` for it, through the admin
/// commands with `admin` (server, CA, token file). Returns `apikey create`'s
/// JSON (`id`, `key`).
pub fn register_shop(
    binary: &Path,
    dc: &Path,
    cluster_url: &str,
    digest: &str,
    admin: &[(&str, &str)],
) -> serde_json::Value {
    let p = |name: &str| dc.join(name).to_str().expect("utf-8 path").to_owned();
    run_ok(
        binary,
        &[
            "cluster",
            "add",
            "prod",
            "--api-server",
            cluster_url,
            "--ca-bundle",
            &p("ca.pem"),
            "--token-file",
            &p("reader.token"),
        ],
        admin,
    );
    let created = create_api_key(binary, admin);
    run_ok(
        binary,
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
            digest,
        ],
        admin,
    );
    created
}

/// `podseal apikey create` for `prod/shop/api`: its JSON (`id`, `key`).
pub fn create_api_key(binary: &Path, admin: &[(&str, &str)]) -> serde_json::Value {
    serde_json::from_str(&run_ok(
        binary,
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
        admin,
    ))
    .expect("JSON")
}

/// Creates a running pod `shop/NAME` (service account `api`, one container
/// at `digest`) in the stand-in whose files are in `dc`; returns its
/// projected token (audience `podseal`).
pub fn create_pod(dc: &Path, digest: &str, name: &str) -> String {
    create_pod_with(dc, digest, name, &[])
}

/// [`create_pod`] with more arguments of `podseal-dev cluster pod create`
/// (`--image-volume`, `--sidecar`, …).
pub fn create_pod_with(dc: &Path, digest: &str, name: &str, extra: &[&str]) -> String {
    let dc = dc.to_str().expect("utf-8 path");
    let container = format!("api=registry.example/shop/api:1@{digest}");
    let mut args = vec![
        "cluster",
        "pod",
        "create",
        "--dir",
        dc,
        "--namespace",
        "shop",
        "--name",
        name,
        "--service-account",
        "api",
        "--container",
        &container,
        "--running",
    ];
    args.extend_from_slice(extra);
    run_ok(&podseal_test_support::binaries::dev(), &args, &[]);
    pod_token(Path::new(dc), name)
}

/// `podseal-exec --env SECRET=CAPSULE -- sh -c 'printf %s "$SECRET"'` with
/// the client environment `env`: the program prints what was released.
pub fn exec_printing_secret(
    env: &[(&'static str, String)],
    capsule: &Path,
) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_program(
        &podseal_test_support::binaries::exec(),
        &[
            "--env",
            &format!("SECRET={}", capsule.display()),
            "--",
            "sh",
            "-c",
            "printf '%s' \"$SECRET\"",
        ],
        &env,
        None,
    )
}

/// The program of [`exec_printing_secret`] ran and printed `secret`.
#[track_caller]
pub fn assert_released(output: &std::process::Output, secret: &str) {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), secret);
}

/// A new projected token (audience `podseal`) for the pod `shop/NAME` of the
/// stand-in whose files are in `dc`.
pub fn pod_token(dc: &Path, name: &str) -> String {
    run_ok(
        &podseal_test_support::binaries::dev(),
        &[
            "cluster",
            "token",
            "--dir",
            dc.to_str().expect("utf-8 path"),
            "--namespace",
            "shop",
            "--service-account",
            "api",
            "--pod",
            name,
            "--audience",
            "podseal",
        ],
        &[],
    )
    .trim()
    .to_owned()
}

/// SIGTERM to `process` (a server signs a final checkpoint); waits
/// (deadline 30 s) for it to exit successfully and returns the rest of its
/// log from `log`.
pub fn terminate(process: &mut Process, log: &mpsc::Receiver<String>) -> Vec<String> {
    let _ = Command::new("kill")
        .args(["-TERM", &process.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    loop {
        if let Ok(Some(status)) = process.0.try_wait() {
            lines.extend(log.try_iter());
            assert!(
                status.success(),
                "the server exited with {status}: {}",
                lines.join("\n")
            );
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        // Waits on the log: lines until the server closes stderr.
        if let Ok(line) = log.recv_timeout(Duration::from_millis(20)) {
            lines.push(line);
        }
    }
}

/// A `postgres://` URL whose `search_path` is a fresh schema, on
/// `PODSEAL_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
/// An unreachable server fails the test: CI must never skip it. (Its own
/// thread and runtime, so it may be called from anywhere.)
pub fn postgres_url() -> String {
    let base = podseal_test_support::provision::postgres_base_url();
    let mut random = [0u8; 8];
    podseal_core::fill_random(&mut random).expect("randomness");
    let schema: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let schema = format!("podseal_test_{schema}");
    let (url, create) = (base.clone(), format!("CREATE SCHEMA {schema}"));
    let created = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            client
                .batch_execute(&create)
                .await
                .map_err(|e| e.to_string())
        })
    })
    .join()
    .expect("the PostgreSQL thread");
    if let Err(e) = created {
        panic!(
            "PostgreSQL at {base} is unreachable or refused CREATE SCHEMA ({e}): start it (pg_ctlcluster … main start) or set PODSEAL_TEST_POSTGRES_URL"
        );
    }
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-csearch_path%3D{schema}")
}

/// Free loopback ports, distinct from each other.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("an address").port())
        .collect()
}

/// Spawns `podseal-server --config CONFIG --admin-token-file TOKEN_FILE`
/// and waits until it listens.
fn spawn_replica(config: &Path, token_file: &Path) -> (Process, mpsc::Receiver<String>) {
    let (process, _, log) = spawn(
        &podseal_test_support::binaries::server(),
        &[
            "--config",
            config.to_str().expect("utf-8 path"),
            "--admin-token-file",
            token_file.to_str().expect("utf-8 path"),
        ],
        &[],
        true,
        "listening on",
    );
    (process, log)
}

/// One `podseal-server` process of [`Replicas`].
pub struct Replica {
    /// Where this replica listens: `https://localhost:PORT`.
    pub url: String,
    /// Its state directory (`audit.pub` is written there).
    pub state_dir: PathBuf,
    config: PathBuf,
    /// The process, while it runs.
    pub process: Option<Process>,
    /// Its stderr (the log), line by line, while it runs.
    pub log: Option<mpsc::Receiver<String>>,
}

/// Several `podseal-server` processes on one PostgreSQL, as replicas behind
/// one Service: one external URL (DPoP `htu`), one org key, one audit key
/// (`audit.key_file`), one TLS certificate, one database (a fresh schema);
/// each replica has its own port, state directory and TOML config file.
/// The stand-in runs as `podseal-dev cluster serve`. Cluster `prod`, an API
/// key and a digest policy for `shop/api` are registered through replica 0
/// before the others start.
pub struct Replicas {
    binary: PathBuf,
    dir: PathBuf,
    cluster: Process,
    /// The replicas, each started and ready.
    pub replicas: Vec<Replica>,
    /// The URL of the Service (DPoP `htu`); no replica listens on it.
    pub external_url: String,
    /// The certificate every replica serves (self-signed; the clients' CA).
    pub ca_pem: Vec<u8>,
    /// The approved image digest.
    pub digest: String,
    /// The API key bound to `prod/shop/api`.
    pub api_key: String,
    /// The shared audit public key, as `podseal-audit-public-key:v1:…` text.
    pub audit_public_key: String,
    /// The org public key file.
    pub org_pub: PathBuf,
    /// The stand-in's URL.
    pub cluster_url: String,
}

/// The external URL of [`Replicas`].
pub const SERVICE_URL: &str = "https://podseal.test";

impl Replicas {
    /// Starts the stand-in and `count` replicas under `dir`, logging at
    /// `log_level`; returns once every replica answers `/readyz` with 200.
    pub fn start(binary: &Path, dir: &Path, count: usize, log_level: &str) -> Self {
        use podseal_keys::key_file::write_new;
        let p = |name: &str| dir.join(name);
        let text = |path: &Path| path.to_str().expect("utf-8 path").to_owned();
        let (cluster, cluster_url) = start_dev_cluster(&p("dc"));
        run_ok(binary, &["keys", "init", "--out", &text(&p("keys"))], &[]);
        let audit = podseal_core::audit::AuditKey::generate().expect("randomness");
        write_new(&p("audit.key"), audit.to_text().as_bytes(), 0o600).expect("audit.key");
        write_new(&p("postgres.url"), postgres_url().as_bytes(), 0o600).expect("postgres.url");
        let key = rcgen::KeyPair::generate().expect("a TLS key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "podseal.test".into()])
            .expect("certificate parameters")
            .self_signed(&key)
            .expect("a certificate");
        std::fs::write(p("tls.crt"), cert.pem()).expect("tls.crt");
        write_new(&p("tls.key"), key.serialize_pem().as_bytes(), 0o600).expect("tls.key");
        let replicas = free_ports(count)
            .into_iter()
            .enumerate()
            .map(|(i, port)| {
                let state_dir = p(&format!("replica-{i}"));
                let config = p(&format!("replica-{i}.toml"));
                let toml = format!(
                    "listen = \"127.0.0.1:{port}\"\n\
                     external_url = \"{SERVICE_URL}\"\n\
                     state_dir = {state:?}\n\
                     org_key_files = [{org:?}]\n\
                     log_level = {log_level:?}\n\
                     [tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n\
                     [audit]\nkey_file = {audit:?}\n\
                     [clusters]\nrefresh_secs = 1\n\
                     [storage]\nengine = \"postgres\"\nurl_file = {url:?}\n",
                    state = text(&state_dir),
                    org = text(&p("keys/org.key")),
                    cert = text(&p("tls.crt")),
                    key = text(&p("tls.key")),
                    audit = text(&p("audit.key")),
                    url = text(&p("postgres.url")),
                );
                std::fs::write(&config, toml).expect("a config file");
                Replica {
                    url: format!("https://localhost:{port}"),
                    state_dir,
                    config,
                    process: None,
                    log: None,
                }
            })
            .collect();
        let mut this = Self {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            cluster,
            replicas,
            external_url: SERVICE_URL.into(),
            ca_pem: cert.pem().into_bytes(),
            digest: format!("sha256:{}", "a".repeat(64)),
            api_key: String::new(),
            audit_public_key: podseal_core::audit::public_key_text(&audit.public_key()),
            org_pub: p("keys/org.pub"),
            cluster_url: cluster_url.clone(),
        };
        // The first start initialises the store and shows the admin token;
        // the others find it initialised.
        this.start_replica(0);
        wait_for_line(
            this.replicas[0].log.as_ref().expect("a log"),
            "admin token written to",
        );
        let admin = this.admin_env(0);
        let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let created = register_shop(binary, &p("dc"), &cluster_url, &this.digest, &admin);
        this.api_key = created["key"].as_str().expect("a key").to_owned();
        // The others start at once, and load the cluster at start.
        let token_file = &this.dir.join("admin.token");
        let configs: Vec<PathBuf> = this.replicas.iter().map(|r| r.config.clone()).collect();
        let started: Vec<_> = std::thread::scope(|scope| {
            let threads: Vec<_> = configs[1..]
                .iter()
                .map(|config| scope.spawn(move || spawn_replica(config, token_file)))
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a replica started"))
                .collect()
        });
        for (i, (process, log)) in (1..count).zip(started) {
            this.replicas[i].process = Some(process);
            this.replicas[i].log = Some(log);
        }
        for i in 0..count {
            this.wait_ready(i);
        }
        this
    }

    /// Starts replica `i` with its config (it must not be running);
    /// returns once it listens (not yet ready: see [`Replicas::wait_ready`]).
    pub fn start_replica(&mut self, i: usize) {
        assert!(self.replicas[i].process.is_none(), "replica {i} runs");
        let (process, log) = spawn_replica(&self.replicas[i].config, &self.dir.join("admin.token"));
        self.replicas[i].process = Some(process);
        self.replicas[i].log = Some(log);
    }

    /// Waits (deadline 30 s) until replica `i` answers `/readyz` with 200.
    pub fn wait_ready(&self, i: usize) {
        wait_ready(&self.replicas[i].url, &self.ca_pem, &format!("replica {i}"));
    }

    /// SIGTERM to replica `i`; waits for it to exit successfully and returns
    /// the rest of its log.
    pub fn terminate(&mut self, i: usize) -> Vec<String> {
        let mut process = self.replicas[i].process.take().expect("a running replica");
        let log = self.replicas[i].log.take().expect("a log");
        terminate(&mut process, &log)
    }

    /// SIGSTOP to replica `i`: it keeps its connections but answers nothing
    /// until it is killed, so requests sent to it stay in flight.
    pub fn freeze(&self, i: usize) {
        freeze(
            self.replicas[i]
                .process
                .as_ref()
                .expect("a running replica"),
        );
    }

    /// SIGKILL to replica `i`, reaped before this returns.
    pub fn kill(&mut self, i: usize) {
        let mut process = self.replicas[i].process.take().expect("a running replica");
        kill(&mut process);
        self.replicas[i].log = None;
    }

    /// What admin commands through replica `i` need: server, CA, token file.
    pub fn admin_env(&self, i: usize) -> Vec<(&'static str, String)> {
        let text = |path: PathBuf| path.to_str().expect("utf-8 path").to_owned();
        vec![
            ("PODSEAL_SERVER", self.replicas[i].url.clone()),
            ("PODSEAL_CA_FILE", text(self.dir.join("tls.crt"))),
            (
                "PODSEAL_ADMIN_TOKEN_FILE",
                text(self.dir.join("admin.token")),
            ),
        ]
    }

    /// Runs `podseal ARGS` as an admin command through replica `i`; returns stdout.
    pub fn admin(&self, i: usize, args: &[&str]) -> String {
        let env = self.admin_env(i);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_ok(&self.binary, args, &env)
    }

    /// A running pod `shop/NAME` (service account `api`, approved image);
    /// returns its projected token.
    pub fn pod(&self, name: &str) -> String {
        create_pod(&self.dir.join("dc"), &self.digest, name)
    }

    /// A new projected token for the pod `shop/NAME`.
    pub fn token(&self, name: &str) -> String {
        pod_token(&self.dev_cluster_dir(), name)
    }

    /// The stand-in's files (ca.pem, reader.token, …): `--dir` of `podseal-dev cluster`.
    pub fn dev_cluster_dir(&self) -> PathBuf {
        self.dir.join("dc")
    }

    /// Runs `podseal ARGS` (no server involved); returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        run_ok(&self.binary, args, &[])
    }

    /// Runs `podseal-dev ARGS` (the stand-in's commands); returns stdout.
    pub fn dev(&self, args: &[&str]) -> String {
        run_ok(&podseal_test_support::binaries::dev(), args, &[])
    }
}

/// `GET path` over HTTPS/1.1 to the server at `url` (trusting `ca_file`),
/// within `deadline`; returns the status code and body.
pub fn https_get(url: &str, ca_file: &Path, path: &str, deadline: Duration) -> (u16, String) {
    use rustls::pki_types::pem::PemObject as _;
    use std::io::{Read as _, Write as _};
    let authority = url.trim_start_matches("https://");
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca_file).expect("CA file") {
        roots.add(cert.expect("a certificate")).expect("a root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).expect("a server name");
    let connection =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("a TLS client");
    let address = authority.replace("localhost", "127.0.0.1");
    let tcp = std::net::TcpStream::connect(&address).expect("connect");
    tcp.set_read_timeout(Some(deadline)).expect("timeout");
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let request = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    // A TLS close without close_notify still ends the answer.
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer within {deadline:?}: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
