//! Gate 1, the API key: pure decisions over what the one storage read of a
//! request returned. `release.rs` reads, audits and composes; the
//! decisions and their reasons are here.

use crate::identity::WorkloadIdentity;
use crate::storage::ApiKeyRecord;

use super::{Gate, Reason, Refusal};

/// The stored key the presented one hashes to, if any.
pub fn known(key: Option<ApiKeyRecord>) -> Result<ApiKeyRecord, Refusal> {
    key.ok_or_else(|| {
        Refusal::new(
            Gate::ApiKey,
            Reason::ApiKeyUnknown,
            "the API key is not known",
        )
    })
}

/// A key still in force.
pub fn not_revoked(key: &ApiKeyRecord) -> Result<(), Refusal> {
    match key.revoked_at {
        Some(_) => Err(Refusal::new(
            Gate::ApiKey,
            Reason::ApiKeyRevoked,
            "the API key was revoked",
        )),
        None => Ok(()),
    }
}

/// The connection of the key's cluster, which must be registered.
pub fn cluster_registered<C>(cluster: Option<C>) -> Result<C, Refusal> {
    cluster.ok_or_else(|| {
        Refusal::new(
            Gate::ApiKey,
            Reason::ClusterUnknown,
            "the API key's cluster is not registered",
        )
    })
}

/// The key is bound to the namespace and service account the token (gate
/// 2) proved.
pub fn bound_to(key: &ApiKeyRecord, identity: &WorkloadIdentity) -> Result<(), Refusal> {
    if identity.namespace == key.namespace && identity.service_account == key.service_account {
        Ok(())
    } else {
        Err(Refusal::new(
            Gate::ApiKey,
            Reason::ApiKeyScopeMismatch,
            "the API key is bound to another namespace or service account than the token",
        ))
    }
}
