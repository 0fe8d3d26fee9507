//! The server's audit log: the Ed25519 audit key (a 0600 file beside its
//! public half), the log's origin (its name in every checkpoint), signed
//! checkpoints (C2SP signed notes over the Merkle tree's root) at an
//! interval and on demand, and the export — which always ends with a fresh
//! checkpoint, so `audit verify` can tell a cut tail from a complete log.
//! Records reach the log through the one [`AuditWriter`].

mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use podseal_core::audit::legacy::ChainCheckpoint;
use podseal_core::audit::{
    AuditKey, Checkpoint, ExportLine, LogOrigin, key_rotation_record, parse_public_key,
    public_key_text, verifier_key_text,
};
use podseal_keys::key_file::{KeyFileError, read_secret_text, write_new};

use crate::storage::{Storage, StorageError};
pub use writer::AuditWriter;

/// File name of the audit private key.
pub const AUDIT_KEY_FILE: &str = "audit.key";
/// File name of the audit public key.
pub const AUDIT_PUBLIC_KEY_FILE: &str = "audit.pub";

/// Why the audit log could not be set up or signed.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    /// The key file could not be read or written.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The system random generator failed.
    #[error("cannot generate an audit key: {0}")]
    Random(#[from] podseal_core::RandomnessUnavailable),
    /// The log has records but its key is gone: a new key would fork it.
    #[error(
        "the audit log holds {records} record(s) but its key {} is missing; restore it (a new key would fork the log)", .path.display()
    )]
    KeyMissing {
        /// Where the key should be.
        path: PathBuf,
        /// Records in the log.
        records: u64,
    },
    /// The key did not sign the latest checkpoint: another log's key.
    #[error(
        "the audit key {} did not sign this log's latest checkpoint (over {size} records): it is not this log's key; restore the right key, or hand the log over with audit.rotate_to_key_file while the old key is configured", .path.display()
    )]
    KeyMismatch {
        /// The key file.
        path: PathBuf,
        /// The latest checkpoint's size.
        size: u64,
    },
    /// The key is not the one `audit.pub` publishes.
    #[error("the audit key {} is not the key {} publishes; restore the right key", .key.display(), .public.display())]
    PublicKeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The public key file.
        public: PathBuf,
    },
    /// The configured origin is not the one the log's checkpoints name.
    #[error(
        "audit.origin is {configured:?} but this log's checkpoints name it {logged:?}: the origin is the log's name, which verifiers pin; set audit.origin = {logged:?}"
    )]
    OriginMismatch {
        /// The configured origin.
        configured: String,
        /// The latest checkpoint's origin.
        logged: String,
    },
    /// `audit.pub` is there, its private half is not.
    #[error(
        "{} exists but the audit key {} does not: restore the key (or, for a new empty log, remove {} first)", .public.display(), .key.display(), .public.display()
    )]
    PublicWithoutKey {
        /// The key file.
        key: PathBuf,
        /// The public key file.
        public: PathBuf,
    },
}

fn read_key(path: &Path) -> Result<AuditKey, AuditLogError> {
    let text = read_secret_text(path, "audit key file")?;
    AuditKey::from_text(&text).ok_or(AuditLogError::KeyFile(KeyFileError::Format {
        path: path.to_owned(),
        reason: "not a podseal audit key",
    }))
}

fn private_text(key: &AuditKey) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(format!(
        "# podseal audit signing key. Signs audit checkpoints; keep it with the server, never share it.\n{}\n",
        key.to_text().as_str()
    ))
}

fn public_text(public_key: &[u8; 32]) -> String {
    format!(
        "# podseal audit public key: give it to whoever runs `podseal audit verify`.\n{}\n",
        public_key_text(public_key)
    )
}

/// Where a server's audit key comes from and goes to.
#[derive(Debug, Clone)]
pub struct AuditKeyPaths {
    /// The key file: `audit.key_file`, or `<state_dir>/audit.key`.
    pub key: PathBuf,
    /// True when the key lives in the state directory (created there on
    /// the first start; replaced there by a rotation).
    pub in_state_dir: bool,
    /// `<state_dir>/audit.pub`, written once and never overwritten.
    pub public: PathBuf,
    /// The key to hand the log over to (`audit.rotate_to_key_file`).
    pub rotate_to: Option<PathBuf>,
}

