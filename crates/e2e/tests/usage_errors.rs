//! Claim: every binary reports an argument error the same way, through the
//! one shared parser (`podseal_command::arguments`): exit 2, one `error:`
//! line, one `hint:` line naming that binary's `--help`; `--version` names
//! the commit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a test failure"
)]

use std::path::PathBuf;
use std::process::Command;

use podseal_test_support::binaries;

#[test]
fn every_binary_reports_a_usage_error_in_one_line_and_a_hint() {
    let cases: [(PathBuf, &str, &[&str]); 4] = [
        (binaries::podseal(), "podseal", &["seal", "--bogus"]),
        (binaries::server(), "podseal-server", &["--bogus"]),
        (binaries::exec(), "podseal-exec", &["--bogus"]),
        (binaries::dev(), "podseal-dev", &["bench", "--bogus"]),
    ];
    for (binary, name, args) in cases {
        let out = Command::new(&binary).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{name}: {stderr}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains("--bogus"),
            "{name}: {stderr}"
        );
        assert!(
            lines[1].starts_with(&format!("hint: `{name}")),
            "{name}: {stderr}"
        );
        assert!(lines[1].contains("--help"), "{name}: {stderr}");

        let version = Command::new(&binary).arg("--version").output().unwrap();
        let version = String::from_utf8_lossy(&version.stdout);
        assert!(
            version.starts_with(&format!("{name} ")) && version.contains("(commit "),
            "{name}: {version}"
        );
    }
}

/// Issue 14 §4: `podseal-exec --help` names every variable the pod-side
/// client reads (the SDK's own table), so a new one cannot go unlisted.
#[test]
fn exec_help_lists_every_variable_it_reads() {
    let output = std::process::Command::new(binaries::exec())
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for (var, _) in podseal_sdk::client::ENV_VARS {
        assert!(
            help.contains(var),
            "{var} missing from podseal-exec --help:\n{help}"
        );
    }
}
