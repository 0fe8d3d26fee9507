//! The podseal release server.
//!
//! [`startup::start`] wires a [`config::ServerConfig`] into a running HTTPS
//! server: [`api`] (release and admin routes, problem+json), [`release`]
//! (the four gates of [`gate`], sessions, re-wrap), [`admin`], [`nonce`],
//! [`metrics`], the signed [`audit_log`], [`storage`] (release, admin and
//! audit state; SQLite and PostgreSQL), and the [`cluster`] registry: for
//! each registered cluster its connection, token verifier ([`identity`]) and
//! watch-based [`pod_view`] ([`api_server_error`] tells their failures). `podseal-server` (`src/bin/`) is its binary.
//! See `docs/design.md` §3–§5 and §8, and `docs/architecture.md`.
#![deny(missing_docs)]

pub mod admin;
pub mod api;
pub mod api_server_error;
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
pub mod request_audit;
pub mod startup;
pub mod storage;
