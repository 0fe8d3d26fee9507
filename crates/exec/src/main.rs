//! The pod-side binary, `podseal-exec`: in a pod, open capsules through the
//! release server, then replace this process with the program. It links the
//! core, the SDK and the shared terminal conventions only (no server, no
//! storage engine, no stand-in): `tests/dependencies.rs` holds it to that.

mod exec;

use std::process::ExitCode;

use clap::Parser;

/// `podseal-exec`
#[derive(Debug, Parser)]
#[command(
    name = "podseal-exec",
    version = podseal_command::VERSION,
    max_term_width = 100,
    long_about = "\
For programs in any language: open capsules through the release server, then REPLACE this process
with PROGRAM, giving it the plaintext.

Every environment variable whose value is a capsule (podseal:v1:…) is replaced by its plaintext;
--env NAME=FILE adds one from a capsule file; --file DEST=FILE writes the plaintext to DEST (mode 0400,
never overwriting), which must be on a RAM-backed filesystem (tmpfs or ramfs, e.g. /dev/shm or an
emptyDir with medium: Memory) unless --allow-disk is given. All capsules are opened in one request;
on any refusal PROGRAM never starts and the gate's reason is printed (exit 1). PROGRAM replaces this
process, so signals reach it directly and its exit code is the exit code.

The client is configured from the environment: PODSEAL_SERVER (https://…, required), PODSEAL_CA_FILE
or PODSEAL_SERVER_FINGERPRINT, PODSEAL_API_KEY_FILE (default /var/run/secrets/podseal/api-key),
PODSEAL_TOKEN_FILE (default /var/run/secrets/podseal/token), PODSEAL_CONTAINER (this container's
name; needed when the pod has more than one container). Its keys live only in this process's
memory, which is locked (mlockall) and not dumpable, best effort.

Its DPoP key is pinned to this container's running instance: a second podseal-exec in the same
running container is refused, and a restarted container enrols afresh. Run it as the container's
command, so that a failure before PROGRAM starts ends the container and the restart retries.",
    after_help = "Examples:
  DB_PASSWORD=\"$(cat db-password.capsule)\" podseal-exec -- ./server
  podseal-exec --env DB_PASSWORD=/etc/capsules/db-password --file /dev/shm/tls.key=/etc/capsules/tls-key -- ./server"
)]
struct ExecArgs {
    /// NAME=CAPSULE_FILE: put this capsule's plaintext in environment variable NAME (repeatable).
    #[arg(long = "env", value_name = "NAME=CAPSULE_FILE")]
    env: Vec<String>,
    /// DEST=CAPSULE_FILE: write this capsule's plaintext to DEST, mode 0400 (repeatable).
    #[arg(long = "file", value_name = "DEST=CAPSULE_FILE")]
    file: Vec<String>,
    /// Allow --file destinations that are not RAM-backed (the plaintext may reach the disk).
    #[arg(long)]
    allow_disk: bool,
    /// The program and its arguments, after `--`.
    #[arg(last = true, value_name = "PROGRAM [ARGS]…")]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args: ExecArgs = podseal_command::arguments::parse();
    match exec::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error.print();
            ExitCode::from(error.exit_code())
        }
    }
}
