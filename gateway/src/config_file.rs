//! `--config FILE` (or `FERIA_CONFIG`): settings from a TOML file, beneath the environment
//! and the flags. Each key is a setting's flag name in snake case (`database_url`,
//! `write_rate_limit`, the README's configuration table lists them all); a value is a
//! string, a number, a boolean, or an array (joined with commas, for list settings).
//!
//! ```toml
//! bind = "0.0.0.0:8080"
//! database_url = "postgres://feria@db.internal/feria?sslmode=verify-full&sslrootcert=/etc/feria/db-ca.pem"
//! public_url = "https://api.example.com"
//! log_format = "json"
//! ```
//!
//! The file is read by clap itself: each setting it holds that neither a flag nor the
//! environment gave is handed to the parser as if it were a flag, so a value in the file is
//! checked, typed and defaulted exactly as the same value given as a flag would be. An
//! unknown key is an error (a misspelt setting must not be silently ignored).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::config::Cli;

/// The setting naming the file; not itself allowed in the file.
const CONFIG_ID: &str = "config";

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The flags or environment do not parse (clap renders and exits with its own status).
    #[error(transparent)]
    Cli(#[from] clap::Error),
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid TOML: {source}")]
    Toml {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("the config file {path} has an unknown setting `{key}`{hint}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        hint: String,
    },
    #[error("the config file {path}: `{key}` must be {expected}")]
    BadValue {
        path: PathBuf,
        key: String,
        expected: &'static str,
    },
    /// A value from the file that the setting does not accept.
    #[error("the config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Parses the command line of this process, with the config file if one is named.
pub fn parse() -> Result<Cli, ConfigFileError> {
    parse_from(std::env::args_os())
}

/// Parses `args` (the program name first), with the config file if one is named.
pub fn parse_from<I, T>(args: I) -> Result<Cli, ConfigFileError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let matches = Cli::command().try_get_matches_from(&args)?;
    let Some(path) = config_path(&matches) else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Read {
        path: path.clone(),
        source,
    })?;
    let extra = flags_from_file(&path, &text, &matches)?;
    let mut with_file = args;
    with_file.extend(extra);
    Cli::try_parse_from_args(&with_file).map_err(|error| match error {
        // clap names the flag; say it came from the file.
        ConfigFileError::Cli(error) if error.kind() != clap::error::ErrorKind::DisplayHelp => {
            ConfigFileError::Invalid {
                path,
                message: error.to_string().trim().to_owned(),
            }
        }
        other => other,
    })
}

impl Cli {
    fn try_parse_from_args(args: &[OsString]) -> Result<Cli, ConfigFileError> {
        let matches = Cli::command().try_get_matches_from(args)?;
        Ok(Cli::from_arg_matches(&matches)?)
    }
}

/// The config file named by `--config` or `FERIA_CONFIG`, wherever on the line it was.
fn config_path(matches: &ArgMatches) -> Option<PathBuf> {
    let mut current = Some(matches);
    while let Some(level) = current {
        if let Ok(Some(path)) = level.try_get_one::<PathBuf>(CONFIG_ID) {
            return Some(path.clone());
        }
        current = level.subcommand().map(|(_, sub)| sub);
    }
    None
}

