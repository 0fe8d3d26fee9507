//! DHKEM (RFC 9180 §4.1) over X25519 and P-256, with the recipient's
//! Diffie-Hellman behind [`RecipientKey`].
//!
//! Splitting the KEM at the DH is what lets the org private key move into an
//! HSM later: the token computes the DH, and the `ExtractAndExpand` key
//! schedule around it stays here, checked against the RFC 9180 vectors.

use p256::elliptic_curve::sec1::ToSec1Point;
use zeroize::Zeroizing;

use super::HpkeError;
use super::kdf::{KdfId, labeled_expand, labeled_extract};
use crate::secret::SecretKeyBytes;

/// RFC 9180 KEM identifiers podseal implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KemId {
    /// DHKEM(X25519, HKDF-SHA256) (0x0020), podseal's default.
    X25519HkdfSha256,
    /// DHKEM(P-256, HKDF-SHA256) (0x0010), for keys held in an HSM.
    P256HkdfSha256,
}

impl KemId {
    /// The two-byte identifier of RFC 9180 §7.1.
    pub const fn id(self) -> u16 {
        match self {
            Self::X25519HkdfSha256 => 0x0020,
            Self::P256HkdfSha256 => 0x0010,
        }
    }

    /// Looks up an identifier; `None` for any KEM podseal does not implement.
    pub const fn from_id(id: u16) -> Option<Self> {
        match id {
            0x0020 => Some(Self::X25519HkdfSha256),
            0x0010 => Some(Self::P256HkdfSha256),
            _ => None,
        }
    }

    /// The name used in key files and `inspect` output.
    pub const fn name(self) -> &'static str {
        match self {
            Self::X25519HkdfSha256 => "X25519-HKDF-SHA256",
            Self::P256HkdfSha256 => "P256-HKDF-SHA256",
        }
    }

    /// Short name used in key files.
    pub const fn short_name(self) -> &'static str {
        match self {
            Self::X25519HkdfSha256 => "x25519",
            Self::P256HkdfSha256 => "p256",
        }
    }

    /// Looks up a short name.
    pub fn from_short_name(name: &str) -> Option<Self> {
        [Self::X25519HkdfSha256, Self::P256HkdfSha256]
            .into_iter()
            .find(|kem| kem.short_name() == name)
    }

    /// `Npk` = `Nenc`: the length of a serialized public key.
    pub const fn public_key_len(self) -> usize {
        match self {
            Self::X25519HkdfSha256 => 32,
            Self::P256HkdfSha256 => 65,
        }
    }

    /// `Nsk`: the length of a serialized private key.
    pub const fn private_key_len(self) -> usize {
        32
    }

    const fn shared_secret_len(self) -> usize {
        32
    }

    const KDF: KdfId = KdfId::HkdfSha256;

    fn suite_id(self) -> [u8; 5] {
        let [hi, lo] = self.id().to_be_bytes();
        [b'K', b'E', b'M', hi, lo]
    }
}

/// The recipient's half of the KEM: its public key, and a Diffie-Hellman with
/// its private key that never has to leave wherever that key is kept.
pub trait RecipientKey {
    /// Which KEM the key belongs to.
    fn kem(&self) -> KemId;
    /// `SerializePublicKey(pkR)`.
    fn public_key_bytes(&self) -> &[u8];
    /// `DH(skR, DeserializePublicKey(peer_public))`: validates the peer key
    /// and returns the raw shared value, refusing an all-zero result.
    fn diffie_hellman(&self, peer_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, HpkeError>;
}

enum LocalSecret {
    X25519(x25519_dalek::StaticSecret),
    P256(p256::SecretKey),
}

/// A KEM private key held in this process's memory (a key file's key, a
/// pod's ephemeral recipient key, or an HPKE sender's ephemeral key).
pub struct LocalPrivateKey {
    secret: LocalSecret,
    public: Vec<u8>,
}

impl std::fmt::Debug for LocalPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalPrivateKey({}, [redacted])", self.kem().name())
    }
}

