//! Command-line definitions. Help text is written to teach: every command
//! says what it is for, and examples show the usual way to call it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::OutputFormat;

/// podseal keeps Kubernetes secrets sealed everywhere except in the memory of
/// the one approved, live pod that needs them.
///
/// Anyone who can read Secrets, etcd, backups or git sees only capsules.
/// Sealing needs only the org public key; opening happens in the pod, after
/// the release server has verified it through four gates.
#[derive(Debug, Parser)]
#[command(
    name = "podseal",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_help = "Exit codes: 0 success, 1 refused or failed, 2 usage or invalid input.")]
pub struct Cli {
    /// Output format for commands that print data.
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        global = true,
        default_value_t
    )]
    pub output: OutputFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and show org keys (the keys capsules are sealed to).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Seal a secret into a capsule, or into a Kubernetes Secret manifest of capsules.
    Seal(SealArgs),
    /// Show a capsule's header: scope, key ids, purpose, reveal mode, times. Never anything secret.
    Inspect(InspectArgs),
    /// BREAK-GLASS: open a capsule with the org PRIVATE key and print the plaintext.
    Open(OpenArgs),
    /// Run the release server (HTTPS): the four gates, sessions, re-wrap, admin API, audit log.
    Serve(ServeArgs),
    /// In a pod: open capsules through the release server, then run a program with the plaintext.
    Exec(ExecArgs),
    /// Show podseal end to end on this machine in seconds: a stand-in cluster, the release server,
    /// a pod opening a sealed Secret through the four gates, and the attacks each gate refuses.
    #[command(
        after_help = "Exit code 1 if any step misbehaves (an attack that succeeds is a failure). -o json for machines."
    )]
    Demo,
    /// Register clusters with the release server and show their pinned token keys (admin).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Create, list and revoke API keys bound to one service account (admin).
    #[command(subcommand, name = "apikey")]
    ApiKey(ApiKeyCommand),
    /// Set and show release policies: approved image digests per service account (admin).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Export the server's audit log (admin); verify exports, saved checkpoints and inclusion
    /// proofs offline (the log is an RFC 9162 Merkle tree with C2SP signed-note checkpoints).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// A local stand-in for the Kubernetes API, for the demo, tests and trying podseal without a cluster.
    #[command(subcommand, name = "dev-cluster")]
    DevCluster(DevClusterCommand),
    /// Measure the release server under load on this machine, against the cost of its own cryptography.
    Bench(BenchArgs),
}

/// `podseal bench`
#[derive(Debug, Args)]
#[command(
    long_about = "\
Measure podseal under load on this machine, against the cost of its own cryptography.

One run: (1) the crypto-only ceiling: one unwrap's cryptography (a DPoP proof verified, one HPKE
open, one HPKE seal) timed on one thread for --ceiling-secs, times the number of --server-cpus;
(2) a deployment of real processes on 127.0.0.1, children of this binary: the Kubernetes stand-in
and --replicas release servers (`podseal serve` under `taskset -c SERVER_CPUS`) sharing one external
URL, org key, audit key and TLS certificate, on SQLite (one replica) or on a fresh PostgreSQL schema
(dropped at the end); (3) --pods simulated pods, each with its own running pod, projected token,
Ed25519 DPoP key, X25519 key and session, spread round-robin over the replicas; (4) the scenarios,
each for --duration seconds and at most --max-requests requests, --concurrency in flight:

  unwrap    POST /v1/unwrap, one capsule, a fresh DPoP proof signed per request (closed loop)
  session   POST /v1/sessions by pods whose key is already pinned (establishment rate)
  all       unwrap, unwrap open-loop at 50% of the peak just measured (the p99 target), session,
            and the OpenBao comparison when `bao` is on PATH
  openbao   unwrap and session side by side with OpenBao transit decrypt and JWT login

Reported per scenario: requests, errors by status and refusal code, throughput and its ratio to the
ceiling, client-side p50/p99/p99.9 latency and p99 as a multiple of one unwrap's crypto cost,
each replica's RSS (start/end) and CPU cores used, the load generator's CPU, and storage round
trips and commits per request from the servers' /metrics (n/a when not exposed).

