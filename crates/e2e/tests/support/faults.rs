//! What the fault-injection scenarios share: when a request ran relative to
//! a kill, waiting on a condition with a deadline, a refusal's reason, and
//! the audit export read back as records.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use podseal_core::audit::{AuditRecord, Event, ExportLine, Outcome};
use podseal_core::wire::Problem;
use podseal_sdk::https::Answer;

/// `gate/reason` of a refusal, or `HTTP <status>`.
pub fn reason(answer: &Answer) -> String {
    serde_json::from_slice::<Problem>(&answer.body)
        .map(|p| format!("{}/{}", p.gate, p.reason))
        .unwrap_or_else(|_| format!("HTTP {}", answer.status.as_u16()))
}

/// Waits (polling every millisecond, deadline `within`) until `condition` holds.
pub fn wait_until(what: &str, within: Duration, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The moment of a kill as the clients see it: raised just before the
/// signal is sent, so a request that started before it was raised and
/// ended after it was in flight when the process died (or was answered
/// in the moment before).
#[derive(Debug, Default)]
pub struct KillFlag(AtomicBool);

impl KillFlag {
    /// Raises the flag (before the signal).
    pub fn raise(&self) {
        self.0.store(true, SeqCst);
    }

    /// Whether the flag was raised.
    pub fn raised(&self) -> bool {
        self.0.load(SeqCst)
    }

    /// Runs `work` and says when it started and ended relative to the flag.
    pub async fn time<T>(&self, work: impl Future<Output = T>) -> Timed<T> {
        let started_before_kill = !self.raised();
        let value = work.await;
        Timed {
            started_before_kill,
            ended_after_kill: self.raised(),
            value,
        }
    }
}

/// What [`KillFlag::time`] saw.
#[derive(Debug)]
pub struct Timed<T> {
    /// Started before the kill flag was raised (which precedes the kill).
    pub started_before_kill: bool,
    /// Ended after the kill flag was raised.
    pub ended_after_kill: bool,
    /// What the work returned.
    pub value: T,
}

impl<T> Timed<T> {
    /// Started before the kill and ended after it.
    pub fn spans_kill(&self) -> bool {
        self.started_before_kill && self.ended_after_kill
    }
}

/// The records of an export (its JSON lines), checkpoints left out.
pub fn audit_records(export: &str) -> Vec<AuditRecord> {
    export
        .lines()
        .filter_map(
            |line| match serde_json::from_str(line).expect("an export line") {
                ExportLine::Record { entry, .. } => {
                    Some(serde_json::from_str(&entry).expect("an audit record"))
                }
                ExportLine::Checkpoint(_) => None,
            },
        )
        .collect()
}

/// The ids of the capsules that `records` hold an allowed `unwrap` record of.
pub fn allowed_unwraps(records: &[AuditRecord]) -> BTreeSet<String> {
    records
        .iter()
        .filter(|r| r.event == Event::Unwrap && r.outcome == Outcome::Allowed)
        .filter_map(|r| r.details.get("capsule").cloned())
        .collect()
}