impl AuditKeyPaths {
    /// The paths for a state directory and the configured key files.
    pub fn new(state_dir: &Path, key_file: Option<&Path>, rotate_to: Option<&Path>) -> Self {
        Self {
            key: key_file.map_or_else(|| state_dir.join(AUDIT_KEY_FILE), Path::to_owned),
            in_state_dir: key_file.is_none(),
            public: state_dir.join(AUDIT_PUBLIC_KEY_FILE),
            rotate_to: rotate_to.map(Path::to_owned),
        }
    }
}

/// The audit key a starting server will sign with, checked against the
/// log it continues, with what is still to be written. Nothing is written
/// until [`StartingKey::commit`], which a start calls only once everything
/// else that can fail has succeeded — so a failed start writes no key.
pub struct StartingKey {
    key: AuditKey,
    paths: AuditKeyPaths,
    /// A key made now for a new, empty log: its files are still to be written.
    generated: bool,
    /// The key to hand the log over to, once `key` has signed the hand-over.
    rotate_to: Option<AuditKey>,
    /// The log was upgraded from the hash chain and has no Merkle
    /// checkpoint yet: `key` signs one over the upgraded log at once.
    upgraded: bool,
}

/// The latest signature over the log: a checkpoint, or, for a log upgraded
/// from the hash chain (schema version 4) and not signed since, the
/// chain's last checkpoint.
enum LatestSigned {
    Note(Checkpoint),
    Chain(ChainCheckpoint),
}

impl LatestSigned {
    fn is_signed_by(&self, public_key: &[u8; 32]) -> bool {
        match self {
            Self::Note(checkpoint) => checkpoint.is_signed_by(public_key),
            Self::Chain(checkpoint) => checkpoint.is_signed_by(public_key),
        }
    }

    fn size(&self) -> u64 {
        match self {
            Self::Note(checkpoint) => checkpoint.size(),
            Self::Chain(checkpoint) => checkpoint.size,
        }
    }
}

