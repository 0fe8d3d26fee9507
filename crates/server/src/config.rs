//! `podseal-server` configuration: a TOML file, then environment overrides,
//! then validation. Every key has a default, so an empty file (or none) is
//! a working development server on loopback; `podseal-server --print-config`
//! prints the effective result.
//!
//! The file holds no secret: org keys, TLS keys and tokens are named by path.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// The URL clients use; DPoP `htu` is compared against it, never the Host header.
    pub external_url: String,
    /// Directory for the database, the audit key and the development certificate.
    pub state_dir: PathBuf,
    /// Org private key files (`podseal keys init`), newest first or any order.
    pub org_key_files: Vec<PathBuf>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: String,
    /// HTTPS.
    pub tls: TlsSection,
    /// The release path.
    pub release: ReleaseSection,
    /// The audit log.
    pub audit: AuditSection,
    /// Registered clusters' pod views.
    pub clusters: ClustersSection,
    /// The store.
    pub storage: StorageSection,
    /// Client connections.
    pub connections: ConnectionsSection,
}

/// `[connections]`: the bounds that keep slow, idle or many-connectioned
/// clients from taking the server's connection slots from others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsSection {
    /// The most connections served at once.
    pub max: usize,
    /// The most connections one source address may hold (a NAT or a load
    /// balancer in front of the server counts as one source: raise it there).
    pub max_per_source: usize,
    /// Seconds from accept, through the TLS handshake, to the first request
    /// byte (HTTP/2: to the first request, the preface being none); also
    /// each request's headers.
    pub first_request_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in flight.
    pub idle_timeout_secs: u64,
}

impl Default for ConnectionsSection {
    fn default() -> Self {
        let limits = podseal_https::ConnectionLimits::default();
        Self {
            max: limits.max_connections,
            max_per_source: limits.max_per_source,
            first_request_timeout_secs: limits.first_request_timeout.as_secs(),
            idle_timeout_secs: limits.idle_timeout.as_secs(),
        }
    }
}

