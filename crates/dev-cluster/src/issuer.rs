//! The ServiceAccount token issuer: signing keys (RS256 as `kube-apiserver`
//! makes by default, or ES256, ES384 or ES512 as an external signer, KEP-740,
//! may use), the JWKS and OIDC discovery documents a real API server serves,
//! and token minting with the claims a real API server puts in pod-bound
//! tokens.
//!
//! As `kube-apiserver` does, one key signs (`--service-account-signing-key-file`)
//! and the JWKS may publish more keys that still verify
//! (`--service-account-key-file`): [`Issuer::rotate_signing_key`] and
//! [`Issuer::add_verification_key`] reproduce both operations.
//!
//! RSA here is the `rsa` crate's stable 0.9 line, used only to sign tokens of
//! this development stand-in (its known timing side channel matters for keys an
//! attacker can time remotely; these keys protect nothing). ES256 and ES384 are
//! ring's; ES512 is RustCrypto's `p521`, as ring has no P-521.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p521::ecdsa::signature::Signer as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair as _};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use sha2_rsa::Sha256 as RsaSha256;

/// RSA modulus size of generated signing keys.
const RSA_BITS: usize = 2048;

/// Why the issuer failed.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// Key generation failed.
    #[error("cannot generate an RSA key: {0}")]
    KeyGeneration(String),
}

/// The algorithm an issuer signs tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 SHA-256 with a 2048-bit key: `kube-apiserver`'s
    /// usual key.
    #[default]
    Rs256,
    /// ECDSA P-256 SHA-256.
    Es256,
    /// ECDSA P-384 SHA-384.
    Es384,
    /// ECDSA P-521 SHA-512.
    Es512,
}

impl SigningAlgorithm {
    /// Every algorithm, in the order `--help` lists them.
    pub const ALL: [Self; 4] = [Self::Rs256, Self::Es256, Self::Es384, Self::Es512];

    /// The JWS name (`alg`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
        }
    }

    /// Looks up a JWS name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.name().eq_ignore_ascii_case(name))
    }
}

/// A signing key of one of the [`SigningAlgorithm`]s.
enum PrivateKey {
    Rsa(Box<SigningKey<RsaSha256>>),
    /// ES256 or ES384.
    Ring(Box<EcdsaKeyPair>),
    Es512(Box<p521::ecdsa::SigningKey>),
}

struct IssuerKey {
    kid: String,
    /// The JWK published for this key.
    public: Jwk,
    signing: Option<PrivateKey>,
    /// The private key, encoded for the state directory: PKCS#8 DER
    /// (RS256, ES256, ES384) or the scalar (ES512).
    encoded: Option<Vec<u8>>,
}

/// An issuer's keys as the stand-in keeps them in its state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedIssuer {
    /// The JWS algorithm.
    pub algorithm: String,
    /// The keys, the signing key first.
    pub keys: Vec<SavedKey>,
}

/// One saved key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedKey {
    /// The published JWK.
    pub jwk: Jwk,
    /// base64 of the private key (see [`IssuerKey`]); absent for a key
    /// that only verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<String>,
    /// Whether this key signs new tokens.
    #[serde(default)]
    pub signing: bool,
}

/// One JWK of the JWKS, as `kube-apiserver` serializes it (go-jose): `n` and
/// `e` for RSA, `crv`, `x` and `y` for EC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `RSA` or `EC`.
    pub kty: String,
    /// Key id: base64url SHA-256 of the DER SubjectPublicKeyInfo (RSA), or
    /// of the uncompressed point (EC).
    pub kid: String,
    /// The key's algorithm.
    pub alg: String,
    /// Modulus (RSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// Exponent (RSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Curve (EC): `P-256`, `P-384` or `P-521`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// x coordinate (EC), full length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// y coordinate (EC), full length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// `/openid/v1/jwks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// `/.well-known/openid-configuration`: exactly the members `kube-apiserver` serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcDiscovery {
    /// The issuer URL.
    pub issuer: String,
    /// Where the JWKS is.
    pub jwks_uri: String,
    /// Always `["id_token"]`.
    pub response_types_supported: Vec<String>,
    /// Always `["public"]`.
    pub subject_types_supported: Vec<String>,
    /// The JWKS keys' algorithms, sorted.
    pub id_token_signing_alg_values_supported: Vec<String>,
}

