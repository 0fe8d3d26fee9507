//! Command-line definitions of `podseal-dev`. Help text is written to teach:
//! every command says what it is for, and examples show the usual way to
//! call it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use podseal_command::output::OutputArgs;

/// podseal's development tools: the end-to-end demo, a local stand-in for
/// the Kubernetes API, and the load benchmark.
///
/// Nothing here belongs in production: the operator's command is `podseal`,
/// the release server `podseal-server`, and the pod side `podseal-exec`.
#[derive(Debug, Parser)]
#[command(
    name = "podseal-dev",
    version = podseal_command::VERSION,
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_help = "Exit codes: 0 success, 1 refused or failed, 2 usage or invalid input.")]
pub struct Cli {
    #[command(flatten)]
    pub output: OutputArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show podseal end to end on this machine in seconds: a stand-in cluster, the release server,
    /// a pod opening a sealed Secret through the four gates, and the attacks each gate refuses.
    #[command(
        after_help = "Exit code 1 if any step misbehaves (an attack that succeeds is a failure). -o json for machines."
    )]
    Demo,
    /// A local stand-in for the Kubernetes API, for the demo, tests and trying podseal without a cluster.
    #[command(subcommand)]
    Cluster(DevClusterCommand),
    /// Measure the release server under load on this machine, against the cost of its own cryptography.
    Bench(BenchArgs),
}

/// `podseal-dev bench`
#[derive(Debug, Args)]
#[command(
    long_about = "\
Measure podseal under load on this machine, against the cost of its own cryptography.

One run: (1) the crypto-only ceiling: one unwrap's cryptography (a DPoP proof verified, one HPKE
open, one HPKE seal) timed on one thread for --ceiling-secs, times the number of --server-cpus;
(2) a deployment of real processes on 127.0.0.1, children of this binary: the Kubernetes stand-in
and --replicas release servers (`podseal-server` under `taskset -c SERVER_CPUS`) sharing one external
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
  cargo build --release --bin podseal-dev --bin podseal-server
  target/release/podseal-dev bench                                   # SQLite, one replica, unwrap
  target/release/podseal-dev bench --scenario all --duration 10
  target/release/podseal-dev bench --engine postgres --replicas 3 --server-cpus 1 -o json
  target/release/podseal-dev bench --scenario unwrap --rate 1500     # open loop at 1500 unwraps/s"
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

/// `podseal-dev bench --scenario`
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

/// `podseal-dev cluster serve --token-alg`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenAlg {
    /// RSASSA-PKCS1-v1_5 SHA-256, 2048-bit RSA key.
    #[value(name = "RS256")]
    Rs256,
    /// ECDSA P-256 SHA-256.
    #[value(name = "ES256")]
    Es256,
    /// ECDSA P-384 SHA-384.
    #[value(name = "ES384")]
    Es384,
    /// ECDSA P-521 SHA-512.
    #[value(name = "ES512")]
    Es512,
}

/// `podseal-dev bench --engine`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchEngine {
    /// SQLite (one replica).
    Sqlite,
    /// PostgreSQL (one or more replicas).
    Postgres,
}

/// Where a running stand-in keeps its connection files.
#[derive(Debug, Args)]
pub struct DevClusterDir {
    /// Directory with the stand-in's connection files (ca.pem, reader.token, admin.token, cluster.json).
    #[arg(long, value_name = "DIR", default_value = "./dev-cluster")]
    pub dir: PathBuf,
}