/// Where a setting's value came from, on whichever level of subcommands it was given.
fn given_by_user(matches: &ArgMatches, id: &str) -> bool {
    let mut current = Some(matches);
    while let Some(level) = current {
        if let Ok(Some(_)) = level.try_get_raw(id)
            && matches!(
                level.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        {
            return true;
        }
        current = level.subcommand().map(|(_, sub)| sub);
    }
    false
}

/// The file's settings as flags, for those the command line and the environment left unset.
fn flags_from_file(
    path: &std::path::Path,
    text: &str,
    matches: &ArgMatches,
) -> Result<Vec<OsString>, ConfigFileError> {
    let table: toml::Table = text.parse().map_err(|source| ConfigFileError::Toml {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    let command = Cli::command();
    let settings: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|arg| arg.is_global_set() && arg.get_long().is_some())
        .filter(|arg| arg.get_id().as_str() != CONFIG_ID)
        .collect();
    let mut flags = Vec::new();
    for (key, value) in &table {
        let Some(arg) = settings.iter().find(|arg| arg.get_id().as_str() == key) else {
            return Err(ConfigFileError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
                hint: hint(key, &settings),
            });
        };
        if given_by_user(matches, key) {
            continue;
        }
        let long = arg.get_long().unwrap_or(key);
        let bad = |expected| ConfigFileError::BadValue {
            path: path.to_owned(),
            key: key.clone(),
            expected,
        };
        if !arg.get_action().takes_values() {
            // A switch (`webhook_allow_private_targets = true`).
            match value {
                toml::Value::Boolean(true) => flags.push(format!("--{long}").into()),
                toml::Value::Boolean(false) => {}
                _ => return Err(bad("true or false")),
            }
            continue;
        }
        let text = match value {
            toml::Value::Array(items) => items
                .iter()
                .map(|item| scalar(item).ok_or_else(|| bad("a list of strings or numbers")))
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => scalar(other).ok_or_else(|| bad("a string, a number or a boolean"))?,
        };
        flags.push(format!("--{long}={text}").into());
    }
    Ok(flags)
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// ", did you mean `x`?" for a key close to a setting's name; the env var's name is the
/// commonest mistake.
fn hint(key: &str, settings: &[&clap::Arg]) -> String {
    let lower = key.to_ascii_lowercase().replace('-', "_");
    settings
        .iter()
        .map(|arg| arg.get_id().as_str())
        .find(|id| *id == lower)
        .map(|id| format!(", did you mean `{id}`?"))
        .unwrap_or_else(|| {
            " (keys are the flag names in snake case; see the README's configuration table)"
                .to_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn parse_with(file: &tempfile::NamedTempFile, rest: &[&str]) -> Result<Cli, ConfigFileError> {
        let mut args = vec!["feria".to_owned(), "--config".to_owned()];
        args.push(file.path().display().to_string());
        args.extend(rest.iter().map(|s| (*s).to_owned()));
        parse_from(args)
    }

    #[test]
    fn settings_come_from_the_file_and_flags_win() {
        let config = file(
            "bind = \"127.0.0.1:9999\"\nwrite_rate_limit = 7\nservice_fee_percent = 1.5\n\
             webhook_allow_private_targets = true\nlog_format = \"json\"\n",
        );
        let cli = parse_with(&config, &[]).unwrap();
        assert_eq!(cli.settings.bind.port(), 9999);
        assert_eq!(cli.settings.write_rate_limit, 7);
        assert_eq!(cli.settings.service_fee_percent.to_string(), "1.5");
        assert!(cli.settings.webhook_allow_private_targets);
        assert_eq!(cli.settings.log_format, crate::config::LogFormat::Json);

        let cli = parse_with(&config, &["--bind", "127.0.0.1:7777", "migrate"]).unwrap();
        assert_eq!(cli.settings.bind.port(), 7777);
        assert_eq!(cli.settings.write_rate_limit, 7);
        // After the subcommand too: settings are global flags.
        let cli = parse_with(&config, &["migrate", "--write-rate-limit", "3"]).unwrap();
        assert_eq!(cli.settings.write_rate_limit, 3);
        assert_eq!(cli.settings.bind.port(), 9999);
    }

    #[test]
    fn the_config_flag_may_follow_the_subcommand() {
        let config = file("bind = \"127.0.0.1:9998\"\n");
        let path = config.path().display().to_string();
        let cli = parse_from(["feria", "migrate", "--config", &path]).unwrap();
        assert_eq!(cli.settings.bind.port(), 9998);
    }

    #[test]
    fn without_a_file_the_defaults_hold() {
        let cli = parse_from(["feria"]).unwrap();
        assert_eq!(cli.settings.bind.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn mistakes_in_the_file_are_errors_that_name_the_key() {
        let unknown = parse_with(&file("DATABASE_URL = \"sqlite::memory:\"\n"), &[]).unwrap_err();
        let text = unknown.to_string();
        assert!(text.contains("unknown setting `DATABASE_URL`"), "{text}");
        assert!(text.contains("did you mean `database_url`"), "{text}");

        let typo = parse_with(&file("bnd = \"x\"\n"), &[]).unwrap_err();
        assert!(typo.to_string().contains("unknown setting `bnd`"), "{typo}");

        let invalid = parse_with(&file("bind = \"not an address\"\n"), &[]).unwrap_err();
        assert!(
            matches!(invalid, ConfigFileError::Invalid { .. })
                && invalid.to_string().contains("--bind"),
            "{invalid}"
        );

        let switch =
            parse_with(&file("webhook_allow_private_targets = \"yes\"\n"), &[]).unwrap_err();
        assert!(switch.to_string().contains("true or false"), "{switch}");

        let table = parse_with(&file("[bind]\nport = 1\n"), &[]).unwrap_err();
        assert!(matches!(table, ConfigFileError::BadValue { .. }), "{table}");

        let syntax = parse_with(&file("bind = \n"), &[]).unwrap_err();
        assert!(matches!(syntax, ConfigFileError::Toml { .. }), "{syntax}");

        let nested = parse_with(&file("config = \"other.toml\"\n"), &[]).unwrap_err();
        assert!(
            matches!(nested, ConfigFileError::UnknownKey { .. }),
            "{nested}"
        );

        let missing = parse_from(["feria", "--config", "/nonexistent/feria.toml"]).unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/feria.toml"),
            "{missing}"
        );
    }

    #[test]
    fn arrays_are_comma_separated_values() {
        let config = file("mail_from = [\"a\", \"b\"]\n");
        let cli = parse_with(&config, &[]).unwrap();
        assert_eq!(cli.settings.mail_from, "a,b");
    }
}
