//! A podseal deployment made of real processes on loopback: the Kubernetes
//! stand-in (`podseal-dev cluster serve`) and N release-server replicas
//! (`podseal-server`), all children of this binary, as replicas behind one
//! Service would be: one external URL (the DPoP `htu`), one org key file,
//! one audit key file, one TLS certificate, and one store (SQLite for one
//! replica; one PostgreSQL schema, made fresh for the run, for several).
//!
//! Setup goes through the admin HTTP API of the first replica (cluster
//! `bench`, an API key and a digest policy for `bench/load`) and the
//! stand-in's control API (pods, TokenRequest). Every wait is on a
//! condition (a log line, an answer) with a deadline. Every child is killed
//! and reaped when its [`ChildProcess`] is dropped, on every path.
//! With PostgreSQL, the caller makes the schema ([`PostgresSchema`]).
//!
//! [`PostgresSchema`]: crate::postgres_schema::PostgresSchema

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use http::Method;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use podseal_core::audit::AuditKey;
use podseal_core::hpke::KemId;
use podseal_core::org_key::{OrgPrivateKey, OrgPublicKey};
use podseal_core::wire::admin::{ApiKeyRequest, ClusterRequest, PolicyRequest, ReaderToken};
use podseal_dev_cluster::{ContainerImage, PodTemplate};
use podseal_keys::key_file::write_new;
use podseal_sdk::admin::{AdminClient, AdminError};
use podseal_sdk::https::{Answer, HttpsClient};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::child_process::ChildProcess;
use crate::cpus::CpuList;
use crate::error::DeploymentError;

/// The external URL every replica shares (DPoP proofs name it in `htu`).
pub const EXTERNAL_URL: &str = "https://podseal.bench";
/// The cluster name registered with the servers.
pub const CLUSTER: &str = "bench";
/// The namespace of the simulated pods.
pub const NAMESPACE: &str = "bench";
/// Their service account.
pub const SERVICE_ACCOUNT: &str = "load";
/// The audience of their projected tokens for podseal.
pub const AUDIENCE: &str = "podseal";
/// The approved (and only) image digest.
pub const DIGEST: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// How long a process may take to print that it is ready.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long replicas may take to connect the registered cluster.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(30);
/// What a replica logs when its periodic refresh connects a cluster.
const CLUSTER_CONNECTED: &str = "connected a cluster registered or changed elsewhere";

/// Which store the replicas share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite in the replica's state directory (one replica).
    Sqlite,
    /// One PostgreSQL schema shared by every replica.
    Postgres,
}

impl Engine {
    /// The `storage.engine` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What to start.
pub struct DeploymentConfig<'a> {
    /// The `podseal-dev` binary the stand-in is started from (normally
    /// `std::env::current_exe()`).
    pub dev: &'a Path,
    /// The `podseal-server` binary the replicas are started from.
    pub server: &'a Path,
    /// A directory for keys, certificates and state (a fresh temporary one).
    pub dir: &'a Path,
    /// The store.
    pub engine: Engine,
    /// The PostgreSQL URL (with its `search_path`) when the engine is PostgreSQL.
    pub postgres_url: Option<&'a str>,
    /// How many replicas.
    pub replicas: usize,
    /// The CPUs the replicas run on (`taskset -c`), or anywhere.
    pub server_cpus: Option<&'a CpuList>,
}

/// One release-server replica.
pub struct Replica {
    /// The process.
    pub process: ChildProcess,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// A keep-alive client for it (trusting the deployment's certificate).
    pub client: HttpsClient,
}

/// The running deployment.
pub struct Deployment {
    dir: PathBuf,
    stand_in: ChildProcess,
    stand_in_client: HttpsClient,
    stand_in_admin: Zeroizing<String>,
    /// The replicas, in start order.
    pub replicas: Vec<Replica>,
    admin_token: Zeroizing<String>,
    api_key: Zeroizing<String>,
    org_public: OrgPublicKey,
}

/// An admin request's failure as a setup failure of `what`.
fn refused(what: &'static str) -> impl Fn(AdminError) -> DeploymentError {
    move |error| DeploymentError::Request {
        what: what.into(),
        reason: error.to_string(),
    }
}