impl ConnectionsSection {
    /// The limits the TLS server applies.
    pub fn limits(&self) -> podseal_https::ConnectionLimits {
        podseal_https::ConnectionLimits {
            max_connections: self.max,
            max_per_source: self.max_per_source,
            first_request_timeout: std::time::Duration::from_secs(self.first_request_timeout_secs),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs),
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// Certificate chain (PEM). With `key_file`; without both, a development
    /// certificate is generated at start and its fingerprint printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// `[release]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReleaseSection {
    /// Longest session, seconds (also bounded by the projected token's `exp`).
    pub max_session_secs: i64,
    /// How old a DPoP proof's `iat` may be, seconds.
    pub dpop_max_age_secs: i64,
    /// How far ahead of the server's clock `iat` may be, seconds.
    pub dpop_max_skew_secs: i64,
    /// How long a DPoP server nonce stays valid, seconds (when a policy requires nonces).
    pub nonce_lifetime_secs: i64,
    /// Clock leeway for projected tokens' `exp`/`nbf`, seconds.
    pub token_leeway_secs: i64,
    /// How long a session request waits for the API server to report its
    /// container's new running instance, seconds: a restarted container's
    /// process runs before the kubelet's status update arrives.
    pub enrolment_wait_secs: i64,
}

impl Default for ReleaseSection {
    fn default() -> Self {
        Self {
            max_session_secs: 3600,
            dpop_max_age_secs: 60,
            dpop_max_skew_secs: 5,
            nonce_lifetime_secs: 60,
            token_leeway_secs: 30,
            enrolment_wait_secs: 5,
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSection {
    /// Seconds between signed checkpoints (one is also signed at shutdown
    /// and on export), 1 to 3600: records not yet under a checkpoint can be
    /// cut from the log's tail unnoticed.
    pub checkpoint_interval_secs: u64,
    /// The log's name: the first line of every checkpoint and the key name
    /// of its signature, so a schema-less, URL-like name with no space and
    /// no `+` (`secrets.example.com/podseal-audit`). Default: the external
    /// URL's `host[:port]` then `/podseal-audit`. Keep it for the log's
    /// life: verifiers pin it, and a start with another one is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The audit signing key file (0600). Replicas sharing one database
    /// share one key; without it, `<state_dir>/audit.key` is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Hands the log over to this key (0600) at start: the current key
    /// signs a rotation record naming it, then this key signs from then on.
    /// The only way a server starts with a key other than the one that
    /// signed the log's latest checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotate_to_key_file: Option<PathBuf>,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            checkpoint_interval_secs: 300,
            origin: None,
            key_file: None,
            rotate_to_key_file: None,
        }
    }
}

/// `[clusters]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClustersSection {
    /// A view that has not heard from its API server for this long refuses
    /// (gate 4), 1 to 60 seconds: it is how long a deleted pod or an injected
    /// debug container can still be granted when the API server goes quiet.
    pub max_staleness_secs: u64,
    /// How often a replica looks for clusters registered or changed through
    /// another replica (the bound on how long a replaced JWKS takes to reach
    /// it), 1 to 60 seconds.
    pub refresh_secs: u64,
    /// How often each cluster's published JWKS is compared with the pinned
    /// one (a rotated token-signing key is reported, never trusted), 1 to
    /// 3600 seconds.
    pub jwks_check_secs: u64,
}

impl Default for ClustersSection {
    fn default() -> Self {
        Self {
            max_staleness_secs: 5,
            refresh_secs: 10,
            jwks_check_secs: 60,
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// `sqlite` (embedded default, one replica) or `postgres` (several replicas).
    pub engine: String,
    /// SQLite database file; default `<state_dir>/podseal.db`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// PostgreSQL: a file (0600) holding the `postgres://` URL, which may
    /// carry a password and so never sits in this configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// Seconds every storage call may take; past it the request is refused
    /// (`storage_unavailable`, 503) and `/readyz` names the call.
    pub timeout_secs: u64,
}

impl StorageSection {
    /// The bound on each storage call.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs)
    }
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            engine: "sqlite".into(),
            path: None,
            url_file: None,
            timeout_secs: 5,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            external_url: "https://127.0.0.1:8443".into(),
            state_dir: PathBuf::from("podseal-state"),
            org_key_files: Vec::new(),
            log_level: "info".into(),
            tls: TlsSection::default(),
            release: ReleaseSection::default(),
            audit: AuditSection::default(),
            clusters: ClustersSection::default(),
            storage: StorageSection::default(),
            connections: ConnectionsSection::default(),
        }
    }
}

/// Why the configuration was refused. Messages name the file or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {}: {message}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's message.
        message: String,
    },
    /// The file is not valid TOML or has an unknown or mistyped key.
    #[error("config file {}: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// An environment override has the wrong type.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
    /// Comma-separated.
    List,
}

