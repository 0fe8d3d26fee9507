//! `podseal inspect`: the public facts of a capsule.

use podseal_core::capsule::{Capsule, Header, RevealMode};
use podseal_core::hpke::TAG_LEN;
use serde::Serialize;

use crate::cli::InspectArgs;
use crate::error::CliError;
use crate::input::read_capsule;
use crate::output::{OutputFormat, print_json};

#[derive(Serialize)]
struct StanzaInfo<'a> {
    kid: &'a str,
    kem: &'static str,
    kdf: &'static str,
    aead: &'static str,
}

#[derive(Serialize)]
struct Inspection<'a> {
    format: &'static str,
    header: &'a Header,
    created_at_rfc3339: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after_rfc3339: Option<String>,
    expired: bool,
    wraps: Vec<StanzaInfo<'a>>,
    ciphertext_len: usize,
}

/// Prints a capsule's header and wraps.
pub fn run(args: &InspectArgs, output: OutputFormat) -> Result<(), CliError> {
    let capsule = read_capsule(&args.capsule)?;
    let inspection = inspect(&capsule);
    match output {
        OutputFormat::Json => print_json(&inspection),
        OutputFormat::Text => {
            print_text(&inspection);
            Ok(())
        }
    }
}

fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map_or_else(|_| format!("{seconds} (out of range)"), |t| t.to_string())
}

fn inspect(capsule: &Capsule) -> Inspection<'_> {
    let header = capsule.header();
    let now = jiff::Timestamp::now().as_second();
    Inspection {
        format: "podseal:v1",
        header,
        created_at_rfc3339: rfc3339(header.created_at),
        not_after_rfc3339: header.not_after.map(rfc3339),
        expired: header.not_after.is_some_and(|t| t <= now),
        wraps: capsule
            .envelope
            .stanzas()
            .iter()
            .map(|s| StanzaInfo {
                kid: s.kid.as_str(),
                kem: s.suite.kem.name(),
                kdf: s.suite.kdf.name(),
                aead: s.suite.aead.name(),
            })
            .collect(),
        ciphertext_len: capsule.ciphertext.len(),
    }
}

fn print_text(inspection: &Inspection<'_>) {
    let header = inspection.header;
    let scope = &header.scope;
    println!("capsule        {} id {}", inspection.format, header.id);
    println!("cluster        {}", scope.cluster);
    println!("namespace      {}", scope.namespace);
    println!("service acct   {}", scope.service_accounts.join(", "));
    match &scope.key {
        Some(key) => println!("secret         {} (key {key})", scope.name),
        None => println!("secret         {}", scope.name),
    }
    println!(
        "purpose        {}",
        header.purpose.as_deref().unwrap_or("(none)")
    );
    let reveal = match header.reveal {
        RevealMode::Many => "many",
        RevealMode::Once => "once (released a single time, cluster-wide)",
    };
    println!("reveal         {reveal}");
    println!("created        {}", inspection.created_at_rfc3339);
    match (&inspection.not_after_rfc3339, inspection.expired) {
        (Some(at), true) => {
            println!("not after      {at} (EXPIRED: the server will not release it)")
        }
        (Some(at), false) => println!("not after      {at}"),
        (None, _) => println!("not after      (no deadline)"),
    }
    for wrap in &inspection.wraps {
        println!(
            "wrapped to     kid {} ({}, {}, {})",
            wrap.kid, wrap.kem, wrap.kdf, wrap.aead
        );
    }
    let plaintext_len = inspection.ciphertext_len.saturating_sub(TAG_LEN);
    println!(
        "content        {} bytes of AES-256-GCM ciphertext ({plaintext_len}-byte secret)",
        inspection.ciphertext_len
    );
}
