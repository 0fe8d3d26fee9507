//! Leak canaries: secrets a test watches for, searched in every byte the
//! system under test wrote.
//!
//! A secret is searched raw, as lowercase and uppercase hex, and as
//! standard and URL-safe base64 at each of the three byte alignments (a
//! secret that starts one or two bytes into a base64-encoded buffer encodes
//! to different characters; the characters that mix in bytes around it are
//! left out, so each needle matches wherever the secret sits). A hit names
//! the secret, the encoding and where it was found, never the secret.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// The shortest secret a needle is made for: shorter ones would match by
/// chance in megabytes of logs.
pub const MIN_SECRET_LEN: usize = 12;

/// The secrets watched, each as every needle it can appear as.
#[derive(Default)]
pub struct Canary {
    needles: Vec<Needle>,
    secrets: Vec<String>,
}

struct Needle {
    secret: String,
    encoding: String,
    bytes: Vec<u8>,
}

/// A random canary value, as text a program can take on stdin: 32 random
/// bytes, hex (so that it is a plaintext any tool passes through).
pub fn random_text() -> String {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes.
pub fn random_bytes() -> Vec<u8> {
    let mut bytes = vec![0_u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes
}

impl Canary {
    /// Nothing watched yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Watches `secret`, called `name` in a hit. Panics on a secret shorter
    /// than [`MIN_SECRET_LEN`] (a test that watches one is wrong).
    pub fn watch(&mut self, name: &str, secret: &[u8]) {
        assert!(
            secret.len() >= MIN_SECRET_LEN,
            "canary {name}: a secret of {} bytes is too short to search for",
            secret.len()
        );
        self.secrets.push(name.to_owned());
        let mut add = |encoding: String, bytes: Vec<u8>| {
            self.needles.push(Needle {
                secret: name.to_owned(),
                encoding,
                bytes,
            });
        };
        add("raw".into(), secret.to_vec());
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        add("HEX".into(), hex.to_uppercase().into_bytes());
        add("hex".into(), hex.into_bytes());
        for (alphabet, engine) in [("base64", STANDARD_NO_PAD), ("base64url", URL_SAFE_NO_PAD)] {
            for offset in 0..3 {
                add(
                    format!("{alphabet} at offset {offset}"),
                    base64_needle(&engine, secret, offset),
                );
            }
        }
    }

    /// Watches an org private key's raw bytes, given its text form (the
    /// bytes are its last `:`-separated part, base64url): the raw needles
    /// find it anywhere, and the base64url one finds the text form too.
    pub fn watch_org_key(&mut self, name: &str, key_text: &str) {
        let encoded = key_text.trim().rsplit(':').next().unwrap_or_default();
        let raw = URL_SAFE_NO_PAD
            .decode(encoded)
            .expect("an org private key's text form");
        self.watch(name, &raw);
    }

    /// The names watched, in order.
    pub fn names(&self) -> &[String] {
        &self.secrets
    }

    /// How many needles are searched for.
    pub fn needle_count(&self) -> usize {
        self.needles.len()
    }

    /// Every needle found in `haystack`, as "SECRET (ENCODING) in WHERE".
    pub fn hits(&self, place: &str, haystack: &[u8]) -> Vec<String> {
        self.needles
            .iter()
            .filter(|n| contains(haystack, &n.bytes))
            .map(|n| format!("{} ({}) in {place}", n.secret, n.encoding))
            .collect()
    }

    /// Every needle found in every file below `dir` (recursively, following
    /// no symbolic link), except `exempt`: files whose purpose is to hold one
    /// of the secrets (a token file, an API key file). Returns the hits and
    /// the number of files and bytes searched.
    pub fn hits_in_dir(&self, dir: &Path, exempt: &[PathBuf]) -> (Vec<String>, Searched) {
        let mut hits = Vec::new();
        let mut searched = Searched::default();
        for file in files(dir) {
            if exempt.iter().any(|e| e == &file) {
                continue;
            }
            // A file that vanished while being listed (a temporary file, a
            // WAL checkpointed away) holds nothing now; any other file that
            // cannot be read fails the search rather than going unsearched.
            let bytes = match std::fs::read(&file) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("the canary cannot read {}: {e}", file.display()),
            };
            searched.files += 1;
            searched.bytes += bytes.len();
            hits.extend(self.hits(&file.display().to_string(), &bytes));
        }
        (hits, searched)
    }
}

/// How much a search covered.
#[derive(Debug, Default, Clone, Copy)]
pub struct Searched {
    /// Files read.
    pub files: usize,
    /// Bytes read.
    pub bytes: usize,
}

/// Every regular file below `dir`.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            out.extend(files(&path));
        } else if kind.is_file() {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The base64 characters that encode `secret` when it starts `offset`
/// bytes after a 3-byte boundary of the encoded buffer: the characters that
/// hold bits of the bytes before or after it are left out.
fn base64_needle(engine: &base64::engine::GeneralPurpose, secret: &[u8], offset: usize) -> Vec<u8> {
    let mut buffer = vec![0_u8; offset];
    buffer.extend_from_slice(secret);
    let encoded = engine.encode(&buffer).into_bytes();
    let first = (offset * 8).div_ceil(6);
    let last = (buffer.len() * 8) / 6;
    encoded.get(first..last).unwrap_or_default().to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret inside a base64-encoded buffer is found whatever its
    /// alignment, in either alphabet, and in hex of either case.
    #[test]
    fn a_secret_is_found_in_every_encoding_at_every_alignment() {
        let secret = random_bytes();
        let mut canary = Canary::new();
        canary.watch("dek", &secret);
        for before in 0..6 {
            for after in 0..4 {
                let mut buffer = random_bytes()[..before].to_vec();
                buffer.extend_from_slice(&secret);
                buffer.extend_from_slice(&random_bytes()[..after]);
                for (alphabet, text) in [
                    (
                        "base64",
                        base64::engine::general_purpose::STANDARD.encode(&buffer),
                    ),
                    ("base64url", URL_SAFE_NO_PAD.encode(&buffer)),
                ] {
                    let hits = canary.hits("log", format!("x={text};").as_bytes());
                    assert!(
                        hits.iter()
                            .any(|h| h.contains(&format!("({alphabet} at offset"))),
                        "{alphabet} with {before} bytes before and {after} after: {hits:?}"
                    );
                }
            }
        }
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(canary.hits("log", hex.as_bytes()).len(), 1);
        assert_eq!(canary.hits("log", hex.to_uppercase().as_bytes()).len(), 1);
        assert_eq!(canary.hits("log", &secret).len(), 1);
    }

    /// Bytes that hold no secret give no hit, and a hit never prints the
    /// secret.
    #[test]
    fn a_hit_names_the_secret_not_its_bytes() {
        let secret = random_text();
        let mut canary = Canary::new();
        canary.watch("api key", secret.as_bytes());
        assert!(canary.hits("log", random_text().as_bytes()).is_empty());
        let hits = canary.hits("server.log", format!("key={secret}").as_bytes());
        assert_eq!(hits, ["api key (raw) in server.log"]);
        assert!(!hits.concat().contains(&secret));
    }
}
