//! The `cairn` command line. Every verb is written once against the
//! management interface ([`cairn_client::Management`]): on the task hub
//! (`--db`, as `func durable` works on storage) or, with `--url`, over a
//! `cairn serve`'s HTTP API; both print the same documents. `serve` runs
//! the workers.
//!
//! # Output and exit codes
//!
//! `-o json` prints one JSON document on stdout and nothing else (progress
//! and notes go to stderr); `-o table` prints tables for people (the
//! default of the listing verbs). Exit codes: see [`CliError::exit_code`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Error as ManageError, HttpClient, Management};
use clap::{Parser, Subcommand};

use crate::api::ApiConfig;
use crate::engine::{Engine, EngineConfig};
use crate::hub::{Hub, HubError};
use crate::manage::Local;
use crate::store::{Hosting, StoreError};

pub mod config;
mod entity;
mod render;

/// Exit codes of `cairn` (documented in the README and in `--help`).
pub mod exit {
    /// The verb did what was asked.
    pub const OK: u8 = 0;
    /// Any other error (I/O, the server or task hub failed).
    pub const ERROR: u8 = 1;
    /// Bad arguments or a request the task hub refused as wrong.
    pub const USAGE: u8 = 2;
    /// No such instance, entity, component, or task hub file.
    pub const NOT_FOUND: u8 = 3;
    /// `--wait`: the instance ended Failed.
    pub const FAILED: u8 = 4;
    /// `--wait`: the instance ended Terminated or Canceled.
    pub const TERMINATED: u8 = 5;
    /// `--wait`: the instance was still running when the wait ended.
    pub const STILL_RUNNING: u8 = 6;
    /// `replay` or `upgrade-check`: the replay differs from the history.
    pub const DIFFERS: u8 = 7;
    /// The server refused the API key.
    pub const UNAUTHORIZED: u8 = 8;
    /// The server could not be reached, or is busy / unavailable.
    pub const UNAVAILABLE: u8 = 9;
    /// The instance's state does not allow it (e.g. rewind of an instance
    /// that did not fail, purge of a running one, an id already in use).
    pub const CONFLICT: u8 = 10;
}

/// Errors of the command line, one clear line each.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Manage(#[from] ManageError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    #[error(transparent)]
    Client(#[from] crate::api::client::ClientError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("task hub {0} does not exist (deploy a component or start `cairn serve` to create it, or give --db)")]
    NoHub(String),
    #[error("instance {id} ended {status}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Ended {
        id: String,
        status: String,
        message: Option<String>,
    },
    #[error("instance {id} is still {status} after {secs} s")]
    StillRunning { id: String, status: String, secs: u64 },
    #[error("{0}")]
    Differs(String),
}

impl CliError {
    /// The process exit code of this error ([`exit`]).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Manage(e) => match e {
                ManageError::NotFound(_) => exit::NOT_FOUND,
                ManageError::BadRequest(_) => exit::USAGE,
                ManageError::Conflict(_) => exit::CONFLICT,
                ManageError::Unauthorized(_) => exit::UNAUTHORIZED,
                ManageError::Unavailable(_) | ManageError::Connect(_) => exit::UNAVAILABLE,
                ManageError::Other(_) => exit::ERROR,
            },
            Self::Usage(_) => exit::USAGE,
            Self::NoHub(_) => exit::NOT_FOUND,
            Self::Ended { status, .. } if status == "Failed" => exit::FAILED,
            Self::Ended { .. } => exit::TERMINATED,
            Self::StillRunning { .. } => exit::STILL_RUNNING,
            Self::Differs(_) => exit::DIFFERS,
            Self::Hub(HubError::Store(StoreError::HostBusy(_))) | Self::Store(StoreError::HostBusy(_)) => {
                exit::UNAVAILABLE
            }
            Self::Hub(e) if e.is_bad_request() => exit::USAGE,
            _ => exit::ERROR,
        }
    }
}

/// What `-o` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One JSON document on stdout, nothing else.
    Json,
    /// Tables and text for people.
    Table,
}

/// `cairn` — durable orchestrations of WebAssembly components.
#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about,
    after_help = "Examples:\n  cairn deploy target/guests/rust/hello-cities.wasm\n  cairn start HelloCities --wait\n  cairn list --status Running\n  cairn --url http://127.0.0.1:7071 describe ID\n\n\
Every verb works on the task hub file (--db) or, with --url, on a running `cairn serve`.",
    after_long_help = concat!(
        "Examples:\n  cairn deploy target/guests/rust/hello-cities.wasm\n  cairn start HelloCities --wait\n  cairn list --status Running\n  cairn --url http://127.0.0.1:7071 describe ID\n\n",
        "Every verb works on the task hub file (--db) or, with --url, on a running `cairn serve`.\n\n",
        "Exit codes: 0 ok; 1 error; 2 usage or bad request; 3 not found (instance, entity, task hub file); ",
        "4 --wait: instance Failed; 5 --wait: instance Terminated or Canceled; 6 --wait: still running at the timeout; ",
        "7 replay / upgrade-check differ; 8 API key refused; 9 server unreachable or busy; 10 the instance's state does not allow it."
    )
)]
pub struct Cli {
    /// Task hub: a SQLite file, or a PostgreSQL database shared by many
    /// hosts (postgres://user:password@host:port/db).
    #[arg(
        long,
        global = true,
        env = "CAIRN_DB",
        default_value = "./cairn.db",
        hide_env_values = true
    )]
    pub db: PathBuf,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr: `text`, or `json` (one object per line).
    /// Guest output is logged under its own target, `cairn::guest`: e.g.
    /// `RUST_LOG=info,cairn::guest=warn` turns it down without hiding the host's.
    #[arg(long, global = true, env = "CAIRN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Output: `json` (one document on stdout) or `table` (for people;
    /// the default of list, history, describe, locks and components).
    #[arg(short = 'o', long = "output", global = true, value_enum)]
    pub output: Option<Output>,
    /// Run the verb against a `cairn serve` (http://host:port or
    /// https://host:port) over its HTTP API instead of on a task hub file.
    #[arg(long, global = true, env = "CAIRN_URL")]
    pub url: Option<String>,
    /// API key: the one `serve` requires, or the one sent to `--url`.
    #[arg(long, global = true, env = "CAIRN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// With --url https://...: also trust this CA (or self-signed)
    /// certificate, PEM (the system's roots are always trusted).
    #[arg(long, global = true, env = "CAIRN_CA_CERT", value_name = "PEM_FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Read flag values from this TOML file (keys: the long flag names of
    /// `serve` and the global flags; see packaging/cairn.toml). The command
    /// line and environment variables win over it.
    #[arg(long, global = true, env = "CAIRN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Guest limits (defaults in `sandbox::Limits`), on the verbs that run guests.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Guest limits")]
