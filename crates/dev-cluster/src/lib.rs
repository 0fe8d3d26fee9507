//! A local stand-in for the Kubernetes API subset podseal uses.
//!
//! It serves, over HTTPS with a CA it generates and in the JSON shapes of a
//! real API server (built from `k8s-openapi` types):
//! - OIDC discovery and the JWKS of the ServiceAccount token issuer;
//! - the TokenRequest API, issuing RS256 pod-bound tokens;
//! - pods: get, list (label and field selectors) and watch (resourceVersion,
//!   ADDED/MODIFIED/DELETED, BOOKMARK, `410 Expired`), so that
//!   `kube::runtime::watcher` runs against it unmodified;
//! - service accounts: get and list;
//! - and, for `podseal-dev cluster mount-secret`, the files a Secret
//!   volume mounts ([`secret_volume`]), as the kubelet makes them.
//!
//! Two bearer identities exist: a read-only one that may only get, list and
//! watch pods (what the release server's ClusterRole grants), and an admin
//! one for everything else; anything outside an identity's rights is a 403
//! `Status`. Control verbs (create a pod, mark it running, delete, recreate
//! with a new uid, inject a debug container, rotate the signing key, pause
//! the API) are methods of [`Handle`], and HTTP routes for the CLI.
//!
//! Nothing in the release server knows this is not a real cluster: it gets
//! a URL, a CA bundle and a token file, as for any cluster.

mod api;
pub use api::KUBERNETES_MINOR;
mod api_error;
mod behaviour;
mod columns;
mod discovery;
mod fields;
pub mod issuer;
mod kinds;
mod list_params;
pub mod patch;
pub mod pods;
pub mod protobuf;
mod rest;
mod reviews;
pub mod secret_volume;
mod selectors;
mod server;
mod state;
pub use state::StateError;
mod store;
pub mod tls;
mod token_request;
mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use pods::{ContainerImage, ImageVolume, PodTemplate};

use issuer::{Issuer, IssuerError, KubernetesClaim, NameUid, TokenClaims};
use k8s_openapi::api::certificates::v1beta1::PodCertificateRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use store::Store;

/// How the stand-in is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The token issuer (`iss`), as `--service-account-issuer`.
    pub issuer: String,
    /// How many pod changes a watch can resume across.
    pub history_limit: usize,
    /// How often a watch that allows bookmarks receives one.
    pub bookmark_interval: Duration,
    /// As `kube-apiserver --service-account-extend-token-expiration`
    /// (default true there and here): a pod-bound token asked for
    /// 3607 s (the kubelet's default) for the API server's own audience
    /// is issued for a year, with `kubernetes.io` `warnafter` at 3607 s.
    pub extend_token_expiration: bool,
    /// The algorithm ServiceAccount tokens are signed with: RS256, as
    /// `kube-apiserver` with an RSA key, unless set (an external signer,
    /// KEP-740, may sign ES256, ES384 or ES512).
    pub token_algorithm: issuer::SigningAlgorithm,
    /// Where the CA, the signing keys, the bearer identities and the
    /// objects are kept across restarts; `None` keeps them in memory only.
    /// A directory with state in it restores it: same CA, same keys, same
    /// tokens, same address (when `listen` asks for port 0), same objects.
    pub state_dir: Option<std::path::PathBuf>,
}

/// What the kubelet asks for its default projected token, seconds: the
/// lifetime the API server extends.
pub const WARN_ONLY_TOKEN_SECONDS: i64 = 3607;
/// How long an extended token is issued for, seconds (a year).
pub const EXTENDED_TOKEN_SECONDS: i64 = 365 * 24 * 3600;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: "https://kubernetes.default.svc".into(),
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(5),
            extend_token_expiration: true,
            token_algorithm: issuer::SigningAlgorithm::Rs256,
            state_dir: None,
        }
    }
}

