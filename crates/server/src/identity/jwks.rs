//! A pinned JWKS and JWS signature verification for ServiceAccount tokens.
//!
//! Keys are pinned when a cluster is registered and never fetched because a
//! token pointed somewhere. Only RS256 (RSA ≥ 2048 bits) and ES256, ES384
//! and ES512 (P-256, P-384, P-521) keys are accepted: `kube-apiserver` signs
//! with RS256 or ES256, and an external signer (KEP-740) may use any of them.
//! The algorithm comes from the pinned key (an EC key's curve fixes it, RFC
//! 7518 §3.4), and a token whose header names another is refused.
//!
//! ring verifies RS256, ES256 and ES384; ES512 is RustCrypto's `p521`, as
//! ring has no P-521.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p521::ecdsa::signature::Verifier as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

/// Algorithms podseal accepts for ServiceAccount tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256, signature as `r ‖ s`.
    Es256,
    /// ECDSA P-384 with SHA-384, signature as `r ‖ s` (48 bytes each).
    Es384,
    /// ECDSA P-521 with SHA-512, signature as `r ‖ s` (66 bytes each).
    Es512,
}

impl TokenAlgorithm {
    /// Parses an allowed `alg`; everything else (`none`, `HS256`, `PS256`…) is `None`.
    pub fn from_name(alg: &str) -> Option<Self> {
        match alg {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            "ES384" => Some(Self::Es384),
            "ES512" => Some(Self::Es512),
            _ => None,
        }
    }