pub struct LimitArgs {
    /// Linear memory per guest instance, MiB.
    #[arg(long, env = "CAIRN_MEMORY_LIMIT_MIB", default_value_t = 256)]
    pub memory_limit_mib: usize,
    /// Uninterrupted CPU time of orchestrator code per episode, ms.
    #[arg(long, env = "CAIRN_ORCHESTRATOR_CPU_MS", default_value_t = 2000)]
    pub orchestrator_cpu_ms: u64,
    /// Wall time of one activity call, s.
    #[arg(long, env = "CAIRN_ACTIVITY_TIMEOUT_SECS", default_value_t = 300)]
    pub activity_timeout_secs: u64,
    /// Largest input, output, event payload or custom status, bytes.
    #[arg(long, env = "CAIRN_MAX_PAYLOAD_BYTES", default_value_t = 2 << 20)]
    pub max_payload_bytes: usize,
    /// Most history events of one execution.
    #[arg(long, env = "CAIRN_MAX_HISTORY_EVENTS", default_value_t = 1_000_000)]
    pub max_history_events: u64,
    /// Most tasks one execution may create.
    #[arg(long, env = "CAIRN_MAX_TASKS", default_value_t = 100_000)]
    pub max_tasks: u32,
    /// Largest component accepted at deploy, MiB.
    #[arg(long, env = "CAIRN_MAX_COMPONENT_MIB", default_value_t = 64)]
    pub max_component_mib: usize,
    /// Longest compile of a component at deploy, s.
    #[arg(long, env = "CAIRN_COMPILE_TIMEOUT_SECS", default_value_t = 120)]
    pub compile_timeout_secs: u64,
}