impl StartingKey {
    /// Decides the key for the log in `storage`, refusing every key that
    /// would fork it: the key must have signed the latest checkpoint (or,
    /// before the first checkpoint, match `audit.pub`); a missing key is
    /// generated only for a log with no record at all. The origin must be
    /// the one the latest checkpoint names: it is the log's name.
    pub async fn open<S: Storage>(
        storage: &S,
        paths: AuditKeyPaths,
        origin: &LogOrigin,
    ) -> Result<Self, AuditLogError> {
        let configured = if paths.key.exists() || !paths.in_state_dir {
            Some(read_key(&paths.key)?)
        } else {
            None
        };
        let rotate_to = paths.rotate_to.as_deref().map(read_key).transpose()?;
        let latest = match storage.latest_checkpoint().await? {
            Some(checkpoint) if checkpoint.origin() != origin => {
                return Err(AuditLogError::OriginMismatch {
                    configured: origin.to_string(),
                    logged: checkpoint.origin().to_string(),
                });
            }
            Some(checkpoint) => Some(LatestSigned::Note(checkpoint)),
            None => storage.legacy_checkpoint().await?.map(LatestSigned::Chain),
        };
        let upgraded = matches!(latest, Some(LatestSigned::Chain(_)));
        let (records, _) = storage.audit_head().await?;
        let starting = |key, generated, rotate_to| Self {
            key,
            paths: paths.clone(),
            generated,
            rotate_to,
            upgraded,
        };
        if let Some(checkpoint) = latest {
            return match (configured, rotate_to) {
                (Some(key), rotate_to) if checkpoint.is_signed_by(&key.public_key()) => {
                    let rotate_to = rotate_to.filter(|new| new.public_key() != key.public_key());
                    Ok(starting(key, false, rotate_to))
                }
                // Handed over already (by this replica's last start or another's).
                (_, Some(new)) if checkpoint.is_signed_by(&new.public_key()) => {
                    tracing::warn!(
                        key = %paths.rotate_to.as_deref().unwrap_or(&paths.key).display(),
                        "the audit log was handed over to audit.rotate_to_key_file already; set audit.key_file to it"
                    );
                    Ok(starting(new, false, None))
                }
                (None, _) => Err(AuditLogError::KeyMissing {
                    path: paths.key.clone(),
                    records,
                }),
                (Some(_), _) => Err(AuditLogError::KeyMismatch {
                    path: paths.key.clone(),
                    size: checkpoint.size(),
                }),
            };
        }
        // No checkpoint yet: audit.pub, if written, names the log's key.
        let published = match std::fs::read_to_string(&paths.public) {
            Ok(text) => Some(parse_public_key(&text).ok_or(AuditLogError::KeyFile(
                KeyFileError::Format {
                    path: paths.public.clone(),
                    reason: "not a podseal audit public key",
                },
            ))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(AuditLogError::KeyFile(KeyFileError::Read {
                    what: "audit public key file",
                    path: paths.public.clone(),
                    source,
                }));
            }
        };
        match (configured, published) {
            (Some(key), Some(public)) if key.public_key() != public => {
                Err(AuditLogError::PublicKeyMismatch {
                    key: paths.key.clone(),
                    public: paths.public.clone(),
                })
            }
            (Some(key), _) => Ok(starting(key, false, rotate_to)),
            (None, Some(_)) => Err(AuditLogError::PublicWithoutKey {
                key: paths.key.clone(),
                public: paths.public.clone(),
            }),
            (None, None) if records > 0 => Err(AuditLogError::KeyMissing {
                path: paths.key.clone(),
                records,
            }),
            (None, None) => Ok(starting(AuditKey::generate()?, true, None)),
        }
    }

    /// Writes what a new log needs (`audit.key` 0600, then `audit.pub`; both
    /// new files, never over an existing one), and performs a requested
    /// hand-over: a rotation record, a checkpoint over it signed by the old
    /// key, then the new key in use (in the state directory it replaces
    /// `audit.key`, the old one kept beside it as `audit.key.retired-MS`).
    /// A log just upgraded from the hash chain is first signed as a tree by
    /// the key that signed its chain.
    pub async fn commit<S: Storage>(
        self,
        storage: &S,
        origin: &LogOrigin,
    ) -> Result<AuditKey, AuditLogError> {
        let Self {
            key,
            paths,
            generated,
            rotate_to,
            upgraded,
        } = self;
        if generated {
            write_new(&paths.key, private_text(&key).as_bytes(), 0o600)?;
            if let Err(e) = write_new(
                &paths.public,
                public_text(&key.public_key()).as_bytes(),
                0o644,
            ) {
                let _ = std::fs::remove_file(&paths.key);
                return Err(e.into());
            }
        } else if !paths.public.exists() {
            write_new(
                &paths.public,
                public_text(&key.public_key()).as_bytes(),
                0o644,
            )?;
        }
        if upgraded {
            let (size, root) = storage.audit_head().await?;
            storage
                .put_checkpoint(key.checkpoint(origin, size, &root))
                .await?;
            tracing::info!(
                records = size,
                "the audit log, upgraded from its hash chain, is signed as a Merkle tree by the key that signed the chain"
            );
        }
        let Some(new) = rotate_to else {
            return Ok(key);
        };
        let now = jiff::Timestamp::now().as_millisecond();
        // In the state directory the new key is written beside the old one
        // first, so nothing is signed unless it can take the old one's place.
        let next = paths.key.with_extension("key.next");
        if paths.in_state_dir {
            write_new(&next, private_text(&new).as_bytes(), 0o600)?;
        }
        storage
            .append_audit(vec![key_rotation_record(
                &key.public_key(),
                &new.public_key(),
                now,
            )])
            .await?;
        let (size, root) = storage.audit_head().await?;
        storage
            .put_checkpoint(key.checkpoint(origin, size, &root))
            .await?;
        if paths.in_state_dir {
            let retired = paths.key.with_extension(format!("key.retired-{now}"));
            let moved = std::fs::rename(&paths.key, &retired)
                .map_err(|source| (retired.clone(), source))
                .and_then(|()| {
                    std::fs::rename(&next, &paths.key).map_err(|source| (paths.key.clone(), source))
                });
            moved.map_err(|(path, source)| {
                AuditLogError::KeyFile(KeyFileError::Write { path, source })
            })?;
        }
        tracing::warn!(
            records = size,
            "audit log handed over to a new audit key (audited; the old key signed the hand-over)"
        );
        Ok(new)
    }
}

