//! For tests only (feature `test-support`): where the published test data
//! lives. Tests read vectors from the repository's own `testdata/` (each set
//! with its source, version and licence in a README), or from the directory
//! `PODSEAL_TESTDATA` names, and never paste them into the source. A clone
//! runs its tests with nothing beside it.

#![allow(
    clippy::panic,
    reason = "test support: a missing vector file must fail the test loudly"
)]

use std::path::PathBuf;

/// The test-data directory: `PODSEAL_TESTDATA`, else the repository's
/// `testdata/`.
pub fn testdata_dir() -> PathBuf {
    match std::env::var_os("PODSEAL_TESTDATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata"),
    }
}

/// Where a test-data file is.
pub fn testdata_path(relative: &str) -> PathBuf {
    testdata_dir().join(relative)
}

/// Reads and parses a JSON test-data file (see [`testdata_path`]), panicking with the path.
pub fn shared_json(relative: &str) -> serde_json::Value {
    let path = testdata_path(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("test data {} is required: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("test data {} is not JSON: {e}", path.display()))
}