impl LimitArgs {
    /// The sandbox limits these flags describe.
    #[must_use]
    pub fn limits(&self) -> crate::sandbox::Limits {
        crate::sandbox::Limits {
            max_memory_bytes: self.memory_limit_mib.saturating_mul(1 << 20),
            orchestrator_cpu: Duration::from_millis(self.orchestrator_cpu_ms.max(1)),
            activity_cpu: Duration::from_secs(self.activity_timeout_secs.max(1)),
            max_payload_bytes: self.max_payload_bytes,
            max_history_events: self.max_history_events,
            max_tasks_per_execution: self.max_tasks.max(1),
            max_component_bytes: self.max_component_mib.saturating_mul(1 << 20),
            max_compile_time: Duration::from_secs(self.compile_timeout_secs.max(1)),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the workers (and the management API) on the task hub.
    #[command(
        after_help = "Examples:\n  cairn serve\n  cairn --db postgres://cairn@db/cairn serve --listen 0.0.0.0:7071 --api-key $KEY"
    )]
    Serve {
        /// Address of the management API (a non-loopback address needs --api-key).
        #[arg(long, default_value = "127.0.0.1:7071")]
        listen: String,
        /// Disable the hot instance cache (replay at every episode).
        #[arg(long)]
        no_hot_cache: bool,
        /// Most instances kept hot (parked in memory between episodes).
        #[arg(long, value_name = "N", default_value_t = 10_000)]
        max_hot_instances: usize,
        /// Resident memory of this process, MiB, above which the least
        /// recently used hot instances are evicted (they replay when next needed).
        #[arg(long, value_name = "MIB", default_value_t = 2048)]
        max_hot_memory_mib: usize,
        /// Build the URLs of check-status payloads from X-Forwarded-Host /
        /// X-Forwarded-Proto (only behind a proxy that sets them).
        #[arg(long)]
        trust_forwarded_headers: bool,
        /// Largest request body in bytes (component uploads: 64 MiB).
        #[arg(long, default_value_t = 4 << 20)]
        max_body_bytes: usize,
        /// Connections served at once (at the cap, the one idle longest is closed for a new one).
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Component uploads read and compiled at once; more answer 503 with Retry-After.
        #[arg(long, default_value_t = 2)]
        max_concurrent_deploys: usize,
        /// Let web pages of this origin (e.g. https://app.example) call the API,
        /// with CORS headers (repeatable; other origins get 403).
        #[arg(long = "allow-origin", value_name = "ORIGIN")]
        allow_origin: Vec<String>,
        /// Export traces over OTLP/HTTP to this collector (base URL, e.g.
        /// http://127.0.0.1:4318; `/v1/traces` is appended). Also read from
        /// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (full URL).
        #[arg(long, value_name = "URL")]
        otlp_endpoint: Option<String>,
        /// Lease of an instance this host runs or keeps hot, e.g. 30s, 3s,
        /// 500ms (renewed every third of it while held). On a PostgreSQL
        /// task hub another host takes a dead host's instances over after
        /// it expires (its activities too: their leases are as long).
        #[arg(
            long,
            env = "CAIRN_INSTANCE_LEASE",
            value_name = "DURATION",
            default_value = "30s",
            value_parser = parse_duration
        )]
        instance_lease: Duration,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        tls: crate::api::tls::TlsArgs,
    },
    /// Deploy components; prints each function's name, kind and version.
    /// A JavaScript or Python project built in two parts deploys as one:
    /// `X.wasm` brings its activity part `X.activities.wasm` along (found
    /// next to it), and environment and directory grants go to that part
    /// only (its orchestrators get the HTTP grant, for durable HTTP).
    #[command(
        after_help = "Examples:\n  cairn deploy target/guests/rust/hello-cities.wasm\n  cairn deploy app.wasm --allow-http api.example.com --allow-dir ./data:/data:ro"
    )]
    Deploy {
        /// Component files (.wasm).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Let the component's activities read this host environment variable (repeatable).
        #[arg(long = "allow-env", value_name = "NAME")]
        allow_env: Vec<String>,
        /// Preopen a host directory for its activities: HOST[:GUEST][:ro|:rw], read-only by default (repeatable).
        #[arg(long = "allow-dir", value_name = "SPEC")]
        allow_dir: Vec<String>,
        /// Let its activities send HTTP requests to this host: HOST, HOST:PORT or *.DOMAIN (repeatable).
        #[arg(long = "allow-http", value_name = "HOST")]
        allow_http: Vec<String>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Start an orchestration; prints the instance id (with --wait, its final status).
    #[command(
        visible_alias = "start-new",
        after_help = "Examples:\n  cairn start HelloCities\n  cairn start Approval --id order-42 --input '{\"amount\": 5}'\n  cairn start HelloCities --wait 30 -o json | jq .output"
    )]
    Start {
        /// The orchestrator to start.
        name: String,
        /// Input as JSON text, or @file.json.
        #[arg(long)]
        input: Option<String>,
        /// Instance id (generated when absent).
        #[arg(long)]
        id: Option<String>,
        /// Run on this component version (content hash) instead of the newest.
        #[arg(long)]
        version: Option<String>,
        /// Wait for the result (optionally at most SECONDS, default 60) and
        /// print the final status; the exit code says how it ended.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "60")]
        wait: Option<u64>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Show an instance's status (JSON by default).
    #[command(
        visible_alias = "get-runtime-status",
        after_help = "Examples:\n  cairn status order-42 --show-output\n  cairn status order-42 -o table"
    )]
    Status {
        /// The instance id.
        id: String,
        /// Include the input.
        #[arg(long)]
        show_input: bool,
        /// Include the output (without it the `output` field is left out).
        #[arg(long)]
        show_output: bool,
        /// Include the history events.
        #[arg(long)]
        show_history: bool,
    },
    /// Say what an instance is and what it waits for: open activities,
    /// timers (with fire times), events, locks, sub-orchestrations, entities.
    #[command(
        after_help = "Examples:\n  cairn describe order-42\n  cairn --url http://127.0.0.1:7071 describe order-42 -o json"
    )]
    Describe {
        /// The instance id.
        id: String,
    },
    /// Print an instance's history: task ids, names, attempts, how long
    /// each task took, timer fire times and failure reasons.
    #[command(
        visible_alias = "get-history",
        after_help = "Examples:\n  cairn history order-42\n  cairn history order-42 -o json   # Durable Functions event shapes"
    )]
    History {
        /// The instance id.
        id: String,
    },
    /// Raise an event to an instance.
    #[command(
        after_help = "Examples:\n  cairn raise-event order-42 Approval true\n  cairn raise-event order-42 Data @payload.json"
    )]
    RaiseEvent {
        /// The instance id.
        id: String,
        /// The event name.
        event: String,
        /// Event data as JSON text, or @file.json (default null).
        data: Option<String>,
    },
    /// Terminate an instance.
    #[command(after_help = "Examples:\n  cairn terminate order-42 --reason \"customer cancelled\"")]
    Terminate {
        /// The instance id.
        id: String,
        /// Why (kept in the history).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Suspend an instance (events and results queue until it resumes).
    #[command(after_help = "Examples:\n  cairn suspend order-42 --reason maintenance")]
    Suspend {
        /// The instance id.
        id: String,
        /// Why (kept in the history).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a suspended instance.
    #[command(after_help = "Examples:\n  cairn resume order-42")]
    Resume {
        /// The instance id.
        id: String,
        /// Why (kept in the history).
        #[arg(long)]
        reason: Option<String>,
    },
    /// List instances, a page at a time (table by default; the next page's
    /// token is printed on stderr).
    #[command(
        visible_alias = "get-instances",
        after_help = "Examples:\n  cairn list\n  cairn list --name HelloCities --status Failed,Terminated\n  cairn list --created-after 2026-01-01T00:00:00Z -o json"
    )]
    List {
        /// Only instances of this orchestrator.
        #[arg(long)]
        name: Option<String>,
        /// Only instances created at or after this ISO 8601 time.
        #[arg(long)]
        created_after: Option<String>,
        /// Only instances created at or before this ISO 8601 time.
        #[arg(long)]
        created_before: Option<String>,
        /// Only these statuses (e.g. `Running,Failed`).
        #[arg(long, alias = "runtime-status", value_delimiter = ',', num_args = 1..)]
        status: Vec<String>,
        /// Only ids starting with this prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// Most instances in this page (at most 1000).
        #[arg(long)]
        top: Option<u32>,
        /// Token of the page to fetch (printed by the previous `list`).
        #[arg(long)]
        continuation_token: Option<String>,
        /// Include each instance's input (JSON output).
        #[arg(long)]
        show_input: bool,
    },
    /// Rewind a Failed instance: its failed tasks run again.
    #[command(after_help = "Examples:\n  cairn rewind order-42 --reason \"fixed the payment service\"")]
    Rewind {
        /// The instance id.
        id: String,
        /// Why (kept in the history).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Start an instance again with its input; prints the new instance id.
    #[command(after_help = "Examples:\n  cairn restart order-42\n  cairn restart order-42 --same-id")]
    Restart {
        /// The instance id.
        id: String,
        /// Reuse the instance id (the instance must have finished).
        #[arg(long)]
        same_id: bool,
    },
    /// Purge finished instances: one by id, those matching filters, or all
    /// of them with --all --yes.
    #[command(
        visible_alias = "purge-history",
        after_help = "Examples:\n  cairn purge order-42\n  cairn purge --created-before 2026-01-01T00:00:00Z --status Completed\n  cairn purge --all --yes"
    )]
    Purge {
        /// The instance to purge.
        id: Option<String>,
        /// Purge finished instances created at or after this ISO 8601 time.
        #[arg(long, conflicts_with = "id")]
        created_after: Option<String>,
        /// Purge finished instances created at or before this ISO 8601 time.
        #[arg(long, conflicts_with = "id")]
        created_before: Option<String>,
        /// Only these statuses (Completed, Failed, Terminated, Canceled).
        #[arg(long, alias = "runtime-status", value_delimiter = ',', num_args = 1.., conflicts_with = "id")]
        status: Vec<String>,
        /// Purge every finished instance (needs --yes).
        #[arg(long, conflicts_with_all = ["id", "created_after", "created_before", "status"])]
        all: bool,
        /// Confirm --all.
        #[arg(long, requires = "all")]
        yes: bool,
    },
    /// Delete every instance, message and component of the task hub.
    #[command(after_help = "Examples:\n  cairn delete-task-hub --yes")]
    DeleteTaskHub {
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// List deployed function versions.
    #[command(after_help = "Examples:\n  cairn components\n  cairn components -o json")]
    Components,
    /// Replay every unfinished instance of NAME against a candidate
    /// component and report per instance whether it replays cleanly, its
    /// inputs changed (same actions, other inputs), or it diverges. Exits 7
    /// when one diverges (or changed inputs without --allow-input-changes).
    #[command(
        after_help = "Examples:\n  cairn upgrade-check HelloCities hello-v2.wasm\n  cairn upgrade-check HelloCities hello-v2.wasm --apply"
    )]
    UpgradeCheck {
        /// The orchestrator whose instances are checked.
        name: String,
        /// The candidate component (.wasm).
        component: PathBuf,
        /// Deploy the candidate and move the instances that replay cleanly to it.
        #[arg(long)]
        apply: bool,
        /// With --apply, also move instances whose only difference is a
        /// changed activity, sub-orchestration or timer input (they carry on
        /// with the results recorded for the old inputs).
        #[arg(long, requires = "apply")]
        allow_input_changes: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Replay a finished instance's recorded history from the start against
    /// its own version (or COMPONENT): prints what it reproduced; exits 7
    /// unless every action, its input and the outcome are identical.
    #[command(
        after_help = "Examples:\n  cairn replay order-42\n  cairn replay order-42 --component hello-v2.wasm\n  cairn replay order-42 --until 7   # time travel"
    )]
    Replay {
        /// The instance id.
        id: String,
        /// Replay against this component instead (test new code on old histories).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Time travel: replay only up to this history event (0-based index,
        /// as in `cairn history`) and print the open tasks, the custom status
        /// and the guest's log lines at that point. Works on running instances too.
        #[arg(long, value_name = "EVENT_INDEX")]
        until: Option<usize>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Delete component versions nothing needs (the newest version of every
    /// function, and any version an unfinished or Failed instance uses, stay).
    #[command(after_help = "Examples:\n  cairn prune-versions")]
    PruneVersions,
    /// Show critical-section locks: holders and waiters.
    #[command(after_help = "Examples:\n  cairn locks")]
    Locks,
    /// Durable entities: signal, get, list, purge.
    Entity {
        #[command(subcommand)]
        verb: entity::EntityVerb,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  cairn completions bash > ~/.local/share/bash-completion/completions/cairn\n  cairn completions zsh > ~/.zfunc/_cairn"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Measure throughput and latency on a temporary task hub.
    Bench(crate::bench::BenchArgs),
}

/// Format of the log on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Sets up logging to stderr (`RUST_LOG` overrides the level).
pub fn init_tracing(verbose: u8) {
    init_logging(verbose, LogFormat::Text);
}

/// Sets up logging to stderr in `format` (`RUST_LOG` overrides the level).
pub fn init_logging(verbose: u8, format: LogFormat) {
    if format == LogFormat::Json {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter(verbose)));
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_current_span(false)
            .try_init();
        return;
    }
    init_text(verbose);
}