CPU placement: the replicas run on --server-cpus; this process pins itself to the other CPUs it may
use (if none are left it shares them, and says so); PostgreSQL is not pinned. Build with --release
for figures: a debug build is marked as such in the report.",
    after_help = "\
Exit codes: 0 the run completed (targets missed or not); 1 a scenario had more than --max-errors
failed requests, a process died, or setup failed; 2 invalid options.

Examples:
  cargo build --release -p podseal-cli
  target/release/podseal bench                                   # SQLite, one replica, unwrap
  target/release/podseal bench --scenario all --duration 10
  target/release/podseal bench --engine postgres --replicas 3 --server-cpus 1 -o json
  target/release/podseal bench --scenario unwrap --rate 1500     # open loop at 1500 unwraps/s"
)]
pub struct BenchArgs {
    /// Which load to run.
    #[arg(long, value_enum, default_value_t = BenchScenario::Unwrap)]
    pub scenario: BenchScenario,
    /// The store the replicas share.
    #[arg(long, value_enum, default_value_t = BenchEngine::Sqlite)]
    pub engine: BenchEngine,
    /// Release-server replicas (1 with SQLite).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub replicas: usize,
    /// PostgreSQL where the run's schema is created (and dropped); only with --engine postgres.
    #[arg(
        long,
        env = "PODSEAL_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test",
        value_name = "URL",
        hide_env_values = true
    )]
    pub postgres_url: String,
    /// Simulated pods (each its own DPoP key, recipient key and session).
    #[arg(long, default_value_t = 64, value_name = "P")]
    pub pods: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16, value_name = "C")]
    pub concurrency: usize,
    /// Seconds each scenario starts requests for.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub duration: f64,
    /// Hard bound on the requests of each scenario.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_requests: u64,
    /// CPUs the replicas run on (taskset -c form: 1, 0-3, 0,2); the load generator gets the others.
    #[arg(long, default_value = "1", value_name = "LIST")]
    pub server_cpus: String,
    /// Open loop: start requests at this pace (requests/s) instead of as fast as answers come.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// After the closed-loop unwrap, run unwraps open-loop at 50% of its throughput (on in `all`).
    #[arg(long)]
    pub half_peak: bool,
    /// Seconds the crypto-only ceiling is measured for.
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub ceiling_secs: f64,
    /// Exit 1 when a scenario has more failed requests than this.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_errors: u64,
}

/// `podseal bench --scenario`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchScenario {
    /// Unwraps in established sessions.
    Unwrap,
    /// Session establishment.
    Session,
    /// Everything, OpenBao included when `bao` is on PATH.
    All,
    /// podseal side by side with OpenBao.
    Openbao,
}

/// `podseal bench --engine`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchEngine {
    /// SQLite (one replica).
    Sqlite,
    /// PostgreSQL (one or more replicas).
    Postgres,
}

/// `podseal serve`
#[derive(Debug, Args)]
#[command(
    long_about = "\
Run the release server until interrupted (Ctrl-C or SIGTERM; a final audit checkpoint is signed).

