//! Parsing the command line with clap, reported the podseal way: a usage
//! error is one `error:` line and one `hint:` line naming the command's
//! `--help` (clap's own report runs 5–7 lines with the whole usage), exit
//! code 2. `--help` and `--version` print as clap prints them.

use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::error::{CliError, EXIT_USAGE};

/// Parses this process's arguments into `T`, or exits: 0 after `--help` or
/// `--version`, 2 with one error and one hint line on a usage error.
pub fn parse<T: clap::Parser + clap::CommandFactory>() -> T {
    parse_command(T::command())
}

/// [`parse`] with `command` (`T`'s, changed at run time: a help text
/// built from a table, say).
pub fn parse_command<T: clap::FromArgMatches>(command: clap::Command) -> T {
    let program = command.get_name().to_owned();
    let parsed = command
        .try_get_matches()
        .and_then(|matches| T::from_arg_matches(&matches));
    match parsed {
        Ok(parsed) => parsed,
        Err(error) => match error.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => error.exit(),
            _ => {
                usage_error(&error, &program).print();
                std::process::exit(i32::from(EXIT_USAGE))
            }
        },
    }
}

/// The one-line form of a clap usage error, with a hint naming the
/// command's `--help` (the subcommand from clap's usage line, else
/// `program`) and clap's suggestion, when it has one.
pub fn usage_error(error: &clap::Error, program: &str) -> CliError {
    let rendered = error.render().to_string();
    let mut message = rendered
        .lines()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or("invalid arguments")
        .trim()
        .to_owned();
    // clap lists what is missing on the lines after: keep it on this one.
    if let Some(ContextValue::Strings(missing)) = error.get(ContextKind::InvalidArg)
        && error.kind() == ErrorKind::MissingRequiredArgument
    {
        message = format!("{}: {}", message.trim_end_matches(':'), missing.join(", "));
    }
    let command = rendered
        .lines()
        .find_map(|line| line.strip_prefix("Usage: "))
        .map(|usage| {
            usage
                .split_whitespace()
                .take_while(|word| !word.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|command| !command.is_empty())
        .unwrap_or_else(|| program.to_owned());
    let suggestion = [
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedArg,
        ContextKind::SuggestedValue,
    ]
    .into_iter()
    .find_map(|kind| match error.get(kind)? {
        ContextValue::String(text) => Some(text.clone()),
        ContextValue::Strings(list) => list.first().cloned(),
        _ => None,
    });
    let hint = match suggestion {
        Some(suggested) => {
            format!("did you mean `{suggested}`? `{command} --help` lists every option")
        }
        None => format!("`{command} --help` shows how to call it"),
    };
    CliError::usage(message).hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing required argument is named on the one line, not on the
    /// lines clap would print after it.
    #[test]
    fn a_missing_argument_is_named_on_the_error_line() {
        let command = clap::Command::new("podseal").subcommand(
            clap::Command::new("set").arg(
                clap::Arg::new("digest")
                    .long("allow-digest")
                    .value_name("sha256:…")
                    .required(true),
            ),
        );
        let error = command
            .try_get_matches_from(["podseal", "set"])
            .expect_err("a usage error");
        let error = usage_error(&error, "podseal");
        assert_eq!(
            error.message(),
            "the following required arguments were not provided: --allow-digest <sha256:…>"
        );
        assert_eq!(
            error.hint_text(),
            Some("`podseal set --help` shows how to call it")
        );
    }
}
