//! What a binary prints when it panics. A panic is a bug, and its message
//! may have been formatted from any value in reach (`unwrap` on an error
//! prints the error's `Debug`; `assert_eq!` prints both sides): a secret
//! could be among them. So the report says where the panic happened, and
//! its message only when the message is a literal in the source (a
//! `&'static str` payload), which holds no value from run time.

use std::any::Any;
use std::panic::Location;

/// Installs the hook: every binary calls this first in `main`.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        use std::io::Write as _;
        let report = report(info.payload(), info.location());
        let _ = writeln!(std::io::stderr().lock(), "{report}");
    }));
}

/// The lines printed for a panic with `payload` at `location`.
pub fn report(payload: &(dyn Any + Send), location: Option<&Location<'_>>) -> String {
    let place = location.map_or_else(
        || "an unknown place".to_owned(),
        |l| format!("{}:{}:{}", l.file(), l.line(), l.column()),
    );
    match payload.downcast_ref::<&'static str>() {
        Some(message) => format!(
            "error: internal error at {place}: {message}\nhint: this is a bug in podseal; please report it"
        ),
        None => format!(
            "error: internal error at {place} (its message was formatted at run time and is not printed: it could hold a secret)\nhint: this is a bug in podseal; please report it with the place above"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message formatted at run time, which could hold any value in
    /// reach, is never printed; a literal is, and the place always is.
    #[test]
    fn a_panic_report_never_prints_a_message_formatted_at_run_time() {
        let secret = "s3cr3t-canary-value-4f2a";
        let location = Location::caller();
        let formatted: Box<dyn Any + Send> = Box::new(format!("called unwrap on {secret}"));
        let report = report(formatted.as_ref(), Some(location));
        assert!(!report.contains(secret), "{report}");
        assert!(report.contains(location.file()), "{report}");
        assert!(report.starts_with("error: internal error at "), "{report}");

        let literal: Box<dyn Any + Send> = Box::new("the view lost its lock");
        let report = super::report(literal.as_ref(), None);
        assert!(report.contains("the view lost its lock"), "{report}");
    }

    /// The payload of a real panic: `unwrap` on an error whose `Debug`
    /// holds a secret.
    #[test]
    fn an_unwrap_on_an_error_holding_a_secret_is_reported_without_it() {
        let secret = "token-eyJhbGciOi-canary";
        let outcome = std::panic::catch_unwind(|| {
            let failed: Result<(), String> = std::hint::black_box(Err(secret.to_owned()));
            #[allow(clippy::unwrap_used, reason = "the panic is what is tested")]
            failed.unwrap();
        });
        let payload = outcome.unwrap_err();
        let report = report(payload.as_ref(), None);
        assert!(!report.contains(secret), "{report}");
    }

    /// Every binary of the workspace installs the hook first thing in
    /// `main` (but `xtask`, the developers' generator, whose panics are its
    /// error reports and which handles no one's secret).
    #[test]
    fn every_binary_installs_the_hook() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut mains = Vec::new();
        for entry in std::fs::read_dir(&crates).into_iter().flatten().flatten() {
            if entry.file_name() == "xtask" {
                continue;
            }
            let src = entry.path().join("src");
            mains.push(src.join("main.rs"));
            for bin in std::fs::read_dir(src.join("bin"))
                .into_iter()
                .flatten()
                .flatten()
            {
                mains.push(bin.path().join("main.rs"));
            }
        }
        mains.retain(|m| m.is_file());
        assert!(mains.len() >= 4, "{mains:?}");
        for main in mains {
            let source = std::fs::read_to_string(&main).unwrap_or_default();
            let body = source
                .split("fn main() -> ExitCode {")
                .nth(1)
                .unwrap_or_default();
            assert!(
                body.trim_start()
                    .starts_with("podseal_command::panic_report::install();"),
                "{} does not install the panic report first",
                main.display()
            );
        }
    }
}
