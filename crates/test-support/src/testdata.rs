//! For tests only (feature `test-support`): where the published test data
//! lives. Tests read vectors from `../shared/testdata/` beside the checkout,
//! or from `PODSEAL_TESTDATA`, and never paste them into the source.

#![allow(
    clippy::panic,
    reason = "test support: a missing vector file must fail the test loudly"
)]

use std::path::PathBuf;

/// The shared test-data directory.
pub fn shared_testdata_dir() -> PathBuf {
    match std::env::var_os("PODSEAL_TESTDATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata"),
    }
}

/// Reads and parses a JSON file of the shared test data, panicking with the path.
pub fn shared_json(relative: &str) -> serde_json::Value {
    let path = shared_testdata_dir().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("test data {} is required: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("test data {} is not JSON: {e}", path.display()))
}