Configuration comes from --config (TOML; every key has a default), then from PODSEAL_* environment
variables, which win. On the first start with a new state directory the server creates its store,
its audit key (STATE_DIR/audit.key, with audit.pub beside it) and the admin token, which is shown
exactly once (or written to --admin-token-file) and stored only as a hash. Without tls.cert_file and
tls.key_file a development certificate is generated at each start; its SHA-256 fingerprint is
printed and the certificate written to STATE_DIR/tls-dev.crt for clients' --ca.",
    after_help = "\
Environment overrides: PODSEAL_LISTEN, PODSEAL_EXTERNAL_URL, PODSEAL_STATE_DIR, PODSEAL_ORG_KEY_FILES
(comma-separated), PODSEAL_LOG_LEVEL, PODSEAL_TLS_CERT_FILE, PODSEAL_TLS_KEY_FILE,
PODSEAL_RELEASE_MAX_SESSION_SECS, PODSEAL_RELEASE_DPOP_MAX_AGE_SECS, PODSEAL_RELEASE_DPOP_MAX_SKEW_SECS,
PODSEAL_RELEASE_NONCE_LIFETIME_SECS, PODSEAL_RELEASE_TOKEN_LEEWAY_SECS,
PODSEAL_AUDIT_CHECKPOINT_INTERVAL_SECS, PODSEAL_AUDIT_ORIGIN, PODSEAL_AUDIT_KEY_FILE,
PODSEAL_CLUSTERS_MAX_STALENESS_SECS, PODSEAL_CLUSTERS_REFRESH_SECS, PODSEAL_STORAGE_ENGINE,
PODSEAL_STORAGE_PATH, PODSEAL_STORAGE_URL_FILE. Any other PODSEAL_* variable (other than those the
client commands read) is ignored with a warning naming the nearest known one.

Examples:
  podseal serve --print-config > podseal.toml
  PODSEAL_ORG_KEY_FILES=./keys/org.key podseal serve --config podseal.toml --admin-token-file ./admin.token"
)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (file + environment + defaults) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// On the first start, write the new admin token to this new file (mode 0600) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
}

/// `podseal exec`
#[derive(Debug, Args)]
#[command(
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
PODSEAL_TOKEN_FILE (default /var/run/secrets/podseal/token). Its keys live only in this process's
memory, which is locked (mlockall) and not dumpable, best effort.",
    after_help = "Examples:
  DB_PASSWORD=\"$(cat db-password.capsule)\" podseal exec -- ./server
  podseal exec --env DB_PASSWORD=/etc/capsules/db-password --file /dev/shm/tls.key=/etc/capsules/tls-key -- ./server"
)]
pub struct ExecArgs {
    /// NAME=CAPSULE_FILE: put this capsule's plaintext in environment variable NAME (repeatable).
    #[arg(long = "env", value_name = "NAME=CAPSULE_FILE")]
    pub env: Vec<String>,
    /// DEST=CAPSULE_FILE: write this capsule's plaintext to DEST, mode 0400 (repeatable).
    #[arg(long = "file", value_name = "DEST=CAPSULE_FILE")]
    pub file: Vec<String>,
    /// Allow --file destinations that are not RAM-backed (the plaintext may reach the disk).
    #[arg(long)]
    pub allow_disk: bool,
    /// The program and its arguments, after `--`.
    #[arg(last = true, value_name = "PROGRAM [ARGS]…")]
    pub command: Vec<String>,
}

/// How admin commands reach the server.
#[derive(Debug, Args)]
pub struct AdminConnection {
    /// The release server's URL.
    #[arg(long, env = "PODSEAL_SERVER", default_value = "https://127.0.0.1:8443")]
    pub server: String,
    /// CA bundle (PEM) to trust for the server; the system roots when absent.
    /// For a development server: STATE_DIR/tls-dev.crt.
    #[arg(long, env = "PODSEAL_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// File holding the admin token (mode 0600).
    #[arg(long, env = "PODSEAL_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
}

