//! The bounded load driver, the same for podseal and for OpenBao.
//!
//! Closed loop: `concurrency` workers each send one request, wait for its
//! answer, and send the next, until the duration is over or `max_requests`
//! have been started. Latency is timed around each request (building a
//! request, e.g. signing its DPoP proof, is inside it: that is what a pod
//! does).
//!
//! Open loop (`rate`): request `i` is due at `start + i / rate`; at most
//! `concurrency` are in flight, and a request's latency is counted from
//! when it was due, so time spent waiting for a free slot is latency too
//! (no coordinated omission). Tokio's timer is millisecond-grained, so
//! requests due within one millisecond leave together.
//!
//! Every loop is bounded in count (`max_requests`) and in time (the
//! duration, plus each request's own deadline in the client).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How much load, for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadPlan {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// How long to keep starting requests.
    pub duration: Duration,
    /// Hard bound on requests started.
    pub max_requests: u64,
    /// Open-loop pacing, requests per second; `None` for a closed loop.
    pub rate: Option<f64>,
}

/// What one run of the driver saw.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Requests started (and finished).
    pub requests: u64,
    /// Requests that got the expected answer.
    pub ok: u64,
    /// Failures by label (`401 dpop/key_not_pinned`, `transport: timeout`).
    pub errors: BTreeMap<String, u64>,
    /// Latency of each successful request, µs.
    pub latencies_us: Vec<u64>,
    /// From the first request started to the last answered.
    pub elapsed: Duration,
}

/// Latency percentiles, µs (nearest rank).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
}

impl LoadResult {
    /// Successful requests per second over the run.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// Failed requests.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// p50, p99, p99.9 and max of the successful requests.
    pub fn percentiles(&self) -> Percentiles {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let rank = |p: f64| -> u64 {
            if sorted.is_empty() {
                return 0;
            }
            let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted.get(index).copied().unwrap_or_default()
        };
        Percentiles {
            p50: rank(0.50),
            p99: rank(0.99),
            p999: rank(0.999),
            max: sorted.last().copied().unwrap_or_default(),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.latencies_us.extend(other.latencies_us);
        for (label, count) in other.errors {
            *self.errors.entry(label).or_default() += count;
        }
    }
}

/// One worker's (or one request's) counts.
#[derive(Default)]
struct Tally {
    requests: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    latencies_us: Vec<u64>,
}

impl Tally {
    fn record<E: fmt::Display>(&mut self, outcome: Result<(), E>, latency: Duration) {
        self.requests += 1;
        match outcome {
            Ok(()) => {
                self.ok += 1;
                self.latencies_us
                    .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
            }
            Err(failure) => *self.errors.entry(failure.to_string()).or_default() += 1,
        }
    }
}

/// Runs `request(i)` for i = 0, 1, … under `plan`. A failed request is
/// counted under what its error says (its `Display`, not its sources), so
/// what request errors say must be few and never hold secrets.
pub async fn drive<F, Fut, E>(plan: LoadPlan, request: F) -> LoadResult
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display + 'static,
{
    let request = Arc::new(request);
    match plan.rate {
        Some(rate) if rate > 0.0 => open_loop(plan, rate, request).await,
        _ => closed_loop(plan, request).await,
    }
}

async fn closed_loop<F, Fut, E>(plan: LoadPlan, request: Arc<F>) -> LoadResult
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display + 'static,
{
    let start = Instant::now();
    let deadline = start + plan.duration;
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..plan.concurrency.max(1) {
        let (request, next) = (request.clone(), next.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.max_requests {
                    break;
                }
                let sent = Instant::now();
                let outcome = request(i).await;
                tally.record(outcome, sent.elapsed());
            }
            tally
        });
    }
    let mut result = LoadResult::default();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(tally) => result.merge(tally),
            Err(_) => *result.errors.entry("worker panicked".into()).or_default() += 1,
        }
    }
    result.elapsed = start.elapsed();
    result
}

async fn open_loop<F, Fut, E>(plan: LoadPlan, rate: f64, request: Arc<F>) -> LoadResult
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display + 'static,
{
    let total = ((rate * plan.duration.as_secs_f64()).ceil() as u64).min(plan.max_requests);
    let slots = Arc::new(Semaphore::new(plan.concurrency.max(1)));
    let start = Instant::now();
    let start_tokio = tokio::time::Instant::from_std(start);
    let mut in_flight = JoinSet::new();
    let mut result = LoadResult::default();
    for i in 0..total {
        let due = Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(start_tokio + due).await;
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let request = request.clone();
        in_flight.spawn(async move {
            let mut tally = Tally::default();
            let outcome = request(i).await;
            tally.record(outcome, start.elapsed().saturating_sub(due));
            drop(permit);
            tally
        });
        while let Some(joined) = in_flight.try_join_next() {
            collect(&mut result, joined);
        }
    }
    while let Some(joined) = in_flight.join_next().await {
        collect(&mut result, joined);
    }
    result.elapsed = start.elapsed();
    result
}

fn collect(result: &mut LoadResult, joined: Result<Tally, tokio::task::JoinError>) {
    match joined {
        Ok(tally) => result.merge(tally),
        Err(_) => *result.errors.entry("request panicked".into()).or_default() += 1,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use std::convert::Infallible;

    use super::*;

    #[tokio::test]
    async fn a_closed_loop_stops_at_its_count_bound() {
        let plan = LoadPlan {
            concurrency: 4,
            duration: Duration::from_secs(30),
            max_requests: 100,
            rate: None,
        };
        let result = drive(plan, |i| async move {
            if i % 10 == 0 {
                Err("even tenth".to_owned())
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(result.requests, 100);
        assert_eq!(result.ok, 90);
        assert_eq!(result.errors.get("even tenth"), Some(&10));
        assert!(result.elapsed < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_closed_loop_stops_at_its_time_bound() {
        let plan = LoadPlan {
            concurrency: 2,
            duration: Duration::from_millis(100),
            max_requests: u64::MAX,
            rate: None,
        };
        let result = drive(plan, |_| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, Infallible>(())
        })
        .await;
        assert!(result.ok > 5 && result.ok < 100, "{}", result.ok);
        assert!(result.percentiles().p50 >= 5_000);
    }

    #[tokio::test]
    async fn an_open_loop_keeps_its_pace() {
        let plan = LoadPlan {
            concurrency: 8,
            duration: Duration::from_millis(500),
            max_requests: 1_000,
            rate: Some(200.0),
        };
        let result = drive(plan, |_| async { Ok::<_, Infallible>(()) }).await;
        assert_eq!(result.requests, 100);
        assert!(result.elapsed >= Duration::from_millis(490));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let result = LoadResult {
            latencies_us: (1..=1000).rev().collect(),
            ..LoadResult::default()
        };
        let p = result.percentiles();
        assert_eq!((p.p50, p.p99, p.p999, p.max), (500, 990, 999, 1000));
    }
}
