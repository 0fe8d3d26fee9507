//! A local stand-in for the Kubernetes API subset podseal uses (not yet built).
//!
//! It will serve OIDC discovery and the JWKS, the TokenRequest API, and pod
//! get/list/watch in real Kubernetes JSON shapes over HTTPS, so that the demo
//! and the tests exercise the same client code the server uses against a real
//! cluster.