impl LocalPrivateKey {
    /// `DeriveKeyPair(ikm)` of RFC 9180 §7.1.3.
    pub fn derive(kem: KemId, ikm: &[u8]) -> Result<Self, HpkeError> {
        let suite = kem.suite_id();
        let prk = labeled_extract(KemId::KDF, &suite, b"", b"dkp_prk", ikm);
        match kem {
            KemId::X25519HkdfSha256 => {
                let sk = labeled_expand(KemId::KDF, &suite, &prk, b"sk", b"", 32)?;
                Self::from_secret_bytes(kem, &sk)
            }
            KemId::P256HkdfSha256 => {
                for counter in 0u8..=255 {
                    let candidate =
                        labeled_expand(KemId::KDF, &suite, &prk, b"candidate", &[counter], 32)?;
                    // The P-256 bitmask is 0xff: every candidate byte is kept.
                    if let Ok(key) = Self::from_secret_bytes(kem, &candidate) {
                        return Ok(key);
                    }
                }
                Err(HpkeError::DeriveKeyPair)
            }
        }
    }

    /// `GenerateKeyPair()`: `DeriveKeyPair` over fresh random bytes, so the
    /// generated and the test-vector paths are the same code.
    pub fn generate(kem: KemId) -> Result<Self, HpkeError> {
        let mut ikm = Zeroizing::new([0u8; 32]);
        crate::fill_random(ikm.as_mut()).map_err(|_| HpkeError::RandomnessUnavailable)?;
        Self::derive(kem, ikm.as_ref())
    }

    /// `DeserializePrivateKey`: refuses the wrong length or, for P-256, a
    /// scalar that is zero or not below the group order.
    pub fn from_secret_bytes(kem: KemId, bytes: &[u8]) -> Result<Self, HpkeError> {
        match kem {
            KemId::X25519HkdfSha256 => {
                let raw: [u8; 32] = bytes.try_into().map_err(|_| HpkeError::InvalidPrivateKey)?;
                let secret = x25519_dalek::StaticSecret::from(raw);
                let public = x25519_dalek::PublicKey::from(&secret).as_bytes().to_vec();
                Ok(Self {
                    secret: LocalSecret::X25519(secret),
                    public,
                })
            }
            KemId::P256HkdfSha256 => {
                if bytes.len() != 32 {
                    return Err(HpkeError::InvalidPrivateKey);
                }
                let secret =
                    p256::SecretKey::from_slice(bytes).map_err(|_| HpkeError::InvalidPrivateKey)?;
                let public = secret.public_key().to_sec1_point(false).as_bytes().to_vec();
                Ok(Self {
                    secret: LocalSecret::P256(secret),
                    public,
                })
            }
        }
    }

    /// `SerializePrivateKey`, for writing a key file.
    pub fn secret_bytes(&self) -> SecretKeyBytes {
        match &self.secret {
            LocalSecret::X25519(s) => SecretKeyBytes::new(s.to_bytes().to_vec()),
            LocalSecret::P256(s) => SecretKeyBytes::new(s.to_bytes().to_vec()),
        }
    }
}

impl RecipientKey for LocalPrivateKey {
    fn kem(&self) -> KemId {
        match self.secret {
            LocalSecret::X25519(_) => KemId::X25519HkdfSha256,
            LocalSecret::P256(_) => KemId::P256HkdfSha256,
        }
    }

    fn public_key_bytes(&self) -> &[u8] {
        &self.public
    }

    fn diffie_hellman(&self, peer_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
        let kem = self.kem();
        let shared = match &self.secret {
            LocalSecret::X25519(secret) => {
                let raw: [u8; 32] = peer_public
                    .try_into()
                    .map_err(|_| HpkeError::InvalidPublicKey { kem })?;
                let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(raw));
                // RFC 9180 §7.1.4: an all-zero X25519 output must abort.
                if !shared.was_contributory() {
                    return Err(HpkeError::LowOrderPeerKey);
                }
                shared.as_bytes().to_vec()
            }
            LocalSecret::P256(secret) => {
                let peer = parse_p256_public(peer_public)?;
                let shared =
                    p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
                shared.raw_secret_bytes().to_vec()
            }
        };
        Ok(Zeroizing::new(shared))
    }
}

