//! HTTPS to the podseal-serverr: TLS 1.3 only; the server's certificate
//! checked against a CA bundle, the system's roots, or a pinned SHA-256
//! fingerprint of the leaf certificate (for a development server's
//! self-signed certificate); HTTP/1.1 with keep-alive; a deadline on every
//! request.

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

/// The longest answer body read by default (the audit export can be large).
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

/// How the server's certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Certificates chaining to these PEM CA certificates (and naming the host).
    CaPem(Vec<u8>),
    /// The system's roots.
    SystemRoots,
    /// Exactly the leaf certificate with this SHA-256 (the handshake
    /// signature is still verified with its key; names and expiry are not
    /// checked — the pin is the identity).
    Fingerprint([u8; 32]),
}

impl Trust {
    /// Parses `AA:BB:…` or plain hex (64 digits, any case).
    pub fn fingerprint(text: &str) -> Result<Self, TransportError> {
        let hex: String = text.chars().filter(|c| *c != ':').collect();
        let bad = || {
            TransportError::Tls("a fingerprint is 32 bytes of hex, like the server prints".into())
        };
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(i * 2..i * 2 + 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self::Fingerprint(out))
    }
}

/// Accepts exactly one leaf certificate, by its SHA-256.
#[derive(Debug)]
struct PinnedLeaf {
    sha256: [u8; 32],
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest as _;
        let seen: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
        if seen == self.sha256 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        // TLS 1.3 only: never reached.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An HTTPS client bound to one server.
#[derive(Clone)]
pub struct HttpsClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base_url: String,
    timeout: Duration,
    max_answer: usize,
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
        let trust = match ca_pem {
            Some(pem) => Trust::CaPem(pem.to_vec()),
            None => Trust::SystemRoots,
        };
        Self::with_trust(base_url, &trust)
    }

    /// A client for `base_url` with this trust.
    pub fn with_trust(base_url: &str, trust: &Trust) -> Result<Self, TransportError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let host = base_url.strip_prefix("https://").unwrap_or_default();
        if host.is_empty() || host.contains(['/', '?', '#', '@']) {
            return Err(TransportError::BadUrl(base_url));
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TransportError::Tls(e.to_string()))?;
        let config = match trust {
            Trust::CaPem(pem) => builder.with_root_certificates(roots(Some(pem))?),
            Trust::SystemRoots => builder.with_root_certificates(roots(None)?),
            Trust::Fingerprint(sha256) => {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(std::sync::Arc::new(PinnedLeaf {
                        sha256: *sha256,
                        provider,
                    }))
            }
        }
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
            max_answer: MAX_ANSWER_BYTES,
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

    /// The same client reading at most `bytes` of any answer body.
    pub fn with_max_answer_bytes(mut self, bytes: usize) -> Self {
        self.max_answer = bytes;
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
            let body = Limited::new(body, self.max_answer)
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
