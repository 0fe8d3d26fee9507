//! HTTPS to the podseal server: TLS 1.3 only, certificates checked against
//! a pinned CA bundle (or, when none is given, the system's roots), HTTP/1.1
//! with keep-alive, and a deadline on every request.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The longest answer body read (the audit export can be large).
pub const MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;
/// Default deadline of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request could not be made. Messages never carry headers or bodies.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The server URL is not `https://host[:port]`.
    #[error("the server URL must be https://host[:port], got {0:?}")]
    BadUrl(String),
    /// The CA bundle could not be read.
    #[error("cannot read the CA bundle {path}: {message}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// TLS could not be configured.
    #[error("cannot configure TLS: {0}")]
    Tls(String),
    /// The request could not be built (a header value with bad characters).
    #[error("cannot build the request: {0}")]
    Request(String),
    /// Connecting or exchanging failed.
    #[error("cannot reach the server at {url}: {message}")]
    Unreachable {
        /// The server.
        url: String,
        /// Why (connection refused, certificate not trusted, …).
        message: String,
    },
    /// No answer within the deadline.
    #[error("the server at {0} did not answer in time")]
    Timeout(String),
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// An HTTPS client bound to one server.
#[derive(Clone)]
pub struct HttpsClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base_url: String,
    timeout: Duration,
}

fn roots(ca_pem: Option<&[u8]>) -> Result<rustls::RootCertStore, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| TransportError::Tls(format!("CA bundle: {e}")))?;
            if certs.is_empty() {
                return Err(TransportError::Tls(
                    "the CA bundle holds no certificate".into(),
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| TransportError::Tls(format!("CA bundle: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(TransportError::Tls(
                    "no CA bundle given and no system roots found".into(),
                ));
            }
        }
    }
    Ok(roots)
}

impl HttpsClient {
    /// A client for `base_url` trusting `ca_pem` (PEM certificates), or the
    /// system roots when `None`.
    pub fn new(base_url: &str, ca_pem: Option<&[u8]>) -> Result<Self, TransportError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let host = base_url.strip_prefix("https://").unwrap_or_default();
        if host.is_empty() || host.contains(['/', '?', '#', '@']) {
            return Err(TransportError::BadUrl(base_url));
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TransportError::Tls(e.to_string()))?
            .with_root_certificates(roots(ca_pem)?)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base_url,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// A client trusting the CA bundle in `ca_file`.
    pub fn with_ca_file(base_url: &str, ca_file: &Path) -> Result<Self, TransportError> {
        let pem = std::fs::read(ca_file).map_err(|e| TransportError::Ca {
            path: ca_file.display().to_string(),
            message: e.to_string(),
        })?;
        Self::new(base_url, Some(&pem))
    }

    /// The same client with another per-request deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends one request; `headers` may repeat a name.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, TransportError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url));
        let typed = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !typed {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| TransportError::Request(e.to_string()))?;
        let unreachable = |message: String| TransportError::Unreachable {
            url: self.base_url.clone(),
            message,
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| unreachable(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout(self.base_url.clone()))?
    }
}

/// The error and its sources, joined: the useful part (e.g. "invalid peer
/// certificate: UnknownIssuer") is usually a source.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
