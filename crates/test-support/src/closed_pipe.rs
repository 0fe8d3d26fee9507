//! Running a command whose stdout is a pipe nobody reads any more, as
//! `podseal … | head -1` leaves it once `head` has its line.

use std::io::Write as _;
use std::process::{Command, ExitStatus, Stdio};

/// What a command did with a closed stdout.
#[derive(Debug)]
pub struct ClosedPipeRun {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote on stderr.
    pub stderr: String,
}

/// Runs `command` with stdout a pipe whose read end is closed before the
/// command starts, so its first write fails with EPIPE (the process
/// ignores SIGPIPE, as every Rust program does), and `stdin` on stdin.
/// Deterministic: no race with a reader that stops early.
pub fn run_with_closed_stdout(mut command: Command, stdin: &[u8]) -> ClosedPipeRun {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut child = command
        .stdout(writer)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    // Drops the command and with it the parent's copy of the write end.
    drop(command);
    if let Some(mut pipe) = child.stdin.take() {
        // A command that does not read stdin may exit before this is
        // written: that is not what the test checks.
        let _ = pipe.write_all(stdin);
    }
    let output = child.wait_with_output().expect("the command ends");
    ClosedPipeRun {
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Panics unless `run` ended as a Unix tool does on a closed pipe: exit
/// 141 (what a shell shows for SIGPIPE) and nothing on stderr (no panic,
/// no backtrace, no `error:` line).
pub fn assert_quiet_on_closed_pipe(what: &str, run: &ClosedPipeRun) {
    assert_ends_on_closed_pipe(what, run, None);
}

/// [`assert_quiet_on_closed_pipe`] for a command that warns on stderr
/// before it prints anything (`podseal open`'s break-glass warning): its
/// stderr must be that one warning line, starting `warning`, and nothing
/// else.
pub fn assert_ends_on_closed_pipe(what: &str, run: &ClosedPipeRun, warning: Option<&str>) {
    let stderr_as_expected = match warning {
        None => run.stderr.is_empty(),
        Some(start) => {
            run.stderr.starts_with(start)
                && run.stderr.ends_with('\n')
                && run.stderr.lines().count() == 1
        }
    };
    assert!(
        run.status.code() == Some(141) && stderr_as_expected,
        "`{what}` with its stdout closed: {} and stderr {:?} (wanted exit 141 and on stderr {})",
        run.status,
        run.stderr,
        warning.map_or_else(|| "nothing".to_owned(), |w| format!("only the line {w}…"))
    );
}
