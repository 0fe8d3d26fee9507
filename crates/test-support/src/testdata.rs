//! For tests only (feature `test-support`): where the published test data
//! lives. Tests read vectors from the repository's own `testdata/` first,
//! then from `../shared/testdata/` beside the checkout (or `PODSEAL_TESTDATA`),
//! and never paste them into the source.

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

/// The repository's own test-data directory (published sets added with the
/// code that uses them; each named in its README).
pub fn repo_testdata_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// Where a test-data file is: the repository's `testdata/` if it holds it,
/// otherwise the shared directory.
pub fn testdata_path(relative: &str) -> PathBuf {
    let own = repo_testdata_dir().join(relative);
    if own.is_file() {
        own
    } else {
        shared_testdata_dir().join(relative)
    }
}

/// Reads and parses a JSON test-data file (see [`testdata_path`]), panicking with the path.
pub fn shared_json(relative: &str) -> serde_json::Value {
    let path = testdata_path(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("test data {} is required: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("test data {} is not JSON: {e}", path.display()))
}
