//! Fixtures shared by the server's test binaries: the stand-in with its
//! connection files, a client built by the server's own connection code,
//! and pods. Each binary uses a subset.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::time::Duration;

use podseal_dev_cluster::issuer::SigningAlgorithm;
use podseal_dev_cluster::{Config, ContainerImage, DevCluster, PodTemplate};
use podseal_server::cluster::client::{ClusterRegistration, ReaderToken, kube_client};
use tempfile::TempDir;

/// A running stand-in and a directory with its CA and token files.
pub struct Cluster {
    pub dev: DevCluster,
    pub dir: TempDir,
}

impl Cluster {
    /// Starts the stand-in (bookmarks every 200 ms) and writes its files.
    pub async fn start() -> Self {
        Self::start_signing(SigningAlgorithm::Rs256).await
    }

    /// The same, its ServiceAccount tokens signed with `token_algorithm`.
    pub async fn start_signing(token_algorithm: SigningAlgorithm) -> Self {
        let config = Config {
            bookmark_interval: Duration::from_millis(200),
            token_algorithm,
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
            ca_pem: self.dev.ca_pem().to_owned(),
            token: ReaderToken::new(
                &std::fs::read_to_string(self.dir.path().join(token_file)).unwrap(),
            ),
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
        sidecars: vec![],
        image_volumes: vec![],
        node: None,
        init_containers: vec![],
        containers: vec![ContainerImage {
            name: "api".into(),
            image: "registry.example/shop/api:1.4".into(),
            digest: Some(digest('a')),
            env: Default::default(),
        }],
    }
}

/// A `postgres://` URL whose `search_path` is a fresh schema, on
/// `PODSEAL_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
/// An unreachable server fails the test: CI must never skip it.
pub async fn postgres_url() -> String {
    let base = podseal_test_support::provision::postgres_base_url();
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {base} is unreachable ({e}): start it (pg_ctlcluster … main start) or set PODSEAL_TEST_POSTGRES_URL"
            )
        });
    tokio::spawn(connection);
    let mut random = [0u8; 8];
    podseal_core::fill_random(&mut random).unwrap();
    let schema: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let schema = format!("podseal_test_{schema}");
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-csearch_path%3D{schema}")
}