/// A name and uid pair in the `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameUid {
    /// Object name.
    pub name: String,
    /// Object uid.
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// Namespace of the service account.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: NameUid,
    /// The node of the bound pod (ServiceAccountTokenPodNodeInfo, on by default since 1.30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NameUid>,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<NameUid>,
    /// When a token whose expiry the API server extended should have been
    /// replaced (the expiry that was asked for), Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// The claims of a ServiceAccount token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Issuer.
    pub iss: String,
    /// Token id.
    pub jti: String,
    /// Kubernetes-specific claims.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes_io: KubernetesClaim,
    /// Not before.
    pub nbf: i64,
    /// `system:serviceaccount:NS:NAME`.
    pub sub: String,
}

/// Signing and published keys of one issuer.
pub struct Issuer {
    issuer_url: String,
    algorithm: SigningAlgorithm,
    keys: Vec<IssuerKey>,
}

impl Issuer {
    /// A new issuer with one fresh RS256 signing key.
    pub fn new(issuer_url: String) -> Result<Self, IssuerError> {
        Self::with_algorithm(issuer_url, SigningAlgorithm::Rs256)
    }

    /// A new issuer whose keys (this one and those rotated in later) sign
    /// with `algorithm`.
    pub fn with_algorithm(
        issuer_url: String,
        algorithm: SigningAlgorithm,
    ) -> Result<Self, IssuerError> {
        let mut issuer = Self {
            issuer_url,
            algorithm,
            keys: Vec::new(),
        };
        issuer.rotate_signing_key(false)?;
        Ok(issuer)
    }

    /// The algorithm tokens are signed with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The issuer URL (`iss`).
    pub fn issuer_url(&self) -> &str {
        &self.issuer_url
    }

    fn generate_key(&self, sign: bool) -> Result<IssuerKey, IssuerError> {
        let failed = |e: &dyn std::fmt::Display| IssuerError::KeyGeneration(e.to_string());
        let (signer, public, encoded) = match self.algorithm {
            SigningAlgorithm::Rs256 => {
                let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                    .map_err(|e| failed(&e))?;
                let public = RsaPublicKey::from(&private);
                let der = public.to_public_key_der().map_err(|e| failed(&e))?;
                let encoded = rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(&private)
                    .map_err(|e| failed(&e))?
                    .as_bytes()
                    .to_vec();
                let jwk = Jwk {
                    kty: "RSA".into(),
                    kid: URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der.as_bytes())),
                    n: Some(URL_SAFE_NO_PAD.encode(public.n().to_bytes_be())),
                    e: Some(URL_SAFE_NO_PAD.encode(public.e().to_bytes_be())),
                    ..Jwk::empty(self.algorithm)
                };
                (
                    PrivateKey::Rsa(Box::new(SigningKey::new(private))),
                    jwk,
                    encoded,
                )
            }
            SigningAlgorithm::Es256 | SigningAlgorithm::Es384 => {
                let (ring_alg, crv) = if self.algorithm == SigningAlgorithm::Es256 {
                    (&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256")
                } else {
                    (&ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384")
                };
                let rng = SystemRandom::new();
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(ring_alg, &rng).map_err(|e| failed(&e))?;
                let pair = EcdsaKeyPair::from_pkcs8(ring_alg, pkcs8.as_ref(), &rng)
                    .map_err(|e| failed(&e))?;
                let jwk = Jwk::ec(self.algorithm, crv, pair.public_key().as_ref());
                (
                    PrivateKey::Ring(Box::new(pair)),
                    jwk,
                    pkcs8.as_ref().to_vec(),
                )
            }
            SigningAlgorithm::Es512 => {
                // A uniformly random 521-bit scalar, retried in the rare
                // case it is zero or not below the group order.
                let mut bytes = [0u8; 66];
                let key = loop {
                    SystemRandom::new()
                        .fill(&mut bytes)
                        .map_err(|e| failed(&e))?;
                    bytes[0] &= 0x01;
                    if let Ok(key) = p521::ecdsa::SigningKey::from_slice(&bytes) {
                        break key;
                    }
                };
                let point = key.verifying_key().to_sec1_point(false);
                let jwk = Jwk::ec(self.algorithm, "P-521", point.as_bytes());
                let encoded = key.to_bytes().to_vec();
                (PrivateKey::Es512(Box::new(key)), jwk, encoded)
            }
        };
        Ok(IssuerKey {
            kid: public.kid.clone(),
            public,
            signing: sign.then_some(signer),
            encoded: sign.then_some(encoded),
        })
    }

