//! The podseal release server (not yet built).
//!
//! It will hold the HTTPS API, the four gates of `docs/design.md` §3 (bound API
//! key, projected ServiceAccount token against a pinned JWKS, RAM-only DPoP key
//! pinned per live pod UID, live pod with approved image digests), release
//! sessions, the DEK re-wrap (through `podseal_core::envelope`), the admin API,
//! the hash-chained audit log, storage engines and the Kubernetes pod view.
