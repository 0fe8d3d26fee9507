//! The refusals of admin requests (gate `admin`): a bad argument, a missing
//! resource, storage that cannot answer. The admin service and the cluster
//! registry's registration word them the same way through these.

use podseal_core::capsule::{NameRule, check_name};

use super::{Gate, Reason, Refusal};
use crate::storage::StorageError;

/// An admin request refused for `reason`.
pub fn refused(reason: Reason, detail: impl Into<String>) -> Refusal {
    Refusal::new(Gate::Admin, reason, detail)
}

/// Storage that failed on the admin path: `not found` is the request's
/// mistake, anything else the server's (logged, not shown).
pub fn storage_refusal(error: StorageError) -> Refusal {
    match error {
        StorageError::NotFound(what) => refused(Reason::NotFound, what),
        other => {
            tracing::error!(error = %other, "storage failed on the admin path");
            Refusal::new(
                Gate::Request,
                Reason::StorageUnavailable,
                "the server cannot store this right now",
            )
        }
    }
}

/// Refuses a `field` whose `value` breaks `rule`, naming the field.
pub fn check_field(field: &str, value: &str, rule: NameRule) -> Result<(), Refusal> {
    check_name(value, rule)
        .map_err(|why| refused(Reason::InvalidArgument, format!("{field} {why}")))
}
