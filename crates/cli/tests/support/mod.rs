//! Running `podseal` as a child process, shared by the CLI's test binaries
//! and the `release_loop` benchmark.
#![allow(dead_code, reason = "each binary uses a different subset")]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// The port in `podseal serve`'s `... listening on 127.0.0.1:PORT (...)`.
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

/// The stand-in and a release server as processes, registered through the
/// admin commands: cluster `prod`, an API key and a digest policy for
/// `shop/api`. Pods come from [`Deployment::pod`].
pub struct Deployment {
    binary: std::path::PathBuf,
    dir: std::path::PathBuf,
    _cluster: Process,
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
}

impl Deployment {
    /// Starts everything under `dir`, the server logging at `log_level`.
    pub fn start(binary: &Path, dir: &Path, log_level: &str) -> Self {
        let p = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_owned();
        let (cluster, line, _) = spawn(
            binary,
            &[
                "dev-cluster",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--dir",
                &p("dc"),
            ],
            &[],
            false,
            "dev-cluster serving",
        );
        let cluster_url = line.split_whitespace().nth(2).expect("a URL").to_owned();
        run_ok(binary, &["keys", "init", "--out", &p("keys")], &[]);
        // The external URL must name the port clients use (DPoP htu), so pick it first.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("https://localhost:{port}");
        let (server, _, server_log) = spawn(
            binary,
            &["serve", "--admin-token-file", &p("admin.token")],
            &[
                ("PODSEAL_ORG_KEY_FILES", &p("keys/org.key")),
                ("PODSEAL_STATE_DIR", &p("state")),
                ("PODSEAL_LISTEN", &format!("127.0.0.1:{port}")),
                ("PODSEAL_EXTERNAL_URL", &url),
                ("PODSEAL_LOG_LEVEL", log_level),
            ],
            true,
            "listening on",
        );
        wait_for_line(&server_log, "admin token written to");
        let mut deployment = Self {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            _cluster: cluster,
            server,
            server_log,
            url,
            digest: format!("sha256:{}", "a".repeat(64)),
            api_key: String::new(),
        };
        let admin = deployment.admin_env();
        let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_ok(
            binary,
            &[
                "cluster",
                "add",
                "prod",
                "--api-server",
                &cluster_url,
                "--ca-bundle",
                &p("dc/ca.pem"),
                "--token-file",
                &p("dc/reader.token"),
            ],
            &admin,
        );
        let created: serde_json::Value = serde_json::from_str(&run_ok(
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
            &admin,
        ))
        .expect("JSON");
        deployment.api_key = created["key"].as_str().expect("a key").to_owned();
        std::fs::write(dir.join("api-key"), &deployment.api_key).expect("write the API key");
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
                &deployment.digest,
            ],
            &admin,
        );
        deployment
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().expect("utf-8 path").to_owned()
    }

    /// What admin commands need: server, CA, token file.
    pub fn admin_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PODSEAL_SERVER", self.url.clone()),
            ("PODSEAL_CA", self.path("state/tls-dev.crt")),
            ("PODSEAL_ADMIN_TOKEN_FILE", self.path("admin.token")),
        ]
    }

    /// A running pod `shop/NAME` (service account `api`, approved image)
    /// and its projected token in `NAME.token`; returns the pod's client
    /// environment.
    pub fn pod(&self, name: &str) -> Vec<(&'static str, String)> {
        let dc = self.path("dc");
        let container = format!("api=registry.example/shop/api:1@{}", self.digest);
        run_ok(
            &self.binary,
            &[
                "dev-cluster",
                "pod",
                "create",
                "--dir",
                &dc,
                "--namespace",
                "shop",
                "--name",
                name,
                "--service-account",
                "api",
                "--container",
                &container,
                "--running",
            ],
            &[],
        );
        let token = run_ok(
            &self.binary,
            &[
                "dev-cluster",
                "token",
                "--dir",
                &dc,
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
        );
        let token_file = self.path(&format!("{name}.token"));
        std::fs::write(&token_file, token.trim()).expect("write the token");
        vec![
            ("PODSEAL_SERVER", self.url.clone()),
            ("PODSEAL_CA_FILE", self.path("state/tls-dev.crt")),
            ("PODSEAL_API_KEY_FILE", self.path("api-key")),
            ("PODSEAL_TOKEN_FILE", token_file),
        ]
    }

    /// SIGTERM to the server (it signs a final checkpoint); waits (deadline
    /// 30 s) for it to exit and returns its log.
    pub fn stop(&mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.server.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut log = Vec::new();
        loop {
            if let Ok(Some(status)) = self.server.0.try_wait() {
                assert!(status.success(), "the server exited with {status}");
                log.extend(self.server_log.try_iter());
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            // Waits on the log: lines until the server closes stderr.
            if let Ok(line) = self.server_log.recv_timeout(Duration::from_millis(20)) {
                log.push(line);
            }
        }
    }
}
