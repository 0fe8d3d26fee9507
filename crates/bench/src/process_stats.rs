//! Resident memory and CPU time of a process, read from `/proc/PID/status`
//! (`VmRSS`) and `/proc/PID/stat` (`utime` + `stime`, every thread).

use std::time::Duration;

/// A process's counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// User + system CPU time so far.
    pub cpu: Duration,
}

/// Why `/proc` could not be read (the process is gone, usually).
#[derive(Debug, thiserror::Error)]
#[error("cannot read /proc/{pid}/{file}: {reason}")]
pub struct StatsError {
    /// The process.
    pub pid: u32,
    /// `status` or `stat`.
    pub file: &'static str,
    /// Why.
    pub reason: String,
}

/// Reads both counters of `pid`.
pub fn sample(pid: u32) -> Result<Sample, StatsError> {
    Ok(Sample {
        rss_kib: rss_kib(pid)?,
        cpu: cpu_time(pid)?,
    })
}

/// `VmRSS` of `pid`, KiB.
pub fn rss_kib(pid: u32) -> Result<u64, StatsError> {
    let error = |reason: String| StatsError {
        pid,
        file: "status",
        reason,
    };
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| error(e.to_string()))?;
    parse_rss_kib(&text).ok_or_else(|| error("no VmRSS line".into()))
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `utime + stime` of `pid` (all its threads).
pub fn cpu_time(pid: u32) -> Result<Duration, StatsError> {
    let error = |reason: String| StatsError {
        pid,
        file: "stat",
        reason,
    };
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| error(e.to_string()))?;
    let ticks = parse_cpu_ticks(&text).ok_or_else(|| error("unexpected format".into()))?;
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// Fields 14 and 15 (`utime`, `stime`), counted after the `comm` field,
/// which is parenthesised and may itself hold spaces and parentheses.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = stat.get(stat.rfind(')')? + 1..)?;
    // After `comm`: state is field 3, so utime (14) is the 12th from here.
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU cores used between two samples over `window` (1.0 = one core busy).
pub fn cores_used(before: Duration, after: Duration, window: Duration) -> f64 {
    let secs = window.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    after.saturating_sub(before).as_secs_f64() / secs
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_an_awkward_comm() {
        let stat =
            "1234 (po dseal) x) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_rss_kib("Name:\tx\nVmRSS:\t  20480 kB\n"), Some(20480));
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = sample(std::process::id()).unwrap();
        assert!(sample.rss_kib > 0);
    }
}
