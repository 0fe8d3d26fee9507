//! The server's audit log: the Ed25519 audit key (a 0600 file beside its
//! public half), signed checkpoints at an interval and on demand, and the
//! export — which always ends with a fresh checkpoint, so `audit verify`
//! can tell a cut tail from a complete log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use podseal_core::audit::{AuditKey, Checkpoint, ExportLine, public_key_text};
use podseal_core::key_file::{KeyFileError, read_secret_text, write_new};

use std::collections::BTreeMap;

use podseal_core::audit::{AuditRecord, Outcome};

use crate::gate::Refusal;
use crate::identity::WorkloadIdentity;
use crate::storage::{Storage, StorageError};

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
}

/// Loads `DIR/audit.key`, or creates it (0600) and `DIR/audit.pub` on first start.
pub fn load_or_create_key(dir: &Path) -> Result<AuditKey, AuditLogError> {
    let key_path = dir.join(AUDIT_KEY_FILE);
    if key_path.exists() {
        let text = read_secret_text(&key_path)?;
        return AuditKey::from_text(&text).ok_or(AuditLogError::KeyFile(KeyFileError::Format {
            path: key_path,
            reason: "not a podseal audit key",
        }));
    }
    let key = AuditKey::generate()?;
    let private = format!(
        "# podseal audit signing key. Signs audit checkpoints; keep it with the server, never share it.\n{}\n",
        key.to_text().as_str()
    );
    write_new(&key_path, private.as_bytes(), 0o600)?;
    let public = format!(
        "# podseal audit public key: give it to whoever runs `podseal audit verify`.\n{}\n",
        public_key_text(&key.public_key())
    );
    write_new(&dir.join(AUDIT_PUBLIC_KEY_FILE), public.as_bytes(), 0o644)?;
    Ok(key)
}

/// The audit context of one request, filled in as gates pass.
#[derive(Default, Clone)]
pub(crate) struct AuditContext {
    details: BTreeMap<String, String>,
}

impl AuditContext {
    pub(crate) fn set(&mut self, key: &str, value: impl Into<String>) {
        self.details.insert(key.to_owned(), value.into());
    }

    pub(crate) fn identity(&mut self, identity: &WorkloadIdentity) {
        self.set("namespace", &identity.namespace);
        self.set("service_account", &identity.service_account);
        self.set("pod", &identity.pod_name);
        self.set("pod_uid", &identity.pod_uid);
    }

    pub(crate) fn record(
        &self,
        event: &str,
        outcome: Outcome,
        refusal: Option<&Refusal>,
    ) -> AuditRecord {
        AuditRecord {
            seq: 0,
            time_ms: jiff::Timestamp::now().as_millisecond(),
            event: event.to_owned(),
            outcome,
            gate: refusal.map(|r| r.gate.code().to_owned()),
            reason: refusal.map(|r| r.reason.to_owned()),
            details: self.details.clone(),
        }
    }
}

/// Loads a given audit key file (0600; never created here) and writes its
/// public half to `public_file`, for `audit verify`.
pub fn load_key_file(key_file: &Path, public_file: &Path) -> Result<AuditKey, AuditLogError> {
    let text = read_secret_text(key_file)?;
    let key = AuditKey::from_text(&text).ok_or(AuditLogError::KeyFile(KeyFileError::Format {
        path: key_file.to_owned(),
        reason: "not a podseal audit key",
    }))?;
    let public = format!(
        "# podseal audit public key: give it to whoever runs `podseal audit verify`.\n{}\n",
        public_key_text(&key.public_key())
    );
    let temp = public_file.with_extension("tmp");
    std::fs::write(&temp, public)
        .and_then(|()| std::fs::rename(&temp, public_file))
        .map_err(|e| {
            AuditLogError::KeyFile(KeyFileError::Write {
                path: public_file.to_owned(),
                source: e,
            })
        })?;
    Ok(key)
}

/// Signs checkpoints over the log in storage.
pub struct AuditLog<S: Storage> {
    storage: Arc<S>,
    key: AuditKey,
    origin: String,
}

impl<S: Storage> AuditLog<S> {
    /// The log of `storage`, signed with `key` under the name `origin`.
    pub fn new(storage: Arc<S>, key: AuditKey, origin: String) -> Self {
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

    /// Signs and stores a checkpoint over the current head (none for an empty log).
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditLogError> {
        let (size, head) = self.storage.audit_head().await?;
        if size == 0 {
            return Ok(None);
        }
        let checkpoint = self.key.checkpoint(
            &self.origin,
            size,
            &head,
            jiff::Timestamp::now().as_millisecond(),
        );
        self.storage.put_checkpoint(checkpoint.clone()).await?;
        Ok(Some(checkpoint))
    }

    /// The whole log, ending with a checkpoint signed now. Records appended
    /// after that checkpoint (the server keeps running) are left for the next
    /// export, so what is exported always ends signed.
    pub async fn export(&self) -> Result<Vec<ExportLine>, AuditLogError> {
        let signed = self.checkpoint().await?.map_or(0, |c| c.size);
        let mut lines = self.storage.audit_export().await?;
        lines.retain(|line| match line {
            ExportLine::Record { seq, .. } => *seq <= signed,
            ExportLine::Checkpoint(checkpoint) => checkpoint.size <= signed,
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
    use crate::storage::SqliteStorage;
    use podseal_core::audit::{AuditRecord, Outcome, parse_public_key, verify_export};
    use std::os::unix::fs::PermissionsExt as _;

    #[tokio::test]
    async fn the_key_is_created_once_and_exports_verify_with_its_public_half() {
        let dir = tempfile::TempDir::new().unwrap();
        let key = load_or_create_key(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(AUDIT_KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            load_or_create_key(dir.path()).unwrap().public_key(),
            key.public_key(),
            "reloaded, not replaced"
        );
        let public = parse_public_key(
            &std::fs::read_to_string(dir.path().join(AUDIT_PUBLIC_KEY_FILE)).unwrap(),
        )
        .unwrap();

        let storage = Arc::new(SqliteStorage::open(&dir.path().join("db")).unwrap());
        let log = AuditLog::new(storage.clone(), key, "test".into());
        assert!(
            log.checkpoint().await.unwrap().is_none(),
            "nothing to sign yet"
        );
        let record = AuditRecord {
            seq: 0,
            time_ms: 1,
            event: "unwrap".into(),
            outcome: Outcome::Allowed,
            gate: None,
            reason: None,
            details: Default::default(),
        };
        storage
            .append_audit(vec![record.clone(), record.clone()])
            .await
            .unwrap();
        log.checkpoint().await.unwrap();
        storage.append_audit(vec![record]).await.unwrap();
        // The export signs the tail it ends with: all three records are covered.
        let lines: Vec<String> = log
            .export()
            .await
            .unwrap()
            .iter()
            .map(|l| serde_json::to_string(l).unwrap())
            .collect();
        let report = verify_export(&lines.join("\n"), &public, Some(3)).unwrap();
        assert_eq!((report.records, report.checkpoints), (3, 2));
        // Without its final line the tail is unsigned.
        assert!(verify_export(&lines[..lines.len() - 1].join("\n"), &public, None).is_err());
    }

    #[test]
    fn a_readable_audit_key_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        load_or_create_key(dir.path()).unwrap();
        std::fs::set_permissions(
            dir.path().join(AUDIT_KEY_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(matches!(
            load_or_create_key(dir.path()),
            Err(AuditLogError::KeyFile(
                KeyFileError::InsecurePermissions { .. }
            ))
        ));
    }
}
