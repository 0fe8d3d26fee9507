//! Which CPUs the servers and the load generator run on.
//!
//! The release-server replicas are started under `taskset -c LIST` (the
//! `--server-cpus` list); this process pins itself to the CPUs it may use
//! that are not in that list, before it starts its async runtime, so every
//! worker thread inherits the mask. When no CPU is left, the load generator
//! shares the servers' CPUs and the report says so. PostgreSQL and the
//! Kubernetes stand-in are not pinned by the benchmark (the stand-in inherits
//! the load generator's mask; it only answers the servers' pod watch).

use std::collections::BTreeSet;
use std::fmt;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// A set of CPU numbers, as `taskset -c` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuList(BTreeSet<usize>);

/// Why a CPU list was refused or could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// Not `N`, `N-M` or a comma-separated list of those.
    #[error("CPU list `{0}` must look like 1, 0-3 or 0,2-3")]
    Syntax(String),
    /// Names CPUs this process may not use.
    #[error("CPU list `{list}` names CPUs outside the ones this process may use ({allowed})")]
    NotAllowed {
        /// The list given.
        list: String,
        /// The CPUs allowed.
        allowed: String,
    },
    /// The kernel refused to read or set an affinity mask.
    #[error("cannot {what} the CPU affinity")]
    Affinity {
        /// `read` or `set`.
        what: &'static str,
        /// The kernel's reason.
        source: std::io::Error,
    },
}

impl CpuList {
    /// Parses `1`, `0-3`, `0,2-3`.
    pub fn parse(text: &str) -> Result<Self, CpuError> {
        let bad = || CpuError::Syntax(text.to_owned());
        let mut set = BTreeSet::new();
        for part in text.split(',').map(str::trim) {
            let (low, high) = part.split_once('-').unwrap_or((part, part));
            let low: usize = low.trim().parse().map_err(|_| bad())?;
            let high: usize = high.trim().parse().map_err(|_| bad())?;
            if low > high || high >= CpuSet::MAX_CPU {
                return Err(bad());
            }
            set.extend(low..=high);
        }
        Ok(Self(set))
    }

    /// The CPUs this process may run on now.
    pub fn allowed() -> Result<Self, CpuError> {
        let mask = sched_getaffinity(None).map_err(|e| CpuError::Affinity {
            what: "read",
            source: e.into(),
        })?;
        Ok(Self(
            (0..CpuSet::MAX_CPU).filter(|&c| mask.is_set(c)).collect(),
        ))
    }

    /// How many CPUs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No CPU at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The lowest CPU, if any.
    pub fn first(&self) -> Option<usize> {
        self.0.first().copied()
    }

    /// Refuses CPUs outside `allowed`.
    pub fn check_within(&self, allowed: &CpuList) -> Result<(), CpuError> {
        if self.is_empty() || !self.0.is_subset(&allowed.0) {
            return Err(CpuError::NotAllowed {
                list: self.to_string(),
                allowed: allowed.to_string(),
            });
        }
        Ok(())
    }

    /// The CPUs in `self` and not in `other`.
    pub fn without(&self, other: &CpuList) -> CpuList {
        Self(self.0.difference(&other.0).copied().collect())
    }

    /// Pins the calling thread (and the threads it starts later) to this set.
    pub fn pin_current_thread(&self) -> Result<(), CpuError> {
        let mut mask = CpuSet::new();
        for &cpu in &self.0 {
            mask.set(cpu);
        }
        sched_setaffinity(None, &mask).map_err(|e| CpuError::Affinity {
            what: "set",
            source: e.into(),
        })
    }
}

impl fmt::Display for CpuList {
    /// `taskset -c` form: ranges collapsed (`0-2,5`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut iter = self.0.iter().copied().peekable();
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end += 1;
                iter.next();
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn lists_parse_and_print_in_taskset_form() {
        for (text, shown, len) in [("1", "1", 1), ("0-3", "0-3", 4), ("0,2-3, 5", "0,2-3,5", 4)] {
            let list = CpuList::parse(text).unwrap();
            assert_eq!(list.to_string(), shown);
            assert_eq!(list.len(), len);
        }
        for bad in ["", "a", "3-1", "1,", "-1", "99999"] {
            assert!(CpuList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn difference_and_subset() {
        let all = CpuList::parse("0-3").unwrap();
        let servers = CpuList::parse("1,2").unwrap();
        assert_eq!(all.without(&servers).to_string(), "0,3");
        assert!(servers.check_within(&all).is_ok());
        assert!(CpuList::parse("4").unwrap().check_within(&all).is_err());
    }
}