/// `podseal cluster …`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Register a cluster: its API server, CA, read-only token, and the token-signing keys to pin.
    ///
    /// The JWKS is read from --jwks-file, or fetched ONCE from the cluster now; either way it is
    /// pinned: tokens signed by any other key are refused until an admin changes the pin with
    /// --replace. The CA bundle is read ONCE now and pinned the same way: rewriting the file later
    /// changes nothing. Paths are files on the server's machine.
    ///
    /// Tokens must name only this server's audiences (--allow-extra-audiences accepts tokens also
    /// meant for others) and live at most --max-token-lifetime seconds (exp - iat; for a token the
    /// API server extended, warnafter - iat).
    #[command(after_help = "Examples:
  podseal cluster add prod --api-server https://10.0.0.1:6443 --ca-bundle /etc/podseal/prod-ca.pem \
      --token-file /etc/podseal/prod-reader.token
  podseal cluster add prod ... --jwks-file prod-jwks.json --issuer https://kubernetes.default.svc --replace")]
    Add {
        #[command(flatten)]
        connection: AdminConnection,
        /// Cluster name, as capsules name it.
        name: String,
        /// API server URL (https://…).
        #[arg(long = "api-server", value_name = "URL")]
        api_server: String,
        /// CA bundle of the API server (a path on the server's machine).
        #[arg(long, value_name = "FILE")]
        ca_bundle: PathBuf,
        /// Read-only token file (get/list/watch pods; see docs/rbac.md), on the server's machine.
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        /// Expected token issuer; read from the cluster's discovery document when absent.
        #[arg(long)]
        issuer: Option<String>,
        /// Accepted token audience (repeatable; default podseal).
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// JWKS file to pin instead of fetching it from the cluster.
        #[arg(long, value_name = "FILE")]
        jwks_file: Option<PathBuf>,
        /// Accept tokens whose audience also names other relying parties (refused by default).
        #[arg(long)]
        allow_extra_audiences: bool,
        /// The longest token lifetime accepted, seconds (600 to 172800; default 86400).
        #[arg(long, value_name = "SECS")]
        max_token_lifetime: Option<i64>,
        /// Replace an existing registration: its pinned keys, CA and token rules.
        #[arg(long)]
        replace: bool,
    },
    /// Show one cluster: issuer, API server, pinned CA fingerprints and key ids, token rules, view readiness.
    Show {
        #[command(flatten)]
        connection: AdminConnection,
        /// Cluster name.
        name: String,
    },
    /// List clusters.
    List {
        #[command(flatten)]
        connection: AdminConnection,
    },
}

/// `podseal apikey …`
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key bound to one cluster, namespace and service account. Shown once.
    #[command(
        after_help = "Example:\n  podseal apikey create --cluster prod --namespace shop --service-account api -o json"
    )]
    Create {
        #[command(flatten)]
        connection: AdminConnection,
        /// Cluster.
        #[arg(long)]
        cluster: String,
        /// Namespace.
        #[arg(long)]
        namespace: String,
        /// Service account.
        #[arg(long = "service-account")]
        service_account: String,
    },
    /// List API keys (ids and bindings, never the keys).
    List {
        #[command(flatten)]
        connection: AdminConnection,
    },
    /// Revoke an API key by id: its sessions' next request is refused.
    Revoke {
        #[command(flatten)]
        connection: AdminConnection,
        /// The key id (ak_…).
        id: String,
    },
}

/// `podseal policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set the release policy of one service account (replaces the previous one).
    ///
    /// Every container of a pod — init, app and ephemeral (debug) — must run an image whose digest
    /// is allowed, or gate 4 refuses. --audit-mode records those refusals instead of enforcing
    /// them: an explicit opt-in for rollout, loud in the log and in every audit record.
    #[command(after_help = "Example:
  podseal policy set --cluster prod --namespace shop --service-account api \
      --allow-digest sha256:0123…cdef --allow-digest sha256:4567…89ab --require-nonce")]
    Set {
        #[command(flatten)]
        connection: AdminConnection,
        /// Cluster.
        #[arg(long)]
        cluster: String,
        /// Namespace.
        #[arg(long)]
        namespace: String,
        /// Service account.
        #[arg(long = "service-account")]
        service_account: String,
        /// An approved image digest, sha256:<64 hex> (repeatable).
        #[arg(long = "allow-digest", value_name = "sha256:…")]
        digests: Vec<String>,
        /// DANGER: record what gate 4 would refuse instead of refusing.
        #[arg(long)]
        audit_mode: bool,
        /// Require RFC 9449 server nonces in DPoP proofs (a stolen key cannot pre-mint proofs).
        #[arg(long)]
        require_nonce: bool,
    },
    /// Show policies (all, or one service account's).
    Show {
        #[command(flatten)]
        connection: AdminConnection,
        /// Only this cluster.
        #[arg(long)]
        cluster: Option<String>,
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Only this service account.
        #[arg(long = "service-account")]
        service_account: Option<String>,
    },
}

