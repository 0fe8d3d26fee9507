//! HTTPS for the release server: TLS 1.3 only, ALPN `h2` and `http/1.1`,
//! keep-alive, from certificate and key files or — for development — a
//! self-signed certificate generated at start whose SHA-256 fingerprint is
//! printed, so a client can pin it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files: a certificate chain and its private key.
    Files {
        /// Certificate chain (leaf first).
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// Generated at start, for development, for these DNS names / IP addresses.
    SelfSigned {
        /// Subject alternative names.
        names: Vec<String>,
    },
}

/// Why TLS could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read {what} {}: {message}", .path.display())]
    Pem {
        /// Which file.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Certificate generation failed.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// A ready TLS configuration.
pub struct ServerTls {
    /// rustls configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), lowercase hex pairs joined by `:`.
    pub fingerprint_sha256: String,
    /// The leaf certificate, PEM (what a development client pins or trusts).
    pub leaf_pem: String,
}

/// `AA:BB:…` of SHA-256 over a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn pem_error(
    what: &'static str,
    path: &Path,
) -> impl Fn(rustls::pki_types::pem::Error) -> TlsError {
    let path = path.to_owned();
    move |e| TlsError::Pem {
        what,
        path: path.clone(),
        message: e.to_string(),
    }
}

/// Builds the server TLS configuration.
pub fn load(source: &TlsSource) -> Result<ServerTls, TlsError> {
    let (chain, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) = match source {
        TlsSource::Files { cert, key } => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(pem_error("certificate file", cert))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(pem_error("certificate file", cert))?;
            if chain.is_empty() {
                return Err(TlsError::Pem {
                    what: "certificate file",
                    path: cert.clone(),
                    message: "no certificate in it".into(),
                });
            }
            (
                chain,
                PrivateKeyDer::from_pem_file(key).map_err(pem_error("key file", key))?,
            )
        }
        TlsSource::SelfSigned { names } => {
            let key = rcgen::KeyPair::generate()?;
            let mut params = rcgen::CertificateParams::new(names.clone())?;
            params.distinguished_name.push(
                rcgen::DnType::CommonName,
                "podseal release server (development, self-signed)",
            );
            let cert = params.self_signed(&key)?;
            (
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
        }
    };
    let leaf = chain
        .first()
        .cloned()
        .ok_or_else(|| TlsError::Config(rustls::Error::NoCertificatesPresented))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let leaf_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_lines(leaf.as_ref())
    );
    Ok(ServerTls {
        config: Arc::new(config),
        fingerprint_sha256: fingerprint(leaf.as_ref()),
        leaf_pem,
    })
}

fn base64_lines(der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    text.as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// How long shutdown waits for requests in flight before closing anyway.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a client may take to finish the TLS handshake, or to send a request's headers.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The most connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 4096;
/// hyper's own limits on request headers, set well above the API's
/// ([`crate::api::MAX_HEADER_BYTES`], [`crate::api::MAX_HEADER_FIELDS`]) so
/// that oversized headers are answered by the API as problem+json rather
/// than by hyper's bare 431 (which it sends, and closes, only past these):
/// the HTTP/1.1 read buffer, in bytes (hyper's default is ~400 KiB)…
pub const HTTP_HEADER_BACKSTOP_BYTES: usize = 8 * crate::api::MAX_HEADER_BYTES;
/// …the HTTP/1.1 header fields parsed (hyper's default, 100, is the API's
/// own limit)…
pub const HTTP1_HEADER_BACKSTOP_FIELDS: usize = 10 * crate::api::MAX_HEADER_FIELDS;
/// …and HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE` (hyper's default is 16 KiB,
/// below the API's limit; HTTP/2 counts 32 bytes more per field).
pub const HTTP2_HEADER_LIST_BACKSTOP: u32 = 8 * crate::api::MAX_HEADER_BYTES as u32;

/// Serves `router` over TLS (HTTP/1.1 with keep-alive, or HTTP/2 by ALPN)
/// until `shutdown` resolves; then stops accepting, lets requests in flight
/// finish (up to [`SHUTDOWN_GRACE`]) and aborts every connection left, so no
/// connection outlives the server. Slow clients are bounded: the handshake
/// and each request's headers must arrive within [`HANDSHAKE_TIMEOUT`], and
/// at most [`MAX_CONNECTIONS`] are served at once.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(error) => {
                // Out of file descriptors, say: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let (acceptor, router) = (acceptor.clone(), router.clone());
        let watcher = graceful.watcher();
        connections.spawn(async move {
            let _slot = slot;
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = TowerToHyperService::new(router);
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .max_buf_size(HTTP_HEADER_BACKSTOP_BYTES)
                .max_headers(HTTP1_HEADER_BACKSTOP_FIELDS);
            builder
                .http2()
                .max_header_list_size(HTTP2_HEADER_LIST_BACKSTOP);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(connection.into_owned()).await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