    /// The keys, for the state directory.
    pub fn save(&self) -> SavedIssuer {
        SavedIssuer {
            algorithm: self.algorithm.name().to_owned(),
            keys: self
                .keys
                .iter()
                .map(|k| SavedKey {
                    jwk: k.public.clone(),
                    private: k.encoded.as_ref().map(|e| URL_SAFE_NO_PAD.encode(e)),
                    signing: k.signing.is_some(),
                })
                .collect(),
        }
    }

    /// An issuer with the keys [`Issuer::save`] kept.
    pub fn restore(issuer_url: String, saved: &SavedIssuer) -> Result<Self, IssuerError> {
        let failed = |what: &str| IssuerError::KeyGeneration(format!("the saved issuer {what}"));
        let algorithm = SigningAlgorithm::from_name(&saved.algorithm)
            .ok_or_else(|| failed("names no known algorithm"))?;
        let mut keys = Vec::new();
        for key in &saved.keys {
            let encoded = match &key.private {
                Some(text) => Some(
                    URL_SAFE_NO_PAD
                        .decode(text)
                        .map_err(|_| failed("has a key that is not base64"))?,
                ),
                None => None,
            };
            let private = match &encoded {
                None => None,
                Some(bytes) => Some(match algorithm {
                    SigningAlgorithm::Rs256 => {
                        let private: RsaPrivateKey =
                            rsa::pkcs8::DecodePrivateKey::from_pkcs8_der(bytes)
                                .map_err(|_| failed("has an RSA key that does not parse"))?;
                        PrivateKey::Rsa(Box::new(SigningKey::new(private)))
                    }
                    SigningAlgorithm::Es256 | SigningAlgorithm::Es384 => {
                        let ring_alg = if algorithm == SigningAlgorithm::Es256 {
                            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING
                        } else {
                            &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING
                        };
                        let pair = EcdsaKeyPair::from_pkcs8(ring_alg, bytes, &SystemRandom::new())
                            .map_err(|_| failed("has an EC key that does not parse"))?;
                        PrivateKey::Ring(Box::new(pair))
                    }
                    SigningAlgorithm::Es512 => PrivateKey::Es512(Box::new(
                        p521::ecdsa::SigningKey::from_slice(bytes)
                            .map_err(|_| failed("has a P-521 key that does not parse"))?,
                    )),
                }),
            };
            keys.push(IssuerKey {
                kid: key.jwk.kid.clone(),
                public: key.jwk.clone(),
                signing: private.filter(|_| key.signing),
                encoded: encoded.filter(|_| key.signing),
            });
        }
        if !keys.iter().any(|k| k.signing.is_some()) {
            return Err(failed("has no signing key"));
        }
        Ok(Self {
            issuer_url,
            algorithm,
            keys,
        })
    }

    /// Makes a new key the signing key. With `keep_old`, the previous keys
    /// stay in the JWKS (tokens they signed still verify); without, they go.
    pub fn rotate_signing_key(&mut self, keep_old: bool) -> Result<String, IssuerError> {
        let key = self.generate_key(true)?;
        let kid = key.kid.clone();
        if keep_old {
            for old in &mut self.keys {
                old.signing = None;
                old.encoded = None;
            }
        } else {
            self.keys.clear();
        }
        self.keys.insert(0, key);
        Ok(kid)
    }

    /// Publishes one more key that verifies but does not sign.
    pub fn add_verification_key(&mut self) -> Result<String, IssuerError> {
        let key = self.generate_key(false)?;
        let kid = key.kid.clone();
        self.keys.push(key);
        Ok(kid)
    }

