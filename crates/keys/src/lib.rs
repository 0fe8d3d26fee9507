//! Where podseal's keys are kept, outside the I/O-free core.
//!
//! [`key_file`] reads and writes key files with the permission checks every
//! podseal binary applies (a private key readable by group or others is
//! treated as leaked). The key providers that keep a key where it cannot be
//! copied (a PKCS#11 token, an OpenBao/Vault transit engine) live beside it
//! and hand the core an [`podseal_core::key_provider::OrgKeyProvider`].
#![deny(missing_docs)]

pub mod key_file;
