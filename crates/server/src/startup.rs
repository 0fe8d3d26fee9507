//! `podseal-server`: everything wired from a [`ServerConfig`] — the store,
//! the audit key, the admin token (created and shown once on a new store),
//! the org keys, a pod view per stored cluster, TLS, the API, and the
//! background tasks (checkpoints, purge of expired records). [`start`]
//! returns once the listener is bound; [`Running::shutdown`] stops serving
//! and signs a final checkpoint.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use podseal_core::key_provider::KeyRing;
use podseal_keys::key_file::{KeyFileError, read_private_key};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::admin::{ADMIN_TOKEN_PREFIX, AdminService};
use crate::api::{App, router};
use crate::audit_log::{
    AUDIT_PUBLIC_KEY_FILE, AuditKeyPaths, AuditLog, AuditLogError, AuditWriter, StartingKey,
};
use crate::cluster::ClusterRegistry;
use crate::config::{ConfigError, ServerConfig};
use crate::metrics::Metrics;
use crate::nonce::NonceIssuer;
use crate::pod_view::ViewConfig;
use crate::release::{ReleaseConfig, ReleaseService};
use crate::request_audit::RequestRefusals;
use crate::storage::{Bounded, PostgresStorage, SqliteStorage, Storage, StorageError};
use podseal_https::{self as tls, TlsError, TlsSource};

/// File the development certificate is written to, for clients to trust.
pub const DEV_CERT_FILE: &str = "tls-dev.crt";
/// Its private key, beside it (0600), so the certificate (and the
/// fingerprint clients pinned) survives a restart.
pub const DEV_KEY_FILE: &str = "tls-dev.key";
/// How often expired replay records, pins and sessions are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state directory cannot be made.
    #[error("cannot create the state directory {}: {message}", .path.display())]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A file in the state directory cannot be written.
    #[error("cannot write {what} {}: {message}", .path.display())]
    StateFile {
        /// Which file it is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The audit key failed.
    #[error(transparent)]
    Audit(#[from] AuditLogError),
    /// An org key file failed.
    #[error(transparent)]
    OrgKey(#[from] KeyFileError),
    /// No org key configured.
    #[error(
        "no org key: set org_key_files (or PODSEAL_ORG_KEY_FILES) to the private key file(s) from `podseal keys init`"
    )]
    NoOrgKey,
    /// TLS failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// Randomness failed.
    #[error("the system random generator failed")]
    Random,
}

/// A started server (on SQLite unless said otherwise).
pub struct Running<S: Storage = Bounded<SqliteStorage>> {
    /// The bound address.
    pub addr: SocketAddr,
    /// The new admin token, present only on the start that initialised the store.
    pub admin_token: Option<Zeroizing<String>>,
    /// SHA-256 fingerprint of the serving certificate.
    pub tls_fingerprint: String,
    /// Where the development certificate was written, when one was generated.
    pub dev_cert_file: Option<PathBuf>,
    /// The audit public key file.
    pub audit_public_key_file: PathBuf,
    /// Clusters that could not be connected at start (name, why): they refuse until fixed.
    pub cluster_errors: Vec<(String, String)>,
    release: Arc<ReleaseService<S>>,
    refusals: Arc<RequestRefusals>,
    shutdown: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
    audit_log: Arc<AuditLog<S>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl<S: Storage> Running<S> {
    /// The release service (its clusters' views, for embedding and tests).
    pub fn release(&self) -> &Arc<ReleaseService<S>> {
        &self.release
    }

    /// Writes the audit records of the request refusals counted so far,
    /// ending their window (see [`crate::request_audit`]).
    pub async fn flush_request_refusals(&self) {
        self.refusals.flush(self.release.audit_writer()).await;
    }

    /// Stops accepting connections, stops the background tasks, writes the
    /// request refusals counted so far and signs a final audit checkpoint.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.shutdown.send(());
        let _ = self.served.await;
        for task in &self.background {
            task.abort();
        }
        self.refusals.flush(self.release.audit_writer()).await;
        self.audit_log.checkpoint().await?;
        Ok(())
    }
}