/// `DeserializePublicKey` for P-256: uncompressed SEC1 only, on the curve,
/// not the identity.
fn parse_p256_public(bytes: &[u8]) -> Result<p256::PublicKey, HpkeError> {
    let kem = KemId::P256HkdfSha256;
    if bytes.len() != kem.public_key_len() || bytes.first() != Some(&0x04) {
        return Err(HpkeError::InvalidPublicKey { kem });
    }
    p256::PublicKey::from_sec1_bytes(bytes).map_err(|_| HpkeError::InvalidPublicKey { kem })
}

/// Checks that `bytes` is a public key of `kem` podseal will encrypt to.
///
/// For X25519 this is stricter than RFC 7748, which defines a result for any
/// 32 bytes: a key must be the canonical encoding of a u-coordinate (below
/// 2^255 − 19, high bit clear; `NonCanonicalPublic` in Wycheproof), and not a
/// point of small order on the curve or its twist (`LowOrderPublic`): every
/// DH with such a point is all zero, so whoever holds the message learns the
/// key. Twist points of large order are accepted: X25519 gives them a shared
/// secret no one without the private key can compute (RFC 7748 §5).
pub fn validate_public_key(kem: KemId, bytes: &[u8]) -> Result<(), HpkeError> {
    match kem {
        KemId::X25519HkdfSha256 => validate_x25519_public(bytes),
        KemId::P256HkdfSha256 => parse_p256_public(bytes).map(|_| ()),
    }
}

/// 2^255 − 19, little-endian: the first value that is not a canonical u.
const X25519_P: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// The u-coordinates, canonically encoded, of every point of small order on
/// Curve25519 and its twist: 0 (the point of order 2, and the identity's
/// encoding), 1 (order 4 on the curve), the two points of order 8 (which
/// double to 1), and p − 1 (order 4 on the twist, whose cofactor is 4, so it
/// has no point of order 8). This is
/// libsodium's `has_small_order` list (`crypto_scalarmult/curve25519/ref10`,
/// the same as in Bernstein's cr.yp.to/ecdh.html and in Cremers and Jackson,
/// "Prime, Order Please!", CSF 2019) without its non-canonical entries p and p + 1, which
/// the canonical check refuses first. Any scalar times one of these is the
/// all-zero value RFC 7748 §6.1 tells implementations to check for; the test
/// below checks each entry that way, and the Wycheproof `LowOrderPublic`
/// cases check that no point is missing.
const X25519_SMALL_ORDER: [[u8; 32]; 5] = [
    [0; 32],
    {
        let mut one = [0; 32];
        one[0] = 1;
        one
    },
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    {
        let mut p_minus_one = X25519_P;
        p_minus_one[0] = 0xec;
        p_minus_one
    },
];

/// No scalar multiplication: a public key is refused by comparing its
/// encoding with p and with the short list above. The DH that uses the key
/// (the seal's `Encap`, the recipient's `Decap`) refuses an all-zero result
/// on its own as well (RFC 9180 §7.1.4).
fn validate_x25519_public(bytes: &[u8]) -> Result<(), HpkeError> {
    let kem = KemId::X25519HkdfSha256;
    let raw: [u8; 32] = bytes
        .try_into()
        .map_err(|_| HpkeError::InvalidPublicKey { kem })?;
    // Little-endian comparison, most significant byte first; the high bit
    // (set only in encodings at or above 2^255) makes `raw` exceed p too.
    let canonical = raw.iter().rev().lt(X25519_P.iter().rev());
    if !canonical {
        return Err(HpkeError::InvalidPublicKey { kem });
    }
    if X25519_SMALL_ORDER.contains(&raw) {
        return Err(HpkeError::LowOrderPeerKey);
    }
    Ok(())
}

/// The KEM's output: the shared secret and the encapsulated key.
pub(crate) struct Encapsulation {
    pub(crate) shared_secret: Zeroizing<Vec<u8>>,
    pub(crate) enc: Vec<u8>,
}