/// `podseal audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Download the audit log as JSON lines, ending with a checkpoint the server signs now (admin).
    #[command(
        after_help = "Example:\n  podseal audit export --out audit.jsonl && podseal audit verify --key audit.pub audit.jsonl"
    )]
    Export {
        #[command(flatten)]
        connection: AdminConnection,
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check an export (JSON lines) against the server's audit public key, offline.
    ///
    /// The log is a Merkle tree (RFC 9162) and its checkpoints are C2SP signed notes. Fails
    /// (exit 1, naming the line and what failed) on any edited, removed, inserted or reordered
    /// record, a checkpoint not signed by this key (or, after an audited key hand-over, by the
    /// key it was handed to), a checkpoint of another log, a checkpoint over records that are
    /// missing, records that no checkpoint covers (a cut or appended tail), and an export
    /// with no checkpoint at all (an empty file verifies nothing).
    ///
    /// With --since, also checks that the log only grew since a checkpoint you saved before
    /// (`podseal audit checkpoint`): the consistency proof from it to the export's newest
    /// checkpoint must verify. A log rewritten after it — even one re-signed with the same key —
    /// fails. Exit codes: 0 verified, 1 verification failed, 2 usage error (unreadable file or key).
    #[command(
        after_help = "Examples:\n  podseal audit verify --key audit.pub audit.jsonl\n  podseal audit verify --key audit.pub --expected-size 1200 - < audit.jsonl\n  podseal audit export | podseal audit verify --key audit.pub --since saved.checkpoint -"
    )]
    Verify {
        /// The audit public key file (podseal-audit-public-key:v1:…), or a file holding the
        /// note verifier key (origin+keyid+key, from `podseal audit public-key`), which also
        /// pins the log's origin.
        #[arg(long = "key", value_name = "AUDIT_PUB")]
        key: PathBuf,
        /// Fail unless the export covers at least this many records (the server's latest size).
        #[arg(long, value_name = "N")]
        expected_size: Option<u64>,
        /// A checkpoint saved before (its signed note): the export must extend it.
        #[arg(long, value_name = "CHECKPOINT_FILE")]
        since: Option<PathBuf>,
        /// The export file, or '-' for stdin.
        #[arg(value_name = "EXPORT|-")]
        export: String,
    },
    /// Save the newest checkpoint of an export, after verifying the export, for a later
    /// `verify --since`.
    ///
    /// Prints the checkpoint's signed note exactly as signed (a C2SP tlog-checkpoint), or
    /// writes it to --out. Keep it somewhere the server cannot write: it is what a later
    /// rewrite of the log will be caught against.
    #[command(
        after_help = "Example:\n  podseal audit export | podseal audit checkpoint --key audit.pub --out saved.checkpoint -"
    )]
    Checkpoint {
        /// The audit public key file (either text form, as for `verify`).
        #[arg(long = "key", value_name = "AUDIT_PUB")]
        key: PathBuf,
        /// Write the note to this file (created, never overwritten) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The export file, or '-' for stdin.
        #[arg(value_name = "EXPORT|-")]
        export: String,
    },
    /// Print the inclusion proof of one record: the record, its leaf index, the tree size, the
    /// proof hashes and the signed checkpoint they lead to.
    ///
    /// The export is verified first; the proof is for its newest checkpoint. With -o json the
    /// output is a proof file that `podseal audit verify-proof` checks offline with the audit
    /// public key alone, without the rest of the log.
    #[command(
        after_help = "Example:\n  podseal audit prove --key audit.pub --seq 42 -o json audit.jsonl > record-42.proof.json\n  podseal audit verify-proof --key audit.pub record-42.proof.json"
    )]
    Prove {
        /// The audit public key file (either text form, as for `verify`).
        #[arg(long = "key", value_name = "AUDIT_PUB")]
        key: PathBuf,
        /// The record's sequence number (from 1).
        #[arg(long, value_name = "N")]
        seq: u64,
        /// The export file, or '-' for stdin.
        #[arg(value_name = "EXPORT|-")]
        export: String,
    },
    /// Check an inclusion proof (`podseal audit prove -o json`) offline.
    ///
    /// Verified means: the checkpoint is a signed note of this log signed by this key, and the
    /// proof hashes lead from the record's exact bytes at its leaf index to that checkpoint's
    /// root. Fails (exit 1, naming what failed) after any edit of the record, the proof, the
    /// checkpoint or its signature. After an audit key hand-over, give the key that signs now.
    #[command(
        after_help = "Example:\n  podseal audit verify-proof --key audit.pub record-42.proof.json"
    )]
    VerifyProof {
        /// The audit public key file (either text form, as for `verify`).
        #[arg(long = "key", value_name = "AUDIT_PUB")]
        key: PathBuf,
        /// The proof file, or '-' for stdin.
        #[arg(value_name = "PROOF|-")]
        proof: String,
    },
    /// Print the note verifier key of the audit log, for transparency-log tools.
    ///
    /// Checkpoints are C2SP signed notes; Go's golang.org/x/mod/sumdb/note and its ports verify
    /// them with `<origin>+<key id>+<key>`. The origin is the log's name: the first line of
    /// every checkpoint (`audit.origin`, by default the external URL's host[:port] then
    /// /podseal-audit; the server also logs its verifier key at start).
    #[command(
        after_help = "Example:\n  podseal audit public-key --key audit.pub --origin secrets.example.com/podseal-audit > audit.vkey\n  podseal audit verify --key audit.vkey audit.jsonl"
    )]
    PublicKey {
        /// The audit public key file (podseal-audit-public-key:v1:…).
        #[arg(long = "key", value_name = "AUDIT_PUB")]
        key: PathBuf,
        /// The log's origin.
        #[arg(long, value_name = "ORIGIN")]
        origin: String,
    },
}

