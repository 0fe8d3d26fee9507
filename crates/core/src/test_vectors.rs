//! Loads the published test data in the repository's `testdata/` at run time.
//!
//! Vectors are never pasted into the source: every known-answer test reads the
//! file it names. `PODSEAL_TESTDATA` overrides the directory.

use podseal_test_support::testdata::testdata_dir;

/// Reads a test-data file as text, failing the test with the path if absent.
pub(crate) fn load_text(relative: &str) -> String {
    let path = testdata_dir().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("test data {} is required: {e}", path.display()))
}

/// Reads and parses a JSON test-data file.
pub(crate) fn load_json(relative: &str) -> serde_json::Value {
    serde_json::from_str(&load_text(relative)).expect("test data is valid JSON")
}

/// Decodes a hex string (a JSON string value or plain text).
pub(crate) fn hex<S: AsHexStr + ?Sized>(value: &S) -> Vec<u8> {
    let text = value.as_hex_str();
    assert!(text.len().is_multiple_of(2), "odd-length hex: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Anything a hex string can be read from.
pub(crate) trait AsHexStr {
    fn as_hex_str(&self) -> &str;
}

impl AsHexStr for str {
    fn as_hex_str(&self) -> &str {
        self
    }
}

impl AsHexStr for serde_json::Value {
    fn as_hex_str(&self) -> &str {
        self.as_str().expect("a JSON string of hex")
    }
}
