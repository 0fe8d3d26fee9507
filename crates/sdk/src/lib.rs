//! The pod-side podseal SDK (not yet built).
//!
//! It will generate the Ed25519 DPoP key and the X25519 recipient key in RAM,
//! establish a release session with the server, ask for DEKs re-wrapped to the
//! recipient key, and decrypt capsules locally into zeroizing plaintext types
//! (through `podseal_core::envelope::open_release`). `podseal exec` builds on it.
