//! `podseal-exec`: open capsules through the release server and replace
//! this process with a program that receives the plaintext — in its
//! environment, or in files on a RAM-backed filesystem.
//!
//! Every capsule is opened in one batch before the program starts; on any
//! refusal the program never starts and the gate's reason is printed. The
//! program *replaces* this process (`execve`), so signals reach it directly
//! and its exit code is the exit code.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

use podseal_core::armor;
use podseal_core::capsule::{Capsule, SecretSlot, SlotMismatch};
use podseal_core::reason::Reason;
use podseal_core::secret::Plaintext;
use podseal_sdk::client::{Client, Origin, SdkError};
use podseal_sdk::memory::harden_process;

use podseal_command::CliError;
use podseal_command::input::read_capsule;

use crate::ExecArgs;

/// Filesystems that keep their pages in RAM (statfs `f_type`).
const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// The prefix of a `--env`/`--file` source that names a Secret's key.
const SECRET_SOURCE: &str = "secret:";

/// Where one plaintext goes.
enum Target {
    Env(String),
    File(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::File(dest) => write!(f, "{}", dest.display()),
        }
    }
}

fn split_pair<'a>(flag: &str, form: &str, pair: &'a str) -> Result<(&'a str, &'a str), CliError> {
    pair.split_once('=')
        .filter(|(name, value)| !name.is_empty() && !value.is_empty())
        .ok_or_else(|| CliError::usage(format!("{flag} takes {form}, got `{pair}`")))
}

fn secret_slot(flag: &str, text: &str) -> Result<SecretSlot, CliError> {
    SecretSlot::parse(text).map_err(|why| {
        CliError::usage(format!("{flag}: {why}")).hint(
            "name the Secret and the key the pod spec reads it from: SECRET/KEY, e.g. db/password",
        )
    })
}

/// A `--env`/`--file` source: a capsule file given directly, or
/// `secret:SECRET/KEY`, the file KEY of Secret SECRET's volume mounted at
/// `SECRETS_DIR/SECRET`, whose header must name that Secret and key.
fn read_source(
    flag: &str,
    source: &str,
    secrets_dir: &Path,
) -> Result<(Capsule, Origin), CliError> {
    let Some(slot) = source.strip_prefix(SECRET_SOURCE) else {
        return Ok((read_capsule(source)?, Origin::Direct));
    };
    let slot = secret_slot(flag, slot)?;
    let path = secrets_dir.join(&slot.secret).join(&slot.key);
    let path = path
        .to_str()
        .ok_or_else(|| CliError::usage(format!("{flag}: {} is not UTF-8", path.display())))?;
    Ok((read_capsule(path)?, Origin::Secret(slot)))
}

/// The capsules found in environment variables, each with its origin: the
/// Secret and key a `--from` names, or `--direct`. A capsule in a variable
/// neither names is refused, so that none is opened unchecked by default.
fn env_capsules(args: &ExecArgs) -> Result<Vec<(Target, Capsule, Origin)>, CliError> {
    let mut from = Vec::with_capacity(args.from.len());
    for pair in &args.from {
        let (name, slot) = split_pair("--from", "NAME=SECRET/KEY", pair)?;
        from.push((name, secret_slot("--from", slot)?));
    }
    let named: Vec<&str> = from
        .iter()
        .map(|(name, _)| *name)
        .chain(args.direct.iter().map(String::as_str))
        .collect();
    for (i, name) in named.iter().enumerate() {
        if !is_env_name(name) {
            return Err(CliError::usage(format!(
                "`{name}` is not an environment variable name"
            )));
        }
        if named.iter().take(i).any(|n| n == name) {
            return Err(CliError::usage(format!(
                "environment variable {name} is named twice by --from/--direct"
            )));
        }
        match std::env::var(*name) {
            Ok(value) if armor::looks_like_capsule(&value) => {}
            Ok(_) => {
                return Err(CliError::usage(format!(
                    "environment variable {name} does not hold a capsule (podseal:v1:…)"
                )));
            }
            Err(_) => {
                return Err(CliError::usage(format!(
                    "environment variable {name} is not set (or not UTF-8)"
                ))
                .hint("check the secretKeyRef (or value) that fills it in the pod spec"));
            }
        }
    }
    let mut found = Vec::new();
    for (name, value) in std::env::vars_os() {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        if !armor::looks_like_capsule(value) {
            continue;
        }
        let origin = if let Some((_, slot)) = from.iter().find(|(n, _)| *n == name) {
            Origin::Secret(slot.clone())
        } else if args.direct.iter().any(|n| n == name) {
            Origin::Direct
        } else {
            return Err(CliError::usage(format!(
                "environment variable {name} holds a capsule, but no --from names the Secret and key it was read from"
            ))
            .hint(format!(
                "add --from {name}=SECRET/KEY with the secretKeyRef's name and key from the pod spec, or --direct {name} if the pod spec holds the capsule itself"
            )));
        };
        let capsule = Capsule::from_armored(value.trim())
            .map_err(|e| CliError::usage(format!("environment variable {name}: {e}")))?;
        found.push((Target::Env(name.to_owned()), capsule, origin));
    }
    Ok(found)
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Refuses a destination whose directory is not RAM-backed.
fn check_ram_backed(dest: &Path) -> Result<(), CliError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let stat = rustix::fs::statfs(dir)
        .map_err(|e| CliError::usage(format!("cannot inspect {}: {e}", dir.display())))?;
    #[allow(
        clippy::useless_conversion,
        reason = "f_type's width differs between targets"
    )]
    let kind = u64::try_from(stat.f_type).unwrap_or_default();
    if kind == TMPFS_MAGIC || kind == RAMFS_MAGIC {
        return Ok(());
    }
    Err(CliError::usage(format!(
        "{} is not on a RAM-backed filesystem (tmpfs or ramfs): a plaintext written there could reach the disk and outlive the pod",
        dir.display()
    ))
    .hint("use /dev/shm or an emptyDir with medium: Memory, or pass --allow-disk if you accept that"))
}

