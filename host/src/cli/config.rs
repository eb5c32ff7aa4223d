//! `cairn serve --config FILE` (or `CAIRN_CONFIG`): a TOML file of flag
//! values. Every long flag of `serve` (the guest limits among them), and
//! every global flag that matters to a server (`db`, `api-key`, `verbose`,
//! `log-format`), is a key named as the flag: `listen = "0.0.0.0:7071"`,
//! `max-hot-instances = 5000`, `allow-origin = ["https://app.example"]`,
//! `instance-lease = "30s"`, `no-hot-cache = true`, `verbose = 1`. The
//! client-side globals (`--url`, `--ca-cert`, `--output`), `--config`,
//! `--help` and `--version` are not keys.
//!
//! Precedence: command line > environment variable > config file > the
//! flag's default. The file's values become the flags' defaults (clap's
//! runtime API: the command is rebuilt with them and the command line is
//! parsed again), so a flag given on the command line, or through its
//! environment variable, wins over the file. Every value is checked with
//! the flag's own parser before that, so a bad value is reported with the
//! file and the key; so are unknown keys (with the list of valid ones) and
//! values of the wrong type.
//!
//! Other verbs accept `--config` too: the global keys apply to them (the
//! task hub, the API key), and so do the `serve` keys that are flags of the
//! verb as well (the guest limits of `deploy`, `start`, `replay`, ...); the
//! other keys are checked and ignored. So `cairn --config
//! /etc/cairn/cairn.toml list` works on the server's task hub, and
//! `deploy` with the server's limits.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue};
use clap::{Arg, ArgAction, Command, CommandFactory, FromArgMatches};

use super::Cli;

/// The subcommand whose own flags are keys.
const SERVE: &str = "serve";

/// Flags (long names) that are not keys of the file.
const NOT_KEYS: &[&str] = &["help", "version", "config", "url", "ca-cert", "output"];

/// Errors of reading a config file, one clear line each (the TOML parser's
/// message shows the offending line).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("config file {path}: unknown key `{key}`{hint}; the valid keys are: {valid}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        hint: String,
        valid: String,
    },
    #[error("config file {path}: key `{key}`: {message}")]
    Value {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// The command line itself (also `--help` and `--version`).
    #[error(transparent)]
    Clap(#[from] clap::Error),
}

/// Where a key's flag is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A global flag of `cairn` (every verb).
    Global,
    /// A flag of `cairn serve`.
    Serve,
}

/// A key of the file: its flag.
#[derive(Debug, Clone)]
struct Key {
    scope: Scope,
    arg: Arg,
}

