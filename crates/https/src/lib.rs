//! podseal's HTTPS listener, on its own: TLS 1.3 only, ALPN `h2` and
//! `http/1.1`, keep-alive, from certificate and key files or — for
//! development — a self-signed certificate generated at start whose SHA-256
//! fingerprint is printed, so a client can pin it; every connection under
//! [`ConnectionLimits`] (a deadline to the first request, an idle timeout,
//! per-source and total limits) and header backstops above the service's
//! own [`MAX_HEADER_BYTES`] and [`MAX_HEADER_FIELDS`]; a graceful shutdown
//! bounded by [`SHUTDOWN_GRACE`].
//!
//! The release server serves its `axum` router through
//! [`serve_connections`]; another podseal service (an admission webhook, a
//! certificate signer) can serve through it the same way without linking
//! the release server. It knows nothing of what it serves.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
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
    /// The private key of a certificate generated here ([`TlsSource::SelfSigned`]),
    /// PEM, for the server to keep beside it; none for key files.
    pub generated_key_pem: Option<zeroize::Zeroizing<String>>,
}

/// Whether the certificate in `pem` is valid for every one of `names`
/// (DNS names or IP addresses), by its subject alternative names. A
/// certificate that cannot be parsed is valid for none.
pub fn certificate_names_match(pem: &str, names: &[String]) -> bool {
    let Some(Ok(der)) = CertificateDer::pem_slice_iter(pem.as_bytes()).next() else {
        return false;
    };
    let Ok(cert) = webpki::EndEntityCert::try_from(&der) else {
        return false;
    };
    names.iter().all(|name| {
        rustls::pki_types::ServerName::try_from(name.as_str())
            .is_ok_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok())
    })
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
    let mut generated_key_pem = None;
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
            generated_key_pem = Some(zeroize::Zeroizing::new(key.serialize_pem()));
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
        generated_key_pem,
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
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The bounds every connection lives under, so that no client — slow, idle
/// or many-connectioned — can take the server's connection slots from others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The most connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// The most connections one source address may hold; more are closed at
    /// once, so one source cannot fill `max_connections`.
    pub max_per_source: usize,
    /// From accept, through the TLS handshake, to the first byte of the first
    /// request; then each request's headers (HTTP/1.1) within the same bound.
    /// HTTP/2's connection preface and SETTINGS are no request: from accept
    /// to its first request (a complete HEADERS) within this bound too.
    pub first_request_timeout: Duration,
    /// A connection with no request in flight for this long is closed
    /// (HTTP/1.1 keep-alive and HTTP/2 alike).
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_per_source: 256,
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Connections held per source address.
#[derive(Default)]
struct SourceCounts(Mutex<HashMap<IpAddr, usize>>);

impl SourceCounts {
    /// A slot for `ip`, or `None` when it holds `limit` already.
    fn admit(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<SourceSlot> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            counts: self.clone(),
            ip,
        })
    }
}

