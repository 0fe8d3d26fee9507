//! A pinned JWKS and JWS signature verification for ServiceAccount tokens.
//!
//! Keys are pinned when a cluster is registered and never fetched because a
//! token pointed somewhere. Only RS256 (RSA ≥ 2048 bits) and ES256 (P-256)
//! keys are accepted, the same algorithms `kube-apiserver` signs with; the
//! algorithm comes from the pinned key, and a token whose header names
//! another is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

/// Algorithms podseal accepts for ServiceAccount tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256, signature as `r ‖ s`.
    Es256,
}

impl TokenAlgorithm {
    /// Parses an allowed `alg`; everything else (`none`, `HS256`, `PS256`…) is `None`.
    pub fn from_name(alg: &str) -> Option<Self> {
        match alg {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyMaterial {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    EcP256 { point: Vec<u8> },
}

/// One pinned public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedKey {
    /// Key id.
    pub kid: String,
    /// The algorithm this key verifies.
    pub algorithm: TokenAlgorithm,
    material: KeyMaterial,
}

/// The keys a cluster's tokens may be signed with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PinnedJwks {
    keys: Vec<PinnedKey>,
}

/// Why a JWKS cannot be pinned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not a JSON object with a `keys` array.
    #[error("not a JWKS document (a JSON object with a \"keys\" array)")]
    NotJwks,
    /// A key is unusable; `index` counts from 0.
    #[error("JWKS key {index}: {reason}")]
    BadKey {
        /// Position in `keys`.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// No usable key at all.
    #[error("the JWKS has no RS256 or ES256 signing key")]
    Empty,
}

fn member<'a>(key: &'a Value, name: &str) -> Option<&'a str> {
    key.get(name).and_then(Value::as_str)
}

fn b64(key: &Value, name: &str, index: usize) -> Result<Vec<u8>, JwksError> {
    let text = member(key, name).ok_or(JwksError::BadKey {
        index,
        reason: "a required member is missing",
    })?;
    URL_SAFE_NO_PAD.decode(text).map_err(|_| JwksError::BadKey {
        index,
        reason: "a member is not base64url",
    })
}

impl PinnedJwks {
    /// Parses a JWKS, keeping RS256 and ES256 signing keys. Refuses private
    /// members, short RSA moduli and keys without a `kid`.
    pub fn parse(json: &str) -> Result<Self, JwksError> {
        let document: Value = serde_json::from_str(json).map_err(|_| JwksError::NotJwks)?;
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotJwks)?;
        let mut keys = Vec::new();
        for (index, key) in entries.iter().enumerate() {
            if ["d", "p", "q", "dp", "dq", "qi", "k"]
                .iter()
                .any(|private| key.get(private).is_some())
            {
                return Err(JwksError::BadKey {
                    index,
                    reason: "contains private key material",
                });
            }
            if member(key, "use").is_some_and(|u| u != "sig") {
                continue;
            }
            let kid = member(key, "kid")
                .ok_or(JwksError::BadKey {
                    index,
                    reason: "has no kid",
                })?
                .to_owned();
            let (algorithm, material) = match (member(key, "kty"), member(key, "crv")) {
                (Some("RSA"), _) => {
                    let n = b64(key, "n", index)?;
                    let significant = n.iter().skip_while(|b| **b == 0).count();
                    if significant < 256 {
                        return Err(JwksError::BadKey {
                            index,
                            reason: "RSA modulus shorter than 2048 bits",
                        });
                    }
                    (
                        TokenAlgorithm::Rs256,
                        KeyMaterial::Rsa {
                            n,
                            e: b64(key, "e", index)?,
                        },
                    )
                }
                (Some("EC"), Some("P-256")) => {
                    let (x, y) = (b64(key, "x", index)?, b64(key, "y", index)?);
                    if x.len() != 32 || y.len() != 32 {
                        return Err(JwksError::BadKey {
                            index,
                            reason: "P-256 coordinates must be 32 bytes",
                        });
                    }
                    let mut point = vec![0x04];
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    (TokenAlgorithm::Es256, KeyMaterial::EcP256 { point })
                }
                _ => {
                    return Err(JwksError::BadKey {
                        index,
                        reason: "only RSA and EC P-256 keys are accepted",
                    });
                }
            };
            if member(key, "alg")
                .is_some_and(|alg| TokenAlgorithm::from_name(alg) != Some(algorithm))
            {
                return Err(JwksError::BadKey {
                    index,
                    reason: "alg does not match the key type",
                });
            }
            keys.push(PinnedKey {
                kid,
                algorithm,
                material,
            });
        }
        if keys.is_empty() {
            return Err(JwksError::Empty);
        }
        Ok(Self { keys })
    }

    /// The pinned key ids.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// The key with this kid.
    pub fn key(&self, kid: &str) -> Option<&PinnedKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