fn write_plaintext(dest: &Path, plaintext: &Plaintext) -> Result<(), CliError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(dest)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", dest.display())))?;
    file.write_all(plaintext.expose_secret_bytes())
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", dest.display())))
}

/// How a client error is shown: the gate's reason when the server gave one.
fn sdk_error(error: SdkError) -> CliError {
    {
        let message = error.to_string();
        match error {
            SdkError::Config(_) | SdkError::Credentials { .. } => CliError::usage(message)
                .hint("podseal-exec reads PODSEAL_SERVER, PODSEAL_CA_FILE or PODSEAL_SERVER_FINGERPRINT, PODSEAL_API_KEY_FILE, PODSEAL_TOKEN_FILE and PODSEAL_CONTAINER"),
            // The server answered, through every retry, that it cannot decide
            // now, and said why: name it, as a refusal names its gate.
            SdkError::Unavailable {
                gate: Some(gate),
                reason: Some(reason),
                ..
            } => CliError::failure(message).hint(format!(
                "the server could not decide (gate {gate}, reason {reason}): nothing was released and the program did not start; try again once the server is ready (GET /readyz)"
            )),
            SdkError::Refused { ref reason, .. } => {
                let hint = match reason.known() {
                    Some(Reason::PodKeyAlreadyPinned) => Some(
                        "another process in this running container holds the pin: run podseal-exec as the container's command, so that a failure ends the container and its restart enrols afresh",
                    ),
                    Some(
                        Reason::ContainerRequired
                        | Reason::ContainerUnknown
                        | Reason::ContainerNotDeclared,
                    ) => Some(
                        "set PODSEAL_CONTAINER to this container's own name in its env in the pod spec (see docs/kubernetes.md)",
                    ),
                    _ => None,
                };
                match hint {
                    Some(hint) => CliError::failure(message).hint(hint),
                    None => CliError::failure(message),
                }
            }
            _ => CliError::failure(message),
        }
    }
}

/// A capsule found in another Secret or key than its header names: both are
/// named, with where it was going.
fn misplaced(target: Option<&Target>, mismatch: &SlotMismatch) -> CliError {
    let target = target.map_or_else(String::new, |t| format!("{t}: "));
    CliError::failure(format!("{target}{mismatch}")).hint(
        "nothing was asked of the server and the program did not start; a Secret writer may have moved it: reseal it for this Secret and key, or correct the --from/secret: that names the wrong one",
    )
}

