//! What a run measured, as a table for people or one JSON document
//! (`-o json`). Every throughput is also a ratio to the crypto-only
//! ceiling, every p99 a multiple of one unwrap's crypto cost; a figure that
//! could not be measured (a counter the server does not expose yet) is
//! `null` in JSON and `n/a` in the table, never a guess.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::ceiling::Ceiling;
use crate::load::Percentiles;

/// How the run was set up.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// Release-server replicas.
    pub replicas: usize,
    /// Simulated pods.
    pub pods: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Seconds per scenario.
    pub duration_secs: f64,
    /// Hard bound on requests per scenario.
    pub max_requests: u64,
    /// Open-loop pacing given with `--rate`, requests/s.
    pub rate: Option<f64>,
    /// CPUs the replicas run on (`taskset -c`).
    pub server_cpus: String,
    /// CPUs the load generator is pinned to (`null`: shares the servers' CPUs).
    pub loadgen_cpus: Option<String>,
    /// CPUs this process could use at start.
    pub machine_cpus: usize,
    /// Whether this binary was built with optimisations.
    pub release_build: bool,
}

/// One process's resources over a scenario's window.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    /// `replica 0`, `openbao`.
    pub name: String,
    /// Process id.
    pub pid: u32,
    /// Resident memory at the window's start, KiB.
    pub rss_kib_start: u64,
    /// At its end, KiB.
    pub rss_kib_end: u64,
    /// CPU cores used (utime + stime over the window).
    pub cpu_cores: f64,
}

/// One scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// `unwrap`, `unwrap at 50% of peak`, `session`, `openbao transit decrypt`, …
    pub name: String,
    /// `podseal` or `openbao`.
    pub system: String,
    /// `closed loop` or `open loop at R/s`.
    pub mode: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests answered as expected.
    pub ok: u64,
    /// Failed requests by status and refusal code (or transport failure).
    pub errors: BTreeMap<String, u64>,
    /// Window, seconds.
    pub elapsed_secs: f64,
    /// Successful requests per second.
    pub throughput_per_s: f64,
    /// `throughput_per_s ÷ ceiling_per_s`.
    pub ratio_to_ceiling: f64,
    /// Client-side latency of successful requests, µs.
    pub latency_us: Percentiles,
    /// p99 ÷ one unwrap's crypto cost.
    pub p99_over_unwrap_crypto: f64,
    /// The server processes.
    pub servers: Vec<ProcessReport>,
    /// Sum of the servers' CPU cores.
    pub server_cpu_cores: f64,
    /// This process's CPU cores (the load generator).
    pub loadgen_cpu_cores: f64,
    /// `podseal_storage_round_trips_total` delta ÷ successful requests.
    pub storage_round_trips_per_op: Option<f64>,
    /// `podseal_storage_commits_total` delta ÷ successful requests.
    pub storage_commits_per_op: Option<f64>,
}

/// podseal against OpenBao, from the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// What is divided by what.
    pub what: String,
    /// podseal's rate.
    pub podseal_per_s: f64,
    /// OpenBao's rate.
    pub openbao_per_s: f64,
    /// `podseal_per_s ÷ openbao_per_s`.
    pub ratio: f64,
    /// The issue's target for the ratio.
    pub target: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The setup.
    pub setup: Setup,
    /// The crypto-only ceiling.
    pub ceiling: Ceiling,
    /// One entry per scenario, in run order.
    pub scenarios: Vec<ScenarioReport>,
    /// podseal ÷ OpenBao.
    pub comparisons: Vec<Comparison>,
    /// What each side does per request, when OpenBao ran.
    pub openbao_description: Option<String>,
    /// Things the reader should know (a scenario skipped, a counter absent).
    pub notes: Vec<String>,
}

impl Report {
    /// Failed requests in all scenarios.
    pub fn total_errors(&self) -> u64 {
        self.scenarios
            .iter()
            .map(|s| s.errors.values().sum::<u64>())
            .sum()
    }

    /// The scenario with the most errors above `allowed`, if any.
    pub fn worst_over(&self, allowed: u64) -> Option<(&str, u64)> {
        self.scenarios
            .iter()
            .map(|s| (s.name.as_str(), s.errors.values().sum::<u64>()))
            .filter(|(_, errors)| *errors > allowed)
            .max_by_key(|(_, errors)| *errors)
    }

    /// The table for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let s = &self.setup;
        let loadgen = match &s.loadgen_cpus {
            Some(cpus) => format!("load generator on CPUs {cpus}"),
            None => "load generator SHARES the servers' CPUs".into(),
        };
        let _ = writeln!(
            out,
            "podseal-dev bench: {} replica(s) on {}, server CPUs {}, {loadgen}; {} pods, concurrency {}, {} s per scenario (at most {} requests){}",
            s.replicas,
            s.engine,
            s.server_cpus,
            s.pods,
            s.concurrency,
            s.duration_secs,
            s.max_requests,
            if s.release_build {
                ""
            } else {
                "; DEBUG BUILD: figures are not representative"
            }
        );
        let c = &self.ceiling;
        let _ = writeln!(
            out,
            "crypto-only ceiling: one unwrap = {:.1} µs ({}), {:.0}/s per core x {} server CPU(s) = {:.0}/s",
            c.unwrap_crypto_us, c.what, c.per_core_per_s, c.server_cpus, c.ceiling_per_s
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<36} {:>8} {:>6} {:>9} {:>7} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>9} {:>9}",
            "scenario",
            "ok",
            "errors",
            "per s",
            "x ceil",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "p99/cr",
            "srv CPU",
            "gen CPU",
            "trips/op",
            "commit/op"
        );
        for r in &self.scenarios {
            let _ = writeln!(
                out,
                "{:<36} {:>8} {:>6} {:>9.0} {:>7.3} {:>8} {:>8} {:>8} {:>7.1} {:>7.2} {:>7.2} {:>9} {:>9}",
                truncate(&format!("{} ({})", r.name, r.mode), 36),
                r.ok,
                r.errors.values().sum::<u64>(),
                r.throughput_per_s,
                r.ratio_to_ceiling,
                r.latency_us.p50,
                r.latency_us.p99,
                r.latency_us.p999,
                r.p99_over_unwrap_crypto,
                r.server_cpu_cores,
                r.loadgen_cpu_cores,
                per_op(r.storage_round_trips_per_op),
                per_op(r.storage_commits_per_op),
            );
        }
        let _ = writeln!(out);
        for r in &self.scenarios {
            let memory: Vec<String> = r
                .servers
                .iter()
                .map(|p| {
                    format!(
                        "{} RSS {:.1} -> {:.1} MiB, {:.2} cores",
                        p.name,
                        p.rss_kib_start as f64 / 1024.0,
                        p.rss_kib_end as f64 / 1024.0,
                        p.cpu_cores
                    )
                })
                .collect();
            let _ = writeln!(out, "{}: {}", r.name, memory.join("; "));
            for (label, count) in &r.errors {
                let _ = writeln!(out, "  error {label}: {count}");
            }
        }
        if !self.comparisons.is_empty() {
            let _ = writeln!(out);
            for c in &self.comparisons {
                let _ = writeln!(
                    out,
                    "{}: {:.0} / {:.0} = {:.2} (target >= {})",
                    c.what, c.podseal_per_s, c.openbao_per_s, c.ratio, c.target
                );
            }
        }
        if let Some(description) = &self.openbao_description {
            let _ = writeln!(out, "per request: {description}");
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

fn per_op(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".into(), |v| format!("{v:.2}"))
}

fn truncate(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}
