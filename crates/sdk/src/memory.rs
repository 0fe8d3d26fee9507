//! Best-effort hardening of a process that holds plaintext.
//!
//! [`harden_process`] asks the kernel to keep every page of the process in
//! RAM (`mlockall(MCL_CURRENT | MCL_FUTURE)`), so keys and plaintext are not
//! written to swap, and marks the process not dumpable (`PR_SET_DUMPABLE 0`),
//! so it leaves no core dump and other processes of the same user cannot
//! `ptrace` it or read `/proc/PID/mem`.
//!
//! What it does not protect: root on the node, the container runtime,
//! `kubectl exec` into the pod (a process started there can still read the
//! environment of a child of `podseal-exec`), and copies a program makes of
//! the plaintext itself. Locking fails without `CAP_IPC_LOCK` or a large
//! enough `RLIMIT_MEMLOCK`; that is reported, not fatal. Both settings are
//! reset by `execve`, so `podseal-exec` applies them to itself while it holds
//! keys, not to the program it starts.

/// What [`harden_process`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardening {
    /// `Ok` when every page is locked in RAM, else the kernel's reason.
    pub memory_locked: Result<(), rustix::io::Errno>,
    /// `Ok` when the process is no longer dumpable, else the kernel's reason.
    pub not_dumpable: Result<(), rustix::io::Errno>,
}

/// Locks memory and disables dumps, best effort (see the module docs).
pub fn harden_process() -> Hardening {
    use rustix::mm::{MlockAllFlags, mlockall};
    use rustix::process::{DumpableBehavior, set_dumpable_behavior};
    Hardening {
        memory_locked: mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE),
        not_dumpable: set_dumpable_behavior(DumpableBehavior::NotDumpable),
    }
}
