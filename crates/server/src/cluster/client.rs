//! Connecting to a registered cluster: its API server URL, the CA
//! certificates pinned at registration and the read-only bearer token
//! uploaded with it. The same three facts for a real cluster and for the
//! local stand-in; nothing here can tell them apart.
//!
//! Nothing here reads a file named by a registration: the CA and the token
//! are the bytes `cluster add` sent (and the store holds), so an admin
//! request cannot make the server read a path of its choosing, or send a
//! file's content to an API server URL of its choosing. A CA or token
//! changed later changes nothing until an admin registers the cluster again
//! with `--replace`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderValue;
pub use podseal_core::wire::admin::ReaderToken;
use zeroize::Zeroizing;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// How the server reaches one cluster's API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRegistration {
    /// The name capsules use for this cluster.
    pub name: String,
    /// `https://…` of the API server.
    pub api_server_url: String,
    /// The CA certificate(s) the API server's certificate chains to, PEM:
    /// the pinned bytes (see [`read_ca_bundle`]).
    pub ca_pem: String,
    /// The read-only bearer token (never logged, never in an error).
    pub token: ReaderToken,
}

/// Checks an API server URL before anything is stored, audited or
/// contacted: `https://`, a host of letters, digits, `.` and `-` (or a
/// bracketed IPv6 address), an optional port 1-65535, an optional path of
/// unreserved characters and `/`; no user info (the URL is audited, and a
/// password in it would be too), no query, no fragment. Strict on purpose,
/// and what `docs/openapi.yaml` states: before, anything starting with
/// `https://` was taken, and a URL that was not one failed only later, once
/// its files had been read and its audit record written.
pub fn check_api_server_url(url: &str) -> Result<(), &'static str> {
    const WHAT: &str =
        "must be https://HOST[:PORT][/PATH] (no user info, query or fragment; port 1-65535)";
    let rest = url.strip_prefix("https://").ok_or(WHAT)?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (address, after) = bracketed.split_once(']').ok_or(WHAT)?;
        address.parse::<std::net::Ipv6Addr>().map_err(|_| WHAT)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(WHAT)?),
        };
        (address, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && (authority.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
    let port_ok = port.is_none_or(|port| {
        !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0)
    });
    if path_ok && host_ok && port_ok && url.parse::<http::Uri>().is_ok() {
        Ok(())
    } else {
        Err(WHAT)
    }
}

/// The largest CA bundle accepted.
pub const MAX_CA_BUNDLE_BYTES: u64 = podseal_core::wire::admin::MAX_CA_PEM_BYTES as u64;

/// Why a CA bundle cannot be pinned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaBundleError {
    /// The file cannot be read.
    #[error("cannot read {}: {message}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Larger than [`MAX_CA_BUNDLE_BYTES`].
    #[error("the CA bundle is larger than {MAX_CA_BUNDLE_BYTES} bytes")]
    TooLarge,
    /// Not PEM text.
    #[error("the CA bundle is not PEM: {0}")]
    NotPem(String),
    /// No `CERTIFICATE` block.
    #[error("the CA bundle holds no PEM certificate")]
    NoCertificate,
    /// A certificate that cannot be a trust anchor.
    #[error("CA certificate {index} cannot be trusted: {message}")]
    BadCertificate {
        /// Position in the bundle, from 0.
        index: usize,
        /// Why.
        message: String,
    },
}

/// Reads a CA bundle to pin: at most [`MAX_CA_BUNDLE_BYTES`] of PEM with at
/// least one certificate, each usable as a trust anchor.
pub fn read_ca_bundle(path: &Path) -> Result<String, CaBundleError> {
    let read_error = |e: std::io::Error| CaBundleError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(MAX_CA_BUNDLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let pem = String::from_utf8(bytes).map_err(|_| CaBundleError::NotPem("not UTF-8".into()))?;
    check_ca_pem(&pem)?;
    Ok(pem)
}

/// Checks a CA bundle to pin: at most [`MAX_CA_BUNDLE_BYTES`] of PEM with
/// at least one certificate, each usable as a trust anchor.
pub fn check_ca_pem(pem: &str) -> Result<(), CaBundleError> {
    if pem.len() as u64 > MAX_CA_BUNDLE_BYTES {
        return Err(CaBundleError::TooLarge);
    }
    ca_certificates(pem).map(drop)
}

/// The DER certificates of a pinned PEM bundle, each checked to be usable
/// as a trust anchor.
pub fn ca_certificates(pem: &str) -> Result<Vec<Vec<u8>>, CaBundleError> {
    let mut certificates = Vec::new();
    let mut roots = rustls::RootCertStore::empty();
    for (index, certificate) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let certificate = certificate.map_err(|e| CaBundleError::NotPem(e.to_string()))?;
        roots
            .add(certificate.clone())
            .map_err(|e| CaBundleError::BadCertificate {
                index,
                message: e.to_string(),
            })?;
        certificates.push(certificate.as_ref().to_vec());
    }
    if certificates.is_empty() {
        return Err(CaBundleError::NoCertificate);
    }
    Ok(certificates)
}