impl Deployment {
    /// Starts the stand-in and the replicas and registers everything.
    pub async fn start(config: DeploymentConfig<'_>) -> Result<Self, DeploymentError> {
        let dir = config.dir.to_owned();
        let org_public = write_keys(&dir, config.engine, config.postgres_url)?;
        let cert_pem = write_tls(&dir)?;
        let (stand_in, stand_in_url) = start_stand_in(config.dev, &dir).await?;
        let stand_in_ca = read(&dir.join("dc/ca.pem"))?;
        let stand_in_client = HttpsClient::new(&stand_in_url, Some(&stand_in_ca)).map_err(|e| {
            DeploymentError::Request {
                what: "a client for the stand-in".into(),
                reason: e.to_string(),
            }
        })?;
        let stand_in_admin = Zeroizing::new(
            String::from_utf8_lossy(&read(&dir.join("dc/admin.token"))?)
                .trim()
                .to_owned(),
        );
        // The first replica creates the store and the admin token; the
        // others start together once it has.
        let mut first = spawn_replica(&config, 0)?;
        let (url, client) = first_ready(&mut first, &cert_pem).await?;
        let mut replicas = vec![Replica {
            process: first,
            url,
            client,
        }];
        let others: Vec<ChildProcess> = (1..config.replicas)
            .map(|i| spawn_replica(&config, i))
            .collect::<Result<_, _>>()?;
        for mut process in others {
            let (url, client) = listening(&mut process, &cert_pem).await?;
            replicas.push(Replica {
                process,
                url,
                client,
            });
        }
        let admin_token = Zeroizing::new(
            String::from_utf8_lossy(&read(&dir.join("admin.token"))?)
                .trim()
                .to_owned(),
        );
        let mut deployment = Self {
            dir,
            stand_in,
            stand_in_client,
            stand_in_admin,
            replicas,
            admin_token,
            api_key: Zeroizing::new(String::new()),
            org_public,
        };
        deployment.register(&stand_in_url).await?;
        Ok(deployment)
    }

    /// The org public key capsules are sealed to.
    pub fn org_public(&self) -> &OrgPublicKey {
        &self.org_public
    }

    /// The API key bound to `bench/bench/load`.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The stand-in's process id.
    pub fn stand_in_pid(&self) -> u32 {
        self.stand_in.pid()
    }

    /// An error if any process of the deployment has exited.
    pub fn check_alive(&mut self) -> Result<(), DeploymentError> {
        self.stand_in.check_alive()?;
        self.replicas
            .iter_mut()
            .try_for_each(|r| r.process.check_alive())
    }

    /// Cluster, API key and policy through the first replica; then waits
    /// until every replica has connected the cluster's pod view.
    async fn register(&mut self, stand_in_url: &str) -> Result<(), DeploymentError> {
        // The stand-in's connection files are read here and sent as content,
        // as `podseal cluster add` does: the server reads no path a request names.
        let read = |file: &str| {
            let path = self.dir.join(file);
            std::fs::read_to_string(&path).map_err(|e| DeploymentError::File {
                action: "read",
                path,
                reason: e.to_string(),
            })
        };
        let registration = ClusterRequest {
            name: CLUSTER.into(),
            api_server_url: stand_in_url.into(),
            ca_pem: read("dc/ca.pem")?,
            reader_token: ReaderToken::new(&Zeroizing::new(read("dc/reader.token")?)),
            ..ClusterRequest::default()
        };
        let admin = self.admin(0)?;
        admin
            .add_cluster(&registration)
            .await
            .map_err(refused("registering the cluster"))?;
        let created = admin
            .create_api_key(&ApiKeyRequest {
                cluster: CLUSTER.into(),
                namespace: NAMESPACE.into(),
                service_account: SERVICE_ACCOUNT.into(),
            })
            .await
            .map_err(refused("creating an API key"))?;
        self.api_key = Zeroizing::new(created.key);
        admin
            .set_policy(&PolicyRequest {
                cluster: CLUSTER.into(),
                namespace: NAMESPACE.into(),
                service_account: SERVICE_ACCOUNT.into(),
                digests: vec![DIGEST.into()],
                audit_mode: false,
                require_nonce: false,
            })
            .await
            .map_err(refused("setting the policy"))?;
        self.wait_for_reconnections().await?;
        self.wait_for_cluster().await
    }

