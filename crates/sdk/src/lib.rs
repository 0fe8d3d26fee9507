//! The client side of podseal: what runs in the pod.
//!
//! [`client::Client`] generates an Ed25519 DPoP key and an X25519 recipient
//! key in RAM (never serialised), opens a release session through the four
//! gates, asks for DEKs re-wrapped to its recipient key, and decrypts
//! capsules locally into [`Plaintext`](podseal_core::secret::Plaintext),
//! which zeroizes on drop and never prints. [`blocking::BlockingClient`]
//! wraps it for programs without an async runtime. [`https`] is the
//! HTTPS client (TLS 1.3; CA, system roots or a pinned certificate
//! fingerprint); [`memory`] hardens the process best effort. [`admin`] is
//! the typed client of the admin API, for the tools that administer a
//! server (it is not used in a pod).
//!
//! ```no_run
//! # async fn example(capsule: podseal_core::capsule::Capsule) -> Result<(), podseal_sdk::client::SdkError> {
//! let client = podseal_sdk::client::Client::from_env()?; // PODSEAL_SERVER, PODSEAL_CA_FILE, ...
//! let secret = client.open(&capsule).await?;
//! use_password(secret.expose_secret_bytes());
//! # Ok(()) }
//! # fn use_password(_: &[u8]) {}
//! ```
#![deny(missing_docs)]

pub mod admin;
pub mod blocking;
pub mod client;
pub mod https;
pub mod memory;
pub mod protocol;
