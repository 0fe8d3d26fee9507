//! Compact JWS with Ed25519 (`alg: EdDSA`, RFC 8037): the only signature
//! podseal's DPoP proofs use. The algorithm is fixed by the caller, never
//! taken from the token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

/// Why a compact JWS was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not three base64url segments.
    #[error("not a compact JWS (three base64url parts separated by dots)")]
    Malformed,
    /// The public key is not a valid Ed25519 point.
    #[error("signing key is not a valid Ed25519 public key")]
    BadKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

/// A compact JWS split into its parts; nothing is verified yet.
#[derive(Debug)]
pub struct CompactJws<'a> {
    /// `BASE64URL(header) . BASE64URL(payload)`, the bytes that are signed.
    pub signing_input: &'a str,
    /// The decoded protected header.
    pub header: Vec<u8>,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    /// Splits and decodes; refuses anything but exactly three canonical parts.
    pub fn parse(token: &'a str) -> Result<Self, JwsError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(JwsError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(JwsError::Malformed)?;
        if payload.contains('.') {
            return Err(JwsError::Malformed);
        }
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwsError::Malformed)
        };
        Ok(Self {
            signing_input,
            header: decode(header)?,
            payload: decode(payload)?,
            signature: decode(signature)?,
        })
    }
}

/// Signs `header` and `payload` (JSON bytes) into a compact JWS.
pub fn sign_ed25519(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    token
}

/// Verifies an Ed25519 signature with RFC 8032's strict checks: canonical
/// `S < L`, and no small-order public key or `R`.
pub fn verify_ed25519(
    public_key: &[u8; 32],
    message: &[u8],
    signature: &[u8],
) -> Result<(), JwsError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| JwsError::BadKey)?;
    let signature = Signature::from_slice(signature).map_err(|_| JwsError::BadSignature)?;
    key.verify_strict(message, &signature)
        .map_err(|_| JwsError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwk::ed25519_public_key;
    use crate::test_vectors::{hex, load_json};

    #[test]
    fn rfc8037_a4_signing_is_byte_exact_and_a5_verifies() {
        let file = load_json("jose/rfc8037-appendix-a.json");
        let private = &file["A.1_ed25519_private_jwk"];
        let d: [u8; 32] = URL_SAFE_NO_PAD
            .decode(private["d"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let key = SigningKey::from_bytes(&d);
        let a4 = &file["A.4_ed25519_signing"];
        let token = sign_ed25519(
            &key,
            a4["protected_utf8"].as_str().unwrap().as_bytes(),
            a4["payload_utf8"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(token, a4["compact"].as_str().unwrap());

        let public =
            ed25519_public_key(file["A.2_ed25519_public_jwk"].as_object().unwrap()).unwrap();
        let jws = CompactJws::parse(&token).unwrap();
        verify_ed25519(&public, jws.signing_input.as_bytes(), &jws.signature).unwrap();
        // A.5: flipping any bit of the signing input or the signature fails.
        for i in 0..jws.signing_input.len() * 8 {
            let mut input = jws.signing_input.as_bytes().to_vec();
            input[i / 8] ^= 1 << (i % 8);
            assert!(verify_ed25519(&public, &input, &jws.signature).is_err());
        }
        for i in 0..jws.signature.len() * 8 {
            let mut signature = jws.signature.clone();
            signature[i / 8] ^= 1 << (i % 8);
            assert!(verify_ed25519(&public, jws.signing_input.as_bytes(), &signature).is_err());
        }
    }

    #[test]
    fn wycheproof_ed25519_through_the_wrapper() {
        let file = load_json("wycheproof/ed25519_test.json");
        let mut count = 0;
        for group in file["testGroups"].as_array().unwrap() {
            let public: [u8; 32] = hex(&group["publicKey"]["pk"]).try_into().unwrap();
            for test in group["tests"].as_array().unwrap() {
                let result = verify_ed25519(&public, &hex(&test["msg"]), &hex(&test["sig"]));
                let valid = test["result"] == "valid";
                assert_eq!(
                    result.is_ok(),
                    valid,
                    "tcId {} ({}): {result:?}",
                    test["tcId"],
                    test["comment"]
                );
                count += 1;
            }
        }
        assert_eq!(count, file["numberOfTests"].as_u64().unwrap());
    }

    #[test]
    fn parse_refuses_anything_but_three_parts() {
        for bad in ["", "a", "a.b", "a.b.c.d", "eyJ=.e30.AA", "a b.c.d"] {
            assert_eq!(
                CompactJws::parse(bad).unwrap_err(),
                JwsError::Malformed,
                "{bad}"
            );
        }
    }
}
