//! `podseal-dev bench` end to end, kept short (a second per scenario): the
//! real binary starts the stand-in and the replicas, loads them, and prints
//! a JSON report whose figures must be sensible and whose error count must
//! be zero; every process it started must be gone when it exits. The
//! PostgreSQL leg runs for real (unreachable fails, never skips; set
//! PODSEAL_TEST_POSTGRES_URL to point elsewhere).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::process::Command;

use serde_json::Value;

/// The replicas' CPU: the second one when there are two, else the only one.
fn server_cpus() -> &'static str {
    match std::thread::available_parallelism().map(usize::from) {
        Ok(n) if n >= 2 => "1",
        _ => "0",
    }
}

/// PATH without the directories holding `bao`: `--scenario all` then
/// leaves OpenBao out (it adds seconds; run `podseal-dev bench --scenario
/// openbao` for the comparison).
fn path_without_openbao() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept = std::env::split_paths(&path).filter(|dir| !dir.join("bao").exists());
    std::env::join_paths(kept).unwrap()
}

fn bench(args: &[&str]) -> Value {
    // The replicas are `podseal-server`, found beside `podseal-dev`.
    podseal_test_support::binaries::server();
    let output = Command::new(env!("CARGO_BIN_EXE_podseal-dev"))
        .env("PATH", path_without_openbao())
        .arg("bench")
        .args([
            "--duration",
            "1",
            "--pods",
            "6",
            "--concurrency",
            "4",
            "--ceiling-secs",
            "0.2",
            "--server-cpus",
            server_cpus(),
            "-o",
            "json",
        ])
        .args(args)
        .output()
        .expect("run podseal-dev bench");
    assert!(
        output.status.success(),
        "podseal-dev bench {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON report")
}

fn check_scenario(report: &Value, name: &str, replicas: usize) {
    let scenario = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name} in {report}"));
    assert_eq!(
        scenario["errors"],
        serde_json::json!({}),
        "{name}: {scenario}"
    );
    let ok = scenario["ok"].as_u64().unwrap();
    assert!(
        ok > 0 && ok == scenario["requests"].as_u64().unwrap(),
        "{scenario}"
    );
    for field in [
        "throughput_per_s",
        "ratio_to_ceiling",
        "p99_over_unwrap_crypto",
    ] {
        assert!(
            scenario[field].as_f64().unwrap() > 0.0,
            "{name} {field}: {scenario}"
        );
    }
    let latency = &scenario["latency_us"];
    let (p50, p99, p999) = (
        latency["p50"].as_u64().unwrap(),
        latency["p99"].as_u64().unwrap(),
        latency["p999"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= p999, "{latency}");
    let servers = scenario["servers"].as_array().unwrap();
    assert_eq!(servers.len(), replicas);
    for server in servers {
        assert!(server["rss_kib_end"].as_u64().unwrap() > 1024, "{server}");
        assert!(server["cpu_cores"].as_f64().unwrap() > 0.0, "{server}");
    }
    // The lead's storage counters: a number when exposed, else null ("n/a").
    for field in ["storage_round_trips_per_op", "storage_commits_per_op"] {
        let value = &scenario[field];
        assert!(
            value.is_null() || value.as_f64().unwrap() > 0.0,
            "{field}: {value}"
        );
    }
}

/// Every server process of the report has exited (and was reaped).
fn assert_all_stopped(report: &Value) {
    for scenario in report["scenarios"].as_array().unwrap() {
        for server in scenario["servers"].as_array().unwrap() {
            let pid = server["pid"].as_u64().unwrap();
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "process {pid} outlived the benchmark"
            );
        }
    }
}

#[test]
fn a_short_run_on_sqlite_reports_sensible_figures_and_no_error() {
    let report = bench(&["--scenario", "all"]);
    let ceiling = &report["ceiling"];
    assert!(ceiling["unwrap_crypto_us"].as_f64().unwrap() > 0.0);
    assert!(ceiling["ceiling_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(report["setup"]["engine"], "sqlite");
    check_scenario(&report, "unwrap", 1);
    check_scenario(&report, "unwrap at 50% of peak", 1);
    check_scenario(&report, "session", 1);
    assert_eq!(
        report["scenarios"].as_array().unwrap().len(),
        3,
        "no OpenBao here"
    );
    assert_all_stopped(&report);
}

#[test]
fn two_replicas_on_postgres_share_the_load_without_error() {
    let url = podseal_test_support::provision::postgres_base_url();
    let report = bench(&[
        "--engine",
        "postgres",
        "--replicas",
        "2",
        "--postgres-url",
        &url,
        "--scenario",
        "unwrap",
    ]);
    assert_eq!(report["setup"]["replicas"], 2);
    check_scenario(&report, "unwrap", 2);
    assert_all_stopped(&report);
}

#[test]
fn invalid_options_exit_2_before_starting_anything() {
    for args in [
        &["--replicas", "2"][..],
        &["--server-cpus", "0-99999"][..],
        &["--duration", "0"][..],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_podseal-dev"))
            .arg("bench")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}
