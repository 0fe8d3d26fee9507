//! The four gates of `docs/design.md` §3 and the one refusal type they share.
//!
//! Every refusal names its gate and a stable reason code; `detail` is a
//! public, non-secret sentence (a container name, a namespace) — never a
//! token, key or secret. The HTTP layer turns a [`Refusal`] into RFC 9457
//! problem+json and the audit log records the same gate and reason.

pub mod admin;
pub mod api_key;
pub mod dpop;
pub mod enrolment;
pub mod live_pod;
pub mod token;

use crate::identity::IdentityError;

pub use podseal_core::reason::{Gate, Reason};

/// A refusal: gate, stable reason, and a public detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The gate.
    pub gate: Gate,
    /// Stable reason code.
    pub reason: Reason,
    /// A public sentence for the client and the audit log.
    pub detail: String,
}

impl Refusal {
    /// A refusal.
    pub fn new(gate: Gate, reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            gate,
            reason,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refused by {} ({}): {}",
            self.gate.code(),
            self.reason,
            self.detail
        )
    }
}

impl From<IdentityError> for Refusal {
    fn from(error: IdentityError) -> Self {
        Self::new(Gate::Token, error.reason(), error.to_string())
    }
}

impl From<podseal_core::dpop::DpopError> for Refusal {
    fn from(error: podseal_core::dpop::DpopError) -> Self {
        Self::new(Gate::Dpop, error.reason(), error.to_string())
    }
}