/// Why the stand-in could not start or a control verb failed.
#[derive(Debug, thiserror::Error)]
pub enum DevClusterError {
    /// TLS material could not be generated.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The issuer could not make keys or sign.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No such pod.
    #[error("pod {namespace}/{name} not found")]
    PodNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A pod with that name exists already.
    #[error("pod {namespace}/{name} already exists")]
    PodExists {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The state directory could not be read or written.
    #[error("state directory: {0}")]
    State(#[from] StateError),
}

/// The bearer identities the stand-in accepts.
#[derive(Clone)]
pub(crate) struct Identities {
    reader: String,
    admin: String,
}

/// Name the read-only identity is known by in `Status` messages.
pub const READER_USER: &str = "system:serviceaccount:podseal-system:podseal-reader";
/// Name the admin identity is known by.
pub const ADMIN_USER: &str = "dev-cluster-admin";

pub(crate) struct Shared {
    store: Mutex<Store>,
    state: Option<state::StateDir>,
    issuer: Mutex<Issuer>,
    identities: Identities,
    paused: tokio::sync::watch::Sender<bool>,
    external_url: String,
    /// Uid of the one node pods are scheduled on.
    node_uid: String,
    config: Config,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn issuer(&self) -> MutexGuard<'_, Issuer> {
        self.issuer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps what must survive a restart, when there is a state directory.
    fn save_keys(
        &self,
        ca_pem: &str,
        ca_key_pem: &str,
        address: SocketAddr,
    ) -> Result<(), DevClusterError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        state.save_keys(&state::Keys {
            ca_cert_pem: ca_pem.to_owned(),
            ca_key_pem: ca_key_pem.to_owned(),
            issuer: self.issuer().save(),
            reader_token: self.identities.reader.clone(),
            admin_token: self.identities.admin.clone(),
            node_uid: self.node_uid.clone(),
            address,
        })?;
        Ok(())
    }

    /// Keeps the issuer's keys after a rotation, the rest as it was.
    fn save_issuer(&self) -> Result<(), DevClusterError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        if let Some(mut keys) = state.load_keys()? {
            keys.issuer = self.issuer().save();
            state.save_keys(&keys)?;
        }
        Ok(())
    }
}

