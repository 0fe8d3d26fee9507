//! The podseal release server.
//!
//! [`startup::start`] wires a [`config::ServerConfig`] into a running HTTPS
//! server: [`api`] (release and admin routes, problem+json), [`release`]
//! (the four gates of [`gate`], sessions, re-wrap), [`admin`], [`nonce`],
//! [`metrics`], the signed [`audit_log`], [`storage`] (SQLite), and for each
//! registered cluster its connection ([`cluster`]), token verifier
//! ([`identity`]) and watch-based [`pod_view`]. See `docs/design.md` §3–§5
//! and §8.
#![deny(missing_docs)]

pub mod admin;
pub mod api;
pub mod audit_log;
pub mod cluster;
pub mod config;
pub mod gate;
pub mod group_commit;
pub mod identity;
pub mod metrics;
pub mod nonce;
pub mod pod_view;
pub mod release;
pub mod startup;
pub mod storage;
pub mod tls;