/// `Encap(pkR)` with the ephemeral key derived from `ikm_e`
/// (random in use, fixed by the test vectors).
pub(crate) fn encap_with_ikm(
    kem: KemId,
    recipient_public: &[u8],
    ikm_e: &[u8],
) -> Result<Encapsulation, HpkeError> {
    let ephemeral = LocalPrivateKey::derive(kem, ikm_e)?;
    let dh = ephemeral.diffie_hellman(recipient_public)?;
    let enc = ephemeral.public_key_bytes().to_vec();
    let shared_secret = extract_and_expand(kem, &dh, &enc, recipient_public)?;
    Ok(Encapsulation { shared_secret, enc })
}

/// `Decap(enc, skR)`, with the DH done wherever the recipient key lives.
pub(crate) fn decap(
    enc: &[u8],
    recipient: &dyn RecipientKey,
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    let kem = recipient.kem();
    if enc.len() != kem.public_key_len() {
        return Err(HpkeError::InvalidPublicKey { kem });
    }
    let dh = recipient.diffie_hellman(enc)?;
    extract_and_expand(kem, &dh, enc, recipient.public_key_bytes())
}

fn extract_and_expand(
    kem: KemId,
    dh: &[u8],
    enc: &[u8],
    recipient_public: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    let suite = kem.suite_id();
    let mut kem_context = Vec::with_capacity(enc.len() + recipient_public.len());
    kem_context.extend_from_slice(enc);
    kem_context.extend_from_slice(recipient_public);
    let eae_prk = labeled_extract(KemId::KDF, &suite, b"", b"eae_prk", dh);
    labeled_expand(
        KemId::KDF,
        &suite,
        &eae_prk,
        b"shared_secret",
        &kem_context,
        kem.shared_secret_len(),
    )
}

#[cfg(test)]
mod tests {
    //! Every Wycheproof X25519 vector through [`LocalPrivateKey`]'s DH.
    //!
    //! Wycheproof marks the 31 all-zero shared secrets `acceptable`; podseal
    //! chooses to refuse them (RFC 9180 §7.1.4). Every other vector must
    //! produce exactly the expected shared value.
    use super::*;
    use crate::test_vectors::{hex, load_json};

    #[test]
    fn wycheproof_x25519_through_the_wrapper() {
        let file = load_json("wycheproof/x25519_test.json");
        let (mut agreed, mut refused_zero) = (0, 0);
        for group in file["testGroups"].as_array().unwrap() {
            for test in group["tests"].as_array().unwrap() {
                let id = &test["tcId"];
                let key = LocalPrivateKey::from_secret_bytes(
                    KemId::X25519HkdfSha256,
                    &hex(&test["private"]),
                )
                .unwrap();
                let expected = hex(&test["shared"]);
                let zero = expected.iter().all(|b| *b == 0);
                assert!(
                    test["result"] != "invalid",
                    "file has no invalid X25519 vectors"
                );
                match key.diffie_hellman(&hex(&test["public"])) {
                    Ok(shared) => {
                        assert!(!zero, "tcId {id}: all-zero shared secret accepted");
                        assert_eq!(*shared, expected, "tcId {id}");
                        agreed += 1;
                    }
                    Err(e) => {
                        assert!(zero, "tcId {id}: refused a non-zero shared secret: {e}");
                        assert_eq!(e, HpkeError::LowOrderPeerKey);
                        refused_zero += 1;
                    }
                }
            }
        }
        assert_eq!(
            agreed + refused_zero,
            file["numberOfTests"].as_u64().unwrap()
        );
        assert_eq!(
            refused_zero, 31,
            "the README counts 31 ZeroSharedSecret vectors"
        );
    }

