//! `podseal keys init` and `podseal keys show`.

use podseal_command::outln;
use std::path::Path;

use podseal_core::hpke::KemId;
use podseal_core::org_key::{OrgKeyError, OrgPrivateKey, OrgPublicKey};
use podseal_keys::key_file::{self, KeyFileError};
use serde::Serialize;

use crate::cli::KeyAlgorithm;
use podseal_command::CliError;
use podseal_command::output::{OutputFormat, print_data};

#[derive(Serialize)]
struct KeyInfo<'a> {
    kid: &'a str,
    algorithm: &'static str,
    public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key_file: Option<String>,
}

/// Generates and writes a key pair.
pub fn init(dir: &Path, algorithm: KeyAlgorithm, output: OutputFormat) -> Result<(), CliError> {
    let kem = match algorithm {
        KeyAlgorithm::X25519 => KemId::X25519HkdfSha256,
        KeyAlgorithm::P256 => KemId::P256HkdfSha256,
    };
    let key = OrgPrivateKey::generate(kem)
        .map_err(|e| CliError::failure(format!("cannot generate a key: {e}")))?;
    let created = jiff::Timestamp::now().to_string();
    let (private_path, public_path) = key_file::write_key_pair(dir, &key, &created)?;
    let info = KeyInfo {
        kid: key.kid().as_str(),
        algorithm: kem.name(),
        public_key: key.public().to_text(),
        private_key_file: Some(private_path.display().to_string()),
        public_key_file: Some(public_path.display().to_string()),
    };
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, &info),
        OutputFormat::Text => {
            outln!("created org key {}", info.kid)?;
            outln!(
                "  private key: {} (mode 0600; keep it on the release server only)",
                private_path.display()
            )?;
            outln!(
                "  public key:  {} (share it with everyone who seals)",
                public_path.display()
            )
        }
    }
}

/// Prints the kid and public key of a public or private key file.
pub fn show(path: &Path, output: OutputFormat) -> Result<(), CliError> {
    let public = match key_file::read_public_key(path) {
        Ok(public) => public,
        Err(KeyFileError::Parse {
            source: OrgKeyError::PrivateWhereOnlyPublic,
            ..
        }) => key_file::read_private_key(path)?.public().clone(),
        Err(other) => return Err(other.into()),
    };
    print_public(&public, output)
}

fn print_public(public: &OrgPublicKey, output: OutputFormat) -> Result<(), CliError> {
    let info = KeyInfo {
        kid: public.kid().as_str(),
        algorithm: public.kem().name(),
        public_key: public.to_text(),
        private_key_file: None,
        public_key_file: None,
    };
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, &info),
        OutputFormat::Text => {
            outln!("kid:        {}", info.kid)?;
            outln!("algorithm:  {}", info.algorithm)?;
            outln!("public key: {}", info.public_key)
        }
    }
}