/// Where a running stand-in keeps its connection files.
#[derive(Debug, Args)]
pub struct DevClusterDir {
    /// Directory with the stand-in's connection files (ca.pem, reader.token, admin.token, cluster.json).
    #[arg(long, value_name = "DIR", default_value = "./dev-cluster")]
    pub dir: PathBuf,
}

/// `podseal dev-cluster …`
#[derive(Debug, Subcommand)]
pub enum DevClusterCommand {
    /// Serve the stand-in until interrupted (Ctrl-C).
    ///
    /// Serves OIDC discovery, the JWKS, TokenRequest and pod get/list/watch over HTTPS with a CA it
    /// generates, and writes DIR/ca.pem, DIR/reader.token (read-only: get/list/watch pods),
    /// DIR/admin.token and DIR/cluster.json. Register it with the release server like any cluster:
    /// its URL, ca.pem and reader.token.
    #[command(after_help = "Example:
  podseal dev-cluster serve --dir ./dev-cluster &
  podseal dev-cluster pod create --namespace shop --name api-0 --service-account api \\
      --container api=registry.example/shop/api:1.4@sha256:<64 hex> --running")]
    Serve {
        #[command(flatten)]
        dir: DevClusterDir,
        /// Address to listen on (port 0 picks a free port; cluster.json records it).
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: std::net::SocketAddr,
        /// Seconds between watch bookmarks.
        #[arg(long, default_value_t = 5)]
        bookmark_interval: u64,
    },
    /// Create, start, delete, recreate or debug pods.
    #[command(subcommand)]
    Pod(PodCommand),
    /// Issue a ServiceAccount token through the TokenRequest API, as the kubelet does for a pod.
    Token {
        #[command(flatten)]
        dir: DevClusterDir,
        /// Namespace.
        #[arg(long)]
        namespace: String,
        /// Service account.
        #[arg(long = "service-account")]
        service_account: String,
        /// Bind the token to this pod (it must run as the service account).
        #[arg(long)]
        pod: Option<String>,
        /// Audience (repeatable); the issuer when none is given.
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// Lifetime in seconds (at least 600, as the API server requires).
        #[arg(long, default_value_t = 600)]
        expiration_seconds: i64,
    },
    /// Make a new key sign tokens; --keep-old keeps the previous keys in the JWKS.
    RotateSigningKey {
        #[command(flatten)]
        dir: DevClusterDir,
        /// Keep old keys published (tokens they signed still verify).
        #[arg(long)]
        keep_old: bool,
    },
    /// Publish one more key in the JWKS that verifies but does not sign.
    AddVerificationKey {
        #[command(flatten)]
        dir: DevClusterDir,
    },
    /// Forget watch history: watches resuming from older resourceVersions get 410 Gone.
    CompactHistory {
        #[command(flatten)]
        dir: DevClusterDir,
    },
    /// Empty the cluster's state as a restore of etcd from an empty backup
    /// would: no pods, resourceVersions start again, every watch ends. The
    /// CA, the signing keys and the tokens stay.
    ResetState {
        #[command(flatten)]
        dir: DevClusterDir,
    },
}

