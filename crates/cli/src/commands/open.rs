//! `podseal open`: the break-glass path, with the org private key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use zeroize::Zeroizing;

use podseal_core::envelope;
use podseal_core::key_provider::KeyRing;
use podseal_keys::key_file;

use crate::cli::OpenArgs;
use podseal_command::CliError;
use podseal_command::input::read_capsule;
use podseal_command::output::OutputFormat;

/// `-o json`: the plaintext as text when it is UTF-8, else as base64.
#[derive(Serialize)]
struct Opened<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext_base64: Option<&'a str>,
}

/// Opens a capsule and writes the plaintext to stdout (raw, or in one JSON
/// document with `-o json`).
pub fn run(args: &OpenArgs, output: OutputFormat) -> Result<(), CliError> {
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
    let bytes = plaintext.expose_secret_bytes();
    let text: Zeroizing<Vec<u8>> = match output {
        OutputFormat::Text => Zeroizing::new(bytes.to_vec()),
        OutputFormat::Json | OutputFormat::Yaml => {
            let encoded;
            let opened = match std::str::from_utf8(bytes) {
                Ok(text) => Opened {
                    id: &header.id,
                    plaintext: Some(text),
                    plaintext_base64: None,
                },
                Err(_) => {
                    encoded = Zeroizing::new(STANDARD.encode(bytes));
                    Opened {
                        id: &header.id,
                        plaintext: None,
                        plaintext_base64: Some(encoded.as_str()),
                    }
                }
            };
            let mut document = Zeroizing::new(if output == OutputFormat::Yaml {
                serde_saphyr::to_string(&opened)
                    .map_err(|e| CliError::failure(format!("cannot encode YAML: {e}")))?
                    .into_bytes()
            } else {
                serde_json::to_vec_pretty(&opened)
                    .map_err(|e| CliError::failure(format!("cannot encode JSON: {e}")))?
            });
            if document.last() != Some(&b'\n') {
                document.push(b'\n');
            }
            document
        }
    };
    podseal_command::output::print_bytes(&text)
}
