//! Prometheus text exposition for `GET /metrics`: requests by route and
//! status, refusals by gate and reason, request latency histograms by
//! route, each cluster view's staleness, and how DPoP keys enrolled.
//!
//! Labels are bounded: routes are the router's patterns (unmatched paths
//! count as `unmatched`), gates and reasons are the stable codes. No label
//! ever holds a token, key, session id or pod name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use podseal_core::reason::{Gate, Reason};

/// Histogram upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    refusals: BTreeMap<(&'static str, &'static str), u64>,
    latency: BTreeMap<String, Histogram>,
}

/// The server's counters. Cheap to update; one lock, held briefly.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// A cluster view's state for the exposition.
pub struct ViewSample {
    /// Cluster name (an admin-chosen identifier).
    pub cluster: String,
    /// Seconds since the API server was last heard from (`None`: never).
    pub last_heard: Option<Duration>,
    /// Whether the view may answer.
    pub fresh: bool,
    /// Session requests waiting for the view to show a container's new
    /// instance.
    pub waiting: usize,
    /// Key ids the cluster publishes that are not pinned.
    pub unpinned_kids: usize,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one answered request.
    pub fn request(
        &self,
        route: &str,
        status: u16,
        elapsed: Duration,
        refusal: Option<(Gate, Reason)>,
    ) {
        let mut inner = self.lock();
        *inner
            .requests
            .entry((route.to_owned(), status))
            .or_default() += 1;
        if let Some((gate, reason)) = refusal {
            *inner
                .refusals
                .entry((gate.code(), reason.code()))
                .or_default() += 1;
        }
        inner
            .latency
            .entry(route.to_owned())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// The exposition text; `storage` is the engine's (round trips,
    /// commits), `enrolments` the release path's (kind, count).
    pub fn render(
        &self,
        views: &[ViewSample],
        storage: (u64, u64),
        enrolments: &[(&str, u64)],
    ) -> String {
        let inner = self.lock();
        let mut out = String::new();
        out.push_str("# HELP podseal_requests_total Requests answered, by route and HTTP status.\n# TYPE podseal_requests_total counter\n");
        for ((route, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "podseal_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP podseal_refusals_total Refusals, by gate and reason code.\n# TYPE podseal_refusals_total counter\n");
        for ((gate, reason), n) in &inner.refusals {
            let _ = writeln!(
                out,
                "podseal_refusals_total{{gate=\"{gate}\",reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP podseal_request_duration_seconds Time to answer, by route.\n# TYPE podseal_request_duration_seconds histogram\n");
        for (route, histogram) in &inner.latency {
            let route = escape(route);
            for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter()) {
                let _ = writeln!(
                    out,
                    "podseal_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "podseal_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\npodseal_request_duration_seconds_sum{{route=\"{route}\"}} {}\npodseal_request_duration_seconds_count{{route=\"{route}\"}} {}",
                histogram.count, histogram.sum, histogram.count
            );
        }
        out.push_str("# HELP podseal_view_last_heard_seconds Seconds since the cluster's API server was last heard from (-1: never).\n# TYPE podseal_view_last_heard_seconds gauge\n");
        for view in views {
            let age = view.last_heard.map_or(-1.0, |d| d.as_secs_f64());
            let _ = writeln!(
                out,
                "podseal_view_last_heard_seconds{{cluster=\"{}\"}} {age}",
                escape(&view.cluster)
            );
        }
        out.push_str("# HELP podseal_view_fresh 1 when the cluster's pod view may decide, else 0 (gate 4 refuses).\n# TYPE podseal_view_fresh gauge\n");
        for view in views {
            let _ = writeln!(
                out,
                "podseal_view_fresh{{cluster=\"{}\"}} {}",
                escape(&view.cluster),
                u8::from(view.fresh)
            );
        }
        out.push_str("# HELP podseal_enrolments_total Session requests by how their DPoP key was pinned: pinned (a container's first key), same_key, after_restart (a restarted container's key replaced the old one, whose sessions ended), conflict (refused: another key holds the running instance's pin; an enrolment race or a second process).\n# TYPE podseal_enrolments_total counter\n");
        for (kind, n) in enrolments {
            let _ = writeln!(out, "podseal_enrolments_total{{kind=\"{kind}\"}} {n}");
        }
        out.push_str("# HELP podseal_view_waiting_requests Session requests waiting for the cluster's API server to report a container's new running instance.\n# TYPE podseal_view_waiting_requests gauge\n");
        for view in views {
            let _ = writeln!(
                out,
                "podseal_view_waiting_requests{{cluster=\"{}\"}} {}",
                escape(&view.cluster),
                view.waiting
            );
        }
        out.push_str("# HELP podseal_cluster_unpinned_kids Token-signing key ids the cluster publishes that are not pinned here (above 0: it rotated its key, and its pods' new tokens are refused until `cluster add --replace`).\n# TYPE podseal_cluster_unpinned_kids gauge\n");
        for view in views {
            let _ = writeln!(
                out,
                "podseal_cluster_unpinned_kids{{cluster=\"{}\"}} {}",
                escape(&view.cluster),
                view.unpinned_kids
            );
        }
        let (round_trips, commits) = storage;
        let _ = writeln!(
            out,
            "# HELP podseal_storage_round_trips_total Times this server waited on its database (a pipelined flight counts once).\n# TYPE podseal_storage_round_trips_total counter\npodseal_storage_round_trips_total {round_trips}\n# HELP podseal_storage_commits_total Durable commits this server made.\n# TYPE podseal_storage_commits_total counter\npodseal_storage_commits_total {commits}"
        );
        out
    }
}

/// Label value escaping of the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histograms_and_gauges_render_in_the_text_format() {
        let metrics = Metrics::default();
        metrics.request("/v1/unwrap", 200, Duration::from_millis(3), None);
        metrics.request(
            "/v1/unwrap",
            401,
            Duration::from_millis(30),
            Some((Gate::Dpop, Reason::JtiReplayed)),
        );
        let text = metrics.render(
            &[ViewSample {
                cluster: "prod".into(),
                last_heard: Some(Duration::from_millis(1500)),
                fresh: true,
                waiting: 1,
                unpinned_kids: 2,
            }],
            (7, 3),
            &[("after_restart", 2), ("conflict", 1)],
        );
        for line in [
            "podseal_requests_total{route=\"/v1/unwrap\",status=\"200\"} 1",
            "podseal_requests_total{route=\"/v1/unwrap\",status=\"401\"} 1",
            "podseal_refusals_total{gate=\"dpop\",reason=\"jti_replayed\"} 1",
            "podseal_request_duration_seconds_bucket{route=\"/v1/unwrap\",le=\"0.005\"} 1",
            "podseal_request_duration_seconds_bucket{route=\"/v1/unwrap\",le=\"0.05\"} 2",
            "podseal_request_duration_seconds_bucket{route=\"/v1/unwrap\",le=\"+Inf\"} 2",
            "podseal_request_duration_seconds_count{route=\"/v1/unwrap\"} 2",
            "podseal_view_last_heard_seconds{cluster=\"prod\"} 1.5",
            "podseal_view_fresh{cluster=\"prod\"} 1",
            "podseal_view_waiting_requests{cluster=\"prod\"} 1",
            "podseal_cluster_unpinned_kids{cluster=\"prod\"} 2",
            "podseal_storage_round_trips_total 7",
            "podseal_storage_commits_total 3",
            "podseal_enrolments_total{kind=\"after_restart\"} 2",
            "podseal_enrolments_total{kind=\"conflict\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
