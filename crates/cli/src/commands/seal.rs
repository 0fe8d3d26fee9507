//! `podseal seal`: one capsule, or a Kubernetes Secret manifest of capsules.

use podseal_command::out;
use podseal_core::capsule::{Capsule, KubernetesScope, NameRule, RevealMode, Scope, check_name};
use podseal_core::envelope::{self, SealParams};
use podseal_core::org_key::OrgPublicKey;
use podseal_keys::key_file;
use serde::Serialize;

use crate::cli::{Reveal, SealArgs};
use crate::manifest;
use podseal_command::CliError;
use podseal_command::input::read_secret;
use podseal_command::output::{OutputFormat, document, write_new_file};

#[derive(Serialize)]
struct SealedOutput<'a> {
    capsule: String,
    id: &'a str,
    kids: Vec<&'a str>,
}

/// Seals according to `args`.
pub fn run(args: &SealArgs, output: OutputFormat) -> Result<(), CliError> {
    check_flags(args)?;
    let keys = args
        .keys
        .iter()
        .map(|path| key_file::read_public_key(path))
        .collect::<Result<Vec<_>, _>>()?;
    let keys: Vec<&OrgPublicKey> = keys.iter().collect();
    let now = jiff::Timestamp::now();
    let not_after = args
        .not_after
        .as_deref()
        .map(|text| parse_not_after(text, now))
        .transpose()?;
    match &args.k8s_secret {
        None => seal_one(args, &keys, now.as_second(), not_after, output),
        Some(secret_name) => {
            seal_manifest(args, secret_name, &keys, now.as_second(), not_after, output)
        }
    }
}

fn check_flags(args: &SealArgs) -> Result<(), CliError> {
    // The release server cannot release a reveal-once capsule yet
    // (`request/reveal_once_unsupported`): sealing one would make a secret
    // no pod can ever open. Refused here until reveal-once is built.
    if args.reveal == Reveal::Once {
        return Err(CliError::usage(
            "--reveal once is not supported yet: the release server refuses every release of such a capsule (reveal_once_unsupported)",
        )
        .hint("seal with the default --reveal many"));
    }
    let flag = |name: &str, value: &str, rule| {
        check_name(value, rule)
            .map_err(|reason| CliError::usage(format!("--{name} `{value}` is invalid: {reason}")))
    };
    flag("cluster", &args.cluster, NameRule::Label)?;
    flag("namespace", &args.namespace, NameRule::Label)?;
    for sa in &args.service_accounts {
        flag("service-account", sa, NameRule::Subdomain)?;
    }
    for (name, value) in [
        ("name", &args.name),
        ("purpose", &args.purpose),
        ("k8s-secret", &args.k8s_secret),
    ] {
        if let Some(value) = value {
            flag(name, value, NameRule::Subdomain)?;
        }
    }
    Ok(())
}

fn params(
    args: &SealArgs,
    name: &str,
    key: Option<&str>,
    now: i64,
    not_after: Option<i64>,
) -> SealParams {
    SealParams {
        scope: Scope::Kubernetes(KubernetesScope {
            cluster: args.cluster.clone(),
            namespace: args.namespace.clone(),
            service_accounts: args.service_accounts.clone(),
            name: name.to_owned(),
            key: key.map(str::to_owned),
        }),
        purpose: args.purpose.clone(),
        reveal: match args.reveal {
            Reveal::Many => RevealMode::Many,
            Reveal::Once => RevealMode::Once,
        },
        created_at: now,
        not_after,
    }
}

fn seal_one(
    args: &SealArgs,
    keys: &[&OrgPublicKey],
    now: i64,
    not_after: Option<i64>,
    output: OutputFormat,
) -> Result<(), CliError> {
    let name = args.name.as_deref().ok_or_else(|| {
        CliError::usage("--name is required")
            .hint("name the secret with --name, or write a manifest with --k8s-secret NAME")
    })?;
    let source = match args.from_file.as_slice() {
        [] => "-",
        [one] if one.contains('=') && !std::path::Path::new(one).exists() => {
            return Err(
                CliError::usage("--from-file KEY=PATH is for --k8s-secret manifests")
                    .hint("without --k8s-secret, pass just the path: --from-file PATH"),
            );
        }
        [one] => one.as_str(),
        _ => return Err(CliError::usage("only one --from-file without --k8s-secret")),
    };
    let plaintext = read_secret(source)?;
    let capsule = envelope::seal(
        params(args, name, None, now, not_after),
        plaintext.expose_secret_bytes(),
        keys,
    )?;
    let armored = capsule.to_armored();
    let text = match output {
        OutputFormat::Text => armored + "\n",
        OutputFormat::Json | OutputFormat::Yaml => document(
            output,
            &SealedOutput {
                id: &capsule.header().id,
                kids: capsule
                    .envelope
                    .stanzas()
                    .iter()
                    .filter_map(|s| s.hpke_kid().map(|kid| kid.as_str()))
                    .collect(),
                capsule: armored,
            },
        )?,
    };
    deliver(args, &text)
}

