//! Reading and writing org key files, with the permission checks every
//! podseal binary applies.
//!
//! A private key file must be a regular file that neither group nor others
//! can read or write (mode 0600 or 0400), as ssh insists for its keys: a key
//! that others could read is treated as already leaked. The mode is checked
//! on the opened file, so a swap between check and read is not possible.
//! New key files are created exclusively; nothing is ever overwritten.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use podseal_core::org_key::{OrgKeyError, OrgPrivateKey, OrgPublicKey};

/// The largest key file read.
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// File name of the private key written by [`write_key_pair`].
pub const PRIVATE_KEY_FILE: &str = "org.key";
/// File name of the public key written by [`write_key_pair`].
pub const PUBLIC_KEY_FILE: &str = "org.pub";

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file does not exist.
    #[error("{what} {} does not exist", .path.display())]
    NotFound {
        /// What the file should hold ("private key file", "admin token file", …).
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// Reading failed.
    #[error("cannot read {what} {}: {source}", .path.display())]
    Read {
        /// What the file should hold.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a regular file.
    #[error("{what} {} is not a regular file", .path.display())]
    NotAFile {
        /// What the file should hold.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A private key readable or writable by group or others.
    #[error("{what} {} has mode {mode:04o}; it holds a secret, so group and others must have no access", .path.display())]
    InsecurePermissions {
        /// What the file should hold.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },
    /// Larger than any key file.
    #[error("{what} {} is too large (at most 64 KiB)", .path.display())]
    TooLarge {
        /// What the file should hold.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The contents are not the expected key.
    #[error("key file {}: {source}", .path.display())]
    Parse {
        /// The path.
        path: PathBuf,
        /// What is wrong with the contents.
        source: OrgKeyError,
    },
    /// The contents are not the expected key format.
    #[error("key file {}: {reason}", .path.display())]
    Format {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// Refusing to overwrite.
    #[error("{} already exists; refusing to overwrite a key", .path.display())]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// Writing failed.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl KeyFileError {
    /// A hint for the person at the terminal, when there is a useful one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::InsecurePermissions { path, .. } => {
                Some(format!("run `chmod 600 {}`", path.display()))
            }
            Self::Parse {
                source: OrgKeyError::PrivateWhereOnlyPublic,
                ..
            } => Some(format!(
                "pass the public key file (`{PUBLIC_KEY_FILE}`) instead"
            )),
            Self::Parse {
                source: OrgKeyError::PublicWherePrivate,
                ..
            } => Some(format!(
                "pass the private key file (`{PRIVATE_KEY_FILE}`) instead"
            )),
            Self::NotFound { what, .. } if what.contains("org") => {
                Some("create a key pair with `podseal keys init --out DIR`".into())
            }
            Self::Exists { .. } => {
                Some("choose another directory, or move the existing key away first".into())
            }
            _ => None,
        }
    }
}

/// Reads an org public key file.
pub fn read_public_key(path: &Path) -> Result<OrgPublicKey, KeyFileError> {
    let (text, _mode) = read_key_text(path, "org public key file")?;
    OrgPublicKey::from_text(&text).map_err(|source| KeyFileError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Reads an org private key file, refusing one that others can access.
/// A public key handed over by mistake is reported as such before its mode.
pub fn read_private_key(path: &Path) -> Result<OrgPrivateKey, KeyFileError> {
    let (text, mode) = read_key_text(path, "org private key file")?;
    let parsed = OrgPrivateKey::from_text(&text);
    if let Err(source @ OrgKeyError::PublicWherePrivate) = parsed {
        return Err(KeyFileError::Parse {
            path: path.to_owned(),
            source,
        });
    }
    if mode & 0o077 != 0 {
        return Err(KeyFileError::InsecurePermissions {
            what: "org private key file",
            path: path.to_owned(),
            mode,
        });
    }
    parsed.map_err(|source| KeyFileError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Reads any secret text file with the same checks as a private key: a
/// regular file, at most 64 KiB, no access for group or others. `what`
/// names the file in errors ("admin token file", "audit key file", …).
pub fn read_secret_text(
    path: &Path,
    what: &'static str,
) -> Result<Zeroizing<String>, KeyFileError> {
    let (text, mode) = read_key_text(path, what)?;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::InsecurePermissions {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    Ok(text)
}

/// Reads a key file and the permission bits of the opened handle.
fn read_key_text(
    path: &Path,
    what: &'static str,
) -> Result<(Zeroizing<String>, u32), KeyFileError> {
    let mut file = File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => KeyFileError::NotFound {
            what,
            path: path.to_owned(),
        },
        _ => KeyFileError::Read {
            what,
            path: path.to_owned(),
            source,
        },
    })?;
    let metadata = file.metadata().map_err(|source| KeyFileError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(KeyFileError::NotAFile {
            what,
            path: path.to_owned(),
        });
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if metadata.len() > MAX_KEY_FILE_LEN {
        return Err(KeyFileError::TooLarge {
            what,
            path: path.to_owned(),
        });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    Read::by_ref(&mut file)
        .take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| KeyFileError::Read {
            what,
            path: path.to_owned(),
            source,
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyFileError::Parse {
        path: path.to_owned(),
        source: OrgKeyError::NoKeyLine {
            expected: "a podseal key (the file is not text)",
        },
    })?;
    Ok((Zeroizing::new(text.to_owned()), mode))
}

/// Writes `DIR/org.key` (0600) and `DIR/org.pub` (0644), creating `DIR`
/// (0700) if needed. Refuses if either file exists; on failure nothing is
/// left behind.
pub fn write_key_pair(
    dir: &Path,
    key: &OrgPrivateKey,
    created: &str,
) -> Result<(PathBuf, PathBuf), KeyFileError> {
    let private_path = dir.join(PRIVATE_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    for path in [&private_path, &public_path] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyFileError::Exists { path: path.clone() });
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| KeyFileError::Write {
            path: dir.to_owned(),
            source,
        })?;

    let kid = key.kid();
    let private_text = Zeroizing::new(format!(
        "# podseal org PRIVATE key. Anyone holding this file can open every capsule sealed to it.\n\
         # Keep it on the release server (or move it into an HSM); never commit it.\n\
         # kid: {kid}\n# created: {created}\n{}\n",
        key.to_text().as_str()
    ));
    let public_text = format!(
        "# podseal org public key; safe to share and commit. Seal with:\n\
         #   podseal seal --key {PUBLIC_KEY_FILE} ...\n\
         # kid: {kid}\n# created: {created}\n{}\n",
        key.public().to_text()
    );
    write_new(&private_path, private_text.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public_path, public_text.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&private_path);
        return Err(e);
    }
    Ok((private_path, public_path))
}

/// Creates `path` exclusively with `mode` and writes `contents`, synced;
/// refuses an existing file and removes a partial one.
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyFileError> {
    let write_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AlreadyExists => KeyFileError::Exists {
            path: path.to_owned(),
        },
        _ => KeyFileError::Write {
            path: path.to_owned(),
            source,
        },
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(write_error)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(source) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(KeyFileError::Write {
            path: path.to_owned(),
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use podseal_core::hpke::KemId;

    /// Every mode that gives group or others any access: each is refused.
    /// (0644 alone would pass a check narrowed to others' bits.)
    const LOOSE: [u32; 7] = [0o640, 0o620, 0o610, 0o604, 0o602, 0o601, 0o660];

    fn file_with(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_secret_file_any_group_or_other_may_access_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        for mode in LOOSE {
            let path = file_with(dir.path(), &format!("token-{mode:o}"), "psa_x", mode);
            let refused = read_secret_text(&path, "admin token file");
            assert!(
                matches!(refused, Err(KeyFileError::InsecurePermissions { mode: m, .. }) if m == mode),
                "mode {mode:o}: {refused:?}"
            );
        }
        for mode in [0o600, 0o400] {
            let path = file_with(dir.path(), &format!("ok-{mode:o}"), "psa_x", mode);
            assert_eq!(
                read_secret_text(&path, "admin token file")
                    .unwrap()
                    .as_str(),
                "psa_x"
            );
        }
    }

    #[test]
    fn an_org_private_key_any_group_or_other_may_access_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        let key = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
        for mode in LOOSE {
            let path = file_with(
                dir.path(),
                &format!("org-{mode:o}.key"),
                &key.to_text(),
                mode,
            );
            assert!(
                matches!(
                    read_private_key(&path),
                    Err(KeyFileError::InsecurePermissions { .. })
                ),
                "mode {mode:o}"
            );
        }
        let path = file_with(dir.path(), "org.key", &key.to_text(), 0o600);
        assert_eq!(
            read_private_key(&path).unwrap().public().to_text(),
            key.public().to_text()
        );
    }
}