/// The SHA-256 fingerprint of each certificate of a pinned bundle, in the
/// form the server prints for its own certificate (`aa:bb:…`, as
/// `openssl x509 -fingerprint -sha256` shows it, in lowercase).
pub fn ca_fingerprints(pem: &str) -> Result<Vec<String>, CaBundleError> {
    Ok(ca_certificates(pem)?
        .iter()
        .map(|der| podseal_https::fingerprint(der))
        .collect())
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
    /// The registration has no reader token: it was made when the server
    /// read a token file named by the request, which it no longer does.
    #[error(
        "cluster {cluster} was registered with a token file on the server's machine, which the server no longer reads (an admin request must not make it read a file): register it again with `podseal cluster add {cluster} … --token-file FILE --replace`, which uploads the token"
    )]
    NoToken {
        /// The cluster.
        cluster: String,
    },
    /// The pinned CA bundle is unusable.
    #[error("cluster {cluster}: {source}")]
    Ca {
        /// The cluster.
        cluster: String,
        /// What is wrong with it.
        source: CaBundleError,
    },
    /// The reader token is not a usable bearer token.
    #[error("cluster {cluster}: the reader token {why}")]
    Token {
        /// The cluster.
        cluster: String,
        /// What is wrong (never the token).
        why: &'static str,
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

/// Builds the kube client for a registration: TLS verified against the
/// pinned CA certificates only (no system roots, no file read), the
/// uploaded reader token as its bearer token.
pub fn kube_client(registration: &ClusterRegistration) -> Result<kube::Client, ClusterError> {
    let cluster = registration.name.clone();
    if check_api_server_url(&registration.api_server_url).is_err() {
        return Err(ClusterError::NotHttps { cluster });
    }
    if registration.token.is_empty() {
        return Err(ClusterError::NoToken { cluster });
    }
    let roots = ca_certificates(&registration.ca_pem).map_err(|source| ClusterError::Ca {
        cluster: cluster.clone(),
        source,
    })?;
    let url = registration
        .api_server_url
        .parse()
        .map_err(|_| ClusterError::NotHttps {
            cluster: cluster.clone(),
        })?;
    let token = bearer_header(&registration.token).map_err(|why| ClusterError::Token {
        cluster: cluster.clone(),
        why,
    })?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(roots);
    config.root_cert_file = None;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    // No retries inside the client: a 504 `Too large resource version` must
    // reach the pod view (it forces a relist), and a 503 must make the view
    // stale within its bound, not be retried for minutes behind it.
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|source| ClusterError::Client { cluster, source })?;
    let bearer =
        tower::util::MapRequestLayer::new(move |mut request: http::Request<kube::client::Body>| {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, token.clone());
            request
        });
    Ok(builder.with_layer(&bearer).build())
}

