//! Running `podseal` as a child process, shared by the CLI's test binaries
//! and the `release_loop` benchmark.
#![allow(dead_code, reason = "each binary uses a different subset")]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child killed (and reaped) on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `binary ARGS` and waits (deadline 60 s) for a line of stdout, or
/// of stderr when `from_stderr`, containing `ready`. Returns the process,
/// that line, and the later lines (the stream is drained so the child never
/// blocks on a full pipe).
pub fn spawn(
    binary: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    from_stderr: bool,
    ready: &str,
) -> (Process, String, mpsc::Receiver<String>) {
    let mut command = Command::new(binary);
    command.args(args).envs(env.iter().copied());
    if from_stderr {
        command.stderr(Stdio::piped()).stdout(Stdio::null());
    } else {
        command.stdout(Stdio::piped());
    }
    let mut process = Process(command.spawn().expect("spawn podseal"));
    let stream: Box<dyn std::io::Read + Send> = if from_stderr {
        Box::new(process.0.stderr.take().expect("piped stderr"))
    } else {
        Box::new(process.0.stdout.take().expect("piped stdout"))
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keeps reading after the receiver is gone, so the pipe never fills.
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "`podseal {}` did not print {ready:?} in time",
                args.join(" ")
            )
        });
        if line.contains(ready) {
            return (process, line, rx);
        }
    }
}

/// The port in `podseal serve`'s `... listening on 127.0.0.1:PORT (...)`.
pub fn port_of(line: &str) -> String {
    let addr = line
        .split("listening on ")
        .nth(1)
        .expect("a listening line");
    addr.split([' ', ':']).nth(1).expect("a port").to_owned()
}

/// Waits (polling, deadline 30 s) until `path` exists.
pub fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
