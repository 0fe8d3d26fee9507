//! The operator's command, `podseal`: org keys, sealing, inspecting and
//! break-glass opening of capsules, the audit log's offline checks, and the
//! admin API of a release server (clusters, API keys, policies, audit
//! export). It links no server, storage engine or stand-in: the release
//! server is `podseal-server`, the pod side `podseal-exec`, and the demo,
//! stand-in cluster and load benchmark `podseal-dev`.
#![deny(missing_docs)]

#[allow(
    missing_docs,
    reason = "clap turns doc comments into help text; flattened and subcommand fields have none"
)]
pub mod cli;
pub mod commands;
pub mod manifest;
