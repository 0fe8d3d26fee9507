//! The text armor of a capsule: `podseal:v1:` followed by unpadded base64url.
//!
//! Armor errors are detailed on purpose: a capsule is public data, and a user
//! who pasted half of one deserves to hear which half is missing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The armor prefix of every capsule this version writes.
pub const PREFIX: &str = "podseal:v1:";

/// The largest armored capsule accepted (room for a 1 MiB secret).
pub const MAX_ARMORED_LEN: usize = 1_500_000;

/// Why armored text is not a capsule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmorError {
    /// The input is empty.
    #[error("capsule is empty")]
    Empty,
    /// The text does not start with `podseal:`.
    #[error("not a podseal capsule: it must start with `{PREFIX}`")]
    MissingPrefix,
    /// A `podseal:vN:` capsule of a version this build does not read.
    #[error("capsule format version `{0}` is not supported (this build reads v1)")]
    UnsupportedVersion(String),
    /// The text is longer than any capsule this build writes.
    #[error("capsule is {len} bytes, over the {MAX_ARMORED_LEN}-byte limit")]
    TooLarge {
        /// Length of the input.
        len: usize,
    },
    /// The body is not canonical unpadded base64url.
    #[error("capsule body is not valid base64url (unpadded, URL-safe alphabet)")]
    Base64,
}

/// Armors a binary capsule body.
pub fn encode(body: &[u8]) -> String {
    let mut text = String::with_capacity(PREFIX.len() + body.len().div_ceil(3) * 4);
    text.push_str(PREFIX);
    URL_SAFE_NO_PAD.encode_string(body, &mut text);
    text
}

/// Strips the armor. Surrounding whitespace is ignored; inner whitespace is not.
pub fn decode(text: &str) -> Result<Vec<u8>, ArmorError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ArmorError::Empty);
    }
    if text.len() > MAX_ARMORED_LEN {
        return Err(ArmorError::TooLarge { len: text.len() });
    }
    let Some(rest) = text.strip_prefix("podseal:") else {
        return Err(ArmorError::MissingPrefix);
    };
    let Some(body) = rest.strip_prefix("v1:") else {
        let version = rest.split(':').next().unwrap_or_default();
        let version: String = version.chars().take(16).collect();
        return Err(ArmorError::UnsupportedVersion(version));
    };
    URL_SAFE_NO_PAD.decode(body).map_err(|_| ArmorError::Base64)
}

/// True when `text` looks like a capsule (used to pick capsules out of an
/// environment): the prefix is present, whatever the rest holds.
pub fn looks_like_capsule(text: &str) -> bool {
    text.trim_start().starts_with("podseal:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let body = b"\x00\x01binary\xff";
        assert_eq!(decode(&encode(body)).unwrap(), body);
        assert_eq!(decode(&format!("  {}\n", encode(body))).unwrap(), body);
        assert_eq!(decode(""), Err(ArmorError::Empty));
        assert_eq!(decode("age1qqq"), Err(ArmorError::MissingPrefix));
        assert_eq!(
            decode("podseal:v2:AAAA"),
            Err(ArmorError::UnsupportedVersion("v2".into()))
        );
        assert_eq!(decode("podseal:v1:AA=="), Err(ArmorError::Base64));
        assert_eq!(decode("podseal:v1:AA+/"), Err(ArmorError::Base64));
        // Non-canonical trailing bits are refused, so one body has one text.
        assert_eq!(decode("podseal:v1:AB"), Err(ArmorError::Base64));
    }
}
