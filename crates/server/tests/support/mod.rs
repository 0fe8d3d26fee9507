//! Fixtures shared by the server's test binaries: the stand-in with its
//! connection files, a client built by the server's own connection code,
//! and pods. Each binary uses a subset.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::time::Duration;

use podseal_dev_cluster::{Config, ContainerImage, DevCluster, PodTemplate};
use podseal_server::cluster::{ClusterRegistration, kube_client};
use tempfile::TempDir;

/// A running stand-in and a directory with its CA and token files.
pub struct Cluster {
    pub dev: DevCluster,
    pub dir: TempDir,
}

impl Cluster {
    /// Starts the stand-in (bookmarks every 200 ms) and writes its files.
    pub async fn start() -> Self {
        let config = Config {
            bookmark_interval: Duration::from_millis(200),
            ..Config::default()
        };
        let dev = DevCluster::start(config).await.unwrap();
        let dir = TempDir::new().unwrap();
        std::fs::write(dir.path().join("ca.pem"), dev.ca_pem()).unwrap();
        std::fs::write(dir.path().join("reader.token"), dev.reader_token()).unwrap();
        std::fs::write(dir.path().join("admin.token"), dev.admin_token()).unwrap();
        Self { dev, dir }
    }

    /// The registration the server would store for this cluster.
    pub fn registration(&self, token_file: &str) -> ClusterRegistration {
        ClusterRegistration {
            name: "prod".into(),
            api_server_url: self.dev.url().into(),
            ca_bundle: self.dir.path().join("ca.pem"),
            token_file: self.dir.path().join(token_file),
        }
    }

    /// A client with the token in `token_file`.
    pub fn client_with(&self, token_file: &str) -> kube::Client {
        kube_client(&self.registration(token_file)).unwrap()
    }

    /// The read-only identity the release server uses.
    pub fn reader(&self) -> kube::Client {
        self.client_with("reader.token")
    }

    /// The admin identity.
    pub fn admin(&self) -> kube::Client {
        self.client_with("admin.token")
    }
}

/// `sha256:` and 64 copies of `c`.
pub fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// `shop/NAME` running as `api` with one container `api` at digest `a`.
pub fn api_pod(name: &str) -> PodTemplate {
    PodTemplate {
        namespace: "shop".into(),
        name: name.into(),
        service_account: "api".into(),
        labels: Default::default(),
        init_containers: vec![],
        containers: vec![ContainerImage {
            name: "api".into(),
            image: "registry.example/shop/api:1.4".into(),
            digest: Some(digest('a')),
        }],
    }
}
