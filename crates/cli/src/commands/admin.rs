//! Admin commands: `cluster`, `apikey`, `policy`, `audit export`. Each is
//! one HTTPS request to the server's admin API with the admin token; a
//! refusal prints the server's gate, reason and detail.

use podseal_command::outln;
use std::path::Path;

use http::Method;
use podseal_core::wire::admin::{
    ApiKeyCreated, ApiKeyInfo, ApiKeyRequest, ClusterInfo, ClusterRequest, MAX_CA_PEM_BYTES,
    MAX_READER_TOKEN_BYTES, PolicyDigestsRequest, PolicyInfo, PolicyRequest, ReaderToken,
};
use podseal_keys::key_file::read_secret_text;
use podseal_sdk::https::{Answer, HttpsClient};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::cli::{AdminConnection, ApiKeyCommand, ClusterCommand, PolicyCommand, PolicyTarget};
use podseal_command::CliError;
use podseal_command::error::EXIT_CLOSED_PIPE;
use podseal_command::output::{OutputFormat, counted, emit, out_exists, write_new_file};

/// A connection to the admin API.
struct Admin {
    http: HttpsClient,
    token: Zeroizing<String>,
}

impl Admin {
    fn connect(connection: &AdminConnection) -> Result<Self, CliError> {
        let Some(path) = &connection.admin_token_file else {
            return Err(CliError::usage("no admin token").hint(
                "pass --admin-token-file FILE (or set PODSEAL_ADMIN_TOKEN_FILE); `podseal-server` showed the token once on its first start",
            ));
        };
        let token = read_secret_text(path, "admin token file")?;
        let token = Zeroizing::new(token.trim().to_owned());
        let http = match &connection.ca {
            Some(ca) => HttpsClient::with_ca_file(&connection.server, ca),
            None => HttpsClient::new(&connection.server, None),
        }
        .map_err(|e| CliError::usage(e.to_string()))?;
        Ok(Self { http, token })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, CliError> {
        let answer = self.send(method, path, body).await?;
        serde_json::from_slice(&answer.body).map_err(|e| {
            CliError::failure(format!(
                "the server's answer is not what this client expects: {e}"
            ))
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Answer, CliError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| CliError::failure(format!("cannot encode the request: {e}")))?;
        let authorization = Zeroizing::new(format!("Bearer {}", self.token.as_str()));
        let answer = self
            .http
            .send(method, path, &[("authorization", authorization.as_str())], body)
            .await
            .map_err(|e| {
                CliError::failure(e.to_string()).hint(
                    "is the server running? for a development server pass --ca STATE_DIR/tls-dev.crt",
                )
            })?;
        if answer.status.is_success() {
            return Ok(answer);
        }
        Err(refusal(&answer))
    }
}

/// A problem+json answer as a CLI error: exit 2 for a bad request, else 1.
fn refusal(answer: &Answer) -> CliError {
    let problem: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    let text = |key: &str| {
        problem
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let message = format!(
        "refused by the server ({} {}, {}/{}): {}",
        answer.status.as_u16(),
        answer.status.canonical_reason().unwrap_or(""),
        text("gate"),
        text("reason"),
        text("detail")
    );
    match (answer.status.as_u16(), text("reason").as_str()) {
        (_, "admin_token_invalid" | "admin_token_missing") => CliError::failure(message)
            .hint("the admin token is the one `podseal-server` showed on its first start"),
        (400, _) => CliError::usage(message),
        _ => CliError::failure(message),
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
                let admin = Admin::connect(&connection)?;
                let info: ClusterInfo = admin
                    .call(Method::POST, "/v1/admin/clusters", Some(&request))
                    .await?;
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
                let admin = Admin::connect(&connection)?;
                let info: ClusterInfo = admin
                    .call(
                        Method::GET,
                        &format!("/v1/admin/clusters/{name}"),
                        None::<&()>,
                    )
                    .await?;
                emit(output, &info, print_cluster)
            }
            ClusterCommand::Remove { connection, name } => {
                let admin = Admin::connect(&connection)?;
                let answer: serde_json::Value = admin
                    .call(
                        Method::DELETE,
                        &format!("/v1/admin/clusters/{name}"),
                        None::<&()>,
                    )
                    .await?;
                emit(output, &answer, |answer| {
                    let count = |key: &str| answer[key].as_u64().unwrap_or_default();
                    outln!(
                        "removed cluster {name} ({}, {}, {} with it)",
                        counted(count("api_keys_deleted"), "API key", "API keys"),
                        counted(count("policies_deleted"), "policy", "policies"),
                        counted(count("sessions_deleted"), "session", "sessions")
                    )
                })
            }
            ClusterCommand::List { connection } => {
                let admin = Admin::connect(&connection)?;
                let list: Listing<ClusterInfo> = admin
                    .call(Method::GET, "/v1/admin/clusters", None::<&()>)
                    .await?;
                let clusters = list.clusters.unwrap_or_default();
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

/// The admin API's list answers.
#[derive(serde::Deserialize)]
struct Listing<T> {
    clusters: Option<Vec<T>>,
    api_keys: Option<Vec<T>>,
    policies: Option<Vec<T>>,
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
                let admin = Admin::connect(&connection)?;
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
                let created: ApiKeyCreated = admin
                    .call(Method::POST, "/v1/admin/apikeys", Some(&request))
                    .await?;
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
                    let revoked: Result<serde_json::Value, CliError> = admin
                        .call(
                            Method::DELETE,
                            &format!("/v1/admin/apikeys/{}", created.id),
                            None::<&()>,
                        )
                        .await;
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
                let admin = Admin::connect(&connection)?;
                let list: Listing<ApiKeyInfo> = admin
                    .call(Method::GET, "/v1/admin/apikeys", None::<&()>)
                    .await?;
                let keys = list.api_keys.unwrap_or_default();
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
                let admin = Admin::connect(&connection)?;
                let answer: serde_json::Value = admin
                    .call(
                        Method::DELETE,
                        &format!("/v1/admin/apikeys/{id}"),
                        None::<&()>,
                    )
                    .await?;
                emit(output, &answer, |_| outln!("revoked API key {id}"))
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
    admin: &Admin,
    cluster: &str,
    namespace: &str,
    service_account: &str,
) -> Result<Option<PolicyInfo>, CliError> {
    let list: Listing<PolicyInfo> = admin
        .call(Method::GET, "/v1/admin/policies", None::<&()>)
        .await?;
    Ok(list.policies.unwrap_or_default().into_iter().find(|p| {
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
    let admin = Admin::connect(&target.connection)?;
    let request = PolicyDigestsRequest {
        cluster: target.cluster,
        namespace: target.namespace,
        service_account: target.service_account,
        add,
        remove,
    };
    let record: PolicyInfo = admin
        .call(Method::POST, "/v1/admin/policies/digests", Some(&request))
        .await?;
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
                let admin = Admin::connect(&connection)?;
                let before = stored_policy(&admin, &cluster, &namespace, &service_account).await?;
                let request = PolicyRequest {
                    cluster,
                    namespace,
                    service_account,
                    digests,
                    audit_mode,
                    require_nonce,
                };
                let record: PolicyInfo = admin
                    .call(Method::PUT, "/v1/admin/policies", Some(&request))
                    .await?;
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
                let admin = Admin::connect(&connection)?;
                let list: Listing<PolicyInfo> = admin
                    .call(Method::GET, "/v1/admin/policies", None::<&()>)
                    .await?;
                let matches =
                    |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
                let policies: Vec<PolicyInfo> = list
                    .policies
                    .unwrap_or_default()
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
        let admin = Admin::connect(connection)?;
        let answer = admin
            .send(Method::GET, "/v1/admin/audit/export", None::<&()>)
            .await?;
        match out {
            Some(path) => write_new_file(path, &answer.body, 0o644),
            None => podseal_command::output::print_bytes(&answer.body),
        }
    })
}
