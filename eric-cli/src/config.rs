//! `eric serve --config FILE`: settings from a TOML file, and `--print-config`.
//!
//! The keys of the file are the long flags of `eric serve` (`http`, `socket`,
//! `history`, `cors-origin`, ...), read from clap's own description of the command, so
//! every flag is a key without a line of code here. A value from the file counts only
//! where neither the command line nor the flag's environment variable gave one: file <
//! environment < flag. The file's values go through the same parsers as the flags'
//! (they are handed to clap as `--key=value`), so a value the flag refuses is refused
//! in the file, with its key and line.

use crate::cli::Cli;
use crate::error::CliError;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches};
use std::any::TypeId;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use toml::Spanned;

/// The name of the subcommand the file configures.
const SERVE: &str = "serve";

/// The flags of `serve` that are not settings: they say where the settings are, or
/// what to do with them.
const NOT_KEYS: &[&str] = &["config", "print-config"];

/// The settings `--print-config` does not print, because they are secrets: output is
/// pasted into tickets and chats. A password in a `--redis` URL is masked the same way.
const SECRET_KEYS: &[&str] = &["jwt-secret"];

/// What a secret is printed as.
const MASK: &str = "********";

/// The command line as `eric` runs it: `args` parsed by clap, then, for
/// `serve --config FILE`, parsed again with the file's settings below the flags and the
/// environment. Clap's own errors (and `--help`) end the process as usual.
pub fn parse(args: Vec<OsString>) -> Result<(Cli, ArgMatches), CliError> {
    let matches = Cli::command().get_matches_from(&args);
    let Some(path) = matches
        .subcommand_matches(SERVE)
        .and_then(|serve| serve.get_one::<std::path::PathBuf>("config"))
    else {
        return from_matches(matches);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::io(format_args!("cannot read {}", path.display()), error))?;
    let settings = read(path, &text)?;
    // The file's values are checked on their own first, so that one a flag overrides
    // today is not a hidden error for the day the flag goes.
    let file_only = [OsString::from("eric"), OsString::from(SERVE)]
        .into_iter()
        .chain(
            settings
                .iter()
                .flat_map(|s| s.flags.iter().map(OsString::from)),
        );
    if let Err(error) = without_environment(Cli::command()).try_get_matches_from(file_only) {
        return Err(blame(path, &settings, error));
    }
    let mut args = args;
    args.extend(flags_below(&settings, &matches));
    match Cli::command().try_get_matches_from(&args) {
        Ok(matches) => from_matches(matches),
        Err(error) => Err(blame(path, &settings, error)),
    }
}

/// `command` reading no environment variable.
fn without_environment(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| arg.env(None))
        .mut_subcommands(|sub| sub.mut_args(|arg| arg.env(None)))
}

fn from_matches(matches: ArgMatches) -> Result<(Cli, ArgMatches), CliError> {
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => Ok((cli, matches)),
        Err(error) => error.exit(),
    }
}

/// `eric serve` as clap describes it, the global flags (`--socket`, `--http`, ...)
/// included.
fn serve_command() -> clap::Command {
    let mut command = Cli::command();
    command.build();
    command
        .find_subcommand(SERVE)
        .expect("eric has a serve subcommand")
        .clone()
}

/// Whether `arg` is a setting, and so a key of the file: a long flag of `serve` that
/// is neither `--help`, `--version` nor one of [`NOT_KEYS`].
fn is_key(arg: &Arg) -> bool {
    arg.get_long().is_some_and(|long| !NOT_KEYS.contains(&long))
        && !matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpLong | ArgAction::HelpShort | ArgAction::Version
        )
}

/// The long flag names of `serve` that the file accepts as keys.
pub fn keys() -> Vec<String> {
    serve_command()
        .get_arguments()
        .filter(|arg| is_key(arg))
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .collect()
}

/// One setting of the file: its key, the line it is on, and the flags it stands for.
#[derive(Debug)]
struct Setting {
    key: String,
    line: usize,
    /// The id clap knows the flag by.
    id: String,
    /// `--key=value` once per value; empty for a flag set to `false`.
    flags: Vec<String>,
}

/// Reads the file: every key must be a setting of `serve`, every value of a shape the
/// flag takes (one value, a list for a flag that repeats, `true`/`false` for a switch).
fn read(path: &Path, text: &str) -> Result<Vec<Setting>, CliError> {
    let at = |offset: usize| line_of(text, offset);
    let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
        toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .map_or(String::new(), |span| format!(":{}", at(span.start)));
            CliError::invalid_input(format!(
                "{}{line}: not a valid TOML file: {}",
                path.display(),
                error.message().trim()
            ))
        })?;
    let command = serve_command();
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut settings = Vec::new();
    for (key, value) in entries {
        let line = at(key.span().start);
        let here = format!("{}:{line}: {}", path.display(), key.get_ref());
        let Some(arg) = command
            .get_arguments()
            .find(|arg| is_key(arg) && arg.get_long() == Some(key.get_ref().as_str()))
        else {
            return Err(CliError::invalid_input(unknown_key(&here, key.get_ref())));
        };
        let long = key.get_ref().as_str();
        let flags = flags_of(arg, long, value.get_ref())
            .map_err(|why| CliError::invalid_input(format!("{here}: {why}")))?;
        settings.push(Setting {
            key: long.to_owned(),
            line,
            id: arg.get_id().to_string(),
            flags,
        });
    }
    Ok(settings)
}

