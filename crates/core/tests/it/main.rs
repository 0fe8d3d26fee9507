//! Integration tests of podseal-core's public API, one binary of modules.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

mod checkpoint_note;
mod envelope;
mod parsers;
mod redaction;
mod testkit;
