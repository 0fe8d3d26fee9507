//! The audit of refusals the HTTP layer answers before the release service
//! runs: a body over the limit (413), the wrong media type (415), malformed
//! JSON, a missing API key or token header, a missing or malformed
//! `Authorization: DPoP <session>`, a capsule that does not parse or carries
//! the content ciphertext, headers over the limit (431) — on the release
//! routes. The release service audits every refusal of its own, one record
//! each, durable before the answer. These come before any gate has said who
//! is asking, so anyone can send them in bulk: they are aggregated instead,
//! so that a flood of garbage cannot become a flood of records and fsyncs.
//!
//! Refusals are counted per key — (event, gate, reason, source address) —
//! within a window of [`WINDOW`]:
//!
//! - the first refusal of a key in a window gets a record at once
//!   (`details.aggregate = "first"`, `count = 1`), written by a background
//!   writer that takes every record waiting in one commit;
//! - when the window ends, each key refused again after its first record
//!   gets one more (`aggregate = "repeats"`, `count` = how many, `first_ms`
//!   and `last_ms` = when the first and last of them came);
//! - a window holds at most [`MAX_SOURCE_KEYS`] keys with a source address;
//!   a new address past that is counted under `source = "other"`, one key
//!   per (event, gate, reason), of which there are finitely many.
//!
//! So per window there are at most 2 × ([`MAX_SOURCE_KEYS`] + the other
//! keys) records and no more commits than records, whatever the number of
//! requests; the counts add up exactly to the refusals. A record holds the
//! codes, the source address and the counts, never the request's body,
//! token, API key or proof. The answer does not wait for the record (it
//! refuses, so nothing is released); refusals counted since the last
//! record are lost if the process dies before its window ends.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use podseal_core::audit::event::RefusalCount;
use podseal_core::audit::{AuditRecord, Event, Outcome};
use podseal_core::wire;
use tokio::sync::Notify;

use crate::audit_log::AuditWriter;
use crate::gate::{Gate, Reason};
use crate::storage::Storage;

/// How long refusals of one key are counted before their repeats are written.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The most keys with a source address one window holds.
pub const MAX_SOURCE_KEYS: usize = 256;

/// The release routes whose HTTP-layer refusals are audited, and the event
/// each is recorded under (the release service's own event names).
pub const RELEASE_EVENTS: &[(&str, Event)] = &[
    (wire::SESSIONS_PATH, Event::Session),
    (wire::UNWRAP_PATH, Event::Unwrap),
    (wire::ROTATE_KEY_PATH, Event::RotateKey),
];

/// The event a route's refusals are recorded under; `None` for a route
/// whose HTTP-layer refusals are not audited (unknown paths, admin, health).
pub fn event_of(route: &str) -> Option<Event> {
    RELEASE_EVENTS
        .iter()
        .find(|(path, _)| *path == route)
        .map(|(_, event)| *event)
}

/// Where a refusal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Addr(IpAddr),
    /// Past [`MAX_SOURCE_KEYS`] in this window.
    Other,
    /// Not known (the router served without a connection, in tests).
    Unknown,
}

