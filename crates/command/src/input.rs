//! Reading secrets and capsules from stdin or files, with size limits and
//! errors that name the file.

use std::io::{IsTerminal, Read};
use std::path::Path;

use podseal_core::armor;
use podseal_core::capsule::{Capsule, MAX_PLAINTEXT_LEN};
use podseal_core::secret::Plaintext;
use zeroize::Zeroizing;

use crate::error::CliError;

/// Reads one secret from `source` ("-" = stdin), at most 1 MiB, not empty.
pub fn read_secret(source: &str) -> Result<Plaintext, CliError> {
    let (bytes, what) = if source == "-" {
        if std::io::stdin().is_terminal() {
            return Err(CliError::usage("refusing to read a secret from a terminal")
                .hint("pipe the secret in (printf %s \"$SECRET\" | podseal seal …) or use --from-file PATH"));
        }
        (
            read_limited(std::io::stdin().lock(), MAX_PLAINTEXT_LEN, "stdin")?,
            "stdin".to_owned(),
        )
    } else {
        let path = Path::new(source);
        let file = std::fs::File::open(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
        (
            read_limited(file, MAX_PLAINTEXT_LEN, &path.display().to_string())?,
            path.display().to_string(),
        )
    };
    if bytes.is_empty() {
        return Err(CliError::usage(format!("the secret from {what} is empty"))
            .hint("nothing to seal: check the pipe or file"));
    }
    let mut bytes = bytes;
    // Move the buffer (no copy) into the zeroizing plaintext type.
    Ok(Plaintext::new(std::mem::take(&mut *bytes)))
}

/// Reads at most `limit` bytes. The buffer is allocated once at full size so
/// that reading never reallocates (which would leave unzeroized copies).
fn read_limited(
    reader: impl Read,
    limit: usize,
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut buffer = Zeroizing::new(Vec::with_capacity(limit.saturating_add(1)));
    let limit_plus_one = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit_plus_one)
        .read_to_end(&mut buffer)
        .map_err(|e| CliError::usage(format!("cannot read {what}: {e}")))?;
    if buffer.len() > limit {
        return Err(CliError::usage(format!(
            "the input from {what} is over the {limit}-byte limit"
        )));
    }
    Ok(buffer)
}

/// Reads a capsule given as text, a file path, or "-" for stdin (every
/// command that takes a capsule reads stdin when none is given).
pub fn read_capsule(argument: &str) -> Result<Capsule, CliError> {
    let text = if argument == "-" {
        if std::io::stdin().is_terminal() {
            return Err(CliError::usage("no capsule given, and stdin is a terminal")
                .hint("pass a capsule or a file holding one, or pipe one in (`… < db.capsule`)"));
        }
        let bytes = read_limited(std::io::stdin().lock(), armor::MAX_ARMORED_LEN, "stdin")?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| CliError::usage("stdin is not a text capsule"))?
    } else if armor::looks_like_capsule(argument) {
        argument.to_owned()
    } else {
        let path = Path::new(argument);
        if !path.exists() {
            return Err(CliError::usage(format!(
                "`{}` is neither a capsule nor an existing file",
                shorten(argument)
            ))
            .hint("capsules start with `podseal:v1:`; pass a file path, or '-' to read stdin"));
        }
        let file = std::fs::File::open(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
        let bytes = read_limited(file, armor::MAX_ARMORED_LEN, &path.display().to_string())?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| CliError::usage(format!("{} is not a text capsule", path.display())))?
    };
    Ok(Capsule::from_armored(&text)?)
}

fn shorten(text: &str) -> String {
    let short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}