/// A running stand-in. Dropping it stops the server.
pub struct DevCluster {
    shared: Arc<Shared>,
    ca_pem: String,
    addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DevCluster {
    /// Generates a CA, keys and tokens (or takes those of the state
    /// directory), and starts serving.
    pub async fn start(config: Config) -> Result<Self, DevClusterError> {
        let state = config.state_dir.as_deref().map(state::StateDir::new);
        let saved = match &state {
            Some(state) => state.load_keys()?,
            None => None,
        };
        let listen = match &saved {
            Some(saved) if config.listen.port() == 0 => saved.address,
            _ => config.listen,
        };
        let tls = tls::generate(saved.as_ref().map(|k| tls::SavedCa {
            cert_pem: &k.ca_cert_pem,
            key_pem: &k.ca_key_pem,
        }))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| DevClusterError::Listen {
                addr: listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DevClusterError::Listen {
                addr: listen,
                source,
            })?;
        let (issuer, identities, node_uid) = match &saved {
            Some(saved) => (
                Issuer::restore(config.issuer.clone(), &saved.issuer)?,
                Identities {
                    reader: saved.reader_token.clone(),
                    admin: saved.admin_token.clone(),
                },
                saved.node_uid.clone(),
            ),
            None => (
                Issuer::with_algorithm(config.issuer.clone(), config.token_algorithm)?,
                Identities {
                    reader: random_token(),
                    admin: random_token(),
                },
                pods::new_uid(),
            ),
        };
        let store = Store::open(config.history_limit, state.clone()).map_err(stored)?;
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            state,
            issuer: Mutex::new(issuer),
            identities,
            paused: tokio::sync::watch::channel(false).0,
            external_url: format!("https://{addr}"),
            node_uid,
            config,
        });
        shared.save_keys(&tls.ca_pem, &tls.ca_key_pem, addr)?;
        let router = api::router(shared.clone());
        let task = tokio::spawn(server::serve(
            listener,
            tls.server_config,
            router,
            shared.paused.subscribe(),
        ));
        Ok(Self {
            shared,
            ca_pem: tls.ca_pem,
            addr,
            task: Some(task),
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.shared.external_url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Bearer token of the read-only identity (get/list/watch pods only).
    pub fn reader_token(&self) -> &str {
        &self.shared.identities.reader
    }

    /// Bearer token of the admin identity.
    pub fn admin_token(&self) -> &str {
        &self.shared.identities.admin
    }

    /// The control handle.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }
}

impl DevCluster {
    /// Stops serving and returns once the listening port is free (the
    /// state directory, if any, holds everything written before).
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn random_token() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pods::random_bytes::<32>())
}

/// Control verbs, for demos and tests; every change is seen by watches.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

/// Creates namespace `name` unless it exists.
fn ensure_namespace(store: &mut Store, name: &str) -> Result<(), DevClusterError> {
    if !store.namespace_exists(name) {
        store
            .create(
                kinds::of::<k8s_openapi::api::core::v1::Namespace>(),
                behaviour::new_namespace(name),
            )
            .map_err(stored)?;
    }
    Ok(())
}

/// A control verb's write that the store refused.
fn stored(error: store::StoreError) -> DevClusterError {
    DevClusterError::Invalid(format!("the store refused the write: {error}"))
}

fn not_found(namespace: &str, name: &str) -> DevClusterError {
    DevClusterError::PodNotFound {
        namespace: namespace.into(),
        name: name.into(),
    }
}

impl Handle {
    /// Creates a pod (Pending, no container statuses), and its namespace and
    /// service account if they do not exist (a control verb sets the
    /// scene; the API itself refuses a pod in a missing namespace).
    pub fn create_pod(&self, template: &PodTemplate) -> Result<Pod, DevClusterError> {
        if template.containers.is_empty() {
            return Err(DevClusterError::Invalid(
                "a pod needs at least one container".into(),
            ));
        }
        let mut store = self.shared.store();
        if store
            .get_as::<Pod>(&template.namespace, &template.name)
            .is_some()
        {
            return Err(DevClusterError::PodExists {
                namespace: template.namespace.clone(),
                name: template.name.clone(),
            });
        }
        ensure_namespace(&mut store, &template.namespace)?;
        if store
            .get_as::<ServiceAccount>(&template.namespace, &template.service_account)
            .is_none()
        {
            store
                .put_as(&pods::new_service_account(
                    &template.namespace,
                    &template.service_account,
                ))
                .map_err(stored)?;
        }
        store.put_as(&pods::new_pod(template)).map_err(stored)
    }

    fn modify_pod(
        &self,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut Pod, &PodTemplate),
    ) -> Result<Pod, DevClusterError> {
        let mut store = self.shared.store();
        let mut pod = store
            .get_as::<Pod>(namespace, name)
            .ok_or_else(|| not_found(namespace, name))?;
        let template = pods::template_of(&pod)
            .ok_or_else(|| DevClusterError::Invalid("pod has no template".into()))?;
        edit(&mut pod, &template);
        store.put_as(&pod).map_err(stored)
    }

    /// Reports every container started: phase Running, statuses with imageIDs.
    pub fn mark_running(&self, namespace: &str, name: &str) -> Result<Pod, DevClusterError> {
        self.modify_pod(namespace, name, pods::mark_running)
    }

