//! For podseal's tests only (a dev-dependency, never linked into a binary).
//!
//! - [`testdata`]: the published test data beside the checkout, read at run
//!   time and never pasted into the source.
//! - [`binaries`]: the workspace's built binaries, fresh, for the tests that
//!   run real processes of several of them.
//! - [`canary`]: secrets watched for, raw, hex and base64 at every
//!   alignment, in every byte a test's system wrote.
//! - [`cases`]: a table of named cases run in order, one line of output
//!   each, a failure named by its case.
//! - [`closed_pipe`]: a command run with its stdout a pipe already closed
//!   (`| head -1`), and the quiet end every binary must make of it.
//! - [`freed_memory`]: an allocator that searches freed blocks for a
//!   watched secret, the hook behind the zeroize-on-drop tests.
//! - [`fixtures`]: values many tests build alike (the seal parameters).
//! - [`provision`]: the tools the tests need and a fresh machine may lack
//!   (PostgreSQL started, OpenBao and schemathesis installed), set up
//!   idempotently, so `cargo test --workspace` passes with nothing run first.
//!   A tool that cannot be provisioned fails the test; nothing is skipped.
#![allow(
    clippy::panic,
    clippy::expect_used,
    reason = "test support: a missing tool or vector file must fail the test loudly"
)]

pub mod binaries;
pub mod canary;
pub mod cases;
pub mod closed_pipe;
pub mod fixtures;
pub mod freed_memory;
pub mod provision;
pub mod testdata;
