//! Custody of org private keys, behind one small trait.
//!
//! The envelope code asks a provider for "the key with this kid" and gets an
//! HPKE [`RecipientKey`], which only performs a Diffie-Hellman. A key file
//! ([`KeyRing`]) is the first provider; a PKCS#11 token is the next, and it
//! slots in without any change to the capsule code because the private key
//! never has to leave wherever it lives.

use crate::capsule::Kid;
use crate::hpke::RecipientKey;
use crate::org_key::OrgPrivateKey;

/// Where org private keys are kept.
pub trait OrgKeyProvider {
    /// The recipient key with this kid, if this provider holds it.
    fn recipient(&self, kid: &Kid) -> Option<&dyn RecipientKey>;
    /// Every kid this provider can open (not secret).
    fn kids(&self) -> Vec<Kid>;
}

/// Org private keys loaded into memory from key files. Old keys stay here for
/// opening after a new key becomes the one used for sealing.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<OrgPrivateKey>,
}

impl KeyRing {
    /// An empty key ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key; a second copy of the same kid is ignored.
    pub fn add(&mut self, key: OrgPrivateKey) {
        if !self.keys.iter().any(|k| k.kid() == key.kid()) {
            self.keys.push(key);
        }
    }
}

impl From<OrgPrivateKey> for KeyRing {
    fn from(key: OrgPrivateKey) -> Self {
        Self { keys: vec![key] }
    }
}

impl OrgKeyProvider for KeyRing {
    fn recipient(&self, kid: &Kid) -> Option<&dyn RecipientKey> {
        self.keys
            .iter()
            .find(|k| k.kid() == kid)
            .map(OrgPrivateKey::recipient)
    }

    fn kids(&self) -> Vec<Kid> {
        self.keys.iter().map(|k| k.kid().clone()).collect()
    }
}