/// `podseal dev-cluster pod …`
#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Create a pod (Pending, no container statuses until `running`).
    Create {
        #[command(flatten)]
        dir: DevClusterDir,
        /// Namespace.
        #[arg(long)]
        namespace: String,
        /// Pod name.
        #[arg(long)]
        name: String,
        /// Service account the pod runs as.
        #[arg(long = "service-account")]
        service_account: String,
        /// NAME=IMAGE[@sha256:DIGEST] (repeatable); without a digest the runtime reports a tag only.
        #[arg(
            long = "container",
            value_name = "NAME=IMAGE[@sha256:…]",
            required = true
        )]
        containers: Vec<String>,
        /// An init container, same form (repeatable).
        #[arg(long = "init-container", value_name = "NAME=IMAGE[@sha256:…]")]
        init_containers: Vec<String>,
        /// KEY=VALUE label (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Also report every container started (phase Running).
        #[arg(long)]
        running: bool,
    },
    /// Report every container started: phase Running, statuses with image digests.
    Running {
        #[command(flatten)]
        dir: DevClusterDir,
        /// NAMESPACE/NAME.
        pod: String,
    },
    /// Delete a pod.
    Delete {
        #[command(flatten)]
        dir: DevClusterDir,
        /// NAMESPACE/NAME.
        pod: String,
    },
    /// Delete a pod and create it again under the same name, with a new uid.
    Recreate {
        #[command(flatten)]
        dir: DevClusterDir,
        /// NAMESPACE/NAME.
        pod: String,
    },
    /// Add a running ephemeral (debug) container, as `kubectl debug` does.
    Debug {
        #[command(flatten)]
        dir: DevClusterDir,
        /// NAMESPACE/NAME.
        pod: String,
        /// IMAGE[@sha256:DIGEST] of the debug container.
        #[arg(long, default_value = "busybox:1.36")]
        image: String,
        /// Name of the debug container.
        #[arg(long, default_value = "debugger")]
        name: String,
    },
}

/// `podseal keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an org key pair: DIR/org.key (private, mode 0600) and DIR/org.pub.
    ///
    /// Refuses to overwrite existing files. Keep org.key on the release server
    /// only (or in an HSM); give org.pub to everyone who seals.
    #[command(
        after_help = "Example:\n  podseal keys init --out ./keys\n  podseal seal --key ./keys/org.pub ..."
    )]
    Init {
        /// Directory to write org.key and org.pub into (created if missing, mode 0700).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Key algorithm: x25519 (default) or p256 (for keys that will move into an HSM).
        #[arg(long, value_enum, default_value_t)]
        algorithm: KeyAlgorithm,
    },
    /// Print the key id (kid) and public key of an org key file (public or private).
    Show {
        /// The key file (org.pub or org.key).
        #[arg(value_name = "KEY_FILE")]
        key: PathBuf,
    },
}

