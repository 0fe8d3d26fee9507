//! Command-line definitions. Help text is written to teach: every command
//! says what it is for, and examples show the usual way to call it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use podseal_command::output::OutputArgs;

/// podseal keeps Kubernetes secrets sealed everywhere except in the memory of
/// the one approved, live pod that needs them.
///
/// Anyone who can read Secrets, etcd, backups or git sees only capsules.
/// Sealing needs only the org public key; opening happens in the pod, after
/// the release server has verified it through four gates.
#[derive(Debug, Parser)]
#[command(
    name = "podseal",
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
    /// Create and show org keys (the keys capsules are sealed to).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Seal a secret into a capsule, or into a Kubernetes Secret manifest of capsules.
    Seal(SealArgs),
    /// Show a capsule's header: scope, key ids, purpose, reveal mode, times. Never anything secret.
    Inspect(InspectArgs),
    /// BREAK-GLASS: open a capsule with the org PRIVATE key and print the plaintext.
    Open(OpenArgs),
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:
  source <(podseal completion bash)                       # this shell
  podseal completion bash > /etc/bash_completion.d/podseal
  podseal completion zsh > \"${fpath[1]}/_podseal\"
  podseal completion fish > ~/.config/fish/completions/podseal.fish")]
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// How admin commands reach the server.
#[derive(Debug, Args)]
pub struct AdminConnection {
    /// The release server's URL.
    #[arg(long, env = "PODSEAL_SERVER", default_value = "https://127.0.0.1:8443")]
    pub server: String,
    /// CA bundle (PEM) to trust for the server; the system roots when absent.
    /// For a development server: STATE_DIR/tls-dev.crt.
    #[arg(long, env = "PODSEAL_CA_FILE", value_name = "FILE")]
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
    /// changes nothing. Both files are read HERE, on the machine running this command, and sent
    /// as content: the server reads no path a request names, and stores the token (never shown
    /// again).
    ///
    /// Tokens must name only this server's audiences (--allow-extra-audiences accepts tokens also
    /// meant for others) and live at most --max-token-lifetime seconds (exp - iat; for a token the
    /// API server extended, warnafter - iat).
    #[command(after_help = "Examples:
  podseal cluster add prod --api-server https://10.0.0.1:6443 --ca-bundle prod-ca.pem \
      --token-file prod-reader.token
  kubectl create token podseal-reader -n podseal --duration=8760h | podseal cluster add prod \
      --api-server https://10.0.0.1:6443 --ca-bundle prod-ca.pem --token-file - --replace
  podseal cluster add prod ... --jwks-file prod-jwks.json --issuer https://kubernetes.default.svc --replace")]
    Add {
        #[command(flatten)]
        connection: AdminConnection,
        /// Cluster name, as capsules name it.
        name: String,
        /// API server URL (https://…).
        #[arg(long = "api-server", value_name = "URL")]
        api_server: String,
        /// CA bundle of the API server (PEM, read here and pinned by the server; - for stdin).
        #[arg(long, value_name = "FILE")]
        ca_bundle: PathBuf,
        /// Read-only token (get/list/watch pods; see docs/rbac.md), read here and uploaded: the
        /// server stores it and never shows it again (- for stdin).
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
        /// Register even if the token may do more than get, list and watch pods, or its rights
        /// cannot be checked (the server asks the API server what the token may do; audited).
        #[arg(long)]
        allow_broad_token: bool,
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
    /// Remove a cluster's registration, with its API keys, policies, DPoP pins and sessions.
    ///
    /// Every release to it is refused from then on, and it no longer counts in /readyz (a
    /// registration whose cluster is gone kept the whole server not ready). One transaction on
    /// the server, audited. Registering it again needs new API keys and policies.
    #[command(after_help = "Example:\n  podseal cluster remove staging")]
    Remove {
        #[command(flatten)]
        connection: AdminConnection,
        /// Cluster name.
        name: String,
    },
}

/// `podseal apikey …`
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key bound to one cluster, namespace and service account. Shown once.
    #[command(
        after_help = "Examples:\n  podseal apikey create --cluster prod --namespace shop --service-account api --out api.key\n  podseal apikey create --cluster prod --namespace shop --service-account api -o json"
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
        /// Write the key to this new file (mode 0600, never overwriting) instead of stdout; the
        /// rest (id, binding) is printed.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
    /// Set the whole release policy of one service account (replaces the previous one).
    ///
    /// Every container of a pod — init, app and ephemeral (debug) — must run an image whose digest
    /// is allowed, or gate 4 refuses. --audit-mode records those refusals instead of enforcing
    /// them: an explicit opt-in for rollout, loud in the log and in every audit record.
    ///
    /// The digests are replaced by the ones given: name at least one --allow-digest, or
    /// --no-digests to approve none (every release is then refused). A mode the stored policy had
    /// and this command leaves out (--require-nonce, --audit-mode) is turned off, and said so.
    /// To change digests only, keeping the rest, use `policy add-digest` and `remove-digest`.
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
        #[arg(
            long = "allow-digest",
            value_name = "sha256:…",
            required_unless_present = "no_digests"
        )]
        digests: Vec<String>,
        /// Approve no digest at all: every release to this service account is refused.
        #[arg(long, conflicts_with = "digests")]
        no_digests: bool,
        /// DANGER: record what gate 4 would refuse instead of refusing.
        #[arg(long)]
        audit_mode: bool,
        /// Require RFC 9449 server nonces in DPoP proofs (a stolen key cannot pre-mint proofs).
        #[arg(long)]
        require_nonce: bool,
    },
    /// Approve more image digests, keeping the policy's other digests and modes.
    ///
    /// Creates the policy (enforcing, no nonce) if the service account has none. The change is one
    /// transaction on the server, so concurrent changes all hold.
    #[command(after_help = "Example:
  podseal policy add-digest --cluster prod --namespace shop --service-account api sha256:4567…89ab")]
    AddDigest {
        #[command(flatten)]
        target: PolicyTarget,
        /// Digests to approve, sha256:<64 hex>.
        #[arg(required = true, value_name = "sha256:…")]
        digests: Vec<String>,
    },
    /// Withdraw approved image digests, keeping the policy's other digests and modes.
    ///
    /// A digest that is not approved is an error (nothing changes). Withdrawing the last one leaves
    /// an empty allowlist: every release to the service account is then refused.
    #[command(after_help = "Example:
  podseal policy remove-digest --cluster prod --namespace shop --service-account api sha256:0123…cdef")]
    RemoveDigest {
        #[command(flatten)]
        target: PolicyTarget,
        /// Digests to withdraw.
        #[arg(required = true, value_name = "sha256:…")]
        digests: Vec<String>,
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

/// The service account a `policy add-digest` or `remove-digest` changes.
#[derive(Debug, Args)]
pub struct PolicyTarget {
    #[command(flatten)]
    pub connection: AdminConnection,
    /// Cluster.
    #[arg(long)]
    pub cluster: String,
    /// Namespace.
    #[arg(long)]
    pub namespace: String,
    /// Service account.
    #[arg(long = "service-account")]
    pub service_account: String,
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
        /// Write to this new file instead of stdout (only once the whole export arrived; never overwrites).
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
    ///
    /// The origin is the log's: taken from an export, which is verified with the key first, or
    /// given with --origin when no export is at hand (nothing then checks that it is this log's).
    #[command(
        after_help = "Examples:\n  podseal audit public-key --key audit.pub audit.jsonl > audit.vkey\n  podseal audit public-key --key audit.pub --origin secrets.example.com/podseal-audit\n  podseal audit verify --key audit.vkey audit.jsonl"
    )]
    PublicKey {
        /// The audit public key file (podseal-audit-public-key:v1:…).
        #[arg(long = "key", value_name = "AUDIT_PUB")]
        key: PathBuf,
        /// The log's origin, when no export is given.
        #[arg(long, value_name = "ORIGIN", required_unless_present = "export")]
        origin: Option<String>,
        /// An export of the log (`podseal audit export`), or '-' for stdin: the origin is read
        /// from its checkpoints once the export verifies with the key.
        #[arg(value_name = "EXPORT", conflicts_with = "origin")]
        export: Option<String>,
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
  podseal seal --key org.pub --cluster prod --namespace shop --service-account api \\
      --name db-password --out db-password.capsule < db-password.txt

  podseal seal --key org.pub --cluster prod --namespace shop --service-account api \\
      --k8s-secret db --from-file password=./pw.txt --from-file user=./user.txt --out db.yaml")]
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
    /// Write the capsule (or manifest, or -o document) to this new file, only once it is sealed:
    /// a failure leaves no file, and an existing file is never overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
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
    long_about = "\
Show a capsule's header and wraps. Never anything secret.

Without --key the header is UNVERIFIED: it is authenticated by the capsule's data key, which only
the org private key can unwrap, so anyone can edit what this prints. With --key ORG_KEY the capsule
is opened in memory (nothing secret is printed or kept) and the header is shown as verified, or
the command fails (exit 1) if it was altered.",
    after_help = "Examples:\n  podseal inspect db-password.capsule\n  podseal inspect -o json < db-password.capsule\n  podseal inspect --key ./keys/org.key db-password.capsule    # verify the header too"
)]
pub struct InspectArgs {
    /// A capsule (podseal:v1:…), a file holding one, or '-' for stdin (the default, as for `open`).
    #[arg(value_name = "CAPSULE|FILE|-", default_value = "-")]
    pub capsule: String,
    /// Org PRIVATE key file (mode 0600) to verify the header with; repeatable.
    #[arg(long = "key", value_name = "ORG_KEY")]
    pub keys: Vec<PathBuf>,
}

/// `podseal open …`
#[derive(Debug, Args)]
#[command(
    long_about = "\
BREAK-GLASS / DEVELOPMENT TOOL. Opens a capsule with the org PRIVATE key and writes the plaintext to stdout.

This bypasses every gate of the release server: no pod, no identity, no audit record. In production the
org private key lives only on the release server or in an HSM, and pods open capsules through the
release server. Use this to recover from disaster or to check a capsule on a development machine.",
    after_help = "Examples:\n  podseal open --key ./keys/org.key db-password.capsule > /dev/shm/pw\n  podseal open --key ./keys/org.key db-password.capsule -o json   # {id, plaintext} (plaintext_base64 when not UTF-8)"
)]
pub struct OpenArgs {
    /// Org PRIVATE key file (mode 0600); repeatable, to hold old keys during rotation.
    #[arg(long = "key", value_name = "ORG_KEY", required = true)]
    pub keys: Vec<PathBuf>,
    /// A capsule (podseal:v1:…), a file holding one, or '-' for stdin.
    #[arg(value_name = "CAPSULE|FILE|-", default_value = "-")]
    pub capsule: String,
}