struct SourceSlot {
    counts: Arc<SourceCounts>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    started: Instant,
    /// Whether any request has reached the service.
    begun: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` at which the last request ended.
    last_done_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            begun: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.begun.store(true, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// How long the connection has had no request in flight (zero while one is).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_done_ms.load(Ordering::SeqCst));
        self.started.elapsed().saturating_sub(last)
    }
}

struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_done_ms.store(now, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A stream that first replays bytes already read from `inner`.
struct Prefixed<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(rest) = this.prefix.get(this.offset..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            this.offset += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The TLS handshake and the first bytes of the first request, within one
/// deadline from accept. `None`: too slow, failed, or closed before a byte.
/// Bytes that may still be the start of the HTTP/2 preface are read until
/// they are the whole preface or not it, within the same deadline; the
/// flag says whether they are (hyper then speaks HTTP/2, whatever ALPN said).
async fn first_request<S>(
    acceptor: &TlsAcceptor,
    tcp: S,
    deadline: Duration,
) -> Option<(Prefixed<tokio_rustls::server::TlsStream<S>>, bool)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(deadline, async {
        let mut stream = acceptor.accept(tcp).await.ok()?;
        let mut prefix = vec![0u8; 4096];
        let mut len = 0;
        loop {
            let n = stream.read(prefix.get_mut(len..)?).await.ok()?;
            if n == 0 {
                return None;
            }
            len += n;
            let seen = prefix.get(..len)?;
            let common = len.min(H2_PREFACE.len());
            if seen.get(..common) != H2_PREFACE.get(..common) || len >= H2_PREFACE.len() {
                break;
            }
        }
        prefix.truncate(len);
        let h2 = prefix.starts_with(H2_PREFACE);
        Some((
            Prefixed {
                prefix,
                offset: 0,
                inner: stream,
            },
            h2,
        ))
    })
    .await
    .ok()
    .flatten()
}

/// The most request header bytes a podseal service accepts: names and
/// values, plus 4 bytes per field for `": "` and CRLF (about their HTTP/1.1
/// size). A release request needs a few KiB (a projected token, a DPoP
/// proof). The service answers over it (the release server: 431 as
/// problem+json); the listener only sets its backstops above it.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most request header fields a podseal service accepts (see
/// [`MAX_HEADER_BYTES`]).
pub const MAX_HEADER_FIELDS: usize = 100;

/// hyper's own limits on request headers, set well above the service's
/// ([`MAX_HEADER_BYTES`], [`MAX_HEADER_FIELDS`]) so
/// that oversized headers are answered by the service as problem+json rather
/// than by hyper's bare 431 (which it sends, and closes, only past these):
/// the HTTP/1.1 read buffer, in bytes (hyper's default is ~400 KiB)…
pub const HTTP_HEADER_BACKSTOP_BYTES: usize = 8 * MAX_HEADER_BYTES;
/// …the HTTP/1.1 header fields parsed (hyper's default, 100, is the API's
/// own limit)…
pub const HTTP1_HEADER_BACKSTOP_FIELDS: usize = 10 * MAX_HEADER_FIELDS;
/// …and HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE` (hyper's default is 16 KiB,
/// below the API's limit; HTTP/2 counts 32 bytes more per field).
pub const HTTP2_HEADER_LIST_BACKSTOP: u32 = 8 * MAX_HEADER_BYTES as u32;

/// Serves `router` over TLS (HTTP/1.1 with keep-alive, or HTTP/2 by ALPN)
/// until `shutdown` resolves; then stops accepting, lets requests in flight
/// finish (up to [`SHUTDOWN_GRACE`]) and aborts every connection left, so no
/// connection outlives the server. Every connection lives under `limits`:
/// the handshake and the first request byte within one deadline from
/// accept (for HTTP/2, from accept to its first request: the preface is
/// none), each later request's headers within the same bound, closed after
/// `idle_timeout` without a request in flight, at most `max_per_source`
/// from one address and `max_connections` in all.
pub async fn serve_connections(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let sources = Arc::new(SourceCounts::default());
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
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let Some(source_slot) = sources.admit(peer.ip(), limits.max_per_source) else {
            tracing::debug!(source = %peer.ip(), "connection refused: per-source limit reached");
            drop(tcp);
            continue;
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let _slots = (slot, source_slot);
            let accepted = tokio::time::Instant::now();
            // Until its first request arrives a connection has nothing to
            // finish, so a stopping server closes it at once rather than
            // waiting out its grace for a client's spare, pooled unused.
            let first = tokio::select! {
                first = first_request(&acceptor, tcp, limits.first_request_timeout) => first,
                () = until_stopping(&mut stopping) => None,
            };
            let Some((stream, h2)) = first else {
                return;
            };
            // HTTP/1.1's first request has begun (hyper bounds its headers);
            // HTTP/2's has not: its preface and SETTINGS are set-up only.
            let first_request_by = h2.then(|| accepted + limits.first_request_timeout);
            serve_connection(stream, peer, router, limits, first_request_by, stopping).await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// Resolves once the server stops (the guard is not kept across awaits).
async fn until_stopping(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await.map(|_| ());
}

/// Resolves at `deadline`, or never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// One connection's HTTP, closed gracefully once it has been idle for
/// `limits.idle_timeout` or when the server stops (`stopping` turns true),
/// its requests carrying the peer's address as `ConnectInfo`,
/// and cut at `first_request_by` if no request has reached the service by
/// then.
async fn serve_connection<S>(
    stream: S,
    peer: std::net::SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    first_request_by: Option<tokio::time::Instant>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let tower = TowerToHyperService::new(router);
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        let in_flight = tracked.begin();
        // The source address, for the audit of refusals (`api::audit_refusals`).
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let response = hyper::service::Service::call(&tower, request);
        async move {
            let response = response.await;
            drop(in_flight);
            response
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.first_request_timeout)
        .max_buf_size(HTTP_HEADER_BACKSTOP_BYTES)
        .max_headers(HTTP1_HEADER_BACKSTOP_FIELDS);
    builder
        .http2()
        .max_header_list_size(HTTP2_HEADER_LIST_BACKSTOP)
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.idle_timeout / 2)
        .keep_alive_timeout(limits.first_request_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection.into_owned());
    let tick = (limits.idle_timeout / 4).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = &mut connection => return,
            () = until(first_request_by), if !activity.begun.load(Ordering::SeqCst) => {
                // Checked again: a request may have begun since this branch was armed.
                if !activity.begun.load(Ordering::SeqCst) {
                    // Nothing was asked, so nothing is lost: no GOAWAY to wait on.
                    tracing::debug!("connection cut: no request within the first-request bound");
                    return;
                }
            }
            _ = until_stopping(&mut stopping) => {
                // An HTTP/2 connection that sent its preface and never a
                // request has nothing to finish either.
                if !activity.begun.load(Ordering::SeqCst) {
                    return;
                }
                // Requests in flight finish; the server aborts what is left after its grace.
                connection.as_mut().graceful_shutdown();
                let _ = (&mut connection).await;
                return;
            }
            () = tokio::time::sleep(tick) => {
                if activity.idle_for() >= limits.idle_timeout {
                    // HTTP/1.1: closes now (nothing in flight); HTTP/2: GOAWAY.
                    connection.as_mut().graceful_shutdown();
                    // A peer that ignores GOAWAY is cut after one more bound.
                    let _ = tokio::time::timeout(limits.first_request_timeout, &mut connection).await;
                    return;
                }
            }
        }
    }
}
