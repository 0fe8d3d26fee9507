//! Connecting to a registered cluster: its API server URL, CA bundle and a
//! read-only bearer token file. The same three facts for a real cluster and
//! for the local stand-in; nothing here can tell them apart.

use std::path::PathBuf;
use std::time::Duration;

/// How the server reaches one cluster's API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRegistration {
    /// The name capsules use for this cluster.
    pub name: String,
    /// `https://…` of the API server.
    pub api_server_url: String,
    /// PEM file with the CA certificate(s) the API server's certificate chains to.
    pub ca_bundle: PathBuf,
    /// File holding the read-only bearer token (re-read when it changes).
    pub token_file: PathBuf,
}

/// Why a cluster connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is not an `https://` URL.
    #[error("cluster {cluster}: API server URL must be https://…")]
    NotHttps {
        /// The cluster.
        cluster: String,
    },
    /// A file is missing.
    #[error("cluster {cluster}: {what} {} does not exist", .path.display())]
    MissingFile {
        /// The cluster.
        cluster: String,
        /// Which file.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// kube refused the configuration.
    #[error("cluster {cluster}: cannot build a Kubernetes client: {source}")]
    Client {
        /// The cluster.
        cluster: String,
        /// The kube error.
        source: kube::Error,
    },
}

/// Timeouts for calls to the API server (watches have their own, longer one).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the kube client for a registration: TLS verified against the CA
/// bundle only, bearer token read from the token file.
pub fn kube_client(registration: &ClusterRegistration) -> Result<kube::Client, ClusterError> {
    let cluster = registration.name.clone();
    if !registration.api_server_url.starts_with("https://") {
        return Err(ClusterError::NotHttps { cluster });
    }
    for (what, path) in [
        ("CA bundle", &registration.ca_bundle),
        ("token file", &registration.token_file),
    ] {
        if !path.is_file() {
            return Err(ClusterError::MissingFile {
                cluster,
                what,
                path: path.clone(),
            });
        }
    }
    let url = registration
        .api_server_url
        .parse()
        .map_err(|_| ClusterError::NotHttps {
            cluster: cluster.clone(),
        })?;
    let mut config = kube::Config::new(url);
    config.root_cert_file = Some(registration.ca_bundle.clone());
    config.auth_info.token_file = Some(registration.token_file.display().to_string());
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    // No retries inside the client: a 504 `Too large resource version` must
    // reach the pod view (it forces a relist), and a 503 must make the view
    // stale within its bound, not be retried for minutes behind it.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|source| ClusterError::Client { cluster, source })
}