/// Prints the sealed output, or writes it to `--out` (a new file, mode
/// 0644: capsules are safe to share, and only complete output is written).
fn deliver(args: &SealArgs, text: &str) -> Result<(), CliError> {
    match &args.out {
        None => {
            out!("{text}")
        }
        Some(path) => {
            write_new_file(path, text.as_bytes(), 0o644)?;
            eprintln!("sealed to {}", path.display());
            Ok(())
        }
    }
}

fn seal_manifest(
    args: &SealArgs,
    secret_name: &str,
    keys: &[&OrgPublicKey],
    now: i64,
    not_after: Option<i64>,
    output: OutputFormat,
) -> Result<(), CliError> {
    if let Some(name) = args.name.as_deref().filter(|name| *name != secret_name) {
        return Err(CliError::usage(format!(
            "--name `{name}` differs from --k8s-secret `{secret_name}`"
        ))
        .hint("with --k8s-secret, the Secret's name is the capsules' name; drop --name"));
    }
    let sources = manifest_sources(&args.from_file)?;
    let mut entries = Vec::with_capacity(sources.len());
    for (key, path) in sources {
        let plaintext = read_secret(path)?;
        let params = params(args, secret_name, Some(key), now, not_after);
        let capsule: Capsule = envelope::seal(params, plaintext.expose_secret_bytes(), keys)?;
        entries.push((key.to_owned(), capsule));
    }
    manifest::check_size(&entries)?;
    let secret = manifest::sealed_secret(secret_name, &args.namespace, &entries)?;
    let text = match output {
        OutputFormat::Text => manifest::to_yaml(&secret)?,
        OutputFormat::Json | OutputFormat::Yaml => document(output, &secret)?,
    };
    deliver(args, &text)
}

/// Splits `KEY=PATH` pairs, refusing bad keys, duplicates and two stdins.
fn manifest_sources(from_file: &[String]) -> Result<Vec<(&str, &str)>, CliError> {
    if from_file.is_empty() {
        return Err(
            CliError::usage("--k8s-secret needs at least one --from-file KEY=PATH").hint(
                "e.g. --from-file password=./pw.txt (use KEY=- to read one value from stdin)",
            ),
        );
    }
    let mut sources: Vec<(&str, &str)> = Vec::with_capacity(from_file.len());
    for pair in from_file {
        let (key, path) = pair.split_once('=').ok_or_else(|| {
            CliError::usage(format!(
                "--from-file `{pair}` must be KEY=PATH with --k8s-secret"
            ))
        })?;
        check_name(key, NameRule::SecretKey).map_err(|reason| {
            CliError::usage(format!("Secret key `{key}` is invalid: {reason}"))
        })?;
        if sources.iter().any(|(k, _)| *k == key) {
            return Err(CliError::usage(format!(
                "Secret key `{key}` is given twice"
            )));
        }
        sources.push((key, path));
    }
    if sources.iter().filter(|(_, path)| *path == "-").count() > 1 {
        return Err(CliError::usage(
            "only one --from-file value can come from stdin",
        ));
    }
    Ok(sources)
}

/// An RFC 3339 time, or a span from now such as `90d` or `12h`.
fn parse_not_after(text: &str, now: jiff::Timestamp) -> Result<i64, CliError> {
    let at = if let Ok(time) = text.parse::<jiff::Timestamp>() {
        time
    } else if let Ok(span) = text.parse::<jiff::Span>() {
        now.to_zoned(jiff::tz::TimeZone::UTC)
            .checked_add(span)
            .map_err(|e| CliError::usage(format!("--not-after `{text}` is out of range: {e}")))?
            .timestamp()
    } else {
        return Err(
            CliError::usage(format!("--not-after `{text}` is not a time"))
                .hint("use RFC 3339 (2027-01-31T00:00:00Z) or a span from now (90d, 12h)"),
        );
    };
    if at <= now {
        return Err(CliError::usage(format!(
            "--not-after {at} is not in the future"
        )));
    }
    Ok(at.as_second())
}