    /// The other replicas connect the new cluster at their next refresh
    /// (every second here), each with a new pod view that refuses (503)
    /// until its first list: a run started before that would count those
    /// refusals. So: wait for the line on every replica but the one it was
    /// registered through (which connected it while answering).
    async fn wait_for_reconnections(&mut self) -> Result<(), DeploymentError> {
        for replica in self.replicas.iter_mut().skip(1) {
            replica
                .process
                .wait_for_line(CLUSTER_CONNECTED, CLUSTER_DEADLINE)
                .await?;
        }
        Ok(())
    }

    async fn wait_for_cluster(&mut self) -> Result<(), DeploymentError> {
        let until = Instant::now() + CLUSTER_DEADLINE;
        for replica in 0..self.replicas.len() {
            let admin = self.admin(replica)?;
            loop {
                let ready = admin.cluster(CLUSTER).await.ok().map(|info| info.ready);
                if ready == Some(true) {
                    break;
                }
                self.check_alive()?;
                if Instant::now() >= until {
                    return Err(DeploymentError::Timeout(format!(
                        "replica {replica} did not connect cluster {CLUSTER} within {} s",
                        CLUSTER_DEADLINE.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The admin client of replica `replica`.
    fn admin(&self, replica: usize) -> Result<AdminClient, DeploymentError> {
        let client = &self
            .replicas
            .get(replica)
            .ok_or_else(|| DeploymentError::Request {
                what: format!("administering replica {replica}"),
                reason: "no such replica".into(),
            })?
            .client;
        Ok(AdminClient::new(client.clone(), &self.admin_token))
    }

    /// A request to the stand-in's control or Kubernetes API as its admin.
    async fn stand_in(
        &self,
        what: &str,
        route: &str,
        body: Option<Value>,
    ) -> Result<Value, DeploymentError> {
        let authorization = Zeroizing::new(format!("Bearer {}", self.stand_in_admin.as_str()));
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let answer = self
            .stand_in_client
            .send(
                method,
                route,
                &[("authorization", &authorization)],
                body.map(|b| serde_json::to_vec(&b).unwrap_or_default()),
            )
            .await;
        json_answer(what, answer)
    }

    /// Creates the running pod `bench/NAME` (service account `load`, the
    /// approved image).
    pub async fn create_pod(&self, name: &str) -> Result<(), DeploymentError> {
        let template = PodTemplate {
            namespace: NAMESPACE.into(),
            name: name.into(),
            service_account: SERVICE_ACCOUNT.into(),
            labels: Default::default(),
            sidecars: vec![],
            image_volumes: vec![],
            node: None,
            init_containers: vec![],
            containers: vec![ContainerImage {
                name: "app".into(),
                image: "registry.example/bench/app:1".into(),
                digest: Some(DIGEST.into()),
                env: Default::default(),
            }],
        };
        let body = serde_json::to_value(&template).map_err(|e| DeploymentError::Request {
            what: format!("creating pod {name}"),
            reason: e.to_string(),
        })?;
        self.stand_in(
            &format!("creating pod {name}"),
            "/dev-cluster/v1/pods",
            Some(body),
        )
        .await?;
        self.stand_in(
            &format!("starting pod {name}"),
            &format!("/dev-cluster/v1/pods/{NAMESPACE}/{name}/running"),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    /// A projected token for pod `name` with `audience`, as the kubelet gets it.
    pub async fn token(
        &self,
        name: &str,
        audience: &str,
    ) -> Result<Zeroizing<String>, DeploymentError> {
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(vec![audience.into()]),
                expiration_seconds: Some(3600),
                bound_object_ref: Some(BoundObjectReference {
                    kind: Some("Pod".into()),
                    api_version: Some("v1".into()),
                    name: Some(name.into()),
                    uid: None,
                }),
            }),
            ..TokenRequest::default()
        };
        let what = format!("a token for pod {name}");
        let body = serde_json::to_value(&request).map_err(|e| DeploymentError::Request {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        let route =
            format!("/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}/token");
        let answer = self.stand_in(&what, &route, Some(body)).await?;
        let token = answer
            .pointer("/status/token")
            .and_then(Value::as_str)
            .ok_or_else(|| DeploymentError::Request {
                what,
                reason: "the TokenRequest answer has no token".into(),
            })?;
        Ok(Zeroizing::new(token.to_owned()))
    }

    /// The stand-in's JWKS (JSON text) and token issuer.
    pub async fn jwks_and_issuer(&self) -> Result<(String, String), DeploymentError> {
        let jwks = self
            .stand_in("reading the JWKS", "/openid/v1/jwks", None)
            .await?;
        let discovery = self
            .stand_in(
                "reading the discovery document",
                "/.well-known/openid-configuration",
                None,
            )
            .await?;
        let issuer = discovery
            .get("issuer")
            .and_then(Value::as_str)
            .ok_or_else(|| DeploymentError::Request {
                what: "reading the discovery document".into(),
                reason: "no issuer".into(),
            })?;
        Ok((jwks.to_string(), issuer.to_owned()))
    }

    /// The sum over replicas of every sample of metric `name` in `/metrics`,
    /// or `None` when a replica does not expose it.
    pub async fn metric_sum(&self, name: &str) -> Option<f64> {
        let mut total = 0.0;
        for replica in &self.replicas {
            let answer = replica
                .client
                .send(Method::GET, "/metrics", &[], None)
                .await
                .ok()
                .filter(|a| a.status.is_success())?;
            total += metric_value(&String::from_utf8_lossy(&answer.body), name)?;
        }
        Some(total)
    }
}

/// Sums the samples of `name` (any labels) in Prometheus text; `None` if absent.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = match rest.chars().next() {
            Some('{') => rest.rsplit_once('}').map(|(_, v)| v),
            Some(' ') => Some(rest),
            _ => None,
        };
        if let Some(value) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// The answer's JSON if it is a success; else the status and refusal codes.
fn json_answer(
    what: &str,
    answer: Result<Answer, podseal_sdk::https::TransportError>,
) -> Result<Value, DeploymentError> {
    let answer = answer.map_err(|e| DeploymentError::Request {
        what: what.to_owned(),
        reason: e.to_string(),
    })?;
    if !answer.status.is_success() {
        return Err(DeploymentError::Request {
            what: what.to_owned(),
            reason: crate::labels::refusal_label(&answer),
        });
    }
    Ok(serde_json::from_slice(&answer.body).unwrap_or(Value::Null))
}

fn read(path: &Path) -> Result<Vec<u8>, DeploymentError> {
    std::fs::read(path).map_err(|e| DeploymentError::File {
        action: "read",
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), DeploymentError> {
    write_new(path, bytes, 0o600).map_err(|e| DeploymentError::File {
        action: "write",
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn generate_error(what: &'static str, error: &dyn std::fmt::Display) -> DeploymentError {
    DeploymentError::Generate {
        what,
        reason: error.to_string(),
    }
}

/// org.key, audit.key and (PostgreSQL) postgres.url, each 0600.
fn write_keys(
    dir: &Path,
    engine: Engine,
    postgres_url: Option<&str>,
) -> Result<OrgPublicKey, DeploymentError> {
    let org = OrgPrivateKey::generate(KemId::X25519HkdfSha256)
        .map_err(|e| generate_error("the org key", &e))?;
    write_secret(&dir.join("org.key"), org.to_text().as_bytes())?;
    let audit = AuditKey::generate().map_err(|e| generate_error("the audit key", &e))?;
    write_secret(&dir.join("audit.key"), audit.to_text().as_bytes())?;
    if engine == Engine::Postgres {
        let url = postgres_url.ok_or_else(|| DeploymentError::Generate {
            what: "the storage URL file",
            reason: "no PostgreSQL URL".into(),
        })?;
        write_secret(&dir.join("postgres.url"), url.as_bytes())?;
    }
    Ok(org.public().clone())
}

/// One certificate for every replica (`127.0.0.1`, `localhost`); returns its PEM.
fn write_tls(dir: &Path) -> Result<Vec<u8>, DeploymentError> {
    let error = |e: rcgen::Error| DeploymentError::Generate {
        what: "the TLS certificate",
        reason: e.to_string(),
    };
    let key = rcgen::KeyPair::generate().map_err(error)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).map_err(error)?;
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(std::net::IpAddr::from([
            127, 0, 0, 1,
        ])));
    let cert = params.self_signed(&key).map_err(error)?;
    std::fs::write(dir.join("tls.crt"), cert.pem()).map_err(|e| DeploymentError::File {
        action: "write",
        path: dir.join("tls.crt"),
        reason: e.to_string(),
    })?;
    write_secret(&dir.join("tls.key"), key.serialize_pem().as_bytes())?;
    Ok(cert.pem().into_bytes())
}

/// A command for `binary` with no inherited `PODSEAL_*` variable.
fn podseal(binary: &Path, cpus: Option<&CpuList>) -> Command {
    let mut command = match cpus {
        Some(cpus) => {
            let mut taskset = Command::new("taskset");
            taskset.arg("-c").arg(cpus.to_string()).arg(binary);
            taskset
        }
        None => Command::new(binary),
    };
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PODSEAL_") {
            command.env_remove(name);
        }
    }
    command
}

async fn start_stand_in(
    binary: &Path,
    dir: &Path,
) -> Result<(ChildProcess, String), DeploymentError> {
    let mut command = podseal(binary, None);
    command
        .args(["cluster", "serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.join("dc"));
    let mut process = ChildProcess::spawn("the Kubernetes stand-in", command)?;
    let line = process
        .wait_for_line("dev-cluster serving", START_DEADLINE)
        .await?;
    let url = line
        .split_whitespace()
        .nth(2)
        .filter(|u| u.starts_with("https://"))
        .ok_or_else(|| DeploymentError::Timeout(format!("unexpected stand-in line {line:?}")))?
        .to_owned();
    Ok((process, url))
}

fn spawn_replica(
    config: &DeploymentConfig<'_>,
    index: usize,
) -> Result<ChildProcess, DeploymentError> {
    let path = |name: &str| config.dir.join(name);
    let mut command = podseal(config.server, config.server_cpus);
    if index == 0 {
        command.arg("--admin-token-file").arg(path("admin.token"));
    }
    command
        .env("PODSEAL_LISTEN", "127.0.0.1:0")
        .env("PODSEAL_EXTERNAL_URL", EXTERNAL_URL)
        .env("PODSEAL_STATE_DIR", path(&format!("replica-{index}")))
        .env("PODSEAL_ORG_KEY_FILES", path("org.key"))
        .env("PODSEAL_TLS_CERT_FILE", path("tls.crt"))
        .env("PODSEAL_TLS_KEY_FILE", path("tls.key"))
        .env("PODSEAL_AUDIT_KEY_FILE", path("audit.key"))
        // Info: refusals are logged, and so is the cluster connection awaited at setup.
        .env("PODSEAL_LOG_LEVEL", "info")
        .env("PODSEAL_CLUSTERS_REFRESH_SECS", "1")
        .env("PODSEAL_STORAGE_ENGINE", config.engine.as_str());
    if config.engine == Engine::Postgres {
        command.env("PODSEAL_STORAGE_URL_FILE", path("postgres.url"));
    }
    ChildProcess::spawn(&format!("replica {index}"), command)
}

/// Waits for `listening on 127.0.0.1:PORT`; returns the URL and a client.
async fn listening(
    process: &mut ChildProcess,
    cert_pem: &[u8],
) -> Result<(String, HttpsClient), DeploymentError> {
    let line = process
        .wait_for_line("listening on", START_DEADLINE)
        .await?;
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| DeploymentError::Timeout(format!("unexpected server line {line:?}")))?;
    let url = format!("https://{addr}");
    let client = HttpsClient::new(&url, Some(cert_pem)).map_err(|e| DeploymentError::Request {
        what: format!("a client for {}", process.what()),
        reason: e.to_string(),
    })?;
    Ok((url, client))
}

async fn first_ready(
    process: &mut ChildProcess,
    cert_pem: &[u8],
) -> Result<(String, HttpsClient), DeploymentError> {
    let ready = listening(process, cert_pem).await?;
    process
        .wait_for_line("admin token written to", START_DEADLINE)
        .await?;
    Ok(ready)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn metric_samples_are_summed_over_labels() {
        let text = "# HELP x\npodseal_storage_commits_total{op=\"a\"} 3\npodseal_storage_commits_total{op=\"b\"} 4\npodseal_storage_commits_total_other 9\n";
        assert_eq!(
            metric_value(text, "podseal_storage_commits_total"),
            Some(7.0)
        );
        assert_eq!(metric_value("podseal_x 2.5\n", "podseal_x"), Some(2.5));
        assert_eq!(
            metric_value(text, "podseal_storage_round_trips_total"),
            None
        );
    }
}
