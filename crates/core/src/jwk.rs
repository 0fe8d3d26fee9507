//! JSON Web Keys: the Ed25519 public JWK of a DPoP key, and RFC 7638
//! thumbprints (which pin a DPoP key to a pod).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Why a JWK is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// `kty` is missing or not one RFC 7638 defines members for.
    #[error("JWK key type is missing or unsupported")]
    UnsupportedKeyType,
    /// A required member is missing or not a string.
    #[error("JWK member `{0}` is missing or not a string")]
    MissingMember(&'static str),
    /// The JWK carries private key material.
    #[error("JWK contains private key material")]
    PrivateKeyMaterial,
    /// An Ed25519 JWK has the wrong shape.
    #[error("not an Ed25519 public JWK: {0}")]
    NotEd25519(&'static str),
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order,
/// without whitespace, base64url-encoded.
pub fn thumbprint_sha256(jwk: &Map<String, Value>) -> Result<String, JwkError> {
    let required: &[&'static str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => &["e", "kty", "n"],
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => return Err(JwkError::UnsupportedKeyType),
    };
    let mut members = BTreeMap::new();
    for &name in required {
        let value = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or(JwkError::MissingMember(name))?;
        members.insert(name, value);
    }
    // BTreeMap serializes in key order; serde_json writes no whitespace.
    let canonical = serde_json::to_vec(&members).map_err(|_| JwkError::UnsupportedKeyType)?;
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(&canonical)))
}

/// Reads an Ed25519 public key from a JWK that must be exactly
/// `{"kty":"OKP","crv":"Ed25519","x":…}`; `d` is refused as private material.
pub fn ed25519_public_key(jwk: &Map<String, Value>) -> Result<[u8; 32], JwkError> {
    if jwk.contains_key("d") {
        return Err(JwkError::PrivateKeyMaterial);
    }
    if jwk
        .keys()
        .any(|k| !matches!(k.as_str(), "kty" | "crv" | "x"))
    {
        return Err(JwkError::NotEd25519("only kty, crv and x are allowed"));
    }
    if jwk.get("kty").and_then(Value::as_str) != Some("OKP")
        || jwk.get("crv").and_then(Value::as_str) != Some("Ed25519")
    {
        return Err(JwkError::NotEd25519("kty must be OKP and crv Ed25519"));
    }
    let x = jwk
        .get("x")
        .and_then(Value::as_str)
        .ok_or(JwkError::MissingMember("x"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(x)
        .map_err(|_| JwkError::NotEd25519("x is not base64url"))?;
    bytes
        .try_into()
        .map_err(|_| JwkError::NotEd25519("x must be 32 bytes"))
}

/// The public JWK of an Ed25519 key.
pub fn ed25519_jwk(public_key: &[u8; 32]) -> Map<String, Value> {
    let mut jwk = Map::new();
    jwk.insert("kty".into(), "OKP".into());
    jwk.insert("crv".into(), "Ed25519".into());
    jwk.insert("x".into(), URL_SAFE_NO_PAD.encode(public_key).into());
    jwk
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors::load_json;

    fn object(value: &Value) -> &Map<String, Value> {
        value.as_object().unwrap()
    }

    #[test]
    fn rfc7638_section_3_1_rsa_thumbprint() {
        let file = load_json("jose/rfc7638-section-3.1.json");
        let thumbprint = thumbprint_sha256(object(&file["jwk"])).unwrap();
        assert_eq!(thumbprint, file["thumbprint_sha256_b64u"].as_str().unwrap());
    }

    #[test]
    fn rfc8037_a3_ed25519_thumbprint_and_key() {
        let file = load_json("jose/rfc8037-appendix-a.json");
        let public = object(&file["A.2_ed25519_public_jwk"]);
        let expected = file["A.3_thumbprint"]["thumbprint_sha256_b64u"]
            .as_str()
            .unwrap();
        assert_eq!(thumbprint_sha256(public).unwrap(), expected);
        let key = ed25519_public_key(public).unwrap();
        assert_eq!(thumbprint_sha256(&ed25519_jwk(&key)).unwrap(), expected);
        assert_eq!(
            ed25519_public_key(object(&file["A.1_ed25519_private_jwk"])),
            Err(JwkError::PrivateKeyMaterial)
        );
    }

    #[test]
    fn rfc9449_jkt_reorders_members() {
        let file = load_json("jose/rfc9449-dpop-examples.json");
        let thumbprint = thumbprint_sha256(object(&file["dpop_public_jwk"])).unwrap();
        assert_eq!(thumbprint, file["dpop_jkt_sha256"].as_str().unwrap());
    }
}
