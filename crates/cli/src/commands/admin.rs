//! Admin commands: `cluster`, `apikey`, `policy`, `audit export`. Each is
//! one HTTPS request to the server's admin API with the admin token; a
//! refusal prints the server's gate, reason and detail.

use podseal_command::outln;
use std::path::Path;

use podseal_core::wire::admin::{
    ApiKeyRequest, ClusterInfo, ClusterRequest, MAX_CA_PEM_BYTES, MAX_READER_TOKEN_BYTES,
    PolicyDigestsRequest, PolicyInfo, PolicyRequest, ReaderToken,
};
use podseal_keys::key_file::read_secret_text;
use podseal_sdk::admin::{AdminClient, AdminError};
use podseal_sdk::https::HttpsClient;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::cli::{AdminConnection, ApiKeyCommand, ClusterCommand, PolicyCommand, PolicyTarget};
use podseal_command::CliError;
use podseal_command::error::EXIT_CLOSED_PIPE;
use podseal_command::output::{OutputFormat, counted, emit, out_exists, write_new_file};

/// A connection to the admin API, from `--server`, `--ca` and
/// `--admin-token-file`.
fn connect(connection: &AdminConnection) -> Result<AdminClient, CliError> {
    let Some(path) = &connection.admin_token_file else {
        return Err(CliError::usage("no admin token").hint(
            "pass --admin-token-file FILE (or set PODSEAL_ADMIN_TOKEN_FILE); `podseal-server` showed the token once on its first start",
        ));
    };
    let token = Zeroizing::new(read_secret_text(path, "admin token file")?);
    let http = match &connection.ca {
        Some(ca) => HttpsClient::with_ca_file(&connection.server, ca),
        None => HttpsClient::new(&connection.server, None),
    }
    .map_err(|e| CliError::usage(e.to_string()))?;
    Ok(AdminClient::new(http, &token))
}

/// An admin request's failure as a CLI error: a refusal exits 2 for a bad
/// request, 1 otherwise; an unreachable server says what to check.
fn failed(error: AdminError) -> CliError {
    match &error {
        AdminError::Transport(_) => CliError::failure(error.to_string()).hint(
            "is the server running? for a development server pass --ca STATE_DIR/tls-dev.crt",
        ),
        AdminError::Refused { status, reason, .. } => match (status.as_u16(), reason.as_str()) {
            (_, "admin_token_invalid" | "admin_token_missing") => {
                CliError::failure(error.to_string())
                    .hint("the admin token is the one `podseal-server` showed on its first start")
            }
            (400, _) => CliError::usage(error.to_string()),
            _ => CliError::failure(error.to_string()),
        },
        AdminError::Answer(_) | AdminError::Encode(_) => CliError::failure(error.to_string()),
    }
}