impl Source {
    fn text(self) -> String {
        match self {
            Self::Addr(ip) => ip.to_string(),
            Self::Other => "other".to_owned(),
            Self::Unknown => "unknown".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    event: Event,
    gate: Gate,
    reason: Reason,
    source: Source,
}

/// The refusals of one key after its first record in this window.
#[derive(Default)]
struct Repeats {
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

#[derive(Default)]
struct Window {
    keys: HashMap<Key, Repeats>,
    /// How many keys have a source address.
    with_source: usize,
    /// Records waiting for the writer.
    pending: Vec<AuditRecord>,
}

/// The counts of the current window and the records waiting to be written.
#[derive(Default)]
pub struct RequestRefusals {
    window: Mutex<Window>,
    wake: Notify,
}

fn record(key: &Key, aggregate: &str, count: u64, first_ms: i64, last_ms: i64) -> AuditRecord {
    let details = RefusalCount {
        source: Some(key.source.text()),
        aggregate: Some(aggregate.to_owned()),
        count: Some(count),
        first_ms: Some(first_ms),
        last_ms: Some(last_ms),
    };
    AuditRecord::new(
        key.event,
        Outcome::Refused,
        Some((key.gate, key.reason)),
        &details,
        jiff::Timestamp::now().as_millisecond(),
    )
}

impl RequestRefusals {
    /// Counts one refusal of `event` from `source`; the first of its key in
    /// this window is queued as a record at once.
    pub fn refused(&self, event: Event, gate: Gate, reason: Reason, source: Option<IpAddr>) {
        let now = jiff::Timestamp::now().as_millisecond();
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = Key {
            event,
            gate,
            reason,
            source: source.map_or(Source::Unknown, Source::Addr),
        };
        if matches!(key.source, Source::Addr(_))
            && window.with_source >= MAX_SOURCE_KEYS
            && !window.keys.contains_key(&key)
        {
            key.source = Source::Other;
        }
        let window = &mut *window;
        match window.keys.entry(key) {
            Entry::Occupied(mut seen) => {
                let repeats = seen.get_mut();
                if repeats.count == 0 {
                    repeats.first_ms = now;
                }
                repeats.count += 1;
                repeats.last_ms = now;
            }
            Entry::Vacant(new) => {
                if matches!(key.source, Source::Addr(_)) {
                    window.with_source += 1;
                }
                new.insert(Repeats::default());
                window.pending.push(record(&key, "first", 1, now, now));
                self.wake.notify_one();
            }
        }
    }

    /// Ends the window: one record for each key refused again after its
    /// first, queued; the next refusal of any key is a first again.
    pub fn end_window(&self) {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let window = &mut *window;
        for (key, repeats) in window.keys.drain() {
            if repeats.count > 0 {
                window.pending.push(record(
                    &key,
                    "repeats",
                    repeats.count,
                    repeats.first_ms,
                    repeats.last_ms,
                ));
            }
        }
        window.with_source = 0;
    }

    /// Takes every record waiting.
    fn take(&self) -> Vec<AuditRecord> {
        std::mem::take(
            &mut self
                .window
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pending,
        )
    }

    /// Writes every record waiting, in one commit. A failed write is logged
    /// (its records are lost, the refusals were answered already).
    pub async fn write<S: Storage>(&self, audit: &AuditWriter<S>) {
        let records = self.take();
        if records.is_empty() {
            return;
        }
        let count = records.len();
        if audit.write(records).await.is_err() {
            tracing::error!(
                records = count,
                "the audit records of request refusals could not be written"
            );
        }
    }

    /// Ends the window and writes what it counted (at shutdown, or when a
    /// test wants the records now).
    pub async fn flush<S: Storage>(&self, audit: &AuditWriter<S>) {
        self.end_window();
        self.write(audit).await;
    }

    /// The writer: records queued by a first refusal as they come, and each
    /// window's repeats when it ends. Runs until aborted.
    pub async fn run<S: Storage>(self: Arc<Self>, audit: Arc<AuditWriter<S>>) {
        let mut windows = tokio::time::interval(WINDOW);
        windows.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        windows.tick().await;
        loop {
            tokio::select! {
                _ = windows.tick() => self.end_window(),
                () = self.wake.notified() => {}
            }
            self.write(&audit).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> Option<IpAddr> {
        Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n)))
    }

    fn count(record: &AuditRecord) -> u64 {
        record.details["count"].parse().unwrap()
    }

    /// Thousands of refusals from one source make two records (the first
    /// and one for its repeats) whose counts add up to exactly the refusals.
    #[test]
    fn a_flood_from_one_source_is_two_records_counted_exactly() {
        let refusals = RequestRefusals::default();
        for _ in 0..5000 {
            refusals.refused(Event::Session, Gate::Request, Reason::MalformedBody, ip(1));
        }
        assert_eq!(refusals.take().len(), 1);
        refusals.end_window();
        let repeats = refusals.take();
        assert_eq!(repeats.len(), 1);
        assert_eq!(repeats[0].details["aggregate"], "repeats");
        assert_eq!(count(&repeats[0]), 4999);
        assert_eq!(repeats[0].details["source"], "10.0.0.1");
        assert_eq!(repeats[0].reason, Some(Reason::MalformedBody));
        // The next window starts again with a first record.
        refusals.refused(Event::Session, Gate::Request, Reason::MalformedBody, ip(1));
        assert_eq!(refusals.take()[0].details["aggregate"], "first");
    }

    /// Refusals from more sources than a window holds: at most
    /// `MAX_SOURCE_KEYS` keys with an address plus one `other` key per
    /// reason, and the counts still add up to every refusal.
    #[test]
    fn many_sources_are_bounded_and_still_counted() {
        let refusals = RequestRefusals::default();
        let sources = 10 * MAX_SOURCE_KEYS as u32;
        let reasons = [Reason::MalformedBody, Reason::ApiKeyMissing];
        for reason in reasons {
            for n in 0..sources {
                refusals.refused(Event::Unwrap, Gate::Request, reason, ip(n));
                refusals.refused(Event::Unwrap, Gate::Request, reason, ip(n));
            }
        }
        refusals.end_window();
        let records = refusals.take();
        let other = records
            .iter()
            .filter(|r| r.details["source"] == "other")
            .count();
        let addressed: std::collections::HashSet<&str> = records
            .iter()
            .filter(|r| r.details["source"] != "other")
            .map(|r| r.details["source"].as_str())
            .collect();
        assert_eq!(addressed.len(), MAX_SOURCE_KEYS);
        // One `other` key per reason: a first record and one for its repeats.
        assert_eq!(other, 2 * reasons.len());
        assert_eq!(records.len(), 2 * MAX_SOURCE_KEYS + 2 * reasons.len());
        let total: u64 = records.iter().map(count).sum();
        assert_eq!(total, 2 * u64::from(sources) * reasons.len() as u64);
    }

    /// Each reason, event and source is its own key; nothing but the codes,
    /// the source and the counts is recorded.
    #[test]
    fn each_reason_is_recorded_with_codes_source_and_counts_only() {
        let refusals = RequestRefusals::default();
        refusals.refused(Event::Session, Gate::ApiKey, Reason::ApiKeyMissing, ip(1));
        refusals.refused(Event::Session, Gate::Token, Reason::TokenMissing, ip(1));
        refusals.refused(Event::Unwrap, Gate::Token, Reason::TokenMissing, ip(1));
        refusals.refused(Event::Unwrap, Gate::Token, Reason::TokenMissing, None);
        let records = refusals.take();
        assert_eq!(records.len(), 4);
        for record in &records {
            assert_eq!(record.outcome, Outcome::Refused);
            let keys: Vec<&str> = record.details.keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                ["aggregate", "count", "first_ms", "last_ms", "source"]
            );
        }
        assert_eq!(records[3].details["source"], "unknown");
        assert_eq!(event_of("/v1/sessions/rotate-key"), Some(Event::RotateKey));
        assert_eq!(event_of("/v1/admin/apikeys"), None);
    }
}