fn default_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn,cairn=info",
        1 => "info,cairn=debug",
        _ => "debug",
    }
}

fn init_text(verbose: u8) {
    let default = default_filter(verbose);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Reads `@file.json` arguments; passes inline JSON through.
fn json_arg(arg: Option<&str>) -> Result<Option<String>, CliError> {
    match arg {
        Some(a) if a.starts_with('@') => {
            let path = PathBuf::from(&a[1..]);
            std::fs::read_to_string(&path)
                .map(Some)
                .map_err(|source| CliError::Io { path, source })
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// Parses a duration such as `30s`, `500ms`, `2m` or `1h` (a positive
/// whole number and a unit).
///
/// # Errors
/// A message saying what is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let expected = || format!("{text:?}: expected a duration such as 30s, 3s or 500ms (units: ms, s, m, h)");
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let ms_per = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return Err(expected()),
    };
    let ms = n.checked_mul(ms_per).ok_or_else(expected)?;
    if ms == 0 {
        return Err(format!("{text:?}: the duration must be more than zero"));
    }
    Ok(Duration::from_millis(ms))
}

/// What a file of a `deploy` command line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeployPart {
    /// A component deployed with every grant given.
    Whole,
    /// The orchestrator part of a two-part project: HTTP grants only.
    Orchestrators,
}

/// Suffix of the activity part of a JavaScript or Python project built in
/// two parts (`scripts/build-{js,python}-guests.sh`).
const ACTIVITY_PART_SUFFIX: &str = ".activities.wasm";

/// The files a `deploy` command deploys, in order: each file given, with the
/// activity part `X.activities.wasm` of a given `X.wasm` that has one beside
/// it deployed first (so an orchestrator never starts before its
/// activities exist); the orchestrator part of such a pair gets only the
/// HTTP grant.
pub(crate) fn deploy_plan(files: Vec<PathBuf>) -> Vec<(PathBuf, DeployPart)> {
    let activity_part = |f: &Path| -> Option<PathBuf> {
        let name = f.file_name()?.to_str()?;
        let stem = name
            .strip_suffix(".wasm")
            .filter(|_| !name.ends_with(ACTIVITY_PART_SUFFIX))?;
        Some(f.with_file_name(format!("{stem}{ACTIVITY_PART_SUFFIX}")))
    };
    let mut plan: Vec<(PathBuf, DeployPart)> = Vec::new();
    let push = |plan: &mut Vec<(PathBuf, DeployPart)>, f: PathBuf, part| {
        if let Some(existing) = plan.iter_mut().find(|(p, _)| *p == f) {
            if part == DeployPart::Orchestrators {
                existing.1 = part;
            }
        } else {
            plan.push((f, part));
        }
    };
    for f in &files {
        match activity_part(f).filter(|a| a.is_file()) {
            Some(activities) => {
                push(&mut plan, activities, DeployPart::Whole);
                push(&mut plan, f.clone(), DeployPart::Orchestrators);
            }
            None => push(&mut plan, f.clone(), DeployPart::Whole),
        }
    }
    plan
}

/// Prints a document as JSON on stdout.
fn print_json<T: serde::Serialize + ?Sized>(doc: &T) {
    print_out(&format!("{}\n", serde_json::to_string_pretty(doc).unwrap_or_default()));
}

/// Writes to stdout; a closed pipe (`cairn … | head`) is not an error.
fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Reads a file argument.
fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Parses a JSON argument (`--input`, event data): inline text or `@file.json`.
fn json_value(what: &str, arg: Option<&str>) -> Result<Option<serde_json::Value>, CliError> {
    json_arg(arg)?
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| {
                CliError::Usage(format!(
                    "{what} is not valid JSON ({e}); quote strings, e.g. '\"Tokyo\"'"
                ))
            })
        })
        .transpose()
}