/// `podseal-dev cluster …`
#[derive(Debug, Subcommand)]
pub enum DevClusterCommand {
    /// Serve the stand-in until interrupted (Ctrl-C).
    ///
    /// Serves, over HTTPS with a CA it generates, what kubectl and client libraries use of a
    /// Kubernetes API server: discovery, OpenAPI v3, pods, secrets, service accounts, config maps,
    /// namespaces, workloads, network policies, RBAC bindings, admission configurations, pod
    /// certificate requests and cluster trust bundles (get, list, watch, create, update, patch,
    /// server-side apply, delete), the TokenRequest API, the access reviews, OIDC discovery and the
    /// JWKS. Writes DIR/ca.pem, DIR/reader.token (read-only: get/list/watch pods), DIR/admin.token
    /// and DIR/cluster.json, and keeps its CA, keys, tokens, address and objects in DIR/state:
    /// started again with the same DIR, it is the same cluster. Register it with the release
    /// server like any cluster: its URL, ca.pem and reader.token.
    #[command(after_help = "Example:
  podseal-dev cluster serve --dir ./dev-cluster &
  podseal-dev cluster pod create --namespace shop --name api-0 --service-account api \\
      --container api=registry.example/shop/api:1.4@sha256:<64 hex> --running")]
    Serve {
        #[command(flatten)]
        dir: DevClusterDir,
        /// Address to listen on (port 0: the address of the last start with this DIR, else a free
        /// port; cluster.json records it).
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: std::net::SocketAddr,
        /// Seconds between watch bookmarks.
        #[arg(long, default_value_t = 5)]
        bookmark_interval: u64,
        /// Algorithm ServiceAccount tokens are signed with: RS256 as kube-apiserver's usual RSA
        /// key, or ES256, ES384 or ES512 as an external signer (KEP-740) may use. The JWKS and
        /// OIDC discovery publish the matching key and `id_token_signing_alg_values_supported`.
        #[arg(long, value_enum, ignore_case = true, default_value = "RS256")]
        token_alg: TokenAlg,
    },
    /// Create, list, report running, restart a container of, delete, recreate or debug pods.
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
        /// Write the token to this file (mode 0600) instead of stdout, replacing it whole as the
        /// kubelet replaces a projected token it rotates: a reader sees the old token or the new.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Mount a Secret manifest's keys as the kubelet mounts a Secret volume: each key a file
    /// SECRETS_DIR/<Secret name>/<key> holding its decoded value (what `podseal-exec
    /// --secrets-dir` reads as secret:SECRET/KEY). Files are replaced whole, as the kubelet
    /// updates a mounted Secret.
    #[command(after_help = "Example:
  podseal seal --key org.pub --cluster dev --namespace shop --service-account api \\
      --k8s-secret db --from-file password=pw.txt --out db.yaml
  podseal-dev cluster mount-secret db.yaml --secrets-dir ./secrets   # ./secrets/db/password")]
    MountSecret {
        /// The Secret manifest (YAML or JSON, as `podseal seal --k8s-secret` writes it).
        manifest: PathBuf,
        /// Where Secret volumes are mounted, each at SECRETS_DIR/<Secret name>.
        #[arg(long, value_name = "DIR")]
        secrets_dir: PathBuf,
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

/// `podseal-dev cluster pod …`
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
        /// A native sidecar (an init container with `restartPolicy: Always`, running beside the
        /// app containers), same form (repeatable).
        #[arg(long = "sidecar", value_name = "NAME=IMAGE[@sha256:…]")]
        sidecars: Vec<String>,
        /// NAME=REFERENCE: an image volume (`spec.volumes[].image`), the file system of an OCI
        /// image mounted read-only at /volumes/NAME in every app and sidecar container
        /// (repeatable). REFERENCE is by tag (`registry.example/tools:1`) or by digest
        /// (`registry.example/tools@sha256:…`).
        #[arg(long = "image-volume", value_name = "NAME=REFERENCE")]
        image_volumes: Vec<String>,
        /// NAME=sha256:DIGEST: the digest the kubelet reports it mounted for image volume NAME
        /// (`volumeStatus.image.imageRef`, Kubernetes 1.36 with the ImageVolumeWithDigest
        /// feature gate); without it nothing is reported, as by default in 1.36.
        #[arg(long = "image-volume-digest", value_name = "NAME=sha256:DIGEST")]
        image_volume_digests: Vec<String>,
        /// The node the pod is scheduled on (`spec.nodeName`; default dev-node-1).
        #[arg(long)]
        node: Option<String>,
        /// KEY=VALUE label (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// CONTAINER:NAME=VALUE: an environment variable in that container's spec (repeatable).
        /// `--env api:PODSEAL_CONTAINER=api` declares that container `api` runs podseal.
        #[arg(long = "env", value_name = "CONTAINER:NAME=VALUE")]
        env: Vec<String>,
        /// Also report every container started (phase Running).
        #[arg(long)]
        running: bool,
    },
    /// List pods (all namespaces, or one), as `kubectl get pods` does.
    #[command(after_help = "Example:\n  podseal-dev cluster pod list --namespace shop -o json")]
    List {
        #[command(flatten)]
        dir: DevClusterDir,
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Report every container started: phase Running, statuses with image digests.
    Running {
        #[command(flatten)]
        dir: DevClusterDir,
        /// NAMESPACE/NAME.
        pod: String,
    },
    /// Restart one container as the kubelet does after its process exits: the exit (waiting in
    /// back-off), then a new instance (a new containerID, restartCount + 1). The pod keeps its uid.
    #[command(
        after_help = "Example:\n  podseal-dev cluster pod restart shop/api-0 --container api"
    )]
    Restart {
        #[command(flatten)]
        dir: DevClusterDir,
        /// NAMESPACE/NAME.
        pod: String,
        /// The container to restart.
        #[arg(long)]
        container: String,
        /// Report only the exit and leave the container waiting (restart it later without this flag
        /// and with --start).
        #[arg(long, conflicts_with = "start")]
        stop: bool,
        /// Report only the start of a container left waiting by --stop.
        #[arg(long)]
        start: bool,
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
    /// Ask for a certificate for a pod as the kubelet does for a `podCertificate` projected
    /// volume: a new P-256 key, an empty PKCS#10 request it signs, and a PodCertificateRequest
    /// naming the pod, its service account and its node, checked as the API server checks one.
    /// A signer then writes its status (Issued, Denied or Failed).
    #[command(after_help = "Example:
  podseal-dev cluster pod certificate-request shop/api-0 --signer podseal.dev/workload \\
      --key-out api-0.key
  KUBECONFIG=./dev-cluster/kubeconfig kubectl get podcertificaterequests -n shop")]
    CertificateRequest {
        #[command(flatten)]
        dir: DevClusterDir,
        /// NAMESPACE/NAME.
        pod: String,
        /// The signer asked (`spec.signerName`): a domain-prefixed path.
        #[arg(long)]
        signer: String,
        /// The longest lifetime the certificate may have, seconds (3600 to 7862400; the API
        /// server's default is 86400).
        #[arg(long)]
        max_expiration_seconds: Option<i32>,
        /// Write the private key here (PKCS#8 PEM; a new file, mode 0600, never overwritten).
        #[arg(long, value_name = "FILE")]
        key_out: PathBuf,
    },
}