/// The system's reason for a failed file operation in the state
/// directory, a full volume said in words and placed.
fn io_reason(error: &std::io::Error, state_dir: &Path) -> String {
    match error.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => format!(
            "no space left on device: the volume holding the state directory {} is full ({error})",
            state_dir.display()
        ),
        _ => error.to_string(),
    }
}

/// Creates the state directory 0700, or checks an existing one is not
/// open to group or others (it holds the audit key and the database, whose
/// nonce secret and hashes must stay private).
fn create_state_dir(path: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    if path.is_dir() {
        let mode = std::fs::metadata(path)
            .map_err(|e| ServeError::StateDir {
                path: path.to_owned(),
                message: io_reason(&e, path),
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(ServeError::StateDir {
                path: path.to_owned(),
                message: format!(
                    "it is open to group or others (mode {:o}); run chmod 700 on it",
                    mode & 0o777
                ),
            });
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| ServeError::StateDir {
            path: path.to_owned(),
            message: io_reason(&e, path),
        })
}

/// Writes a public file of the state directory atomically and durably
/// (temp file synced, renamed, the directory synced); a failure removes the
/// temp file and names `what` was written.
fn replace_file(
    what: &'static str,
    path: &Path,
    contents: &str,
    state_dir: &Path,
) -> Result<(), ServeError> {
    use std::io::Write as _;
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(contents.as_bytes())
                .and_then(|()| file.sync_all())
        })
        .and_then(|()| std::fs::rename(&temp, path))
        .and_then(|()| sync_parent(path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            ServeError::StateFile {
                what,
                path: path.to_owned(),
                message: io_reason(&e, state_dir),
            }
        })
}

/// Whether the development certificate and key of an earlier start can
/// serve again: both exist, the key is readable by its owner only, and the
/// certificate names every one of `names`.
fn reusable_dev_certificate(cert: &Path, key: &Path, names: &[String]) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let key_private = std::fs::symlink_metadata(key)
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o077 == 0);
    key_private
        && std::fs::read_to_string(cert).is_ok_and(|pem| tls::certificate_names_match(&pem, names))
}

/// [`replace_file`] for a secret: the new file is created 0600 before
/// anything is written to it.
fn replace_secret_file(
    what: &'static str,
    path: &Path,
    contents: &str,
    state_dir: &Path,
) -> Result<(), ServeError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(contents.as_bytes())
                .and_then(|()| file.sync_all())
        })
        .and_then(|()| std::fs::rename(&temp, path))
        .and_then(|()| sync_parent(path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            ServeError::StateFile {
                what,
                path: path.to_owned(),
                message: io_reason(&e, state_dir),
            }
        })
}

/// Makes a rename into `path`'s directory durable: until the directory is
/// synced, a crash (or a disk remounted read-only) can undo the rename and
/// leave the old file, or none, after the new one's bytes were synced.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::File::open(parent)?.sync_all()
}

/// Starts the server described by `config` on SQLite (`storage.engine = "sqlite"`).
pub async fn start(config: ServerConfig) -> Result<Running, ServeError> {
    if config.storage.engine != "sqlite" {
        return Err(ServeError::Config(ConfigError::Invalid(
            "this start needs storage.engine = \"sqlite\"".into(),
        )));
    }
    start_with(config, open_sqlite).await
}

/// Starts the server described by `config` on PostgreSQL (`storage.engine =
/// "postgres"`, the URL in `storage.url_file`).
pub async fn start_postgres(
    config: ServerConfig,
) -> Result<Running<Bounded<PostgresStorage>>, ServeError> {
    start_with(config, open_postgres).await
}

async fn open_sqlite(config: ServerConfig) -> Result<Arc<Bounded<SqliteStorage>>, ServeError> {
    let database = config.database_path();
    if !database.exists() {
        // SQLite gives its -wal and -shm files the database file's mode.
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&database)
            .map_err(|e| ServeError::StateFile {
                what: "the database",
                path: database.clone(),
                message: io_reason(&e, &config.state_dir),
            })?;
    }
    Ok(Arc::new(Bounded::new(
        SqliteStorage::open(&database)?,
        config.storage.timeout(),
    )))
}