impl Command {
    /// The guest limits of the verbs that run guests.
    fn limits(&self) -> Option<&LimitArgs> {
        match self {
            Self::Serve { limits, .. }
            | Self::Deploy { limits, .. }
            | Self::Start { limits, .. }
            | Self::UpgradeCheck { limits, .. }
            | Self::Replay { limits, .. } => Some(limits),
            _ => None,
        }
    }

    /// True for the verbs that may create the task hub (the others refuse
    /// a task hub file that does not exist instead of creating an empty one).
    fn creates_hub(&self) -> bool {
        matches!(self, Self::Serve { .. } | Self::Deploy { .. })
    }
}

/// Runs a parsed command line.
///
/// # Errors
/// The first error, as one line with its cause; [`CliError::exit_code`]
/// says which exit code it gets.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let Cli {
        db,
        output,
        url,
        api_key,
        ca_cert,
        command,
        ..
    } = cli;
    match command {
        Command::Bench(args) => return crate::bench::run(args).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "cairn", &mut buf);
            print_out(&String::from_utf8_lossy(&buf));
            return Ok(());
        }
        Command::Serve { .. } if url.is_some() => {
            return Err(CliError::Usage("serve runs on a task hub; drop --url".into()));
        }
        _ => {}
    }
    let is_pg = crate::store::is_postgres(&db);
    if url.is_none() && !is_pg && !command.creates_hub() && !db.exists() {
        return Err(CliError::NoHub(db.display().to_string()));
    }
    if let Command::Serve {
        listen,
        no_hot_cache,
        max_hot_instances,
        max_hot_memory_mib,
        trust_forwarded_headers,
        max_body_bytes,
        max_connections,
        max_concurrent_deploys,
        allow_origin,
        otlp_endpoint,
        instance_lease,
        limits,
        tls,
    } = command
    {
        let hub = Hub::open_with(&db, limits.limits(), Some(crate::sandbox::default_cache_dir(&db)))?;
        if let Some(endpoint) = crate::traces::endpoint_from(otlp_endpoint.as_deref()) {
            crate::traces::init(&endpoint).map_err(|e| CliError::Usage(e.to_string()))?;
            tracing::info!(%endpoint, "exporting traces over OTLP/HTTP");
        }
        let api = ApiConfig {
            api_key,
            allowed_origins: allow_origin,
            trust_forwarded: trust_forwarded_headers,
            max_body_bytes,
            max_connections,
            max_concurrent_deploys,
            tls: tls.load().map_err(|e| CliError::Usage(e.to_string()))?,
            ..ApiConfig::default()
        };
        let engine = EngineConfig {
            hot_cache: !no_hot_cache,
            max_hot_instances: max_hot_instances.max(1),
            max_hot_memory: max_hot_memory_mib.saturating_mul(1 << 20),
            instance_lease_ms: u64::try_from(instance_lease.as_millis()).unwrap_or(u64::MAX / 2),
            ..EngineConfig::default()
        };
        return serve(&db, hub, &listen, engine, api).await;
    }
    let (target, local): (Box<dyn Management>, Option<Local>) = match &url {
        Some(url) => {
            let ca = ca_cert.as_deref().map(read_file).transpose()?;
            (Box::new(HttpClient::with_ca(url, api_key, ca.as_deref())?), None)
        }
        None => {
            let limits = command.limits().map(LimitArgs::limits).unwrap_or_default();
            let hub = Hub::open_with(&db, limits, Some(crate::sandbox::default_cache_dir(&db)))?;
            let local = Local::new(hub);
            (Box::new(local.clone()), Some(local))
        }
    };
    let place = url.clone().unwrap_or_else(|| hub_description(&db));
    verb(target.as_ref(), local.as_ref(), command, output, &place).await
}

