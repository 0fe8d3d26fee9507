//! `podseal open`: the break-glass path, with the org private key.

use std::io::Write;

use podseal_core::envelope;
use podseal_core::key_provider::KeyRing;
use podseal_keys::key_file;

use crate::cli::OpenArgs;
use podseal_command::CliError;
use podseal_command::input::read_capsule;

/// Opens a capsule and writes the plaintext to stdout.
pub fn run(args: &OpenArgs) -> Result<(), CliError> {
    let mut ring = KeyRing::new();
    for path in &args.keys {
        ring.add(key_file::read_private_key(path)?);
    }
    let capsule = read_capsule(&args.capsule)?;
    let plaintext = envelope::open(&capsule, &ring)?;
    let header = capsule.header();
    let subject = match header.scope.as_kubernetes() {
        Some(k) => format!("{}/{}", k.namespace, k.name),
        None => format!("{} scope", header.scope.kind()),
    };
    eprintln!(
        "warning: break-glass open of capsule {} ({subject}); no release server gate or audit record was involved",
        header.id
    );
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(plaintext.expose_secret_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::failure(format!("cannot write to stdout: {e}")))
}
