//! `podseal-dev bench`: flags to options, the run (in `podseal-bench`), the
//! report printed, and the exit code.

use podseal_command::out;
use std::time::Duration;

use podseal_bench::{BenchError, Engine, Options, Scenario};

use crate::cli::{BenchArgs, BenchEngine, BenchScenario};
use podseal_command::CliError;
use podseal_command::output::{OutputFormat, print_data};

/// Runs the benchmark and prints its report.
pub fn run(args: &BenchArgs, output: OutputFormat) -> Result<(), CliError> {
    let options = options(args)?;
    let report = podseal_bench::run(&options).map_err(bench_error)?;
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, &report)?,
        OutputFormat::Text => out!("{}", report.to_text())?,
    }
    match report.worst_over(args.max_errors) {
        Some((scenario, errors)) => Err(CliError::failure(format!(
            "scenario `{scenario}` had {errors} failed requests (more than --max-errors {})",
            args.max_errors
        ))
        .hint("the report lists them by status and refusal code")),
        None => Ok(()),
    }
}

fn seconds(flag: &str, secs: f64) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| CliError::usage(format!("{flag} must be a number of seconds, got {secs}")))
}

fn options(args: &BenchArgs) -> Result<Options, CliError> {
    let dev = std::env::current_exe()
        .map_err(|e| CliError::failure(format!("cannot find this program's path: {e}")))?;
    // The replicas run the release server installed beside this binary.
    let server = dev.with_file_name("podseal-server");
    if !server.is_file() {
        return Err(CliError::usage(format!(
            "{} is missing: the benchmark runs the release server found beside podseal-dev",
            server.display()
        ))
        .hint("build both: cargo build --release --bin podseal-dev --bin podseal-server"));
    }
    Ok(Options {
        dev,
        server,
        engine: match args.engine {
            BenchEngine::Sqlite => Engine::Sqlite,
            BenchEngine::Postgres => Engine::Postgres,
        },
        replicas: args.replicas,
        postgres_url: args.postgres_url.clone(),
        pods: args.pods,
        concurrency: args.concurrency,
        duration: seconds("--duration", args.duration)?,
        max_requests: args.max_requests,
        server_cpus: args.server_cpus.clone(),
        scenario: match args.scenario {
            BenchScenario::Unwrap => Scenario::Unwrap,
            BenchScenario::Session => Scenario::Session,
            BenchScenario::All => Scenario::All,
            BenchScenario::Openbao => Scenario::Openbao,
        },
        rate: args.rate,
        half_peak: args.half_peak,
        ceiling_duration: seconds("--ceiling-secs", args.ceiling_secs)?,
    })
}

fn bench_error(error: BenchError) -> CliError {
    let message = podseal_bench::error::chain(&error);
    if error.is_usage() {
        return CliError::usage(message);
    }
    let hint = match &error {
        BenchError::Deployment(podseal_bench::error::DeploymentError::Postgres { .. }) => {
            Some("start PostgreSQL (pg_ctlcluster … main start) or pass --postgres-url")
        }
        BenchError::Deployment(podseal_bench::error::DeploymentError::Spawn { .. }) => {
            Some("replicas start under `taskset` (util-linux); check that it is installed")
        }
        _ => None,
    };
    let failure = CliError::failure(message);
    match hint {
        Some(hint) => failure.hint(hint),
        None => failure,
    }
}
