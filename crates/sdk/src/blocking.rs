//! A blocking wrapper over [`Client`](crate::client::Client) for programs
//! without an async runtime. It owns a single-threaded Tokio runtime; do not
//! call it from inside another runtime.

use podseal_core::capsule::Capsule;
use podseal_core::secret::Plaintext;

use crate::client::{Client, ClientConfig, Origin, SdkError};

/// The blocking client.
#[derive(Debug)]
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl BlockingClient {
    /// A client with fresh RAM-only keys.
    pub fn new(config: ClientConfig) -> Result<Self, SdkError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SdkError::Config(format!("cannot start a runtime: {e}")))?;
        // The HTTPS client registers with the runtime it is built in.
        let client = runtime.block_on(async { Client::new(config) })?;
        Ok(Self { runtime, client })
    }

    /// A client configured from the environment.
    pub fn from_env() -> Result<Self, SdkError> {
        Self::new(ClientConfig::from_env()?)
    }

    /// Opens one capsule.
    pub fn open(&self, capsule: &Capsule) -> Result<Plaintext, SdkError> {
        self.runtime.block_on(self.client.open(capsule))
    }

    /// Opens up to 64 capsules in one request.
    pub fn open_many(&self, capsules: &[Capsule]) -> Result<Vec<Plaintext>, SdkError> {
        self.runtime.block_on(self.client.open_many(capsules))
    }

    /// Opens one capsule read from `origin` (see [`Client::open_from`]).
    pub fn open_from(&self, capsule: &Capsule, origin: &Origin) -> Result<Plaintext, SdkError> {
        self.runtime
            .block_on(self.client.open_from(capsule, origin))
    }

    /// Opens up to 64 capsules, each read from its origin, in one request
    /// (see [`Client::open_many_from`]).
    pub fn open_many_from(
        &self,
        capsules: &[(Capsule, Origin)],
    ) -> Result<Vec<Plaintext>, SdkError> {
        self.runtime.block_on(self.client.open_many_from(capsules))
    }

    /// Replaces the pinned DPoP key.
    pub fn rotate_dpop_key(&self) -> Result<(), SdkError> {
        self.runtime.block_on(self.client.rotate_dpop_key())
    }
}