/// Org key algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum KeyAlgorithm {
    /// DHKEM(X25519, HKDF-SHA256).
    #[default]
    X25519,
    /// DHKEM(P-256, HKDF-SHA256).
    P256,
}

/// `podseal seal …`
#[derive(Debug, Args)]
#[command(after_help = "\
The secret is read from stdin or --from-file, never from an argument (arguments land in shell history).
Bytes are sealed exactly as read: `echo` adds a newline, `printf %s` does not.

Examples:
  printf %s \"$DB_PASSWORD\" | podseal seal --key org.pub --cluster prod --namespace shop \\
      --service-account api --name db-password > db-password.capsule

  podseal seal --key org.pub --cluster prod --namespace shop --service-account api \\
      --k8s-secret db --from-file password=./pw.txt --from-file user=./user.txt > db-secret.yaml")]
pub struct SealArgs {
    /// Org PUBLIC key file to seal to (repeatable: e.g. add a disaster-recovery key).
    #[arg(long = "key", value_name = "ORG_PUB", required = true)]
    pub keys: Vec<PathBuf>,
    /// Cluster name, as registered with the release server.
    #[arg(long)]
    pub cluster: String,
    /// Namespace of the pods that may receive the secret.
    #[arg(long)]
    pub namespace: String,
    /// Service account allowed to receive it (repeatable).
    #[arg(long = "service-account", value_name = "NAME", required = true)]
    pub service_accounts: Vec<String>,
    /// The secret's name (with --k8s-secret, defaults to the Secret's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Purpose id this secret serves (rotation posture is tracked per purpose).
    #[arg(long)]
    pub purpose: Option<String>,
    /// How often the server may release it: many (default) or once, cluster-wide.
    #[arg(long, value_enum, default_value_t)]
    pub reveal: Reveal,
    /// Refuse release after this time: RFC 3339 (2027-01-31T00:00:00Z) or a span from now (90d, 12h).
    #[arg(long, value_name = "TIME")]
    pub not_after: Option<String>,
    /// Read the secret from this file ('-' for stdin). With --k8s-secret: KEY=PATH, repeatable.
    #[arg(long = "from-file", value_name = "PATH|KEY=PATH")]
    pub from_file: Vec<String>,
    /// Print a Kubernetes Secret manifest (YAML) with this name, every data value a capsule.
    #[arg(long = "k8s-secret", value_name = "NAME")]
    pub k8s_secret: Option<String>,
}

/// Reveal modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Reveal {
    /// Release to every approved pod, every time.
    #[default]
    Many,
    /// Release exactly once, cluster-wide.
    Once,
}

/// `podseal inspect …`
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  podseal inspect db-password.capsule\n  podseal inspect - -o json < db-password.capsule"
)]
pub struct InspectArgs {
    /// A capsule (podseal:v1:…), a file holding one, or '-' for stdin.
    #[arg(value_name = "CAPSULE|FILE|-")]
    pub capsule: String,
}

/// `podseal open …`
#[derive(Debug, Args)]
#[command(
    long_about = "\
BREAK-GLASS / DEVELOPMENT TOOL. Opens a capsule with the org PRIVATE key and writes the plaintext to stdout.

This bypasses every gate of the release server: no pod, no identity, no audit record. In production the
org private key lives only on the release server or in an HSM, and pods open capsules through the
release server. Use this to recover from disaster or to check a capsule on a development machine.",
    after_help = "Example:\n  podseal open --key ./keys/org.key db-password.capsule > /dev/shm/pw"
)]
pub struct OpenArgs {
    /// Org PRIVATE key file (mode 0600); repeatable, to hold old keys during rotation.
    #[arg(long = "key", value_name = "ORG_KEY", required = true)]
    pub keys: Vec<PathBuf>,
    /// A capsule (podseal:v1:…), a file holding one, or '-' for stdin.
    #[arg(value_name = "CAPSULE|FILE|-", default_value = "-")]
    pub capsule: String,
}