    /// Restarts one container as the kubelet does after its process exits:
    /// first the exit (waiting in back-off, `lastState` terminated), then
    /// the new instance (running, a new `containerID`, `restartCount` + 1),
    /// two changes each seen by watches. The pod and its uid stay.
    pub fn restart_container(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Result<Pod, DevClusterError> {
        self.stop_container(namespace, name, container)?;
        self.start_container(namespace, name, container)
    }

    /// The exit half of [`Handle::restart_container`]: the container's
    /// process ended and the kubelet waits to start it again.
    pub fn stop_container(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Result<Pod, DevClusterError> {
        self.edit_container(namespace, name, container, "running", |pod| {
            pods::container_exited(pod, container, 1)
        })
    }

    /// The start half of [`Handle::restart_container`].
    pub fn start_container(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Result<Pod, DevClusterError> {
        self.edit_container(namespace, name, container, "waiting to restart", |pod| {
            pods::container_restarted(pod, container)
        })
    }

    fn edit_container(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        state: &str,
        edit: impl FnOnce(&mut Pod) -> bool,
    ) -> Result<Pod, DevClusterError> {
        let mut store = self.shared.store();
        let mut pod = store
            .get_as::<Pod>(namespace, name)
            .ok_or_else(|| not_found(namespace, name))?;
        if !edit(&mut pod) {
            return Err(DevClusterError::Invalid(format!(
                "pod {namespace}/{name} has no {state} container named {container}"
            )));
        }
        store.put_as(&pod).map_err(stored)
    }

    /// Adds an ephemeral (debug) container, running, as `kubectl debug` does.
    pub fn add_ephemeral_container(
        &self,
        namespace: &str,
        name: &str,
        image: &ContainerImage,
    ) -> Result<Pod, DevClusterError> {
        self.modify_pod(namespace, name, |pod, template| {
            let target = template.containers.first().map(|c| c.name.clone());
            pods::add_ephemeral(pod, image, target);
        })
    }

    /// Deletes a pod.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> Result<Pod, DevClusterError> {
        let deleted = self
            .shared
            .store()
            .delete(kinds::of::<Pod>(), namespace, name)
            .map_err(|e| match e {
                store::StoreError::NotFound => not_found(namespace, name),
                other => stored(other),
            })?;
        serde_json::from_value(deleted).map_err(|e| DevClusterError::Invalid(e.to_string()))
    }

    /// Deletes a pod and creates it again under the same name with a new uid.
    pub fn recreate_pod(&self, namespace: &str, name: &str) -> Result<Pod, DevClusterError> {
        let mut store = self.shared.store();
        let old = store
            .get_as::<Pod>(namespace, name)
            .ok_or_else(|| not_found(namespace, name))?;
        let template = pods::template_of(&old)
            .ok_or_else(|| DevClusterError::Invalid("pod has no template".into()))?;
        store
            .delete(kinds::of::<Pod>(), namespace, name)
            .map_err(stored)?;
        store.put_as(&pods::new_pod(&template)).map_err(stored)
    }

    /// The pod as stored.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.shared.store().get_as(namespace, name)
    }

    /// A service account, created (with its namespace) on first use.
    pub fn service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ServiceAccount, DevClusterError> {
        let mut store = self.shared.store();
        if let Some(sa) = store.get_as(namespace, name) {
            return Ok(sa);
        }
        ensure_namespace(&mut store, namespace)?;
        store
            .put_as(&pods::new_service_account(namespace, name))
            .map_err(stored)
    }

    /// Issues a token for `namespace/service_account`, optionally bound to a
    /// pod, as the TokenRequest API does.
    pub fn issue_token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[String],
        expiration_seconds: i64,
        bound_pod: Option<&str>,
    ) -> Result<(String, TokenClaims), DevClusterError> {
        let sa = self.service_account(namespace, service_account)?;
        let pod = match bound_pod {
            Some(pod_name) => {
                let pod = self
                    .pod(namespace, pod_name)
                    .ok_or_else(|| not_found(namespace, pod_name))?;
                let runs_as = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.as_deref());
                if runs_as != Some(service_account) {
                    return Err(DevClusterError::Invalid(format!(
                        "pod {pod_name} does not run as service account {service_account}"
                    )));
                }
                let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                Some((
                    NameUid {
                        name: pod_name.into(),
                        uid: pod.metadata.uid.unwrap_or_default(),
                    },
                    node,
                ))
            }
            None => None,
        };
        let (pod, node) = match pod {
            Some((pod, Some(node))) => (
                Some(pod),
                Some(NameUid {
                    uid: self.shared.node_uid.clone(),
                    name: node,
                }),
            ),
            Some((pod, None)) => (Some(pod), None),
            None => (None, None),
        };
        let issuer = self.shared.issuer();
        let now = jiff::Timestamp::now().as_second();
        let aud = if audiences.is_empty() {
            vec![issuer.issuer_url().to_owned()]
        } else {
            audiences.to_vec()
        };
        // The API server's own audience is its issuer here, as by default.
        let extended = self.shared.config.extend_token_expiration
            && pod.is_some()
            && expiration_seconds == WARN_ONLY_TOKEN_SECONDS
            && aud.iter().all(|a| a == issuer.issuer_url());
        let (exp, warnafter) = if extended {
            (now + EXTENDED_TOKEN_SECONDS, Some(now + expiration_seconds))
        } else {
            (now + expiration_seconds, None)
        };
        let claims = TokenClaims {
            aud,
            exp,
            iat: now,
            iss: issuer.issuer_url().to_owned(),
            jti: pods::new_uid(),
            kubernetes_io: KubernetesClaim {
                namespace: namespace.into(),
                serviceaccount: NameUid {
                    name: service_account.into(),
                    uid: sa.metadata.uid.unwrap_or_default(),
                },
                node,
                pod,
                warnafter,
            },
            nbf: now,
            sub: format!("system:serviceaccount:{namespace}:{service_account}"),
        };
        let token = issuer.sign(&claims)?;
        Ok((token, claims))
    }

    /// Asks for a certificate for a pod as the kubelet does for a
    /// `podCertificate` projected volume (KEP-4317): a new P-256 key, an
    /// empty PKCS#10 request it signs, and a PodCertificateRequest naming the
    /// pod, its service account and its node by name and uid, checked as the
    /// API server checks one. Returns the stored request (its `status` is
    /// the signer's to write) and the private key (PKCS#8 PEM), which the
    /// kubelet keeps.
    pub fn request_pod_certificate(
        &self,
        namespace: &str,
        pod_name: &str,
        signer_name: &str,
        max_expiration_seconds: Option<i32>,
    ) -> Result<(PodCertificateRequest, String), DevClusterError> {
        use base64::Engine as _;
        let mut store = self.shared.store();
        let pod = store
            .get_as::<Pod>(namespace, pod_name)
            .ok_or_else(|| not_found(namespace, pod_name))?;
        let spec = pod.spec.unwrap_or_default();
        let account_name = spec.service_account_name.unwrap_or_default();
        let account = store
            .get_as::<ServiceAccount>(namespace, &account_name)
            .ok_or_else(|| {
                DevClusterError::Invalid(format!(
                    "pod {namespace}/{pod_name} runs as service account {account_name}, which does not exist"
                ))
            })?;
        let key =
            rcgen::KeyPair::generate().map_err(|e| DevClusterError::Invalid(e.to_string()))?;
        // The kubelet's request is empty but for its key: no subject, no extensions.
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| DevClusterError::Invalid(e.to_string()))?;
        let mut request = serde_json::json!({
            "metadata": {"generateName": format!("{pod_name}-"), "namespace": namespace},
            "spec": {
                "signerName": signer_name,
                "podName": pod_name,
                "podUID": pod.metadata.uid.unwrap_or_default(),
                "serviceAccountName": account_name,
                "serviceAccountUID": account.metadata.uid.unwrap_or_default(),
                "nodeName": spec.node_name.unwrap_or_default(),
                "nodeUID": self.shared.node_uid,
                "stubPKCS10Request": base64::engine::general_purpose::STANDARD.encode(csr.der()),
            },
        });
        if let Some(seconds) = max_expiration_seconds {
            fields::put(
                &mut request,
                &["spec", "maxExpirationSeconds"],
                seconds.into(),
            );
        }
        let kind = kinds::of::<PodCertificateRequest>();
        let mut request = kind.typed(request).map_err(DevClusterError::Invalid)?;
        behaviour::on_create(kind, &mut request, &store, &self.shared.node_uid).map_err(|e| {
            DevClusterError::Invalid(e.status().message.clone().unwrap_or_default())
        })?;
        let stored = store.create(kind, request).map_err(stored)?;
        let stored =
            serde_json::from_value(stored).map_err(|e| DevClusterError::Invalid(e.to_string()))?;
        Ok((stored, key.serialize_pem()))
    }

    /// Rotates the token signing key; `keep_old` keeps old keys in the JWKS.
    pub fn rotate_signing_key(&self, keep_old: bool) -> Result<String, DevClusterError> {
        let kid = self.shared.issuer().rotate_signing_key(keep_old)?;
        self.shared.save_issuer()?;
        Ok(kid)
    }

    /// Publishes a second key in the JWKS that verifies but does not sign.
    pub fn add_verification_key(&self) -> Result<String, DevClusterError> {
        let kid = self.shared.issuer().add_verification_key()?;
        self.shared.save_issuer()?;
        Ok(kid)
    }

    /// Signs any header and claims with the current signing key (for tests
    /// that forge tokens whose only fault is in the header).
    pub fn sign_raw(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, DevClusterError> {
        Ok(self.shared.issuer().sign_raw(header, claims)?)
    }

    /// The current JWKS.
    pub fn jwks(&self) -> issuer::Jwks {
        self.shared.issuer().jwks()
    }

    /// The uid of the node pods are scheduled on, as the kubelet knows it
    /// (what a PodCertificateRequest's `spec.nodeUID` must name).
    pub fn node_uid(&self) -> &str {
        &self.shared.node_uid
    }

    /// Forgets watch history: resuming from any older resourceVersion gets 410.
    pub fn compact_history(&self) {
        self.shared.store().compact();
    }

    /// Empties the store as a restore of etcd from an empty backup would:
    /// only the namespaces a new cluster has, resourceVersions counting
    /// from the start again, and every open watch ended (its sender is
    /// dropped). The CA, the signing keys and the bearer identities stay,
    /// so tokens issued before still verify — the case gate 4 must catch.
    /// With a state directory, the empty store is what it keeps.
    pub fn reset_state(&self) -> Result<(), DevClusterError> {
        let limit = self.shared.config.history_limit;
        let mut store = self.shared.store();
        *store = Store::new(limit, store.state()).map_err(stored)?;
        Ok(())
    }

    /// Stops answering: open connections are dropped and new ones closed.
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    /// Answers again.
    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
    }
}