    /// The JWKS.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self.keys.iter().map(|k| k.public.clone()).collect(),
        }
    }

    /// The OIDC discovery document; `jwks_uri` is under `external_url`.
    pub fn discovery(&self, external_url: &str) -> OidcDiscovery {
        OidcDiscovery {
            issuer: self.issuer_url.clone(),
            jwks_uri: format!("{}/openid/v1/jwks", external_url.trim_end_matches('/')),
            response_types_supported: vec!["id_token".into()],
            subject_types_supported: vec!["public".into()],
            id_token_signing_alg_values_supported: vec![self.algorithm.name().into()],
        }
    }

    /// Signs `claims` as a compact JWS with the current signing key.
    pub fn sign(&self, claims: &TokenClaims) -> Result<String, IssuerError> {
        let kid = self.signing_kid()?;
        let claims = serde_json::to_value(claims).unwrap_or_default();
        self.sign_raw(
            &serde_json::json!({ "alg": self.algorithm.name(), "kid": kid }),
            &claims,
        )
    }

    /// The kid of the current signing key.
    pub fn signing_kid(&self) -> Result<String, IssuerError> {
        self.keys
            .iter()
            .find(|k| k.signing.is_some())
            .map(|k| k.kid.clone())
            .ok_or_else(|| IssuerError::KeyGeneration("no signing key".into()))
    }

    /// Signs any header and claims with the current signing key, whatever
    /// the header says: what a test needs to forge tokens whose only fault
    /// is in their header.
    pub fn sign_raw(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, IssuerError> {
        let signing = self
            .keys
            .iter()
            .find_map(|k| k.signing.as_ref())
            .ok_or_else(|| IssuerError::KeyGeneration("no signing key".into()))?;
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap_or_default());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default()));
        let signature = match signing {
            PrivateKey::Rsa(key) => key.sign(token.as_bytes()).to_bytes().to_vec(),
            PrivateKey::Ring(pair) => pair
                .sign(&SystemRandom::new(), token.as_bytes())
                .map_err(|e| IssuerError::KeyGeneration(e.to_string()))?
                .as_ref()
                .to_vec(),
            PrivateKey::Es512(key) => {
                let signature: p521::ecdsa::Signature = key.sign(token.as_bytes());
                signature.to_bytes().to_vec()
            }
        };
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }
}

impl Jwk {
    fn empty(algorithm: SigningAlgorithm) -> Self {
        Self {
            use_: "sig".into(),
            kty: String::new(),
            kid: String::new(),
            alg: algorithm.name().into(),
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
        }
    }

    /// The JWK of an uncompressed point `04 ‖ x ‖ y`; the kid hashes the point.
    fn ec(algorithm: SigningAlgorithm, crv: &str, point: &[u8]) -> Self {
        let (x, y) = point
            .get(1..)
            .unwrap_or_default()
            .split_at(point.len().saturating_sub(1) / 2);
        Self {
            kty: "EC".into(),
            kid: URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(point)),
            crv: Some(crv.into()),
            x: Some(URL_SAFE_NO_PAD.encode(x)),
            y: Some(URL_SAFE_NO_PAD.encode(y)),
            ..Self::empty(algorithm)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::BigUint;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    fn claims(issuer: &Issuer) -> TokenClaims {
        TokenClaims {
            aud: vec!["podseal".into()],
            exp: 2000,
            iat: 1000,
            iss: issuer.issuer_url().into(),
            jti: "j".into(),
            kubernetes_io: KubernetesClaim {
                namespace: "shop".into(),
                serviceaccount: NameUid {
                    name: "api".into(),
                    uid: "u".into(),
                },
                node: None,
                pod: None,
                warnafter: None,
            },
            nbf: 1000,
            sub: "system:serviceaccount:shop:api".into(),
        }
    }

    /// Verifies `token` with the JWKS entry its header names, as a client
    /// would, by the key's own algorithm (which the header must name).
    fn verifies(token: &str, jwks: &Jwks) -> bool {
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&decode(signing_input.split('.').next().unwrap())).unwrap();
        let Some(jwk) = jwks.keys.iter().find(|k| header["kid"] == k.kid.as_str()) else {
            return false;
        };
        assert_eq!(header["alg"], jwk.alg.as_str());
        let (message, signature) = (signing_input.as_bytes(), decode(signature));
        let point = || {
            let mut point = vec![4];
            point.extend(decode(jwk.x.as_ref().unwrap()));
            point.extend(decode(jwk.y.as_ref().unwrap()));
            point
        };
        match jwk.alg.as_str() {
            "RS256" => {
                let public = RsaPublicKey::new(
                    BigUint::from_bytes_be(&decode(jwk.n.as_ref().unwrap())),
                    BigUint::from_bytes_be(&decode(jwk.e.as_ref().unwrap())),
                )
                .unwrap();
                let signature = Signature::try_from(signature.as_slice()).unwrap();
                VerifyingKey::<RsaSha256>::new(public)
                    .verify(message, &signature)
                    .is_ok()
            }
            "ES256" | "ES384" => {
                let algorithm = if jwk.alg == "ES256" {
                    &ring::signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &ring::signature::ECDSA_P384_SHA384_FIXED
                };
                ring::signature::UnparsedPublicKey::new(algorithm, point())
                    .verify(message, &signature)
                    .is_ok()
            }
            "ES512" => {
                use p521::ecdsa::signature::Verifier as _;
                let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(&point()).unwrap();
                let signature = p521::ecdsa::Signature::from_slice(&signature).unwrap();
                key.verify(message, &signature).is_ok()
            }
            other => panic!("unexpected alg {other}"),
        }
    }