/// The error for a key that is not a setting, with the nearest setting when one is
/// close (a `_` for a `-`, a typo).
fn unknown_key(here: &str, key: &str) -> String {
    let mut message = format!("{here}: unknown key: the keys are the long flags of `eric serve`");
    let spelled = key.replace('_', "-");
    if NOT_KEYS.contains(&spelled.as_str()) {
        return format!("{here}: --{spelled} is given on the command line, not in the file");
    }
    let nearest = keys()
        .into_iter()
        .map(|candidate| (edit_distance(&spelled, &candidate), candidate))
        .min();
    if let Some((distance, candidate)) = nearest {
        if distance <= 2 {
            let _ = write!(message, "; did you mean {candidate}?");
        }
    }
    message
}

/// The `--key=value` flags of one value of the file.
fn flags_of(arg: &Arg, long: &str, value: &toml::Value) -> Result<Vec<String>, String> {
    if !arg.get_action().takes_values() {
        let toml::Value::Boolean(set) = value else {
            return Err(format!(
                "`{value}` is not a switch's value: write {long} = true or {long} = false"
            ));
        };
        let on = match arg.get_action() {
            ArgAction::SetFalse => !set,
            _ => *set,
        };
        return Ok(if on {
            vec![format!("--{long}")]
        } else {
            Vec::new()
        });
    }
    let repeats = matches!(arg.get_action(), ArgAction::Append);
    let values = match value {
        toml::Value::Array(items) if repeats => {
            items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?
        }
        toml::Value::Array(_) => {
            return Err("takes one value, not a list".to_owned());
        }
        other => vec![scalar(other)?],
    };
    Ok(values
        .into_iter()
        .map(|v| format!("--{long}={v}"))
        .collect())
}

/// A value of the file as the command line would write it.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(x) => Ok(x.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Datetime(when) => Ok(when.to_string()),
        toml::Value::Array(_) => Err("a list inside a list is not a setting".to_owned()),
        toml::Value::Table(_) => Err(
            "a table is not a setting: the keys of the file are flat (`key = value`)".to_owned(),
        ),
    }
}