/// Runs one management verb on `m`; `local` is the task hub when the verb
/// runs on one; `place` names the task hub or server for messages.
async fn verb(
    m: &dyn Management,
    local: Option<&Local>,
    command: Command,
    output: Option<Output>,
    place: &str,
) -> Result<(), CliError> {
    use cairn_client::{Control, Grants, ListQuery, PurgeFilter, StartRequest, StatusOptions, UpgradeOptions};
    use serde_json::json;
    let json_out = |default_json: bool| output.map_or(default_json, |o| o == Output::Json);
    match command {
        Command::Serve { .. } | Command::Bench(_) | Command::Completions { .. } => Ok(()),
        Command::Deploy {
            files,
            allow_env,
            allow_dir,
            allow_http,
            ..
        } => {
            let grants = Grants {
                env: allow_env,
                dirs: allow_dir,
                http: allow_http,
            };
            let mut reports = Vec::new();
            for (f, part) in deploy_plan(files) {
                let bytes = read_file(&f)?;
                let grants = match part {
                    DeployPart::Orchestrators => Grants {
                        http: grants.http.clone(),
                        ..Grants::default()
                    },
                    DeployPart::Whole => grants.clone(),
                };
                let report = with_progress(
                    format!(
                        "deploying {} ({:.1} MiB)",
                        f.display(),
                        bytes.len() as f64 / 1_048_576.0
                    ),
                    m.deploy(bytes, &grants),
                )
                .await
                .map_err(|e| match e {
                    cairn_client::Error::BadRequest(msg) => CliError::Usage(format!("{}: {msg}", f.display())),
                    other => other.into(),
                })?;
                if !json_out(false) {
                    for func in &report.functions {
                        print_out(&format!("{}\t{}\t{}\n", func.name, func.kind, report.hash));
                    }
                }
                reports.push(json!({ "file": f.display().to_string(), "report": report }));
            }
            if json_out(false) {
                print_json(&reports);
            }
            Ok(())
        }
        Command::Start {
            name,
            input,
            id,
            version,
            wait,
            ..
        } => {
            let request = StartRequest {
                name,
                input: json_value("--input", input.as_deref())?,
                instance_id: id,
                version,
            };
            let id = m.start(&request).await?;
            let Some(secs) = wait else {
                if json_out(false) {
                    print_json(&json!({ "id": id }));
                } else {
                    print_out(&format!("{id}\n"));
                }
                if local.is_some_and(Local::nobody_serves) {
                    eprintln!(
                        "note: nothing serves task hub {place}: {id} runs once `cairn serve` does (or start it with --wait)"
                    );
                }
                return Ok(());
            };
            eprintln!("started {id}; waiting up to {secs} s…");
            let status = m.wait(&id, Duration::from_secs(secs)).await?;
            if json_out(true) {
                print_json(&status);
            } else {
                print_out(&render::status(&status));
            }
            match status.runtime_status.as_str() {
                "Completed" => Ok(()),
                "Failed" | "Terminated" | "Canceled" => Err(CliError::Ended {
                    id,
                    message: status.output.as_ref().and_then(|o| o.as_str().map(str::to_owned)),
                    status: status.runtime_status,
                }),
                _ => Err(CliError::StillRunning {
                    id,
                    status: status.runtime_status,
                    secs,
                }),
            }
        }
        Command::Status {
            id,
            show_input,
            show_output,
            show_history,
        } => {
            let options = StatusOptions {
                show_input,
                show_output,
                show_history,
            };
            let status = m.status(&id, options).await?;
            if json_out(true) {
                print_json(&status);
            } else {
                print_out(&render::status(&status));
            }
            Ok(())
        }
        Command::Describe { id } => {
            let d = m.describe(&id).await?;
            if json_out(false) {
                print_json(&d);
            } else {
                print_out(&render::description(&d));
            }
            Ok(())
        }
        Command::History { id } => {
            let events = m.history(&id).await?;
            if json_out(false) {
                print_json(&events);
            } else {
                print_out(&format!("Instance {id}\n{}", render::history(&events)));
            }
            Ok(())
        }
        Command::RaiseEvent { id, event, data } => {
            let data = json_value("the event data", data.as_deref())?;
            m.raise_event(&id, &event, data).await?;
            eprintln!("event {event:?} raised to {id}");
            if json_out(false) {
                print_json(&json!({ "instanceId": id, "event": event, "raised": true }));
            }
            Ok(())
        }
        Command::Terminate { id, reason } => control(m, &id, Control::Terminate, reason, json_out(false)).await,
        Command::Suspend { id, reason } => control(m, &id, Control::Suspend, reason, json_out(false)).await,
        Command::Resume { id, reason } => control(m, &id, Control::Resume, reason, json_out(false)).await,
        Command::Rewind { id, reason } => control(m, &id, Control::Rewind, reason, json_out(false)).await,
        Command::Restart { id, same_id } => {
            let new_id = m.restart(&id, !same_id).await?;
            if json_out(false) {
                print_json(&json!({ "id": new_id }));
            } else {
                print_out(&format!("{new_id}\n"));
            }
            Ok(())
        }
        Command::List {
            name,
            created_after,
            created_before,
            status,
            prefix,
            top,
            continuation_token,
            show_input,
        } => {
            check_times(created_after.as_deref(), created_before.as_deref())?;
            let query = ListQuery {
                created_from: created_after,
                created_to: created_before,
                statuses: status,
                id_prefix: prefix,
                name,
                top,
                continuation: continuation_token,
                show_input,
            };
            let page = m.list(&query).await?;
            if json_out(false) {
                print_json(&page);
            } else {
                print_out(&render::instances(&page.instances));
                if let Some(t) = &page.continuation {
                    eprintln!("more instances: run again with --continuation-token {t}");
                }
            }
            Ok(())
        }
        Command::Purge {
            id,
            created_after,
            created_before,
            status,
            all,
            yes,
        } => {
            let n = if let Some(id) = id {
                m.purge_instance(&id).await?;
                1
            } else {
                let filtered = created_after.is_some() || created_before.is_some() || !status.is_empty();
                if !filtered && !all {
                    return Err(CliError::Usage(
                        "purge needs an instance id, filters (--created-after, --created-before, --status), or --all --yes to purge every finished instance".into(),
                    ));
                }
                if all && !yes {
                    return Err(CliError::Usage(
                        "purge --all deletes every finished instance; add --yes to confirm".into(),
                    ));
                }
                check_times(created_after.as_deref(), created_before.as_deref())?;
                let filter = PurgeFilter {
                    created_from: created_after,
                    created_to: created_before,
                    statuses: status,
                };
                m.purge(&filter).await?
            };
            eprintln!("purged {n} instance(s)");
            if json_out(false) {
                print_json(&json!({ "instancesDeleted": n }));
            }
            Ok(())
        }
        Command::DeleteTaskHub { yes } => {
            if !yes {
                return Err(CliError::Usage(
                    "delete-task-hub deletes every instance and component; pass --yes to confirm".into(),
                ));
            }
            let n = m.delete_task_hub().await?;
            eprintln!("deleted task hub {place}: {n} instance(s) and every component");
            if json_out(false) {
                print_json(&json!({ "instancesDeleted": n }));
            }
            Ok(())
        }
        Command::Components => {
            let list = m.components().await?;
            if json_out(false) {
                print_json(&list);
            } else {
                print_out(&render::components(&list));
            }
            Ok(())
        }
        Command::UpgradeCheck {
            name,
            component,
            apply,
            allow_input_changes,
            ..
        } => {
            let bytes = read_file(&component)?;
            let options = UpgradeOptions {
                apply,
                allow_input_changes,
            };
            let report = with_progress(
                format!("replaying unfinished {name} instances against {}", component.display()),
                m.upgrade_check(&name, bytes, options),
            )
            .await?;
            if json_out(true) {
                print_json(&report);
            } else {
                print_out(&render::upgrade(&report));
            }
            let stuck = report
                .instances
                .iter()
                .filter(|i| i.verdict == "diverges" || (i.verdict == "input-changed" && !allow_input_changes))
                .count();
            if stuck > 0 {
                return Err(CliError::Differs(format!(
                    "{stuck} of {} {name} instance(s) do not replay cleanly against the candidate (see the report)",
                    report.instances.len()
                )));
            }
            Ok(())
        }
        Command::Replay {
            id, component, until, ..
        } => {
            let candidate = component.as_deref().map(read_file).transpose()?;
            let report = m.replay(&id, candidate, until).await?;
            if json_out(true) {
                print_json(&report);
            } else {
                print_out(&format!(
                    "{}: {} against {}{}\n",
                    report.instance_id,
                    report.verdict,
                    report.version,
                    until.map(|u| format!(" (up to event {u})")).unwrap_or_default()
                ));
            }
            match (report.identical, until) {
                (true, _) => Ok(()),
                (false, Some(until)) => Err(CliError::Differs(format!(
                    "the replay of {id} up to event {until} failed (see the report)"
                ))),
                (false, None) => Err(CliError::Differs(format!(
                    "the replay of {id} differs from its recorded history (see the report)"
                ))),
            }
        }
        Command::PruneVersions => {
            let pruned = m.prune_versions().await?;
            if json_out(false) {
                print_json(&json!({ "pruned": pruned }));
            } else {
                for hash in &pruned {
                    print_out(&format!("pruned {hash}\n"));
                }
            }
            Ok(())
        }
        Command::Locks => {
            let locks = m.locks().await?;
            if json_out(false) {
                print_json(&locks);
            } else {
                print_out(&render::locks(&locks));
            }
            Ok(())
        }
        Command::Entity { verb } => entity::run(m, verb, json_out).await,
    }
}

