//! One run: the deployment, the pods, then each scenario measured over its
//! own window (process counters and storage counters read before and after).

use std::sync::Arc;
use std::time::Instant;

use crate::ceiling::Ceiling;
use crate::cpus::CpuList;
use crate::deployment::{Deployment, DeploymentConfig};
use crate::error;
use crate::load::{self, LoadPlan, LoadResult};
use crate::openbao::{JwtSetup, OpenBao, OpenBaoError};
use crate::process_stats::{self, Sample};
use crate::report::{Comparison, ProcessReport, Report, ScenarioReport, Setup};
use crate::simulated_pods;
use crate::simulated_pods::Pods;
use crate::{BenchError, Options, Scenario};

/// Storage round trips counter the servers expose in `/metrics`.
const ROUND_TRIPS: &str = "podseal_storage_round_trips_total";
/// Storage commits counter.
const COMMITS: &str = "podseal_storage_commits_total";

/// The audience of the pods' tokens for OpenBao's JWT role.
const OPENBAO_AUDIENCE: &str = "openbao";

/// What podseal does per request, beside OpenBao's description.
const PODSEAL_DESCRIPTION: &str = "podseal (N `podseal-server` replicas): each request over TLS 1.3 keep-alive passes the four gates — API key, projected ServiceAccount token (RS256, pinned JWKS), DPoP proof (one Ed25519 verify, its jti recorded once cluster-wide), live pod and image digest from the pod view — then an unwrap opens the org wrap and seals the DEK to the pod's key (HPKE, X25519) and a session pins the DPoP key and stores the session; each is answered only after its audit record is durable (SQLite synchronous=FULL or a PostgreSQL commit).";

/// An OpenBao request that failed under load, counted under a bounded
/// label: `openbao: ` and the start of what the error and its sources say
/// (OpenBao's own messages, never a token; cut so labels stay few and
/// short). The error is printed in the label, so it is not a source.
#[derive(Debug, thiserror::Error)]
enum OpenBaoFailure {
    /// The request failed.
    #[error("openbao: {}", error::chain(.0).chars().take(80).collect::<String>())]
    Request(OpenBaoError),
    /// No token for the login (there are no pods).
    #[error("no token")]
    NoToken,
}

/// Whether the OpenBao comparison can run (`PODSEAL_BAO` or `bao` on PATH).
pub(crate) fn openbao_available() -> bool {
    crate::openbao::binary().is_some()
}

/// A run's inputs.
pub(crate) struct Run<'a> {
    pub options: &'a Options,
    pub server_cpus: &'a CpuList,
    pub postgres_url: Option<&'a str>,
    pub setup: Setup,
    pub ceiling: Ceiling,
}

/// Processes whose counters a scenario reports.
struct Watched {
    processes: Vec<(String, u32)>,
}

impl Watched {
    fn of(deployment: &Deployment) -> Self {
        Self {
            processes: deployment
                .replicas
                .iter()
                .map(|r| (r.process.what().to_owned(), r.process.pid()))
                .collect(),
        }
    }

    fn sample(&self) -> Result<Vec<Sample>, BenchError> {
        self.processes
            .iter()
            .map(|(_, pid)| process_stats::sample(*pid))
            .collect::<Result<_, _>>()
            .map_err(|e| BenchError::Local(e.to_string()))
    }
}

/// Counters read before a window.
struct Before {
    at: Instant,
    servers: Vec<Sample>,
    loadgen: std::time::Duration,
    round_trips: Option<f64>,
    commits: Option<f64>,
}