/// Every environment override: variable, key path, type.
const ENV_OVERRIDES: &[(&str, &[&str], Kind)] = &[
    ("PODSEAL_LISTEN", &["listen"], Kind::Text),
    ("PODSEAL_EXTERNAL_URL", &["external_url"], Kind::Text),
    ("PODSEAL_STATE_DIR", &["state_dir"], Kind::Text),
    ("PODSEAL_ORG_KEY_FILES", &["org_key_files"], Kind::List),
    ("PODSEAL_LOG_LEVEL", &["log_level"], Kind::Text),
    ("PODSEAL_TLS_CERT_FILE", &["tls", "cert_file"], Kind::Text),
    ("PODSEAL_TLS_KEY_FILE", &["tls", "key_file"], Kind::Text),
    (
        "PODSEAL_RELEASE_MAX_SESSION_SECS",
        &["release", "max_session_secs"],
        Kind::Integer,
    ),
    (
        "PODSEAL_RELEASE_DPOP_MAX_AGE_SECS",
        &["release", "dpop_max_age_secs"],
        Kind::Integer,
    ),
    (
        "PODSEAL_RELEASE_DPOP_MAX_SKEW_SECS",
        &["release", "dpop_max_skew_secs"],
        Kind::Integer,
    ),
    (
        "PODSEAL_RELEASE_NONCE_LIFETIME_SECS",
        &["release", "nonce_lifetime_secs"],
        Kind::Integer,
    ),
    (
        "PODSEAL_RELEASE_TOKEN_LEEWAY_SECS",
        &["release", "token_leeway_secs"],
        Kind::Integer,
    ),
    (
        "PODSEAL_RELEASE_ENROLMENT_WAIT_SECS",
        &["release", "enrolment_wait_secs"],
        Kind::Integer,
    ),
    (
        "PODSEAL_AUDIT_CHECKPOINT_INTERVAL_SECS",
        &["audit", "checkpoint_interval_secs"],
        Kind::Integer,
    ),
    ("PODSEAL_AUDIT_ORIGIN", &["audit", "origin"], Kind::Text),
    ("PODSEAL_AUDIT_KEY_FILE", &["audit", "key_file"], Kind::Text),
    (
        "PODSEAL_AUDIT_ROTATE_TO_KEY_FILE",
        &["audit", "rotate_to_key_file"],
        Kind::Text,
    ),
    (
        "PODSEAL_CLUSTERS_MAX_STALENESS_SECS",
        &["clusters", "max_staleness_secs"],
        Kind::Integer,
    ),
    (
        "PODSEAL_CLUSTERS_REFRESH_SECS",
        &["clusters", "refresh_secs"],
        Kind::Integer,
    ),
    (
        "PODSEAL_CLUSTERS_JWKS_CHECK_SECS",
        &["clusters", "jwks_check_secs"],
        Kind::Integer,
    ),
    ("PODSEAL_STORAGE_ENGINE", &["storage", "engine"], Kind::Text),
    ("PODSEAL_STORAGE_PATH", &["storage", "path"], Kind::Text),
    (
        "PODSEAL_CONNECTIONS_MAX",
        &["connections", "max"],
        Kind::Integer,
    ),
    (
        "PODSEAL_CONNECTIONS_MAX_PER_SOURCE",
        &["connections", "max_per_source"],
        Kind::Integer,
    ),
    (
        "PODSEAL_CONNECTIONS_FIRST_REQUEST_TIMEOUT_SECS",
        &["connections", "first_request_timeout_secs"],
        Kind::Integer,
    ),
    (
        "PODSEAL_CONNECTIONS_IDLE_TIMEOUT_SECS",
        &["connections", "idle_timeout_secs"],
        Kind::Integer,
    ),
    (
        "PODSEAL_STORAGE_TIMEOUT_SECS",
        &["storage", "timeout_secs"],
        Kind::Integer,
    ),
    (
        "PODSEAL_STORAGE_URL_FILE",
        &["storage", "url_file"],
        Kind::Text,
    ),
];

/// The names of every environment override, for `--help`.
pub fn env_override_names() -> impl Iterator<Item = &'static str> {
    ENV_OVERRIDES.iter().map(|(var, _, _)| *var)
}

/// Every environment override and the key it sets (`section.key`).
pub fn env_overrides() -> impl Iterator<Item = (&'static str, String)> {
    ENV_OVERRIDES
        .iter()
        .map(|(var, path, _)| (*var, path.join(".")))
}

/// The prefix of every podseal variable.
const ENV_PREFIX: &str = "PODSEAL_";

/// A `PODSEAL_*` variable in the environment that nothing reads: most
/// likely a misspelt override, whose value is then silently not applied.
/// Holds the name only, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariable {
    /// The variable's name.
    pub name: String,
    /// The known variable nearest to it, when one is near enough to be meant.
    pub nearest: Option<&'static str>,
}

impl std::fmt::Display for UnknownVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "environment variable {} is not a podseal setting and is ignored",
            self.name
        )?;
        match self.nearest {
            Some(nearest) => write!(f, "; did you mean {nearest}?"),
            None => write!(f, " (`podseal-server --help` lists the variables)"),
        }
    }
}

