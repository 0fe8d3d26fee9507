//! A child process of the benchmark: its output drained line by line (so
//! its pipes never fill) into a bounded log, lines awaited with deadlines,
//! and the process killed and reaped when dropped, on every path.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::DeploymentError;

/// Log lines kept per child, for the error when it dies.
const LOG_LINES: usize = 40;
/// Output lines queued for [`ChildProcess::wait_for_line`]; later ones are
/// dropped (only setup waits on lines), so memory stays bounded.
const QUEUED_LINES: usize = 1024;

/// A child process, its output drained into a bounded log, killed and
/// reaped on drop.
pub struct ChildProcess {
    what: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    recent: Arc<Mutex<VecDeque<String>>>,
}

impl ChildProcess {
    /// Spawns `command` (stdout and stderr piped and drained).
    pub fn spawn(what: &str, mut command: Command) -> Result<Self, DeploymentError> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| DeploymentError::Spawn {
            what: what.to_owned(),
            source,
        })?;
        let (tx, lines) = mpsc::channel(QUEUED_LINES);
        let recent = Arc::new(Mutex::new(VecDeque::new()));
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            let (tx, recent) = (tx.clone(), recent.clone());
            // Reads until the child closes the stream, so its pipe never fills.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut recent) = recent.lock() {
                        if recent.len() == LOG_LINES {
                            recent.pop_front();
                        }
                        recent.push_back(line.clone());
                    }
                    let _ = tx.try_send(line);
                }
            });
        }
        Ok(Self {
            what: what.to_owned(),
            child,
            lines,
            recent,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its name in messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Waits (up to `deadline`) for an output line containing `needle`.
    pub async fn wait_for_line(
        &mut self,
        needle: &str,
        deadline: Duration,
    ) -> Result<String, DeploymentError> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            match tokio::time::timeout_at(until, self.lines.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return Ok(line),
                Ok(Some(_)) => {}
                // Both streams closed: the process is exiting.
                Ok(None) => {
                    let status = self.exit_status().await;
                    return Err(self.exited(status));
                }
                Err(_) => {
                    return Err(DeploymentError::NotReady {
                        what: self.what.clone(),
                        needle: needle.to_owned(),
                        secs: deadline.as_secs(),
                        log: self.recent_log(),
                    });
                }
            }
        }
    }

    /// An error if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), DeploymentError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status_text(status))),
            Err(e) => Err(self.exited(e.to_string())),
        }
    }

    /// The exit status of a process that closed its output (5 s at most).
    async fn exit_status(&mut self) -> String {
        for _ in 0..500 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status_text(status);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        "closed its output".into()
    }

    fn exited(&self, status: String) -> DeploymentError {
        DeploymentError::Exited {
            what: self.what.clone(),
            status,
            log: self.recent_log(),
        }
    }

    /// `; last log lines: …` (the servers' logs hold no secret by design).
    fn recent_log(&self) -> String {
        let recent = self.recent.lock().map(|r| r.clone()).unwrap_or_default();
        if recent.is_empty() {
            return String::new();
        }
        let tail: Vec<String> = recent.into_iter().rev().take(8).rev().collect();
        format!("; last log lines:\n  {}", tail.join("\n  "))
    }
}

fn status_text(status: ExitStatus) -> String {
    status.to_string()
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