impl Run<'_> {
    /// Starts the deployment, enrols the pods, runs the chosen scenarios.
    pub(crate) async fn execute(self) -> Result<Report, BenchError> {
        let options = self.options;
        let dir = tempfile::Builder::new()
            .prefix("podseal-bench-")
            .tempdir()
            .map_err(|e| BenchError::Local(format!("cannot create a temporary directory: {e}")))?;
        let mut deployment = Deployment::start(DeploymentConfig {
            dev: &options.dev,
            server: &options.server,
            dir: dir.path(),
            engine: options.engine,
            postgres_url: self.postgres_url,
            replicas: options.replicas,
            server_cpus: Some(self.server_cpus),
        })
        .await?;
        let pods = Pods::enrol(&deployment, options.pods).await?.shared();
        pods.check_releases_open().await?;
        let mut report = Report {
            setup: self.setup.clone(),
            ceiling: self.ceiling.clone(),
            scenarios: Vec::new(),
            comparisons: Vec::new(),
            openbao_description: None,
            notes: Vec::new(),
        };
        let plan = LoadPlan {
            concurrency: options.concurrency,
            duration: options.duration,
            max_requests: options.max_requests,
            rate: options.rate,
        };
        let all = options.scenario == Scenario::All;
        if matches!(
            options.scenario,
            Scenario::Unwrap | Scenario::All | Scenario::Openbao
        ) {
            let peak = self
                .podseal(&mut deployment, "unwrap", plan, &pods, Op::Unwrap)
                .await?;
            let peak_rate = peak.throughput_per_s;
            report.scenarios.push(peak);
            if (options.half_peak || all) && options.rate.is_none() && peak_rate > 0.0 {
                let half = LoadPlan {
                    rate: Some(peak_rate / 2.0),
                    ..plan
                };
                let name = "unwrap at 50% of peak";
                report.scenarios.push(
                    self.podseal(&mut deployment, name, half, &pods, Op::Unwrap)
                        .await?,
                );
            }
        }
        if matches!(
            options.scenario,
            Scenario::Session | Scenario::All | Scenario::Openbao
        ) {
            report.scenarios.push(
                self.podseal(&mut deployment, "session", plan, &pods, Op::Session)
                    .await?,
            );
        }
        if options.scenario == Scenario::Openbao || (all && openbao_available()) {
            self.openbao(&mut deployment, dir.path(), plan, &mut report)
                .await?;
        } else if all {
            report
                .notes
                .push("OpenBao comparison skipped: `bao` is not on PATH".into());
        }
        if report
            .scenarios
            .iter()
            .any(|s| s.system == "podseal" && s.storage_commits_per_op.is_none())
        {
            report.notes.push(format!(
                "the servers do not expose {ROUND_TRIPS} / {COMMITS}: shown as n/a"
            ));
        } else {
            report.notes.push(
                "storage counters include the servers' background work in the window (cluster refresh polls, checkpoints)".into(),
            );
        }
        deployment.check_alive()?;
        Ok(report)
    }

    async fn before(
        &self,
        deployment: &Deployment,
        watched: &Watched,
    ) -> Result<Before, BenchError> {
        let round_trips = deployment.metric_sum(ROUND_TRIPS).await;
        let commits = deployment.metric_sum(COMMITS).await;
        Ok(Before {
            servers: watched.sample()?,
            loadgen: self_cpu()?,
            round_trips,
            commits,
            at: Instant::now(),
        })
    }

    /// One podseal scenario over its window.
    async fn podseal(
        &self,
        deployment: &mut Deployment,
        name: &str,
        plan: LoadPlan,
        pods: &Arc<Pods>,
        op: Op,
    ) -> Result<ScenarioReport, BenchError> {
        deployment.check_alive()?;
        let watched = Watched::of(deployment);
        let before = self.before(deployment, &watched).await?;
        let pods = pods.clone();
        let result = match op {
            Op::Unwrap => {
                load::drive(plan, move |i| {
                    let pods = pods.clone();
                    async move { pods.unwrap(i).await }
                })
                .await
            }
            Op::Session => {
                load::drive(plan, move |i| {
                    let pods = pods.clone();
                    async move { pods.establish_session(i).await }
                })
                .await
            }
        };
        let (servers, loadgen, window) = after(&watched, &before)?;
        deployment.check_alive()?;
        let round_trips = per_op(
            before.round_trips,
            deployment.metric_sum(ROUND_TRIPS).await,
            result.ok,
        );
        let commits = per_op(
            before.commits,
            deployment.metric_sum(COMMITS).await,
            result.ok,
        );
        let mut report =
            self.scenario_report(name, "podseal", plan, &result, servers, loadgen, window);
        report.storage_round_trips_per_op = round_trips;
        report.storage_commits_per_op = commits;
        Ok(report)
    }

    /// OpenBao started beside the deployment (same server CPUs, JWT auth
    /// pinned to the stand-in's JWKS), driven with the same plan: transit
    /// decrypts, then JWT logins with the pods' own projected tokens
    /// (audience `openbao`); then podseal ÷ OpenBao ratios.
    async fn openbao(
        &self,
        deployment: &mut Deployment,
        dir: &std::path::Path,
        plan: LoadPlan,
        report: &mut Report,
    ) -> Result<(), BenchError> {
        let (jwks_json, issuer) = deployment.jwks_and_issuer().await?;
        let jwt = JwtSetup {
            jwks_json,
            issuer,
            audience: OPENBAO_AUDIENCE.into(),
        };
        let cpus = self.server_cpus.to_string();
        let binary = crate::openbao::binary().ok_or(OpenBaoError::NotInstalled)?;
        let bao = Arc::new(OpenBao::start(&binary, &dir.join("openbao"), Some(&cpus), &jwt).await?);
        let client = bao.client()?;
        let ciphertext: Arc<str> = bao.prepare_ciphertext(&client).await?.into();
        let mut tokens = Vec::with_capacity(self.options.pods);
        for i in 0..self.options.pods {
            tokens.push(
                deployment
                    .token(&simulated_pods::pod_name(i), OPENBAO_AUDIENCE)
                    .await?,
            );
        }
        let tokens = Arc::new(tokens);
        let watched = Watched {
            processes: vec![("openbao".into(), bao.pid())],
        };
        // The closures hold clones: `bao` lives (and the server runs) until
        // both windows have been sampled.
        let (server, http) = (bao.clone(), client.clone());
        let decrypts = self
            .openbao_window("openbao transit decrypt", plan, &watched, move |_| {
                let (server, http, ciphertext) = (server.clone(), http.clone(), ciphertext.clone());
                async move {
                    server
                        .transit_decrypt(&http, &ciphertext)
                        .await
                        .map_err(OpenBaoFailure::Request)
                }
            })
            .await?;
        let (server, http) = (bao.clone(), client);
        let logins = self
            .openbao_window("openbao jwt login", plan, &watched, move |i| {
                let (server, http, tokens) = (server.clone(), http.clone(), tokens.clone());
                async move {
                    let count = tokens.len().max(1) as u64;
                    let token = usize::try_from(i % count)
                        .ok()
                        .and_then(|i| tokens.get(i))
                        .ok_or(OpenBaoFailure::NoToken)?;
                    server
                        .jwt_login(&http, token)
                        .await
                        .map_err(OpenBaoFailure::Request)
                }
            })
            .await?;
        drop(bao);
        deployment.check_alive()?;
        for (podseal, openbao, what, target) in [
            (
                "unwrap",
                &decrypts,
                "podseal unwraps/s ÷ OpenBao transit decrypts/s",
                1.5,
            ),
            (
                "session",
                &logins,
                "podseal sessions/s ÷ OpenBao JWT logins/s",
                2.0,
            ),
        ] {
            if let Some(ours) = report.scenarios.iter().find(|s| s.name == podseal) {
                report.comparisons.push(Comparison {
                    what: what.into(),
                    podseal_per_s: ours.throughput_per_s,
                    openbao_per_s: openbao.throughput_per_s,
                    ratio: if openbao.throughput_per_s > 0.0 {
                        ours.throughput_per_s / openbao.throughput_per_s
                    } else {
                        0.0
                    },
                    target,
                });
            }
        }
        report.openbao_description =
            Some(format!("{PODSEAL_DESCRIPTION} {}", OpenBao::DESCRIPTION));
        report.scenarios.push(decrypts);
        report.scenarios.push(logins);
        Ok(())
    }

    /// One OpenBao scenario over its window.
    async fn openbao_window<F, Fut, E>(
        &self,
        name: &str,
        plan: LoadPlan,
        watched: &Watched,
        request: F,
    ) -> Result<ScenarioReport, BenchError>
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        let before = Before {
            servers: watched.sample()?,
            loadgen: self_cpu()?,
            round_trips: None,
            commits: None,
            at: Instant::now(),
        };
        let result = load::drive(plan, request).await;
        let (servers, loadgen, window) = after(watched, &before)?;
        Ok(self.scenario_report(name, "openbao", plan, &result, servers, loadgen, window))
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one row of the report, field by field"
    )]
    fn scenario_report(
        &self,
        name: &str,
        system: &str,
        plan: LoadPlan,
        result: &LoadResult,
        servers: Vec<ProcessReport>,
        loadgen_cpu_cores: f64,
        _window: std::time::Duration,
    ) -> ScenarioReport {
        let latency = result.percentiles();
        let throughput = result.throughput();
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        ScenarioReport {
            name: name.into(),
            system: system.into(),
            mode: match plan.rate {
                Some(rate) => format!("open loop at {rate:.0}/s"),
                None => "closed loop".into(),
            },
            requests: result.requests,
            ok: result.ok,
            errors: result.errors.clone(),
            elapsed_secs: result.elapsed.as_secs_f64(),
            throughput_per_s: throughput,
            ratio_to_ceiling: ratio(throughput, self.ceiling.ceiling_per_s),
            latency_us: latency,
            p99_over_unwrap_crypto: ratio(latency.p99 as f64, self.ceiling.unwrap_crypto_us),
            server_cpu_cores: servers.iter().map(|s| s.cpu_cores).sum(),
            servers,
            loadgen_cpu_cores,
            storage_round_trips_per_op: None,
            storage_commits_per_op: None,
        }
    }
}

