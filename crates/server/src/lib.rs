//! The podseal release server.
//!
//! Built so far: the connection to a registered cluster ([`cluster`]) and the
//! watch-based pod view that gate 4 reads ([`pod_view`]). Still to come (see
//! `docs/design.md` §3–§5): the HTTPS API, the four gates, release sessions,
//! the DEK re-wrap through `podseal_core::envelope`, the admin API, the
//! hash-chained audit log and the storage engines.
#![deny(missing_docs)]

pub mod admin;
pub mod api;
pub mod audit_log;
pub mod cluster;
pub mod config;
pub mod gate;
pub mod identity;
pub mod metrics;
pub mod nonce;
pub mod pod_view;
pub mod release;
pub mod serve;
pub mod storage;
pub mod tls;