/// Files `podseal-dev cluster serve` writes so other processes can connect.
pub mod connection_files {
    /// CA certificate (PEM).
    pub const CA: &str = "ca.pem";
    /// Read-only bearer token (get/list/watch pods), mode 0600.
    pub const READER_TOKEN: &str = "reader.token";
    /// Admin bearer token (control verbs, TokenRequest), mode 0600.
    pub const ADMIN_TOKEN: &str = "admin.token";
    /// The URL and the paths above, as JSON.
    pub const CLUSTER: &str = "cluster.json";
    /// A kubeconfig for kubectl and client libraries, as the admin
    /// identity (`KUBECONFIG=DIR/kubeconfig kubectl get pods -A`).
    pub const KUBECONFIG: &str = "kubeconfig";

    /// The kubeconfig of a stand-in at `url`, naming the CA and admin token
    /// files by paths relative to its own directory, as client-go reads them.
    pub fn kubeconfig(url: &str) -> String {
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "podseal-dev", "cluster": {"server": url, "certificate-authority": CA}}],
            "users": [{"name": crate::ADMIN_USER, "user": {"tokenFile": ADMIN_TOKEN}}],
            "contexts": [{"name": "podseal-dev", "context": {"cluster": "podseal-dev", "user": crate::ADMIN_USER}}],
            "current-context": "podseal-dev",
        });
        // JSON is YAML: kubectl reads it as it is.
        serde_json::to_string_pretty(&config).unwrap_or_default()
    }
}
