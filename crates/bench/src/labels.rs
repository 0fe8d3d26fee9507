//! Stable, secret-free labels for failed requests, as the report counts
//! them: a bounded set, never a token, key or URL.

use podseal_core::wire::Problem;
use podseal_sdk::https::{Answer, TransportError};

/// A stable, secret-free label for a failed answer: `401 dpop/key_not_pinned`.
pub fn refusal_label(answer: &Answer) -> String {
    match serde_json::from_slice::<Problem>(&answer.body) {
        Ok(problem) => format!(
            "{} {}/{}",
            answer.status.as_u16(),
            problem.gate,
            problem.reason
        ),
        Err(_) => format!("HTTP {}", answer.status.as_u16()),
    }
}

/// A label for a transport failure (no URL, no detail: a bounded set).
pub fn transport_label(error: &TransportError) -> String {
    match error {
        TransportError::Timeout(_) => "transport: timeout".into(),
        TransportError::Unreachable { .. } => "transport: unreachable".into(),
        _ => "transport: request".into(),
    }
}
