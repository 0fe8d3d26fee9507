//! The ServiceAccount token issuer: RS256 signing keys, the JWKS and OIDC
//! discovery documents a real API server serves, and token minting with the
//! claims a real API server puts in pod-bound tokens.
//!
//! As `kube-apiserver` does, one key signs (`--service-account-signing-key-file`)
//! and the JWKS may publish more keys that still verify
//! (`--service-account-key-file`): [`Issuer::rotate_signing_key`] and
//! [`Issuer::add_verification_key`] reproduce both operations.
//!
//! RSA here is the `rsa` crate's stable 0.9 line, used only to sign tokens of
//! this development stand-in (its known timing side channel matters for keys an
//! attacker can time remotely; these keys protect nothing).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{SignatureEncoding, Signer};
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

struct IssuerKey {
    kid: String,
    public: RsaPublicKey,
    signing: Option<SigningKey<RsaSha256>>,
}

/// One JWK of the JWKS, as `kube-apiserver` serializes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Always `RSA` here.
    pub kty: String,
    /// Key id: base64url SHA-256 of the DER SubjectPublicKeyInfo.
    pub kid: String,
    /// Always `RS256` here.
    pub alg: String,
    /// Modulus.
    pub n: String,
    /// Exponent.
    pub e: String,
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
    keys: Vec<IssuerKey>,
}

impl Issuer {
    /// A new issuer with one fresh signing key.
    pub fn new(issuer_url: String) -> Result<Self, IssuerError> {
        let mut issuer = Self {
            issuer_url,
            keys: Vec::new(),
        };
        issuer.rotate_signing_key(false)?;
        Ok(issuer)
    }

    /// The issuer URL (`iss`).
    pub fn issuer_url(&self) -> &str {
        &self.issuer_url
    }

    fn generate_key(sign: bool) -> Result<IssuerKey, IssuerError> {
        let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
            .map_err(|e| IssuerError::KeyGeneration(e.to_string()))?;
        let public = RsaPublicKey::from(&private);
        let der = public
            .to_public_key_der()
            .map_err(|e| IssuerError::KeyGeneration(e.to_string()))?;
        let kid = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der.as_bytes()));
        let signing = sign.then(|| SigningKey::<RsaSha256>::new(private));
        Ok(IssuerKey {
            kid,
            public,
            signing,
        })
    }

    /// Makes a new key the signing key. With `keep_old`, the previous keys
    /// stay in the JWKS (tokens they signed still verify); without, they go.
    pub fn rotate_signing_key(&mut self, keep_old: bool) -> Result<String, IssuerError> {
        let key = Self::generate_key(true)?;
        let kid = key.kid.clone();
        if keep_old {
            for old in &mut self.keys {
                old.signing = None;
            }
        } else {
            self.keys.clear();
        }
        self.keys.insert(0, key);
        Ok(kid)
    }

    /// Publishes one more key that verifies but does not sign.
    pub fn add_verification_key(&mut self) -> Result<String, IssuerError> {
        let key = Self::generate_key(false)?;
        let kid = key.kid.clone();
        self.keys.push(key);
        Ok(kid)
    }

    /// The JWKS.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .map(|k| Jwk {
                    use_: "sig".into(),
                    kty: "RSA".into(),
                    kid: k.kid.clone(),
                    alg: "RS256".into(),
                    n: URL_SAFE_NO_PAD.encode(k.public.n().to_bytes_be()),
                    e: URL_SAFE_NO_PAD.encode(k.public.e().to_bytes_be()),
                })
                .collect(),
        }
    }

    /// The OIDC discovery document; `jwks_uri` is under `external_url`.
    pub fn discovery(&self, external_url: &str) -> OidcDiscovery {
        OidcDiscovery {
            issuer: self.issuer_url.clone(),
            jwks_uri: format!("{}/openid/v1/jwks", external_url.trim_end_matches('/')),
            response_types_supported: vec!["id_token".into()],
            subject_types_supported: vec!["public".into()],
            id_token_signing_alg_values_supported: vec!["RS256".into()],
        }
    }

    /// Signs `claims` as a compact JWS with the current signing key.
    pub fn sign(&self, claims: &TokenClaims) -> Result<String, IssuerError> {
        let kid = self.signing_kid()?;
        let claims = serde_json::to_value(claims).unwrap_or_default();
        self.sign_raw(&serde_json::json!({ "alg": "RS256", "kid": kid }), &claims)
    }

    /// The kid of the current signing key.
    pub fn signing_kid(&self) -> Result<String, IssuerError> {
        self.keys
            .iter()
            .find(|k| k.signing.is_some())
            .map(|k| k.kid.clone())
            .ok_or_else(|| IssuerError::KeyGeneration("no signing key".into()))
    }

    /// Signs any header and claims with the current RSA signing key: what a
    /// test needs to forge tokens whose only fault is in their header.
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
        let signature = signing.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        Ok(token)
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

    /// Verifies `token` with the JWKS entry its header names, as a client would.
    fn verifies(token: &str, jwks: &Jwks) -> bool {
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&decode(signing_input.split('.').next().unwrap())).unwrap();
        let Some(jwk) = jwks.keys.iter().find(|k| header["kid"] == k.kid.as_str()) else {
            return false;
        };
        let public = RsaPublicKey::new(
            BigUint::from_bytes_be(&decode(&jwk.n)),
            BigUint::from_bytes_be(&decode(&jwk.e)),
        )
        .unwrap();
        let signature = Signature::try_from(decode(signature).as_slice()).unwrap();
        VerifyingKey::<RsaSha256>::new(public)
            .verify(signing_input.as_bytes(), &signature)
            .is_ok()
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
