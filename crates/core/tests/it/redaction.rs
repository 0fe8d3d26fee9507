//! No secret in `Debug` (issue 24 §5): every public type that holds key
//! material or a secret prints without it, in any encoding a derived
//! `Debug` or a careless format would use. Replacing a hand-written
//! `Debug` with a derive fails here.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use podseal_core::audit::AuditKey;
use podseal_core::dpop::DpopKey;
use podseal_core::hpke::{KemId, LocalPrivateKey};
use podseal_core::org_key::OrgPrivateKey;
use podseal_core::secret::{Dek, Plaintext};

/// The forms `secret` could take in a formatted value: its bytes as Rust
/// prints a slice or array, hex, base64 with and without padding.
fn forms(secret: &[u8]) -> Vec<String> {
    let list = |bytes: &[u8]| {
        bytes
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        list(&secret[..8.min(secret.len())]),
        hex[..16.min(hex.len())].to_owned(),
        STANDARD.encode(secret)[..12].to_owned(),
        URL_SAFE_NO_PAD.encode(secret)[..12].to_owned(),
    ]
}

fn assert_redacted(what: &str, printed: &str, secret: &[u8]) {
    for form in forms(secret) {
        assert!(
            !printed.contains(&form),
            "{what}'s Debug shows its secret ({form}): {printed}"
        );
    }
}

#[test]
fn key_material_is_never_in_debug() {
    for kem in [KemId::X25519HkdfSha256, KemId::P256HkdfSha256] {
        let local = LocalPrivateKey::generate(kem).unwrap();
        let secret = local.secret_bytes();
        assert_redacted(
            "LocalPrivateKey",
            &format!("{local:?}"),
            secret.expose_secret_bytes(),
        );
        assert_redacted(
            "SecretKeyBytes",
            &format!("{secret:?}"),
            secret.expose_secret_bytes(),
        );

        let org = OrgPrivateKey::generate(kem).unwrap();
        let text = org.to_text();
        let printed = format!("{org:?}");
        assert!(!printed.contains(text.as_str()), "{printed}");
        let encoded = text.rsplit(':').next().unwrap();
        assert!(
            !printed.contains(&encoded[..12]),
            "OrgPrivateKey's Debug shows its key text: {printed}"
        );
    }

    let audit = AuditKey::generate().unwrap();
    let text = audit.to_text();
    let printed = format!("{audit:?}");
    let encoded = text.trim().rsplit(':').next().unwrap();
    assert!(
        !printed.contains(&encoded[..12]),
        "AuditKey's Debug shows its key text: {printed}"
    );

    let dpop = DpopKey::generate().unwrap();
    assert!(format!("{dpop:?}").contains("[redacted]"));
}

#[test]
fn secrets_are_never_in_debug_or_display() {
    let dek = Dek::generate().unwrap();
    assert_redacted("Dek", &format!("{dek:?}"), dek.expose_secret_bytes());
    let plaintext = Plaintext::new(b"correct horse battery staple".to_vec());
    let printed = format!("{plaintext:?} {plaintext}");
    assert!(!printed.contains("horse"), "{printed}");
    assert_redacted("Plaintext", &printed, plaintext.expose_secret_bytes());
}