/// The `PODSEAL_*` names among `names` that are neither a `podseal-server`
/// override nor in `also_known` (variables other podseal commands read),
/// each with the nearest known name. Pass names only: values are never
/// needed, so they cannot be printed.
pub fn unknown_variables(
    names: impl IntoIterator<Item = String>,
    also_known: &[&'static str],
) -> Vec<UnknownVariable> {
    let known = || env_override_names().chain(also_known.iter().copied());
    names
        .into_iter()
        .filter(|name| name.starts_with(ENV_PREFIX) && !known().any(|k| k == name))
        .map(|name| {
            let rest = name.get(ENV_PREFIX.len()..).unwrap_or_default();
            let nearest = ENV_OVERRIDES
                .iter()
                .map(|(var, path, _)| {
                    // An override also answers to its key without the section
                    // (PODSEAL_MAX_STALENESS_SECS for clusters.max_staleness_secs).
                    let key = path
                        .last()
                        .map(|k| k.to_ascii_uppercase())
                        .unwrap_or_default();
                    let whole = var.get(ENV_PREFIX.len()..).unwrap_or_default();
                    (
                        *var,
                        edit_distance(rest, whole).min(edit_distance(rest, &key)),
                    )
                })
                .chain(also_known.iter().map(|var| {
                    let whole = var.get(ENV_PREFIX.len()..).unwrap_or_default();
                    (*var, edit_distance(rest, whole))
                }))
                .min_by_key(|(_, distance)| *distance)
                .filter(|(_, distance)| *distance <= (rest.len() / 3).max(2))
                .map(|(var, _)| var);
            UnknownVariable { name, nearest }
        })
        .collect()
}

/// Levenshtein distance over bytes (variable names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.bytes().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, y) in b.iter().enumerate() {
            let substitute = previous
                .get(j)
                .map_or(usize::MAX, |d| d + usize::from(x != *y));
            let delete = previous.get(j + 1).map_or(usize::MAX, |d| d + 1);
            let insert = current.last().map_or(usize::MAX, |d| d + 1);
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or_default()
}

