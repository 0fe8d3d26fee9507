//! The pod-side binary, `podseal-exec`: in a pod, open capsules through the
//! release server, then replace this process with the program. It links the
//! core, the SDK and the shared terminal conventions only (no server, no
//! storage engine, no stand-in): `tests/dependencies.rs` holds it to that.

mod exec;

use std::path::PathBuf;
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
--env NAME=SOURCE adds one; --file DEST=SOURCE writes the plaintext to DEST (mode 0400, never
overwriting), which must be on a RAM-backed filesystem (tmpfs or ramfs, e.g. /dev/shm or an emptyDir
with medium: Memory) unless --allow-disk is given. All capsules are opened in one request; on any
refusal PROGRAM never starts and the gate's reason is printed (exit 1). PROGRAM replaces this
process, so signals reach it directly and its exit code is the exit code.

Which Secret each capsule came from is said by the pod spec, which a Secret writer (etcd, git, a
backup restore) cannot change, and compared with the Secret name and key in the capsule's header
before anything is asked of the server: a capsule moved to another key or Secret is refused, naming
both (exit 1). An environment variable filled by secretKeyRef is named with --from NAME=SECRET/KEY
(the secretKeyRef's name and key); a file of a Secret volume mounted at SECRETS_DIR/SECRET is the
SOURCE secret:SECRET/KEY. A variable holding a capsule that neither --from nor --direct names is
refused (exit 2). A SOURCE that is a plain path, and --direct NAME, are capsules given directly
(written in the pod spec or the image): nothing is compared; do not use them for Secrets.

The client is configured from the environment: PODSEAL_SERVER (https://…, required), PODSEAL_CA_FILE
or PODSEAL_SERVER_FINGERPRINT, PODSEAL_API_KEY_FILE (default /var/run/secrets/podseal/api-key),
PODSEAL_TOKEN_FILE (default /var/run/secrets/podseal/token), PODSEAL_CONTAINER (this container's
name; needed when the pod has more than one container), PODSEAL_SECRETS_DIR (--secrets-dir). Its
keys live only in this process's memory, which is locked (mlockall) and not dumpable, best effort.

Its DPoP key is pinned to this container's running instance: a second podseal-exec in the same
running container is refused, and a restarted container enrols afresh. Run it as the container's
command, so that a failure before PROGRAM starts ends the container and the restart retries.",
    after_help = "Examples:
  # DB_PASSWORD filled by secretKeyRef {name: db, key: password}:
  podseal-exec --from DB_PASSWORD=db/password -- ./server
  # Secret tls mounted at /etc/podseal/secrets/tls:
  podseal-exec --file /dev/shm/tls.key=secret:tls/tls.key -- ./server
  # A capsule given directly (a file in the image):
  podseal-exec --env API_TOKEN=/app/api-token.capsule -- ./server"
)]
struct ExecArgs {
    /// NAME=SECRET/KEY: environment variable NAME holds the capsule read from key KEY of Secret
    /// SECRET (its secretKeyRef); its header must name that Secret and key (repeatable).
    #[arg(long = "from", value_name = "NAME=SECRET/KEY")]
    from: Vec<String>,
    /// NAME: environment variable NAME holds a capsule given directly in the pod spec, not read
    /// from a Secret; nothing is compared (repeatable).
    #[arg(long = "direct", value_name = "NAME")]
    direct: Vec<String>,
    /// NAME=SOURCE: put this capsule's plaintext in environment variable NAME; SOURCE is
    /// secret:SECRET/KEY or a capsule file given directly (repeatable).
    #[arg(long = "env", value_name = "NAME=SOURCE")]
    env: Vec<String>,
    /// DEST=SOURCE: write this capsule's plaintext to DEST, mode 0400; SOURCE is secret:SECRET/KEY
    /// or a capsule file given directly (repeatable).
    #[arg(long = "file", value_name = "DEST=SOURCE")]
    file: Vec<String>,
    /// Where Secret volumes are mounted, each at SECRETS_DIR/<Secret name>: secret:SECRET/KEY
    /// reads SECRETS_DIR/SECRET/KEY.
    #[arg(
        long,
        value_name = "DIR",
        env = "PODSEAL_SECRETS_DIR",
        default_value = "/etc/podseal/secrets"
    )]
    secrets_dir: PathBuf,
    /// Allow --file destinations that are not RAM-backed (the plaintext may reach the disk).
    #[arg(long)]
    allow_disk: bool,
    /// The program and its arguments, after `--`.
    #[arg(last = true, value_name = "PROGRAM [ARGS]…")]
    command: Vec<String>,
}

fn main() -> ExitCode {
    podseal_command::panic_report::install();
    let args: ExecArgs = podseal_command::arguments::parse();
    match exec::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}