/// Parses the process's command line with its config file, if any; on an
/// error prints it and exits (2, like clap's usage errors; `--help` and
/// `--version` print and exit 0).
#[must_use]
pub fn parse_or_exit() -> Cli {
    match parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(ConfigError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

/// Parses `args` (the program name first) and applies the config file
/// named by `--config` or `CAIRN_CONFIG`, if any.
///
/// # Errors
/// [`ConfigError::Clap`] for the command line; the others for the file.
pub fn parse_from<I, T>(args: I) -> Result<Cli, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let first = Cli::command().try_get_matches_from(&args)?;
    let Some(path) = first.get_one::<PathBuf>("config").cloned() else {
        return finish(first);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let cmd = apply(Cli::command(), &path, &text, first.subcommand_name())?;
    finish(cmd.try_get_matches_from(&args)?)
}

fn finish(mut matches: clap::ArgMatches) -> Result<Cli, ConfigError> {
    Cli::from_arg_matches_mut(&mut matches).map_err(|e| ConfigError::Clap(e.format(&mut Cli::command())))
}

/// `cmd` with the values of the config file `text` (read from `path`) as
/// the defaults of their flags: the global keys always, the `serve` keys
/// when `subcommand` is `serve` or has the same flag (checked, and
/// otherwise ignored).
///
/// # Errors
/// The first unknown key, wrongly typed or invalid value.
fn apply(mut cmd: Command, path: &Path, text: &str, subcommand: Option<&str>) -> Result<Command, ConfigError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Toml {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let keys = keys(&cmd);
    for (name, value) in &table {
        let Some(key) = keys.get(name.as_str()) else {
            return Err(unknown(path, name, &keys));
        };
        let bad = |message: String| ConfigError::Value {
            path: path.to_owned(),
            key: name.clone(),
            message,
        };
        let values = values_of(&key.arg, value).map_err(bad)?;
        check(&key.arg, &values).map_err(bad)?;
        let id = key.arg.get_id().as_str().to_owned();
        cmd = match (key.scope, subcommand) {
            (Scope::Global, _) => cmd.mut_arg(&id, |a| a.default_values(values)),
            (Scope::Serve, Some(verb)) if has_flag(&cmd, verb, &id, name) => {
                cmd.mut_subcommand(verb, |s| s.mut_arg(&id, |a| a.default_values(values)))
            }
            (Scope::Serve, _) => cmd,
        };
    }
    Ok(cmd)
}

/// Whether the subcommand `verb` has the flag `--long` (id `id`).
fn has_flag(cmd: &Command, verb: &str, id: &str, long: &str) -> bool {
    cmd.find_subcommand(verb).is_some_and(|v| {
        v.get_arguments()
            .any(|a| a.get_id() == id && a.get_long() == Some(long))
    })
}

/// Every key: long name → flag.
fn keys(cmd: &Command) -> BTreeMap<String, Key> {
    let mut keys = BTreeMap::new();
    let mut add = |arg: &Arg, scope| {
        if let Some(long) = arg.get_long()
            && !NOT_KEYS.contains(&long)
        {
            keys.insert(
                long.to_owned(),
                Key {
                    scope,
                    arg: arg.clone(),
                },
            );
        }
    };
    for arg in cmd.get_arguments() {
        add(arg, Scope::Global);
    }
    if let Some(serve) = cmd.find_subcommand(SERVE) {
        for arg in serve.get_arguments() {
            add(arg, Scope::Serve);
        }
    }
    keys
}

fn unknown(path: &Path, name: &str, keys: &BTreeMap<String, Key>) -> ConfigError {
    let dashed = name.replace('_', "-");
    let hint = if dashed != name && keys.contains_key(&dashed) {
        format!(" (did you mean `{dashed}`? keys are spelled as the flags)")
    } else if NOT_KEYS.contains(&name) {
        format!(" (`--{name}` is given on the command line only)")
    } else {
        String::new()
    };
    ConfigError::UnknownKey {
        path: path.to_owned(),
        key: name.to_owned(),
        hint,
        valid: keys.keys().map(String::as_str).collect::<Vec<_>>().join(", "),
    }
}

/// The command-line values a TOML value stands for, by the flag's kind.
fn values_of(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => match value {
            toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
            other => Err(format!("expected true or false, found {}", describe(other))),
        },
        ArgAction::Count => match value {
            toml::Value::Integer(n) if (0..=i64::from(u8::MAX)).contains(n) => Ok(vec![n.to_string()]),
            other => Err(format!(
                "expected a whole number from 0 to 255 (as many times as the flag would be repeated), found {}",
                describe(other)
            )),
        },
        ArgAction::Append => match value {
            toml::Value::Array(items) => items
                .iter()
                .map(|v| scalar(v).ok_or_else(|| format!("expected an array of strings, found {}", describe(v))))
                .collect(),
            other => scalar(other)
                .map(|s| vec![s])
                .ok_or_else(|| format!("expected an array of strings, found {}", describe(other))),
        },
        _ => match value {
            toml::Value::Boolean(_) => Err(format!("expected a value, found {}", describe(value))),
            other => scalar(other)
                .map(|s| vec![s])
                .ok_or_else(|| format!("expected a single value, found {}", describe(other))),
        },
    }
}

/// A string, number or date as the text of a command-line value.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Boolean(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(_) => "a table".to_owned(),
        toml::Value::Array(_) => "an array".to_owned(),
        toml::Value::String(s) => format!("the string {s:?}"),
        other => other.type_str().to_owned() + " " + &other.to_string(),
    }
}