    /// Every Wycheproof X25519 public key flagged `LowOrderPublic` or
    /// `NonCanonicalPublic` is refused as a public key; every other one
    /// (twist points of large order included) is accepted.
    #[test]
    fn wycheproof_low_order_and_non_canonical_x25519_public_keys_are_refused() {
        let kem = KemId::X25519HkdfSha256;
        let file = load_json("wycheproof/x25519_test.json");
        let (mut low_order, mut non_canonical, mut refused, mut accepted, mut twist) =
            (0, 0, 0, 0, 0);
        for group in file["testGroups"].as_array().unwrap() {
            for test in group["tests"].as_array().unwrap() {
                let id = &test["tcId"];
                let flags: Vec<&str> = test["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap())
                    .collect();
                let is_low_order = flags.contains(&"LowOrderPublic");
                let is_non_canonical = flags.contains(&"NonCanonicalPublic");
                low_order += usize::from(is_low_order);
                non_canonical += usize::from(is_non_canonical);
                let public = hex(&test["public"]);
                match validate_public_key(kem, &public) {
                    Err(e) => {
                        assert!(
                            is_low_order || is_non_canonical,
                            "tcId {id} {flags:?}: refused a valid key: {e}"
                        );
                        // A low-order point may also be a non-canonical
                        // encoding (unflagged as such): either error refuses.
                        if is_non_canonical {
                            assert_eq!(e, HpkeError::InvalidPublicKey { kem }, "tcId {id}");
                        } else {
                            assert!(
                                matches!(
                                    e,
                                    HpkeError::LowOrderPeerKey | HpkeError::InvalidPublicKey { .. }
                                ),
                                "tcId {id}: {e}"
                            );
                        }
                        refused += 1;
                    }
                    Ok(()) => {
                        assert!(
                            !is_low_order && !is_non_canonical,
                            "tcId {id} {flags:?}: hostile public key accepted"
                        );
                        twist += usize::from(flags.contains(&"Twist"));
                        accepted += 1;
                    }
                }
            }
        }
        assert_eq!((low_order, non_canonical), (31, 19), "flag counts");
        assert_eq!(refused, 44, "the union of the two flags");
        assert_eq!(refused + accepted, file["numberOfTests"].as_u64().unwrap());
        assert!(twist > 0, "twist points of large order are accepted");
        // A generated key is canonical and of large order.
        let generated = LocalPrivateKey::generate(kem).unwrap();
        validate_public_key(kem, generated.public_key_bytes()).unwrap();
    }

    /// Each listed point is of small order (a DH with it is all zero, so the
    /// KEM's own check refuses it in `Encap` and `Decap` too), is refused as
    /// a public key, and so is each of its non-canonical encodings below 2^256.
    #[test]
    fn the_small_order_list_holds_only_small_order_points_and_all_are_refused() {
        let kem = KemId::X25519HkdfSha256;
        let key = LocalPrivateKey::generate(kem).unwrap();
        for point in X25519_SMALL_ORDER {
            assert_eq!(key.diffie_hellman(&point), Err(HpkeError::LowOrderPeerKey));
            assert_eq!(
                encap_with_ikm(kem, &point, &[7; 32]).err(),
                Some(HpkeError::LowOrderPeerKey)
            );
            assert_eq!(
                validate_public_key(kem, &point),
                Err(HpkeError::LowOrderPeerKey)
            );
            // u + p and u + 2p where they fit in 32 bytes (high bit included).
            let mut u = point;
            for _ in 0..2 {
                let mut carry = 0u16;
                for (byte, p) in u.iter_mut().zip(X25519_P) {
                    let sum = u16::from(*byte) + u16::from(p) + carry;
                    *byte = sum.to_le_bytes()[0];
                    carry = sum >> 8;
                }
                if carry == 0 {
                    assert_eq!(
                        validate_public_key(kem, &u),
                        Err(HpkeError::InvalidPublicKey { kem })
                    );
                }
            }
        }
    }

    #[test]
    fn p256_public_keys_must_be_uncompressed_points_on_the_curve() {
        let key = LocalPrivateKey::generate(KemId::P256HkdfSha256).unwrap();
        let public = key.public_key_bytes().to_vec();
        assert!(validate_public_key(KemId::P256HkdfSha256, &public).is_ok());
        let mut compressed = vec![0x02 | (public[64] & 1)];
        compressed.extend_from_slice(&public[1..33]);
        assert!(validate_public_key(KemId::P256HkdfSha256, &compressed).is_err());
        let mut off_curve = public.clone();
        off_curve[64] ^= 1;
        assert!(key.diffie_hellman(&off_curve).is_err());
        assert!(key.diffie_hellman(&[0u8; 1]).is_err());
    }
}