impl ServerConfig {
    /// Reads `file` (if given), applies the overrides `env` finds, validates.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
                Self::from_toml(&text, path, env)
            }
            None => Self::from_table(
                toml::Table::new(),
                std::path::Path::new("(environment)"),
                env,
            ),
        }
    }

    /// Parses `text`, the content of the config file `source` (named in
    /// errors, never read), applies the overrides `env` finds, validates:
    /// [`ServerConfig::load`] without the file system.
    pub fn from_toml(
        text: &str,
        source: &std::path::Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        // One line: where, and what (the toml crate's report draws the line
        // with a caret over several).
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: source.to_owned(),
            message: match e.span() {
                Some(span) => {
                    let before = text.get(..span.start).unwrap_or_default();
                    let line = before.matches('\n').count() + 1;
                    let column = before
                        .rsplit('\n')
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .count()
                        + 1;
                    // The key on that line, so that the one line names it.
                    let key = text
                        .lines()
                        .nth(line - 1)
                        .and_then(|l| l.split_once('='))
                        .map(|(key, _)| key.trim())
                        .filter(|key| !key.is_empty() && !key.starts_with('#'));
                    match key {
                        Some(key) => format!(
                            "line {line}, column {column} ({key}): {}",
                            e.message().trim()
                        ),
                        None => {
                            format!("line {line}, column {column}: {}", e.message().trim())
                        }
                    }
                }
                None => e.message().trim().to_owned(),
            },
        };
        // Typed first, for errors that name the line and key.
        toml::from_str::<Self>(text).map_err(parse_error)?;
        let table = text.parse::<toml::Table>().map_err(parse_error)?;
        Self::from_table(table, source, env)
    }

    /// Applies the overrides `env` finds to `table` (the file's, or empty),
    /// then types and validates the result; `source` names it in errors.
    fn from_table(
        mut table: toml::Table,
        source: &std::path::Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        for (var, path, kind) in ENV_OVERRIDES {
            let Some(raw) = env(var) else { continue };
            let value = match kind {
                Kind::Text => toml::Value::String(raw),
                Kind::Integer => {
                    toml::Value::Integer(raw.trim().parse().map_err(|_| ConfigError::Env {
                        var,
                        message: "must be a whole number".into(),
                    })?)
                }
                Kind::List => toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                ),
            };
            set_path(&mut table, path, value).map_err(|e| ConfigError::Env {
                var,
                message: e.to_string(),
            })?;
        }
        let config: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: source.to_owned(),
                message: e.message().to_owned(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// The effective configuration as TOML: every key, those that are not
    /// set as a comment naming the variable that sets them.
    pub fn to_toml(&self) -> String {
        let text = toml::to_string_pretty(self).unwrap_or_default();
        let table: toml::Table = text.parse().unwrap_or_default();
        let unset = |section: Option<&str>| -> Vec<String> {
            ENV_OVERRIDES
                .iter()
                .filter(|(_, path, _)| match (section, path) {
                    (None, [_]) => true,
                    (Some(name), [first, _]) => first == &name,
                    _ => false,
                })
                .filter(|(_, path, _)| {
                    let scope = match section {
                        Some(name) => table.get(name).and_then(toml::Value::as_table),
                        None => Some(&table),
                    };
                    path.last()
                        .is_some_and(|key| scope.is_none_or(|t| !t.contains_key(*key)))
                })
                .map(|(var, path, _)| {
                    format!(
                        "# {} is not set ({var})",
                        path.last().copied().unwrap_or_default()
                    )
                })
                .collect()
        };
        let close = |out: &mut String, section: Option<&str>| {
            for line in unset(section) {
                out.push_str(&line);
                out.push('\n');
            }
        };
        // Each part is printed whole from the parsed table (in the struct's
        // order), never taken apart line by line: a value that spans lines
        // (a string with a line break) is printed as it is.
        let (sections, top): (Vec<_>, Vec<_>) =
            table.iter().partition(|(_, value)| value.is_table());
        let top: toml::Table = top
            .into_iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let mut out = toml::to_string_pretty(&top).unwrap_or_default();
        close(&mut out, None);
        for (name, section) in sections {
            out.push_str(&format!("\n[{name}]\n"));
            if let Some(section) = section.as_table() {
                out.push_str(&toml::to_string_pretty(section).unwrap_or_default());
            }
            close(&mut out, Some(name));
        }
        out
    }

    /// The address to bind.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "listen = {:?} is not an address like 127.0.0.1:8443",
                self.listen
            ))
        })
    }

    /// The SQLite file.
    pub fn database_path(&self) -> PathBuf {
        self.storage
            .path
            .clone()
            .unwrap_or_else(|| self.state_dir.join("podseal.db"))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        let url = self.external_url.trim_end_matches('/');
        let host = url.strip_prefix("https://").unwrap_or_default();
        if host.is_empty() || host.contains(['/', '?', '#', '@']) {
            return Err(ConfigError::Invalid(format!(
                "external_url = {:?} must be https://host[:port] with no path",
                self.external_url
            )));
        }
        self.audit_origin()?;
        match self.storage.engine.as_str() {
            "sqlite" => {}
            "postgres" if self.storage.url_file.is_some() => {}
            "postgres" => {
                return Err(ConfigError::Invalid(
                    "storage.engine = \"postgres\" needs storage.url_file (a 0600 file holding the postgres:// URL)".into(),
                ));
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "storage.engine = {other:?} is not one of sqlite, postgres"
                )));
            }
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(ConfigError::Invalid(
                "tls.cert_file and tls.key_file go together (or neither, for a development certificate)".into(),
            ));
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log_level.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "log_level = {:?} is not one of error, warn, info, debug, trace",
                self.log_level
            )));
        }
        // Every duration that bounds a security decision has a range.
        let release = &self.release;
        let whole = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for (name, value, low, high) in [
            (
                "release.max_session_secs",
                release.max_session_secs,
                60,
                86_400,
            ),
            (
                "release.dpop_max_age_secs",
                release.dpop_max_age_secs,
                1,
                600,
            ),
            (
                "release.dpop_max_skew_secs",
                release.dpop_max_skew_secs,
                0,
                300,
            ),
            (
                "release.nonce_lifetime_secs",
                release.nonce_lifetime_secs,
                5,
                3600,
            ),
            (
                "release.token_leeway_secs",
                release.token_leeway_secs,
                0,
                300,
            ),
            (
                "release.enrolment_wait_secs",
                release.enrolment_wait_secs,
                0,
                60,
            ),
            (
                "audit.checkpoint_interval_secs",
                whole(self.audit.checkpoint_interval_secs),
                1,
                3600,
            ),
            (
                "clusters.max_staleness_secs",
                whole(self.clusters.max_staleness_secs),
                1,
                60,
            ),
            (
                "clusters.refresh_secs",
                whole(self.clusters.refresh_secs),
                1,
                60,
            ),
            (
                "clusters.jwks_check_secs",
                whole(self.clusters.jwks_check_secs),
                1,
                3600,
            ),
        ] {
            if !(low..=high).contains(&value) {
                return Err(ConfigError::Invalid(format!(
                    "{name} = {value} must be between {low} and {high}"
                )));
            }
        }
        let connections = &self.connections;
        for (name, value, low, high) in [
            ("storage.timeout_secs", self.storage.timeout_secs, 1, 60),
            ("connections.max", connections.max as u64, 16, 65_536),
            (
                "connections.max_per_source",
                connections.max_per_source as u64,
                1,
                65_536,
            ),
            (
                "connections.first_request_timeout_secs",
                connections.first_request_timeout_secs,
                1,
                60,
            ),
            (
                "connections.idle_timeout_secs",
                connections.idle_timeout_secs,
                1,
                3600,
            ),
        ] {
            if !(low..=high).contains(&value) {
                return Err(ConfigError::Invalid(format!(
                    "{name} = {value} must be between {low} and {high}"
                )));
            }
        }
        if connections.max_per_source > connections.max {
            return Err(ConfigError::Invalid(
                "connections.max_per_source must not exceed connections.max".into(),
            ));
        }
        Ok(())
    }

    /// The audit log's origin: `audit.origin`, or the external URL's
    /// authority followed by `/podseal-audit`.
    pub fn audit_origin(&self) -> Result<podseal_core::audit::LogOrigin, ConfigError> {
        let name = self.audit.origin.clone().unwrap_or_else(|| {
            let authority = self
                .external_url
                .trim_end_matches('/')
                .trim_start_matches("https://");
            format!("{authority}/podseal-audit")
        });
        podseal_core::audit::LogOrigin::new(&name)
            .map_err(|e| ConfigError::Invalid(format!("audit.origin: {e}")))
    }

    /// The host part of the external URL (for the development certificate).
    pub fn external_host(&self) -> String {
        let host = self
            .external_url
            .trim_end_matches('/')
            .trim_start_matches("https://");
        match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default().to_owned(),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h).to_owned(),
        }
    }
}

