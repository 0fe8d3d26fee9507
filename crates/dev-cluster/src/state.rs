//! The stand-in's state directory, what a real control plane keeps in its
//! PKI directory and etcd: the CA, the token signing keys, the bearer
//! identities, the node's uid and the address (`keys.json`, mode 0600),
//! and every object with the resourceVersion counter (`objects.json`).
//! With it a restarted stand-in is the same cluster: clients that trusted
//! its CA and pinned its JWKS go on working, and nothing needs registering
//! again. Each file is replaced whole (written aside, synced, renamed), so
//! a crash leaves the previous state or the new one.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fields::at;
use crate::issuer::SavedIssuer;
use crate::kinds::{self, Kind};

/// Why the state directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file does not hold what the stand-in wrote.
    #[error("{path} is not the stand-in's state: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong (no contents).
        message: String,
    },
}

/// What stays the same across restarts.
#[derive(Serialize, Deserialize)]
pub(crate) struct Keys {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub issuer: SavedIssuer,
    pub reader_token: String,
    pub admin_token: String,
    pub node_uid: String,
    pub address: SocketAddr,
}

#[derive(Serialize, Deserialize)]
struct Objects {
    #[serde(rename = "resourceVersion")]
    resource_version: u64,
    objects: Vec<Value>,
}

/// The resourceVersion and the objects, each with its kind, as kept.
pub(crate) type SavedObjects = (u64, Vec<(&'static Kind, Value)>);

/// A state directory.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    dir: PathBuf,
}

const KEYS: &str = "keys.json";
const OBJECTS: &str = "objects.json";

impl StateDir {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    fn corrupt(&self, name: &str, message: impl std::fmt::Display) -> StateError {
        StateError::Corrupt {
            path: self.dir.join(name),
            message: message.to_string(),
        }
    }

    /// The keys of an earlier start, if there was one.
    pub fn load_keys(&self) -> Result<Option<Keys>, StateError> {
        let Some(bytes) = self.read(KEYS)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            // serde's message may quote the file; say only where it broke.
            .map_err(|e| self.corrupt(KEYS, format!("line {}, column {}", e.line(), e.column())))
    }

    /// Keeps the keys.
    pub fn save_keys(&self, keys: &Keys) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(keys).map_err(|e| self.corrupt(KEYS, e))?;
        self.replace(KEYS, &bytes)
    }

    /// The objects and resourceVersion of an earlier start, if there was one.
    pub fn load_objects(&self) -> Result<Option<SavedObjects>, StateError> {
        let Some(bytes) = self.read(OBJECTS)? else {
            return Ok(None);
        };
        let saved: Objects = serde_json::from_slice(&bytes).map_err(|e| {
            self.corrupt(OBJECTS, format!("line {}, column {}", e.line(), e.column()))
        })?;
        let mut objects = Vec::with_capacity(saved.objects.len());
        for object in saved.objects {
            let api_version = at(&object, &["apiVersion"]).as_str().unwrap_or_default();
            let kind_name = at(&object, &["kind"]).as_str().unwrap_or_default();
            let kind = kinds::table()
                .iter()
                .find(|k| k.kind == kind_name && k.api_version() == api_version)
                .ok_or_else(|| {
                    self.corrupt(
                        OBJECTS,
                        format!("no served kind {kind_name} in {api_version}"),
                    )
                })?;
            objects.push((kind, object));
        }
        Ok(Some((saved.resource_version, objects)))
    }

    /// Keeps the objects.
    pub fn save_objects<'v>(
        &self,
        resource_version: u64,
        objects: impl Iterator<Item = &'v Value>,
    ) -> Result<(), StateError> {
        let saved = Objects {
            resource_version,
            objects: objects.cloned().collect(),
        };
        let bytes = serde_json::to_vec(&saved).map_err(|e| self.corrupt(OBJECTS, e))?;
        self.replace(OBJECTS, &bytes)
    }

    /// Writes `name` whole: aside, synced, renamed over, directory synced.
    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(&self.dir)
            .map_err(io(&self.dir))?;
        let path = self.dir.join(name);
        let aside = self.dir.join(format!(".{name}.new"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&aside)
            .map_err(io(&aside))?;
        file.write_all(bytes).map_err(io(&aside))?;
        file.sync_all().map_err(io(&aside))?;
        std::fs::rename(&aside, &path).map_err(io(&path))?;
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io(&self.dir))
    }
}
