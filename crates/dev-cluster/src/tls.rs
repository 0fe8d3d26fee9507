//! The stand-in's own certificate authority and serving certificate, so that
//! clients connect with exactly the TLS checks they use against a real API
//! server: verify the chain against a CA bundle and the name `localhost` or
//! `127.0.0.1`.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why TLS material could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// A CA and a serving certificate it signed.
pub struct TlsMaterial {
    /// The CA certificate, PEM: what clients put in their CA bundle.
    pub ca_pem: String,
    /// The CA's private key, PEM, for the state directory.
    pub ca_key_pem: String,
    /// The rustls server configuration.
    pub server_config: Arc<rustls::ServerConfig>,
}

/// A CA kept from an earlier start: its certificate and key, PEM.
pub struct SavedCa<'a> {
    /// The certificate clients trust.
    pub cert_pem: &'a str,
    /// Its private key.
    pub key_pem: &'a str,
}

/// Generates a CA (or takes `saved`) and a new certificate it signs for
/// `localhost` and `127.0.0.1`. A saved CA signs with its own key and
/// name, so the certificate clients already trust verifies the new one.
pub fn generate(saved: Option<SavedCa<'_>>) -> Result<TlsMaterial, TlsError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "podseal-dev cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = match &saved {
        Some(saved) => KeyPair::from_pem(saved.key_pem)?,
        None => KeyPair::generate()?,
    };
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let ca_pem = saved.map_or_else(|| ca.pem(), |saved| saved.cert_pem.to_owned());

    let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    params
        .distinguished_name
        .push(DnType::CommonName, "podseal-dev cluster API server");
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;

    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, private)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem,
        ca_key_pem,
        server_config: Arc::new(config),
    })
}