async fn open_postgres(config: ServerConfig) -> Result<Arc<Bounded<PostgresStorage>>, ServeError> {
    let Some(path) = &config.storage.url_file else {
        return Err(ServeError::Config(ConfigError::Invalid(
            "storage.engine = \"postgres\" needs storage.url_file (a file holding the postgres:// URL)".into(),
        )));
    };
    let url = podseal_keys::key_file::read_secret_text(path, "storage URL file")?;
    Ok(Arc::new(Bounded::new(
        PostgresStorage::connect(url.trim()).await?,
        config.storage.timeout(),
    )))
}

async fn start_with<S, F>(
    config: ServerConfig,
    open: impl FnOnce(ServerConfig) -> F,
) -> Result<Running<S>, ServeError>
where
    S: Storage,
    F: Future<Output = Result<Arc<S>, ServeError>>,
{
    // Everything that can fail comes before the admin token is created, so a
    // failed first start never consumes a token nobody saw.
    let addr = config.listen_addr()?;
    if config.org_key_files.is_empty() {
        return Err(ServeError::NoOrgKey);
    }
    let mut ring = KeyRing::new();
    for path in &config.org_key_files {
        ring.add(read_private_key(path)?);
    }
    let (source, dev_cert_file) = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert), Some(key)) => (
            TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            None,
        ),
        _ => {
            let mut names = vec![config.external_host(), "localhost".to_owned()];
            names.dedup();
            let cert = config.state_dir.join(DEV_CERT_FILE);
            let key = config.state_dir.join(DEV_KEY_FILE);
            // The development certificate of an earlier start is kept while
            // it still names this server: clients' --ca and pinned
            // fingerprints survive a restart. A changed external host, a
            // missing or loosely permitted key makes a new one.
            let source = if reusable_dev_certificate(&cert, &key, &names) {
                TlsSource::Files {
                    cert: cert.clone(),
                    key,
                }
            } else {
                TlsSource::SelfSigned { names }
            };
            (source, Some(cert))
        }
    };
    let server_tls = tls::load(&source)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Bind {
            addr,
            message: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| ServeError::Bind {
        addr,
        message: e.to_string(),
    })?;

    create_state_dir(&config.state_dir)?;
    if let (Some(path), Some(key_pem)) = (&dev_cert_file, &server_tls.generated_key_pem) {
        // The key first: a certificate on disk always has its key beside it.
        replace_secret_file(
            "the development certificate's key",
            &config.state_dir.join(DEV_KEY_FILE),
            key_pem,
            &config.state_dir,
        )?;
        replace_file(
            "the development certificate",
            path,
            &server_tls.leaf_pem,
            &config.state_dir,
        )?;
    }
    let origin = config.audit_origin()?;
    let storage = open(config.clone()).await?;
    // The audit key must continue the log; its files are written (and a
    // requested hand-over performed) only once nothing else can fail.
    let starting_key = StartingKey::open(
        storage.as_ref(),
        AuditKeyPaths::new(
            &config.state_dir,
            config.audit.key_file.as_deref(),
            config.audit.rotate_to_key_file.as_deref(),
        ),
        &origin,
    )
    .await?;
    let mut nonce_secret = [0u8; 32];
    podseal_core::fill_random(&mut nonce_secret).map_err(|_| ServeError::Random)?;
    let nonce_secret = storage.server_secret("dpop_nonce", nonce_secret).await?;
    let stored_clusters = storage.clusters().await?;
    let audit_key = starting_key.commit(storage.as_ref(), &origin).await?;
    let audit_log = Arc::new(AuditLog::new(storage.clone(), audit_key, origin));
    tracing::info!(
        origin = %config.audit_origin()?,
        verifier_key = %audit_log.verifier_key(),
        "audit checkpoints are C2SP signed notes; transparency-log tools verify them with this note verifier key"
    );
    let token = Zeroizing::new(format!(
        "{ADMIN_TOKEN_PREFIX}{}",
        podseal_core::random_id::<32>().map_err(|_| ServeError::Random)?
    ));
    let admin_token = storage
        .init_admin_token(Sha256::digest(token.as_bytes()).into())
        .await?
        .then_some(token);

    let views =
        ViewConfig::with_max_staleness(Duration::from_secs(config.clusters.max_staleness_secs));
    let clock = podseal_core::clock::system();
    let audit = Arc::new(AuditWriter::new(storage.clone(), clock.clone()));
    let clusters = Arc::new(
        ClusterRegistry::new(
            storage.clone(),
            audit.clone(),
            views,
            config.release.token_leeway_secs,
        )
        .with_jwks_check(Duration::from_secs(config.clusters.jwks_check_secs)),
    );
    let release = Arc::new(ReleaseService::new(
        storage.clone(),
        clusters.clone(),
        audit.clone(),
        Arc::new(ring),
        NonceIssuer::new(&nonce_secret, config.release.nonce_lifetime_secs),
        ReleaseConfig {
            external_url: config.external_url.trim_end_matches('/').to_owned(),
            max_session_secs: config.release.max_session_secs,
            dpop_max_age_secs: config.release.dpop_max_age_secs,
            dpop_max_skew_secs: config.release.dpop_max_skew_secs,
            enrolment_wait: Duration::from_secs(
                u64::try_from(config.release.enrolment_wait_secs).unwrap_or(0),
            ),
        },
    ));
    let mut cluster_errors = Vec::new();
    let mut failed = std::collections::HashMap::new();
    for record in stored_clusters {
        if let Err(why) = clusters.connect(&record) {
            cluster_errors.push((record.name.clone(), why.to_string()));
            failed.insert(record.name.clone(), record);
        }
    }
    let admin = Arc::new(AdminService::new(release.clone(), audit_log.clone()));
    let refusals = Arc::new(RequestRefusals::default());
    let app = router(App {
        release: release.clone(),
        admin,
        metrics: Arc::new(Metrics::default()),
        refusals: refusals.clone(),
    });
    let (shutdown, stop) = oneshot::channel::<()>();
    let served = tokio::spawn(tls::serve_connections(
        listener,
        server_tls.config.clone(),
        app,
        config.connections.limits(),
        async {
            let _ = stop.await;
        },
    ));
    let checkpoints = tokio::spawn(
        audit_log
            .clone()
            .run_checkpoints(Duration::from_secs(config.audit.checkpoint_interval_secs)),
    );
    let refresh = clusters.spawn_refresh(failed, Duration::from_secs(config.clusters.refresh_secs));
    let purge = tokio::spawn(run_purge(storage));
    let refusal_writer = tokio::spawn(refusals.clone().run(audit));
    Ok(Running {
        addr,
        admin_token,
        tls_fingerprint: server_tls.fingerprint_sha256,
        dev_cert_file,
        audit_public_key_file: config.state_dir.join(AUDIT_PUBLIC_KEY_FILE),
        cluster_errors,
        release,
        refusals,
        shutdown,
        served,
        audit_log,
        background: vec![checkpoints, refresh, purge, refusal_writer],
    })
}