    #[test]
    fn every_algorithm_signs_tokens_its_published_key_verifies() {
        for (algorithm, kty, crv, len) in [
            (SigningAlgorithm::Rs256, "RSA", None, 256),
            (SigningAlgorithm::Es256, "EC", Some("P-256"), 32),
            (SigningAlgorithm::Es384, "EC", Some("P-384"), 48),
            (SigningAlgorithm::Es512, "EC", Some("P-521"), 66),
        ] {
            let name = algorithm.name();
            assert_eq!(
                SigningAlgorithm::from_name(&name.to_lowercase()),
                Some(algorithm)
            );
            let mut issuer =
                Issuer::with_algorithm("https://kubernetes.default.svc".into(), algorithm).unwrap();
            let token = issuer.sign(&claims(&issuer)).unwrap();
            let jwks = issuer.jwks();
            let jwk = &jwks.keys[0];
            assert_eq!(
                (jwk.kty.as_str(), jwk.alg.as_str(), jwk.crv.as_deref()),
                (kty, name, crv)
            );
            let coordinate = jwk.x.as_ref().or(jwk.n.as_ref()).unwrap();
            assert_eq!(
                URL_SAFE_NO_PAD.decode(coordinate).unwrap().len(),
                len,
                "{name}"
            );
            assert!(verifies(&token, &jwks), "{name}");
            let mut tampered = token.clone().into_bytes();
            tampered[token.find('.').unwrap() + 3] ^= 1;
            assert!(
                !verifies(&String::from_utf8(tampered).unwrap(), &jwks),
                "{name} tampered"
            );
            assert_eq!(
                issuer
                    .discovery("https://127.0.0.1:6443")
                    .id_token_signing_alg_values_supported,
                [name]
            );
            // A rotated-in key signs with the same algorithm.
            issuer.rotate_signing_key(true).unwrap();
            let rotated = issuer.sign(&claims(&issuer)).unwrap();
            assert!(
                verifies(&rotated, &issuer.jwks()) && verifies(&token, &issuer.jwks()),
                "{name}"
            );
            assert!(issuer.jwks().keys.iter().all(|k| k.alg == name));
        }
        assert_eq!(SigningAlgorithm::from_name("HS256"), None);
        assert_eq!(SigningAlgorithm::from_name("none"), None);
    }

    #[test]
    fn tokens_verify_against_the_published_jwks_across_rotation() {
        let mut issuer = Issuer::new("https://kubernetes.default.svc".into()).unwrap();
        let first = issuer.sign(&claims(&issuer)).unwrap();
        assert!(verifies(&first, &issuer.jwks()));

        issuer.add_verification_key().unwrap();
        assert_eq!(issuer.jwks().keys.len(), 2);
        assert!(
            verifies(&first, &issuer.jwks()),
            "the signing key did not change"
        );

        issuer.rotate_signing_key(true).unwrap();
        let second = issuer.sign(&claims(&issuer)).unwrap();
        assert!(
            verifies(&first, &issuer.jwks()) && verifies(&second, &issuer.jwks()),
            "old key kept"
        );

        issuer.rotate_signing_key(false).unwrap();
        assert_eq!(issuer.jwks().keys.len(), 1);
        assert!(
            !verifies(&first, &issuer.jwks()) && !verifies(&second, &issuer.jwks()),
            "old keys dropped"
        );
        let discovery = issuer.discovery("https://127.0.0.1:6443");
        assert_eq!(discovery.jwks_uri, "https://127.0.0.1:6443/openid/v1/jwks");
    }
}