/// Terminate, suspend, resume or rewind.
async fn control(
    m: &dyn Management,
    id: &str,
    action: cairn_client::Control,
    reason: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    m.control(id, action, reason.as_deref()).await?;
    eprintln!("{} of {id} requested", action.verb());
    if json {
        print_json(&serde_json::json!({ "instanceId": id, "requested": action.verb() }));
    }
    Ok(())
}

/// Checks ISO 8601 time arguments before any request (one clear error).
fn check_times(after: Option<&str>, before: Option<&str>) -> Result<(), CliError> {
    for (flag, value) in [("--created-after", after), ("--created-before", before)] {
        if let Some(v) = value
            && crate::clock::parse_iso(v).is_none()
        {
            return Err(CliError::Usage(format!(
                "{flag} {v:?}: expected an ISO 8601 time such as 2024-01-31T12:00:00Z"
            )));
        }
    }
    Ok(())
}

/// Runs `work`, saying on stderr what it does and, every few seconds while
/// it lasts (compiling a large Python component takes a while), that it
/// still does.
async fn with_progress<T>(what: String, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    eprintln!("{what}…");
    let ticker = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        every.tick().await;
        loop {
            every.tick().await;
            eprintln!("  still working ({} s)…", started.elapsed().as_secs());
        }
    });
    let out = work.await;
    ticker.abort();
    if started.elapsed() >= Duration::from_secs(2) {
        eprintln!("  done in {:.1} s", started.elapsed().as_secs_f64());
    }
    out
}