/// Checks each value with the flag's own parser (numbers, durations,
/// enumerations), so the error names the file and the key rather than a
/// flag that was never typed.
fn check(arg: &Arg, values: &[String]) -> Result<(), String> {
    if matches!(
        arg.get_action(),
        ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count
    ) {
        return Ok(());
    }
    for v in values {
        let probe = Command::new("cairn").arg(
            Arg::new("value")
                .long("value")
                .value_parser(arg.get_value_parser().clone())
                .action(ArgAction::Set),
        );
        if let Err(e) = probe.try_get_matches_from(["cairn".to_owned(), format!("--value={v}")]) {
            return Err(match (std::error::Error::source(&e), e.get(ContextKind::ValidValue)) {
                (Some(cause), _) => format!("invalid value {v:?}: {cause}"),
                (None, Some(ContextValue::Strings(valid))) => {
                    format!("invalid value {v:?}: expected one of {}", valid.join(", "))
                }
                _ => format!("invalid value {v:?}: {}", clap_message(&e)),
            });
        }
    }
    Ok(())
}

/// A clap error as one line, without its usage and help hints.
fn clap_message(e: &clap::Error) -> String {
    e.render()
        .to_string()
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::Command as Verb;
    use super::*;

    /// Parses `args` with the config file `text` (written to a temporary file).
    fn parse_with(text: &str, args: &[&str]) -> Result<Cli, ConfigError> {
        let dir = std::env::temp_dir().join(format!("cairn-config-test-{}", crate::ids::random_hex()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("cairn.toml");
        std::fs::write(&file, text).expect("write config");
        let mut argv: Vec<OsString> = vec!["cairn".into(), "--config".into(), file.clone().into()];
        argv.extend(args.iter().map(OsString::from));
        let r = parse_from(argv);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    struct Serve {
        memory_limit_mib: usize,
        orchestrator_cpu_ms: u64,
        listen: String,
        max_hot_instances: usize,
        no_hot_cache: bool,
        allow_origin: Vec<String>,
        instance_lease: Duration,
    }

    fn serve(cli: &Cli) -> Serve {
        match &cli.command {
            Verb::Serve {
                listen,
                max_hot_instances,
                no_hot_cache,
                allow_origin,
                instance_lease,
                limits,
                ..
            } => Serve {
                memory_limit_mib: limits.memory_limit_mib,
                orchestrator_cpu_ms: limits.orchestrator_cpu_ms,
                listen: listen.clone(),
                max_hot_instances: *max_hot_instances,
                no_hot_cache: *no_hot_cache,
                allow_origin: allow_origin.clone(),
                instance_lease: *instance_lease,
            },
            other => panic!("not serve: {other:?}"),
        }
    }

    const FILE: &str = r#"
        db = "/var/lib/cairn/cairn.db"
        api-key = "from-the-file"
        listen = "0.0.0.0:8080"
        max-hot-instances = 5000
        no-hot-cache = true
        allow-origin = ["https://a.example", "https://b.example"]
        instance-lease = "3s"
        memory-limit-mib = 64
        verbose = 2
        log-format = "json"
    "#;

    #[test]
    fn the_file_sets_every_kind_of_flag() {
        let cli = parse_with(FILE, &["serve"]).expect("parses");
        assert_eq!(cli.db, PathBuf::from("/var/lib/cairn/cairn.db"));
        assert_eq!(cli.api_key.as_deref(), Some("from-the-file"));
        assert_eq!(cli.verbose, 2);
        assert_eq!(cli.log_format, super::super::LogFormat::Json);
        let s = serve(&cli);
        assert_eq!(s.memory_limit_mib, 64);
        assert_eq!(s.listen, "0.0.0.0:8080");
        assert_eq!(s.max_hot_instances, 5000);
        assert!(s.no_hot_cache);
        assert_eq!(s.allow_origin, ["https://a.example", "https://b.example"]);
        assert_eq!(s.instance_lease, Duration::from_secs(3));
    }

    #[test]
    fn the_command_line_wins_over_the_file_and_defaults_fill_the_rest() {
        let cli = parse_with(
            FILE,
            &[
                "--db",
                "other.db",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--allow-origin",
                "https://c.example",
                "--memory-limit-mib",
                "32",
                "-v",
            ],
        )
        .expect("parses");
        assert_eq!(cli.db, PathBuf::from("other.db"));
        assert_eq!(cli.verbose, 1);
        let s = serve(&cli);
        assert_eq!(s.memory_limit_mib, 32);
        assert_eq!(s.listen, "127.0.0.1:0");
        // An array flag on the command line replaces the file's array.
        assert_eq!(s.allow_origin, ["https://c.example"]);
        // Keys not overridden keep the file's values; flags absent from both, their defaults.
        assert_eq!(s.max_hot_instances, 5000);
        assert_eq!(cli.api_key.as_deref(), Some("from-the-file"));
        assert_eq!(s.orchestrator_cpu_ms, 2000);
        // Without a file: the defaults.
        let plain = parse_from(["cairn", "serve"]).expect("parses");
        assert_eq!(serve(&plain).max_hot_instances, 10_000);
        assert_eq!(serve(&plain).listen, "127.0.0.1:7071");
    }

    #[test]
    fn the_config_flag_works_after_the_verb_and_for_other_verbs() {
        let dir = std::env::temp_dir().join(format!("cairn-config-test-{}", crate::ids::random_hex()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("c.toml");
        std::fs::write(&file, FILE).expect("write");
        let file = file.to_string_lossy().into_owned();
        let cli = parse_from(["cairn", "serve", "--config", &file]).expect("parses");
        assert_eq!(serve(&cli).listen, "0.0.0.0:8080");
        // `status` gets the global keys; the serve keys are checked, not applied.
        let cli = parse_from(["cairn", "--config", &file, "status", "some-id"]).expect("parses");
        assert_eq!(cli.db, PathBuf::from("/var/lib/cairn/cairn.db"));
        assert!(matches!(cli.command, Verb::Status { .. }));
        // `deploy` has the limit flags too: the file's value applies.
        let cli = parse_from(["cairn", "--config", &file, "deploy", "x.wasm"]).expect("parses");
        match &cli.command {
            Verb::Deploy { limits, .. } => assert_eq!(limits.memory_limit_mib, 64),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    // The environment-variable rule (env beats the file) is clap's own
    // order of sources (command line, environment, default); the
    // integration test `tests/http/config.rs` checks it on a real process,
    // since setting variables here would race the other unit tests.

    #[test]
    fn unknown_keys_are_refused_with_the_valid_keys() {
        let e = parse_with("listen = \"127.0.0.1:1\"\nlisten-addr = \"x\"\n", &["serve"])
            .expect_err("refused")
            .to_string();
        assert!(e.contains("cairn.toml: unknown key `listen-addr`"), "{e}");
        assert!(e.contains("the valid keys are: "), "{e}");
        for k in [
            "db",
            "api-key",
            "listen",
            "max-hot-instances",
            "allow-origin",
            "tls-cert",
            "memory-limit-mib",
        ] {
            assert!(e.contains(k), "{k} missing from {e}");
        }
        assert!(!e.contains("url,"), "{e}");
        let e = parse_with("api_key = \"k\"\n", &["serve"])
            .expect_err("refused")
            .to_string();
        assert!(e.contains("did you mean `api-key`?"), "{e}");
        let e = parse_with("url = \"http://x\"\n", &["serve"])
            .expect_err("refused")
            .to_string();
        assert!(e.contains("unknown key `url`"), "{e}");
        // Also for verbs the serve keys do not apply to.
        let e = parse_with("bogus = 1\n", &["status", "x"])
            .expect_err("refused")
            .to_string();
        assert!(e.contains("unknown key `bogus`"), "{e}");
        let e = parse_with("[serve]\nlisten = \"x\"\n", &["serve"])
            .expect_err("refused")
            .to_string();
        assert!(e.contains("unknown key `serve`"), "{e}");
    }

    #[test]
    fn wrong_types_and_invalid_values_name_the_key() {
        let cases = [
            (
                "max-hot-instances = \"many\"",
                "key `max-hot-instances`: invalid value \"many\"",
            ),
            (
                "max-hot-instances = -1",
                "key `max-hot-instances`: invalid value \"-1\"",
            ),
            ("no-hot-cache = \"yes\"", "key `no-hot-cache`: expected true or false"),
            ("listen = true", "key `listen`: expected a value, found boolean true"),
            (
                "listen = [\"a\"]",
                "key `listen`: expected a single value, found an array",
            ),
            (
                "allow-origin = [1, [2]]",
                "key `allow-origin`: expected an array of strings",
            ),
            (
                "instance-lease = \"30\"",
                "key `instance-lease`: invalid value \"30\": \"30\": expected a duration",
            ),
            (
                "log-format = \"xml\"",
                "key `log-format`: invalid value \"xml\": expected one of text, json",
            ),
            ("verbose = 300", "key `verbose`: expected a whole number"),
            (
                "memory-limit-mib = { a = 1 }",
                "key `memory-limit-mib`: expected a single value, found a table",
            ),
        ];
        for (text, expected) in cases {
            match parse_with(text, &["serve"]) {
                Ok(_) => panic!("{text}: accepted"),
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains(expected), "{text}: {e}");
                    assert!(e.starts_with("config file "), "{text}: {e}");
                }
            }
        }
        let e = parse_with("listen = ", &["serve"]).expect_err("refused").to_string();
        assert!(e.contains("not valid TOML"), "{e}");
        let e = parse_from(["cairn", "--config", "/nonexistent/cairn.toml", "serve"])
            .expect_err("refused")
            .to_string();
        assert!(e.starts_with("config file /nonexistent/cairn.toml: "), "{e}");
    }

    #[test]
    fn a_single_string_is_an_array_of_one_and_an_empty_file_changes_nothing() {
        let cli = parse_with("allow-origin = \"https://one.example\"", &["serve"]).expect("parses");
        assert_eq!(serve(&cli).allow_origin, ["https://one.example"]);
        let cli = parse_with("# nothing\n", &["serve"]).expect("parses");
        assert_eq!(serve(&cli).listen, "127.0.0.1:7071");
    }

    #[test]
    fn every_flag_of_serve_and_the_global_ones_are_keys() {
        let cmd = Cli::command();
        let keys = keys(&cmd);
        let serve = cmd.find_subcommand(SERVE).expect("serve");
        for arg in serve.get_arguments().chain(cmd.get_arguments()) {
            if let Some(long) = arg.get_long()
                && !NOT_KEYS.contains(&long)
            {
                assert!(keys.contains_key(long), "{long} is not a key");
            }
        }
        for not_key in ["config", "url", "ca-cert", "output", "help"] {
            assert!(!keys.contains_key(not_key), "{not_key}");
        }
    }

    /// The example shipped in `packaging/` parses as it is, comments and all,
    /// and its uncommented keys take effect.
    #[test]
    fn the_packaged_example_is_accepted() {
        let text = include_str!("../../../packaging/cairn.toml");
        let cli = parse_with(text, &["serve"]).unwrap_or_else(|e| panic!("packaging/cairn.toml: {e}"));
        assert!(matches!(cli.command, Verb::Serve { .. }));
        // Every commented-out `# key = value` line is a valid key and value too.
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.split_once(" = ")
                    .is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uncommented.contains("tls-cert"), "{uncommented}");
        let cli = parse_with(&uncommented, &["serve"]).unwrap_or_else(|e| panic!("{uncommented}\n{e}"));
        assert!(matches!(cli.command, Verb::Serve { .. }));
        // And it documents every key.
        for key in keys(&Cli::command()).keys() {
            assert!(text.contains(&format!("{key} =")), "packaging/cairn.toml lacks {key}");
        }
    }
}