/// Finds PROGRAM as `execve` will (a path, or a name searched in `PATH`)
/// and checks that it may be executed: a mistyped program is refused
/// before any capsule is opened, so it costs no enrolment.
fn find_program(program: &str) -> Result<PathBuf, CliError> {
    let executable = |path: &Path| {
        path.is_file() && rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok()
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return if executable(&path) {
            Ok(path)
        } else {
            Err(CliError::usage(format!(
                "cannot run {program}: no such executable file"
            )))
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|path| executable(path))
        .ok_or_else(|| {
            CliError::usage(format!(
                "cannot run {program}: not found in PATH (nothing was opened)"
            ))
        })
}

/// Runs `podseal-exec`; returns only on failure.
pub fn run(args: &ExecArgs) -> Result<(), CliError> {
    let Some((program, program_args)) = args.command.split_first() else {
        return Err(CliError::usage(
            "no program given: podseal-exec [OPTIONS] -- PROGRAM [ARGS]…",
        ));
    };
    let program_path = find_program(program)?;
    let mut targets = Vec::new();
    let mut capsules = Vec::new();
    for (target, capsule, origin) in env_capsules(args)? {
        targets.push(target);
        capsules.push((capsule, origin));
    }
    for pair in &args.env {
        let (name, source) = split_pair("--env", "NAME=SOURCE", pair)?;
        if !is_env_name(name) {
            return Err(CliError::usage(format!(
                "--env: `{name}` is not an environment variable name"
            )));
        }
        targets.push(Target::Env(name.to_owned()));
        capsules.push(read_source("--env", source, &args.secrets_dir)?);
    }
    for pair in &args.file {
        let (dest, source) = split_pair("--file", "DEST=SOURCE", pair)?;
        let dest = PathBuf::from(dest);
        if !args.allow_disk {
            check_ram_backed(&dest)?;
        }
        if dest.exists() {
            return Err(CliError::usage(format!(
                "{} already exists; podseal-exec never overwrites",
                dest.display()
            )));
        }
        targets.push(Target::File(dest));
        capsules.push(read_source("--file", source, &args.secrets_dir)?);
    }
    if capsules.is_empty() {
        return Err(CliError::usage(
            "nothing to open: no environment variable holds a capsule and no --env or --file was given",
        ));
    }
    let hardening = harden_process();
    if let Err(why) = &hardening.memory_locked {
        tracing::debug!(%why, "memory not locked (best effort)");
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    let plaintexts = runtime.block_on(async {
        let client = Client::from_env()?;
        client.open_many_from(&capsules).await
    });
    let plaintexts = plaintexts.map_err(|error| match error {
        SdkError::Misplaced { index, mismatch } => misplaced(targets.get(index), &mismatch),
        other => sdk_error(other),
    })?;
    drop(runtime);

    let mut command = std::process::Command::new(&program_path);
    command.arg0(program).args(program_args);
    for (target, plaintext) in targets.iter().zip(&plaintexts) {
        match target {
            Target::Env(name) => {
                let bytes = plaintext.expose_secret_bytes();
                if bytes.contains(&0) {
                    return Err(CliError::usage(format!(
                        "the secret for {name} contains a NUL byte and cannot be an environment variable; use --file"
                    )));
                }
                command.env(name, OsString::from_vec(bytes.to_vec()));
            }
            Target::File(dest) => write_plaintext(dest, plaintext)?,
        }
    }
    drop(plaintexts);
    let error = command.exec();
    Err(CliError::failure(format!(
        "cannot start {program}: {error}"
    )))
}

#[cfg(test)]
mod tests {
    use podseal_core::reason::{Gate, Reason};

    use super::*;

    /// What `podseal-exec` prints when the server stays unavailable: the
    /// last answer's gate and reason, not only its status.
    #[test]
    fn an_unavailable_server_is_reported_with_its_gate_and_reason() {
        let error = sdk_error(SdkError::Unavailable {
            attempts: 5,
            last:
                "HTTP 503 (live_pod/view_unknown): the cluster's pod view cannot decide right now"
                    .into(),
            gate: Some(Gate::LivePod.into()),
            reason: Some(Reason::ViewUnknown.into()),
        });
        assert_eq!(error.exit_code(), podseal_command::error::EXIT_FAILURE);
        assert_eq!(
            error.message(),
            "the release server is unavailable after 5 attempts: HTTP 503 (live_pod/view_unknown): the cluster's pod view cannot decide right now"
        );
        let hint = error.hint_text().unwrap_or_default();
        assert!(
            hint.contains("gate live_pod, reason view_unknown"),
            "{hint}"
        );
        // Without problem details (a proxy's 502, a dead server): no hint.
        let error = sdk_error(SdkError::Unavailable {
            attempts: 5,
            last: "HTTP 502".into(),
            gate: None,
            reason: None,
        });
        assert_eq!(
            error.message(),
            "the release server is unavailable after 5 attempts: HTTP 502"
        );
        assert_eq!(error.hint_text(), None);
    }
}