/// The flags of the settings that neither the command line nor the environment gave.
fn flags_below(settings: &[Setting], matches: &ArgMatches) -> Vec<OsString> {
    let serve = matches.subcommand_matches(SERVE);
    let given_above = |id: &str| {
        [Some(matches), serve].into_iter().flatten().any(|m| {
            matches!(
                m.try_get_raw(id).ok().and_then(|_| m.value_source(id)),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
    };
    settings
        .iter()
        .filter(|setting| !given_above(&setting.id))
        .flat_map(|setting| setting.flags.iter().map(OsString::from))
        .collect()
}

/// Clap's refusal of a value that came from the file, as the file's error: its path,
/// the line and the key. An error about a flag of the command line stays clap's.
fn blame(path: &Path, settings: &[Setting], error: clap::Error) -> CliError {
    let culprit = error
        .get(clap::error::ContextKind::InvalidArg)
        .map(ToString::to_string)
        .and_then(|arg| {
            let long = arg
                .trim_start_matches('-')
                .split([' ', '='])
                .next()?
                .to_owned();
            settings.iter().find(|s| s.key == long)
        });
    let Some(setting) = culprit else {
        error.exit();
    };
    let rendered = error.to_string();
    let reason: Vec<&str> = rendered
        .lines()
        .map(|line| line.trim_start_matches("error: ").trim())
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect();
    CliError::invalid_input(format!(
        "{}:{}: {}: {}",
        path.display(),
        setting.line,
        setting.key,
        reason.join("; ")
    ))
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The number of single-character edits between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// The effective settings of `serve` as a TOML file that `--config` reads back to the
/// same: every key with its value, whatever gave it (the defaults included), and a
/// comment for a setting that has no value. Each key comes under its section of
/// `eric serve --help`, after the first line of its help.
pub fn effective(matches: &ArgMatches) -> String {
    let serve = matches
        .subcommand_matches(SERVE)
        .expect("--print-config is a flag of serve");
    let command = serve_command();
    let mut sections: Vec<(String, String)> = Vec::new();
    for arg in command.get_arguments().filter(|arg| is_key(arg)) {
        let long = arg.get_long().unwrap_or_default();
        let heading = arg.get_help_heading().unwrap_or("Both servers").to_owned();
        let mut entry = String::new();
        if let Some(help) = arg.get_help() {
            let help = help.to_string();
            let first = help.split(['\n']).next().unwrap_or_default();
            let _ = writeln!(entry, "# {}", first.trim());
        }
        let id = arg.get_id().as_str();
        let raw: Vec<String> = serve
            .try_get_raw(id)
            .ok()
            .flatten()
            .or_else(|| matches.try_get_raw(id).ok().flatten())
            .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        match toml_value(arg, &raw) {
            Some(_) if SECRET_KEYS.contains(&long) => {
                let _ = writeln!(entry, "# {long} = (set; a secret, not printed)");
            }
            Some(toml::Value::String(url)) if long == "redis" => {
                let _ = writeln!(
                    entry,
                    "{long} = {}",
                    toml::Value::String(mask_password(&url))
                );
            }
            Some(value) => {
                let _ = writeln!(entry, "{long} = {value}");
            }
            None => {
                let _ = writeln!(entry, "# {long} = (not set)");
            }
        }
        match sections.iter_mut().find(|(name, _)| *name == heading) {
            Some((_, text)) => text.push_str(&entry),
            None => sections.push((heading, entry)),
        }
    }
    let mut out =
        String::from("# The settings of `eric serve`, as `eric serve --config FILE` reads them.\n");
    for (heading, text) in sections {
        let _ = write!(out, "\n# --- {heading} ---\n{text}");
    }
    out
}

/// `url` with the password of its user part (`redis://user:password@host`) masked.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:{MASK}{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// The TOML of a flag's values: a boolean for a switch, a list for a flag that
/// repeats, a number for a count, a string for the rest; `None` when it has no value.
fn toml_value(arg: &Arg, raw: &[String]) -> Option<toml::Value> {
    if !arg.get_action().takes_values() {
        let set = raw.first().is_some_and(|v| v == "true");
        return Some(toml::Value::Boolean(set));
    }
    if matches!(arg.get_action(), ArgAction::Append) {
        let items = raw.iter().map(|v| toml::Value::String(v.clone())).collect();
        return Some(toml::Value::Array(items));
    }
    let value = raw.first()?;
    let type_id = arg.get_value_parser().type_id();
    let integer_types = [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<isize>(),
    ];
    if integer_types.iter().any(|t| type_id == *t) {
        if let Ok(n) = value.parse::<i64>() {
            return Some(toml::Value::Integer(n));
        }
    }
    if type_id == TypeId::of::<bool>() {
        if let Ok(b) = value.parse::<bool>() {
            return Some(toml::Value::Boolean(b));
        }
    }
    Some(toml::Value::String(value.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked_and_nothing_else() {
        assert_eq!(
            mask_password("redis://app:hunter2@redis.internal:6379/0"),
            "redis://app:********@redis.internal:6379/0"
        );
        assert_eq!(
            mask_password("rediss://:hunter2@10.0.0.1:6380"),
            "rediss://:********@10.0.0.1:6380"
        );
        for unchanged in [
            "redis://127.0.0.1:6379",
            "/run/redis.sock",
            "redis://app@h/x@y",
        ] {
            assert_eq!(mask_password(unchanged), unchanged);
        }
    }
    use crate::cli::Command;

    fn load(text: &str, flags: &[&str]) -> Result<(Cli, ArgMatches), CliError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eric.toml");
        std::fs::write(&path, text).unwrap();
        let mut args: Vec<OsString> = vec!["eric".into(), "serve".into(), "--config".into()];
        args.push(path.into());
        args.extend(flags.iter().map(OsString::from));
        parse(args)
    }

    fn serve_args(cli: Cli) -> crate::cli::ServeArgs {
        match cli.command {
            Command::Serve(args) => *args,
            _ => unreachable!(),
        }
    }

    /// A value each flag of `serve` takes: its default, else its first possible value.
    fn sample(arg: &Arg) -> Option<String> {
        if !arg.get_action().takes_values() {
            return Some("true".to_owned());
        }
        let value = arg
            .get_default_values()
            .first()
            .map(|v| v.to_string_lossy().into_owned())
            .or_else(|| {
                arg.get_possible_values()
                    .first()
                    .map(|v| v.get_name().to_owned())
            })?;
        Some(toml::Value::String(value).to_string())
    }

    #[test]
    fn every_long_flag_of_serve_is_a_key() {
        let command = serve_command();
        let mut seen = 0;
        for arg in command.get_arguments().filter(|arg| is_key(arg)) {
            let long = arg.get_long().unwrap();
            seen += 1;
            match sample(arg) {
                Some(value) => {
                    if let Err(error) = load(&format!("{long} = {value}\n"), &[]) {
                        panic!("{long} = {value}: {error}");
                    }
                }
                // No default to try: the key must at least be known.
                None => {
                    let error = match load(&format!("{long} = \"\"\n"), &[]) {
                        Ok(_) => continue,
                        Err(error) => error.message,
                    };
                    assert!(!error.contains("unknown key"), "{long}: {error}");
                }
            }
        }
        assert!(seen >= 20, "only {seen} settings found");
        // The global flags of the client commands are settings of serve too.
        for global in ["socket", "http", "log-level"] {
            assert!(keys().iter().any(|k| k == global), "{global}");
        }
    }

    #[test]
    fn the_file_sets_what_the_flags_would() {
        let (cli, _) = load(
            "http = \"127.0.0.1:9001\"\nsocket = \"/tmp/x.sock\"\nhistory = 7\n\
             no-http = true\ncors-origin = [\"https://a.example\", \"https://b.example\"]\n\
             overflow = \"drop-oldest\"\nqueue-capacity = 5\nkeep-alive = \"30s\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(cli.http, "127.0.0.1:9001");
        assert_eq!(cli.socket, Path::new("/tmp/x.sock"));
        let args = serve_args(cli);
        assert_eq!(args.history, 7);
        assert!(args.no_http);
        assert_eq!(
            args.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(args.overflow, crate::cli::Overflow::DropOldest);
        assert_eq!(args.queue_capacity, Some(5));
        assert_eq!(args.keep_alive.0, std::time::Duration::from_secs(30));
    }

    #[test]
    fn a_flag_wins_over_the_file() {
        let (cli, _) = load("history = 7\nretry-ms = 10\n", &["--history", "9"]).unwrap();
        let args = serve_args(cli);
        assert_eq!(args.history, 9);
        assert_eq!(args.retry_ms, 10);
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it_and_its_line() {
        let error = load("history = 7\n\nhistroy = 8\n", &[]).unwrap_err();
        assert!(
            error.message.contains(":3: histroy: unknown key"),
            "{error}"
        );
        assert!(error.message.contains("did you mean history"), "{error}");
        let error = load("max_streams = 8\n", &[]).unwrap_err();
        assert!(
            error.message.contains("did you mean max-streams"),
            "{error}"
        );
        let error = load("[http]\nmax-streams = 1\n", &[]).unwrap_err();
        assert!(error.message.contains(":1: http: "), "{error}");
        let error = load("config = \"x.toml\"\n", &[]).unwrap_err();
        assert!(error.message.contains("on the command line"), "{error}");
    }

    #[test]
    fn a_bad_value_is_an_error_naming_the_key_and_its_line() {
        for (text, needle) in [
            ("history = 7\nmax-streams = 0\n", ":2: max-streams: "),
            ("\n\nhistory = \"many\"\n", ":3: history: "),
            ("overflow = \"sometimes\"\n", ":1: overflow: "),
            ("http = \"nope\"\n", ":1: http: "),
            ("keep-alive = \"5 fortnights\"\n", ":1: keep-alive: "),
            ("no-http = \"yes\"\n", ":1: no-http: "),
            ("history = [1, 2]\n", ":1: history: takes one value"),
        ] {
            let error = load(text, &[]).unwrap_err();
            assert!(error.message.contains(needle), "{text:?}: {error}");
            assert!(error.message.contains("eric.toml"), "{text:?}: {error}");
        }
        let error = load("history = 7\nhistory 8\n", &[]).unwrap_err();
        assert!(
            error.message.contains(":2: not a valid TOML file"),
            "{error}"
        );
    }

    #[test]
    fn the_printed_configuration_reads_back_to_the_same() {
        let (_, matches) = load(
            "history = 3\ncors-origin = [\"*\"]\nsocket-mode = \"660\"\nqueue-capacity = 2\n",
            &["--retry-ms", "77"],
        )
        .unwrap();
        let printed = effective(&matches);
        let table: toml::Table = toml::from_str(&printed).unwrap();
        assert_eq!(table["history"].as_integer(), Some(3));
        assert_eq!(table["retry-ms"].as_integer(), Some(77));
        assert_eq!(table["socket-mode"].as_str(), Some("660"));
        assert_eq!(table["no-http"].as_bool(), Some(false));
        let (_, again) = load(&printed, &[]).unwrap();
        assert_eq!(effective(&again), printed);
        for key in keys() {
            assert!(
                printed.contains(&format!("\n{key} = "))
                    || printed.contains(&format!("# {key} = ")),
                "{key} is missing from\n{printed}"
            );
        }
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("history", "history"), 0);
        assert_eq!(edit_distance("histroy", "history"), 2);
        assert_eq!(
            edit_distance("max_streams".replace('_', "-").as_str(), "max-streams"),
            0
        );
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