async fn serve(db: &Path, hub: Hub, listen: &str, engine: EngineConfig, api: ApiConfig) -> Result<(), CliError> {
    // SQLite: the one-host guard, held by the store until it is dropped.
    let hosting = hub.store.claim_host()?;
    let addr = resolve_listen(listen).await?;
    crate::api::check_listen(addr, &api).map_err(|e| CliError::Usage(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {addr}: {e}")))?;
    let addr = listener.local_addr().unwrap_or(addr);
    let config = EngineConfig {
        // A lease outlives the longest activity call.
        lease_ms: u64::try_from(hub.sandbox.limits().activity_cpu.as_millis()).unwrap_or(u64::MAX / 2) + 60_000,
        // Many hosts may serve a PostgreSQL task hub: no lease is void at
        // start-up, and each episode runs under an instance lease.
        exclusive: hosting == Hosting::Exclusive,
        ..engine
    };
    let engine: Arc<Engine> = Engine::new(hub.store.clone(), hub.sandbox.clone(), config);
    let scheme = if api.tls.is_some() { "https" } else { "http" };
    let api = crate::api::Api::new(hub, engine.clone(), api).map_err(|e| CliError::Usage(e.to_string()))?;
    let running = engine.run();
    let (stop_api, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::api::serve(listener, api, async {
        let _ = stopped.await;
    }));
    let described = hub_description(db);
    tracing::info!(db = %described, %addr, "cairn serve: workers running");
    eprintln!(
        "cairn serve: task hub {described} — workers running, management API on {scheme}://{addr}{} (Ctrl-C to stop)",
        crate::api::BASE_PATH
    );
    shutdown_signal().await;
    eprintln!("cairn serve: stopping…");
    let _ = stop_api.send(());
    let served = server.await;
    running.shutdown(&engine, Duration::from_secs(8)).await;
    let _ = tokio::task::spawn_blocking(crate::traces::shutdown).await;
    match served {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CliError::Usage(e.to_string())),
        Err(e) => Err(CliError::Usage(format!("the management API stopped: {e}"))),
    }
}

/// The task hub's name for people: its path, or a PostgreSQL URL without
/// the password.
fn hub_description(db: &Path) -> String {
    if crate::store::is_postgres(db) {
        crate::store::postgres::describe_address(&db.to_string_lossy())
    } else {
        db.display().to_string()
    }
}

/// `host:port` or `[v6]:port`; a host name (e.g. `localhost`) is resolved.
async fn resolve_listen(listen: &str) -> Result<std::net::SocketAddr, CliError> {
    if let Ok(a) = listen.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(listen)
        .await
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--listen {listen:?}: expected an address such as 127.0.0.1:7071"
            ))
        })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_unit_and_refuse_zero_and_garbage() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "0s",
            "0ms",
            "30",
            "s",
            "3 sec",
            "-1s",
            "1.5s",
            "99999999999999999999h",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("expected a duration") || e.contains("more than zero"),
                "{bad}: {e}"
            );
        }
    }
}
