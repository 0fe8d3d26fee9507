//! The one way records reach the audit log while the server runs: the
//! release service, the admin service, the cluster registry's revocations
//! and the HTTP layer's aggregated refusals all hold the same
//! [`AuditWriter`]. It stamps each record by the injected clock and makes
//! it durable through the group commit, so a request is answered only once
//! its records are; when they cannot be, the request is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use podseal_core::audit::event::AdminDetails;
use podseal_core::audit::{AuditRecord, Details, Event, Outcome};
use podseal_core::clock::SharedClock;

use crate::gate::{Gate, Reason, Refusal};
use crate::group_commit::GroupCommit;
use crate::storage::{CommitItem, Storage};

/// Writes audit records, durably, for every part of the server.
pub struct AuditWriter<S: Storage> {
    /// Durable writes of concurrent requests share one transaction.
    commits: GroupCommit<S>,
    clock: SharedClock,
    /// The last commit failed (and none succeeded since): readiness then
    /// probes a write rather than trusting a read.
    failing: AtomicBool,
}

impl<S: Storage> AuditWriter<S> {
    /// A writer into `storage`'s log, stamping records by `clock`.
    pub fn new(storage: Arc<S>, clock: SharedClock) -> Self {
        Self {
            commits: GroupCommit::new(storage),
            clock,
            failing: AtomicBool::new(false),
        }
    }

    /// The clock records are stamped by (the release and admin services
    /// decide by the same one).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// A record of `event` stamped now, not yet written.
    pub fn record<T: Details>(
        &self,
        event: Event,
        outcome: Outcome,
        refusal: Option<&Refusal>,
        details: &T,
    ) -> AuditRecord {
        AuditRecord::new(
            event,
            outcome,
            refusal.map(|r| (r.gate, r.reason)),
            details,
            self.clock.now_millis(),
        )
    }

    /// Appends the records; refuses when they cannot be made durable.
    pub async fn write(&self, records: Vec<AuditRecord>) -> Result<(), Refusal> {
        self.commit(CommitItem {
            records,
            ..CommitItem::default()
        })
        .await
        .map(|_| ())
    }

    /// Audits an admin change about to be carried out (a change is never
    /// made unaudited; its refusal, if it comes, is audited after).
    pub async fn admin_intent(&self, details: &AdminDetails) -> Result<(), Refusal> {
        let record = self.record(Event::Admin, Outcome::Allowed, None, details);
        self.write(vec![record]).await
    }

    /// Commits one request's durable writes with the others waiting (group
    /// commit); returns false when its `jti` was seen before. Refuses when
    /// they cannot be made durable.
    pub async fn commit(&self, item: CommitItem) -> Result<bool, Refusal> {
        let outcome = self.commits.commit(item).await;
        self.failing.store(outcome.is_err(), Ordering::SeqCst);
        outcome.map(|committed| committed.fresh).map_err(|error| {
            tracing::error!(%error, "audit write failed: refusing");
            Refusal::new(
                Gate::Request,
                Reason::AuditUnavailable,
                "the decision could not be audited, so it is refused",
            )
        })
    }

    /// Whether the last commit failed (no commit succeeded since).
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// A write succeeded outside a commit (readiness's probe): commits are
    /// expected to succeed again.
    pub fn recovered(&self) {
        self.failing.store(false, Ordering::SeqCst);
    }
}