/// What a podseal scenario's requests are.
#[derive(Debug, Clone, Copy)]
enum Op {
    Unwrap,
    Session,
}

fn self_cpu() -> Result<std::time::Duration, BenchError> {
    process_stats::cpu_time(std::process::id()).map_err(|e| BenchError::Local(e.to_string()))
}

/// The window's process figures: servers, load generator cores, window.
fn after(
    watched: &Watched,
    before: &Before,
) -> Result<(Vec<ProcessReport>, f64, std::time::Duration), BenchError> {
    let servers_after = watched.sample()?;
    let loadgen_after = self_cpu()?;
    let window = before.at.elapsed();
    let servers = watched
        .processes
        .iter()
        .zip(before.servers.iter().zip(servers_after))
        .map(|((name, pid), (start, end))| ProcessReport {
            name: name.clone(),
            pid: *pid,
            rss_kib_start: start.rss_kib,
            rss_kib_end: end.rss_kib,
            cpu_cores: process_stats::cores_used(start.cpu, end.cpu, window),
        })
        .collect();
    let loadgen = process_stats::cores_used(before.loadgen, loadgen_after, window);
    Ok((servers, loadgen, window))
}

/// `(after − before) ÷ ops`, when both counters exist.
fn per_op(before: Option<f64>, after: Option<f64>, ops: u64) -> Option<f64> {
    match (before, after) {
        (Some(before), Some(after)) if ops > 0 => Some((after - before).max(0.0) / ops as f64),
        _ => None,
    }
}