/// The `Authorization` value of a reader token, marked sensitive (kept
/// out of `Debug` and out of HPACK tables); the error never quotes it.
fn bearer_header(token: &ReaderToken) -> Result<HeaderValue, &'static str> {
    token.check()?;
    let line = Zeroizing::new(format!("Bearer {}", token.expose_secret()));
    let mut header = HeaderValue::from_str(&line)
        .map_err(|_| "holds characters a bearer token cannot have (is it a token, one line?)")?;
    header.set_sensitive(true);
    Ok(header)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use podseal_core::wire::admin::MAX_READER_TOKEN_BYTES;

    /// A token as `kubectl create token > FILE` writes it (a newline at
    /// the end) connects; one that is no token is refused when the client is
    /// built, naming the cluster and never the token. A registration with
    /// no token (made when the server read a token file) is refused with the
    /// way out.
    #[tokio::test]
    async fn a_reader_token_is_taken_as_client_go_reads_a_token_file() {
        use k8s_openapi::api::core::v1::Pod;
        let cluster = podseal_dev_cluster::DevCluster::start(Default::default())
            .await
            .unwrap();
        let mut registration = ClusterRegistration {
            name: "dev".into(),
            api_server_url: cluster.url().into(),
            ca_pem: cluster.ca_pem().to_owned(),
            token: ReaderToken::new(&format!("{}\n", cluster.reader_token())),
        };
        let client = kube_client(&registration).unwrap();
        let pods: kube::Api<Pod> = kube::Api::all(client);
        pods.list(&Default::default()).await.unwrap();

        for (content, why) in [
            ("\n  \n", "register it again"),
            ("a\nb", "holds characters"),
            ("secret-token\u{7}", "holds characters"),
        ] {
            registration.token = ReaderToken::new(content);
            let Err(error) = kube_client(&registration) else {
                panic!("{content:?} was taken as a token")
            };
            let message = error.to_string();
            assert!(
                message.contains("cluster dev") && message.contains(why),
                "{message}"
            );
            assert!(!message.contains("secret-token"), "{message}");
        }
        registration.token = ReaderToken::new(&"a".repeat(MAX_READER_TOKEN_BYTES + 1));
        let message = kube_client(&registration).err().unwrap().to_string();
        assert!(message.contains("larger than"), "{message}");
    }

    fn ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem()
    }

    /// A URL that is not one is refused before the registration reads its
    /// files or audits anything (found by schemathesis: `https://` and then
    /// control characters passed the old prefix check).
    #[test]
    fn an_api_server_url_must_be_a_plain_https_url() {
        for good in [
            "https://10.0.0.1:6443",
            "https://kubernetes.default.svc",
            "https://api.example.com/k8s/",
            "https://[fd00::1]:6443",
            "https://localhost:65535",
        ] {
            assert_eq!(check_api_server_url(good), Ok(()), "{good}");
        }
        for bad in [
            "http://10.0.0.1",
            "https://",
            "https://:6443",
            "https://user:password@10.0.0.1",
            "https://host:0",
            "https://host:65536",
            "https://host:",
            "https://host:6443:443",
            "https://host/a?b",
            "https://host/#x",
            "https://ho st",
            "https://h\u{16}st",
            "https://[fd00::1",
            "https://[not-ipv6]:6443",
            "https://[fd00::1]x",
        ] {
            assert!(check_api_server_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ca_bundle_is_pinned_only_when_every_certificate_is_usable() {
        let (one, two) = (ca_pem(), ca_pem());
        let bundle = format!("{one}{two}");
        let fingerprints = ca_fingerprints(&bundle).unwrap();
        assert_eq!(fingerprints.len(), 2);
        assert_eq!(ca_fingerprints(&one).unwrap()[0], fingerprints[0]);
        assert_eq!(fingerprints[0].len(), 32 * 3 - 1);

        assert_eq!(ca_certificates(""), Err(CaBundleError::NoCertificate));
        let key_only = rcgen::KeyPair::generate().unwrap().serialize_pem();
        assert_eq!(
            ca_certificates(&key_only),
            Err(CaBundleError::NoCertificate)
        );
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            ca_certificates(garbage),
            Err(CaBundleError::BadCertificate { index: 0, .. })
        ));

        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, &bundle).unwrap();
        assert_eq!(read_ca_bundle(&file).unwrap(), bundle);
        std::fs::write(&file, vec![b'A'; MAX_CA_BUNDLE_BYTES as usize + 1]).unwrap();
        assert_eq!(read_ca_bundle(&file), Err(CaBundleError::TooLarge));
        let large = "A".repeat(MAX_CA_BUNDLE_BYTES as usize + 1);
        assert_eq!(check_ca_pem(&large), Err(CaBundleError::TooLarge));
        assert_eq!(check_ca_pem(&bundle), Ok(()));
        assert!(matches!(
            read_ca_bundle(&dir.path().join("absent.pem")),
            Err(CaBundleError::Read { .. })
        ));
    }
}