impl PinnedKey {
    /// Verifies a JWS signature over `signing_input` with this key.
    pub fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    signing_input,
                    signature,
                )
                .is_ok(),
            KeyMaterial::EcP256 { point } => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signing_input, signature)
                    .is_ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every Wycheproof RSA PKCS#1 v1.5 2048/SHA-256 and ECDSA P-256/SHA-256
    //! (P1363) vector through [`PinnedKey::verify`], and the RFC 7515 A.2/A.3
    //! tokens against the shared JWKS (whose keys are those RFC keys).
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::panic,
        reason = "test code"
    )]
    use super::*;

    use podseal_test_support::testdata::shared_json as shared;

    fn hex(value: &Value) -> Vec<u8> {
        let text = value.as_str().unwrap();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn run_wycheproof(file: &str, key_member: &str) -> usize {
        let vectors = shared(file);
        let mut count = 0;
        for group in vectors["testGroups"].as_array().unwrap() {
            let mut jwk = if group[key_member].is_object() {
                group[key_member].clone()
            } else {
                // Some groups give only the uncompressed point 04 ‖ x ‖ y.
                let point = hex(&group["publicKey"]["uncompressed"]);
                assert_eq!((point.len(), point[0]), (65, 4));
                serde_json::json!({
                    "kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
                })
            };
            jwk["kid"] = "wycheproof".into();
            let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
            let Ok(pinned) = PinnedJwks::parse(&jwks) else {
                // Keys podseal refuses to pin can verify nothing: every test must be invalid.
                for test in group["tests"].as_array().unwrap() {
                    assert_ne!(
                        test["result"], "valid",
                        "{file} tcId {}: valid vector under an unpinnable key",
                        test["tcId"]
                    );
                    count += 1;
                }
                continue;
            };
            let key = &pinned.keys[0];
            for test in group["tests"].as_array().unwrap() {
                let ok = key.verify(&hex(&test["msg"]), &hex(&test["sig"]));
                // "acceptable" legacy encodings: podseal accepts only what ring calls valid, so they must be refused.
                let expected = test["result"] == "valid";
                assert_eq!(
                    ok, expected,
                    "{file} tcId {} ({}): {}",
                    test["tcId"], test["comment"], test["result"]
                );
                count += 1;
            }
        }
        assert_eq!(count as u64, vectors["numberOfTests"].as_u64().unwrap());
        count
    }

    #[test]
    fn wycheproof_rsa_pkcs1_2048_sha256_through_the_wrapper() {
        assert!(run_wycheproof("wycheproof/rsa_signature_2048_sha256_test.json", "keyJwk") > 200);
    }

    #[test]
    fn wycheproof_ecdsa_p256_p1363_through_the_wrapper() {
        assert!(
            run_wycheproof(
                "wycheproof/ecdsa_secp256r1_sha256_p1363_test.json",
                "publicKeyJwk"
            ) > 200
        );
    }

    #[test]
    fn rfc7515_tokens_verify_against_the_documented_jwks() {
        let jwks =
            PinnedJwks::parse(&shared("kubernetes/jwks.json")["document"].to_string()).unwrap();
        let examples = shared("jose/rfc7515-appendix-a.json");
        for (name, kid) in [("A.2_RS256", "rfc7515-a2"), ("A.3_ES256", "rfc7515-a3")] {
            let token = examples[name]["compact"].as_str().unwrap();
            let (input, signature) = token.rsplit_once('.').unwrap();
            let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            let key = jwks.key(kid).unwrap();
            assert!(key.verify(input.as_bytes(), &signature), "{name}");
            let mut tampered = input.as_bytes().to_vec();
            tampered[5] ^= 1;
            assert!(!key.verify(&tampered, &signature), "{name} tampered");
        }
    }

    #[test]
    fn unusable_jwks_are_refused_at_pin_time() {
        assert_eq!(PinnedJwks::parse("[]"), Err(JwksError::NotJwks));
        assert_eq!(PinnedJwks::parse(r#"{"keys":[]}"#), Err(JwksError::Empty));
        let private = shared("jose/rfc7520/jwk_3_4.rsa_private_key.json");
        let jwks = serde_json::json!({ "keys": [private] }).to_string();
        assert!(matches!(
            PinnedJwks::parse(&jwks),
            Err(JwksError::BadKey {
                reason: "contains private key material",
                ..
            })
        ));
        let hmac = serde_json::json!({ "keys": [{ "kty": "oct", "kid": "h", "k": "c2VjcmV0" }] })
            .to_string();
        assert!(PinnedJwks::parse(&hmac).is_err());
        let short = serde_json::json!({ "keys": [{ "kty": "RSA", "kid": "s", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB" }] });
        assert!(matches!(
            PinnedJwks::parse(&short.to_string()),
            Err(JwksError::BadKey {
                reason: "RSA modulus shorter than 2048 bits",
                ..
            })
        ));
    }
}
