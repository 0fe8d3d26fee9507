//! `podseal inspect`: the public facts of a capsule.

use podseal_command::outln;
use podseal_core::capsule::{Capsule, Header, RevealMode, Scope, Stanza};
use podseal_core::hpke::TAG_LEN;
use serde::Serialize;

use podseal_core::envelope;
use podseal_core::key_provider::KeyRing;
use podseal_keys::key_file;

use crate::cli::InspectArgs;
use podseal_command::CliError;
use podseal_command::input::read_capsule;
use podseal_command::output::{OutputFormat, print_data};

/// One wrap: its kind, then the public facts of its key.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StanzaInfo<'a> {
    Hpke {
        kid: &'a str,
        kem: &'static str,
        kdf: &'static str,
        aead: &'static str,
    },
    Transit {
        key_name: &'a str,
        key_version: u32,
    },
    Unknown {
        type_tag: u8,
        body_len: usize,
    },
}

impl<'a> StanzaInfo<'a> {
    fn of(stanza: &'a Stanza) -> Self {
        match stanza {
            Stanza::Hpke(s) => Self::Hpke {
                kid: s.kid.as_str(),
                kem: s.suite.kem.name(),
                kdf: s.suite.kdf.name(),
                aead: s.suite.aead.name(),
            },
            Stanza::Transit(s) => Self::Transit {
                key_name: &s.key_name,
                key_version: s.key_version,
            },
            Stanza::Unknown(s) => Self::Unknown {
                type_tag: s.kind,
                body_len: s.body.len(),
            },
        }
    }
}

#[derive(Serialize)]
struct Inspection<'a> {
    format: &'static str,
    header: &'a Header,
    scope_kind: &'static str,
    who_may_open: String,
    created_at_rfc3339: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after_rfc3339: Option<String>,
    expired: bool,
    wraps: Vec<StanzaInfo<'a>>,
    ciphertext_len: usize,
    /// Whether the header was verified with an org key (`--key`): without
    /// it, anyone could have edited every field shown.
    header_verified: bool,
}

/// Prints a capsule's header and wraps.
pub fn run(args: &InspectArgs, output: OutputFormat) -> Result<(), CliError> {
    let capsule = read_capsule(&args.capsule)?;
    let header_verified = if args.keys.is_empty() {
        false
    } else {
        let mut ring = KeyRing::new();
        for path in &args.keys {
            ring.add(key_file::read_private_key(path)?);
        }
        // Opened in memory only: the plaintext is dropped (and zeroized)
        // unread; what counts is that the header's authentication held.
        drop(envelope::open(&capsule, &ring)?);
        true
    };
    let inspection = inspect(&capsule, header_verified);
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, &inspection),
        OutputFormat::Text => print_text(&inspection),
    }
}

fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map_or_else(|_| format!("{seconds} (out of range)"), |t| t.to_string())
}

fn inspect(capsule: &Capsule, header_verified: bool) -> Inspection<'_> {
    let header = capsule.header();
    let now = jiff::Timestamp::now().as_second();
    Inspection {
        format: "podseal:v1",
        header,
        scope_kind: header.scope.kind().as_str(),
        who_may_open: header.scope.who_may_open(),
        created_at_rfc3339: rfc3339(header.created_at),
        not_after_rfc3339: header.not_after.map(rfc3339),
        expired: header.not_after.is_some_and(|t| t <= now),
        wraps: capsule
            .envelope
            .stanzas()
            .iter()
            .map(StanzaInfo::of)
            .collect(),
        ciphertext_len: capsule.ciphertext.len(),
        header_verified,
    }
}

fn print_text(inspection: &Inspection<'_>) -> Result<(), CliError> {
    let header = inspection.header;
    outln!("capsule        {} id {}", inspection.format, header.id)?;
    if inspection.header_verified {
        outln!("header         verified with the org key")?;
    } else {
        outln!(
            "header         UNVERIFIED: anyone can edit these fields; `--key ORG_KEY` verifies them"
        )?;
    }
    outln!("scope          {}", inspection.scope_kind)?;
    print_scope(&header.scope)?;
    outln!("may open       {}", inspection.who_may_open)?;
    outln!(
        "purpose        {}",
        header.purpose.as_deref().unwrap_or("(none)")
    )?;
    let reveal = match header.reveal {
        RevealMode::Many => "many",
        RevealMode::Once => "once (released a single time, cluster-wide)",
    };
    outln!("reveal         {reveal}")?;
    outln!("created        {}", inspection.created_at_rfc3339)?;
    match (&inspection.not_after_rfc3339, inspection.expired) {
        (Some(at), true) => {
            outln!("not after      {at} (EXPIRED: the server will not release it)")?
        }
        (Some(at), false) => outln!("not after      {at}")?,
        (None, _) => outln!("not after      (no deadline)")?,
    }
    for wrap in &inspection.wraps {
        match wrap {
            StanzaInfo::Hpke {
                kid,
                kem,
                kdf,
                aead,
            } => outln!("wrapped to     hpke kid {kid} ({kem}, {kdf}, {aead})")?,
            StanzaInfo::Transit {
                key_name,
                key_version,
            } => outln!("wrapped to     transit key {key_name} version {key_version}")?,
            StanzaInfo::Unknown { type_tag, body_len } => outln!(
                "wrapped to     unknown kind {type_tag:#04x} ({body_len} bytes, kept but not opened by this build)"
            )?,
        }
    }
    let plaintext_len = inspection.ciphertext_len.saturating_sub(TAG_LEN);
    outln!(
        "content        {} bytes of AES-256-GCM ciphertext ({plaintext_len}-byte secret)",
        inspection.ciphertext_len
    )
}

fn print_scope(scope: &Scope) -> Result<(), CliError> {
    match scope {
        Scope::Kubernetes(k) => {
            outln!("cluster        {}", k.cluster)?;
            outln!("namespace      {}", k.namespace)?;
            outln!("service acct   {}", k.service_accounts.join(", "))?;
            match &k.key {
                Some(key) => outln!("secret         {} (key {key})", k.name)?,
                None => outln!("secret         {}", k.name)?,
            }
        }
        Scope::Spiffe(s) => {
            outln!("trust domain   {}", s.trust_domain)?;
            outln!("spiffe ids     {}", s.ids.join(", "))?;
        }
        Scope::Oidc(o) => {
            outln!("issuer         {}", o.issuer)?;
            for (name, values) in &o.claims {
                outln!("claim          {name} = {}", values.join(" | "))?;
            }
        }
    }
    Ok(())
}