/// Reads at most `max` bytes of `path` (`-`: standard input), refusing a
/// larger file by name; the bytes are zeroized when dropped.
fn read_bounded(path: &Path, what: &str, max: usize) -> Result<Zeroizing<Vec<u8>>, CliError> {
    use std::io::Read as _;
    let failed = |e: std::io::Error| {
        CliError::usage(format!("cannot read the {what} {}: {e}", path.display()))
    };
    let mut bytes = Zeroizing::new(Vec::with_capacity(max.min(64 * 1024) + 1));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(failed)?;
    } else {
        std::fs::File::open(path)
            .map_err(failed)?
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(failed)?;
    }
    if bytes.len() > max {
        return Err(CliError::usage(format!(
            "the {what} {} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

/// The reader token of `--token-file` (`-`: standard input), trimmed as
/// client-go trims a token file, checked here so that a file that holds no
/// token is named before anything is sent.
fn reader_token(path: &Path) -> Result<ReaderToken, CliError> {
    // Room for the whitespace around a token (a trailing newline, CRLF).
    let bytes = read_bounded(path, "token file", MAX_READER_TOKEN_BYTES + 1024)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        CliError::usage(format!(
            "the token file {} holds no token (not UTF-8)",
            path.display()
        ))
    })?;
    let token = ReaderToken::new(text);
    token.check().map_err(|why| {
        CliError::usage(format!("the token in {} {why}", path.display()))
            .hint("the token of a service account bound to get, list and watch on pods (docs/rbac.md), e.g. `kubectl create token podseal-reader --duration=8760h > FILE`")
    })?;
    Ok(token)
}

fn block_on<T>(work: impl Future<Output = Result<T, CliError>>) -> Result<T, CliError> {
    podseal_command::runtime()?.block_on(work)
}

fn print_cluster(info: &ClusterInfo) -> Result<(), CliError> {
    outln!("cluster:      {}", info.name)?;
    outln!("issuer:       {}", info.issuer)?;
    outln!("audiences:    {}", info.audiences.join(", "))?;
    outln!("api server:   {}", info.api_server_url)?;
    for fingerprint in &info.ca_sha256 {
        outln!("ca sha256:    {fingerprint}")?;
    }
    if info.ca_sha256.is_empty() {
        outln!("ca sha256:    NONE PINNED (register again with --replace)")?;
    }
    outln!("reader token: held by the server (uploaded at registration, never shown)")?;
    outln!("pinned kids:  {}", info.pinned_kids.join(", "))?;
    if !info.unpinned_kids.is_empty() {
        outln!(
            "UNPINNED KIDS: {} (the cluster signs with keys not pinned here: its pods' new tokens are refused; re-pin with `podseal cluster add {} … --replace`)",
            info.unpinned_kids.join(", "),
            info.name
        )?;
    }
    outln!(
        "extra audiences: {}",
        if info.allow_extra_audiences {
            "allowed"
        } else {
            "refused"
        }
    )?;
    outln!("max token lifetime: {} s", info.max_token_lifetime_secs)?;
    match &info.not_ready {
        None => outln!("view:         ready")?,
        Some(why) => outln!("view:         NOT READY: {why}")?,
    }
    Ok(())
}

/// `podseal cluster …`
pub fn cluster(command: ClusterCommand, output: OutputFormat) -> Result<(), CliError> {
    block_on(async move {
        match command {
            ClusterCommand::Add {
                connection,
                name,
                api_server,
                ca_bundle,
                token_file,
                issuer,
                audiences,
                jwks_file,
                allow_extra_audiences,
                max_token_lifetime,
                replace,
                allow_broad_token,
            } => {
                let jwks = jwks_file
                    .map(|path| {
                        std::fs::read_to_string(&path).map_err(|e| {
                            CliError::usage(format!("cannot read {}: {e}", path.display()))
                        })
                    })
                    .transpose()?;
                // Both files are read here, on this machine, and sent as
                // content: the server reads no path an admin request names.
                let ca_pem = read_bounded(&ca_bundle, "CA bundle", MAX_CA_PEM_BYTES)?;
                let ca_pem = String::from_utf8(ca_pem.to_vec()).map_err(|_| {
                    CliError::usage(format!(
                        "the CA bundle {} is not PEM text (not UTF-8)",
                        ca_bundle.display()
                    ))
                })?;
                let reader_token = reader_token(&token_file)?;
                let request = ClusterRequest {
                    name,
                    api_server_url: api_server,
                    ca_pem,
                    reader_token,
                    issuer,
                    audiences,
                    jwks,
                    allow_extra_audiences,
                    max_token_lifetime_secs: max_token_lifetime,
                    replace,
                    allow_broad_token,
                };
                let admin = connect(&connection)?;
                let info = admin.add_cluster(&request).await.map_err(failed)?;
                emit(output, &info, |info| {
                    print_cluster(info)?;
                    eprintln!(
                        "pinned {} and {}; other keys and CAs are refused until `cluster add --replace`",
                        counted(info.pinned_kids.len() as u64, "key", "keys"),
                        counted(
                            info.ca_sha256.len() as u64,
                            "CA certificate",
                            "CA certificates"
                        )
                    );
                    Ok(())
                })
            }
            ClusterCommand::Show { connection, name } => {
                let admin = connect(&connection)?;
                let info = admin.cluster(&name).await.map_err(failed)?;
                emit(output, &info, print_cluster)
            }
            ClusterCommand::Remove { connection, name } => {
                let admin = connect(&connection)?;
                let removed = admin.remove_cluster(&name).await.map_err(failed)?;
                emit(output, &removed, |removed| {
                    outln!(
                        "removed cluster {name} ({}, {}, {} with it)",
                        counted(removed.api_keys_deleted, "API key", "API keys"),
                        counted(removed.policies_deleted, "policy", "policies"),
                        counted(removed.sessions_deleted, "session", "sessions")
                    )
                })
            }
            ClusterCommand::List { connection } => {
                let admin = connect(&connection)?;
                let clusters = admin.clusters().await.map_err(failed)?;
                emit(output, &clusters, |clusters| {
                    outln!(
                        "{:<20} {:<8} {:<40} PINNED KIDS",
                        "NAME",
                        "VIEW",
                        "API SERVER"
                    )?;
                    for c in clusters {
                        let view = if c.ready { "ready" } else { "NOT-READY" };
                        outln!(
                            "{:<20} {:<8} {:<40} {}",
                            c.name,
                            view,
                            c.api_server_url,
                            c.pinned_kids.join(",")
                        )?;
                    }
                    Ok(())
                })
            }
        }
    })
}

/// `apikey create --out`: what is printed once the key is in its file.
#[derive(Serialize)]
struct ApiKeyWritten<'a> {
    id: &'a str,
    cluster: &'a str,
    namespace: &'a str,
    service_account: &'a str,
    created_at: i64,
    key_file: &'a Path,
}

fn time(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map_or_else(|_| seconds.to_string(), |t| t.to_string())
}

/// `podseal apikey …`
pub fn api_key(command: ApiKeyCommand, output: OutputFormat) -> Result<(), CliError> {
    block_on(async move {
        match command {
            ApiKeyCommand::Create {
                connection,
                cluster,
                namespace,
                service_account,
                out,
            } => {
                let admin = connect(&connection)?;
                // A file that is there already is refused before a key is
                // made; a write that fails after is undone by revoking.
                if let Some(path) = out.as_deref().filter(|path| path.exists()) {
                    return Err(out_exists(path));
                }
                let request = ApiKeyRequest {
                    cluster,
                    namespace,
                    service_account,
                };
                let created = admin.create_api_key(&request).await.map_err(failed)?;
                // The key is delivered once, to the file or to stdout; a key
                // that reached neither (a failed write, a closed pipe) is
                // revoked at once, so that no credential nobody holds stays
                // valid.
                let delivered = match &out {
                    Some(path) => {
                        let key = Zeroizing::new(format!("{}\n", created.key));
                        write_new_file(path, key.as_bytes(), 0o600)
                    }
                    None => emit(output, &created, |created| {
                        outln!("{}", created.key)?;
                        eprintln!(
                            "(the API key above is {} for {}/{}/{}, shown once: only its hash is stored)",
                            created.id, created.cluster, created.namespace, created.service_account
                        );
                        Ok(())
                    }),
                };
                if let Err(error) = delivered {
                    let revoked = admin.revoke_api_key(&created.id).await;
                    return Err(match revoked {
                        Ok(_) if error.exit_code() == EXIT_CLOSED_PIPE => error,
                        Ok(_) => CliError::failure(format!(
                            "{}; the new key {} was revoked",
                            error.message(),
                            created.id
                        )),
                        Err(_) => CliError::failure(format!(
                            "{}; the new key {} could not be revoked: revoke it with `podseal apikey revoke {}`",
                            error.message(),
                            created.id,
                            created.id
                        )),
                    });
                }
                let Some(path) = out else {
                    return Ok(());
                };
                let written = ApiKeyWritten {
                    id: &created.id,
                    cluster: &created.cluster,
                    namespace: &created.namespace,
                    service_account: &created.service_account,
                    created_at: created.created_at,
                    key_file: &path,
                };
                emit(output, &written, |w| {
                    outln!(
                        "API key {} for {}/{}/{} written to {} (mode 0600; shown nowhere else, only its hash is stored)",
                        w.id,
                        w.cluster,
                        w.namespace,
                        w.service_account,
                        w.key_file.display()
                    )
                })
            }
            ApiKeyCommand::List { connection } => {
                let admin = connect(&connection)?;
                let keys = admin.api_keys().await.map_err(failed)?;
                emit(output, &keys, |keys| {
                    outln!(
                        "{:<16} {:<12} {:<20} {:<20} {:<22} REVOKED",
                        "ID",
                        "CLUSTER",
                        "NAMESPACE",
                        "SERVICE ACCOUNT",
                        "CREATED"
                    )?;
                    for k in keys {
                        outln!(
                            "{:<16} {:<12} {:<20} {:<20} {:<22} {}",
                            k.id,
                            k.cluster,
                            k.namespace,
                            k.service_account,
                            time(k.created_at),
                            k.revoked_at.map_or_else(|| "-".to_owned(), time)
                        )?;
                    }
                    Ok(())
                })
            }
            ApiKeyCommand::Revoke { connection, id } => {
                let admin = connect(&connection)?;
                let revoked = admin.revoke_api_key(&id).await.map_err(failed)?;
                emit(output, &revoked, |_| outln!("revoked API key {id}"))
            }
        }
    })
}

fn print_policy(p: &PolicyInfo) -> Result<(), CliError> {
    outln!("{}/{}/{}", p.cluster, p.namespace, p.service_account)?;
    if p.audit_mode {
        outln!("  mode:           AUDIT MODE (gate 4 records instead of refusing)")?;
    } else {
        outln!("  mode:           enforce")?;
    }
    outln!(
        "  require nonce:  {}",
        if p.require_nonce { "yes" } else { "no" }
    )?;
    if p.digests.is_empty() {
        outln!("  allowed digests: none (every release is refused by gate 4)")?;
    }
    for digest in &p.digests {
        outln!("  allow           {digest}")?;
    }
    Ok(())
}

/// The stored policy of one service account, if any.
async fn stored_policy(
    admin: &AdminClient,
    cluster: &str,
    namespace: &str,
    service_account: &str,
) -> Result<Option<PolicyInfo>, CliError> {
    let policies = admin.policies().await.map_err(failed)?;
    Ok(policies.into_iter().find(|p| {
        p.cluster == cluster && p.namespace == namespace && p.service_account == service_account
    }))
}

fn warn_if_empty(record: &PolicyInfo) {
    if record.digests.is_empty() {
        eprintln!(
            "warning: {}/{}/{} approves no digest now: gate 4 refuses every release to it",
            record.cluster, record.namespace, record.service_account
        );
    }
}

/// `policy add-digest` and `remove-digest`: one atomic change on the server.
async fn change_digests(
    target: PolicyTarget,
    add: Vec<String>,
    remove: Vec<String>,
    output: OutputFormat,
) -> Result<(), CliError> {
    let admin = connect(&target.connection)?;
    let request = PolicyDigestsRequest {
        cluster: target.cluster,
        namespace: target.namespace,
        service_account: target.service_account,
        add,
        remove,
    };
    let record = admin
        .change_policy_digests(&request)
        .await
        .map_err(failed)?;
    warn_if_empty(&record);
    emit(output, &record, print_policy)
}

/// `podseal policy …`
pub fn policy(command: PolicyCommand, output: OutputFormat) -> Result<(), CliError> {
    block_on(async move {
        match command {
            PolicyCommand::Set {
                connection,
                cluster,
                namespace,
                service_account,
                digests,
                no_digests: _,
                audit_mode,
                require_nonce,
            } => {
                let admin = connect(&connection)?;
                let before = stored_policy(&admin, &cluster, &namespace, &service_account).await?;
                let request = PolicyRequest {
                    cluster,
                    namespace,
                    service_account,
                    digests,
                    audit_mode,
                    require_nonce,
                };
                let record = admin.set_policy(&request).await.map_err(failed)?;
                if let Some(before) = before {
                    for (mode, was, is, flag) in [
                        (
                            "require nonce",
                            before.require_nonce,
                            record.require_nonce,
                            "--require-nonce",
                        ),
                        (
                            "audit mode",
                            before.audit_mode,
                            record.audit_mode,
                            "--audit-mode",
                        ),
                    ] {
                        if was && !is {
                            eprintln!(
                                "note: {mode} was on and is now off (`policy set` replaces the whole policy; pass {flag} to keep it)"
                            );
                        }
                    }
                }
                warn_if_empty(&record);
                if record.audit_mode {
                    eprintln!(
                        "WARNING: AUDIT MODE is on for {}/{}/{}: gate 4 will RELEASE to pods running unapproved images and only record it. Turn it off with `podseal policy set` without --audit-mode.",
                        record.cluster, record.namespace, record.service_account
                    );
                }
                emit(output, &record, print_policy)
            }
            PolicyCommand::AddDigest { target, digests } => {
                change_digests(target, digests, Vec::new(), output).await
            }
            PolicyCommand::RemoveDigest { target, digests } => {
                change_digests(target, Vec::new(), digests, output).await
            }
            PolicyCommand::Show {
                connection,
                cluster,
                namespace,
                service_account,
            } => {
                let admin = connect(&connection)?;
                let policies = admin.policies().await.map_err(failed)?;
                let matches =
                    |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
                let policies: Vec<PolicyInfo> = policies
                    .into_iter()
                    .filter(|p| {
                        matches(&cluster, &p.cluster)
                            && matches(&namespace, &p.namespace)
                            && matches(&service_account, &p.service_account)
                    })
                    .collect();
                emit(output, &policies, |policies| {
                    if policies.is_empty() {
                        outln!(
                            "no policy matches (a service account without a policy is refused by gate 4)"
                        )?;
                    }
                    for p in policies {
                        print_policy(p)?;
                    }
                    Ok(())
                })
            }
        }
    })
}

/// `podseal audit export`
pub fn audit_export(connection: &AdminConnection, out: Option<&Path>) -> Result<(), CliError> {
    block_on(async move {
        let admin = connect(connection)?;
        let export = admin.audit_export().await.map_err(failed)?;
        match out {
            Some(path) => write_new_file(path, &export, 0o644),
            None => podseal_command::output::print_bytes(&export),
        }
    })
}
