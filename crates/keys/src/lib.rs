//! Where podseal's keys are kept, outside the I/O-free core: today, files.
//!
//! [`key_file`] reads and writes key files with the permission checks every
//! podseal binary applies (a private key readable by group or others is
//! treated as leaked), and creates new ones only whole and never over
//! another. Nothing else is here yet: a key provider that keeps a key where
//! it cannot be copied (a PKCS#11 token, an OpenBao/Vault transit engine)
//! will go beside it, handing the core an
//! [`podseal_core::key_provider::OrgKeyProvider`].
#![deny(missing_docs)]

pub mod key_file;