/// Signs checkpoints over the log in storage.
pub struct AuditLog<S: Storage> {
    storage: Arc<S>,
    key: AuditKey,
    origin: LogOrigin,
}

impl<S: Storage> AuditLog<S> {
    /// The log of `storage`, signed with `key` under the name `origin`.
    pub fn new(storage: Arc<S>, key: AuditKey, origin: LogOrigin) -> Self {
        Self {
            storage,
            key,
            origin,
        }
    }

    /// The public key that verifies this log's checkpoints.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }

    /// The note verifier key (`<origin>+<key id>+<key>`) that
    /// transparency-log tools verify this log's checkpoints with.
    pub fn verifier_key(&self) -> String {
        verifier_key_text(&self.origin, &self.key.public_key())
    }

    /// Signs and stores a checkpoint over the current tree (none for an empty log).
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditLogError> {
        let (size, root) = self.storage.audit_head().await?;
        if size == 0 {
            return Ok(None);
        }
        // One checkpoint per size: never replace one (after a key hand-over
        // the old key's checkpoint over the rotation record must stay).
        if let Some(latest) = self.storage.latest_checkpoint().await?
            && latest.size() == size
        {
            return Ok(Some(latest));
        }
        let checkpoint = self.key.checkpoint(&self.origin, size, &root);
        self.storage.put_checkpoint(checkpoint.clone()).await?;
        Ok(Some(checkpoint))
    }

    /// The whole log, ending with a checkpoint signed now. Records appended
    /// after that checkpoint (the server keeps running) are left for the next
    /// export, so what is exported always ends signed.
    pub async fn export(&self) -> Result<Vec<ExportLine>, AuditLogError> {
        let signed = self.checkpoint().await?.map_or(0, |c| c.size());
        let mut lines = self.storage.audit_export().await?;
        lines.retain(|line| match line {
            ExportLine::Record { seq, .. } => *seq <= signed,
            ExportLine::Checkpoint(checkpoint) => checkpoint.size() <= signed,
        });
        Ok(lines)
    }

