//! Client side of podseal.
//!
//! Built so far: [`transport`], the HTTPS client every podseal client uses
//! to reach the release server (TLS 1.3, the server's CA pinned from a file
//! or the system roots, a timeout on every request). The admin CLI is its
//! first user.
//!
//! To come: the pod SDK proper — generate the Ed25519 DPoP key and the
//! X25519 recipient key in RAM, establish a release session, ask for DEKs
//! re-wrapped to the recipient key, and decrypt capsules locally into
//! zeroizing plaintext types (through `podseal_core::envelope::open_release`).
#![deny(missing_docs)]

pub mod transport;