/// Why an environment variable's value cannot be set in the TOML table.
#[derive(Debug, thiserror::Error)]
enum SetPathError {
    /// A section on the way is a value, not a table.
    #[error("the file's `{0}` is not a table")]
    NotATable(String),
    /// No key named.
    #[error("empty key path")]
    Empty,
}

fn set_path(
    table: &mut toml::Table,
    path: &[&str],
    value: toml::Value,
) -> Result<(), SetPathError> {
    match path {
        [key] => {
            table.insert((*key).to_owned(), value);
            Ok(())
        }
        [section, rest @ ..] => {
            let entry = table
                .entry((*section).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(inner) => set_path(inner, rest, value),
                _ => Err(SetPathError::NotATable((*section).to_owned())),
            }
        }
        [] => Err(SetPathError::Empty),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use std::collections::HashMap;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("podseal.toml");
        std::fs::write(&path, file).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ServerConfig::load(Some(&path), |k| env.get(k).cloned())
    }

    #[test]
    fn an_empty_file_is_the_default_and_print_config_round_trips() {
        let config = load("", &[]).unwrap();
        assert_eq!(config, ServerConfig::default());
        let printed = config.to_toml();
        assert_eq!(load(&printed, &[]).unwrap(), config);
    }

    #[test]
    fn print_config_prints_a_value_with_line_breaks_whole() {
        // Blank lines and `[section]` lines inside a string are the
        // string's, not the printout's layout.
        let config = load(
            "state_dir = \"podseal-state\\n\\n[tls]\\n\"\n[tls]\ncert_file = \"c\\n\\nd.pem\"\nkey_file = \"k.pem\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.state_dir, PathBuf::from("podseal-state\n\n[tls]\n"));
        assert_eq!(load(&config.to_toml(), &[]).unwrap(), config);
        // Keys and sections stay in the configuration's own order.
        let printed = ServerConfig::default().to_toml();
        assert!(printed.starts_with("listen = \"127.0.0.1:8443\"\nexternal_url = "));
        let sections: Vec<&str> = printed.lines().filter(|l| l.starts_with('[')).collect();
        assert_eq!(
            sections,
            [
                "[tls]",
                "[release]",
                "[audit]",
                "[clusters]",
                "[storage]",
                "[connections]"
            ]
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let config = load(
            "listen = \"0.0.0.0:9000\"\n[release]\nmax_session_secs = 600\n",
            &[
                ("PODSEAL_RELEASE_MAX_SESSION_SECS", "900"),
                ("PODSEAL_ORG_KEY_FILES", "a.key, b.key"),
                ("PODSEAL_TLS_CERT_FILE", "c.pem"),
                ("PODSEAL_TLS_KEY_FILE", "k.pem"),
            ],
        )
        .unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.release.max_session_secs, 900);
        assert_eq!(
            config.org_key_files,
            vec![PathBuf::from("a.key"), PathBuf::from("b.key")]
        );
        assert_eq!(config.tls.cert_file, Some(PathBuf::from("c.pem")));
    }

    #[test]
    fn bad_configurations_are_refused_with_the_key_named() {
        for (file, env, needle) in [
            ("lisen = \"x\"", vec![], "lisen"),
            (
                "[release]\nmax_session_secs = \"long\"",
                vec![],
                "max_session_secs",
            ),
            (
                "",
                vec![("PODSEAL_RELEASE_MAX_SESSION_SECS", "soon")],
                "PODSEAL_RELEASE_MAX_SESSION_SECS",
            ),
            (
                "[release]\nmax_session_secs = 5",
                vec![],
                "release.max_session_secs",
            ),
            ("external_url = \"http://x\"", vec![], "external_url"),
            ("listen = \"nowhere\"", vec![], "listen"),
            ("[tls]\ncert_file = \"c.pem\"", vec![], "tls.cert_file"),
            ("[storage]\nengine = \"mysql\"", vec![], "storage.engine"),
            (
                "[storage]\nengine = \"postgres\"",
                vec![],
                "storage.url_file",
            ),
            ("not toml [", vec![], "podseal.toml"),
            (
                "[audit]\norigin = \"podseal audit\"",
                vec![],
                "audit.origin: the audit log origin \"podseal audit\" holds a space",
            ),
            (
                "",
                vec![("PODSEAL_AUDIT_ORIGIN", "a+b")],
                "holds a space, a '+'",
            ),
            (
                "[audit]\norigin = \"https://podseal.example\"",
                vec![],
                "has a URL scheme",
            ),
        ] {
            let error = load(file, &env).unwrap_err().to_string();
            assert!(error.contains(needle), "{file:?}: {error}");
        }
    }

    #[test]
    fn the_audit_origin_defaults_to_the_external_authority() {
        let config = load("external_url = \"https://secrets.example:8443/\"", &[]).unwrap();
        assert_eq!(
            config.audit_origin().unwrap().as_str(),
            "secrets.example:8443/podseal-audit"
        );
        let named = load("[audit]\norigin = \"log.example/prod\"", &[]).unwrap();
        assert_eq!(named.audit_origin().unwrap().as_str(), "log.example/prod");
    }

    #[test]
    fn the_staleness_bound_defaults_to_five_seconds_and_is_bounded() {
        // docs/design.md §8.11 promises 5 s; the view refuses past it.
        assert_eq!(load("", &[]).unwrap().clusters.max_staleness_secs, 5);
        for ok in [1, 60] {
            let file = format!("[clusters]\nmax_staleness_secs = {ok}\n");
            assert_eq!(load(&file, &[]).unwrap().clusters.max_staleness_secs, ok);
        }
        for bad in ["0", "61", "999999999"] {
            for (file, env) in [
                (format!("[clusters]\nmax_staleness_secs = {bad}\n"), vec![]),
                (
                    String::new(),
                    vec![("PODSEAL_CLUSTERS_MAX_STALENESS_SECS", bad)],
                ),
            ] {
                let error = load(&file, &env).unwrap_err().to_string();
                assert!(
                    error.contains(&format!("clusters.max_staleness_secs = {bad}"))
                        && error.contains("between 1 and 60"),
                    "{bad}: {error}"
                );
            }
        }
    }

    #[test]
    fn every_bound_that_gates_security_has_an_upper_limit() {
        for (file, needle) in [
            (
                "[clusters]\nrefresh_secs = 999999999",
                "clusters.refresh_secs = 999999999 must be between 1 and 60",
            ),
            (
                "[clusters]\nrefresh_secs = 0",
                "clusters.refresh_secs = 0 must be between 1 and 60",
            ),
            (
                "[audit]\ncheckpoint_interval_secs = 999999999",
                "audit.checkpoint_interval_secs = 999999999 must be between 1 and 3600",
            ),
            (
                "[release]\ntoken_leeway_secs = 301",
                "release.token_leeway_secs = 301 must be between 0 and 300",
            ),
            (
                "[release]\nmax_session_secs = 86401",
                "release.max_session_secs = 86401 must be between 60 and 86400",
            ),
            (
                "[release]\ndpop_max_age_secs = 601",
                "release.dpop_max_age_secs = 601 must be between 1 and 600",
            ),
            (
                "[release]\ndpop_max_skew_secs = 301",
                "release.dpop_max_skew_secs = 301 must be between 0 and 300",
            ),
            (
                "[release]\nnonce_lifetime_secs = 3601",
                "release.nonce_lifetime_secs = 3601 must be between 5 and 3600",
            ),
        ] {
            let error = load(file, &[]).unwrap_err().to_string();
            assert!(error.contains(needle), "{file:?}: {error}");
        }
        // The defaults sit inside every range (an empty file loads).
        assert!(load("", &[]).is_ok());
    }

    #[test]
    fn unknown_podseal_variables_are_named_with_the_nearest_known_one() {
        let names = [
            "PODSEAL_MAX_STALENES_SECS",
            "PODSEAL_RELEASE_MAX_SESION_SECS",
            "PODSEAL_LISTEN",
            "PODSEAL_SERVER",
            "PODSEAL_SERVR",
            "PODSEAL_QQQQQQQQQQQQ",
            "HOME",
            "podseal_listen",
        ];
        let unknown = unknown_variables(names.map(String::from), &["PODSEAL_SERVER"]);
        let found: Vec<(&str, Option<&str>)> = unknown
            .iter()
            .map(|u| (u.name.as_str(), u.nearest))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "PODSEAL_MAX_STALENES_SECS",
                    Some("PODSEAL_CLUSTERS_MAX_STALENESS_SECS")
                ),
                (
                    "PODSEAL_RELEASE_MAX_SESION_SECS",
                    Some("PODSEAL_RELEASE_MAX_SESSION_SECS")
                ),
                ("PODSEAL_SERVR", Some("PODSEAL_SERVER")),
                ("PODSEAL_QQQQQQQQQQQQ", None),
            ]
        );
        assert_eq!(
            unknown[0].to_string(),
            "environment variable PODSEAL_MAX_STALENES_SECS is not a podseal setting and is ignored; did you mean PODSEAL_CLUSTERS_MAX_STALENESS_SECS?"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }

    #[test]
    fn the_external_host_is_what_the_certificate_names() {
        for (url, host) in [
            ("https://127.0.0.1:8443", "127.0.0.1"),
            ("https://podseal.example", "podseal.example"),
            ("https://[::1]:8443/", "::1"),
        ] {
            let config = ServerConfig {
                external_url: url.into(),
                ..ServerConfig::default()
            };
            assert_eq!(config.external_host(), host);
        }
    }
}