    /// Signs a checkpoint every `every` until the task is dropped; failures are logged.
    pub async fn run_checkpoints(self: Arc<Self>, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(error) = self.checkpoint().await {
                tracing::error!(%error, "could not sign an audit checkpoint");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use crate::storage::AuditStore as _;
    use crate::storage::SqliteStorage;
    use podseal_core::audit::{AuditRecord, Event, Outcome, parse_public_key, verify_export};
    use std::os::unix::fs::PermissionsExt as _;

    fn origin() -> LogOrigin {
        LogOrigin::new("test").unwrap()
    }

    fn paths(dir: &Path) -> AuditKeyPaths {
        AuditKeyPaths::new(dir, None, None)
    }

    async fn start(
        storage: &SqliteStorage,
        paths: AuditKeyPaths,
    ) -> Result<AuditKey, AuditLogError> {
        StartingKey::open(storage, paths, &origin())
            .await?
            .commit(storage, &origin())
            .await
    }

    fn record() -> AuditRecord {
        AuditRecord {
            seq: 0,
            time_ms: 1,
            event: Event::Unwrap.into(),
            outcome: Outcome::Allowed,
            gate: None,
            reason: None,
            details: Default::default(),
        }
    }

    async fn export_text(log: &AuditLog<SqliteStorage>) -> String {
        let lines: Vec<String> = log
            .export()
            .await
            .unwrap()
            .iter()
            .map(|l| serde_json::to_string(l).unwrap())
            .collect();
        lines.join("\n")
    }

    #[tokio::test]
    async fn the_key_is_created_once_and_exports_verify_with_its_public_half() {
        let dir = tempfile::TempDir::new().unwrap();
        let storage = Arc::new(SqliteStorage::open(&dir.path().join("db")).unwrap());
        let key = start(&storage, paths(dir.path())).await.unwrap();
        let mode = std::fs::metadata(dir.path().join(AUDIT_KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            start(&storage, paths(dir.path()))
                .await
                .unwrap()
                .public_key(),
            key.public_key(),
            "reloaded, not replaced"
        );
        let public = parse_public_key(
            &std::fs::read_to_string(dir.path().join(AUDIT_PUBLIC_KEY_FILE)).unwrap(),
        )
        .unwrap();

        let log = AuditLog::new(storage.clone(), key, origin());
        assert!(
            log.checkpoint().await.unwrap().is_none(),
            "nothing to sign yet"
        );
        storage
            .append_audit(vec![record(), record()])
            .await
            .unwrap();
        log.checkpoint().await.unwrap();
        storage.append_audit(vec![record()]).await.unwrap();
        // The export signs the tail it ends with: all three records are covered.
        let text = export_text(&log).await;
        let report = verify_export(&text, &public, Some(3)).unwrap();
        assert_eq!((report.records, report.checkpoints), (3, 2));
        // Without its final line the tail is unsigned.
        let lines: Vec<&str> = text.lines().collect();
        assert!(verify_export(&lines[..lines.len() - 1].join("\n"), &public, None).is_err());
    }

    #[tokio::test]
    async fn a_start_that_does_not_commit_writes_no_key() {
        let dir = tempfile::TempDir::new().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("db")).unwrap();
        let starting = StartingKey::open(&storage, paths(dir.path()), &origin())
            .await
            .unwrap();
        drop(starting);
        assert!(!dir.path().join(AUDIT_KEY_FILE).exists());
        assert!(!dir.path().join(AUDIT_PUBLIC_KEY_FILE).exists());
    }

    #[tokio::test]
    async fn a_missing_or_foreign_key_is_refused_and_audit_pub_is_never_rewritten() {
        let dir = tempfile::TempDir::new().unwrap();
        let storage = Arc::new(SqliteStorage::open(&dir.path().join("db")).unwrap());
        let key = start(&storage, paths(dir.path())).await.unwrap();
        let public_before = std::fs::read(dir.path().join(AUDIT_PUBLIC_KEY_FILE)).unwrap();
        let log = AuditLog::new(storage.clone(), key, origin());
        storage.append_audit(vec![record()]).await.unwrap();
        log.checkpoint().await.unwrap();

        // Another deployment's key, named by audit.key_file.
        let foreign = dir.path().join("foreign.key");
        write_new(
            &foreign,
            private_text(&AuditKey::generate().unwrap()).as_bytes(),
            0o600,
        )
        .unwrap();
        let named = AuditKeyPaths::new(dir.path(), Some(&foreign), None);
        assert!(matches!(
            start(&storage, named).await,
            Err(AuditLogError::KeyMismatch { size: 1, .. })
        ));
        // The key deleted: refused, twice, and no key is created.
        std::fs::remove_file(dir.path().join(AUDIT_KEY_FILE)).unwrap();
        for _ in 0..2 {
            let error = start(&storage, paths(dir.path())).await.err().unwrap();
            assert!(
                matches!(error, AuditLogError::KeyMissing { records: 1, .. }),
                "{error}"
            );
            assert!(!dir.path().join(AUDIT_KEY_FILE).exists());
        }
        assert_eq!(
            std::fs::read(dir.path().join(AUDIT_PUBLIC_KEY_FILE)).unwrap(),
            public_before
        );
    }

    #[tokio::test]
    async fn before_the_first_checkpoint_audit_pub_names_the_key() {
        let dir = tempfile::TempDir::new().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("db")).unwrap();
        start(&storage, paths(dir.path())).await.unwrap();
        std::fs::remove_file(dir.path().join(AUDIT_KEY_FILE)).unwrap();
        assert!(matches!(
            start(&storage, paths(dir.path())).await,
            Err(AuditLogError::PublicWithoutKey { .. })
        ));
        write_new(
            &dir.path().join(AUDIT_KEY_FILE),
            private_text(&AuditKey::generate().unwrap()).as_bytes(),
            0o600,
        )
        .unwrap();
        assert!(matches!(
            start(&storage, paths(dir.path())).await,
            Err(AuditLogError::PublicKeyMismatch { .. })
        ));
    }

    #[tokio::test]
    async fn a_hand_over_is_audited_signed_by_the_old_key_and_verifies_from_the_first() {
        let dir = tempfile::TempDir::new().unwrap();
        let storage = Arc::new(SqliteStorage::open(&dir.path().join("db")).unwrap());
        let old = start(&storage, paths(dir.path())).await.unwrap();
        let original = parse_public_key(
            &std::fs::read_to_string(dir.path().join(AUDIT_PUBLIC_KEY_FILE)).unwrap(),
        )
        .unwrap();
        let old_public = old.public_key();
        let log = AuditLog::new(storage.clone(), old, origin());
        storage.append_audit(vec![record()]).await.unwrap();
        log.checkpoint().await.unwrap();

        let next = dir.path().join("next.key");
        let next_key = AuditKey::generate().unwrap();
        write_new(&next, private_text(&next_key).as_bytes(), 0o600).unwrap();
        let rotating = AuditKeyPaths::new(dir.path(), None, Some(&next));
        let new = start(&storage, rotating.clone()).await.unwrap();
        assert_eq!(new.public_key(), next_key.public_key());
        let log = AuditLog::new(storage.clone(), new, origin());
        storage.append_audit(vec![record()]).await.unwrap();
        let text = export_text(&log).await;
        assert!(text.contains(Event::AuditKeyRotated.code()));
        let report = verify_export(&text, &original, None).unwrap();
        assert_eq!(report.records, 3);
        // The new key now lives in the state directory; the old one is kept beside it.
        assert_eq!(
            start(&storage, paths(dir.path()))
                .await
                .unwrap()
                .public_key(),
            next_key.public_key()
        );
        let retired = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().contains("retired"))
            .unwrap();
        let old_again = read_key(&retired.path()).unwrap();
        assert_eq!(old_again.public_key(), old_public);
        // Starting again with the rotation still configured does nothing more.
        start(&storage, rotating).await.unwrap();
        assert_eq!(
            verify_export(&export_text(&log).await, &original, None)
                .unwrap()
                .records,
            3
        );
        // The old key can no longer start the server.
        let back = AuditKeyPaths::new(dir.path(), Some(&retired.path()), None);
        assert!(matches!(
            start(&storage, back).await,
            Err(AuditLogError::KeyMismatch { .. })
        ));
    }