    /// The JWS name (`alg`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
        }
    }

    /// The one ECDSA algorithm of a JWK curve (`crv`), with the exact
    /// length of its coordinates (RFC 7518 §6.2.1.2: full length, leading
    /// zeros kept).
    fn for_curve(crv: &str) -> Option<(Self, usize)> {
        match crv {
            "P-256" => Some((Self::Es256, 32)),
            "P-384" => Some((Self::Es384, 48)),
            "P-521" => Some((Self::Es512, 66)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// A P-256 or P-384 point `04 ‖ x ‖ y`, which ring checks on every use.
    Ec {
        point: Vec<u8>,
    },
    /// A P-521 point, checked on the curve when pinned.
    P521(p521::ecdsa::VerifyingKey),
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
    #[error("the JWKS has no RS256, ES256, ES384 or ES512 signing key")]
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

/// An EC JWK of a supported curve: its algorithm and its point.
fn ec_key(
    key: &Value,
    crv: &str,
    index: usize,
) -> Result<(TokenAlgorithm, KeyMaterial), JwksError> {
    let Some((algorithm, len)) = TokenAlgorithm::for_curve(crv) else {
        return Err(JwksError::BadKey {
            index,
            reason: "only RSA and EC P-256, P-384 and P-521 keys are accepted",
        });
    };
    let (x, y) = (b64(key, "x", index)?, b64(key, "y", index)?);
    if x.len() != len || y.len() != len {
        return Err(JwksError::BadKey {
            index,
            reason: "EC coordinates must be 32 (P-256), 48 (P-384) or 66 (P-521) bytes",
        });
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let material = if algorithm == TokenAlgorithm::Es512 {
        let key =
            p521::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| JwksError::BadKey {
                index,
                reason: "the P-521 point is not on the curve",
            })?;
        KeyMaterial::P521(key)
    } else {
        KeyMaterial::Ec { point }
    };
    Ok((algorithm, material))
}

impl PinnedJwks {
    /// Parses a JWKS, keeping RS256, ES256, ES384 and ES512 signing keys.
    /// Refuses private members, short RSA moduli, EC coordinates of the wrong
    /// length for their curve, a P-521 point off the curve, an `alg` that is
    /// not the key's own algorithm, and keys without a `kid`.
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
                (Some("EC"), Some(crv)) if TokenAlgorithm::for_curve(crv).is_some() => {
                    ec_key(key, crv, index)?
                }
                _ => {
                    return Err(JwksError::BadKey {
                        index,
                        reason: "only RSA and EC P-256, P-384 and P-521 keys are accepted",
                    });
                }
            };
            if member(key, "alg")
                .is_some_and(|alg| TokenAlgorithm::from_name(alg) != Some(algorithm))
            {
                return Err(JwksError::BadKey {
                    index,
                    reason: "alg is not the algorithm of the key's type and curve",
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
            KeyMaterial::Ec { point } => {
                let algorithm = match self.algorithm {
                    TokenAlgorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
                    TokenAlgorithm::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
                    TokenAlgorithm::Rs256 | TokenAlgorithm::Es512 => return false,
                };
                UnparsedPublicKey::new(algorithm, point)
                    .verify(signing_input, signature)
                    .is_ok()
            }
            KeyMaterial::P521(key) => p521::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(signing_input, &signature).is_ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every Wycheproof RSA PKCS#1 v1.5 2048/SHA-256 and ECDSA P-256/SHA-256,
    //! P-384/SHA-384 and P-521/SHA-512 (P1363) vector through
    //! [`PinnedKey::verify`], the RFC 7515 A.2/A.3 tokens against the shared
    //! JWKS (whose keys are those RFC keys), and the RFC 7520 §4.3 ES512 token.
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
                let (crv, len) = match group["publicKey"]["curve"].as_str().unwrap() {
                    "secp256r1" => ("P-256", 32),
                    "secp384r1" => ("P-384", 48),
                    "secp521r1" => ("P-521", 66),
                    other => panic!("{file}: curve {other}"),
                };
                assert_eq!((point.len(), point[0]), (1 + 2 * len, 4));
                serde_json::json!({
                    "kty": "EC", "crv": crv,
                    "x": URL_SAFE_NO_PAD.encode(&point[1..=len]), "y": URL_SAFE_NO_PAD.encode(&point[1 + len..]),
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
    fn wycheproof_ecdsa_p384_p1363_through_the_wrapper() {
        assert!(
            run_wycheproof(
                "wycheproof/ecdsa_secp384r1_sha384_p1363_test.json",
                "publicKeyJwk"
            ) > 200
        );
    }

    #[test]
    fn wycheproof_ecdsa_p521_p1363_through_the_wrapper() {
        assert!(
            run_wycheproof(
                "wycheproof/ecdsa_secp521r1_sha512_p1363_test.json",
                "publicKeyJwk"
            ) > 200
        );
    }

    /// RFC 7520 §4.3: an ES512 token (P-521 key, 132-byte `r ‖ s`) verifies
    /// against the public JWK of §3.1; a tampered one does not.
    #[test]
    fn rfc7520_es512_token_verifies_against_its_p521_key() {
        let example = shared("jose/rfc7520/jws_4_3.ecdsa_signature.json");
        let jwk = shared("jose/rfc7520/jwk_3_1.ec_public_key.json");
        let jwks = PinnedJwks::parse(&serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
        let key = jwks.key("bilbo.baggins@hobbiton.example").unwrap();
        assert_eq!(key.algorithm, TokenAlgorithm::Es512);
        let token = example["output"]["compact"].as_str().unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        assert_eq!(signature.len(), 132);
        assert!(key.verify(input.as_bytes(), &signature));
        let mut tampered = signature.clone();
        tampered[100] ^= 1;
        assert!(!key.verify(input.as_bytes(), &tampered));
        // The P1363 form only: the same signature with its halves swapped,
        // truncated or padded verifies nothing.
        let swapped = [&signature[66..], &signature[..66]].concat();
        for bad in [
            &swapped[..],
            &signature[..131],
            &[&signature[..], &[0]].concat()[..],
        ] {
            assert!(!key.verify(input.as_bytes(), bad));
        }
    }

    /// The curve fixes the algorithm: each EC key pins as its own ES
    /// algorithm only, with coordinates of exactly its curve's length, and a
    /// P-521 point must be on the curve.
    #[test]
    fn an_ec_key_pins_only_as_its_curves_algorithm() {
        let p521 = shared("jose/rfc7520/jwk_3_1.ec_public_key.json");
        let p256 = shared("kubernetes/jwks.json")["document"]["keys"][1].clone();
        let pin =
            |jwk: &Value| PinnedJwks::parse(&serde_json::json!({ "keys": [jwk] }).to_string());
        let reason = |jwk: &Value| match pin(jwk) {
            Err(JwksError::BadKey { reason, .. }) => reason,
            other => panic!("pinned: {other:?}"),
        };
        let with = |jwk: &Value, name: &str, value: &str| {
            let mut jwk = jwk.clone();
            jwk[name] = value.into();
            jwk
        };
        assert_eq!(
            pin(&with(&p521, "alg", "ES512")).unwrap().keys[0].algorithm,
            TokenAlgorithm::Es512
        );
        assert_eq!(pin(&p256).unwrap().keys[0].algorithm, TokenAlgorithm::Es256);
        for (jwk, alg) in [
            (&p521, "ES256"),
            (&p521, "ES384"),
            (&p521, "RS256"),
            (&p256, "ES384"),
            (&p256, "ES512"),
            (&p521, "none"),
            (&p521, "HS512"),
        ] {
            assert_eq!(
                reason(&with(jwk, "alg", alg)),
                "alg is not the algorithm of the key's type and curve",
                "{alg}"
            );
        }
        // A P-521 key labelled P-384 (or P-256) has coordinates of the wrong length.
        for crv in ["P-384", "P-256"] {
            assert_eq!(
                reason(&with(&p521, "crv", crv)),
                "EC coordinates must be 32 (P-256), 48 (P-384) or 66 (P-521) bytes"
            );
        }
        // A leading zero byte dropped from x (65 bytes, as some encoders do) is refused.
        let x = URL_SAFE_NO_PAD.decode(p521["x"].as_str().unwrap()).unwrap();
        assert_eq!(x[0], 0);
        let short = with(&p521, "x", &URL_SAFE_NO_PAD.encode(&x[1..]));
        assert_eq!(
            reason(&short),
            "EC coordinates must be 32 (P-256), 48 (P-384) or 66 (P-521) bytes"
        );
        let mut off_curve = x.clone();
        off_curve[65] ^= 1;
        assert_eq!(
            reason(&with(&p521, "x", &URL_SAFE_NO_PAD.encode(&off_curve))),
            "the P-521 point is not on the curve"
        );
        assert_eq!(
            reason(&with(&p521, "crv", "P-192")),
            "only RSA and EC P-256, P-384 and P-521 keys are accepted"
        );
        assert_eq!(
            reason(&with(&p521, "crv", "secp256k1")),
            "only RSA and EC P-256, P-384 and P-521 keys are accepted"
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
