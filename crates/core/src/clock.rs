//! The one clock. Code that decides on time (a session's expiry, a
//! capsule's `not_after`, a purpose's grace) reads it through [`Clock`],
//! handed to it as a [`SharedClock`], so that a test moves time with a
//! [`ManualClock`] instead of sleeping. [`SystemClock`] is the wall clock
//! every binary runs with.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall time since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;

    /// Whole seconds since the Unix epoch (rounded down).
    fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }
}

/// A clock shared by everything one server or client runs.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        // Before 1970 reads as negative; past i64 milliseconds saturates.
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        }
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told: for tests of expiry and grace.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `seconds` since the Unix epoch.
    pub fn at(seconds: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(seconds.saturating_mul(1000))))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(1_000);
        assert_eq!(clock.now(), 1_000);
        clock.advance(Duration::from_millis(1_500));
        assert_eq!((clock.now(), clock.now_millis()), (1_001, 1_001_500));
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock() {
        // Within a minute of what std reads: the same clock, in seconds.
        let std_now = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert!((SystemClock.now() - std_now).abs() < 60);
        assert!(SystemClock.now() > 1_700_000_000, "after 2023");
    }
}