    #[tokio::test]
    async fn the_origin_is_the_logs_name_and_cannot_change_under_it() {
        let dir = tempfile::TempDir::new().unwrap();
        let storage = Arc::new(SqliteStorage::open(&dir.path().join("db")).unwrap());
        let key = start(&storage, paths(dir.path())).await.unwrap();
        let log = AuditLog::new(storage.clone(), key, origin());
        storage.append_audit(vec![record()]).await.unwrap();
        log.checkpoint().await.unwrap();
        let renamed = LogOrigin::new("elsewhere.example/audit").unwrap();
        let error = StartingKey::open(storage.as_ref(), paths(dir.path()), &renamed)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&error, AuditLogError::OriginMismatch { logged, .. } if logged == "test"),
            "{error}"
        );
        assert!(
            error.to_string().contains("set audit.origin = \"test\""),
            "{error}"
        );
    }

    /// A database holding the hash chain (schema version 3) of one record
    /// and its chain checkpoint signed by `seed`'s key.
    fn chain_database(path: &Path, seed: &[u8; 32]) {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use ed25519_dalek::Signer as _;
        use podseal_core::audit::legacy;
        let raw = rusqlite::Connection::open(path).unwrap();
        for sql in [
            include_str!("../../migrations/sqlite/0001_init.sql"),
            include_str!("../../migrations/sqlite/0002_cluster_ca_and_token_rules.sql"),
            include_str!("../../migrations/sqlite/0003_session_id_hash.sql"),
        ] {
            raw.execute_batch(sql).unwrap();
        }
        raw.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0);",
        )
        .unwrap();
        let entry = serde_json::to_vec(&AuditRecord { seq: 1, ..record() }).unwrap();
        let head = legacy::chain(&legacy::CHAIN_GENESIS, &entry);
        raw.execute(
            "INSERT INTO audit_log (seq, entry, hash) VALUES (1, ?1, ?2)",
            rusqlite::params![entry, head.to_vec()],
        )
        .unwrap();
        let root = URL_SAFE_NO_PAD.encode(head);
        let note = format!("podseal audit checkpoint v1\npodseal\n1\n{root}\n5\n");
        let signer = ed25519_dalek::SigningKey::from_bytes(seed);
        let checkpoint = legacy::ChainCheckpoint {
            origin: "podseal".into(),
            size: 1,
            root,
            time_ms: 5,
            signature: URL_SAFE_NO_PAD.encode(signer.sign(note.as_bytes()).to_bytes()),
        };
        raw.execute(
            "INSERT INTO audit_checkpoints (size, checkpoint) VALUES (1, ?1)",
            [serde_json::to_string(&checkpoint).unwrap()],
        )
        .unwrap();
    }

    /// Issue 13: after the upgrade to the Merkle tree the key that signed
    /// the chain is still the log's key: another one is refused, the right
    /// one signs the tree at once, and the export verifies with it.
    #[tokio::test]
    async fn an_upgraded_log_keeps_the_key_that_signed_its_chain() {
        let dir = tempfile::TempDir::new().unwrap();
        let seed = [21u8; 32];
        chain_database(&dir.path().join("db"), &seed);
        let storage = Arc::new(SqliteStorage::open(&dir.path().join("db")).unwrap());
        let key_file = dir.path().join("chain.key");
        write_new(
            &key_file,
            private_text(&AuditKey::from_seed(&seed)).as_bytes(),
            0o600,
        )
        .unwrap();
        let foreign = dir.path().join("foreign.key");
        write_new(
            &foreign,
            private_text(&AuditKey::from_seed(&[22; 32])).as_bytes(),
            0o600,
        )
        .unwrap();
        let with = |key: &Path| AuditKeyPaths::new(dir.path(), Some(key), None);
        assert!(matches!(
            start(&storage, with(&foreign)).await,
            Err(AuditLogError::KeyMismatch { size: 1, .. })
        ));
        assert!(storage.latest_checkpoint().await.unwrap().is_none());
        let key = start(&storage, with(&key_file)).await.unwrap();
        let bridge = storage.latest_checkpoint().await.unwrap().unwrap();
        assert_eq!(bridge.size(), 1);
        assert!(bridge.is_signed_by(&key.public_key()));
        let log = AuditLog::new(storage.clone(), key, origin());
        storage.append_audit(vec![record()]).await.unwrap();
        let report = verify_export(&export_text(&log).await, &log.public_key(), Some(2)).unwrap();
        assert_eq!((report.records, report.checkpoints), (2, 2));
        // From now on the Merkle checkpoint decides: the foreign key is still refused.
        assert!(matches!(
            start(&storage, with(&foreign)).await,
            Err(AuditLogError::KeyMismatch { size: 2, .. })
        ));
    }

    #[tokio::test]
    async fn a_readable_audit_key_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("db")).unwrap();
        start(&storage, paths(dir.path())).await.unwrap();
        std::fs::set_permissions(
            dir.path().join(AUDIT_KEY_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(matches!(
            start(&storage, paths(dir.path())).await,
            Err(AuditLogError::KeyFile(
                KeyFileError::InsecurePermissions { .. }
            ))
        ));
    }
}
