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
use podseal_core::capsule::Capsule;
use podseal_core::reason::Reason;
use podseal_core::secret::Plaintext;
use podseal_sdk::client::{Client, SdkError};
use podseal_sdk::memory::harden_process;

use podseal_command::CliError;
use podseal_command::input::read_capsule;

use crate::ExecArgs;

/// Filesystems that keep their pages in RAM (statfs `f_type`).
const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// Where one plaintext goes.
enum Target {
    Env(String),
    File(PathBuf),
}

fn split_pair<'a>(flag: &str, pair: &'a str) -> Result<(&'a str, &'a str), CliError> {
    pair.split_once('=')
        .filter(|(name, value)| !name.is_empty() && !value.is_empty())
        .ok_or_else(|| CliError::usage(format!("{flag} takes NAME=CAPSULE_FILE, got `{pair}`")))
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
    // Every environment variable whose value is a capsule.
    for (name, value) in std::env::vars_os() {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        if armor::looks_like_capsule(value) {
            let capsule = Capsule::from_armored(value.trim())
                .map_err(|e| CliError::usage(format!("environment variable {name}: {e}")))?;
            targets.push(Target::Env(name.to_owned()));
            capsules.push(capsule);
        }
    }
    for pair in &args.env {
        let (name, file) = split_pair("--env", pair)?;
        if !is_env_name(name) {
            return Err(CliError::usage(format!(
                "--env: `{name}` is not an environment variable name"
            )));
        }
        targets.push(Target::Env(name.to_owned()));
        capsules.push(read_capsule(file)?);
    }
    for pair in &args.file {
        let (dest, file) = split_pair("--file", pair)?;
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
        capsules.push(read_capsule(file)?);
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
        client.open_many(&capsules).await
    });
    let plaintexts = plaintexts.map_err(sdk_error)?;
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