async fn run_purge<S: Storage>(storage: Arc<S>) {
    let mut ticks = tokio::time::interval(PURGE_INTERVAL);
    loop {
        ticks.tick().await;
        match storage
            .purge_expired(jiff::Timestamp::now().as_second())
            .await
        {
            Ok(removed) if removed > 0 => tracing::debug!(removed, "purged expired records"),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "could not purge expired records"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code: a panic is a test failure"
    )]
    use super::*;
    use std::io::Write as _;

    use podseal_core::hpke::KemId;
    use podseal_core::org_key::OrgPrivateKey;
    use podseal_keys::key_file::write_new;

    /// A tmpfs mounted at a directory, unmounted on drop. Mounting needs
    /// root (or CAP_SYS_ADMIN); without it the test fails, it never skips.
    struct Tmpfs(PathBuf);

    impl Tmpfs {
        fn mount(path: &Path, size: &str) -> Self {
            std::fs::create_dir_all(path).unwrap();
            let output = std::process::Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0700"),
                    "tmpfs",
                ])
                .arg(path)
                .output()
                .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
            assert!(
                output.status.success(),
                "this test puts a state directory on a full {size} tmpfs and must mount it, \
                 which needs root or CAP_SYS_ADMIN: `mount -t tmpfs` said {:?}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            Self(path.to_owned())
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }

    /// Writes `path` until its volume is full.
    fn fill(path: &Path) {
        let mut file = std::fs::File::create(path).unwrap();
        let chunk = vec![0_u8; 16 * 1024];
        loop {
            match file.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }

    #[tokio::test]
    async fn a_start_on_a_full_volume_names_the_real_cause() {
        let dir = tempfile::TempDir::new().unwrap();
        let org = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
        let org_key = dir.path().join("org.key");
        write_new(&org_key, org.to_text().as_bytes(), 0o600).unwrap();
        let volume = dir.path().join("volume");
        let _mounted = Tmpfs::mount(&volume, "256k");
        fill(&volume.join("filler"));
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".into(),
            state_dir: volume.join("state"),
            org_key_files: vec![org_key],
            ..ServerConfig::default()
        };
        // The first file written is the development certificate's key.
        let Err(error) = start(config.clone()).await else {
            panic!("a start on a full volume succeeded")
        };
        let message = error.to_string();
        assert!(
            message.contains("no space left on device")
                && message.contains("tls-dev.key")
                && !message.contains("cannot create the state directory"),
            "{message}"
        );
        // With a certificate of its own, it is the database.
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        write_new(&key_file, key.serialize_pem().as_bytes(), 0o600).unwrap();
        config.tls = crate::config::TlsSection {
            cert_file: Some(cert_file),
            key_file: Some(key_file),
        };
        let Err(error) = start(config).await else {
            panic!("a start on a full volume succeeded")
        };
        let message = error.to_string();
        assert!(
            message.contains("no space left on device") && message.contains("podseal.db"),
            "{message}"
        );
    }

    #[test]
    fn a_state_directory_group_or_others_may_enter_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::TempDir::new().unwrap();
        let state = dir.path().join("state");
        create_state_dir(&state).unwrap();
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for mode in [0o750, 0o710, 0o705, 0o701, 0o770] {
            std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).unwrap();
            let Err(error) = create_state_dir(&state) else {
                panic!("a state directory of mode {mode:o} was taken")
            };
            assert!(
                error.to_string().contains("open to group or others"),
                "{mode:o}: {error}"
            );
        }
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        create_state_dir(&state).unwrap();
    }

    #[test]
    fn a_development_key_group_or_others_may_read_is_not_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::TempDir::new().unwrap();
        let names = vec!["localhost".to_owned()];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names.clone())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_file, key_file) = (
            dir.path().join("tls-dev.crt"),
            dir.path().join("tls-dev.key"),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        write_new(&key_file, key.serialize_pem().as_bytes(), 0o600).unwrap();
        assert!(reusable_dev_certificate(&cert_file, &key_file, &names));
        for mode in [0o640, 0o604, 0o620, 0o660] {
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(
                !reusable_dev_certificate(&cert_file, &key_file, &names),
                "a {mode:o} development key was reused"
            );
        }
    }

    /// The database, its write-ahead log and shared memory are the owner's
    /// only (they hold the nonce secret and the hashes of API keys).
    #[tokio::test]
    async fn the_database_and_its_wal_are_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::TempDir::new().unwrap();
        let org = OrgPrivateKey::generate(KemId::X25519HkdfSha256).unwrap();
        let org_key = dir.path().join("org.key");
        write_new(&org_key, org.to_text().as_bytes(), 0o600).unwrap();
        let state = dir.path().join("state");
        let running = start(ServerConfig {
            listen: "127.0.0.1:0".into(),
            state_dir: state.clone(),
            org_key_files: vec![org_key],
            ..ServerConfig::default()
        })
        .await
        .unwrap();
        let mut seen = 0;
        for name in ["podseal.db", "podseal.db-wal", "podseal.db-shm"] {
            if let Ok(metadata) = std::fs::metadata(state.join(name)) {
                seen += 1;
                let mode = metadata.permissions().mode() & 0o777;
                assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}");
            }
        }
        running.shutdown().await.unwrap();
        assert!(seen >= 2, "the database and its WAL exist while it runs");
    }
}
